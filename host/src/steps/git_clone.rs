//! `GitClone`: clones `connectorRef` (and `repoName` under an account-level connector) at a
//! branch, tag or commit into the stage workspace, through the `git` capability.

use lockstep_builtins::git_clone::Settings;

use super::{BindContext, Bound, BuiltInStep, SpecLocation};
use crate::capability::Grants;
use crate::capability::git::{GitGrant, resolve};
use crate::config::{Config, Refusal};
use crate::diag::Diagnostic;
use crate::yaml::{Node, Value};

pub struct GitClone;

impl BuiltInStep for GitClone {
    fn names(&self) -> &'static [&'static str] {
        &["GitClone"]
    }

    fn component(&self) -> &'static [u8] {
        include_bytes!(concat!(
            env!("LOCKSTEP_GUEST_DIR"),
            "/lockstep_step_git_clone.wasm"
        ))
    }

    fn check(
        &self,
        _: &str,
        spec: &Node,
        at: &SpecLocation<'_>,
        config: &Config,
        out: &mut Vec<Diagnostic>,
    ) {
        check_git_clone(spec, at, config, out);
    }

    /// Its grant: its `connectorRef`, and nothing else (the host writes the checkout into the
    /// stage workspace). Its settings: where the checkout lands when the step names no
    /// `cloneDirectory` — `repoName`, else the URL's last segment without `.git`.
    fn bind(
        &self,
        _: &str,
        spec: serde_json::Value,
        context: &BindContext<'_>,
    ) -> Result<Bound, Refusal> {
        let connector = spec
            .get("connectorRef")
            .and_then(|v| v.as_str())
            .ok_or_else(|| {
                Refusal::Configuration(
                    "the spec needs `connectorRef`, a Git connector of lockstep.yaml".into(),
                )
            })?
            .to_string();
        let remote = resolve::remote(context.config, &connector)?;
        let repo_name = spec
            .get("repoName")
            .and_then(|v| v.as_str())
            .filter(|r| !r.is_empty());
        let url = remote
            .repository_url(repo_name)
            .map_err(|e| Refusal::Configuration(format!("connector `{connector}`: {e}")))?;
        let directory = url
            .trim_end_matches('/')
            .rsplit('/')
            .next()
            .unwrap_or_default()
            .trim_end_matches(".git")
            .to_string();
        Ok(Bound::new(
            Grants {
                git: vec![GitGrant { connector, remote }],
                ..Grants::default()
            },
            spec,
        )
        .with_settings(Settings { directory }))
    }
}

fn check_git_clone(spec: &Node, at: &SpecLocation<'_>, config: &Config, out: &mut Vec<Diagnostic>) {
    match spec.get("connectorRef").and_then(Node::as_str) {
        None => out.push(Diagnostic::error(at.field("connectorRef"), "a GitClone step needs `connectorRef`, a Git connector").with_help("add `connectorRef: <Git connector in lockstep.yaml>`")),
        Some(name) if name.contains("<+") => {}
        Some(name) => match config.connectors.get(name) {
            None => out.push(Diagnostic::warning(at.field("connectorRef"), format!("connector `{name}` is not in lockstep.yaml, so `lockstep run` will fail this step")).with_help(format!("add `{name}: {{ type: Git, url: … }}` under `connectors:` in lockstep.yaml"))),
            Some(c) if c.kind() != crate::config::ConnectorKind::Git => out.push(Diagnostic::error(at.field("connectorRef"), format!("connector `{name}` is a {:?} connector, not a Git one", c.kind())).with_help("point `connectorRef` at a connector with `type: Git`")),
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
            out.push(Diagnostic::error(at.field("build"), "`build.type: PR` needs a pull request from a Git provider, which local runs do not have").with_help("use `type: branch`, `tag` or `commitSha`"));
            return;
        }
        _ => {
            out.push(
                Diagnostic::error(
                    at.field("build"),
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
                at.field("build"),
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
                    at.field("build"),
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
                at.field("depth"),
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
            out.push(Diagnostic::warning(at.field(ignored), format!("`{ignored}` is ignored by Lockstep's GitClone")).with_help("the checkout is a plain clone of the reference; nothing to do unless the build depends on it"));
        }
    }
}
