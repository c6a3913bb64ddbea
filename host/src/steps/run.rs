//! `Run`: a script (`shell: Sh | Bash`, `command`, `envVariables`, `outputVariables`) in the stage
//! workspace, through the `process` capability: confined as `processSandbox` says, and inside a
//! Kubernetes step group able to reach that group's cluster (its `kubectl` works there).

use super::{BindContext, Bound, BuiltInStep, SpecLocation};
use crate::capability::Grants;
use crate::capability::kube::{Verb, resolve};
use crate::capability::process::{ClusterAccess, ProcessGrant};
use crate::config::{Config, Refusal};
use crate::diag::Diagnostic;
use crate::yaml::{Node, Value};

pub struct Run;

impl BuiltInStep for Run {
    fn names(&self) -> &'static [&'static str] {
        &["Run"]
    }

    fn component(&self) -> &'static [u8] {
        include_bytes!(concat!(
            env!("LOCKSTEP_GUEST_DIR"),
            "/lockstep_step_run.wasm"
        ))
    }

    fn check(
        &self,
        _: &str,
        spec: &Node,
        at: &SpecLocation<'_>,
        _: &Config,
        out: &mut Vec<Diagnostic>,
    ) {
        check_run(spec, at, out);
    }

    fn bind(
        &self,
        _: &str,
        spec: serde_json::Value,
        context: &BindContext<'_>,
    ) -> Result<Bound, Refusal> {
        let cluster = match context.infra {
            Some(infra) => {
                let (grant, namespace) = resolve::group_grant(
                    context.config,
                    &infra.connector,
                    infra.namespace.as_deref(),
                    Verb::ALL.to_vec(),
                )?;
                Some(ClusterAccess { grant, namespace })
            }
            None => None,
        };
        let process = ProcessGrant {
            policy: context.config.process_policy.clone(),
            cluster,
        };
        Ok(Bound::new(
            Grants {
                process: Some(process),
                ..Grants::default()
            },
            spec,
        ))
    }

    fn runs_scripts(&self) -> bool {
        true
    }
}

fn check_run(spec: &Node, at: &SpecLocation<'_>, out: &mut Vec<Diagnostic>) {
    match spec.get("shell").and_then(Node::as_str) {
        Some("Sh" | "Bash") => {}
        Some(other @ ("Powershell" | "Pwsh" | "Python")) => out.push(
            Diagnostic::error(
                at.field("shell"),
                format!("shell {other} is not supported for local runs"),
            )
            .with_help("use `shell: Sh` or `shell: Bash`"),
        ),
        Some(other) => out.push(
            Diagnostic::error(at.field("shell"), format!("`{other}` is not a shell"))
                .with_help("use `shell: Sh` or `shell: Bash`"),
        ),
        None => out.push(
            Diagnostic::error(at.field("shell"), "a Run step needs `shell`")
                .with_help("add `shell: Bash` (or Sh)"),
        ),
    }
    if spec.get("command").and_then(Node::as_str).is_none() {
        out.push(
            Diagnostic::error(
                at.field("command"),
                "a Run step needs `command`, the script to run",
            )
            .with_help("add `command: |` followed by the script, indented"),
        );
    }
    if let Some(env) = spec.get("envVariables").filter(|n| !n.is_null()) {
        match env.as_map() {
            Some(entries) => {
                for (k, v) in entries {
                    let name = k.as_str().unwrap_or_default();
                    if !crate::pipeline::is_identifier(name) || v.as_str().is_none() && !v.is_null()
                    {
                        out.push(
                            Diagnostic::error(
                                at.field("envVariables"),
                                format!("`{name}` must be a variable name with a single value"),
                            )
                            .with_help("write `NAME: value`, one per line"),
                        );
                    }
                }
            }
            None => out.push(
                Diagnostic::error(at.field("envVariables"), "`envVariables` must be a map")
                    .with_help("write `NAME: value`, one per line"),
            ),
        }
    }
    if let Some(outputs) = spec.get("outputVariables").filter(|n| !n.is_null()) {
        let ok = outputs.as_seq().is_some_and(|items| {
            items.iter().all(|i| {
                i.get("name")
                    .and_then(Node::as_str)
                    .is_some_and(crate::pipeline::is_identifier)
            })
        });
        if !ok {
            out.push(
                Diagnostic::error(
                    at.field("outputVariables"),
                    "`outputVariables` must be a list of `- name: VARIABLE`",
                )
                .with_help("each name is a shell variable whose final value becomes an output"),
            );
        }
    }
    for unused in ["image", "connectorRef"] {
        if spec
            .get(unused)
            .is_some_and(|n| !matches!(n.value, Value::Null))
        {
            out.push(Diagnostic::warning(at.field(unused), format!("`{unused}` is unused: Lockstep runs the command on this machine, not in a container")).with_help("nothing to do for local runs; the pipeline stays valid for Harness"));
        }
    }
    for ignored in [
        "reports",
        "imagePullPolicy",
        "resources",
        "privileged",
        "runAsUser",
        "outputAlias",
    ] {
        if spec.get(ignored).is_some() {
            out.push(
                Diagnostic::warning(
                    at.field(ignored),
                    format!("`{ignored}` is ignored for local runs"),
                )
                .with_help("nothing to do for local runs"),
            );
        }
    }
}
