//! Tries to read a host file; imports wasi:filesystem, so it needs a `files` grant.
use lockstep_step::{Error, Outcome, Step, StepContext, export_step};

struct ReadFile;

impl Step for ReadFile {
    fn run(ctx: &StepContext) -> Result<Outcome, Error> {
        let path = ctx
            .spec_text("path")
            .unwrap_or_else(|| "/etc/passwd".to_string());
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                ctx.info(&format!("read {} bytes from {path}", text.len()));
                ctx.set_output("content", text.trim())?;
                Ok(Outcome::done())
            }
            Err(e) => Err(Error::Failed(format!("cannot read {path}: {e}"))),
        }
    }
}

export_step!(ReadFile);
