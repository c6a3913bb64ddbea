//! Reading lockstep.yaml into a [`Config`]: every mistake is a diagnostic with its file, line
//! and YAML path, all reported at once.

use std::path::{Path, PathBuf};

use super::*;
use crate::diag::{Diagnostic, InvalidInput, Location};
use crate::yaml::{self, Node};

impl Config {
    pub fn parse(path: &Path, source: &str) -> Result<Config, InvalidInput> {
        let doc = yaml::parse(path, source).map_err(|d| InvalidInput(vec![d]))?;
        // Paths in the file are relative to it; made absolute once, so nothing later depends on
        // the working directory (preopens, SQLite files, component paths).
        let parent = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let base = &std::path::absolute(parent).unwrap_or_else(|_| parent.to_path_buf());
        let mut errors = vec![];
        let mut config = Config {
            path: Some(path.to_path_buf()),
            ..Config::default()
        };
        let Some(root) = doc.roots.first().filter(|r| !r.is_null()) else {
            return Ok(config);
        };
        let loc = |node: &Node, yaml_path: &str| doc.location(node.pos, yaml_path);
        let Some(entries) = root.as_map() else {
            return Err(InvalidInput(vec![
                Diagnostic::error(loc(root, ""), "lockstep.yaml must be a map")
                    .with_help("its keys are connectors, secrets and stepTypes"),
            ]));
        };
        for (key, value) in entries {
            match key.as_str().unwrap_or_default() {
                "connectors" => for_each_entry(value, "connectors", &loc, &mut errors, |id, node, path, errors| {
                    if let Some(c) = connector(node, path, base, &loc, errors) {
                        config.connectors.insert(id.to_string(), c);
                    }
                }),
                "secrets" => for_each_entry(value, "secrets", &loc, &mut errors, |id, node, path, errors| {
                    match (node.get("env").and_then(Node::as_str), node.get("file").and_then(Node::as_str)) {
                        (Some(var), None) => {
                            config.secrets.insert(id.to_string(), SecretSource::Env(var.to_string()));
                        }
                        (None, Some(file)) => {
                            config.secrets.insert(id.to_string(), SecretSource::File(base.join(file)));
                        }
                        _ => errors.push(Diagnostic::error(loc(node, path), format!("secret `{id}` needs exactly one of `env` or `file`")).with_help(format!("write `{id}: {{ env: VARIABLE }}` or `{id}: {{ file: path }}`"))),
                    }
                }),
                "dbSchemas" => for_each_entry(value, "dbSchemas", &loc, &mut errors, |id, node, path, errors| {
                    let changelog = node.get("changelog").and_then(Node::as_str);
                    let root = node.get("root").and_then(Node::as_str).unwrap_or(".");
                    let git = git_schema(node, path, &loc, errors);
                    match changelog {
                        Some(changelog) if !Path::new(changelog).is_absolute() => {
                            let schema = DbSchema { changelog: changelog.to_string(), root: base.join(root), git, location: loc(node, path) };
                            config.db_schemas.insert(id.to_string(), schema);
                        }
                        _ => errors.push(Diagnostic::error(loc(node, path), format!("db schema `{id}` needs `changelog`, a path relative to its `root`")).with_help("write e.g. `changelog: db/changelog.sql` (and `root: .`, the directory FILENAME is relative to)")),
                    }
                }),
                "dbInstances" => for_each_entry(value, "dbInstances", &loc, &mut errors, |id, node, path, errors| {
                    let text = |key: &str| node.get(key).and_then(Node::as_str).map(str::to_string);
                    let (Some(schema), Some(connector)) = (text("schema"), text("connector")) else {
                        errors.push(Diagnostic::error(loc(node, path), format!("db instance `{id}` needs `schema` and `connector`")).with_help("write e.g. `{ schema: app, connector: pg }`"));
                        return;
                    };
                    let substitute_properties = node.get("substituteProperties").and_then(Node::as_map).unwrap_or_default().iter().filter_map(|(k, v)| Some((k.as_str()?.to_string(), v.as_str()?.to_string()))).collect();
                    let admin_commands = text("adminCommands").as_deref() == Some("true");
                    let allow_superuser = text("allowSuperuser").as_deref() == Some("true");
                    let instance = DbInstance { schema, connector, database: text("database"), context: text("context"), labels: text("labels"), substitute_properties, admin_commands, allow_superuser, location: loc(node, path) };
                    config.db_instances.insert(id.to_string(), instance);
                }),
                "processSandbox" => config.process_policy = std::sync::Arc::new(ProcessPolicy::from_yaml(value, base, &loc, &mut errors)),
                "stepTypes" => for_each_entry(value, "stepTypes", &loc, &mut errors, |id, node, path, errors| {
                    if let Some(t) = step_type(node, path, base, &loc, errors) {
                        config.step_types.insert(id.to_string(), t);
                    }
                }),
                other => errors.push(Diagnostic::error(loc(key, other), format!("unknown key `{other}` in lockstep.yaml")).with_help("its keys are connectors, secrets, dbSchemas, dbInstances, stepTypes and processSandbox")),
            }
        }
        config.check_db_references(&mut errors);
        if errors.is_empty() {
            Ok(config)
        } else {
            Err(InvalidInput(errors))
        }
    }

    /// Every instance names a schema and a database connector that exist.
    fn check_db_references(&self, errors: &mut Vec<Diagnostic>) {
        for (id, schema) in &self.db_schemas {
            let Some(git) = &schema.git else { continue };
            match self.connectors.get(&git.connector).map(Connector::kind) {
                Some(ConnectorKind::Git) => {}
                Some(kind) => errors.push(Diagnostic::error(schema.location.clone(), format!("db schema `{id}` names connector `{}`, a {kind:?} connector", git.connector)).with_help("a schema's `connectorRef` is a Git connector")),
                None => errors.push(Diagnostic::error(schema.location.clone(), format!("db schema `{id}` names connector `{}`, which is not under `connectors`", git.connector)).with_help("add it under `connectors:` with `type: Git`")),
            }
        }
        for (id, instance) in &self.db_instances {
            if !self.db_schemas.contains_key(&instance.schema) {
                let known: Vec<&str> = self.db_schemas.keys().map(String::as_str).collect();
                errors.push(
                    Diagnostic::error(
                        instance.location.clone(),
                        format!(
                            "db instance `{id}` names schema `{}`, which is not under `dbSchemas`",
                            instance.schema
                        ),
                    )
                    .with_help(format!(
                        "known schemas: {}",
                        if known.is_empty() {
                            "none".to_string()
                        } else {
                            known.join(", ")
                        }
                    )),
                );
            }
            match self.connectors.get(&instance.connector).map(Connector::kind) {
                Some(
                    ConnectorKind::Postgres
                    | ConnectorKind::Mysql
                    | ConnectorKind::Sqlite
                    | ConnectorKind::MongoDB,
                ) => {}
                Some(kind) => errors.push(Diagnostic::error(instance.location.clone(), format!("db instance `{id}` uses connector `{}`, a {kind:?} connector", instance.connector)).with_help("a db instance needs a Postgres, MySql, Sqlite or MongoDB connector")),
                None => errors.push(Diagnostic::error(instance.location.clone(), format!("db instance `{id}` names connector `{}`, which is not under `connectors`", instance.connector)).with_help("add it under `connectors:`")),
            }
        }
    }
}

type Loc<'a> = dyn Fn(&Node, &str) -> Location + 'a;

fn for_each_entry(
    value: &Node,
    section: &str,
    loc: &Loc<'_>,
    errors: &mut Vec<Diagnostic>,
    mut f: impl FnMut(&str, &Node, &str, &mut Vec<Diagnostic>),
) {
    if value.is_null() {
        return;
    }
    let Some(entries) = value.as_map() else {
        errors.push(
            Diagnostic::error(
                loc(value, section),
                format!("`{section}` must be a map of id → settings"),
            )
            .with_help(format!(
                "write `{section}:` then one `id: {{...}}` per line"
            )),
        );
        return;
    };
    for (key, node) in entries {
        let id = key.as_str().unwrap_or_default();
        let path = format!("{section}.{id}");
        if node.as_map().is_none() {
            errors.push(
                Diagnostic::error(
                    loc(node, &path),
                    format!("`{id}` must be a map of settings"),
                )
                .with_help("write its settings as `key: value` lines under it"),
            );
            continue;
        }
        f(id, node, &path, errors);
    }
}

/// A schema's Git source: `connectorRef`, optional `repoName`, and one of `branch`, `tag` or
/// `commitSha`. `None` when the schema names no `connectorRef` (its changelog is under `root`).
fn git_schema(
    node: &Node,
    path: &str,
    loc: &Loc<'_>,
    errors: &mut Vec<Diagnostic>,
) -> Option<GitSchema> {
    let connector = node.get("connectorRef").and_then(Node::as_str)?.to_string();
    let text = |key: &str| node.get(key).and_then(Node::as_str).map(str::to_string);
    let references: Vec<Reference> = [
        text("branch").map(Reference::Branch),
        text("tag").map(Reference::Tag),
        text("commitSha").map(Reference::CommitSha),
    ]
    .into_iter()
    .flatten()
    .collect();
    let [reference] = <[Reference; 1]>::try_from(references).map_err(|_| errors.push(Diagnostic::error(loc(node, path), "a schema in a Git repository needs exactly one of `branch`, `tag` or `commitSha`").with_help("write e.g. `branch: main`"))).ok()?;
    Some(GitSchema {
        connector,
        repo_name: text("repoName"),
        reference,
    })
}

fn connector(
    node: &Node,
    path: &str,
    base: &Path,
    loc: &Loc<'_>,
    errors: &mut Vec<Diagnostic>,
) -> Option<Connector> {
    let text = |key: &str| node.get(key).and_then(Node::as_str).map(str::to_string);
    let list = |key: &str| {
        node.get(key).map(|n| {
            n.as_seq()
                .unwrap_or_default()
                .iter()
                .filter_map(|i| i.as_str().map(str::to_string))
                .collect::<Vec<String>>()
        })
    };
    let at = |key: &str| loc(node.get(key).unwrap_or(node), &format!("{path}.{key}"));
    let kind = match node.get("type").and_then(Node::as_str) {
        Some(kind @ ("Git" | "Kubernetes" | "MongoDB" | "Postgres" | "MySql" | "Sqlite")) => kind,
        other => {
            errors.push(
                Diagnostic::error(
                    at("type"),
                    format!(
                        "connector type {} is not known",
                        other.map_or("(missing)".to_string(), |t| format!("`{t}`"))
                    ),
                )
                .with_help("use Git, Kubernetes, MongoDB, Postgres, MySql or Sqlite"),
            );
            return None;
        }
    };
    // The field that says where the endpoint is; a connector without it points nowhere.
    let required = |key: &str, example: &str, errors: &mut Vec<Diagnostic>| {
        let value = text(key);
        if value.is_none() {
            errors.push(
                Diagnostic::error(
                    loc(node, path),
                    format!("this {kind} connector does not say where it points: it needs `{key}`"),
                )
                .with_help(format!("add `{example}`")),
            );
        }
        value
    };
    let spec = match kind {
        "Git" => {
            let url = required("url", "url: https://github.com/acme/app.git", errors)?;
            if !(url.starts_with("file://") || url.starts_with("https://")) {
                errors.push(Diagnostic::error(at("url"), format!("Git URL `{url}` is neither file:// nor https://")).with_help("write `url: https://github.com/acme/app.git` or `url: file:///srv/git/app`"));
                return None;
            }
            let account = match text("connectionType").as_deref() {
                None | Some("Repo") => false,
                Some("Account") => true,
                Some(other) => {
                    errors.push(Diagnostic::error(at("connectionType"), format!("connectionType `{other}` is neither Account nor Repo")).with_help("`Repo` (the default): `url` is one repository; `Account`: `url` is a prefix and steps name a `repoName` under it"));
                    return None;
                }
            };
            ConnectorSpec::Git {
                url,
                account,
                username: text("username"),
                token_ref: text("tokenRef"),
            }
        }
        "Kubernetes" => {
            let cluster = match (text("kubeconfig"), text("inCluster").as_deref()) {
                (_, Some("true")) => KubeCluster::InCluster,
                (Some(file), _) => {
                    let file = match file.strip_prefix("~/") {
                        Some(rest) => {
                            PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(rest)
                        }
                        None => base.join(file),
                    };
                    KubeCluster::Kubeconfig {
                        path: file,
                        context: text("context"),
                    }
                }
                (None, _) => {
                    errors.push(Diagnostic::error(loc(node, path), "this Kubernetes connector does not say where it points: it needs `kubeconfig` or `inCluster: true`").with_help("add `kubeconfig: ~/.kube/config` (and `context:`)"));
                    return None;
                }
            };
            let namespaces = list("namespaces");
            if namespaces.as_ref().is_some_and(Vec::is_empty) {
                errors.push(Diagnostic::error(at("namespaces"), "`namespaces` must list the namespaces pipelines may deploy to with this connector").with_help("write e.g. `namespaces: [shop, staging]` (`*` for any)"));
            }
            let kinds = list("kinds").unwrap_or_else(|| vec!["*".into()]);
            ConnectorSpec::Kubernetes {
                cluster,
                namespaces,
                kinds,
            }
        }
        "MongoDB" => ConnectorSpec::MongoDB {
            uri: required("uri", "uri: mongodb://localhost:27017/app", errors)?,
            password_ref: text("passwordRef"),
        },
        "Postgres" => ConnectorSpec::Postgres {
            url: required("url", "url: postgres://app@127.0.0.1/app", errors)?,
            password_ref: text("passwordRef"),
        },
        "MySql" => ConnectorSpec::Mysql {
            url: required("url", "url: mysql://app@127.0.0.1:3306/app", errors)?,
            password_ref: text("passwordRef"),
        },
        _ => ConnectorSpec::Sqlite {
            path: base.join(required("path", "path: app.db", errors)?),
        },
    };
    Some(Connector {
        spec,
        location: loc(node, path),
    })
}

fn step_type(
    node: &Node,
    path: &str,
    base: &Path,
    loc: &Loc<'_>,
    errors: &mut Vec<Diagnostic>,
) -> Option<CustomStepType> {
    let before = errors.len();
    let component = node.get("component").and_then(Node::as_str);
    let sha256 = node.get("sha256").and_then(Node::as_str);
    if component.is_none() {
        errors.push(
            Diagnostic::error(
                loc(node, &format!("{path}.component")),
                "a step type needs `component: path/to/step.wasm`",
            )
            .with_help("build the step for wasm32-wasip2 and point at the .wasm file"),
        );
    }
    match sha256 {
        Some(d) if d.len() == 64 && d.chars().all(|c| c.is_ascii_hexdigit()) => {}
        _ => errors.push(Diagnostic::error(loc(node.get("sha256").unwrap_or(node), &format!("{path}.sha256")), "third-party steps must be pinned: `sha256` must be the component's 64-hex-digit digest").with_help("compute it with `sha256sum step.wasm`")),
    }
    let grants = node
        .get("grants")
        .map(|g| step_type_grants(g, path, loc, errors))
        .unwrap_or_default();
    let mut limits = StepTypeLimits::default();
    if let Some(l) = node.get("limits") {
        for (key, field) in [
            ("memory", &mut limits.memory_bytes),
            ("log", &mut limits.log_bytes),
            ("outputs", &mut limits.outputs_bytes),
        ] {
            if let Some(v) = l.get(key) {
                match v.as_str().and_then(parse_size) {
                    Some(bytes) if key != "memory" || bytes <= MAX_STEP_MEMORY_BYTES => {
                        *field = Some(bytes)
                    }
                    _ => errors.push(
                        Diagnostic::error(
                            loc(v, &format!("{path}.limits.{key}")),
                            format!("`{key}` must be a size such as 64Mi, at most 1Gi for memory"),
                        )
                        .with_help("use the suffixes Ki, Mi or Gi"),
                    ),
                }
            }
        }
    }
    if errors.len() > before {
        return None;
    }
    Some(CustomStepType {
        component: base.join(component?),
        sha256: sha256?.to_lowercase(),
        grants,
        limits,
        settings: node.get("settings").map(Node::to_json),
        location: loc(node, path),
    })
}

fn step_type_grants(
    g: &Node,
    path: &str,
    loc: &Loc<'_>,
    errors: &mut Vec<Diagnostic>,
) -> StepTypeGrants {
    let names = |key: &str| -> Vec<String> {
        g.get(key)
            .and_then(Node::as_seq)
            .unwrap_or_default()
            .iter()
            .filter_map(|n| n.as_str().map(str::to_string))
            .collect()
    };
    let mut grants = StepTypeGrants {
        process: g.get("process").and_then(Node::as_str) == Some("true"),
        db: names("db"),
        git: names("git"),
        ..StepTypeGrants::default()
    };
    for (i, k) in g
        .get("kube")
        .and_then(Node::as_seq)
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        let at = loc(k, &format!("{path}.grants.kube[{i}]"));
        let list = |key: &str| {
            k.get(key)
                .and_then(Node::as_seq)
                .unwrap_or_default()
                .iter()
                .filter_map(|n| n.as_str().map(str::to_string))
                .collect::<Vec<String>>()
        };
        let verbs: Vec<Option<Verb>> = list("verbs").iter().map(|v| Verb::parse(v)).collect();
        match k.get("connector").and_then(Node::as_str) {
            Some(connector) if !list("namespaces").is_empty() && !list("kinds").is_empty() && !verbs.is_empty() && verbs.iter().all(Option::is_some) => {
                grants.kube.push(KubeGrantSpec { connector: connector.to_string(), namespaces: list("namespaces"), kinds: list("kinds"), verbs: verbs.into_iter().flatten().collect() });
            }
            _ => errors.push(Diagnostic::error(at, "a kube grant needs `connector`, and non-empty `namespaces`, `kinds` and `verbs` (get, list, apply, delete)").with_help("write e.g. `kube: [{ connector: staging, namespaces: [shop], kinds: [Deployment, ConfigMap], verbs: [get, apply] }]` (`*` for any namespace or any kind but Secrets and RBAC kinds)")),
        }
    }
    if let Some(env) = g.get("env").and_then(Node::as_map) {
        grants.env = env
            .iter()
            .filter_map(|(k, v)| Some((k.as_str()?.to_string(), v.as_str()?.to_string())))
            .collect();
    }
    for (i, f) in g
        .get("files")
        .and_then(Node::as_seq)
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        match f.get("path").and_then(Node::as_str) {
            Some(p) if !Path::new(p).is_absolute() && !p.split('/').any(|s| s == "..") => {
                grants.files.push(FileGrantSpec {
                    path: PathBuf::from(p),
                    guest_path: f
                        .get("guestPath")
                        .and_then(Node::as_str)
                        .unwrap_or("/workspace")
                        .to_string(),
                    read_only: f.get("readOnly").and_then(Node::as_str) != Some("false"),
                })
            }
            _ => errors.push(
                Diagnostic::error(
                    loc(f, &format!("{path}.grants.files[{i}]")),
                    "a file grant needs a `path` inside the stage workspace",
                )
                .with_help("use a relative path without `..`, e.g. `path: .`"),
            ),
        }
    }
    grants
}

/// Parses a size such as `128Mi`, `1Gi`, `64Ki`, `512M` or a plain byte count.
pub(super) fn parse_size(text: &str) -> Option<usize> {
    let text = text.trim();
    let digits = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let amount: usize = text[..digits].parse().ok()?;
    let unit = match &text[digits..] {
        "" => 1,
        "Ki" => 1 << 10,
        "Mi" => 1 << 20,
        "Gi" => 1 << 30,
        "K" | "k" => 1_000,
        "M" => 1_000_000,
        "G" => 1_000_000_000,
        _ => return None,
    };
    amount.checked_mul(unit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_use_kubernetes_suffixes() {
        assert_eq!(parse_size("128Mi"), Some(128 << 20));
        assert_eq!(parse_size("1Gi"), Some(1 << 30));
        assert_eq!(parse_size("1000"), Some(1000));
        assert_eq!(parse_size("2M"), Some(2_000_000));
        assert_eq!(parse_size("1.5Gi"), None);
        assert_eq!(parse_size("12XB"), None);
    }
}
