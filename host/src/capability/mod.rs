//! Host capabilities. Each is one module with its grant type, its host functions and its tests;
//! the sandbox composes them.
//!
//! A component's imports are its declared needs. Before a component is instantiated, every import
//! is classified by [`requirement`]: always provided (the step API, clocks, random, stdio with an
//! empty environment), provided only with a grant, or never provided. A component that imports an
//! interface its step was not granted is refused, naming the import. Host functions check the
//! grant again on every call, so a denial never depends on the import check alone.

pub mod db;
pub mod git;
pub mod kube;
pub mod mongo;
pub mod process;

use std::path::PathBuf;

/// What one step may use beyond the step API.
#[derive(Debug, Clone, Default)]
pub struct Grants {
    /// Run shell scripts, confined, in the stage workspace.
    pub process: Option<process::ProcessGrant>,
    /// Environment variables the component sees (none otherwise).
    pub env: Vec<(String, String)>,
    /// Directories preopened for the component (none otherwise).
    pub files: Vec<FileGrant>,
    /// Database instances the step may open by label (none otherwise).
    pub db: Vec<db::DbGrant>,
    /// Git connectors the step may clone from (none otherwise).
    pub git: Vec<git::GitGrant>,
    /// Clusters, and what on them, the step may reach (none otherwise).
    pub kube: Vec<kube::KubeGrant>,
}

/// Connections (database sessions, cluster clients) one step run may hold open at once, so that
/// a step cannot starve a server of connections.
#[derive(Debug)]
pub struct ConnectionBudget {
    open: usize,
    max: usize,
}

impl ConnectionBudget {
    pub fn new(max: usize) -> Self {
        ConnectionBudget { open: 0, max }
    }

    /// Counts one more open connection, or refuses past the budget, before any I/O.
    pub fn take(&mut self) -> Result<(), crate::sandbox::bindings::WitError> {
        if self.open >= self.max {
            return Err(crate::sandbox::bindings::WitError::LimitExceeded(format!("a step may hold at most {} connections open at once; close one before opening another", self.max)));
        }
        self.open += 1;
        Ok(())
    }

    /// A connection was closed (or never opened).
    pub fn give_back(&mut self) {
        self.open = self.open.saturating_sub(1);
    }
}

/// A host directory preopened for a step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileGrant {
    pub host_path: PathBuf,
    /// The path the guest sees.
    pub guest_path: String,
    pub read_only: bool,
}

/// A capability that is provided only with a grant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Capability {
    Process,
    Files,
    Db,
    Git,
    Kube,
}

impl Capability {
    pub fn granted(self, grants: &Grants) -> bool {
        match self {
            Capability::Process => grants.process.is_some(),
            Capability::Files => !grants.files.is_empty(),
            Capability::Db => !grants.db.is_empty(),
            Capability::Git => !grants.git.is_empty(),
            Capability::Kube => !grants.kube.is_empty(),
        }
    }

    /// The `lockstep.yaml` line that grants it, for error messages.
    pub fn how_to_grant(self) -> &'static str {
        match self {
            Capability::Process => "grants: { process: true }",
            Capability::Files => "grants: { files: [{ path: ., readOnly: true }] }",
            Capability::Db => "grants: { db: [INSTANCE] }",
            Capability::Git => "grants: { git: [CONNECTOR] }",
            Capability::Kube => "grants: { kube: [{ connector: CLUSTER, namespaces: [NS], kinds: [KIND], verbs: [get, apply] }] }",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Requirement {
    Always,
    Granted(Capability),
    /// Never provided; the text says what to use instead.
    Never(&'static str),
}

/// What a component import needs. `name` is the import's full name, e.g.
/// `lockstep:process/process@0.1.0` or `wasi:sockets/tcp@0.2.6`.
pub fn requirement(name: &str) -> Requirement {
    let (package, _) = name.split_once('/').unwrap_or((name, ""));
    match package {
        "lockstep:step" | "lockstep:common" => Requirement::Always,
        "lockstep:process" => Requirement::Granted(Capability::Process),
        "lockstep:db" => Requirement::Granted(Capability::Db),
        "lockstep:git" => Requirement::Granted(Capability::Git),
        "lockstep:kube" => Requirement::Granted(Capability::Kube),
        "wasi:io" | "wasi:clocks" | "wasi:random" | "wasi:cli" => Requirement::Always,
        "wasi:filesystem" => Requirement::Granted(Capability::Files),
        "wasi:sockets" => Requirement::Never("steps get no network sockets; reach clusters and databases through the lockstep capabilities, which check grants"),
        "wasi:http" => Requirement::Never("steps get no outbound HTTP; reach services through the lockstep capabilities, which check grants"),
        _ => Requirement::Never("the runner does not provide this interface"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_step_api_and_basic_wasi_need_nothing() {
        for name in ["lockstep:step/host@0.1.0", "wasi:cli/environment@0.2.6", "wasi:io/streams@0.2.6", "wasi:random/random@0.2.6"] {
            assert_eq!(requirement(name), Requirement::Always, "{name}");
        }
    }

    #[test]
    fn process_needs_its_grant() {
        let need = requirement("lockstep:process/process@0.1.0");
        assert_eq!(need, Requirement::Granted(Capability::Process));
        assert!(!Capability::Process.granted(&Grants::default()));
        let process = process::ProcessGrant { policy: Default::default(), cluster: None };
        assert!(Capability::Process.granted(&Grants { process: Some(process), ..Grants::default() }));
    }

    #[test]
    fn databases_need_their_grant() {
        assert_eq!(requirement("lockstep:db/sql@0.1.0"), Requirement::Granted(Capability::Db));
    }

    #[test]
    fn files_need_their_grant() {
        assert_eq!(requirement("wasi:filesystem/preopens@0.2.6"), Requirement::Granted(Capability::Files));
    }

    #[test]
    fn sockets_and_http_are_never_provided() {
        assert!(matches!(requirement("wasi:sockets/tcp@0.2.6"), Requirement::Never(_)));
        assert!(matches!(requirement("wasi:http/outgoing-handler@0.2.6"), Requirement::Never(_)));
        assert!(matches!(requirement("acme:evil/thing"), Requirement::Never(_)));
    }
}
