//! Shell scripts in the stage workspace, confined like a Run step's (the operator's
//! `processSandbox`). Needs `grants: { process: true }`.

use crate::__private::bindings::lockstep::process::process as wit;
use crate::Error;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shell {
    Sh,
    Bash,
}

/// A script to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Script {
    pub shell: Shell,
    /// The script text, run with `set -e`.
    pub source: String,
    /// Variables added to the script's environment (the runner's own is never passed on).
    pub env: Vec<(String, String)>,
    /// Shell variables whose final values come back in [`ScriptResult::variables`].
    pub capture: Vec<String>,
}

/// How a script ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScriptResult {
    pub exit_code: i32,
    /// One entry per name in [`Script::capture`]; `None` when the variable was never set.
    pub variables: Vec<(String, Option<String>)>,
}

/// Runs the script to completion; its output streams into the step's log. Everything it starts
/// ends with it, and on the step's timeout or abort.
pub fn run_script(script: &Script) -> Result<ScriptResult, Error> {
    let shell = match script.shell {
        Shell::Sh => wit::Shell::Sh,
        Shell::Bash => wit::Shell::Bash,
    };
    let request = wit::Script {
        shell,
        source: script.source.clone(),
        env: script.env.clone(),
        capture: script.capture.clone(),
    };
    let result = wit::run_script(&request)?;
    Ok(ScriptResult {
        exit_code: result.exit_code,
        variables: result.variables,
    })
}
