//! Writing a custom step as its author does: `lockstep step new`, `cargo test`, `lockstep step
//! build`, then a pipeline that uses it.

use std::path::Path;
use std::process::Command;

fn lockstep(dir: &Path, args: &[&str]) -> (i32, String, String) {
    run(Command::new(env!("CARGO_BIN_EXE_lockstep"))
        .args(args)
        .current_dir(dir))
}

fn run(command: &mut Command) -> (i32, String, String) {
    let output = command.output().unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

const PIPELINE: &str = "pipeline:
  name: hello
  identifier: hello
  stages:
    - stage:
        name: greet
        identifier: greet
        type: Custom
        spec:
          execution:
            steps:
              - step:
                  type: HelloStep
                  name: greet
                  identifier: greet
                  spec:
                    who: <+pipeline.variables.who>
  variables:
    - name: who
      type: String
      value: operators
";

#[test]
fn a_new_step_passes_its_own_test_builds_pins_itself_and_runs_in_a_pipeline() {
    let dir = tempfile::tempdir().unwrap();
    let (code, stdout, stderr) = lockstep(dir.path(), &["step", "new", "hello-step"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("step type HelloStep"), "{stdout}");
    let crate_dir = dir.path().join("hello-step");

    let (code, stdout, stderr) = run(Command::new("cargo")
        .args(["test", "--quiet"])
        .current_dir(&crate_dir));
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(stdout.contains("2 passed"), "{stdout}");

    let config = dir.path().join("lockstep.yaml");
    std::fs::write(
        &config,
        "# the operator's file\nsecrets:\n  t: { env: HOME }\n",
    )
    .unwrap();
    let (code, stdout, stderr) = lockstep(
        &crate_dir,
        &["step", "build", "--config", config.to_str().unwrap()],
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("added step type HelloStep"), "{stdout}");
    let pinned = std::fs::read_to_string(&config).unwrap();
    assert!(
        pinned.starts_with("# the operator's file\nsecrets:\n  t: { env: HOME }\nstepTypes:\n  HelloStep:\n    component: \"hello-step/hello_step.wasm\"\n    sha256: "),
        "{pinned}"
    );

    let pipeline = dir.path().join("hello.yaml");
    std::fs::write(&pipeline, PIPELINE).unwrap();
    let report = dir.path().join("report.json");
    let (code, stdout, stderr) = lockstep(
        dir.path(),
        &[
            "run",
            pipeline.to_str().unwrap(),
            "--config",
            config.to_str().unwrap(),
            "--report",
            report.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    let greet = report["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["identifier"] == "greet" && n["type"] == "HelloStep")
        .unwrap_or_else(|| panic!("{report:#}"));
    assert_eq!(greet["outputs"]["greeting"], "hello, operators");

    // Rebuilt after a change: the same entry gets the new digest, and the old one is refused.
    let lib = crate_dir.join("src/lib.rs");
    let source = std::fs::read_to_string(&lib).unwrap();
    std::fs::write(&lib, source.replace("\"hello, {}\"", "\"hi, {}\"")).unwrap();
    let (code, stdout, stderr) = lockstep(
        &crate_dir,
        &["step", "build", "--config", config.to_str().unwrap()],
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("updated step type HelloStep"), "{stdout}");
    let repinned = std::fs::read_to_string(&config).unwrap();
    assert_ne!(repinned, pinned);
    assert_eq!(repinned.matches("HelloStep:").count(), 1, "{repinned}");
}

#[test]
fn building_pins_nothing_when_told_no_lockstep_yaml() {
    let dir = tempfile::tempdir().unwrap();
    let (code, _, stderr) = run(Command::new(env!("CARGO_BIN_EXE_lockstep"))
        .args(["step", "build", "."])
        .current_dir(dir.path())
        .env_remove("LOCKSTEP_CONFIG")
        .env("HOME", dir.path())
        .env_remove("XDG_CONFIG_HOME"));
    assert_eq!(code, 2);
    assert!(stderr.contains("say which lockstep.yaml"), "{stderr}");
}
