//! The `lockstep` binary, as a user calls it.

use std::process::Command;

/// The example pipelines copied to a directory of their own, so that tests running the quick
/// start at the same time do not share its SQLite database.
fn pipelines_copy() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let source = concat!(env!("CARGO_MANIFEST_DIR"), "/../pipelines");
    for file in ["quickstart.yaml", "lockstep.yaml", "db/changelog.sql"] {
        let target = dir.path().join(file);
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        std::fs::copy(format!("{source}/{file}"), target).unwrap();
    }
    dir
}

fn lockstep(args: &[&str]) -> (i32, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_lockstep"))
        .args(args)
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .output()
        .unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn validate_accepts_the_docs_example_and_explains_its_indentation() {
    let published = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../pipelines/db-orkes/pipeline.as-published.yaml"
    );
    let (code, _, stderr) = lockstep(&["validate", published]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains(
            "pipeline.as-published.yaml:1:1: warning: `pipeline:` has nothing indented under it"
        ),
        "{stderr}"
    );
    assert!(
        stderr.contains("indent lines 2–80 by two more spaces"),
        "{stderr}"
    );
}

#[test]
fn the_quickstart_runs_and_writes_a_report() {
    let dir = pipelines_copy();
    let report = dir.path().join("report.json");
    let quickstart = dir.path().join("quickstart.yaml");
    let config = dir.path().join("lockstep.yaml");
    let (code, _, stderr) = lockstep(&[
        "run",
        quickstart.to_str().unwrap(),
        "--config",
        config.to_str().unwrap(),
        "--report",
        report.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{stderr}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!(report["status"], "IgnoreFailed");
    let node = |id: &str| {
        report["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["identifier"] == id)
            .unwrap()
            .clone()
    };
    assert_eq!(node("flaky")["error"]["type"], "Unknown");
    assert_eq!(node("on_failure")["status"], "Skipped");
    assert_eq!(
        node("package")["fqn"],
        "pipeline.stages.build.spec.execution.steps.package"
    );
    assert!(
        node("version")["outputs"]["VERSION"]
            .as_str()
            .unwrap()
            .starts_with("1.4.")
    );
    assert_eq!(
        node("apply")["outputs"]["changeSetsApplied"],
        "3",
        "the schema stage applies the changelog to SQLite"
    );
    assert_eq!(
        node("rollback")["outputs"]["changeSetsRolledBack"],
        "3",
        "and rolls it back to the pre-start tag"
    );
}

#[test]
fn invalid_yaml_exits_2_and_names_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.yaml");
    std::fs::write(
        &file,
        "pipeline:\n  name: x\n  identifier: bad-id\n  stages: []\n",
    )
    .unwrap();
    let (code, _, stderr) = lockstep(&["validate", file.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains("bad.yaml:3:15: error: `bad-id` is not a valid identifier"),
        "{stderr}"
    );
    assert!(
        stderr.contains("bad.yaml:4:11: error: `stages` is empty"),
        "{stderr}"
    );
}

#[test]
fn running_an_unimplemented_step_type_is_refused_before_any_step_starts() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("p.yaml");
    std::fs::write(&file, "pipeline:\n  name: x\n  identifier: x\n  stages:\n    - stage:\n        name: s\n        identifier: s\n        type: Custom\n        spec:\n          execution:\n            steps:\n              - step:\n                  type: Run\n                  name: first\n                  identifier: first\n                  spec:\n                    shell: Sh\n                    command: touch ran\n              - step:\n                  type: Http\n                  name: call\n                  identifier: call\n                  spec: {}\n").unwrap();
    let (code, _, stderr) = lockstep(&[
        "run",
        file.to_str().unwrap(),
        "--workspace",
        dir.path().to_str().unwrap(),
    ]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("step type `Http` is not implemented by Lockstep yet"),
        "{stderr}"
    );
    assert!(!dir.path().join("s/ran").exists(), "a step ran");
}

#[test]
fn ctrl_c_aborts_the_running_step_and_still_writes_the_report() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("p.yaml");
    std::fs::write(&file, "pipeline:\n  name: x\n  identifier: x\n  stages:\n    - stage:\n        name: s\n        identifier: s\n        type: Custom\n        spec:\n          execution:\n            steps:\n              - step:\n                  type: Run\n                  name: slow\n                  identifier: slow\n                  spec:\n                    shell: Sh\n                    command: touch started; sleep 30\n").unwrap();
    let report = dir.path().join("report.json");
    let workspace = dir.path().join("ws");
    let mut child = Command::new(env!("CARGO_BIN_EXE_lockstep"))
        .args([
            "run",
            file.to_str().unwrap(),
            "--report",
            report.to_str().unwrap(),
            "--workspace",
            workspace.to_str().unwrap(),
        ])
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !workspace.join("s/started").exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "the step never started"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    // SAFETY: signalling our own child process.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(1));
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!(report["status"], "Aborted");
    assert_eq!(report["nodes"][1]["identifier"], "slow");
    assert_eq!(report["nodes"][1]["status"], "Aborted");
}

#[test]
fn without_room_for_the_instance_pool_the_runner_warns_and_allocates_on_demand() {
    // The pool reserves hundreds of GiB of address space; a 16 GB limit refuses that but leaves
    // room for on-demand instances.
    let binary = env!("CARGO_BIN_EXE_lockstep");
    let dir = pipelines_copy();
    let output = Command::new("bash")
        .args(["-c", &format!("ulimit -v 16000000 && exec {binary} run {0}/quickstart.yaml --config {0}/lockstep.yaml", dir.path().display())])
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("warning: the pooling allocator could not reserve its memory")
            && stderr.contains("falling back to on-demand allocation"),
        "{stderr}"
    );
}

#[test]
fn plan_shows_the_tree_and_a_mermaid_diagram() {
    let (code, tree, stderr) = lockstep(&["plan", "pipelines/quickstart.yaml"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(tree.starts_with("pipeline quickstart (Quick start)\n├─ stage build (Build)\n│  ├─ parallel\n│  │  ├─ step version (Run)\n"), "{tree}");
    assert!(
        tree.contains("│  └─ step on_failure (Run)  [when Failure]"),
        "{tree}"
    );
    assert!(
        tree.contains("└─ stage schema (Schema)\n   ├─ step apply (DBSchemaApply)\n"),
        "{tree}"
    );
    let (code, mermaid, _) =
        lockstep(&["plan", "--format", "mermaid", "pipelines/quickstart.yaml"]);
    assert_eq!(code, 0);
    assert!(mermaid.starts_with("flowchart TD\n"), "{mermaid}");
    assert!(
        mermaid.contains("n2 --> n4") && mermaid.contains("n3 --> n4"),
        "the parallel pair both lead to the next step: {mermaid}"
    );
    assert!(
        mermaid.contains("[\"Report failure · Run<br/>when Failure\"]"),
        "a conditional step says when it runs: {mermaid}"
    );
}

#[test]
fn on_a_terminal_run_draws_a_live_tree() {
    let binary = env!("CARGO_BIN_EXE_lockstep");
    let dir = pipelines_copy();
    // `script` gives the command a pseudo-terminal, as an interactive shell would.
    let output = Command::new("script")
        .args([
            "-qec",
            &format!(
                "{binary} run {0}/quickstart.yaml --config {0}/lockstep.yaml",
                dir.path().display()
            ),
            "/dev/null",
        ])
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .output()
        .unwrap();
    let screen = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{screen}");
    assert!(
        screen.contains("\x1b[J"),
        "the tree is redrawn in place: {screen:?}"
    );
    assert!(
        screen.contains("  ! stage build")
            && screen.contains("    ✔ package (Run)")
            && screen.contains("    ○ on_failure (Run)"),
        "{screen}"
    );
}

#[test]
fn a_report_that_cannot_be_written_is_refused_before_the_first_step() {
    let dir = pipelines_copy();
    let quickstart = dir.path().join("quickstart.yaml");
    let config = dir.path().join("lockstep.yaml");
    let report = dir.path().join("missing/report.json");
    let (code, stdout, stderr) = lockstep(&[
        "run",
        quickstart.to_str().unwrap(),
        "--config",
        config.to_str().unwrap(),
        "--report",
        report.to_str().unwrap(),
    ]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("cannot write the report to") && stderr.contains("does not exist"),
        "{stderr}"
    );
    assert!(!stdout.contains("Running"), "nothing ran: {stdout}");
    assert!(
        !dir.path().join(".lockstep/quickstart.db").exists(),
        "the schema stage did not run"
    );
}
