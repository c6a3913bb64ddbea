//! Allocates `mebibytes` (spec) of memory, touching every page.
use lockstep_step::{Context, Error, Outcome, Step, Value, export_step};

struct MemoryHog;

impl Step for MemoryHog {
    fn run(ctx: &Context) -> Result<Outcome, Error> {
        let mebibytes = match ctx.spec("mebibytes") {
            Some(Value::Integer(n)) => n as usize,
            _ => 1024,
        };
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
