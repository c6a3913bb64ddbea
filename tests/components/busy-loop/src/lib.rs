//! Spins forever without calling the host: only the epoch deadline can stop it.
use lockstep_step::{Error, Outcome, Step, StepContext, export_step};

struct BusyLoop;

impl Step for BusyLoop {
    fn run(_: &StepContext) -> Result<Outcome, Error> {
        let mut n: u64 = 0;
        loop {
            n = std::hint::black_box(n.wrapping_add(1));
        }
    }
}

export_step!(BusyLoop);
