//! Shared test harness: runs a pipeline written inline, through the library, with one sandbox
//! per test binary and a fresh directory per test.
#![allow(dead_code)]

pub mod db;
pub mod git;
pub mod k8s;
pub mod kube_double;
pub mod mongo;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use lockstep::config::Config;
use lockstep::exec::status::Status;
use lockstep::exec::{Cancel, Meta, Observer, Outcome, Record};
use lockstep::log::{Level, SecretMask};
use lockstep::sandbox::Sandbox;
use lockstep::session::Session;

fn shared_sandbox() -> &'static (Sandbox, tempfile::TempDir) {
    static SANDBOX: OnceLock<(Sandbox, tempfile::TempDir)> = OnceLock::new();
    SANDBOX.get_or_init(|| {
        let cache = tempfile::tempdir().unwrap();
        (
            Sandbox::new(16, cache.path(), &|w| eprintln!("{w}")).unwrap(),
            cache,
        )
    })
}

pub fn sandbox() -> &'static Sandbox {
    &shared_sandbox().0
}

/// Where the test binary's sandbox keeps compiled components (and their seal key).
pub fn cache_dir() -> &'static Path {
    shared_sandbox().1.path()
}

/// A test component built from tests/components/NAME.
pub fn component_path(name: &str) -> PathBuf {
    lockstep_test_components::path(name)
}

pub fn sha256_of(path: &Path) -> String {
    lockstep::sandbox::artifact::sha256_hex(&std::fs::read(path).unwrap())
}

/// A `stepTypes` entry for a test component, pinned to its real digest.
pub fn step_type(name: &str, extra: &str) -> String {
    let path = component_path(name);
    format!(
        "  {}:\n    component: {}\n    sha256: {}\n{extra}",
        type_name(name),
        path.display(),
        sha256_of(&path)
    )
}

/// `busy-loop` → `BusyLoop`
pub fn type_name(component: &str) -> String {
    component
        .split('-')
        .map(|w| w[..1].to_uppercase() + &w[1..])
        .collect()
}

#[derive(Default)]
pub struct Captured {
    pub logs: Mutex<Vec<(String, String)>>,
}

impl Observer for Captured {
    fn started(&self, _: &Record) {}
    fn finished(&self, _: &Record) {}
    fn log(&self, fqn: &str, _: Level, text: &str) {
        self.logs
            .lock()
            .unwrap()
            .push((fqn.to_string(), text.to_string()));
    }
}

pub struct Ran {
    pub outcome: Outcome,
    pub captured: Arc<Captured>,
    pub dir: tempfile::TempDir,
    pub mask: SecretMask,
}

impl Ran {
    /// The record whose FQN ends with `suffix` (e.g. `steps.build`).
    pub fn node(&self, suffix: &str) -> &Record {
        let matches: Vec<&Record> = self
            .outcome
            .records
            .iter()
            .filter(|r| r.fqn == suffix || r.fqn.ends_with(&format!(".{suffix}")))
            .collect();
        assert_eq!(
            matches.len(),
            1,
            "expected one node ending in {suffix}, found {:?}",
            matches.iter().map(|r| &r.fqn).collect::<Vec<_>>()
        );
        matches[0]
    }

    pub fn status(&self, suffix: &str) -> Status {
        self.node(suffix).status
    }

    pub fn output(&self, suffix: &str, name: &str) -> String {
        self.node(suffix)
            .outputs
            .get(name)
            .cloned()
            .unwrap_or_else(|| panic!("{suffix} has no output {name}"))
    }

    pub fn logs_of(&self, suffix: &str) -> Vec<String> {
        self.captured
            .logs
            .lock()
            .unwrap()
            .iter()
            .filter(|(f, _)| f.ends_with(suffix))
            .map(|(_, t)| t.clone())
            .collect()
    }

    pub fn all_logs(&self) -> String {
        self.captured
            .logs
            .lock()
            .unwrap()
            .iter()
            .map(|(_, t)| t.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    }

    pub fn report(&self) -> serde_json::Value {
        lockstep::report::build(&self.outcome, &self.mask)
    }
}

/// Wraps stage-level YAML (the items under `stages:`) into a pipeline.
pub fn pipeline_with_stages(stages: &str) -> String {
    format!(
        "pipeline:\n  name: Test\n  identifier: test\n  stages:\n{}",
        indent(stages, 4)
    )
}

/// Wraps step items into a one-stage pipeline with the given stage-level extras.
pub fn pipeline_with_steps(steps: &str) -> String {
    pipeline_with_stages(&format!(
        "- stage:\n    name: S\n    identifier: s\n    type: Custom\n    spec:\n      execution:\n        steps:\n{}",
        indent(steps, 10)
    ))
}

pub fn indent(text: &str, by: usize) -> String {
    text.lines()
        .map(|l| {
            if l.is_empty() {
                String::new()
            } else {
                format!("{}{l}\n", " ".repeat(by))
            }
        })
        .collect()
}

/// [`run_with_files`] on a runtime of its own, for tests whose fixtures block.
pub fn run_blocking(pipeline_yaml: &str, config_yaml: &str, files: &[(&str, &str)]) -> Ran {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(run_with_files(
        pipeline_yaml,
        config_yaml,
        &[],
        Cancel::default(),
        files,
    ))
}

pub async fn run(pipeline_yaml: &str, config_yaml: &str) -> Ran {
    run_with_vars(pipeline_yaml, config_yaml, &[]).await
}

pub async fn run_with_vars(pipeline_yaml: &str, config_yaml: &str, vars: &[(&str, &str)]) -> Ran {
    run_with_cancel(pipeline_yaml, config_yaml, vars, Cancel::default()).await
}

pub async fn run_with_cancel(
    pipeline_yaml: &str,
    config_yaml: &str,
    vars: &[(&str, &str)],
    cancel: Cancel,
) -> Ran {
    run_with_files(pipeline_yaml, config_yaml, vars, cancel, &[]).await
}

/// Runs with `files` (relative path, content) written next to the pipeline first.
pub async fn run_with_files(
    pipeline_yaml: &str,
    config_yaml: &str,
    vars: &[(&str, &str)],
    cancel: Cancel,
    files: &[(&str, &str)],
) -> Ran {
    let dir = tempfile::tempdir().unwrap();
    for (path, content) in files {
        let path = dir.path().join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, content).unwrap();
    }
    let file = dir.path().join("pipeline.yaml");
    std::fs::write(&file, pipeline_yaml).unwrap();
    let config_path = dir.path().join("lockstep.yaml");
    std::fs::write(&config_path, config_yaml).unwrap();
    // Exactly what `lockstep run` does: load and check, plan, prepare, run.
    let config = Config::load(&config_path, true).unwrap_or_else(|e| panic!("{e:#}"));
    let session = Session::load(&file, pipeline_yaml, config).unwrap_or_else(|e| panic!("{e}"));
    let meta = Meta {
        execution_id: "exec1".into(),
        sequence_id: 7,
        start_ts: 0,
        ..session.meta()
    };
    let overrides: BTreeMap<String, String> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let plan = session
        .plan(&overrides, meta)
        .unwrap_or_else(|e| panic!("{e}"));
    let prepared = session
        .prepare(&plan, sandbox(), dir.path().join("workspace"))
        .unwrap_or_else(|e| panic!("{e:?}"));
    let captured = Arc::new(Captured::default());
    let outcome = session.run(prepared, captured.clone(), cancel).await;
    let mask = session.config.mask.clone();
    Ran {
        outcome,
        captured,
        dir,
        mask,
    }
}

/// A Run step item; `extra` holds step fields (when, timeout, …) indented as under `step:` minus two.
pub fn run_step(id: &str, command: &str, extra: &str) -> String {
    format!(
        "- step:\n    type: Run\n    name: {id}\n    identifier: {id}\n    spec:\n      shell: Bash\n      command: |\n{}{}",
        indent(command, 8),
        indent(extra, 2)
    )
}

/// A Custom stage item; `extra` holds stage fields (when, timeout, strategy, …) indented as
/// under `stage:` minus two.
pub fn stage(id: &str, steps: &str, extra: &str) -> String {
    format!(
        "- stage:\n    name: {id}\n    identifier: {id}\n    type: Custom\n{}    spec:\n      execution:\n        steps:\n{}",
        indent(extra, 2),
        indent(steps, 10)
    )
}

/// A step group item; `extra` as for [`stage`].
pub fn group(id: &str, steps: &str, extra: &str) -> String {
    format!(
        "- stepGroup:\n    name: {id}\n    identifier: {id}\n{}    steps:\n{}",
        indent(extra, 2),
        indent(steps, 6)
    )
}

/// Steps listed under `- parallel:`.
pub fn parallel(items: &str) -> String {
    format!("- parallel:\n{}", indent(items, 4))
}

/// A Run step that publishes the final values of the shell variables `outputs`.
pub fn run_step_with_outputs(id: &str, command: &str, outputs: &[&str], extra: &str) -> String {
    let mut step = run_step(id, command, "") + "      outputVariables:\n";
    for name in outputs {
        step.push_str(&format!("        - name: {name}\n"));
    }
    step + &indent(extra, 2)
}
