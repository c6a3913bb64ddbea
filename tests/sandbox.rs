//! The sandbox: denials, limits and timeouts, each while the other steps of the pipeline go on.

mod support;

use lockstep::exec::status::Status;
use support::*;

fn custom_step(id: &str, component: &str, extra: &str) -> String {
    format!(
        "- step:\n    type: {}\n    name: {id}\n    identifier: {id}\n{}",
        type_name(component),
        indent(extra, 4)
    )
}

/// A pipeline with the step under test in parallel with an ordinary Run step.
fn beside_a_normal_step(step: &str) -> String {
    pipeline_with_steps(
        &("- parallel:\n".to_string()
            + &indent(
                &(step.to_string() + &run_step("normal", "echo still running", "")),
                4,
            )),
    )
}

fn config(components: &[(&str, &str)]) -> String {
    let mut out = "stepTypes:\n".to_string();
    for (name, extra) in components {
        out.push_str(&step_type(name, extra));
    }
    out
}

#[tokio::test]
async fn reading_a_file_without_a_files_grant_is_refused_before_it_starts() {
    let ran = run(
        &beside_a_normal_step(&custom_step("reader", "read-file", "")),
        &config(&[("read-file", "")]),
    )
    .await;
    let error = ran.node("reader").error.clone().unwrap();
    assert_eq!(ran.status("reader"), Status::Failed);
    assert_eq!(error.error_type, "Authorization");
    assert!(
        error.message.contains("wasi:filesystem") && error.message.contains("files"),
        "{}",
        error.message
    );
    assert_eq!(ran.status("normal"), Status::Success);
}

#[tokio::test]
async fn a_files_grant_preopens_only_the_stage_workspace() {
    let pipeline = pipeline_with_steps(
        &(run_step("write", "echo hello > greeting.txt", "")
            + &custom_step(
                "reader",
                "read-file",
                "spec:\n  path: /workspace/greeting.txt",
            )),
    );
    let ran = run(
        &pipeline,
        &config(&[(
            "read-file",
            "    grants:\n      files:\n        - path: .\n          readOnly: true\n",
        )]),
    )
    .await;
    assert_eq!(
        ran.status("reader"),
        Status::Success,
        "{:?}",
        ran.node("reader").error
    );
    assert_eq!(ran.output("reader", "content"), "hello");

    let escape = pipeline_with_steps(&custom_step(
        "reader",
        "read-file",
        "spec:\n  path: /workspace/../../../../etc/passwd",
    ));
    let ran = run(
        &escape,
        &config(&[(
            "read-file",
            "    grants:\n      files:\n        - path: .\n",
        )]),
    )
    .await;
    assert_eq!(ran.status("reader"), Status::Failed);
}

#[tokio::test]
async fn the_host_environment_is_invisible_to_steps() {
    // SAFETY: set before any thread of this test reads the environment.
    unsafe { std::env::set_var("LOCKSTEP_TEST_HOST_SECRET", "s3cret") };
    let ran = run(
        &beside_a_normal_step(&custom_step("env", "read-env", "")),
        &config(&[("read-env", "")]),
    )
    .await;
    assert_eq!(
        ran.status("env"),
        Status::Success,
        "{:?}",
        ran.node("env").error
    );
    assert_eq!(ran.output("env", "visible"), "");
}

#[tokio::test]
async fn granted_environment_variables_are_all_a_step_sees() {
    let ran = run(
        &pipeline_with_steps(&custom_step("env", "read-env", "")),
        &config(&[(
            "read-env",
            "    grants:\n      env:\n        GREETING: hi\n",
        )]),
    )
    .await;
    assert_eq!(ran.output("env", "visible"), "GREETING");
}

#[tokio::test]
async fn a_component_that_imports_sockets_is_refused_and_others_go_on() {
    let ran = run(
        &beside_a_normal_step(&custom_step("net", "open-socket", "")),
        &config(&[("open-socket", "")]),
    )
    .await;
    let error = ran.node("net").error.clone().unwrap();
    assert!(error.message.contains("wasi:sockets"), "{}", error.message);
    assert_eq!(ran.status("normal"), Status::Success);
}

#[tokio::test]
async fn an_ungranted_capability_import_is_refused_naming_the_import() {
    let ran = run(
        &beside_a_normal_step(&custom_step("proc", "needs-process", "")),
        &config(&[("needs-process", "")]),
    )
    .await;
    let error = ran.node("proc").error.clone().unwrap();
    assert!(
        error.message.contains("lockstep:process/process")
            && error.message.contains("process: true"),
        "{}",
        error.message
    );
    assert_eq!(ran.status("normal"), Status::Success);

    let granted = run(
        &pipeline_with_steps(&custom_step("proc", "needs-process", "")),
        &config(&[("needs-process", "    grants:\n      process: true\n")]),
    )
    .await;
    assert_eq!(granted.status("proc"), Status::Success);
}

#[tokio::test]
async fn a_busy_loop_is_stopped_by_its_timeout() {
    let started = std::time::Instant::now();
    let ran = run(
        &beside_a_normal_step(&custom_step("spin", "busy-loop", "timeout: 1s")),
        &config(&[("busy-loop", "")]),
    )
    .await;
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(ran.status("spin"), Status::Expired);
    assert_eq!(
        ran.node("spin").error.as_ref().unwrap().error_type,
        "Timeout"
    );
    assert_eq!(ran.status("normal"), Status::Success);
}

#[tokio::test]
async fn a_sleeping_run_step_is_killed_at_its_timeout() {
    let started = std::time::Instant::now();
    let ran = run(
        &pipeline_with_steps(&run_step("sleepy", "sleep 30", "  timeout: 1s\n")),
        "",
    )
    .await;
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    assert_eq!(ran.status("sleepy"), Status::Expired);
    assert_eq!(
        ran.node("sleepy").error.as_ref().unwrap().error_type,
        "Timeout"
    );
}

#[tokio::test]
async fn memory_beyond_the_limit_fails_the_step_not_the_host() {
    let pipeline =
        pipeline_with_steps(&custom_step("hog", "memory-hog", "spec:\n  mebibytes: 200"));
    let ran = run(
        &pipeline,
        &config(&[("memory-hog", "    limits:\n      memory: 64Mi\n")]),
    )
    .await;
    assert_eq!(ran.status("hog"), Status::Failed);
    assert_eq!(
        ran.node("hog").error.as_ref().unwrap().error_type,
        "ResourceLimitsFailure",
        "{:?}",
        ran.node("hog").error
    );
}

#[tokio::test]
async fn output_is_stripped_of_control_sequences_and_truncated_at_the_budget() {
    let pipeline = pipeline_with_steps(&custom_step("chatty", "chatty", "spec:\n  lines: 100000"));
    let ran = run(
        &pipeline,
        &config(&[("chatty", "    limits:\n      log: 4Ki\n")]),
    )
    .await;
    assert_eq!(ran.status("chatty"), Status::Success);
    let logs = ran.all_logs();
    assert!(logs.contains("line 0  of chatter"), "{logs}");
    assert!(!logs.contains('\u{1b}'));
    assert!(logs.contains("log truncated"));
    assert!(logs.len() < 8 * 1024);
}

#[tokio::test]
async fn a_component_whose_digest_differs_from_its_pin_is_refused_before_anything_runs() {
    let config = format!(
        "stepTypes:\n  Noop:\n    component: {}\n    sha256: {}\n",
        component_path("noop").display(),
        "0".repeat(64)
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("p.yaml");
    std::fs::write(&file, pipeline_with_steps(&custom_step("n", "noop", ""))).unwrap();
    let config =
        lockstep::config::Config::parse(&dir.path().join("lockstep.yaml"), &config).unwrap();
    let session =
        lockstep::session::Session::load(&file, &std::fs::read_to_string(&file).unwrap(), config)
            .unwrap();
    let plan = session.plan(&Default::default(), session.meta()).unwrap();
    let Err(problems) = session.prepare(&plan, sandbox(), dir.path().join("workspace")) else {
        panic!("a wrong pin was accepted")
    };
    assert!(
        problems[0].contains("pinned to")
            && problems[0].contains(&sha256_of(&component_path("noop"))),
        "{problems:?}"
    );
}

#[tokio::test]
async fn a_host_call_carrying_more_than_the_hostcall_budget_fails_the_step() {
    let pipeline = pipeline_with_steps(&custom_step(
        "flood",
        "chatty",
        "spec:\n  lines: 0\n  logMebibytes: 32",
    ));
    let ran = run(&pipeline, &config(&[("chatty", "")])).await;
    assert_eq!(ran.status("flood"), Status::Failed);
    let error = ran.node("flood").error.clone().unwrap();
    assert_eq!(
        error.error_type, "ResourceLimitsFailure",
        "{}",
        error.message
    );
    assert_eq!(
        error.message,
        "passed more than 16 MiB to the host in one call"
    );
}

#[tokio::test]
async fn a_run_step_longer_than_the_kernels_limit_on_one_argument_runs() {
    // 200 KiB of script: one command-line argument may hold at most 128 KiB.
    let script = "# padding padding padding padding padding padding padding padding\n"
        .repeat(3_200)
        + "LAST=reached\n";
    let ran = run(
        &pipeline_with_steps(&run_step_with_outputs("long", &script, &["LAST"], "")),
        "",
    )
    .await;
    assert_eq!(
        ran.status("long"),
        Status::Success,
        "{:?}",
        ran.node("long").error
    );
    assert_eq!(ran.output("long", "LAST"), "reached");
}
