//! The per-run store data and the `context` resource every step receives.

use std::collections::BTreeMap;
use std::path::PathBuf;

use wasmtime::component::{Resource, ResourceTable};
use wasmtime::{Result, StoreLimits};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::bindings::WitError;
use super::bindings::lockstep::step::host::{self, LogLevel, Value};
use super::log::{Level, StepLog};
use crate::capability::Grants;

/// The host side of a step's `context` resource. A store holds exactly one.
pub struct StepContext;

/// What the host functions of one step run can see. Lives in the `Store`, dropped with it.
pub struct StepState {
    pub(super) wasi: WasiCtx,
    pub(crate) table: ResourceTable,
    pub(super) limits: StoreLimits,
    pub(crate) run: StepRun,
}

/// The step-specific half of [`StepState`].
pub struct StepRun {
    pub identifier: String,
    pub step_type: String,
    /// The resolved spec.
    pub spec: serde_json::Value,
    pub grants: Grants,
    /// The stage workspace: where processes run and files are granted from.
    pub workspace: PathBuf,
    pub log: StepLog,
    pub outputs: BTreeMap<String, String>,
    pub outputs_budget: usize,
    outputs_used: usize,
    /// Database sessions and cluster clients open now, against the step's limit.
    pub connections: crate::capability::ConnectionBudget,
}

impl StepRun {
    pub fn new(
        identifier: String,
        step_type: String,
        spec: serde_json::Value,
        grants: Grants,
        workspace: PathBuf,
        log: StepLog,
        limits: &crate::sandbox::limits::StepLimits,
    ) -> Self {
        let connections = crate::capability::ConnectionBudget::new(limits.connections);
        StepRun {
            identifier,
            step_type,
            spec,
            grants,
            workspace,
            log,
            outputs: BTreeMap::new(),
            outputs_budget: limits.outputs_bytes,
            outputs_used: 0,
            connections,
        }
    }

    fn set_output(&mut self, name: String, value: String) -> Result<(), WitError> {
        if !crate::pipeline::is_identifier(&name) {
            return Err(WitError::Invalid(format!(
                "output name `{name}` must be an identifier (letters, digits, `_`)"
            )));
        }
        let previous = self.outputs.get(&name).map_or(0, |v| name.len() + v.len());
        let used = self.outputs_used - previous + name.len() + value.len();
        if used > self.outputs_budget {
            return Err(WitError::LimitExceeded(format!(
                "outputs may total at most {} KiB",
                self.outputs_budget / 1024
            )));
        }
        self.outputs_used = used;
        self.outputs.insert(name, value);
        Ok(())
    }
}

impl WasiView for StepState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

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
        Ok(self.run.identifier.clone())
    }

    async fn step_type(&mut self, _: Resource<StepContext>) -> Result<String> {
        Ok(self.run.step_type.clone())
    }

    async fn spec(&mut self, _: Resource<StepContext>, path: String) -> Result<Option<Value>> {
        Ok(lookup(&self.run.spec, &path).map(to_wit))
    }

    async fn set_output(
        &mut self,
        _: Resource<StepContext>,
        name: String,
        value: String,
    ) -> Result<Result<(), WitError>> {
        Ok(self.run.set_output(name, value))
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
        self.run.log.log(level, &message);
        Ok(())
    }

    async fn drop(&mut self, rep: Resource<StepContext>) -> Result<()> {
        self.table.delete(rep)?;
        Ok(())
    }
}

impl super::bindings::lockstep::common::types::Host for StepState {}

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
