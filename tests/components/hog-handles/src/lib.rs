//! Asks the host for `count` (spec) stdout streams and keeps every one: each is a handle in the
//! step's resource table.
use lockstep_step::{Context, Error, Outcome, Step, Value, export_step};

struct HogHandles;

impl Step for HogHandles {
    fn run(ctx: &Context) -> Result<Outcome, Error> {
        let count = match ctx.spec("count") {
            Some(Value::Integer(n)) => n,
            _ => 100_000,
        };
        let mut kept = vec![];
        for _ in 0..count {
            kept.push(wasi::cli::stdout::get_stdout());
        }
        Ok(Outcome::summary(format!("holding {} streams", kept.len())))
    }
}

export_step!(HogHandles);
