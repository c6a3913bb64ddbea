//! Asks the host for `count` (spec) stdout streams and keeps every one: each is a handle in the
//! step's resource table.
use lockstep_step::{Error, Outcome, Step, StepContext, export_step};

struct HogHandles;

impl Step for HogHandles {
    fn run(ctx: &StepContext) -> Result<Outcome, Error> {
        let count = ctx
            .spec("count")
            .and_then(|v| v.as_u64())
            .unwrap_or(100_000);
        let mut kept = vec![];
        for _ in 0..count {
            kept.push(wasi::cli::stdout::get_stdout());
        }
        Ok(Outcome::summary(format!("holding {} streams", kept.len())))
    }
}

export_step!(HogHandles);
