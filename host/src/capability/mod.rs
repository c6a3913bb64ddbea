//! Host capabilities. Each is a folder that owns its grant and the check of it, its client, its
//! resolution from lockstep.yaml, its WIT host functions on a context of its own, and their
//! tests; the sandbox only composes them (as wasmtime-wasi's interfaces, or Spin's factors):
//!
//! - [`process`]: scripts in the kernel's sandbox, and the cluster proxy of a Kubernetes group;
//! - [`db`]: SQL on PostgreSQL and SQLite; [`mongo`]: MongoDB commands (both `lockstep:db`);
//! - [`git`]: clones into the stage workspace;
//! - [`kube`]: Kubernetes objects through the real `kube` client.
//!
//! Every capability reports [`Error`]; each host function turns it into the WIT error at its
//! boundary.
//!
//! A component's imports are its declared needs. Before a component is instantiated, every import
//! is classified by [`requirement`]: always provided (the step API, clocks, random, stdio with an
//! empty environment), provided only with a grant, or never provided. A component that imports an
//! interface its step was not granted is refused, naming the import. Host functions check the
//! grant again on every call, so a denial never depends on the import check alone.

pub mod db;
pub mod error;
pub mod git;
pub mod kube;
pub mod mongo;
pub mod process;

use std::path::PathBuf;

pub use error::{Error, WitError};

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
    pub fn take(&mut self) -> Result<(), Error> {
        if self.open >= self.max {
            return Err(Error::LimitExceeded(format!(
                "a step may hold at most {} connections open at once; close one before opening another",
                self.max
            )));
        }
        self.open += 1;
        Ok(())
    }

    /// A connection was closed (or never opened).
    pub fn give_back(&mut self) {
        self.open = self.open.saturating_sub(1);
    }
}

/// A grant a step holds by name (a database instance, a connector).
pub trait NamedGrant {
    /// What kind of thing it names, for messages: "database instance", "Git connector", ….
    const KIND: &'static str;
    fn name(&self) -> &str;
}

/// The grant for `name` among a step's grants; the error is what a denied call says, the same
/// for a name that exists and one that does not.
pub fn find_grant<'g, G: NamedGrant>(
    grants: &'g [G],
    name: &str,
    step: &str,
) -> Result<&'g G, Error> {
    grants.iter().find(|g| g.name() == name).ok_or_else(|| {
        let granted: Vec<&str> = grants.iter().map(NamedGrant::name).collect();
        let granted = if granted.is_empty() {
            "none".to_string()
        } else {
            granted.join(", ")
        };
        Error::AccessDenied(format!(
            "step `{step}` was not granted {} `{name}` (granted: {granted})",
            G::KIND
        ))
    })
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
            Capability::Kube => {
                "grants: { kube: [{ connector: CLUSTER, namespaces: [NS], kinds: [KIND], verbs: [get, apply] }] }"
            }
        }
    }
}

/// The `lockstep:*` packages this runner provides, and their versions (`wit/`).
pub const PROVIDED_PACKAGES: &[(&str, &str)] = &[
    ("lockstep:step", "0.1.0"),
    ("lockstep:common", "0.1.0"),
    ("lockstep:process", "0.1.0"),
    ("lockstep:db", "0.1.0"),
    ("lockstep:git", "0.1.0"),
    ("lockstep:kube", "0.1.0"),
];

/// Whether this runner provides the version of a `lockstep:` package an import names, judged as
/// the component model links: the same major version, or for 0.x the same minor, and not newer.
/// `Err` says which versions the runner has and what to do.
pub fn check_version(import: &str) -> Result<(), String> {
    let Some((package, version)) = import
        .split_once('/')
        .and_then(|(package, rest)| Some((package, rest.split_once('@')?.1)))
    else {
        return Ok(());
    };
    let Some((_, provided)) = PROVIDED_PACKAGES.iter().find(|(name, _)| *name == package) else {
        return Ok(());
    };
    let parse = |v: &str| -> Option<(u64, u64, u64)> {
        let mut parts = v.split(['.', '-', '+']).map(|p| p.parse::<u64>().ok());
        Some((parts.next()??, parts.next()??, parts.next()??))
    };
    let (Some(wanted), Some(have)) = (parse(version), parse(provided)) else {
        return Err(format!("`{import}` names a version Lockstep cannot read"));
    };
    let compatible = if wanted.0 == 0 {
        wanted.0 == have.0 && wanted.1 == have.1 && wanted.2 <= have.2
    } else {
        wanted.0 == have.0 && (wanted.1, wanted.2) <= (have.1, have.2)
    };
    if compatible {
        return Ok(());
    }
    let advice = if wanted > have {
        "build it against the step SDK this Lockstep ships (lockstep-step 0.1), or upgrade Lockstep"
    } else {
        "rebuild it against the step SDK this Lockstep ships (lockstep-step 0.1)"
    };
    Err(format!(
        "it was built for {package}@{version}, but this Lockstep provides {package}@{provided}; {advice}"
    ))
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
        "wasi:sockets" => Requirement::Never(
            "steps get no network sockets; reach clusters and databases through the lockstep capabilities, which check grants",
        ),
        "wasi:http" => Requirement::Never(
            "steps get no outbound HTTP; reach services through the lockstep capabilities, which check grants",
        ),
        _ => Requirement::Never("the runner does not provide this interface"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_step_api_and_basic_wasi_need_nothing() {
        for name in [
            "lockstep:step/host@0.1.0",
            "wasi:cli/environment@0.2.6",
            "wasi:io/streams@0.2.6",
            "wasi:random/random@0.2.6",
        ] {
            assert_eq!(requirement(name), Requirement::Always, "{name}");
        }
    }

    #[test]
    fn process_needs_its_grant() {
        let need = requirement("lockstep:process/process@0.1.0");
        assert_eq!(need, Requirement::Granted(Capability::Process));
        assert!(!Capability::Process.granted(&Grants::default()));
        let process = process::ProcessGrant {
            policy: Default::default(),
            cluster: None,
        };
        assert!(Capability::Process.granted(&Grants {
            process: Some(process),
            ..Grants::default()
        }));
    }

    #[test]
    fn databases_need_their_grant() {
        assert_eq!(
            requirement("lockstep:db/sql@0.1.0"),
            Requirement::Granted(Capability::Db)
        );
    }

    #[test]
    fn files_need_their_grant() {
        assert_eq!(
            requirement("wasi:filesystem/preopens@0.2.6"),
            Requirement::Granted(Capability::Files)
        );
    }

    #[test]
    fn an_import_of_another_api_version_is_named_with_the_versions_provided() {
        assert!(check_version("lockstep:step/host@0.1.0").is_ok());
        let newer = check_version("lockstep:step/host@0.2.0").unwrap_err();
        assert!(
            newer.contains("built for lockstep:step@0.2.0")
                && newer.contains("provides lockstep:step@0.1.0")
                && newer.contains("upgrade Lockstep"),
            "{newer}"
        );
        assert!(
            check_version("lockstep:db/sql@0.1.7").is_err(),
            "a newer patch than provided"
        );
        assert!(
            check_version("wasi:cli/environment@0.2.6").is_ok(),
            "not a Lockstep package"
        );
    }

    #[test]
    fn sockets_and_http_are_never_provided() {
        assert!(matches!(
            requirement("wasi:sockets/tcp@0.2.6"),
            Requirement::Never(_)
        ));
        assert!(matches!(
            requirement("wasi:http/outgoing-handler@0.2.6"),
            Requirement::Never(_)
        ));
        assert!(matches!(
            requirement("acme:evil/thing"),
            Requirement::Never(_)
        ));
    }
}
