//! Runs a step in a unit test on the host, without the runner: the spec and settings are what the
//! test gives, outputs and log lines are kept for its assertions. Capability calls
//! ([`crate::db`], [`crate::kube`], …) need the runner; test them in a pipeline.
//!
//! ```ignore
//! let run = TestRun::new(serde_json::json!({ "greeting": "hi" }));
//! assert_eq!(run.run::<Hello>(), Ok(Outcome::summary("said hello")));
//! assert_eq!(run.output("greeted").as_deref(), Some("yes"));
//! ```

use std::cell::RefCell;
use std::collections::BTreeMap;

use serde_json::Value;

use crate::{Error, Level, Outcome, Step, StepContext};

/// One rehearsed run of a step.
pub struct TestRun {
    pub(crate) identifier: String,
    pub(crate) step_type: String,
    spec: Value,
    pub(crate) settings: Option<Value>,
    outputs: RefCell<BTreeMap<String, String>>,
    log: RefCell<Vec<(Level, String)>>,
}

impl TestRun {
    /// A run of a step `test` of type `Test` with `spec` as its resolved spec.
    pub fn new(spec: Value) -> Self {
        TestRun {
            identifier: "test".into(),
            step_type: "Test".into(),
            spec,
            settings: None,
            outputs: RefCell::default(),
            log: RefCell::default(),
        }
    }

    /// The step's `type`, for a component that implements several.
    pub fn step_type(self, step_type: &str) -> Self {
        TestRun {
            step_type: step_type.into(),
            ..self
        }
    }

    /// The operator's `settings:` for the step type.
    pub fn settings(self, settings: Value) -> Self {
        TestRun {
            settings: Some(settings),
            ..self
        }
    }

    /// Runs `S` as the runner would call it.
    pub fn run<S: Step>(&self) -> Result<Outcome, Error> {
        S::run(&StepContext::test(self))
    }

    /// The output `name` the step published, if it did.
    pub fn output(&self, name: &str) -> Option<String> {
        self.outputs.borrow().get(name).cloned()
    }

    /// The step's log lines so far, in order.
    pub fn log_lines(&self) -> Vec<(Level, String)> {
        self.log.borrow().clone()
    }

    /// The value at a dotted path, as the runner looks it up.
    pub(crate) fn spec_at(&self, path: &str) -> Option<Value> {
        if path.is_empty() {
            return Some(self.spec.clone());
        }
        path.split('.')
            .try_fold(&self.spec, |value, segment| match value {
                Value::Object(map) => map.get(segment),
                Value::Array(items) => segment.parse::<usize>().ok().and_then(|i| items.get(i)),
                _ => None,
            })
            .cloned()
    }

    pub(crate) fn set_output(&self, name: &str, value: &str) {
        self.outputs.borrow_mut().insert(name.into(), value.into());
    }

    pub(crate) fn log(&self, level: Level, message: &str) {
        self.log.borrow_mut().push((level, message.into()));
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// Greets `spec.who` with the operator's `settings.greeting`, from `spec.name.first`.
    struct Greeter;

    impl Step for Greeter {
        fn run(ctx: &StepContext) -> Result<Outcome, Error> {
            #[derive(serde::Deserialize)]
            struct Settings {
                greeting: String,
            }
            let settings: Settings = ctx.settings()?;
            let who = ctx
                .spec_text("names.0")
                .ok_or_else(|| Error::Invalid("spec needs `names`".into()))?;
            ctx.info(&format!("{} {who}", settings.greeting));
            ctx.set_output("greeted", &who)?;
            Ok(Outcome::summary(ctx.step_type()))
        }
    }

    #[test]
    fn a_rehearsed_step_reads_its_spec_and_settings_and_keeps_outputs_and_log() {
        let run = TestRun::new(json!({"names": ["Ada", "Grace"]}))
            .settings(json!({"greeting": "hello"}))
            .step_type("Greet");
        assert_eq!(run.run::<Greeter>(), Ok(Outcome::summary("Greet")));
        assert_eq!(run.output("greeted").as_deref(), Some("Ada"));
        assert_eq!(
            run.log_lines(),
            vec![(Level::Info, "hello Ada".to_string())]
        );
    }

    #[test]
    fn without_settings_the_step_fails_invalid_and_says_where_settings_go() {
        let error = TestRun::new(json!({"names": ["Ada"]}))
            .run::<Greeter>()
            .unwrap_err();
        assert!(
            matches!(&error, Error::Invalid(m) if m.contains("`settings:` in lockstep.yaml")),
            "{error:?}"
        );
    }
}
