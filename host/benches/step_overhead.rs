//! Per-step overhead of the sandbox, against spawning a process, and a 1,000-step pipeline.
//!
//! Run with `cargo bench --bench step_overhead`; the README keeps the latest numbers.
//! Targets (2-core machine): instantiate + call p50 ≤ 20 µs; whole lifecycle p50 ≤ 60 µs;
//! 1,000 no-op steps in parallel groups of 10 ≤ 200 ms.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use lockstep::capability::Grants;
use lockstep::config::Config;
use lockstep::exec::{Cancel, Meta, Observer, Record};
use lockstep::log::{Level, LogSink, SecretMask, StepLog};
use lockstep::sandbox::limits::StepLimits;
use lockstep::sandbox::{Invocation, Sandbox, StepComponent};
use lockstep::session::Session;

const RUNS: usize = 20_000;
const PROCESS_RUNS: usize = 2_000;
const PIPELINE_RUNS: usize = 7;

struct Quiet;

impl LogSink for Quiet {
    fn line(&self, _: Level, _: &str) {}
}

impl Observer for Quiet {
    fn started(&self, _: &Record) {}
    fn finished(&self, _: &Record) {}
    fn log(&self, _: &str, _: Level, _: &str) {}
}

fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    samples.sort_unstable();
    samples[((samples.len() - 1) as f64 * p).round() as usize]
}

fn micros(d: Duration) -> String {
    format!("{:.1} µs", d.as_secs_f64() * 1e6)
}

fn invocation(workspace: &Path) -> Invocation {
    Invocation {
        settings: None,
        identifier: "noop".into(),
        step_type: "Noop".into(),
        spec: serde_json::json!({}),
        grants: Grants::default(),
        workspace: workspace.to_path_buf(),
        log: StepLog::new(SecretMask::default(), Arc::new(Quiet), 1 << 20),
        limits: StepLimits::third_party(),
        timeout: Duration::from_secs(60),
    }
}

/// (instantiate + call, whole lifecycle including the store drop) for each run.
async fn step_samples(
    sandbox: &Sandbox,
    noop: &StepComponent,
    workspace: &Path,
    runs: usize,
) -> (Vec<Duration>, Vec<Duration>) {
    let mut critical = Vec::with_capacity(runs);
    let mut whole = Vec::with_capacity(runs);
    for _ in 0..runs {
        let invocation = invocation(workspace);
        let start = Instant::now();
        let mut prepared = sandbox
            .prepare(noop, invocation)
            .unwrap_or_else(|f| panic!("{}", f.kind));
        prepared.call().await;
        let called = start.elapsed();
        prepared.finish().unwrap_or_else(|f| panic!("{}", f.kind));
        whole.push(start.elapsed());
        critical.push(called);
    }
    (critical, whole)
}

fn process_samples(runs: usize) -> Vec<Duration> {
    (0..runs)
        .map(|_| {
            let start = Instant::now();
            std::process::Command::new("/bin/true")
                .status()
                .expect("running /bin/true");
            start.elapsed()
        })
        .collect()
}

fn thousand_step_pipeline(dir: &Path) -> (String, String) {
    let noop = lockstep_test_components::path("noop");
    let digest = lockstep::sandbox::artifact::sha256_hex(&std::fs::read(&noop).unwrap());
    let config = format!(
        "stepTypes:\n  Noop:\n    component: {}\n    sha256: {digest}\n",
        noop.display()
    );
    let mut steps = String::new();
    for group in 0..100 {
        steps.push_str("              - parallel:\n");
        for i in 0..10 {
            steps.push_str(&format!("                  - step:\n                      type: Noop\n                      name: n{group}_{i}\n                      identifier: n{group}_{i}\n"));
        }
    }
    let pipeline = format!(
        "pipeline:\n  name: Thousand\n  identifier: thousand\n  stages:\n    - stage:\n        name: S\n        identifier: s\n        type: Custom\n        spec:\n          execution:\n            steps:\n{steps}"
    );
    std::fs::write(dir.join("lockstep.yaml"), &config).unwrap();
    (pipeline, config)
}

async fn pipeline_once(sandbox: &Sandbox, dir: &Path, pipeline: &str, config: &Config) -> Duration {
    let start = Instant::now();
    let session = Session::load(&dir.join("p.yaml"), pipeline, config.clone()).unwrap();
    let plan = session
        .plan(
            &BTreeMap::new(),
            Meta {
                execution_id: "bench".into(),
                ..session.meta()
            },
        )
        .unwrap();
    let prepared = session
        .prepare(&plan, sandbox, dir.join("workspace"))
        .unwrap_or_else(|e| panic!("{e:?}"));
    let outcome = session
        .run(prepared, Arc::new(Quiet), Cancel::default())
        .await;
    assert_eq!(outcome.status, lockstep::exec::status::Status::Success);
    assert_eq!(outcome.records.len(), 1002);
    start.elapsed()
}

fn verdict(value: Duration, target: Duration) -> &'static str {
    if value <= target { "meets" } else { "MISSES" }
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let sandbox =
        Sandbox::new(32, dir.path().join("cache"), &|w| eprintln!("warning: {w}")).unwrap();
    println!("allocator: {:?}", sandbox.allocator());
    let wasm = std::fs::read(lockstep_test_components::path("noop")).unwrap();
    let noop = sandbox.load(&wasm, None).unwrap();

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (mut critical, mut whole) = runtime.block_on(async {
        step_samples(&sandbox, &noop, dir.path(), 2_000).await; // warm-up
        step_samples(&sandbox, &noop, dir.path(), RUNS).await
    });
    let mut process = process_samples(PROCESS_RUNS);

    let (pipeline, config_text) = thousand_step_pipeline(dir.path());
    let config = Config::parse(&dir.path().join("lockstep.yaml"), &config_text).unwrap();
    let mut pipeline_times: Vec<Duration> = runtime.block_on(async {
        pipeline_once(&sandbox, dir.path(), &pipeline, &config).await; // warm-up
        let mut times = vec![];
        for _ in 0..PIPELINE_RUNS {
            times.push(pipeline_once(&sandbox, dir.path(), &pipeline, &config).await);
        }
        times
    });

    let (c50, c99) = (
        percentile(&mut critical, 0.50),
        percentile(&mut critical, 0.99),
    );
    let (w50, w99) = (percentile(&mut whole, 0.50), percentile(&mut whole, 0.99));
    let (p50, p99) = (
        percentile(&mut process, 0.50),
        percentile(&mut process, 0.99),
    );
    let pipeline_median = percentile(&mut pipeline_times, 0.50);
    println!("no-op step, {RUNS} runs:");
    println!(
        "  instantiate + call   p50 {:>10}  p99 {:>10}  (target p50 ≤ 20 µs: {})",
        micros(c50),
        micros(c99),
        verdict(c50, Duration::from_micros(20))
    );
    println!(
        "  whole lifecycle      p50 {:>10}  p99 {:>10}  (target p50 ≤ 60 µs: {})",
        micros(w50),
        micros(w99),
        verdict(w50, Duration::from_micros(60))
    );
    println!("/bin/true, {PROCESS_RUNS} spawns:");
    println!(
        "  spawn + wait         p50 {:>10}  p99 {:>10}",
        micros(p50),
        micros(p99)
    );
    println!(
        "  a process costs {:.0}× a whole step lifecycle (p50)",
        p50.as_secs_f64() / w50.as_secs_f64()
    );
    println!(
        "1,000 no-op steps in parallel groups of 10 (parse, plan, run), median of {PIPELINE_RUNS}:"
    );
    println!(
        "  {:.1} ms  (target ≤ 200 ms: {})",
        pipeline_median.as_secs_f64() * 1e3,
        verdict(pipeline_median, Duration::from_millis(200))
    );
}
