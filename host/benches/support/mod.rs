//! What the schema-change benchmarks share: timing a whole process (and its peak memory),
//! medians, and the npm tools they compare against, installed under `target/` on first use.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// How long `command` takes end to end; it must succeed.
pub fn timed(command: &mut Command) -> Duration {
    let start = Instant::now();
    let output = command.output().expect("running the benchmark command");
    let elapsed = start.elapsed();
    assert!(
        output.status.success(),
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    elapsed
}

/// How long `command` takes end to end and its peak resident memory in bytes (the kernel's
/// `ru_maxrss` of that one process, read by `wait4`); it must succeed.
#[allow(dead_code)] // db_apply uses it, mongo_apply does not
#[allow(clippy::zombie_processes)] // reaped by `wait4`, which also reads its peak memory
pub fn timed_with_peak_memory(command: &mut Command) -> (Duration, u64) {
    let start = Instant::now();
    let child = command
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("running the benchmark command");
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: an all-zero rusage is valid; wait4 fills it in for the child we spawned.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waits for our own child; the pointers are valid for the call.
    let waited = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let elapsed = start.elapsed();
    assert!(waited == pid && libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0);
    (elapsed, usage.ru_maxrss as u64 * 1024)
}

pub fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

/// The executable `bin` (relative to the prefix) of npm `package`, installed into
/// `target/<prefix>` unless it is there already.
pub fn npm_tool(prefix: &str, package: &str, bin: &str) -> PathBuf {
    let prefix = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../target")
        .join(prefix);
    let cli = prefix.join(bin);
    if !cli.exists() {
        let status = Command::new("npm")
            .args(["install", "--no-audit", "--no-fund", "--prefix"])
            .arg(&prefix)
            .arg(package)
            .status()
            .expect("npm");
        assert!(status.success(), "npm install {package} failed");
    }
    cli
}
