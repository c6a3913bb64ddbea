//! Expression resolution at a point of the run: which stage, step group and step we are in.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::Value;

use super::Run;
use crate::expr::{Reason, Resolver};
use crate::plan::{KubeInfra, StrategyValues};

/// The stage or step group a node runs in.
#[derive(Debug)]
pub struct Frame {
    pub fqn: String,
    pub identifier: String,
    pub name: String,
    pub variables: BTreeMap<String, Value>,
    pub strategy: Option<StrategyValues>,
    /// A step group's `stepGroupInfra` cluster.
    pub infra: Option<KubeInfra>,
}

/// Where a node sits, and the failure flag its `when` reads.
#[derive(Clone)]
pub struct Scope {
    pub stage: Option<Arc<Frame>>,
    /// Enclosing step groups, outermost first.
    pub groups: Vec<Arc<Frame>>,
    pub step: Option<(String, String)>,
    pub strategy: Option<StrategyValues>,
    /// Whether something earlier in this stage (or this rollback section) failed.
    pub failed: Arc<AtomicBool>,
    pub workspace: PathBuf,
}

impl Scope {
    pub fn has_failed(&self) -> bool {
        self.failed.load(Ordering::SeqCst)
    }

    pub fn mark_failed(&self) {
        self.failed.store(true, Ordering::SeqCst);
    }
}

/// A [`Resolver`] over the run's state, seen from `scope`.
pub struct Lookup<'a> {
    pub run: &'a Run<'a>,
    pub scope: &'a Scope,
}

impl Resolver for Lookup<'_> {
    fn secret(&self, id: &str) -> Result<String, Reason> {
        self.run
            .config
            .secret(id)
            .map_err(|e| Reason::Undefined(e.to_string()))
    }

    fn resolve(&self, path: &[String]) -> Result<Value, Reason> {
        let segments: Vec<&str> = path.iter().map(String::as_str).collect();
        let unknown = || Reason::Undefined(format!("`{}` is not defined", path.join(".")));
        let strategy = || {
            self.scope.strategy.as_ref().ok_or_else(|| {
                Reason::Undefined(format!(
                    "`{}` is used outside a looping strategy",
                    path.join(".")
                ))
            })
        };
        match segments.as_slice() {
            ["pipeline", "name"] => Ok(Value::from(self.run.meta.name.clone())),
            ["pipeline", "identifier"] => Ok(Value::from(self.run.meta.identifier.clone())),
            ["pipeline", "executionId"] => Ok(Value::from(self.run.meta.execution_id.clone())),
            ["pipeline", "sequenceId"] => Ok(Value::from(self.run.meta.sequence_id)),
            ["pipeline", "startTs"] => Ok(Value::from(self.run.meta.start_ts)),
            ["pipeline", "executionMode"] => Ok(Value::from("NORMAL")),
            ["pipeline", "variables", name] => self.run.pipeline_variables.get(*name).cloned().ok_or_else(|| Reason::Undefined(format!("pipeline variable `{name}` is not declared"))),
            ["pipeline", "stages", ..] => self.node(path),
            ["stage", rest @ ..] => {
                let stage = self.scope.stage.as_ref().ok_or_else(|| Reason::Undefined("`stage` is used outside a stage".into()))?;
                match rest {
                    ["name"] => Ok(Value::from(stage.name.clone())),
                    ["identifier"] => Ok(Value::from(stage.identifier.clone())),
                    ["variables", name] => stage.variables.get(*name).cloned().ok_or_else(|| Reason::Undefined(format!("stage variable `{name}` is not declared"))),
                    ["matrix", axis] => stage.strategy.as_ref().and_then(|s| s.matrix.get(*axis).cloned()).ok_or_else(unknown),
                    _ => self.node(&prefixed(&stage.fqn, rest)),
                }
            }
            ["stepGroup", rest @ ..] => {
                let group = self.scope.groups.last().ok_or_else(|| Reason::Undefined("`stepGroup` is used outside a step group".into()))?;
                match rest {
                    ["name"] => Ok(Value::from(group.name.clone())),
                    ["identifier"] => Ok(Value::from(group.identifier.clone())),
                    ["variables", name] => self.scope.groups.iter().rev().find_map(|g| g.variables.get(*name).cloned()).ok_or_else(|| Reason::Undefined(format!("step group variable `{name}` is not declared"))),
                    _ => self.node(&prefixed(&group.fqn, rest)),
                }
            }
            ["step", "identifier"] => self.scope.step.as_ref().map(|s| Value::from(s.0.clone())).ok_or_else(unknown),
            ["step", "name"] => self.scope.step.as_ref().map(|s| Value::from(s.1.clone())).ok_or_else(unknown),
            ["execution", ..] => {
                let stage = self.scope.stage.as_ref().ok_or_else(|| Reason::Undefined("`execution` is used outside a stage".into()))?;
                self.node(&prefixed(&format!("{}.spec", stage.fqn), &segments))
            }
            ["steps", identifier, rest @ ..] => {
                let fqn = self.find_step(identifier)?;
                self.node(&prefixed(&fqn, rest))
            }
            ["matrix", axis] => strategy()?.matrix.get(*axis).cloned().ok_or_else(|| Reason::Undefined(format!("the matrix has no axis `{axis}`"))),
            ["repeat", "item"] => strategy()?.item.clone().ok_or_else(|| Reason::Undefined("`repeat.item` is used outside `repeat: items`".to_string())),
            ["strategy", "iteration"] => Ok(Value::from(strategy()?.iteration)),
            ["strategy", "iterations"] => Ok(Value::from(strategy()?.iterations)),
            ["strategy", "identifierPostFix"] => Ok(Value::from(strategy()?.identifier_postfix.clone())),
            ["input"] => Err(Reason::Undefined("`<+input>` can only be a variable's value; declare a pipeline variable and pass it with --var".to_string())),
            _ => Err(unknown()),
        }
    }
}

fn prefixed(prefix: &str, rest: &[&str]) -> Vec<String> {
    prefix
        .split('.')
        .chain(rest.iter().copied())
        .map(String::from)
        .collect()
}

impl Lookup<'_> {
    /// `<+steps.ID...>`: the step (or group) with that identifier in the innermost enclosing group
    /// that has one, else anywhere in the stage.
    fn find_step(&self, identifier: &str) -> Result<String, Reason> {
        let stage = self
            .scope
            .stage
            .as_ref()
            .ok_or_else(|| Reason::Undefined("`steps` is used outside a stage".into()))?;
        for prefix in self
            .scope
            .groups
            .iter()
            .rev()
            .map(|g| g.fqn.as_str())
            .chain([stage.fqn.as_str()])
        {
            let found = self.run.state.find_by_identifier(prefix, identifier);
            if let Some(first) = found.first() {
                return Ok(first.clone());
            }
        }
        Err(Reason::Undefined(format!(
            "no step `{identifier}` in stage `{}`",
            stage.identifier
        )))
    }

    fn node(&self, path: &[String]) -> Result<Value, Reason> {
        let full = path.join(".");
        let (fqn, rest) = self.run.state.split_fqn(path).ok_or_else(|| {
            Reason::Undefined(format!("`{full}` does not name a node of this pipeline"))
        })?;
        let record = self
            .run
            .state
            .get(&fqn)
            .expect("split_fqn returns known FQNs");
        let rest: Vec<&str> = rest.iter().map(String::as_str).collect();
        match rest.as_slice() {
            ["status"] | ["currentStatus"] | ["liveStatus"] => Ok(Value::from(record.status.engine_name())),
            ["name"] => Ok(Value::from(record.name)),
            ["identifier"] => Ok(Value::from(record.identifier)),
            ["retryCount"] => Ok(Value::from(record.retries)),
            ["output", "outputVariables", name] | ["output", name] => record.outputs.get(*name).cloned().map(Value::from).ok_or_else(|| Reason::Undefined({
                if record.status.is_final() {
                    format!("`{fqn}` has no output `{name}`")
                } else {
                    format!("`{fqn}` has not finished, so its output `{name}` is not available yet (steps in the same `parallel` cannot read each other's outputs)")
                }
            })),
            ["variables", name] => record.variables.get(*name).cloned().ok_or_else(|| Reason::Undefined(format!("`{fqn}` has no variable `{name}`"))),
            ["spec", field @ ..] => {
                let spec = self.run.spec_of(&fqn).ok_or_else(|| Reason::Undefined(format!("`{fqn}` has no spec")))?;
                crate::sandbox::spec_lookup(&spec, &field.join(".")).cloned().ok_or_else(|| Reason::Undefined(format!("`{full}` is not in the spec")))
            }
            [] => Err(Reason::Undefined(format!("`{full}` is a node; ask for its `.status` or `.output.outputVariables.NAME`"))),
            _ => Err(Reason::Undefined(format!("`{full}` is not defined"))),
        }
    }
}
