//! Publishes every top-level string field of its spec as an output of the same name, and fails
//! with `fail` (spec) as its message when that is set; else succeeds with `summary` (spec) as its
//! summary. The operator's settings, when the step type has any, become output `settings` (JSON).
use lockstep_step::{Error, Outcome, Step, StepContext, export_step};

struct EchoSpec;

impl Step for EchoSpec {
    fn run(ctx: &StepContext) -> Result<Outcome, Error> {
        let spec: std::collections::BTreeMap<String, lockstep_step::serde_json::Value> =
            ctx.spec_as()?;
        for (name, value) in &spec {
            if let Some(text) = value.as_str() {
                ctx.set_output(name, text)?;
            }
        }
        if let Ok(settings) = ctx.settings::<lockstep_step::serde_json::Value>() {
            ctx.set_output("settings", &settings.to_string())?;
        }
        ctx.info("echoed the spec");
        match spec.get("fail").and_then(|v| v.as_str()) {
            Some(message) => Err(Error::Failed(message.to_string())),
            None => Ok(spec
                .get("summary")
                .and_then(|v| v.as_str())
                .map_or_else(Outcome::done, Outcome::summary)),
        }
    }
}

export_step!(EchoSpec);
