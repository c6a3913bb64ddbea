//! What is resolved before a run starts: every runtime input filled from `--var` (or its
//! default, within its allowed values), the pipeline variables computed, the plan built.

use std::collections::BTreeMap;

use serde_json::Value;

use super::{NodeKind, PlanError, PlanNode};
use crate::config::{Config, SecretError};
use crate::expr::{self, Reason, Resolver};
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
    meta: &Meta,
) -> Result<(PlanNode, BTreeMap<String, Value>), InputError> {
    let variables = resolve_pipeline_variables(&pipeline.variables, overrides, config, meta)?;
    let mut root = crate::plan::build(
        pipeline,
        &MetaLookup {
            meta,
            variables: &variables,
            config,
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
        return Err(InputError::Undeclared {
            name: unknown.clone(),
            declared: listed,
        });
    }
    Ok((root, variables))
}

/// Replaces the runtime inputs of stage and step-group variables with their values.
fn fill_inputs(
    node: &mut PlanNode,
    overrides: &BTreeMap<String, String>,
    declared: &mut Vec<String>,
) -> Result<(), InputError> {
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
) -> Result<String, InputError> {
    match (&variable.value, overrides.get(&variable.name)) {
        (
            VariableValue::Input {
                allowed: Some(allowed),
                ..
            },
            Some(given),
        ) if !allowed.contains(given) => Err(InputError::NotAllowed {
            name: variable.name.clone(),
            given: given.clone(),
            allowed: allowed.join(", "),
        }),
        (_, Some(given)) => Ok(given.clone()),
        (VariableValue::Fixed(text), None) => Ok(text.clone()),
        (
            VariableValue::Input {
                default: Some(default),
                ..
            },
            None,
        ) => Ok(default.clone()),
        (VariableValue::Input { default: None, .. }, None) => Err(InputError::Missing {
            location: variable.location.to_string(),
            name: variable.name.clone(),
        }),
    }
}

fn resolve_pipeline_variables(
    declared: &[Variable],
    overrides: &BTreeMap<String, String>,
    config: &Config,
    meta: &Meta,
) -> Result<BTreeMap<String, Value>, InputError> {
    let mut resolved = BTreeMap::new();
    for variable in declared {
        let raw = value_text(variable, overrides)?;
        let lookup = MetaLookup {
            meta,
            variables: &resolved,
            config,
        };
        let unresolvable = |reason: String| InputError::Unresolvable {
            location: variable.location.to_string(),
            name: variable.name.clone(),
            reason,
        };
        let value = expr::interpolate(&raw, &lookup).map_err(|e| unresolvable(e.to_string()))?;
        let value = finish_variable(variable.kind, value, config)
            .map_err(|e| unresolvable(e.to_string()))?;
        resolved.insert(variable.name.clone(), value);
    }
    Ok(resolved)
}

/// A `Secret` variable's value is a secret id; a `Number` variable must read as a number.
pub(crate) fn finish_variable(
    kind: VariableKind,
    value: Value,
    config: &Config,
) -> Result<Value, VariableError> {
    match kind {
        VariableKind::String => Ok(value),
        VariableKind::Number => {
            let text = expr::to_text(&value);
            text.trim()
                .parse::<f64>()
                .map(|_| crate::yaml::plain_scalar_to_json(text.trim()))
                .map_err(|_| VariableError::NotANumber(text))
        }
        VariableKind::Secret => Ok(Value::from(config.secret(&expr::to_text(&value))?)),
    }
}

/// Why a typed variable's value does not fit its type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VariableError {
    #[error("`{0}` is not a number")]
    NotANumber(String),
    #[error(transparent)]
    Secret(#[from] SecretError),
}

/// Why a run cannot start with the inputs it was given; each names the variable and what to do.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum InputError {
    #[error("--var {name}={given}: allowed values are {allowed}")]
    NotAllowed {
        name: String,
        given: String,
        allowed: String,
    },
    #[error(
        "{location}: variable `{name}` is a runtime input with no default; pass --var {name}=VALUE"
    )]
    Missing { location: String, name: String },
    #[error("--var {name}: the pipeline has no variable `{name}` (declared: {declared})")]
    Undeclared { name: String, declared: String },
    #[error("{location}: pipeline variable `{name}`: {reason}")]
    Unresolvable {
        location: String,
        name: String,
        reason: String,
    },
    #[error(transparent)]
    Plan(#[from] PlanError),
}

/// Resolves names available before any stage runs (pipeline meta and variables, secrets).
pub struct MetaLookup<'a> {
    pub meta: &'a Meta,
    pub variables: &'a BTreeMap<String, Value>,
    /// Reads secrets, masking them in the run.
    pub config: &'a Config,
}

impl Resolver for MetaLookup<'_> {
    fn resolve(&self, path: &[String]) -> Result<Value, Reason> {
        let segments: Vec<&str> = path.iter().map(String::as_str).collect();
        match segments.as_slice() {
            ["pipeline", "name"] => Ok(Value::from(self.meta.name.clone())),
            ["pipeline", "identifier"] => Ok(Value::from(self.meta.identifier.clone())),
            ["pipeline", "executionId"] => Ok(Value::from(self.meta.execution_id.clone())),
            ["pipeline", "sequenceId"] => Ok(Value::from(self.meta.sequence_id)),
            ["pipeline", "variables", name] => {
                self.variables.get(*name).cloned().ok_or_else(|| Reason::Undefined({
                    format!(
                        "pipeline variable `{name}` is not declared (or is declared after this one)"
                    )
                }))
            }
            _ => Err(Reason::Undefined(format!(
                "`{}` is not known before the run starts",
                path.join(".")
            ))),
        }
    }

    fn secret(&self, id: &str) -> Result<String, Reason> {
        self.config
            .secret(id)
            .map_err(|e| Reason::Undefined(e.to_string()))
    }
}
