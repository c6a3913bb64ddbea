//! Builds the built-in step components (`guest-steps/`) and the test components
//! (`tests/components/`) for wasm32-wasip2, so that a plain `cargo build` yields a `lockstep`
//! binary with its built-in steps embedded.

use std::path::{Path, PathBuf};
use std::process::Command;

const TARGET: &str = "wasm32-wasip2";

fn main() {
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let root = manifest_dir.parent().unwrap().to_path_buf();
    for watched in ["guest-steps", "wit", "tests/components", "changelog"] {
        println!("cargo::rerun-if-changed={}", root.join(watched).display());
    }
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    if !target_installed(&rustc) {
        println!("cargo::error=the {TARGET} target is not installed; run `rustup target add {TARGET}` and build again");
        return;
    }
    // A separate target dir: the outer cargo holds the lock on its own.
    let target_dir = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| root.join("target")).join("wasm-guests");
    let built = target_dir.join(TARGET).join("release");
    for workspace in ["guest-steps", "tests/components"] {
        if let Err(message) = build_workspace(&root.join(workspace), &target_dir) {
            println!("cargo::error={message}");
            return;
        }
    }
    println!("cargo::rustc-env=LOCKSTEP_GUEST_DIR={}", built.display());
}

fn target_installed(rustc: &str) -> bool {
    let Ok(output) = Command::new(rustc).args(["--print", "sysroot"]).output() else { return true };
    let sysroot = String::from_utf8_lossy(&output.stdout).trim().to_string();
    Path::new(&sysroot).join("lib/rustlib").join(TARGET).exists()
}

fn build_workspace(dir: &Path, target_dir: &Path) -> Result<(), String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut command = Command::new(cargo);
    command.current_dir(dir).args(["build", "--release", "--target", TARGET, "--target-dir"]).arg(target_dir);
    // The outer build's settings (flags, target, profile) must not leak into the guest build.
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy();
        if (key.starts_with("CARGO_") && key != "CARGO_HOME" && key != "CARGO_NET_OFFLINE") || key == "RUSTFLAGS" || key.starts_with("RUSTC_") {
            command.env_remove(key.as_ref());
        }
    }
    let output = command.output().map_err(|e| format!("could not run cargo to build {}: {e}", dir.display()))?;
    if output.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    let first_error = stderr.lines().find(|l| l.starts_with("error")).unwrap_or("see the output above");
    for line in stderr.lines() {
        println!("cargo::warning={line}");
    }
    Err(format!("building the components in {} failed: {first_error}", dir.display()))
}
