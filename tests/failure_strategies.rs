//! One test per failure-strategy action, and the precedence step → step group → stage.

mod support;

use lockstep::exec::status::Status;
use support::*;

fn on_failure(errors: &str, action: &str) -> String {
    format!(
        "  failureStrategies:\n    - onFailure:\n        errors: [{errors}]\n        action:\n{}",
        indent(action, 10)
    )
}

#[tokio::test]
async fn ignore_marks_the_step_ignore_failed_and_later_steps_run() {
    let steps = run_step("bad", "exit 1", &on_failure("AllErrors", "type: Ignore"))
        + &run_step("after", "echo after", "");
    let ran = run(&pipeline_with_steps(&steps), "").await;
    assert_eq!(ran.status("bad"), Status::IgnoreFailed);
    assert_eq!(ran.status("after"), Status::Success);
    assert_eq!(ran.outcome.status, Status::IgnoreFailed);
}

#[tokio::test]
async fn retry_reruns_the_step_until_it_succeeds() {
    let action = "type: Retry\nspec:\n  retryCount: 3\n  retryIntervals: [1s]\n  onRetryFailure:\n    action:\n      type: MarkAsFailure";
    let command =
        "n=$(cat attempts 2>/dev/null || echo 0); n=$((n+1)); echo $n > attempts\n[ $n -ge 2 ]";
    let ran = run(
        &pipeline_with_steps(&run_step(
            "flaky",
            command,
            &on_failure("AllErrors", action),
        )),
        "",
    )
    .await;
    assert_eq!(ran.status("flaky"), Status::Success);
    assert_eq!(ran.node("flaky").retries, 1);
}

#[tokio::test]
async fn retry_applies_on_retry_failure_when_retries_run_out() {
    let action = "type: Retry\nspec:\n  retryCount: 2\n  retryIntervals: [1s]\n  onRetryFailure:\n    action:\n      type: Ignore";
    let ran = run(
        &pipeline_with_steps(&run_step(
            "never",
            "exit 1",
            &on_failure("AllErrors", action),
        )),
        "",
    )
    .await;
    assert_eq!(ran.status("never"), Status::IgnoreFailed);
    assert_eq!(ran.node("never").retries, 2);
    assert!(
        ran.node("never")
            .error
            .as_ref()
            .unwrap()
            .message
            .contains("after 2 retries")
    );
}

#[tokio::test]
async fn mark_as_success_turns_a_failure_into_success() {
    let ran = run(
        &pipeline_with_steps(&run_step(
            "bad",
            "exit 1",
            &on_failure("AllErrors", "type: MarkAsSuccess"),
        )),
        "",
    )
    .await;
    assert_eq!(ran.status("bad"), Status::Success);
    assert_eq!(ran.outcome.status, Status::Success);
}

#[tokio::test]
async fn proceed_with_default_values_acts_as_mark_as_success() {
    let ran = run(
        &pipeline_with_steps(&run_step(
            "bad",
            "exit 1",
            &on_failure("AllErrors", "type: ProceedWithDefaultValues"),
        )),
        "",
    )
    .await;
    assert_eq!(ran.status("bad"), Status::Success);
}

#[tokio::test]
async fn mark_as_failure_fails_the_step_and_skips_default_gated_steps() {
    let steps = run_step(
        "bad",
        "exit 1",
        &on_failure("AllErrors", "type: MarkAsFailure"),
    ) + &run_step("next", "echo never", "")
        + &run_step(
            "cleanup",
            "echo cleanup",
            "  when:\n    stageStatus: Failure\n",
        );
    let ran = run(&pipeline_with_steps(&steps), "").await;
    assert_eq!(ran.status("bad"), Status::Failed);
    assert_eq!(ran.status("next"), Status::Skipped);
    assert_eq!(ran.status("cleanup"), Status::Success);
    assert_eq!(ran.outcome.status, Status::Failed);
}

#[tokio::test]
async fn abort_stops_the_pipeline_and_cancels_running_steps() {
    let steps = "- parallel:\n".to_string()
        + &indent(
            &(run_step(
                "bad",
                "sleep 0.3; exit 1",
                &on_failure("AllErrors", "type: Abort"),
            ) + &run_step("slow", "sleep 30", "")),
            4,
        )
        + &run_step("after", "echo never", "");
    let stages = format!(
        "- stage:\n    name: S\n    identifier: s\n    type: Custom\n    spec:\n      execution:\n        steps:\n{}- stage:\n    name: T\n    identifier: t\n    type: Custom\n    when:\n      pipelineStatus: All\n    spec:\n      execution:\n        steps:\n{}",
        indent(&steps, 10),
        indent(&run_step("later", "echo never", ""), 10)
    );
    let started = std::time::Instant::now();
    let ran = run(&pipeline_with_stages(&stages), "").await;
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    assert_eq!(ran.status("bad"), Status::Aborted);
    assert_eq!(ran.status("slow"), Status::Aborted);
    assert_eq!(ran.status("after"), Status::Skipped);
    assert_eq!(ran.status("later"), Status::Skipped);
    assert_eq!(ran.outcome.status, Status::Aborted);
}

#[tokio::test]
async fn stage_rollback_runs_the_stage_rollback_steps() {
    let stages = format!(
        "- stage:\n    name: S\n    identifier: s\n    type: Custom\n    spec:\n      execution:\n        steps:\n{}        rollbackSteps:\n{}",
        indent(
            &(run_step(
                "deploy",
                "exit 1",
                &on_failure("AllErrors", "type: StageRollback")
            ) + &run_step("after", "echo never", "")),
            10
        ),
        indent(&run_step("undo", "echo undoing", ""), 10)
    );
    let ran = run(&pipeline_with_stages(&stages), "").await;
    assert_eq!(ran.status("deploy"), Status::Failed);
    assert_eq!(ran.status("after"), Status::Skipped);
    assert_eq!(ran.status("rollbackSteps.undo"), Status::Success);
    assert_eq!(ran.logs_of("undo"), ["undoing"]);
    assert_eq!(ran.status("stages.s"), Status::Failed);
}

#[tokio::test]
async fn step_group_rollback_runs_the_group_rollback_steps_and_the_stage_goes_on_failed() {
    let group = format!(
        "- stepGroup:\n    name: G\n    identifier: g\n    steps:\n{}    rollbackSteps:\n{}",
        indent(
            &run_step(
                "inner",
                "exit 1",
                &on_failure("AllErrors", "type: StepGroupRollback")
            ),
            6
        ),
        indent(&run_step("undo_group", "echo undone", ""), 6)
    );
    let steps = group
        + &run_step(
            "notify",
            "echo failed",
            "  when:\n    stageStatus: Failure\n",
        );
    let ran = run(&pipeline_with_steps(&steps), "").await;
    assert_eq!(ran.status("steps.inner"), Status::Failed);
    assert_eq!(ran.status("rollbackSteps.undo_group"), Status::Success);
    assert_eq!(ran.status("steps.g"), Status::Failed);
    assert_eq!(ran.status("notify"), Status::Success);
}

#[tokio::test]
async fn retry_step_group_reruns_the_whole_group() {
    let group = format!(
        "- stepGroup:\n    name: G\n    identifier: g\n    failureStrategies:\n      - onFailure:\n          errors: [AllErrors]\n          action:\n            type: RetryStepGroup\n            spec:\n              retryCount: 2\n              retryIntervals: [1s]\n    steps:\n{}",
        indent(
            &(run_step("first", "echo x >> first_runs", "")
                + &run_step("second", "n=$(wc -l < first_runs); [ $n -ge 2 ]", "")),
            6
        )
    );
    let ran = run(&pipeline_with_steps(&group), "").await;
    assert_eq!(ran.status("steps.g"), Status::Success);
    let runs = std::fs::read_to_string(ran.dir.path().join("workspace/s/first_runs")).unwrap();
    assert_eq!(runs.lines().count(), 2, "the group's first step ran again");
}

#[tokio::test]
async fn pipeline_rollback_rolls_back_executed_stages_in_reverse_order() {
    let stage = |id: &str, steps: &str, rollback: &str| {
        format!(
            "- stage:\n    name: {id}\n    identifier: {id}\n    type: Custom\n    spec:\n      execution:\n        steps:\n{}        rollbackSteps:\n{}",
            indent(steps, 10),
            indent(rollback, 10)
        )
    };
    // Stages see only their own workspace; the operator shares `shared/` with every script.
    let stages = stage(
        "one",
        &run_step("a", "echo a", ""),
        &run_step("undo_one", "echo one >> ../../shared/order", ""),
    ) + &stage(
        "two",
        &run_step(
            "b",
            "exit 1",
            &on_failure("AllErrors", "type: PipelineRollback"),
        ),
        &run_step("undo_two", "echo two >> ../../shared/order", ""),
    ) + &stage(
        "three",
        &run_step("c", "echo c", ""),
        &run_step("undo_three", "echo three >> ../../shared/order", ""),
    );
    let config = "processSandbox:\n  paths:\n    - { path: shared, readOnly: false }\n";
    let ran = run_with_files(
        &pipeline_with_stages(&stages),
        config,
        &[],
        Default::default(),
        &[("shared/.keep", "")],
    )
    .await;
    let order = std::fs::read_to_string(ran.dir.path().join("shared/order")).unwrap();
    assert_eq!(order.lines().collect::<Vec<_>>(), ["two", "one"]);
    assert_eq!(ran.status("stages.three"), Status::Skipped);
    assert_eq!(ran.status("undo_three"), Status::Skipped);
    assert_eq!(ran.outcome.status, Status::Failed);
}

#[tokio::test]
async fn a_step_rule_wins_over_the_group_and_stage_rules() {
    let group = format!(
        "- stepGroup:\n    name: G\n    identifier: g\n    failureStrategies:\n      - onFailure:\n          errors: [AllErrors]\n          action:\n            type: MarkAsFailure\n    steps:\n{}",
        indent(
            &(run_step("own_rule", "exit 1", &on_failure("Unknown", "type: Ignore"))
                + &run_step("group_rule", "exit 1", "")),
            6
        )
    );
    let stages = format!(
        "- stage:\n    name: S\n    identifier: s\n    type: Custom\n    failureStrategies:\n      - onFailure:\n          errors: [AllErrors]\n          action:\n            type: Ignore\n    spec:\n      execution:\n        steps:\n{}{}",
        indent(&group, 10),
        indent(&run_step("stage_rule", "exit 1", ""), 10)
    );
    let ran = run(&pipeline_with_stages(&stages), "").await;
    assert_eq!(
        ran.status("own_rule"),
        Status::IgnoreFailed,
        "the step's own rule"
    );
    assert_eq!(ran.status("group_rule"), Status::Failed, "the group's rule");
    assert_eq!(
        ran.status("stage_rule"),
        Status::Skipped,
        "default-gated after a failure"
    );
}

#[tokio::test]
async fn a_named_error_type_wins_over_all_errors_in_the_same_list() {
    let rules = "  failureStrategies:\n    - onFailure:\n        errors: [AllErrors]\n        action:\n          type: MarkAsFailure\n    - onFailure:\n        errors: [Timeout]\n        action:\n          type: Ignore\n";
    let ran = run(
        &pipeline_with_steps(&run_step(
            "slow",
            "sleep 5",
            &format!("{rules}  timeout: 1s\n"),
        )),
        "",
    )
    .await;
    assert_eq!(ran.status("slow"), Status::IgnoreFailed);
    assert_eq!(
        ran.node("slow").error.as_ref().unwrap().error_type,
        "Timeout"
    );
}

#[test]
fn manual_intervention_is_refused_at_validation() {
    let yaml = pipeline_with_steps(&run_step(
        "x",
        "true",
        &on_failure(
            "AllErrors",
            "type: ManualIntervention\nspec:\n  timeout: 1h",
        ),
    ));
    let err = lockstep::pipeline::parse_pipeline(std::path::Path::new("p.yaml"), &yaml)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("ManualIntervention") && err.contains("non-interactive"),
        "{err}"
    );
    assert!(err.contains("p.yaml:"), "{err}");
}
