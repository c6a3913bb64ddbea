//! What the schema-change benchmarks share: timing a whole process, medians, and the npm tools
//! they compare against, installed under `target/` on first use.

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
