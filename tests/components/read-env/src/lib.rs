//! Reports which environment variables it can see: none unless granted.
use lockstep_step::{Error, Outcome, Step, StepContext, export_step};

struct ReadEnv;

impl Step for ReadEnv {
    fn run(ctx: &StepContext) -> Result<Outcome, Error> {
        let names: Vec<String> = std::env::vars().map(|(k, _)| k).collect();
        ctx.set_output("visible", &names.join(","))?;
        match std::env::var("LOCKSTEP_TEST_HOST_SECRET") {
            Ok(_) => Err(Error::Failed(
                "the host's environment leaked into the step".into(),
            )),
            Err(_) => Ok(Outcome::done()),
        }
    }
}

export_step!(ReadEnv);
