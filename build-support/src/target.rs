//! The wasm32-wasip2 target: present, or added through rustup. Also compiled into this crate's
//! own build script, so that a missing target is dealt with in the first seconds of a build —
//! the host's build script runs only after the C libraries it depends on are compiled.

use std::path::Path;
use std::process::Command;

pub const TARGET: &str = "wasm32-wasip2";

/// Adds [`TARGET`] through rustup when the compiler lacks it, saying so. A toolchain that
/// `rust-toolchain.toml` names but that was installed before without the target is the usual
/// case: rustup does not add the file's targets to a toolchain that is already there.
pub fn ensure_target() -> Result<(), String> {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    // The rustc wrapper (build-support/rustc-wrapper.sh) may have added it at the start of the
    // build, where cargo does not show what it prints.
    let added = std::env::temp_dir().join(format!("lockstep-rustup-target-added-{}", user_id()));
    if let Ok(toolchain) = std::fs::read_to_string(&added) {
        println!(
            "cargo::warning=added the {TARGET} target to toolchain {} with rustup",
            toolchain.trim()
        );
        let _ = std::fs::remove_file(&added);
    }
    if target_installed(&rustc) {
        return Ok(());
    }
    let fix = format!("run `rustup target add {TARGET}` and build again");
    let toolchain = std::env::var("RUSTUP_TOOLCHAIN")
        .map_err(|_| format!("the {TARGET} target is not installed and this toolchain is not managed by rustup; {fix}"))?;
    println!(
        "cargo::warning=the {TARGET} target is not installed for toolchain {toolchain}; adding it with rustup (once)"
    );
    let added = Command::new("rustup")
        .args(["target", "add", TARGET, "--toolchain", &toolchain])
        .output();
    match added {
        Ok(output) if output.status.success() && target_installed(&rustc) => Ok(()),
        Ok(output) => Err(format!(
            "`rustup target add {TARGET}` failed: {}; {fix}",
            String::from_utf8_lossy(&output.stderr)
                .lines()
                .last()
                .unwrap_or_default()
        )),
        Err(e) => Err(format!(
            "the {TARGET} target is not installed and rustup could not be run ({e}); {fix}"
        )),
    }
}

/// The user id, as `id -u` prints it (read from /proc, to keep this crate dependency-free).
fn user_id() -> String {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                l.strip_prefix("Uid:").map(|ids| {
                    ids.split_whitespace()
                        .next()
                        .unwrap_or_default()
                        .to_string()
                })
            })
        })
        .unwrap_or_default()
}

fn target_installed(rustc: &str) -> bool {
    let Ok(output) = Command::new(rustc).args(["--print", "sysroot"]).output() else {
        return true;
    };
    let sysroot = String::from_utf8_lossy(&output.stdout).trim().to_string();
    Path::new(&sysroot)
        .join("lib/rustlib")
        .join(TARGET)
        .exists()
}
