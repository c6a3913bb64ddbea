//! Expressions end to end: outputs in every form, statuses, meta, variables, inputs, secrets.

mod support;

use lockstep::exec::status::Status;
use lockstep::log::MASK;
use lockstep::plan::inputs::InputError;
use support::*;

#[tokio::test]
async fn outputs_are_readable_in_the_short_and_the_fully_qualified_forms() {
    let first = stage(
        "a",
        &group("g", &run_step_with_outputs("make", "V=42", &["V"], ""), ""),
        "",
    );
    let reads = run_step_with_outputs(
        "read",
        "SHORT=<+steps.make.output.outputVariables.V>\nRELATIVE=<+execution.steps.g.steps.make.output.outputVariables.V>\nFQN=<+pipeline.stages.a.spec.execution.steps.g.steps.make.output.outputVariables.V>",
        &["SHORT", "RELATIVE", "FQN"],
        "",
    );
    let same_stage = run(
        &pipeline_with_stages(&stage(
            "a",
            &(group("g", &run_step_with_outputs("make", "V=42", &["V"], ""), "") + &reads),
            "",
        )),
        "",
    )
    .await;
    assert_eq!(same_stage.output("read", "SHORT"), "42");
    assert_eq!(same_stage.output("read", "RELATIVE"), "42");
    assert_eq!(same_stage.output("read", "FQN"), "42");

    let other_stage = run_step_with_outputs(
        "read",
        "FQN=<+pipeline.stages.a.spec.execution.steps.g.steps.make.output.outputVariables.V>",
        &["FQN"],
        "",
    );
    let across = run(
        &pipeline_with_stages(&(first + &stage("b", &other_stage, ""))),
        "",
    )
    .await;
    assert_eq!(
        across.output("stages.b.spec.execution.steps.read", "FQN"),
        "42"
    );
}

#[tokio::test]
async fn statuses_read_as_engine_names() {
    let check = run_step_with_outputs(
        "check",
        "A=<+pipeline.stages.a.status>\nF=<+pipeline.stages.a.spec.execution.steps.flaky.status>",
        &["A", "F"],
        "",
    );
    let flaky = run_step(
        "flaky",
        "exit 1",
        "  failureStrategies:\n    - onFailure:\n        errors: [AllErrors]\n        action:\n          type: Ignore\n",
    );
    let ran = run(
        &pipeline_with_stages(
            &(stage("a", &(run_step("ok", "true", "") + &flaky), "") + &stage("b", &check, "")),
        ),
        "",
    )
    .await;
    assert_eq!(ran.output("check", "A"), "IGNORE_FAILED");
    assert_eq!(ran.output("check", "F"), "IGNORE_FAILED");
}

#[tokio::test]
async fn pipeline_stage_and_step_meta() {
    let step = run_step_with_outputs(
        "meta_step",
        "M=\"<+pipeline.name>|<+pipeline.identifier>|<+pipeline.executionId>|<+pipeline.sequenceId>|<+stage.name>|<+stage.identifier>|<+step.identifier>|<+step.name>\"",
        &["M"],
        "",
    );
    let ran = run(&pipeline_with_stages(&stage("st", &step, "")), "").await;
    assert_eq!(
        ran.output("meta_step", "M"),
        "Test|test|exec1|7|st|st|meta_step|meta_step"
    );
}

#[tokio::test]
async fn pipeline_stage_and_step_group_variables() {
    let variables = |name: &str, value: &str| {
        format!("  variables:\n    - name: {name}\n      type: String\n      value: {value}\n")
    };
    let read = run_step_with_outputs(
        "read",
        "P=<+pipeline.variables.p>\nS=<+stage.variables.s>\nG=<+stepGroup.variables.g>",
        &["P", "S", "G"],
        "",
    );
    let stages = stage(
        "st",
        &group("grp", &read, &variables("g", "from-group")),
        &variables("s", "<+pipeline.variables.p>-stage"),
    );
    let pipeline = pipeline_with_stages(&stages).replace(
        "  stages:\n",
        &format!("{}  stages:\n", variables("p", "<+input>.default(pipe)")),
    );
    let ran = run(&pipeline, "").await;
    assert_eq!(ran.output("read", "P"), "pipe");
    assert_eq!(ran.output("read", "S"), "pipe-stage");
    assert_eq!(ran.output("read", "G"), "from-group");

    let overridden = run_with_vars(&pipeline, "", &[("p", "given")]).await;
    assert_eq!(overridden.output("read", "S"), "given-stage");
}

#[test]
fn runtime_inputs_need_a_value_and_respect_allowed_values() {
    let pipeline = pipeline_with_steps(&run_step("x", "true", "")).replace("  stages:\n", "  variables:\n    - name: env\n      type: String\n      value: <+input>.allowedValues(dev,prod)\n  stages:\n");
    let parsed =
        lockstep::pipeline::parse_pipeline(std::path::Path::new("p.yaml"), &pipeline).unwrap();
    let config = lockstep::config::Config::default();
    let meta = lockstep::exec::Meta {
        name: "t".into(),
        identifier: "t".into(),
        execution_id: "e".into(),
        sequence_id: 1,
        start_ts: 0,
    };
    let prepare = |vars: &[(&str, &str)]| {
        let overrides = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        lockstep::plan::inputs::prepare(&parsed.pipeline, &overrides, &config, &meta).map(|_| ())
    };
    let missing = prepare(&[]).unwrap_err();
    assert!(
        matches!(&missing, InputError::Missing { location, name } if location.starts_with("p.yaml:") && name == "env"),
        "{missing:?}"
    );
    assert!(
        missing.to_string().contains("pass --var env=VALUE"),
        "{missing}"
    );
    let refused = prepare(&[("env", "staging")]).unwrap_err();
    assert_eq!(
        refused.to_string(),
        "--var env=staging: allowed values are dev, prod"
    );
    assert!(prepare(&[("env", "prod")]).is_ok());
    let unknown = prepare(&[("env", "prod"), ("nope", "1")]).unwrap_err();
    assert!(
        matches!(&unknown, InputError::Undeclared { name, .. } if name == "nope"),
        "{unknown}"
    );
}

#[tokio::test]
async fn operators_ternary_methods_and_nesting_in_a_spec() {
    let command = "A=<+pipeline.variables.env == \"prod\" && pipeline.variables.n >= 3>\nB=<+pipeline.variables.env.startsWith(\"pr\") ? \"big\" : \"small\">\nC=<+pipeline.variables.list.split(\",\")[1]>\nD=<+<+pipeline.variables.env> != \"dev\">";
    let pipeline = pipeline_with_steps(&run_step_with_outputs("calc", command, &["A", "B", "C", "D"], ""))
        .replace("  stages:\n", "  variables:\n    - name: env\n      value: prod\n    - name: n\n      type: Number\n      value: 3\n    - name: list\n      value: a,b,c\n  stages:\n");
    let ran = run(&pipeline, "").await;
    assert_eq!(ran.output("calc", "A"), "true");
    assert_eq!(ran.output("calc", "B"), "big");
    assert_eq!(ran.output("calc", "C"), "b");
    assert_eq!(ran.output("calc", "D"), "true");
}

#[tokio::test]
async fn secrets_are_masked_in_logs_outputs_and_the_report() {
    // SAFETY: set before the run reads it; no other test reads this variable.
    unsafe { std::env::set_var("LOCKSTEP_TEST_TOKEN", "tok-3f9a71") };
    let config = "secrets:\n  token:\n    env: LOCKSTEP_TEST_TOKEN\n";
    let step = run_step_with_outputs(
        "leaky",
        "echo \"token is <+secrets.getValue(\"token\")>\"\nT=\"<+secrets.getValue(\"token\")>\"\necho \"again $T\"; exit 1",
        &["T"],
        "",
    );
    let ran = run(&pipeline_with_steps(&step), config).await;
    assert_eq!(ran.status("leaky"), Status::Failed);
    assert_eq!(
        ran.logs_of("leaky"),
        [format!("token is {MASK}"), format!("again {MASK}")]
    );
    let report = ran.report().to_string();
    assert!(!report.contains("tok-3f9a71"), "{report}");
    assert!(report.contains(MASK));
}

#[tokio::test]
async fn a_secret_typed_variable_yields_the_masked_secret() {
    // SAFETY: as above; a distinct variable.
    unsafe { std::env::set_var("LOCKSTEP_TEST_DB_PASSWORD", "pw-81be22") };
    let config = "secrets:\n  db:\n    env: LOCKSTEP_TEST_DB_PASSWORD\n";
    let pipeline = pipeline_with_steps(&run_step(
        "use",
        "echo \"<+pipeline.variables.password>\"",
        "",
    ))
    .replace(
        "  stages:\n",
        "  variables:\n    - name: password\n      type: Secret\n      value: db\n  stages:\n",
    );
    let ran = run(&pipeline, config).await;
    assert_eq!(ran.logs_of("use"), [MASK]);
}

#[tokio::test]
async fn an_unresolvable_expression_fails_its_step_naming_it() {
    let ran = run(
        &pipeline_with_steps(&run_step(
            "bad",
            "echo <+steps.nope.output.outputVariables.X>",
            "",
        )),
        "",
    )
    .await;
    assert_eq!(ran.status("bad"), Status::Failed);
    let message = &ran.node("bad").error.as_ref().unwrap().message;
    assert!(
        message.contains("<+steps.nope.output.outputVariables.X>")
            && message.contains("no step `nope`"),
        "{message}"
    );
}

#[tokio::test]
async fn parallel_siblings_cannot_read_each_others_outputs() {
    let siblings = parallel(
        &(run_step_with_outputs("slow", "sleep 0.5; V=1", &["V"], "")
            + &run_step("eager", "echo <+steps.slow.output.outputVariables.V>", "")),
    );
    let ran = run(&pipeline_with_steps(&siblings), "").await;
    let message = &ran.node("eager").error.as_ref().unwrap().message;
    assert!(message.contains("has not finished"), "{message}");
}

#[tokio::test]
async fn var_fills_runtime_inputs_of_stages_and_step_groups_too() {
    let input = |name: &str, value: &str| {
        format!("  variables:\n    - name: {name}\n      type: String\n      value: {value}\n")
    };
    let read = run_step_with_outputs(
        "read",
        "S=<+stage.variables.region>\nG=<+stepGroup.variables.size>",
        &["S", "G"],
        "",
    );
    let pipeline = pipeline_with_stages(&stage(
        "st",
        &group("grp", &read, &input("size", "<+input>.default(small)")),
        &input("region", "<+input>"),
    ));
    let ran = run_with_vars(&pipeline, "", &[("region", "eu")]).await;
    assert_eq!(ran.output("read", "S"), "eu");
    assert_eq!(ran.output("read", "G"), "small");

    let parsed =
        lockstep::pipeline::parse_pipeline(std::path::Path::new("p.yaml"), &pipeline).unwrap();
    let meta = lockstep::exec::Meta {
        name: "t".into(),
        identifier: "t".into(),
        execution_id: "e".into(),
        sequence_id: 1,
        start_ts: 0,
    };
    let missing = lockstep::plan::inputs::prepare(
        &parsed.pipeline,
        &Default::default(),
        &Default::default(),
        &meta,
    )
    .map(|_| ())
    .unwrap_err()
    .to_string();
    assert!(
        missing.starts_with("p.yaml:")
            && missing.contains(
                "variable `region` is a runtime input with no default; pass --var region=VALUE"
            ),
        "{missing}"
    );
}

#[tokio::test]
async fn a_stage_whose_variables_cannot_be_resolved_ends_errored_and_runs_nothing() {
    let stages = stage(
        "broken",
        &run_step("x", "true", ""),
        "  variables:\n    - name: v\n      type: String\n      value: <+pipeline.variables.nope>\n",
    );
    let ran = run(&pipeline_with_stages(&stages), "").await;
    assert_eq!(ran.status("stages.broken"), Status::Errored);
    assert!(
        ran.node("stages.broken")
            .error
            .as_ref()
            .unwrap()
            .message
            .contains("<+pipeline.variables.nope>")
    );
    assert_eq!(ran.status("x"), Status::Skipped);
    assert_eq!(ran.outcome.status, Status::Errored);
}
