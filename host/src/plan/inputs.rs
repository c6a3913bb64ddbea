//! What is resolved before a run starts: every runtime input filled from `--var` (or its
//! default, within its allowed values), the pipeline variables computed, the plan built.

use std::collections::BTreeMap;

use serde_json::Value;

use super::{NodeKind, PlanNode};
use crate::config::Config;
use crate::expr::{self, Resolver};
use crate::log::SecretMask;
use crate::pipeline::{Pipeline, Variable, VariableKind, VariableValue};

/// Pipeline facts that expressions can read.
#[derive(Debug, Clone)]
pub struct Meta {
    pub name: String,
    pub identifier: String,
    pub execution_id: String,
    pub sequence_id: u64,
    pub start_ts: u64,
}

/// Fills every runtime input from `--var` (or its default), resolves the pipeline variables and
/// builds the plan: what `run` needs before anything starts. `--var NAME=VALUE` sets every
/// variable named NAME, at any level. Errors name the variable and say how to supply it.
pub fn prepare(
    pipeline: &Pipeline,
    overrides: &BTreeMap<String, String>,
    config: &Config,
    mask: &SecretMask,
    meta: &Meta,
) -> Result<(PlanNode, BTreeMap<String, Value>), String> {
    let variables = resolve_pipeline_variables(&pipeline.variables, overrides, config, mask, meta)?;
    let mut root = crate::plan::build(
        pipeline,
        &MetaLookup {
            meta,
            variables: &variables,
            config,
            mask,
        },
    )?;
    let mut declared: Vec<String> = pipeline.variables.iter().map(|v| v.name.clone()).collect();
    fill_inputs(&mut root, overrides, &mut declared)?;
    if let Some(unknown) = overrides.keys().find(|name| !declared.contains(name)) {
        declared.sort();
        declared.dedup();
        let listed = if declared.is_empty() {
            "none".to_string()
        } else {
            declared.join(", ")
        };
        return Err(format!(
            "--var {unknown}: the pipeline has no variable `{unknown}` (declared: {listed})"
        ));
    }
    Ok((root, variables))
}

/// Replaces the runtime inputs of stage and step-group variables with their values.
fn fill_inputs(
    node: &mut PlanNode,
    overrides: &BTreeMap<String, String>,
    declared: &mut Vec<String>,
) -> Result<(), String> {
    if node.kind != NodeKind::Pipeline {
        for variable in &mut node.variables {
            declared.push(variable.name.clone());
            variable.value = VariableValue::Fixed(value_text(variable, overrides)?);
        }
    }
    for child in node.children.iter_mut().chain(node.rollback.iter_mut()) {
        fill_inputs(child, overrides, declared)?;
    }
    Ok(())
}

/// A variable's value as written, with `--var` applied and a runtime input filled in.
pub(crate) fn value_text(
    variable: &Variable,
    overrides: &BTreeMap<String, String>,
) -> Result<String, String> {
    match (&variable.value, overrides.get(&variable.name)) {
        (
            VariableValue::Input {
                allowed: Some(allowed),
                ..
            },
            Some(given),
        ) if !allowed.contains(given) => Err(format!(
            "--var {}={given}: allowed values are {}",
            variable.name,
            allowed.join(", ")
        )),
        (_, Some(given)) => Ok(given.clone()),
        (VariableValue::Fixed(text), None) => Ok(text.clone()),
        (
            VariableValue::Input {
                default: Some(default),
                ..
            },
            None,
        ) => Ok(default.clone()),
        (VariableValue::Input { default: None, .. }, None) => Err(format!(
            "{}: variable `{}` is a runtime input with no default; pass --var {}=VALUE",
            variable.location, variable.name, variable.name
        )),
    }
}

fn resolve_pipeline_variables(
    declared: &[Variable],
    overrides: &BTreeMap<String, String>,
    config: &Config,
    mask: &SecretMask,
    meta: &Meta,
) -> Result<BTreeMap<String, Value>, String> {
    let mut resolved = BTreeMap::new();
    for variable in declared {
        let raw = value_text(variable, overrides)?;
        let lookup = MetaLookup {
            meta,
            variables: &resolved,
            config,
            mask,
        };
        let value = expr::interpolate(&raw, &lookup).map_err(|e| {
            format!(
                "{}: pipeline variable `{}`: {e}",
                variable.location, variable.name
            )
        })?;
        let value = finish_variable(variable.kind, value, config, mask).map_err(|e| {
            format!(
                "{}: pipeline variable `{}`: {e}",
                variable.location, variable.name
            )
        })?;
        resolved.insert(variable.name.clone(), value);
    }
    Ok(resolved)
}

/// A `Secret` variable's value is a secret id; a `Number` variable must read as a number.
pub(crate) fn finish_variable(
    kind: VariableKind,
    value: Value,
    config: &Config,
    mask: &SecretMask,
) -> Result<Value, String> {
    match kind {
        VariableKind::String => Ok(value),
        VariableKind::Number => {
            let text = expr::to_text(&value);
            text.trim()
                .parse::<f64>()
                .map(|_| crate::yaml::plain_scalar_to_json(text.trim()))
                .map_err(|_| format!("`{text}` is not a number"))
        }
        VariableKind::Secret => {
            let secret = config.secret(&expr::to_text(&value))?;
            mask.add(&secret);
            Ok(Value::from(secret))
        }
    }
}

/// Resolves names available before any stage runs (pipeline meta and variables, secrets).
pub struct MetaLookup<'a> {
    pub meta: &'a Meta,
    pub variables: &'a BTreeMap<String, Value>,
    pub config: &'a Config,
    pub mask: &'a SecretMask,
}

impl Resolver for MetaLookup<'_> {
    fn resolve(&self, path: &[String]) -> Result<Value, String> {
        let segments: Vec<&str> = path.iter().map(String::as_str).collect();
        match segments.as_slice() {
            ["pipeline", "name"] => Ok(Value::from(self.meta.name.clone())),
            ["pipeline", "identifier"] => Ok(Value::from(self.meta.identifier.clone())),
            ["pipeline", "executionId"] => Ok(Value::from(self.meta.execution_id.clone())),
            ["pipeline", "sequenceId"] => Ok(Value::from(self.meta.sequence_id)),
            ["pipeline", "variables", name] => {
                self.variables.get(*name).cloned().ok_or_else(|| {
                    format!(
                        "pipeline variable `{name}` is not declared (or is declared after this one)"
                    )
                })
            }
            _ => Err(format!(
                "`{}` is not known before the run starts",
                path.join(".")
            )),
        }
    }

    fn secret(&self, id: &str) -> Result<String, String> {
        let value = self.config.secret(id)?;
        self.mask.add(&value);
        Ok(value)
    }
}
