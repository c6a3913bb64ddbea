//! The `lockstep:step/host` interface every step receives: its `context` resource (identity,
//! resolved spec, outputs, log).

use wasmtime::Result;
use wasmtime::component::Resource;

use super::bindings::lockstep::step::host::{self, LogLevel, Value};
use super::store::{StepContext, StepState};
use crate::capability::WitError;
use crate::log::Level;

/// The value at `path` (dot-separated; numeric segments index lists) inside `spec`.
pub fn lookup<'a>(spec: &'a serde_json::Value, path: &str) -> Option<&'a serde_json::Value> {
    if path.is_empty() {
        return Some(spec);
    }
    path.split('.')
        .try_fold(spec, |value, segment| match value {
            serde_json::Value::Object(map) => map.get(segment),
            serde_json::Value::Array(items) => {
                segment.parse::<usize>().ok().and_then(|i| items.get(i))
            }
            _ => None,
        })
}

fn to_wit(value: &serde_json::Value) -> Value {
    use serde_json::Value as J;
    match value {
        J::Null => Value::Null,
        J::Bool(b) => Value::Boolean(*b),
        J::Number(n) => match n.as_i64() {
            Some(i) => Value::Integer(i),
            None => Value::Float(n.as_f64().unwrap_or_default()),
        },
        J::String(s) => Value::Text(s.clone()),
        other => Value::Json(other.to_string()),
    }
}

impl host::Host for StepState {}

impl host::HostContext for StepState {
    async fn step_identifier(&mut self, _: Resource<StepContext>) -> Result<String> {
        Ok(self.step.identifier.clone())
    }

    async fn step_type(&mut self, _: Resource<StepContext>) -> Result<String> {
        Ok(self.step.step_type.clone())
    }

    async fn spec(&mut self, _: Resource<StepContext>, path: String) -> Result<Option<Value>> {
        Ok(lookup(&self.step.spec, &path).map(to_wit))
    }

    async fn settings(&mut self, _: Resource<StepContext>) -> Result<Option<Value>> {
        Ok(self.step.settings.as_ref().map(to_wit))
    }

    async fn set_output(
        &mut self,
        _: Resource<StepContext>,
        name: String,
        value: String,
    ) -> Result<Result<(), WitError>> {
        Ok(self.step.set_output(name, value))
    }

    async fn log(
        &mut self,
        _: Resource<StepContext>,
        level: LogLevel,
        message: String,
    ) -> Result<()> {
        let level = match level {
            LogLevel::Debug => Level::Debug,
            LogLevel::Info => Level::Info,
            LogLevel::Warn => Level::Warn,
            LogLevel::Error => Level::Error,
        };
        self.step.log.log(level, &message);
        Ok(())
    }

    async fn drop(&mut self, rep: Resource<StepContext>) -> Result<()> {
        self.table.delete(rep)?;
        Ok(())
    }
}

impl crate::capability::error::wit::lockstep::common::types::Host for StepState {}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn spec_paths_reach_into_maps_and_lists() {
        let spec =
            json!({"build": {"spec": {"branch": "main"}}, "filePaths": ["a.yaml", "b.yaml"]});
        assert_eq!(lookup(&spec, "build.spec.branch"), Some(&json!("main")));
        assert_eq!(lookup(&spec, "filePaths.1"), Some(&json!("b.yaml")));
        assert_eq!(lookup(&spec, "build.missing"), None);
        assert_eq!(lookup(&spec, ""), Some(&spec));
    }
}
