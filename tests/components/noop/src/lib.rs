//! Does nothing: measures the runner's own cost per step.
use lockstep_step::{Context, Error, Outcome, Step, export_step};

struct Noop;

impl Step for Noop {
    fn run(_: &Context) -> Result<Outcome, Error> {
        Ok(Outcome::done())
    }
}

export_step!(Noop);
