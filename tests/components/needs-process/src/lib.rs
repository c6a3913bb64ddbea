//! Runs a shell command through `lockstep:process`; needs the `process` grant.
use lockstep_step::process::{Script, Shell, run_script};
use lockstep_step::{Error, Outcome, Step, StepContext, export_step};

struct NeedsProcess;

impl Step for NeedsProcess {
    fn run(_: &StepContext) -> Result<Outcome, Error> {
        let result = run_script(&Script {
            shell: Shell::Sh,
            source: "echo hi".into(),
            env: vec![],
            capture: vec![],
        })?;
        Ok(Outcome::summary(format!("exit {}", result.exit_code)))
    }
}

export_step!(NeedsProcess);
