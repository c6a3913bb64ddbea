//! `lockstep:process`: shell scripts, run as host processes confined by the kernel.
//!
//! Invariants:
//! - A script runs only with a [`ProcessGrant`]; the grant is checked on every call.
//! - Unless the operator turned confinement off, the script runs in the sandbox [`jail`]
//!   describes: the stage workspace read-write, a private `/tmp`, read-only system directories,
//!   its own PID namespace, no network unless the operator grants it, and no capabilities.
//! - It sees `PATH`, `HOME` (its private `/tmp`) and the variables the step passes; nothing of
//!   the runner's environment.
//! - When the script ends, or its call is dropped (timeout, abort), everything it started ends
//!   too; its output streams into the step log as it is produced.
//! - A script in a Kubernetes step group reaches that cluster's API server, and only it, through
//!   the runner's [`cluster_proxy`]; it never holds the cluster's credentials.

pub mod cluster_proxy;
pub mod jail;

use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::Command;

use wasmtime::component::{HasSelf, Linker};

use crate::capability::{Error, WitError};
pub use crate::config::ProcessPolicy;
use crate::log::StepLog;
pub use bindings::lockstep::process::process::{Script, ScriptResult, Shell};
pub use cluster_proxy::ClusterAccess;
use jail::Jail;

/// The host bindings of `lockstep:process`.
pub mod bindings {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "lockstep:process/imports",
        imports: { default: async | trappable },
        with: { "lockstep:common/types": crate::capability::error::wit::lockstep::common::types },
    });
}

/// What a step's scripts may do: the operator's policy, and for a Run step in a Kubernetes step
/// group, the cluster its `kubectl` reaches.
#[derive(Debug, Clone)]
pub struct ProcessGrant {
    pub policy: Arc<ProcessPolicy>,
    pub cluster: Option<ClusterAccess>,
}

/// One step run's scripts: its grant (if any), where they run, where their output goes.
pub struct ProcessCtx {
    pub grant: Option<ProcessGrant>,
    /// The stage workspace (absolute).
    pub workspace: std::path::PathBuf,
    pub log: StepLog,
    /// The step's identifier, for denials.
    pub step: String,
}

/// A store whose steps may run scripts.
pub trait ProcessState: Send {
    fn process(&mut self) -> &mut ProcessCtx;
}

pub fn add_to_linker<T: ProcessState + 'static>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    bindings::lockstep::process::process::add_to_linker::<T, HasSelf<ProcessCtx>>(linker, |state| {
        state.process()
    })
}

impl bindings::lockstep::process::process::Host for ProcessCtx {
    async fn run_script(
        &mut self,
        script: Script,
    ) -> wasmtime::Result<Result<ScriptResult, WitError>> {
        let Some(grant) = &self.grant else {
            return Ok(Err(WitError::AccessDenied(format!(
                "step `{}` was not granted `process`; add `{}` to its step type in lockstep.yaml",
                self.step,
                crate::capability::Capability::Process.how_to_grant()
            ))));
        };
        Ok(run(&self.workspace, grant, script, &self.log)
            .await
            .map_err(Into::into))
    }
}

/// Runs `script` to completion in `workspace` (absolute), within `grant`.
pub async fn run(
    workspace: &Path,
    grant: &ProcessGrant,
    script: Script,
    log: &StepLog,
) -> Result<ScriptResult, Error> {
    for name in &script.capture {
        if !crate::pipeline::is_identifier(name) {
            return Err(Error::Invalid(format!(
                "`{name}` is not a shell variable name"
            )));
        }
    }
    for (name, _) in &script.env {
        if !crate::pipeline::is_identifier(name) {
            return Err(Error::Invalid(format!(
                "`{name}` is not an environment variable name"
            )));
        }
    }
    let mut jail = Jail::prepare(&grant.policy, workspace, grant.cluster.is_some())
        .map_err(|e| Error::Unavailable(e.to_string()))?;
    let lockstep_dir = jail.tmp_on_host().join(".lockstep");
    std::fs::create_dir(&lockstep_dir)
        .map_err(|e| Error::Unavailable(format!("preparing the script's /tmp: {e}")))?;
    let inside = |name: &str| jail.tmp().join(".lockstep").join(name);
    let capture_file = inside("capture");
    let program = match script.shell {
        Shell::Sh => "sh",
        Shell::Bash => "bash",
    };
    // A file, not `-c`: the kernel caps one argument at 128 KiB, and scripts may be longer.
    std::fs::write(
        lockstep_dir.join("script"),
        wrap(&script.source, &script.capture),
    )
    .map_err(|e| Error::Unavailable(format!("writing the script: {e}")))?;
    let mut command = Command::new(program);
    command
        .arg(inside("script"))
        .current_dir(workspace)
        .env_clear()
        .env("PATH", jail.path_variable(&grant.policy))
        .env("HOME", jail.tmp())
        .env("TMPDIR", jail.tmp())
        .env("LOCKSTEP_CAPTURE_FILE", &capture_file);
    if let Some(cluster) = &grant.cluster {
        let kubeconfig = match jail.listens_for_cluster() {
            true => cluster.proxy_kubeconfig(),
            false => cluster.direct_kubeconfig().map_err(Error::Invalid)?,
        };
        std::fs::write(lockstep_dir.join("kubeconfig"), kubeconfig)
            .map_err(|e| Error::Unavailable(format!("writing the step group's kubeconfig: {e}")))?;
        command.env("KUBECONFIG", inside("kubeconfig"));
    }
    command
        .envs(script.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    jail.arm(&mut command);
    let spawned = command.spawn();
    let listener = jail
        .spawned(&spawned)
        .map_err(|e| Error::Unavailable(e.to_string()))?;
    let mut child = spawned.map_err(|e| Error::Unavailable(format!("starting {program}: {e}")))?;
    let group = KillGroupOnDrop(child.id());
    // Serves the script's kubectl until the script ends (dropping it stops the proxy).
    let _proxy = match (&grant.cluster, listener) {
        (Some(cluster), Some(listener)) => {
            Some(cluster_proxy::ClusterProxy::start(listener, cluster).await?)
        }
        _ => None,
    };
    let stdout = child.stdout.take().expect("stdout is piped");
    let stderr = child.stderr.take().expect("stderr is piped");
    let wait = async {
        let status = child.wait().await;
        // Whatever the script left running in the background ends with it.
        drop(group);
        status
    };
    let (status, (), ()) = tokio::join!(wait, pump(stdout, log), pump(stderr, log));
    log.flush();
    let status = status.map_err(|e| Error::Unavailable(format!("waiting for {program}: {e}")))?;
    let exit_code = status.code().unwrap_or_else(|| {
        128 + std::os::unix::process::ExitStatusExt::signal(&status).unwrap_or(0)
    });
    let captured = std::fs::read(lockstep_dir.join("capture")).unwrap_or_default();
    Ok(ScriptResult {
        exit_code,
        variables: parse_capture(&script.capture, &captured),
    })
}

/// Whether scripts can be confined here as `policy` requires: runs `true` in a sandbox, on a
/// thread of its own (callable from synchronous code and from inside a runtime alike).
/// `Err` says what the kernel refused and how the operator can opt out.
pub fn probe(policy: &ProcessPolicy) -> Result<(), String> {
    let policy = policy.clone();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("starting the probe: {e}"))?;
        runtime.block_on(probe_async(&policy))
    })
    .join()
    .unwrap_or_else(|_| Err("the sandbox probe panicked".into()))
}

async fn probe_async(policy: &ProcessPolicy) -> Result<(), String> {
    let workspace = tempfile::tempdir().map_err(|e| format!("creating a probe workspace: {e}"))?;
    let grant = ProcessGrant {
        policy: Arc::new(policy.clone()),
        cluster: None,
    };
    let log = StepLog::new(Default::default(), Arc::new(crate::log::Discard), 1 << 10);
    let script = Script {
        shell: Shell::Sh,
        source: "true".into(),
        env: vec![],
        capture: vec![],
    };
    match run(workspace.path(), &grant, script, &log).await {
        Ok(result) if result.exit_code == 0 => Ok(()),
        Ok(result) => Err(format!(
            "a confined `true` exited with {}",
            result.exit_code
        )),
        Err(error) => Err(error.to_string()),
    }
}

/// Wraps the user's script so that, however it exits, the final values of the captured
/// variables are written (NUL-separated: set-flag, value) to `$LOCKSTEP_CAPTURE_FILE`.
fn wrap(source: &str, capture: &[String]) -> String {
    let mut out = String::from("__lockstep_capture() {\n  :\n");
    for name in capture {
        out.push_str(&format!(
            "  printf '%s\\0%s\\0' \"${{{name}+set}}\" \"${{{name}-}}\"\n"
        ));
    }
    out.push_str("}\ntrap '__lockstep_capture > \"$LOCKSTEP_CAPTURE_FILE\"' EXIT\nset -e\n");
    out.push_str(source);
    out.push('\n');
    out
}

fn parse_capture(names: &[String], captured: &[u8]) -> Vec<(String, Option<String>)> {
    let mut fields = captured.split(|b| *b == 0);
    names
        .iter()
        .map(|name| {
            let set = fields.next().is_some_and(|f| f == b"set");
            let value = fields
                .next()
                .map(|v| String::from_utf8_lossy(v).into_owned())
                .unwrap_or_default();
            (name.clone(), set.then_some(value))
        })
        .collect()
}

async fn pump(mut stream: impl AsyncRead + Unpin, log: &StepLog) {
    let mut buf = vec![0u8; 8192];
    while let Ok(n) = stream.read(&mut buf).await {
        if n == 0 {
            break;
        }
        log.write_stream(&buf[..n]);
    }
}

/// Kills the script's whole process group when the script ends or its call is dropped. Confined,
/// the group is the supervisor and the script, whose PID namespace takes everything else down;
/// unconfined, it is what the script did not move out of the group.
struct KillGroupOnDrop(Option<u32>);

impl Drop for KillGroupOnDrop {
    fn drop(&mut self) {
        if let Some(pid) = self.0.and_then(|p| i32::try_from(p).ok()) {
            // SAFETY: killpg has no memory-safety preconditions; the group id is our child's pid.
            unsafe {
                libc::killpg(pid, libc::SIGKILL);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::{Level, LogSink, SecretMask};
    use std::sync::Mutex;

    #[derive(Default)]
    struct Lines(Mutex<Vec<String>>);

    impl LogSink for Lines {
        fn line(&self, _: Level, text: &str) {
            self.0.lock().unwrap().push(text.to_string());
        }
    }

    fn script(shell: Shell, source: &str, capture: &[&str]) -> Script {
        Script {
            shell,
            source: source.into(),
            env: vec![("GREETING".into(), "hi".into())],
            capture: capture.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn confined() -> ProcessGrant {
        ProcessGrant {
            policy: Arc::new(ProcessPolicy::default()),
            cluster: None,
        }
    }

    #[tokio::test]
    async fn output_streams_into_the_log_and_variables_are_captured() {
        let dir = tempfile::tempdir().unwrap();
        let sink = Arc::new(Lines::default());
        let log = StepLog::new(SecretMask::default(), sink.clone(), 1 << 20);
        let result = run(
            dir.path(),
            &confined(),
            script(
                Shell::Bash,
                "echo \"$GREETING from $(pwd)\"\nVERSION=1.2\nEMPTY=",
                &["VERSION", "EMPTY", "NEVER"],
            ),
            &log,
        )
        .await
        .unwrap();
        assert_eq!(result.exit_code, 0);
        assert_eq!(
            result.variables[0],
            ("VERSION".to_string(), Some("1.2".to_string()))
        );
        assert_eq!(
            result.variables[1],
            ("EMPTY".to_string(), Some(String::new()))
        );
        assert_eq!(result.variables[2], ("NEVER".to_string(), None));
        let lines = sink.0.lock().unwrap();
        assert_eq!(lines[0], format!("hi from {}", dir.path().display()));
    }

    #[tokio::test]
    async fn a_failing_command_stops_the_script_and_keeps_captured_values() {
        let dir = tempfile::tempdir().unwrap();
        let log = StepLog::new(SecretMask::default(), Arc::new(Lines::default()), 1 << 20);
        let result = run(
            dir.path(),
            &confined(),
            script(Shell::Sh, "A=before\nfalse\nA=after", &["A"]),
            &log,
        )
        .await
        .unwrap();
        assert_eq!(result.exit_code, 1);
        assert_eq!(result.variables[0].1.as_deref(), Some("before"));
    }

    #[tokio::test]
    async fn the_host_environment_is_not_passed_on() {
        let dir = tempfile::tempdir().unwrap();
        let log = StepLog::new(SecretMask::default(), Arc::new(Lines::default()), 1 << 20);
        let result = run(
            dir.path(),
            &confined(),
            script(Shell::Sh, "H=$HOME; U=${USER-unset}", &["H", "U"]),
            &log,
        )
        .await
        .unwrap();
        assert_eq!(
            result.variables[0].1.as_deref(),
            Some("/tmp"),
            "HOME is the script's private /tmp"
        );
        assert_eq!(result.variables[1].1.as_deref(), Some("unset"));
    }

    #[tokio::test]
    async fn dropping_the_call_kills_everything_the_script_started() {
        let dir = tempfile::tempdir().unwrap();
        let log = StepLog::new(SecretMask::default(), Arc::new(Lines::default()), 1 << 20);
        let source =
            "(sleep 1; touch survived) &\nsetsid sh -c 'sleep 1; touch escaped' &\nsleep 30";
        let grant = confined();
        let call = run(dir.path(), &grant, script(Shell::Sh, source, &[]), &log);
        assert!(
            tokio::time::timeout(std::time::Duration::from_millis(500), call)
                .await
                .is_err()
        );
        tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
        assert!(
            !dir.path().join("survived").exists(),
            "a child of the killed script kept running"
        );
        assert!(
            !dir.path().join("escaped").exists(),
            "a child that left the process group kept running"
        );
    }

    #[test]
    fn confinement_is_available_here() {
        probe(&ProcessPolicy::default()).unwrap();
    }
}
