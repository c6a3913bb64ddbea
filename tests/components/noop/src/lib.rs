//! Does nothing: measures the runner's own cost per step.
use lockstep_step::{Error, Outcome, Step, StepContext, export_step};

struct Noop;

impl Step for Noop {
    fn run(_: &StepContext) -> Result<Outcome, Error> {
        Ok(Outcome::done())
    }
}

export_step!(Noop);
