//! The operator's policy for scripts: lockstep.yaml's `processSandbox` section.
//!
//! ```yaml
//! processSandbox:
//!   confinement: required   # required (default): refuse Run steps where the kernel cannot confine them
//!                           # off: run scripts unconfined, as the runner's user (a warning every run)
//!   network: none           # none (default): loopback only; host: the host's network
//!   paths:                  # host paths scripts may use besides the stage workspace
//!     - { path: /srv/toolchains, readOnly: true }
//!   limits: { processes: 1024, fileSize: 4Gi }
//! ```
//!
//! Only the operator's lockstep.yaml can widen what a script reaches; a pipeline cannot.

use std::path::{Path, PathBuf};

use super::parse::parse_size;
use crate::diag::{Diagnostic, Location};
use crate::yaml::Node;

/// How scripts are confined. Shared by every script of a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessPolicy {
    pub confinement: Confinement,
    pub network: Network,
    /// Host paths bound into the sandbox at the same path, besides the stage workspace.
    pub paths: Vec<HostPath>,
    pub limits: ProcessLimits,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Confinement {
    /// Namespaces, a minimal root, Landlock, rlimits; a kernel without them refuses Run steps.
    Required,
    /// The operator opted out: scripts run as the runner's user with its view of the machine.
    Off,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Network {
    /// A network namespace of its own: loopback only (plus a step group's cluster, through the
    /// host's proxy).
    None,
    /// The host's network, as the operator granted.
    Host,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPath {
    /// Absolute.
    pub path: PathBuf,
    pub read_only: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcessLimits {
    /// Processes (and threads) the script and everything it starts may have at once.
    pub processes: u64,
    /// The largest file a script may write.
    pub file_size_bytes: u64,
}

impl Default for ProcessPolicy {
    fn default() -> Self {
        ProcessPolicy {
            confinement: Confinement::Required,
            network: Network::None,
            paths: vec![],
            limits: ProcessLimits {
                processes: 1024,
                file_size_bytes: 4 << 30,
            },
        }
    }
}

impl ProcessPolicy {
    /// Reads the `processSandbox` section; relative paths are relative to `base`.
    pub fn from_yaml(
        node: &Node,
        base: &Path,
        loc: &dyn Fn(&Node, &str) -> Location,
        errors: &mut Vec<Diagnostic>,
    ) -> ProcessPolicy {
        let mut policy = ProcessPolicy::default();
        if node.is_null() {
            return policy;
        }
        if node.as_map().is_none() {
            errors.push(
                Diagnostic::error(
                    loc(node, "processSandbox"),
                    "`processSandbox` must be a map",
                )
                .with_help("its keys are confinement, network, paths and limits"),
            );
            return policy;
        }
        let text = |key: &str| node.get(key).and_then(Node::as_str);
        match text("confinement") {
            None | Some("required") => {}
            Some("off") => policy.confinement = Confinement::Off,
            Some(other) => errors.push(Diagnostic::error(loc(node.get("confinement").unwrap_or(node), "processSandbox.confinement"), format!("confinement `{other}` is neither `required` nor `off`")).with_help("`required` confines every script (the default); `off` runs them unconfined, with a warning every run")),
        }
        match text("network") {
            None | Some("none") => {}
            Some("host") => policy.network = Network::Host,
            Some(other) => errors.push(Diagnostic::error(loc(node.get("network").unwrap_or(node), "processSandbox.network"), format!("network `{other}` is neither `none` nor `host`")).with_help("`none` gives scripts loopback only (the default); `host` gives them the host's network")),
        }
        for (i, entry) in node
            .get("paths")
            .and_then(Node::as_seq)
            .unwrap_or_default()
            .iter()
            .enumerate()
        {
            let at = || loc(entry, &format!("processSandbox.paths[{i}]"));
            match entry.get("path").and_then(Node::as_str) {
                Some(path) if path != "/" => {
                    let read_only = entry.get("readOnly").and_then(Node::as_str) != Some("false");
                    policy.paths.push(HostPath {
                        path: std::path::absolute(base.join(path))
                            .unwrap_or_else(|_| base.join(path)),
                        read_only,
                    });
                }
                _ => errors.push(
                    Diagnostic::error(
                        at(),
                        "a sandbox path needs `path`, a host directory or file other than `/`",
                    )
                    .with_help("write e.g. `- { path: /srv/toolchains, readOnly: true }`"),
                ),
            }
        }
        if let Some(limits) = node.get("limits") {
            if let Some(v) = limits.get("processes") {
                match v
                    .as_str()
                    .and_then(|t| t.parse::<u64>().ok())
                    .filter(|n| *n >= 8)
                {
                    Some(n) => policy.limits.processes = n,
                    None => errors.push(
                        Diagnostic::error(
                            loc(v, "processSandbox.limits.processes"),
                            "`processes` must be a whole number of at least 8",
                        )
                        .with_help("write e.g. `processes: 512`"),
                    ),
                }
            }
            if let Some(v) = limits.get("fileSize") {
                match v.as_str().and_then(parse_size).filter(|n| *n > 0) {
                    Some(n) => policy.limits.file_size_bytes = n as u64,
                    None => errors.push(
                        Diagnostic::error(
                            loc(v, "processSandbox.limits.fileSize"),
                            "`fileSize` must be a size such as 4Gi",
                        )
                        .with_help("use the suffixes Ki, Mi or Gi"),
                    ),
                }
            }
        }
        policy
    }

    /// The warning every run prints when the operator turned confinement off.
    pub fn unconfined_warning(&self) -> Option<&'static str> {
        (self.confinement == Confinement::Off).then_some(
            "Run steps are NOT confined (`processSandbox.confinement: off` in lockstep.yaml): their scripts run as this user, with its files, network and processes",
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> (ProcessPolicy, Vec<Diagnostic>) {
        let doc = crate::yaml::parse(Path::new("lockstep.yaml"), text).unwrap();
        let mut errors = vec![];
        let loc = |n: &Node, p: &str| doc.location(n.pos, p);
        let root = &doc.roots[0];
        (
            ProcessPolicy::from_yaml(
                root.get("processSandbox").unwrap(),
                Path::new("/etc/lockstep"),
                &loc,
                &mut errors,
            ),
            errors,
        )
    }

    #[test]
    fn the_default_confines_without_network() {
        let (policy, errors) = parse("processSandbox: {}\n");
        assert!(errors.is_empty());
        assert_eq!(policy, ProcessPolicy::default());
        assert_eq!(policy.confinement, Confinement::Required);
        assert_eq!(policy.network, Network::None);
        assert!(policy.unconfined_warning().is_none());
    }

    #[test]
    fn the_operator_can_grant_network_paths_and_limits_or_opt_out() {
        let (policy, errors) = parse(
            "processSandbox:\n  confinement: off\n  network: host\n  paths: [{ path: tools }, { path: /srv/cache, readOnly: false }]\n  limits: { processes: 64, fileSize: 1Mi }\n",
        );
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(policy.network, Network::Host);
        assert_eq!(
            policy.paths,
            [
                HostPath {
                    path: "/etc/lockstep/tools".into(),
                    read_only: true
                },
                HostPath {
                    path: "/srv/cache".into(),
                    read_only: false
                }
            ]
        );
        assert_eq!(
            policy.limits,
            ProcessLimits {
                processes: 64,
                file_size_bytes: 1 << 20
            }
        );
        assert!(
            policy
                .unconfined_warning()
                .unwrap()
                .contains("NOT confined")
        );
    }

    #[test]
    fn mistakes_name_the_field() {
        let (_, errors) = parse(
            "processSandbox:\n  confinement: maybe\n  network: lan\n  paths: [{ path: / }]\n  limits: { processes: 2 }\n",
        );
        let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert_eq!(text.len(), 4, "{text:?}");
        assert!(
            text[0].contains("processSandbox.confinement") && text[0].contains("maybe"),
            "{}",
            text[0]
        );
        assert!(text[1].contains("processSandbox.network"), "{}", text[1]);
        assert!(text[2].contains("processSandbox.paths[0]"), "{}", text[2]);
        assert!(
            text[3].contains("processSandbox.limits.processes"),
            "{}",
            text[3]
        );
    }
}
