//! Timeouts at every level, and aborting a running pipeline.

mod support;

use std::time::{Duration, Instant};

use lockstep::exec::status::Status;
use lockstep::exec::{Cancel, Reason};
use support::*;

#[tokio::test]
async fn a_step_group_timeout_expires_its_running_step_and_skips_the_rest() {
    let steps = group(
        "g",
        &(run_step("slow", "sleep 30", "") + &run_step("after", "true", "")),
        "  timeout: 1s\n",
    );
    let started = Instant::now();
    let ran = run(&pipeline_with_steps(&steps), "").await;
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(ran.status("slow"), Status::Expired);
    assert_eq!(
        ran.node("slow").error.as_ref().unwrap().error_type,
        "Timeout"
    );
    assert_eq!(ran.status("after"), Status::Skipped);
    assert_eq!(ran.status("steps.g"), Status::Expired);
}

#[tokio::test]
async fn a_stage_timeout_expires_the_stage_and_later_stages_are_skipped() {
    let stages = stage("a", &run_step("slow", "sleep 30", ""), "  timeout: 1s\n")
        + &stage("b", &run_step("x", "true", ""), "");
    let ran = run(&pipeline_with_stages(&stages), "").await;
    assert_eq!(ran.status("stages.a"), Status::Expired);
    assert_eq!(ran.status("stages.b"), Status::Skipped);
    assert_eq!(ran.outcome.status, Status::Expired);
}

#[tokio::test]
async fn a_pipeline_timeout_expires_the_whole_run() {
    let pipeline = pipeline_with_steps(&run_step("slow", "sleep 30", "")).replace(
        "  identifier: test\n",
        "  identifier: test\n  timeout: 1s\n",
    );
    let started = Instant::now();
    let ran = run(&pipeline, "").await;
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(ran.status("slow"), Status::Expired);
    assert_eq!(ran.outcome.status, Status::Expired);
}

#[tokio::test]
async fn aborting_cancels_running_steps_and_skips_the_rest() {
    let cancel = Cancel::default();
    let abort_soon = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(500)).await;
        abort_soon.cancel(Reason::Aborted);
    });
    let steps = parallel(&(run_step("slow", "sleep 30", "") + &run_step("quick", "true", "")))
        + &run_step("after", "true", "");
    let stages = stage("a", &steps, "")
        + &stage(
            "b",
            &run_step("later", "true", ""),
            "  when:\n    pipelineStatus: All\n",
        );
    let started = Instant::now();
    let ran = run_with_cancel(&pipeline_with_stages(&stages), "", &[], cancel).await;
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(ran.status("slow"), Status::Aborted);
    assert_eq!(ran.status("quick"), Status::Success);
    assert_eq!(ran.status("after"), Status::Skipped);
    assert_eq!(ran.status("later"), Status::Skipped);
    assert_eq!(ran.outcome.status, Status::Aborted);
}
