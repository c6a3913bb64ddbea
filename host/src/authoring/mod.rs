//! Custom steps from source: `lockstep step new` writes a crate ([`scaffold`]), `lockstep step
//! build` builds it for wasm32-wasip2 ([`compile`]) and pins the component in the operator's
//! lockstep.yaml ([`pin`]).

pub mod compile;
pub mod pin;
pub mod scaffold;

use std::path::PathBuf;

/// Why writing, building or pinning a step did not happen. Nothing is left half-written.
#[derive(Debug, thiserror::Error)]
pub enum AuthoringError {
    #[error(
        "`{name}` cannot name a step crate: {reason} (use lowercase letters, digits and `-`, starting with a letter, e.g. `hello-step`)"
    )]
    InvalidName { name: String, reason: &'static str },
    #[error("{} already exists and is not empty; choose another name or `--dir`", .0.display())]
    Exists(PathBuf),
    #[error(
        "the step SDK is not at {} (this lockstep was built from a checkout that has moved); pass `--sdk PATH` to a Lockstep checkout's guest-steps/sdk",
        .0.display()
    )]
    SdkMissing(PathBuf),
    #[error(
        "{} has no Cargo.toml; pass the step crate's directory, or write one with `lockstep step new NAME`",
        .0.display()
    )]
    NotACrate(PathBuf),
    #[error("{message}")]
    Toolchain { message: String },
    #[error("`cargo build` of {} failed (its errors are above)", .0.display())]
    BuildFailed(PathBuf),
    #[error(
        "`cargo build` of {} produced no component: is `crate-type = [\"cdylib\"]` set under [lib] in its Cargo.toml?",
        .0.display()
    )]
    NoComponent(PathBuf),
    #[error("{}: {message}", .config.display())]
    Pin { config: PathBuf, message: String },
    #[error("{}: {source}", .path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl AuthoringError {
    fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> AuthoringError {
        let path = path.into();
        move |source| AuthoringError::Io { path, source }
    }
}

/// `hello-step` → `HelloStep`: the step type a crate's component is pinned as by default.
pub fn type_name(crate_name: &str) -> String {
    crate_name
        .split(['-', '_'])
        .filter(|w| !w.is_empty())
        .map(|w| w[..1].to_uppercase() + &w[1..])
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_crate_name_becomes_a_pascal_case_step_type() {
        assert_eq!(super::type_name("hello-step"), "HelloStep");
        assert_eq!(super::type_name("audit_log2"), "AuditLog2");
    }
}
