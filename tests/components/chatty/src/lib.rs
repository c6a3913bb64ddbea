//! Prints `lines` (spec) lines to stdout, with terminal escapes in them; with `logMebibytes`,
//! also sends one log message of that size to the host.
use lockstep_step::{Error, Outcome, Step, StepContext, export_step};

struct Chatty;

impl Step for Chatty {
    fn run(ctx: &StepContext) -> Result<Outcome, Error> {
        let lines = ctx.spec("lines").and_then(|v| v.as_u64()).unwrap_or(3);
        for i in 0..lines {
            println!("\x1b[31mline {i}\x1b[0m \x1b]0;title\x07 of chatter");
        }
        if let Some(mebibytes) = ctx.spec("logMebibytes").and_then(|v| v.as_u64()) {
            ctx.info(&"x".repeat((mebibytes as usize) << 20));
        }
        Ok(Outcome::done())
    }
}

export_step!(Chatty);
