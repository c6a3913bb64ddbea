//! Step types: the built-in ones (embedded components) and custom ones from `lockstep.yaml`,
//! with the checks of each type's `spec` that `validate` runs.

use crate::capability::db::DbGrant;
use crate::capability::git::GitGrant;
use crate::capability::kube::{KubeGrant, Verb};
use crate::capability::process::{ClusterAccess, ProcessGrant};
use crate::capability::{FileGrant, Grants};
use crate::plan::KubeInfra;
use std::path::PathBuf;

use crate::config::{Config, CustomStepType, Refusal, SchemaFetch};
use crate::diag::{Diagnostic, Location};
use crate::pipeline::Step;
use crate::sandbox::limits::StepLimits;
use crate::yaml::{Node, Value};

/// A step type whose component ships inside the `lockstep` binary.
pub struct BuiltIn {
    pub name: &'static str,
    pub wasm: &'static [u8],
}

const DB_SCHEMA_WASM: &[u8] = include_bytes!(concat!(
    env!("LOCKSTEP_GUEST_DIR"),
    "/lockstep_step_db_schema.wasm"
));
const K8S_WASM: &[u8] = include_bytes!(concat!(
    env!("LOCKSTEP_GUEST_DIR"),
    "/lockstep_step_k8s.wasm"
));

pub const BUILT_INS: &[BuiltIn] = &[
    BuiltIn {
        name: "Run",
        wasm: include_bytes!(concat!(
            env!("LOCKSTEP_GUEST_DIR"),
            "/lockstep_step_run.wasm"
        )),
    },
    BuiltIn {
        name: "DBSchemaApply",
        wasm: DB_SCHEMA_WASM,
    },
    BuiltIn {
        name: "DBSchemaRollback",
        wasm: DB_SCHEMA_WASM,
    },
    BuiltIn {
        name: "GitClone",
        wasm: include_bytes!(concat!(
            env!("LOCKSTEP_GUEST_DIR"),
            "/lockstep_step_git_clone.wasm"
        )),
    },
    BuiltIn {
        name: "K8sApply",
        wasm: K8S_WASM,
    },
    BuiltIn {
        name: "K8sRollingDeploy",
        wasm: K8S_WASM,
    },
    BuiltIn {
        name: "K8sRollingRollback",
        wasm: K8S_WASM,
    },
];

/// Where a Kubernetes step's stage workspace is preopened, read-only, to read its manifests.
pub const WORKSPACE_MOUNT: &str = "/workspace";

/// Where a DB step's schema root is preopened, read-only.
pub const SCHEMA_MOUNT: &str = "/schema";

/// Harness step types that Lockstep knows of but does not run yet.
const NOT_YET_IMPLEMENTED: &[&str] = &[
    "LiquibaseCommand",
    "DBSchemaUpdateSQL",
    "DBSchemaRollbackSQL",
    "Plugin",
    "Background",
    "ShellScript",
    "Http",
    "Wait",
    "HarnessApproval",
];

/// Where the code of a step type comes from.
pub enum StepSource<'a> {
    BuiltIn(&'static BuiltIn),
    Custom(&'a CustomStepType),
    /// Known or unknown, but not runnable: `validate` warns, `run` refuses before starting.
    Unavailable(String),
}

pub fn source<'a>(config: &'a Config, step_type: &str) -> StepSource<'a> {
    if let Some(custom) = config.step_types.get(step_type) {
        return StepSource::Custom(custom);
    }
    if let Some(built_in) = BUILT_INS.iter().find(|b| b.name == step_type) {
        return StepSource::BuiltIn(built_in);
    }
    if NOT_YET_IMPLEMENTED.contains(&step_type) {
        return StepSource::Unavailable(format!(
            "step type `{step_type}` is not implemented by Lockstep yet"
        ));
    }
    let mut known: Vec<&str> = BUILT_INS
        .iter()
        .map(|b| b.name)
        .chain(config.step_types.keys().map(String::as_str))
        .collect();
    known.sort();
    let hint = crate::pipeline::closest(step_type, &known)
        .map_or(String::new(), |g| format!(" (did you mean `{g}`?)"));
    StepSource::Unavailable(format!(
        "step type `{step_type}` is not known{hint}; define it under `stepTypes:` in lockstep.yaml, or use one of {}",
        known.join(", ")
    ))
}

impl StepSource<'_> {
    /// The grants one step gets, and the spec its component receives. Built-in steps derive their
    /// grants from their spec and the operator's lockstep.yaml (`Run`: scripts under
    /// `processSandbox`, and in a Kubernetes step group that cluster; the DB steps: their
    /// `dbInstance`, and their schema's directory read-only); custom steps get what lockstep.yaml
    /// says. `Err` says what in lockstep.yaml is missing, or what it does not allow.
    pub fn bind(
        &self,
        spec: serde_json::Value,
        config: &Config,
        fqn: &str,
        execution_id: &str,
        infra: Option<&KubeInfra>,
    ) -> Result<Bound, Refusal> {
        let plain = |(grants, spec)| Bound {
            grants,
            spec,
            schema_fetch: None,
        };
        match self {
            StepSource::BuiltIn(b) if b.name == "Run" => {
                let cluster = match infra {
                    Some(infra) => {
                        let (grant, namespace) = config.kube_group_grant(
                            &infra.connector,
                            infra.namespace.as_deref(),
                            Verb::ALL.to_vec(),
                        )?;
                        Some(ClusterAccess { grant, namespace })
                    }
                    None => None,
                };
                Ok(plain((
                    Grants {
                        process: Some(ProcessGrant {
                            policy: config.process_policy.clone(),
                            cluster,
                        }),
                        ..Grants::default()
                    },
                    spec,
                )))
            }
            StepSource::BuiltIn(b) if b.name == "GitClone" => {
                Ok(plain(bind_git_clone(spec, config)?))
            }
            StepSource::BuiltIn(b) if b.name.starts_with("K8s") => {
                Ok(plain(bind_k8s_step(spec, config, infra)?))
            }
            StepSource::BuiltIn(_) => Ok(bind_db_step(spec, config, fqn, execution_id)?),
            StepSource::Custom(c) => {
                let mut grants = c.grants.clone();
                if c.process {
                    grants.process = Some(ProcessGrant {
                        policy: config.process_policy.clone(),
                        cluster: None,
                    });
                }
                for instance in &c.db_instances {
                    grants.db.push(DbGrant {
                        instance: instance.clone(),
                        target: config.db_target(instance)?,
                    });
                }
                for connector in &c.git_connectors {
                    grants.git.push(GitGrant {
                        connector: connector.clone(),
                        remote: config.git_remote(connector)?,
                    });
                }
                for spec in &c.kube {
                    let cluster = config.kube_cluster(&spec.connector)?;
                    grants.kube.push(KubeGrant {
                        connector: spec.connector.clone(),
                        cluster,
                        namespaces: spec.namespaces.clone(),
                        kinds: spec.kinds.clone(),
                        verbs: spec.verbs.clone(),
                    });
                }
                Ok(plain((grants, spec)))
            }
            StepSource::Unavailable(message) => Err(Refusal::Configuration(message.clone())),
        }
    }

    pub fn limits(&self) -> StepLimits {
        match self {
            StepSource::Custom(c) => c.limits.clone(),
            _ => StepLimits::built_in(),
        }
    }
}

/// What a step gets when it runs.
pub struct Bound {
    pub grants: Grants,
    /// The spec its component receives.
    pub spec: serde_json::Value,
    /// A Git-hosted schema the runner fetches into the stage workspace (the path in `.1`, relative
    /// to it) before the step starts, unless a step of the same run already has; it is the
    /// step's read-only [`SCHEMA_MOUNT`].
    pub schema_fetch: Option<(SchemaFetch, PathBuf)>,
}

/// The DB steps' grants: the instance their spec names (only that one), and their schema's root
/// read-only at [`SCHEMA_MOUNT`] (for a schema in a Git repository, its checkout, fetched by the
/// runner: the step itself gets no Git grant). The spec gains a `lockstep` object with what the component
/// needs from lockstep.yaml: the changelog path, contexts, label filter, properties, lock holder, and
/// whether the database is SQL or MongoDB (`databaseKind`).
fn bind_db_step(
    mut spec: serde_json::Value,
    config: &Config,
    fqn: &str,
    execution_id: &str,
) -> Result<Bound, String> {
    let field = |name: &str| {
        spec.get(name)
            .and_then(|v| v.as_str())
            .map(str::to_string)
            .ok_or_else(|| format!("the spec needs `{name}`"))
    };
    let (schema_id, instance_id) = (field("dbSchema")?, field("dbInstance")?);
    let instance = config.db_instances.get(&instance_id).ok_or_else(|| format!("db instance `{instance_id}` is not defined; add it under `dbInstances:` in lockstep.yaml"))?;
    if instance.schema != schema_id {
        return Err(format!(
            "db instance `{instance_id}` belongs to schema `{}`, not `{schema_id}`",
            instance.schema
        ));
    }
    let schema = &config.db_schemas[&schema_id];
    let target = config.db_target(&instance_id)?;
    let database_kind = if matches!(target, crate::capability::db::DbTarget::Mongo { .. }) {
        "mongodb"
    } else {
        "sql"
    };
    let schema_fetch = config
        .schema_fetch(&schema_id)?
        .map(|fetch| (fetch, schema_checkout_dir(&schema_id, execution_id)));
    let root = schema_fetch
        .as_ref()
        .map_or_else(|| schema.root.clone(), |(_, dir)| dir.clone());
    let grants = Grants {
        db: vec![DbGrant {
            instance: instance_id,
            target,
        }],
        files: vec![FileGrant {
            host_path: root,
            guest_path: SCHEMA_MOUNT.to_string(),
            read_only: true,
        }],
        ..Grants::default()
    };
    let contexts: Vec<&str> = instance
        .context
        .as_deref()
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect();
    let lockstep = serde_json::json!({
        "changelogFile": schema.changelog,
        "contexts": contexts,
        "labelFilter": instance.labels,
        "properties": instance.substitute_properties,
        "lockHolder": format!("{fqn} (execution {execution_id})"),
        "databaseKind": database_kind,
    });
    if let Some(map) = spec.as_object_mut() {
        map.insert("lockstep".into(), lockstep);
    }
    Ok(Bound {
        grants,
        spec,
        schema_fetch,
    })
}

/// The Kubernetes steps' grants: the cluster of their step group's `stepGroupInfra`, in the
/// group's namespace (else the kubeconfig context's) if the operator allows it for the connector,
/// the operator's kinds for it, and the stage workspace read-only to read manifests. The spec
/// gains `lockstep.connector` and `lockstep.namespace`.
fn bind_k8s_step(
    mut spec: serde_json::Value,
    config: &Config,
    infra: Option<&KubeInfra>,
) -> Result<(Grants, serde_json::Value), Refusal> {
    let infra = infra.ok_or_else(|| Refusal::Configuration("a Kubernetes step needs a cluster: run it in a step group with `stepGroupInfra: { type: KubernetesDirect, spec: { connectorRef: <Kubernetes connector>, namespace: … } }`".into()))?;
    // Pruning deletes what an earlier release had and this one does not.
    let prunes = spec.get("pruningEnabled").is_some_and(|v| {
        v == &serde_json::json!(true) || v.as_str().is_some_and(|t| t.eq_ignore_ascii_case("true"))
    });
    let mut verbs = vec![Verb::Get, Verb::List, Verb::Apply];
    if prunes {
        verbs.push(Verb::Delete);
    }
    let (grant, namespace) =
        config.kube_group_grant(&infra.connector, infra.namespace.as_deref(), verbs)?;
    if let Some(map) = spec.as_object_mut() {
        map.insert(
            "lockstep".into(),
            serde_json::json!({ "connector": infra.connector, "namespace": namespace }),
        );
    }
    let files = vec![FileGrant {
        host_path: PathBuf::new(),
        guest_path: WORKSPACE_MOUNT.to_string(),
        read_only: true,
    }];
    Ok((
        Grants {
            kube: vec![grant],
            files,
            ..Grants::default()
        },
        spec,
    ))
}

/// Where a Git-hosted schema is checked out in the stage workspace: one directory per schema
/// and run, so that every DB step of the run reads the same checkout — a rollback reads exactly
/// the changelog its apply read, even if the branch has moved since — and it is fetched once.
fn schema_checkout_dir(schema: &str, execution_id: &str) -> PathBuf {
    PathBuf::from(format!(".lockstep/schemas/{schema}-{execution_id}"))
}

/// GitClone's grant: its `connectorRef`, and nothing else (the host writes the checkout into the
/// stage workspace). The spec gains `lockstep.directory`: where the checkout lands when the step
/// names no `cloneDirectory` — `repoName`, else the URL's last segment without `.git`.
fn bind_git_clone(
    mut spec: serde_json::Value,
    config: &Config,
) -> Result<(Grants, serde_json::Value), String> {
    let connector = spec
        .get("connectorRef")
        .and_then(|v| v.as_str())
        .ok_or("the spec needs `connectorRef`, a Git connector of lockstep.yaml")?
        .to_string();
    let remote = config.git_remote(&connector)?;
    let repo_name = spec
        .get("repoName")
        .and_then(|v| v.as_str())
        .filter(|r| !r.is_empty());
    let url = remote
        .repository_url(repo_name)
        .map_err(|e| format!("connector `{connector}`: {e}"))?;
    let directory = url
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .trim_end_matches(".git")
        .to_string();
    if let Some(map) = spec.as_object_mut() {
        map.insert(
            "lockstep".into(),
            serde_json::json!({ "directory": directory }),
        );
    }
    Ok((
        Grants {
            git: vec![GitGrant { connector, remote }],
            ..Grants::default()
        },
        spec,
    ))
}

/// Checks the `spec` of a step whose type Lockstep implements.
pub fn check_spec(
    step: &Step,
    source: &StepSource<'_>,
    location: &Location,
    config: &Config,
) -> Vec<Diagnostic> {
    let mut out = vec![];
    match source {
        StepSource::BuiltIn(b) if b.name == "Run" => check_run(&step.spec, location, &mut out),
        StepSource::BuiltIn(b) if b.name == "GitClone" => {
            check_git_clone(&step.spec, location, config, &mut out)
        }
        StepSource::BuiltIn(b) if b.name == "K8sApply" || b.name == "K8sRollingDeploy" => {
            check_manifest_paths(b.name, &step.spec, location, &mut out)
        }
        StepSource::BuiltIn(b) if b.name == "K8sRollingRollback" => {}
        StepSource::BuiltIn(b) => check_db_step(b.name, &step.spec, location, config, &mut out),
        StepSource::Unavailable(message) => out.push(
            Diagnostic::warning(
                location.clone(),
                format!("{message}; this pipeline validates, but `lockstep run` will refuse it"),
            )
            .with_help("run it once the step type is supported, or replace the step"),
        ),
        _ => {}
    }
    out
}

fn at(spec: &Node, location: &Location, key: &str) -> Location {
    let node = spec.get(key).unwrap_or(spec);
    Location {
        pos: node.pos,
        yaml_path: format!("{}.spec.{key}", location.yaml_path),
        file: location.file.clone(),
    }
}

fn check_run(spec: &Node, location: &Location, out: &mut Vec<Diagnostic>) {
    match spec.get("shell").and_then(Node::as_str) {
        Some("Sh" | "Bash") => {}
        Some(other @ ("Powershell" | "Pwsh" | "Python")) => out.push(
            Diagnostic::error(
                at(spec, location, "shell"),
                format!("shell {other} is not supported for local runs"),
            )
            .with_help("use `shell: Sh` or `shell: Bash`"),
        ),
        Some(other) => out.push(
            Diagnostic::error(
                at(spec, location, "shell"),
                format!("`{other}` is not a shell"),
            )
            .with_help("use `shell: Sh` or `shell: Bash`"),
        ),
        None => out.push(
            Diagnostic::error(at(spec, location, "shell"), "a Run step needs `shell`")
                .with_help("add `shell: Bash` (or Sh)"),
        ),
    }
    if spec.get("command").and_then(Node::as_str).is_none() {
        out.push(
            Diagnostic::error(
                at(spec, location, "command"),
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
                                at(spec, location, "envVariables"),
                                format!("`{name}` must be a variable name with a single value"),
                            )
                            .with_help("write `NAME: value`, one per line"),
                        );
                    }
                }
            }
            None => out.push(
                Diagnostic::error(
                    at(spec, location, "envVariables"),
                    "`envVariables` must be a map",
                )
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
                    at(spec, location, "outputVariables"),
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
            out.push(Diagnostic::warning(at(spec, location, unused), format!("`{unused}` is unused: Lockstep runs the command on this machine, not in a container")).with_help("nothing to do for local runs; the pipeline stays valid for Harness"));
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
                    at(spec, location, ignored),
                    format!("`{ignored}` is ignored for local runs"),
                )
                .with_help("nothing to do for local runs"),
            );
        }
    }
}

/// Checks every step's type and spec; returns warnings and errors in document order.
pub fn check_pipeline(pipeline: &crate::pipeline::Pipeline, config: &Config) -> Vec<Diagnostic> {
    use crate::pipeline::{StageItem, StepItem};
    fn walk<'p>(items: &'p [StepItem], out: &mut Vec<&'p Step>) {
        for item in items {
            match item {
                StepItem::Step(s) => out.push(s),
                StepItem::Group(g) => {
                    walk(&g.steps, out);
                    walk(&g.rollback_steps, out);
                }
                StepItem::Parallel(inner) => walk(inner, out),
            }
        }
    }
    let mut steps = vec![];
    for stage in pipeline.stages.iter().flat_map(StageItem::stages) {
        walk(&stage.execution.steps, &mut steps);
        walk(&stage.execution.rollback_steps, &mut steps);
    }
    steps
        .iter()
        .flat_map(|step| {
            check_spec(
                step,
                &source(config, &step.step_type),
                &step.common.location,
                config,
            )
        })
        .collect()
}

fn check_manifest_paths(
    step_type: &str,
    spec: &Node,
    location: &Location,
    out: &mut Vec<Diagnostic>,
) {
    let listed = spec
        .get("filePaths")
        .and_then(Node::as_seq)
        .is_some_and(|paths| !paths.is_empty() && paths.iter().all(|p| p.as_str().is_some()));
    if !listed {
        out.push(Diagnostic::error(at(spec, location, "filePaths"), format!("a {step_type} step needs `filePaths`, a list of manifest files or directories in the stage workspace")).with_help("write e.g. `filePaths: [orkes/deployment.yml]`"));
    }
}

fn check_git_clone(spec: &Node, location: &Location, config: &Config, out: &mut Vec<Diagnostic>) {
    match spec.get("connectorRef").and_then(Node::as_str) {
        None => out.push(Diagnostic::error(at(spec, location, "connectorRef"), "a GitClone step needs `connectorRef`, a Git connector").with_help("add `connectorRef: <Git connector in lockstep.yaml>`")),
        Some(name) if name.contains("<+") => {}
        Some(name) => match config.connectors.get(name) {
            None => out.push(Diagnostic::warning(at(spec, location, "connectorRef"), format!("connector `{name}` is not in lockstep.yaml, so `lockstep run` will fail this step")).with_help(format!("add `{name}: {{ type: Git, url: … }}` under `connectors:` in lockstep.yaml"))),
            Some(c) if c.kind() != crate::config::ConnectorKind::Git => out.push(Diagnostic::error(at(spec, location, "connectorRef"), format!("connector `{name}` is a {:?} connector, not a Git one", c.kind())).with_help("point `connectorRef` at a connector with `type: Git`")),
            Some(_) => {}
        },
    }
    let build = spec.get("build");
    let kind = build.and_then(|b| b.get("type")).and_then(Node::as_str);
    let field = match kind {
        Some("branch") => "branch",
        Some("tag") => "tag",
        Some("commitSha") => "commitSha",
        Some("PR") => {
            out.push(Diagnostic::error(at(spec, location, "build"), "`build.type: PR` needs a pull request from a Git provider, which local runs do not have").with_help("use `type: branch`, `tag` or `commitSha`"));
            return;
        }
        _ => {
            out.push(
                Diagnostic::error(
                    at(spec, location, "build"),
                    "a GitClone step needs `build.type`: branch, tag or commitSha",
                )
                .with_help("write `build: { type: branch, spec: { branch: main } }`"),
            );
            return;
        }
    };
    match build.and_then(|b| b.get("spec")).and_then(|s| s.get(field)) {
        None => out.push(
            Diagnostic::error(
                at(spec, location, "build"),
                format!("`build.type: {field}` needs `build.spec.{field}`"),
            )
            .with_help(format!(
                "write `build: {{ type: {field}, spec: {{ {field}: … }} }}`"
            )),
        ),
        // YAML reads an unquoted `0123` as the number 123.
        Some(Node {
            value:
                Value::Scalar {
                    text,
                    quoted: false,
                },
            ..
        }) if text.starts_with('0')
            && text.len() > 1
            && text.chars().all(|c| c.is_ascii_digit()) =>
        {
            out.push(
                Diagnostic::warning(
                    at(spec, location, "build"),
                    format!(
                        "`{field}: {text}` reads as the number {}; its leading zero is lost",
                        text.trim_start_matches('0')
                    ),
                )
                .with_help(format!("quote it: `{field}: \"{text}\"`")),
            );
        }
        Some(_) => {}
    }
    if let Some(depth) = spec.get("depth").and_then(Node::as_str)
        && !depth.contains("<+")
        && depth.parse::<u32>().is_err()
    {
        out.push(
            Diagnostic::error(
                at(spec, location, "depth"),
                format!("`{depth}` is not a whole number"),
            )
            .with_help("write e.g. `depth: 1` (0 fetches the whole history)"),
        );
    }
    for ignored in [
        "fetchTags",
        "lfs",
        "sparseCheckout",
        "submoduleStrategy",
        "preFetchCommand",
        "sslVerify",
        "resources",
    ] {
        if spec.get(ignored).is_some() {
            out.push(Diagnostic::warning(at(spec, location, ignored), format!("`{ignored}` is ignored by Lockstep's GitClone")).with_help("the checkout is a plain clone of the reference; nothing to do unless the build depends on it"));
        }
    }
}

fn check_db_step(
    step_type: &str,
    spec: &Node,
    location: &Location,
    config: &Config,
    out: &mut Vec<Diagnostic>,
) {
    for required in ["dbSchema", "dbInstance"] {
        if spec.get(required).and_then(Node::as_str).is_none() {
            out.push(
                Diagnostic::error(
                    at(spec, location, required),
                    format!("a {step_type} step needs `{required}`"),
                )
                .with_help(format!("add `{required}: <id from lockstep.yaml>`")),
            );
        }
    }
    if let Some(instance) = spec
        .get("dbInstance")
        .and_then(Node::as_str)
        .filter(|i| !i.contains("<+"))
        && !config.db_instances.contains_key(instance)
    {
        out.push(Diagnostic::warning(at(spec, location, "dbInstance"), format!("db instance `{instance}` is not in lockstep.yaml, so `lockstep run` will fail this step")).with_help(format!("add `{instance}: {{ schema: …, connector: … }}` under `dbInstances:` in lockstep.yaml")));
    }
    if step_type == "DBSchemaApply" {
        if let Some(strategy) = spec.get("changeSetFailureStrategy").and_then(Node::as_str)
            && strategy != "MARK_NEXT_RUN"
        {
            out.push(
                Diagnostic::error(
                    at(spec, location, "changeSetFailureStrategy"),
                    format!("`{strategy}` is not a changeSetFailureStrategy"),
                )
                .with_help(
                    "the only value is MARK_NEXT_RUN (today spelt `markNextChangeSetRun: true`)",
                ),
            );
        }
        return;
    }
    match (
        spec.get("tag").filter(|n| !n.is_null()),
        spec.get("changeSetCount").filter(|n| !n.is_null()),
    ) {
        (Some(_), Some(_)) | (None, None) => out.push(
            Diagnostic::error(
                location.clone(),
                "a DBSchemaRollback step needs exactly one of `tag` or `changeSetCount`",
            )
            .with_help("write `tag: <+steps.apply.output.preStartTag>` or `changeSetCount: 1`"),
        ),
        (None, Some(count)) => {
            let text = count.as_str().unwrap_or_default();
            if !text.contains("<+") && !text.parse::<u64>().is_ok_and(|n| n >= 1) {
                out.push(
                    Diagnostic::error(
                        at(spec, location, "changeSetCount"),
                        format!("`{text}` is not a whole number of at least 1"),
                    )
                    .with_help("write e.g. `changeSetCount: 1`"),
                );
            }
        }
        (Some(_), None) => {}
    }
}
