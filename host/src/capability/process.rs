//! `lockstep:process`: shell scripts run as host subprocesses in the stage workspace.
//!
//! Invariants: the script sees only `PATH` and the variables the step passes; it runs in its own
//! process group, and the whole group is killed when the step's call is dropped (timeout, abort);
//! its output streams into the step log as it is produced.

use std::path::Path;
use std::process::Stdio;

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::Command;

use crate::sandbox::StepState;
use crate::sandbox::bindings::WitError;
use crate::sandbox::bindings::lockstep::process::process::{Host, Script, ScriptResult, Shell};
use crate::sandbox::log::StepLog;

impl Host for StepState {
    async fn run_script(&mut self, script: Script) -> wasmtime::Result<Result<ScriptResult, WitError>> {
        if !self.run.grants.process {
            return Ok(Err(WitError::AccessDenied(format!(
                "step `{}` was not granted `process`; add `{}` to its step type in lockstep.yaml",
                self.run.identifier,
                crate::capability::Capability::Process.how_to_grant()
            ))));
        }
        Ok(run(&self.run.workspace, script, &self.run.log).await)
    }
}

/// Runs `script` to completion in `workspace`.
pub async fn run(workspace: &Path, script: Script, log: &StepLog) -> Result<ScriptResult, WitError> {
    for name in &script.capture {
        if !crate::pipeline::is_identifier(name) {
            return Err(WitError::Invalid(format!("`{name}` is not a shell variable name")));
        }
    }
    for (name, _) in &script.env {
        if !crate::pipeline::is_identifier(name) {
            return Err(WitError::Invalid(format!("`{name}` is not an environment variable name")));
        }
    }
    let capture_file = tempfile::NamedTempFile::new().map_err(|e| WitError::Unavailable(format!("creating a temporary file: {e}")))?;
    let program = match script.shell {
        Shell::Sh => "sh",
        Shell::Bash => "bash",
    };
    let mut command = Command::new(program);
    command
        .arg("-c")
        .arg(wrap(&script.source, &script.capture))
        .current_dir(workspace)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into()))
        .env("LOCKSTEP_CAPTURE_FILE", capture_file.path())
        .envs(script.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let mut child = command.spawn().map_err(|e| WitError::Unavailable(format!("starting {program}: {e}")))?;
    let group = KillGroupOnDrop(child.id());
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
    let status = status.map_err(|e| WitError::Unavailable(format!("waiting for {program}: {e}")))?;
    let exit_code = status.code().unwrap_or_else(|| 128 + std::os::unix::process::ExitStatusExt::signal(&status).unwrap_or(0));
    let captured = std::fs::read(capture_file.path()).unwrap_or_default();
    Ok(ScriptResult { exit_code, variables: parse_capture(&script.capture, &captured) })
}

/// Wraps the user's script so that, however it exits, the final values of the captured
/// variables are written (NUL-separated: set-flag, value) to `$LOCKSTEP_CAPTURE_FILE`.
fn wrap(source: &str, capture: &[String]) -> String {
    let mut out = String::from("__lockstep_capture() {\n  :\n");
    for name in capture {
        out.push_str(&format!("  printf '%s\\0%s\\0' \"${{{name}+set}}\" \"${{{name}-}}\"\n"));
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
            let value = fields.next().map(|v| String::from_utf8_lossy(v).into_owned()).unwrap_or_default();
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

/// Kills the script's whole process group (the shell and everything it started) when the script
/// ends or its call is dropped; `kill_on_drop` alone would leave a backgrounded `sleep` behind.
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
    use crate::sandbox::log::{Level, LogSink, SecretMask};
    use std::sync::{Arc, Mutex};

    #[derive(Default)]
    struct Lines(Mutex<Vec<String>>);

    impl LogSink for Lines {
        fn line(&self, _: Level, text: &str) {
            self.0.lock().unwrap().push(text.to_string());
        }
    }

    fn script(shell: Shell, source: &str, capture: &[&str]) -> Script {
        Script { shell, source: source.into(), env: vec![("GREETING".into(), "hi".into())], capture: capture.iter().map(|s| s.to_string()).collect() }
    }

    #[tokio::test]
    async fn output_streams_into_the_log_and_variables_are_captured() {
        let dir = tempfile::tempdir().unwrap();
        let sink = Arc::new(Lines::default());
        let log = StepLog::new(SecretMask::default(), sink.clone(), 1 << 20);
        let result = run(dir.path(), script(Shell::Bash, "echo \"$GREETING from $(pwd)\"\nVERSION=1.2\nEMPTY=", &["VERSION", "EMPTY", "NEVER"]), &log).await.unwrap();
        assert_eq!(result.exit_code, 0);
        assert_eq!(result.variables[0], ("VERSION".to_string(), Some("1.2".to_string())));
        assert_eq!(result.variables[1], ("EMPTY".to_string(), Some(String::new())));
        assert_eq!(result.variables[2], ("NEVER".to_string(), None));
        let lines = sink.0.lock().unwrap();
        assert_eq!(lines[0], format!("hi from {}", dir.path().display()));
    }

    #[tokio::test]
    async fn a_failing_command_stops_the_script_and_keeps_captured_values() {
        let dir = tempfile::tempdir().unwrap();
        let log = StepLog::new(SecretMask::default(), Arc::new(Lines::default()), 1 << 20);
        let result = run(dir.path(), script(Shell::Sh, "A=before\nfalse\nA=after", &["A"]), &log).await.unwrap();
        assert_eq!(result.exit_code, 1);
        assert_eq!(result.variables[0].1.as_deref(), Some("before"));
    }

    #[tokio::test]
    async fn the_host_environment_is_not_passed_on() {
        let dir = tempfile::tempdir().unwrap();
        let log = StepLog::new(SecretMask::default(), Arc::new(Lines::default()), 1 << 20);
        let result = run(dir.path(), script(Shell::Sh, "H=${HOME-unset}", &["H"]), &log).await.unwrap();
        assert_eq!(result.variables[0].1.as_deref(), Some("unset"));
    }

    #[tokio::test]
    async fn dropping_the_call_kills_the_whole_process_group() {
        let dir = tempfile::tempdir().unwrap();
        let log = StepLog::new(SecretMask::default(), Arc::new(Lines::default()), 1 << 20);
        let marker = dir.path().join("survived");
        let source = format!("(sleep 1; touch {}) &\nsleep 30", marker.display());
        let call = run(dir.path(), script(Shell::Sh, &source, &[]), &log);
        assert!(tokio::time::timeout(std::time::Duration::from_millis(300), call).await.is_err());
        tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
        assert!(!marker.exists(), "a child of the killed script kept running");
    }
}
