//! `lockstep.yaml`: what a pipeline's names refer to on this machine.
//!
//! ```yaml
//! connectors:            # connectorRef → a real endpoint
//!   demodb: { type: Git, url: "file:///srv/git", connectionType: Account }   # + repoName
//!   app:    { type: Git, url: "https://github.com/acme/app.git", username: bot, tokenRef: gh_token }
//!   db:     { type: Kubernetes, kubeconfig: ~/.kube/config, context: staging }
//!   mongo:  { type: MongoDB, uri: "mongodb://localhost:27017", passwordRef: mongo_password }
//!   pg:     { type: Postgres, url: "postgres://postgres@127.0.0.1/app" }
//!   local:  { type: Sqlite, path: app.db }
//! secrets:               # <+secrets.getValue("id")> → where the value is read from
//!   mongo_password: { env: MONGO_PASSWORD }
//!   api_token:      { file: secrets/token }
//! dbSchemas:             # where a changelog lives
//!   DB_Orkes: { changelog: db/changelog.sql, root: . }   # FILENAME is relative to `root`
//!   Orders: { connectorRef: demodb, repoName: orders, branch: main, changelog: db/changelog.yaml }
//! dbInstances:           # a schema applied to one database
//!   mongorelease: { schema: DB_Orkes, connector: mongo, context: prod, labels: "a,b",
//!                   substituteProperties: { table_prefix: app_ } }
//!                   # MongoDB only: `adminCommands: true` lets the changelog's adminCommands
//!                   # reach the `admin` database (off by default)
//! stepTypes:             # custom step types, each a pinned component
//!   Hello:
//!     component: steps/hello.wasm
//!     sha256: 4c6f…
//!     grants: { process: false, env: { GREETING: hi }, files: [{ path: ., readOnly: true }], db: [app_db] }
//!     limits: { memory: 64Mi, log: 1Mi, outputs: 64Ki }
//! ```
//! Relative paths are relative to the directory holding `lockstep.yaml`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::capability::{FileGrant, Grants};
use crate::diag::{Diagnostic, InvalidInput, Location};
use crate::sandbox::limits::{StepLimits, parse_size};
use crate::yaml::{self, Node};

#[derive(Debug, Clone, Default)]
pub struct Config {
    /// The file it was read from, if any.
    pub path: Option<PathBuf>,
    pub connectors: BTreeMap<String, Connector>,
    pub secrets: BTreeMap<String, SecretSource>,
    pub step_types: BTreeMap<String, CustomStepType>,
    pub db_schemas: BTreeMap<String, DbSchema>,
    pub db_instances: BTreeMap<String, DbInstance>,
    /// How scripts (Run steps, custom steps granted `process`) are confined.
    pub process_policy: std::sync::Arc<crate::capability::process::ProcessPolicy>,
    /// Every secret value read from this configuration, masked wherever it shows.
    pub mask: crate::sandbox::log::SecretMask,
}

/// A changelog, and the directory its FILENAMEs are relative to.
#[derive(Debug, Clone, PartialEq)]
pub struct DbSchema {
    /// The root changelog, relative to `root` (or to the repository's root).
    pub changelog: String,
    /// The repository or workspace root: FILENAME in DATABASECHANGELOG is the changelog's path
    /// relative to it, whatever the runner's working directory.
    pub root: PathBuf,
    /// Where the changelog comes from when it lives in a Git repository instead of under `root`.
    pub git: Option<GitSchema>,
    pub location: Location,
}

/// A custom step type's `grants.kube` entry: `{ connector, namespaces, kinds, verbs }`.
#[derive(Debug, Clone, PartialEq)]
pub struct KubeGrantSpec {
    pub connector: String,
    pub namespaces: Vec<String>,
    pub kinds: Vec<String>,
    pub verbs: Vec<crate::capability::kube::Verb>,
}

/// A Git-hosted schema ready to fetch.
#[derive(Debug, Clone)]
pub struct SchemaFetch {
    pub remote: crate::capability::git::GitRemote,
    pub url: String,
    pub reference: crate::capability::git::Reference,
}

impl SchemaFetch {
    /// Clones the repository into `into` (a fresh directory). Blocking: run it off the async workers.
    pub fn fetch(&self, into: &Path) -> Result<(), String> {
        crate::capability::git::clone(&self.remote, &self.url, &self.reference, 1, into)
            .map(drop)
            .map_err(|e| self.failed(e))
    }

    /// Clones the repository into `directory` of a stage workspace, the way GitClone does (no
    /// symlink a step left there is followed). Blocking.
    pub fn fetch_into_workspace(&self, workspace: &Path, directory: &Path) -> Result<(), String> {
        crate::capability::git::clone_into_workspace(
            &self.remote,
            &self.url,
            &self.reference,
            1,
            workspace,
            &directory.to_string_lossy(),
        )
        .map(drop)
        .map_err(|e| self.failed(e))
    }

    fn failed(&self, error: crate::sandbox::bindings::WitError) -> String {
        format!(
            "fetching the schema from {}: {}",
            self.url,
            crate::sandbox::describe_wit_error(&error)
        )
    }
}

/// A changelog in a Git repository, fetched when a DB step or `lockstep db` needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct GitSchema {
    pub connector: String,
    pub repo_name: Option<String>,
    pub reference: crate::capability::git::Reference,
}

/// One database a schema is applied to.
#[derive(Debug, Clone, PartialEq)]
pub struct DbInstance {
    pub schema: String,
    pub connector: String,
    /// Overrides the database named by the connector.
    pub database: Option<String>,
    pub context: Option<String>,
    pub labels: Option<String>,
    pub substitute_properties: BTreeMap<String, String>,
    /// MongoDB: whether changelogs may run `adminCommand`s (against the `admin` database).
    pub admin_commands: bool,
    /// PostgreSQL: whether steps may connect as a superuser (who can run host programs and read
    /// server files); off by default.
    pub allow_superuser: bool,
    pub location: Location,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Connector {
    pub spec: ConnectorSpec,
    pub location: Location,
}

/// Where a connector points, by type. Relative paths are already resolved against lockstep.yaml.
#[derive(Debug, Clone, PartialEq)]
pub enum ConnectorSpec {
    Git {
        /// `file://…` or `https://…`; with `account`, the prefix of the repositories.
        url: String,
        account: bool,
        username: Option<String>,
        token_ref: Option<String>,
    },
    Kubernetes {
        cluster: crate::capability::kube::KubeCluster,
        /// Namespaces pipelines may use this connector for (`*`: any); none listed means the
        /// kubeconfig context's namespace only.
        namespaces: Option<Vec<String>>,
        /// Kinds the built-in K8s steps and Run steps may touch (`*` by default; see the grant).
        kinds: Vec<String>,
    },
    MongoDB {
        uri: String,
        password_ref: Option<String>,
    },
    Postgres {
        url: String,
        password_ref: Option<String>,
    },
    Sqlite {
        path: PathBuf,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectorKind {
    Git,
    Kubernetes,
    MongoDB,
    Postgres,
    Sqlite,
}

impl Connector {
    pub fn kind(&self) -> ConnectorKind {
        match self.spec {
            ConnectorSpec::Git { .. } => ConnectorKind::Git,
            ConnectorSpec::Kubernetes { .. } => ConnectorKind::Kubernetes,
            ConnectorSpec::MongoDB { .. } => ConnectorKind::MongoDB,
            ConnectorSpec::Postgres { .. } => ConnectorKind::Postgres,
            ConnectorSpec::Sqlite { .. } => ConnectorKind::Sqlite,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    Env(String),
    File(PathBuf),
}

#[derive(Debug, Clone)]
pub struct CustomStepType {
    pub component: PathBuf,
    pub sha256: String,
    /// Its file and environment grants; the rest is resolved when a step runs.
    pub grants: Grants,
    /// `grants.process: true`: its scripts run under `processSandbox`.
    pub process: bool,
    /// `dbInstances` it may open; resolved to grants when a step runs.
    pub db_instances: Vec<String>,
    /// Git connectors it may clone from; resolved to grants when a step runs.
    pub git_connectors: Vec<String>,
    /// What it may do on which clusters; the cluster is resolved when a step runs.
    pub kube: Vec<KubeGrantSpec>,
    pub limits: StepLimits,
    pub location: Location,
}

/// The environment variable that names the operator's lockstep.yaml.
pub const CONFIG_VARIABLE: &str = "LOCKSTEP_CONFIG";

/// Where the operator's lockstep.yaml comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigSource {
    /// `--config PATH`.
    Flag(PathBuf),
    /// `$LOCKSTEP_CONFIG`.
    Variable(PathBuf),
    /// `$XDG_CONFIG_HOME/lockstep/lockstep.yaml` (else `~/.config/lockstep/lockstep.yaml`), if present.
    UserConfigDir(PathBuf),
    /// None: nothing is granted beyond the built-in defaults.
    None,
}

impl ConfigSource {
    /// The operator's choice: `--config`, else the environment variable, else the user's config
    /// directory. A lockstep.yaml in a repository (next to the pipeline, in the working
    /// directory) is never read unless the operator points at it: repository content could grant
    /// itself anything.
    pub fn find(flag: Option<&Path>) -> ConfigSource {
        if let Some(path) = flag {
            return ConfigSource::Flag(path.to_path_buf());
        }
        if let Some(path) = std::env::var_os(CONFIG_VARIABLE).filter(|p| !p.is_empty()) {
            return ConfigSource::Variable(PathBuf::from(path));
        }
        let dir = std::env::var_os("XDG_CONFIG_HOME")
            .filter(|p| !p.is_empty())
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")));
        match dir.map(|d| d.join("lockstep").join("lockstep.yaml")) {
            Some(path) if path.is_file() => ConfigSource::UserConfigDir(path),
            _ => ConfigSource::None,
        }
    }

    pub fn path(&self) -> Option<&Path> {
        match self {
            ConfigSource::Flag(p) | ConfigSource::Variable(p) | ConfigSource::UserConfigDir(p) => {
                Some(p)
            }
            ConfigSource::None => None,
        }
    }

    /// Reads the configuration; a file the operator named must exist.
    pub fn load(&self) -> anyhow::Result<Config> {
        match self.path() {
            Some(path) => Config::load(path, true),
            None => Ok(Config::default()),
        }
    }
}

impl Config {
    /// Reads `path`; a missing file is an error only when `required`.
    pub fn load(path: &Path, required: bool) -> anyhow::Result<Config> {
        match std::fs::read_to_string(path) {
            Ok(source) => Ok(Config::parse(path, &source)?),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => {
                Ok(Config::default())
            }
            Err(e) => anyhow::bail!("cannot read {}: {e}", path.display()),
        }
    }

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
                "processSandbox" => config.process_policy = std::sync::Arc::new(crate::capability::process::ProcessPolicy::from_yaml(value, base, &loc, &mut errors)),
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
                Some(ConnectorKind::Postgres | ConnectorKind::Sqlite | ConnectorKind::MongoDB) => {}
                Some(kind) => errors.push(Diagnostic::error(instance.location.clone(), format!("db instance `{id}` uses connector `{}`, a {kind:?} connector", instance.connector)).with_help("a db instance needs a Postgres, Sqlite or MongoDB connector")),
                None => errors.push(Diagnostic::error(instance.location.clone(), format!("db instance `{id}` names connector `{}`, which is not under `connectors`", instance.connector)).with_help("add it under `connectors:`")),
            }
        }
    }

    /// The schema's Git source, resolved: the remote (with its token), the repository URL and the
    /// reference. `None` for a schema whose changelog is under its `root`.
    pub fn schema_fetch(&self, schema: &str) -> Result<Option<SchemaFetch>, String> {
        let Some(git) = self.db_schemas.get(schema).and_then(|s| s.git.as_ref()) else {
            return Ok(None);
        };
        let remote = self
            .git_remote(&git.connector)
            .map_err(|e| format!("db schema `{schema}`: {e}"))?;
        let url = remote
            .repository_url(git.repo_name.as_deref())
            .map_err(|e| format!("db schema `{schema}`: connector `{}`: {e}", git.connector))?;
        Ok(Some(SchemaFetch {
            remote,
            url,
            reference: git.reference.clone(),
        }))
    }

    /// Where the database of `instance` is, with its password filled in from its secret.
    pub fn db_target(&self, instance: &str) -> Result<crate::capability::db::DbTarget, String> {
        use crate::capability::db::DbTarget;
        let db = self
            .db_instances
            .get(instance)
            .ok_or_else(|| format!("db instance `{instance}` is not defined in lockstep.yaml"))?;
        let connector = &self.connectors[&db.connector];
        match &connector.spec {
            ConnectorSpec::Postgres { url, password_ref } => {
                let mut config: tokio_postgres::Config = url.parse().map_err(|e| {
                    format!(
                        "connector `{}`: `url` is not a PostgreSQL URL: {e}",
                        db.connector
                    )
                })?;
                if let Some(database) = &db.database {
                    config.dbname(database);
                }
                if let Some(secret) = password_ref {
                    config.password(self.secret(secret)?);
                }
                Ok(DbTarget::Postgres {
                    config: Box::new(config),
                    allow_superuser: db.allow_superuser,
                })
            }
            ConnectorSpec::Sqlite { path } => Ok(DbTarget::Sqlite { path: path.clone() }),
            ConnectorSpec::MongoDB { uri, password_ref } => {
                // The instance's `database`, else the one the URI names (`mongodb://host/app`).
                let from_uri = uri
                    .split_once("://")
                    .and_then(|(_, rest)| rest.split_once('/'))
                    .map(|(_, path)| path.split('?').next().unwrap_or_default().to_string())
                    .filter(|d| !d.is_empty());
                let database = db.database.clone().or(from_uri).ok_or_else(|| format!("db instance `{instance}`: say which MongoDB database, with `database:` on the instance or in the connector's `uri`"))?;
                let password = password_ref
                    .as_ref()
                    .map(|secret| self.secret(secret))
                    .transpose()?;
                Ok(DbTarget::Mongo {
                    uri: uri.clone(),
                    database,
                    password,
                    admin_commands: db.admin_commands,
                })
            }
            _ => Err(format!(
                "db instance `{instance}` uses a {:?} connector, not a database one",
                connector.kind()
            )),
        }
    }

    /// The directory relative paths in this file are relative to (absolute).
    pub fn base(&self) -> PathBuf {
        let parent = self
            .path
            .as_deref()
            .and_then(Path::parent)
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        std::path::absolute(parent).unwrap_or_else(|_| parent.to_path_buf())
    }

    fn connector(&self, name: &str, kind: ConnectorKind) -> Result<&ConnectorSpec, String> {
        let connector = self.connectors.get(name).ok_or_else(|| {
            format!(
                "connector `{name}` is not defined; add it under `connectors:` in lockstep.yaml"
            )
        })?;
        if connector.kind() != kind {
            return Err(format!(
                "connector `{name}` is a {:?} connector, not a {kind:?} one",
                connector.kind()
            ));
        }
        Ok(&connector.spec)
    }

    /// The Kubernetes connector `name`: its kubeconfig and context, or the in-cluster configuration.
    pub fn kube_cluster(&self, name: &str) -> Result<crate::capability::kube::KubeCluster, String> {
        match self.connector(name, ConnectorKind::Kubernetes)? {
            ConnectorSpec::Kubernetes { cluster, .. } => Ok(cluster.clone()),
            _ => unreachable!("checked to be a Kubernetes connector"),
        }
    }

    /// What a Kubernetes step group may do on its cluster, for its K8s steps (`verbs`) and Run
    /// steps: the group's namespace, else the kubeconfig context's, only if the operator allows
    /// it for the connector (`namespaces:`; by default the context's namespace alone), with the
    /// operator's `kinds:`. Returns the grant and the namespace.
    pub fn kube_group_grant(
        &self,
        connector: &str,
        namespace: Option<&str>,
        verbs: Vec<crate::capability::kube::Verb>,
    ) -> Result<(crate::capability::kube::KubeGrant, String), Refusal> {
        let ConnectorSpec::Kubernetes {
            cluster,
            namespaces,
            kinds,
        } = self.connector(connector, ConnectorKind::Kubernetes)?
        else {
            unreachable!("checked to be a Kubernetes connector")
        };
        let context_namespace = cluster
            .default_namespace()
            .map_err(|e| Refusal::Configuration(format!("connector `{connector}`: {e}")))?;
        let namespace = namespace.map_or_else(|| context_namespace.clone(), str::to_string);
        let allowed = namespaces
            .clone()
            .unwrap_or_else(|| vec![context_namespace]);
        if !allowed.iter().any(|n| n == "*" || *n == namespace) {
            return Err(Refusal::Denied(format!(
                "the step group's namespace `{namespace}` is not allowed for connector `{connector}` (allowed: {}); the operator allows namespaces with `connectors.{connector}.namespaces` in lockstep.yaml",
                allowed.join(", ")
            )));
        }
        let grant = crate::capability::kube::KubeGrant {
            connector: connector.to_string(),
            cluster: cluster.clone(),
            namespaces: vec![namespace.clone()],
            kinds: kinds.clone(),
            verbs,
        };
        Ok((grant, namespace))
    }

    /// The Git connector `name`, with its token read from its secret.
    pub fn git_remote(&self, name: &str) -> Result<crate::capability::git::GitRemote, String> {
        let ConnectorSpec::Git {
            url,
            account,
            username,
            token_ref,
        } = self.connector(name, ConnectorKind::Git)?
        else {
            unreachable!("checked to be a Git connector")
        };
        Ok(crate::capability::git::GitRemote {
            url: url.clone(),
            account: *account,
            username: username.clone(),
            token: token_ref
                .as_ref()
                .map(|secret| self.secret(secret))
                .transpose()?,
        })
    }

    /// Reads a secret's value and adds it to the run's mask, so that it is masked wherever it
    /// shows (logs, summaries, errors, outputs, the report). The error says which secret and how
    /// to provide it.
    pub fn secret(&self, id: &str) -> Result<String, String> {
        let value = match self.secrets.get(id) {
            None => Err(format!(
                "secret `{id}` is not defined; add `{id}: {{ env: VARIABLE }}` under `secrets:` in lockstep.yaml"
            )),
            Some(SecretSource::Env(var)) => std::env::var(var).map_err(|_| {
                format!("secret `{id}` reads environment variable {var}, which is not set")
            }),
            Some(SecretSource::File(path)) => std::fs::read_to_string(path)
                .map(|s| s.trim_end_matches(['\n', '\r']).to_string())
                .map_err(|e| format!("secret `{id}` reads {}: {e}", path.display())),
        }?;
        self.mask.add(&value);
        Ok(value)
    }
}

/// Why lockstep.yaml cannot give a step what it needs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// Something is missing or wrong in lockstep.yaml (a connector, a secret, …).
    #[error("{0}")]
    Configuration(String),
    /// The operator's configuration does not allow what the pipeline asks for.
    #[error("{0}")]
    Denied(String),
}

impl From<String> for Refusal {
    fn from(message: String) -> Self {
        Refusal::Configuration(message)
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
    use crate::capability::git::Reference;
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
        Some(kind @ ("Git" | "Kubernetes" | "MongoDB" | "Postgres" | "Sqlite")) => kind,
        other => {
            errors.push(
                Diagnostic::error(
                    at("type"),
                    format!(
                        "connector type {} is not known",
                        other.map_or("(missing)".to_string(), |t| format!("`{t}`"))
                    ),
                )
                .with_help("use Git, Kubernetes, MongoDB, Postgres or Sqlite"),
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
            use crate::capability::kube::KubeCluster;
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
    let mut grants = Grants::default();
    let mut process = false;
    let mut db_instances = vec![];
    let mut git_connectors = vec![];
    let mut kube = vec![];
    if let Some(g) = node.get("grants") {
        git_connectors = g
            .get("git")
            .and_then(Node::as_seq)
            .unwrap_or_default()
            .iter()
            .filter_map(|n| n.as_str().map(str::to_string))
            .collect();
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
            let verbs: Vec<Option<crate::capability::kube::Verb>> = list("verbs")
                .iter()
                .map(|v| crate::capability::kube::Verb::parse(v))
                .collect();
            match k.get("connector").and_then(Node::as_str) {
                Some(connector) if !list("namespaces").is_empty() && !list("kinds").is_empty() && !verbs.is_empty() && verbs.iter().all(Option::is_some) => {
                    kube.push(KubeGrantSpec { connector: connector.to_string(), namespaces: list("namespaces"), kinds: list("kinds"), verbs: verbs.into_iter().flatten().collect() });
                }
                _ => errors.push(Diagnostic::error(at, "a kube grant needs `connector`, and non-empty `namespaces`, `kinds` and `verbs` (get, list, apply, delete)").with_help("write e.g. `kube: [{ connector: staging, namespaces: [shop], kinds: [Deployment, ConfigMap], verbs: [get, apply] }]` (`*` for any namespace or any kind but Secret)")),
            }
        }
        process = g.get("process").and_then(Node::as_str) == Some("true");
        db_instances = g
            .get("db")
            .and_then(Node::as_seq)
            .unwrap_or_default()
            .iter()
            .filter_map(|n| n.as_str().map(str::to_string))
            .collect();
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
                    grants.files.push(FileGrant {
                        host_path: PathBuf::from(p),
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
    }
    let mut limits = StepLimits::third_party();
    if let Some(l) = node.get("limits") {
        for (key, field) in [
            ("memory", &mut limits.memory_bytes),
            ("log", &mut limits.log_bytes),
            ("outputs", &mut limits.outputs_bytes),
        ] {
            if let Some(v) = l.get(key) {
                match v.as_str().and_then(parse_size) {
                    Some(bytes)
                        if key != "memory" || bytes <= crate::sandbox::limits::MAX_MEMORY_BYTES =>
                    {
                        *field = bytes
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
        process,
        db_instances,
        git_connectors,
        kube,
        limits,
        location: loc(node, path),
    })
}
