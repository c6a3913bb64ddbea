//! Helpers for the build scripts that compile step components (`host/build.rs` for the built-in
//! steps, `tests/component-builder/build.rs` for the test components).
//!
//! Both build a nested Cargo workspace for [`TARGET`] into `<target dir>/wasm-guests`, the one
//! target directory the whole repository shares.

mod target;

use std::path::{Path, PathBuf};
use std::process::Command;

pub use target::{TARGET, TargetCheck, add_target_if_missing, ensure_target};

/// Where the components of `workspace` land: `<target dir>/wasm-guests/wasm32-wasip2/release`.
/// Builds them (release, for `wasm32-wasip2`), first making sure the target is installed.
/// Each `Err` is one line that says what to do.
pub fn build_components(workspace: &Path) -> Result<PathBuf, String> {
    ensure_target()?;
    let target_dir = guest_target_dir();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .current_dir(workspace)
        .args(["build", "--release", "--target", TARGET, "--target-dir"])
        .arg(&target_dir);
    // The outer build's settings (flags, target, profile) must not leak into the guest build.
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy();
        if (key.starts_with("CARGO_") && key != "CARGO_HOME" && key != "CARGO_NET_OFFLINE")
            || key == "RUSTFLAGS"
            || key.starts_with("RUSTC_")
        {
            command.env_remove(key.as_ref());
        }
    }
    let output = command
        .output()
        .map_err(|e| format!("could not run cargo to build {}: {e}", workspace.display()))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let first_error = stderr
            .lines()
            .find(|l| l.starts_with("error"))
            .unwrap_or("see the output above");
        for line in stderr.lines() {
            println!("cargo::warning={line}");
        }
        return Err(format!(
            "building the components in {} failed: {first_error}",
            workspace.display()
        ));
    }
    Ok(target_dir.join(TARGET).join("release"))
}

/// `<target dir>/wasm-guests`. A separate directory: the outer cargo holds the lock on its own.
fn guest_target_dir() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("build-support sits in the repository root")
        .to_path_buf();
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"))
        .join("wasm-guests")
}
