//! Prints `lines` (spec) lines to stdout, with terminal escapes in them; with `logMebibytes`,
//! also sends one log message of that size to the host.
use lockstep_step::{Context, Error, LogLevel, Outcome, Step, Value, export_step};

struct Chatty;

impl Step for Chatty {
    fn run(ctx: &Context) -> Result<Outcome, Error> {
        let lines = match ctx.spec("lines") {
            Some(Value::Integer(n)) => n,
            _ => 3,
        };
        for i in 0..lines {
            println!("\x1b[31mline {i}\x1b[0m \x1b]0;title\x07 of chatter");
        }
        if let Some(Value::Integer(mebibytes)) = ctx.spec("logMebibytes") {
            ctx.log(LogLevel::Info, &"x".repeat((mebibytes as usize) << 20));
        }
        Ok(Outcome::done())
    }
}

export_step!(Chatty);
