//! `lockstep.yaml`, the operator's configuration: what a pipeline's names refer to on this
//! machine, and what steps may be granted. This module only reads it ([`parse`]) into typed
//! values; turning names into endpoints and grants is each capability's job (`resolve` there).
//!
//! ```yaml
//! connectors:            # connectorRef → a real endpoint
//!   demodb: { type: Git, url: "file:///srv/git", connectionType: Account }   # + repoName
//!   app:    { type: Git, url: "https://github.com/acme/app.git", username: bot, tokenRef: gh_token }
//!   db:     { type: Kubernetes, kubeconfig: ~/.kube/config, context: staging, namespaces: [shop] }
//!   mongo:  { type: MongoDB, uri: "mongodb://localhost:27017", passwordRef: mongo_password }
//!   pg:     { type: Postgres, url: "postgres://app@127.0.0.1/app" }
//!   maria:  { type: MySql, url: "mysql://app@127.0.0.1:3306/app", passwordRef: db_password }
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
//! processSandbox: { network: none }   # see process_sandbox
//! ```
//! Relative paths are relative to the directory holding `lockstep.yaml`.

mod parse;
mod process_sandbox;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::diag::Location;
use crate::log::SecretMask;
pub use process_sandbox::{Confinement, HostPath, Network, ProcessLimits, ProcessPolicy};

/// The largest memory a step type may be given (the sandbox reserves this per instance slot).
pub const MAX_STEP_MEMORY_BYTES: usize = 1 << 30;

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
    pub process_policy: std::sync::Arc<ProcessPolicy>,
    /// Every secret value read from this configuration, masked wherever it shows.
    pub mask: SecretMask,
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
    pub verbs: Vec<Verb>,
}

/// Where a Kubernetes connector points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KubeCluster {
    Kubeconfig {
        path: PathBuf,
        context: Option<String>,
    },
    InCluster,
}

/// An API verb a Kubernetes grant allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    Get,
    List,
    Apply,
    Delete,
}

impl Verb {
    pub const ALL: [Verb; 4] = [Verb::Get, Verb::List, Verb::Apply, Verb::Delete];

    pub fn parse(text: &str) -> Option<Verb> {
        Verb::ALL.into_iter().find(|v| v.name() == text)
    }

    pub fn name(self) -> &'static str {
        match self {
            Verb::Get => "get",
            Verb::List => "list",
            Verb::Apply => "apply",
            Verb::Delete => "delete",
        }
    }
}

/// What to check out of a Git repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reference {
    Branch(String),
    Tag(String),
    CommitSha(String),
}

/// A changelog in a Git repository, fetched when a DB step or `lockstep db` needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct GitSchema {
    pub connector: String,
    pub repo_name: Option<String>,
    pub reference: Reference,
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
        cluster: KubeCluster,
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
    /// MySQL or MariaDB (Harness's `MySql`).
    Mysql {
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
    Mysql,
    Sqlite,
}

impl Connector {
    pub fn kind(&self) -> ConnectorKind {
        match self.spec {
            ConnectorSpec::Git { .. } => ConnectorKind::Git,
            ConnectorSpec::Kubernetes { .. } => ConnectorKind::Kubernetes,
            ConnectorSpec::MongoDB { .. } => ConnectorKind::MongoDB,
            ConnectorSpec::Postgres { .. } => ConnectorKind::Postgres,
            ConnectorSpec::Mysql { .. } => ConnectorKind::Mysql,
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
    pub grants: StepTypeGrants,
    pub limits: StepTypeLimits,
    /// `settings:`, as JSON: handed to the component as the operator's, apart from its spec.
    pub settings: Option<serde_json::Value>,
    pub location: Location,
}

/// A custom step type's `grants:`, as written; resolved into a step's grants when it runs.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StepTypeGrants {
    /// `process: true`: its scripts run under `processSandbox`.
    pub process: bool,
    /// Environment variables the component sees.
    pub env: Vec<(String, String)>,
    /// Directories of the stage workspace preopened for it.
    pub files: Vec<FileGrantSpec>,
    /// `dbInstances` it may open.
    pub db: Vec<String>,
    /// Git connectors it may clone from.
    pub git: Vec<String>,
    /// What it may do on which clusters.
    pub kube: Vec<KubeGrantSpec>,
}

/// `files: [{ path, guestPath, readOnly }]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileGrantSpec {
    /// Relative to the stage workspace, without `..`.
    pub path: PathBuf,
    pub guest_path: String,
    pub read_only: bool,
}

/// A custom step type's `limits:`: what it overrides of the third-party defaults.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StepTypeLimits {
    pub memory_bytes: Option<usize>,
    pub log_bytes: Option<usize>,
    pub outputs_bytes: Option<usize>,
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

    /// The connector `name`, which must be of `kind`.
    pub fn connector(&self, name: &str, kind: ConnectorKind) -> Result<&ConnectorSpec, Refusal> {
        let connector = self.connectors.get(name).ok_or_else(|| {
            Refusal::Configuration(format!(
                "connector `{name}` is not defined; add it under `connectors:` in lockstep.yaml"
            ))
        })?;
        if connector.kind() != kind {
            return Err(Refusal::Configuration(format!(
                "connector `{name}` is a {:?} connector, not a {kind:?} one",
                connector.kind()
            )));
        }
        Ok(&connector.spec)
    }

    /// Reads a secret's value and adds it to the run's mask, so that it is masked wherever it
    /// shows (logs, summaries, errors, outputs, the report).
    pub fn secret(&self, id: &str) -> Result<String, SecretError> {
        let value = match self.secrets.get(id) {
            None => Err(SecretError::Undefined { id: id.into() }),
            Some(SecretSource::Env(variable)) => {
                std::env::var(variable).map_err(|_| SecretError::VariableUnset {
                    id: id.into(),
                    variable: variable.clone(),
                })
            }
            Some(SecretSource::File(path)) => std::fs::read_to_string(path)
                .map(|s| s.trim_end_matches(['\n', '\r']).to_string())
                .map_err(|e| SecretError::Unreadable {
                    id: id.into(),
                    path: path.clone(),
                    message: e.to_string(),
                }),
        }?;
        self.mask.add(&value);
        Ok(value)
    }
}

/// Why a secret has no value; each says which secret and how to provide it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    #[error(
        "secret `{id}` is not defined; add `{id}: {{ env: VARIABLE }}` under `secrets:` in lockstep.yaml"
    )]
    Undefined { id: String },
    #[error("secret `{id}` reads environment variable {variable}, which is not set")]
    VariableUnset { id: String, variable: String },
    #[error("secret `{id}` reads {}: {message}", .path.display())]
    Unreadable {
        id: String,
        path: PathBuf,
        message: String,
    },
}

impl From<SecretError> for Refusal {
    fn from(error: SecretError) -> Self {
        Refusal::Configuration(error.to_string())
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
