//! A step built against a newer Lockstep API (`lockstep:step@0.2.0`, `wit/` here) than this
//! runner provides.
wit_bindgen::generate!({ world: "step", path: "wit", generate_all });

struct FutureStep;

impl Guest for FutureStep {
    fn run(_: &lockstep::step::host::Context) -> Result<Outcome, lockstep::common::types::Error> {
        Ok(Outcome { summary: None })
    }
}

export!(FutureStep);
