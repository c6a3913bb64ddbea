//! The built-in `Run` step: runs `command` with `shell` in the stage workspace through the
//! host `process` capability, then publishes each `outputVariables` entry as an output.

use std::collections::BTreeMap;

use lockstep_step::process::{Script, Shell, run_script};
use lockstep_step::{Error, Outcome, Step, StepContext, export_step};
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RunSpec {
    shell: String,
    command: String,
    #[serde(default)]
    env_variables: BTreeMap<String, String>,
    #[serde(default)]
    output_variables: Vec<OutputVariable>,
}

/// `{name}` publishes shell variable `name`; `{name, value}` publishes shell variable `value`
/// under the output name `name` (Harness's newer form).
#[derive(Deserialize)]
struct OutputVariable {
    name: String,
    value: Option<String>,
}

impl OutputVariable {
    fn shell_variable(&self) -> &str {
        self.value.as_deref().unwrap_or(&self.name)
    }
}

struct Run;

impl Step for Run {
    fn run(ctx: &StepContext) -> Result<Outcome, Error> {
        let spec: RunSpec = ctx.spec_as()?;
        let shell = match spec.shell.as_str() {
            "Sh" => Shell::Sh,
            "Bash" => Shell::Bash,
            other => {
                return Err(Error::Invalid(format!(
                    "shell {other} is not supported; use Sh or Bash"
                )));
            }
        };
        let result = run_script(&Script {
            shell,
            source: spec.command,
            env: spec.env_variables.into_iter().collect(),
            capture: spec
                .output_variables
                .iter()
                .map(|v| v.shell_variable().to_string())
                .collect(),
        })?;
        for (output, (_, value)) in spec.output_variables.iter().zip(&result.variables) {
            match value {
                Some(value) => ctx.set_output(&output.name, value)?,
                None => ctx.warn(&format!(
                    "output variable {} was never set by the script",
                    output.shell_variable()
                )),
            }
        }
        if result.exit_code != 0 {
            return Err(Error::Failed(format!(
                "command exited with code {}",
                result.exit_code
            )));
        }
        Ok(Outcome::done())
    }
}

export_step!(Run);
