//! The wasm32-wasip2 target: present, or added through rustup. Used by the build scripts (after
//! the rustc wrapper, `rustc-wrapper.sh`, has had its chance in the first second of the build) and
//! by `lockstep step build`.

use std::path::Path;
use std::process::Command;

pub const TARGET: &str = "wasm32-wasip2";

/// How [`add_target_if_missing`] found the toolchain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetCheck {
    Present,
    /// Added through rustup just now, to this toolchain (`None`: the directory's).
    Added {
        toolchain: Option<String>,
    },
}

/// For a build script: [`add_target_if_missing`] with the compiler cargo runs, its notes as
/// cargo warnings.
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
    let toolchain = std::env::var("RUSTUP_TOOLCHAIN").ok();
    if add_target_if_missing(&rustc, None, toolchain.clone())? != TargetCheck::Present {
        println!(
            "cargo::warning=added the {TARGET} target to toolchain {} with rustup",
            toolchain.unwrap_or_default()
        );
    }
    Ok(())
}

/// Adds [`TARGET`] through rustup when the compiler `rustc` (run in `dir`) lacks it. A toolchain that
/// `rust-toolchain.toml` names but that was installed before without the target is the usual
/// case: rustup does not add the file's targets to a toolchain that is already there. `toolchain`
/// is rustup's name for it (`$RUSTUP_TOOLCHAIN`), when known; without it rustup picks the
/// toolchain of `rustc`'s working directory. Each `Err` is one line that says what to do.
pub fn add_target_if_missing(
    rustc: &str,
    dir: Option<&Path>,
    toolchain: Option<String>,
) -> Result<TargetCheck, String> {
    let installed = || {
        let mut probe = Command::new(rustc);
        if let Some(dir) = dir {
            probe.current_dir(dir);
        }
        target_installed(probe)
    };
    if installed() {
        return Ok(TargetCheck::Present);
    }
    let fix = format!("run `rustup target add {TARGET}` and build again");
    let mut rustup = Command::new("rustup");
    rustup.args(["target", "add", TARGET]);
    if let Some(toolchain) = &toolchain {
        rustup.args(["--toolchain", toolchain]);
    }
    if let Some(dir) = dir {
        rustup.current_dir(dir);
    }
    match rustup.output() {
        Ok(output) if output.status.success() && installed() => {
            Ok(TargetCheck::Added { toolchain })
        }
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

fn target_installed(mut rustc: Command) -> bool {
    let Ok(output) = rustc.args(["--print", "sysroot"]).output() else {
        return true;
    };
    let sysroot = String::from_utf8_lossy(&output.stdout).trim().to_string();
    Path::new(&sysroot)
        .join("lib/rustlib")
        .join(TARGET)
        .exists()
}
