//! The step's view of its run: identity, spec, settings, outputs, log.

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::__private::bindings::lockstep::step::host::{self as wit, Context};
use crate::Error;
use crate::testing::TestRun;

/// What the runner gives a step.
pub struct StepContext<'a> {
    run: Run<'a>,
}

/// Who is running the step: Lockstep, or a unit test on the host ([`TestRun`]).
enum Run<'a> {
    Host(&'a Context),
    Test(&'a TestRun),
}

/// How a log line is marked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Debug,
    Info,
    Warn,
    Error,
}

/// How a step that succeeded ends.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    /// One line shown next to the step in the progress tree and the report.
    pub summary: Option<String>,
}

impl Outcome {
    /// A success with nothing more to say.
    pub fn done() -> Self {
        Outcome { summary: None }
    }

    /// A success with a one-line summary for the progress tree and the report.
    pub fn summary(line: impl Into<String>) -> Self {
        Outcome {
            summary: Some(line.into()),
        }
    }
}

fn json(value: wit::Value) -> Value {
    match value {
        wit::Value::Null => Value::Null,
        wit::Value::Boolean(b) => b.into(),
        wit::Value::Integer(i) => i.into(),
        wit::Value::Float(f) => f.into(),
        wit::Value::Text(t) => t.into(),
        wit::Value::Json(text) => serde_json::from_str(&text).unwrap_or(Value::Null),
    }
}

impl<'a> StepContext<'a> {
    pub(crate) fn host(context: &'a Context) -> Self {
        StepContext {
            run: Run::Host(context),
        }
    }

    pub(crate) fn test(run: &'a TestRun) -> Self {
        StepContext {
            run: Run::Test(run),
        }
    }

    /// The step's identifier, with any looping suffix (`build_0`).
    pub fn identifier(&self) -> String {
        match self.run {
            Run::Host(context) => context.step_identifier(),
            Run::Test(run) => run.identifier.clone(),
        }
    }

    /// The step's `type` (one component may implement several).
    pub fn step_type(&self) -> String {
        match self.run {
            Run::Host(context) => context.step_type(),
            Run::Test(run) => run.step_type.clone(),
        }
    }

    /// The whole resolved spec (every `<+…>` already evaluated) as `T`; a mismatch is an
    /// `invalid` error that names the field, ready to return from `run`.
    pub fn spec_as<T: DeserializeOwned>(&self) -> Result<T, Error> {
        serde_json::from_value(self.whole_spec()).map_err(|e| Error::Invalid(format!("spec: {e}")))
    }

    /// The whole resolved spec as JSON (an empty object when the step has none).
    pub fn whole_spec(&self) -> Value {
        match self.spec("") {
            None | Some(Value::Null) => serde_json::json!({}),
            Some(spec) => spec,
        }
    }

    /// The value at a dotted path into the spec (`build.spec.branch`; numbers index lists);
    /// `None` when nothing is there.
    pub fn spec(&self, path: &str) -> Option<Value> {
        match self.run {
            Run::Host(context) => context.spec(path).map(json),
            Run::Test(run) => run.spec_at(path),
        }
    }

    /// The text at a dotted path into the spec, if it is text.
    pub fn spec_text(&self, path: &str) -> Option<String> {
        self.spec(path).and_then(|v| v.as_str().map(str::to_string))
    }

    /// What the operator's lockstep.yaml sets for this step type (`settings:` under its
    /// `stepTypes` entry), as `T`. It never comes from the pipeline, so a step may trust it as it
    /// trusts its grants: an endpoint, a policy, a default. `invalid` when there are none.
    pub fn settings<T: DeserializeOwned>(&self) -> Result<T, Error> {
        let settings = match self.run {
            Run::Host(context) => context.settings().map(json),
            Run::Test(run) => run.settings.clone(),
        };
        let settings = settings.ok_or_else(|| {
            Error::Invalid(format!(
                "step type {} has no `settings:` in lockstep.yaml",
                self.step_type()
            ))
        })?;
        serde_json::from_value(settings)
            .map_err(|e| Error::Invalid(format!("the step type's settings: {e}")))
    }

    /// Publishes an output, readable by later steps as `<+steps.ID.output.outputVariables.NAME>`.
    /// Fails with `limit-exceeded` past the step's output budget.
    pub fn set_output(&self, name: &str, value: &str) -> Result<(), Error> {
        match self.run {
            Run::Host(context) => context.set_output(name, value).map_err(Into::into),
            Run::Test(run) => {
                run.set_output(name, value);
                Ok(())
            }
        }
    }

    /// Writes a line to the step's log; the runner masks secrets and strips control sequences.
    pub fn log(&self, level: Level, message: &str) {
        match self.run {
            Run::Host(context) => context.log(
                match level {
                    Level::Debug => wit::LogLevel::Debug,
                    Level::Info => wit::LogLevel::Info,
                    Level::Warn => wit::LogLevel::Warn,
                    Level::Error => wit::LogLevel::Error,
                },
                message,
            ),
            Run::Test(run) => run.log(level, message),
        }
    }

    pub fn debug(&self, message: &str) {
        self.log(Level::Debug, message)
    }

    pub fn info(&self, message: &str) {
        self.log(Level::Info, message)
    }

    pub fn warn(&self, message: &str) {
        self.log(Level::Warn, message)
    }

    pub fn error(&self, message: &str) {
        self.log(Level::Error, message)
    }
}
