//! `validate`: every problem is reported with file, line, column, YAML path and a fix;
//! unknown keys are warnings.

use std::path::Path;

use lockstep::config::{Config, SecretError};
use lockstep::diag::{Diagnostic, Severity};
use lockstep::pipeline::parse_pipeline;

/// Parses and checks step specs as `lockstep validate` does; returns every diagnostic.
fn diagnostics(yaml: &str) -> Vec<Diagnostic> {
    match parse_pipeline(Path::new("p.yaml"), yaml) {
        Ok(parsed) => parsed
            .warnings
            .into_iter()
            .chain(lockstep::steps::check_pipeline(
                &parsed.pipeline,
                &Config::default(),
            ))
            .collect(),
        Err(invalid) => invalid.0,
    }
}

fn pipeline(steps: &str) -> String {
    let steps: String = steps
        .lines()
        .map(|l| format!("              {l}\n"))
        .collect();
    format!(
        "pipeline:\n  name: P\n  identifier: p\n  stages:\n    - stage:\n        name: S\n        identifier: s\n        type: Custom\n        spec:\n          execution:\n            steps:\n{steps}"
    )
}

fn only(diagnostics: &[Diagnostic], severity: Severity) -> Vec<&Diagnostic> {
    diagnostics
        .iter()
        .filter(|d| d.severity == severity)
        .collect()
}

#[test]
fn an_unknown_key_is_a_warning_that_suggests_the_likely_key() {
    let found = diagnostics(&pipeline(
        "- step:\n    type: Run\n    name: a\n    identifier: a\n    timout: 10m\n    spec:\n      shell: Sh\n      command: true",
    ));
    let warnings = only(&found, Severity::Warning);
    assert!(only(&found, Severity::Error).is_empty(), "{found:?}");
    assert_eq!(warnings.len(), 1);
    let w = warnings[0];
    assert_eq!((w.location.pos.line, w.location.pos.col), (16, 19));
    assert_eq!(
        w.location.yaml_path,
        "pipeline.stages[0].stage.spec.execution.steps[0].step.timout"
    );
    assert_eq!(w.help.as_deref(), Some("did you mean `timeout`?"));
}

#[test]
fn every_error_in_a_file_is_reported_at_once() {
    let found = diagnostics(&pipeline(
        "- step:\n    type: Run\n    name: a\n    identifier: a-b\n    timeout: soon\n    when:\n      stageStatus: Sometimes\n    spec:\n      shell: Sh\n      command: true\n- step:\n    type: Run\n    name: b\n    identifier: b\n    spec:\n      shell: Sh\n      command: true\n    failureStrategies:\n      - onFailure:\n          errors: [Timeuot]\n          action:\n            type: Ignore",
    ));
    let errors: Vec<String> = only(&found, Severity::Error)
        .iter()
        .map(|d| d.to_string())
        .collect();
    assert_eq!(errors.len(), 4, "{errors:#?}");
    assert!(
        errors[0].starts_with("p.yaml:15:31: error: `a-b` is not a valid identifier"),
        "{}",
        errors[0]
    );
    assert!(
        errors[1].contains("`soon` is not a duration"),
        "{}",
        errors[1]
    );
    assert!(
        errors[2].contains("`Sometimes` is not a stageStatus")
            && errors[2].contains("help: use Success, Failure or All"),
        "{}",
        errors[2]
    );
    assert!(
        errors[3].contains("`Timeuot` is not an error type")
            && errors[3].contains("did you mean `Timeout`?"),
        "{}",
        errors[3]
    );
}

#[test]
fn duplicate_identifiers_in_a_stage_are_errors() {
    let found = diagnostics(&pipeline(
        "- step:\n    type: Run\n    name: a\n    identifier: same\n    spec: {shell: Sh, command: 'true'}\n- step:\n    type: Run\n    name: b\n    identifier: same\n    spec: {shell: Sh, command: 'true'}",
    ));
    assert!(
        found
            .iter()
            .any(|d| d.is_error() && d.message == "identifier `same` is used twice"),
        "{found:?}"
    );
}

#[test]
fn group_only_actions_are_refused_outside_a_step_group() {
    let found = diagnostics(&pipeline(
        "- step:\n    type: Run\n    name: a\n    identifier: a\n    spec: {shell: Sh, command: 'true'}\n    failureStrategies:\n      - onFailure:\n          errors: [AllErrors]\n          action:\n            type: StepGroupRollback",
    ));
    assert!(
        found
            .iter()
            .any(|d| d.is_error() && d.message.contains("applies only inside a step group")),
        "{found:?}"
    );
}

#[test]
fn the_run_step_spec_is_checked() {
    let found = diagnostics(&pipeline(
        "- step:\n    type: Run\n    name: a\n    identifier: a\n    spec:\n      shell: Powershell\n      image: alpine\n      envVariables: [A]",
    ));
    let errors: Vec<&str> = only(&found, Severity::Error)
        .iter()
        .map(|d| d.message.as_str())
        .collect();
    assert!(
        errors.contains(&"shell Powershell is not supported for local runs"),
        "{errors:?}"
    );
    assert!(
        errors.contains(&"a Run step needs `command`, the script to run"),
        "{errors:?}"
    );
    assert!(
        errors.contains(&"`envVariables` must be a map"),
        "{errors:?}"
    );
    assert!(
        only(&found, Severity::Warning)
            .iter()
            .any(|d| d.message.starts_with("`image` is unused"))
    );
}

#[test]
fn invalid_yaml_names_its_line() {
    let found = diagnostics("pipeline:\n  name: [unclosed\n  identifier: x\n");
    assert_eq!(found.len(), 1);
    assert!(found[0].to_string().starts_with("p.yaml:"), "{}", found[0]);
    assert!(found[0].message.starts_with("this is not valid YAML"));
}

#[test]
fn lockstep_yaml_errors_name_the_entry_and_the_fix() {
    let bad = "connectors:\n  x: { type: Ftp }\nsecrets:\n  s: { env: A, file: b }\nstepTypes:\n  T: { component: t.wasm, sha256: abc }\n";
    let errors = Config::parse(Path::new("lockstep.yaml"), bad)
        .unwrap_err()
        .0;
    let text: Vec<String> = errors.iter().map(|d| d.to_string()).collect();
    assert_eq!(text.len(), 3, "{text:#?}");
    assert!(
        text[0].contains("lockstep.yaml:2:")
            && text[0].contains("connector type `Ftp` is not known"),
        "{}",
        text[0]
    );
    assert!(
        text[1].contains("secret `s` needs exactly one of `env` or `file`"),
        "{}",
        text[1]
    );
    assert!(
        text[2].contains("must be pinned") && text[2].contains("sha256sum"),
        "{}",
        text[2]
    );
}

#[test]
fn lockstep_yaml_secrets_read_from_the_environment_and_files() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("token"), "from-file\n").unwrap();
    // SAFETY: set before it is read; no other test uses this variable.
    unsafe { std::env::set_var("LOCKSTEP_TEST_CONFIG_SECRET", "from-env") };
    let config = Config::parse(
        &dir.path().join("lockstep.yaml"),
        "secrets:\n  a: { env: LOCKSTEP_TEST_CONFIG_SECRET }\n  b: { file: token }\n",
    )
    .unwrap();
    assert_eq!(config.secret("a").unwrap(), "from-env");
    assert_eq!(config.secret("b").unwrap(), "from-file");
    let undefined = config.secret("c").unwrap_err();
    assert_eq!(undefined, SecretError::Undefined { id: "c".into() });
    assert!(undefined.to_string().contains("add `c: { env: VARIABLE }`"));
}

#[test]
fn every_connector_type_needs_its_endpoint() {
    let good = "connectors:\n  g: { type: Git, url: 'file:///srv/app' }\n  k: { type: Kubernetes, kubeconfig: kube.yaml, context: c }\n  m: { type: MongoDB, uri: 'mongodb://localhost/app' }\n  p: { type: Postgres, url: 'postgres://postgres@127.0.0.1/app' }\n  s: { type: Sqlite, path: app.db }\n";
    let config = Config::parse(Path::new("lockstep.yaml"), good).unwrap();
    assert_eq!(config.connectors.len(), 5);
    let lockstep::config::ConnectorSpec::Kubernetes {
        cluster: lockstep::capability::kube::KubeCluster::Kubeconfig { context, .. },
        ..
    } = &config.connectors["k"].spec
    else {
        panic!("a Kubernetes connector with a kubeconfig")
    };
    assert_eq!(context.as_deref(), Some("c"));

    let errors = Config::parse(
        Path::new("lockstep.yaml"),
        "connectors:\n  m: { type: MongoDB, url: x }\n",
    )
    .unwrap_err()
    .0;
    assert_eq!(errors.len(), 1);
    assert!(
        errors[0]
            .to_string()
            .contains("this MongoDB connector does not say where it points: it needs `uri`"),
        "{}",
        errors[0]
    );
    assert_eq!(
        errors[0].help.as_deref(),
        Some("add `uri: mongodb://localhost:27017/app`")
    );
}
