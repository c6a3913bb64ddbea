//! Publishes every top-level string field of its spec as an output of the same name, and fails
//! with `fail` (spec) as its message when that is set; else succeeds with `summary` (spec) as its
//! summary.
use lockstep_step::{Context, ContextExt, Error, Outcome, Step, export_step};

struct EchoSpec;

impl Step for EchoSpec {
    fn run(ctx: &Context) -> Result<Outcome, Error> {
        let spec: std::collections::BTreeMap<String, lockstep_step::serde_json::Value> =
            ctx.spec_as()?;
        for (name, value) in &spec {
            if let Some(text) = value.as_str() {
                ctx.set_output(name, text)?;
            }
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
