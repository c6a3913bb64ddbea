//! Allocates `mebibytes` (spec) of memory, touching every page.
use lockstep_step::{Error, Outcome, Step, StepContext, export_step};

struct MemoryHog;

impl Step for MemoryHog {
    fn run(ctx: &StepContext) -> Result<Outcome, Error> {
        let mebibytes = ctx
            .spec("mebibytes")
            .and_then(|v| v.as_u64())
            .unwrap_or(1024);
        let mut blocks = Vec::new();
        for _ in 0..mebibytes {
            blocks.push(vec![1u8; 1 << 20]);
        }
        Ok(Outcome::summary(format!(
            "held {} MiB",
            std::hint::black_box(blocks).len()
        )))
    }
}

export_step!(MemoryHog);
