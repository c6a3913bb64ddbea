//! `when` (each form) and looping strategies (each form).

mod support;

use lockstep::exec::status::Status;
use support::*;

fn fail(id: &str) -> String {
    run_step(id, "exit 1", "")
}

// --- when ---------------------------------------------------------------------------------

#[tokio::test]
async fn without_when_a_step_runs_only_while_nothing_has_failed() {
    let ran = run(
        &pipeline_with_steps(
            &(run_step("first", "true", "") + &fail("bad") + &run_step("after", "true", "")),
        ),
        "",
    )
    .await;
    assert_eq!(ran.status("first"), Status::Success);
    assert_eq!(ran.status("after"), Status::Skipped);
}

#[tokio::test]
async fn stage_status_success_is_the_default_gate() {
    let gated = "  when:\n    stageStatus: Success\n";
    let ok = run(&pipeline_with_steps(&run_step("runs", "true", gated)), "").await;
    assert_eq!(ok.status("runs"), Status::Success);
    let after_failure = run(
        &pipeline_with_steps(&(fail("bad") + &run_step("gated", "true", gated))),
        "",
    )
    .await;
    assert_eq!(after_failure.status("gated"), Status::Skipped);
}

#[tokio::test]
async fn stage_status_failure_runs_only_after_a_failure() {
    let gate = "  when:\n    stageStatus: Failure\n";
    let clean = run(
        &pipeline_with_steps(&(run_step("ok", "true", "") + &run_step("on_failure", "true", gate))),
        "",
    )
    .await;
    assert_eq!(clean.status("on_failure"), Status::Skipped);
    let failed = run(
        &pipeline_with_steps(&(fail("bad") + &run_step("on_failure", "true", gate))),
        "",
    )
    .await;
    assert_eq!(failed.status("on_failure"), Status::Success);
}

#[tokio::test]
async fn stage_status_all_always_runs() {
    let gate = "  when:\n    stageStatus: All\n";
    let clean = run(&pipeline_with_steps(&run_step("always", "true", gate)), "").await;
    assert_eq!(clean.status("always"), Status::Success);
    let failed = run(
        &pipeline_with_steps(&(fail("bad") + &run_step("always", "true", gate))),
        "",
    )
    .await;
    assert_eq!(failed.status("always"), Status::Success);
}

#[tokio::test]
async fn a_condition_must_hold_as_well_as_the_status() {
    let steps = run_step_with_outputs("probe", "FLAG=yes", &["FLAG"], "")
        + &run_step(
            "if_yes",
            "true",
            "  when:\n    stageStatus: Success\n    condition: <+steps.probe.output.outputVariables.FLAG> == \"yes\"\n",
        )
        + &run_step(
            "if_no",
            "true",
            "  when:\n    stageStatus: All\n    condition: <+steps.probe.output.outputVariables.FLAG> == \"no\"\n",
        );
    let ran = run(&pipeline_with_steps(&steps), "").await;
    assert_eq!(ran.status("if_yes"), Status::Success);
    assert_eq!(ran.status("if_no"), Status::Skipped);
}

#[tokio::test]
async fn a_condition_that_cannot_be_resolved_fails_its_step_naming_the_expression() {
    let ran = run(&pipeline_with_steps(&run_step("odd", "true", "  when:\n    stageStatus: Success\n    condition: <+pipeline.variables.missing> == \"x\"\n")), "").await;
    assert_eq!(ran.status("odd"), Status::Failed);
    let message = &ran.node("odd").error.as_ref().unwrap().message;
    assert!(
        message.contains("<+pipeline.variables.missing>"),
        "{message}"
    );
}

#[tokio::test]
async fn a_skipped_step_group_skips_everything_in_it() {
    let steps = fail("bad") + &group("g", &run_step("inside", "true", ""), "");
    let ran = run(&pipeline_with_steps(&steps), "").await;
    assert_eq!(ran.status("steps.g"), Status::Skipped);
    assert_eq!(ran.status("inside"), Status::Skipped);
}

#[tokio::test]
async fn pipeline_status_gates_stages() {
    let stages = stage("a", &fail("bad"), "")
        + &stage("default_gate", &run_step("x", "true", ""), "")
        + &stage(
            "on_failure",
            &run_step("y", "true", ""),
            "  when:\n    pipelineStatus: Failure\n",
        )
        + &stage(
            "always",
            &run_step("z", "true", ""),
            "  when:\n    pipelineStatus: All\n",
        );
    let ran = run(&pipeline_with_stages(&stages), "").await;
    assert_eq!(ran.status("stages.default_gate"), Status::Skipped);
    assert_eq!(ran.status("stages.on_failure"), Status::Success);
    assert_eq!(ran.status("stages.always"), Status::Success);
    assert_eq!(ran.outcome.status, Status::Failed);
}

#[tokio::test]
async fn a_stage_condition_is_evaluated_against_pipeline_variables() {
    let pipeline = pipeline_with_stages(&(stage("prod_only", &run_step("x", "true", ""), "  when:\n    pipelineStatus: Success\n    condition: <+pipeline.variables.env> == \"prod\"\n")))
        .replace("  stages:\n", "  variables:\n    - name: env\n      type: String\n      value: <+input>\n  stages:\n");
    let dev = run_with_vars(&pipeline, "", &[("env", "dev")]).await;
    assert_eq!(dev.status("stages.prod_only"), Status::Skipped);
    let prod = run_with_vars(&pipeline, "", &[("env", "prod")]).await;
    assert_eq!(prod.status("stages.prod_only"), Status::Success);
}

#[tokio::test]
async fn a_rolled_back_stage_does_not_open_a_later_failure_gate() {
    let rolled_back = stage(
        "a",
        &run_step(
            "bad",
            "exit 1",
            "  failureStrategies:\n    - onFailure:\n        errors: [AllErrors]\n        action:\n          type: StageRollback\n",
        ),
        "",
    );
    let stages = rolled_back
        + &stage(
            "on_failure",
            &run_step("y", "true", ""),
            "  when:\n    pipelineStatus: Failure\n",
        )
        + &stage("next", &run_step("z", "true", ""), "");
    let ran = run(&pipeline_with_stages(&stages), "").await;
    assert_eq!(ran.status("stages.a"), Status::Failed);
    assert_eq!(ran.status("stages.on_failure"), Status::Skipped);
    assert_eq!(ran.status("stages.next"), Status::Skipped);
}

// --- looping strategies ---------------------------------------------------------------------

#[tokio::test]
async fn a_matrix_runs_each_combination_but_the_excluded_with_suffixed_identifiers() {
    let strategy = "  strategy:\n    matrix:\n      os: [linux, mac]\n      arch: [amd, arm]\n      exclude:\n        - os: mac\n          arch: amd\n";
    let step = run_step_with_outputs(
        "build",
        "LABEL=\"<+matrix.os>-<+matrix.arch>\"",
        &["LABEL"],
        strategy,
    );
    let ran = run(&pipeline_with_steps(&step), "").await;
    let steps: Vec<&str> = ran
        .outcome
        .records
        .iter()
        .filter(|r| r.node_type == "Run")
        .map(|r| r.identifier.as_str())
        .collect();
    assert_eq!(steps, ["build_0_0", "build_0_1", "build_1_1"]);
    assert_eq!(ran.output("build_0_1", "LABEL"), "linux-arm");
    assert_eq!(ran.output("build_1_1", "LABEL"), "mac-arm");
}

#[tokio::test]
async fn max_concurrency_limits_how_many_copies_run_at_once() {
    let command = "echo start >> order; sleep 0.2; echo end >> order";
    let step = run_step(
        "one_at_a_time",
        command,
        "  strategy:\n    matrix:\n      n: [1, 2, 3]\n      maxConcurrency: 1\n",
    );
    let ran = run(&pipeline_with_steps(&step), "").await;
    let order = std::fs::read_to_string(ran.dir.path().join("workspace/s/order")).unwrap();
    assert_eq!(
        order.lines().collect::<Vec<_>>(),
        ["start", "end", "start", "end", "start", "end"]
    );
}

#[tokio::test]
async fn parallelism_runs_identical_copies_that_know_their_iteration() {
    let step = run_step_with_outputs(
        "shard",
        "I=<+strategy.iteration>/<+strategy.iterations>",
        &["I"],
        "  strategy:\n    parallelism: 3\n",
    );
    let ran = run(&pipeline_with_steps(&step), "").await;
    assert_eq!(ran.output("shard_0", "I"), "0/3");
    assert_eq!(ran.output("shard_2", "I"), "2/3");
}

#[tokio::test]
async fn repeat_times_and_repeat_items() {
    let times = run_step(
        "twice",
        "true",
        "  strategy:\n    repeat:\n      times: 2\n",
    );
    let items = run_step_with_outputs(
        "each",
        "ITEM=<+repeat.item>",
        &["ITEM"],
        "  strategy:\n    repeat:\n      items: [red, blue]\n",
    );
    let ran = run(&pipeline_with_steps(&(times + &items)), "").await;
    assert_eq!(ran.status("twice_0"), Status::Success);
    assert_eq!(ran.status("twice_1"), Status::Success);
    assert_eq!(ran.output("each_0", "ITEM"), "red");
    assert_eq!(ran.output("each_1", "ITEM"), "blue");
}

#[tokio::test]
async fn repeat_items_can_come_from_an_expression() {
    let step = run_step_with_outputs(
        "each",
        "ITEM=<+repeat.item>",
        &["ITEM"],
        "  strategy:\n    repeat:\n      items: <+pipeline.variables.regions.split(\",\")>\n",
    );
    let pipeline = pipeline_with_steps(&step).replace(
        "  stages:\n",
        "  variables:\n    - name: regions\n      type: String\n      value: eu,us,ap\n  stages:\n",
    );
    let ran = run(&pipeline, "").await;
    assert_eq!(ran.output("each_2", "ITEM"), "ap");
}

#[tokio::test]
async fn a_stage_matrix_is_visible_as_stage_matrix() {
    let step = run_step_with_outputs("show", "ENV=<+stage.matrix.env>", &["ENV"], "");
    let ran = run(
        &pipeline_with_stages(&stage(
            "deploy",
            &step,
            "  strategy:\n    matrix:\n      env: [dev, prod]\n",
        )),
        "",
    )
    .await;
    assert_eq!(
        ran.output("stages.deploy_1.spec.execution.steps.show", "ENV"),
        "prod"
    );
    assert_eq!(ran.status("stages.deploy_0"), Status::Success);
}

#[tokio::test]
async fn a_step_group_can_loop_too() {
    let ran = run(
        &pipeline_with_steps(&group(
            "g",
            &run_step("inner", "true", ""),
            "  strategy:\n    repeat:\n      times: 2\n",
        )),
        "",
    )
    .await;
    assert_eq!(ran.status("steps.g_1.steps.inner"), Status::Success);
    assert_eq!(ran.status("steps.g_0"), Status::Success);
}
