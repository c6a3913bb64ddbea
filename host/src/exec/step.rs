//! One step: its spec resolved, its step type bound to grants, a Git-hosted schema fetched once
//! per run, then its runs in the sandbox until it succeeds or its retries run out.

use std::path::PathBuf;
use std::sync::Arc;

use serde_json::Value;

use super::cancel::{Cancel, Reason};
use super::failure::{FailureSignal, Flow, interval};
use super::scope::{Lookup, Scope};
use super::state::NodeError;
use super::status::Status;
use super::{Run, Sink};
use crate::capability::git::SchemaFetch;
use crate::config::Refusal;
use crate::expr::{self, Resolver};
use crate::log::{Level, StepLog};
use crate::pipeline::{Action, ErrorType};
use crate::plan::PlanNode;
use crate::sandbox::Invocation;
use crate::steps::{self, BindContext};
use crate::yaml::{Node, Value as YamlValue};

impl Run<'_> {
    pub(super) async fn run_step(
        &self,
        step_node: &PlanNode,
        scope: &Scope,
        cancel: &Cancel,
    ) -> Flow {
        let fqn = &step_node.fqn;
        match self.gate(step_node, scope) {
            Ok(true) => {}
            Ok(false) => {
                self.skip(step_node, "its `when` did not match");
                return Flow::Continue;
            }
            Err(message) => {
                self.start(fqn);
                return self
                    .fail(step_node, scope, FailureSignal::Expression(message), 0)
                    .await;
            }
        }
        self.start(fqn);
        let step = step_node
            .step
            .as_ref()
            .expect("step nodes carry their step");
        let mut step_scope = scope.clone();
        step_scope.step = Some((step_node.identifier.clone(), step_node.name.clone()));
        if step_node.strategy.is_some() {
            step_scope.strategy = step_node.strategy.clone();
        }
        let spec = match resolve_spec(
            &step.spec,
            &Lookup {
                run: self,
                scope: &step_scope,
            },
        ) {
            Ok(spec) => spec,
            Err(message) => {
                return self
                    .fail(step_node, scope, FailureSignal::Expression(message), 0)
                    .await;
            }
        };
        let source = steps::source(self.config, &step.step_type);
        let limits = source.limits();
        let timeout = step.common.timeout.unwrap_or(limits.default_timeout);
        let infra = scope.groups.iter().rev().find_map(|g| g.infra.as_ref());
        let steps::Bound {
            grants,
            spec,
            settings,
            schema_fetch,
        } = match source.bind(
            &step.step_type,
            spec,
            &BindContext {
                config: self.config,
                fqn: &step_node.fqn,
                execution_id: &self.meta.execution_id,
                pipeline: &self.meta.identifier,
                infra,
                timeout,
            },
        ) {
            Ok(bound) => bound,
            Err(Refusal::Configuration(message)) => {
                return self
                    .fail(step_node, scope, FailureSignal::Configuration(message), 0)
                    .await;
            }
            Err(Refusal::Denied(message)) => {
                return self
                    .fail(step_node, scope, FailureSignal::Denied(message), 0)
                    .await;
            }
        };
        if let Some((fetch, checkout)) = schema_fetch
            && let Err(message) = self
                .fetch_schema_once(fetch, scope.workspace.clone(), checkout)
                .await
        {
            return self
                .fail(step_node, scope, FailureSignal::Configuration(message), 0)
                .await;
        }
        let component = self
            .components
            .get(&step.step_type)
            .cloned()
            .expect("components were loaded for every step type");
        let mut attempt: u32 = 0;
        loop {
            let log = StepLog::new(
                self.mask.clone(),
                Arc::new(Sink {
                    observer: self.observer.clone(),
                    fqn: fqn.clone(),
                }),
                limits.log_bytes,
            );
            let invocation = Invocation {
                identifier: step_node.identifier.clone(),
                step_type: step.step_type.clone(),
                spec: spec.clone(),
                settings: settings.clone(),
                grants: grants.clone(),
                workspace: scope.workspace.clone(),
                log,
                limits: limits.clone(),
                timeout,
            };
            let result = tokio::select! {
                result = self.sandbox.run(&component, invocation) => Some(result),
                _ = cancel.cancelled() => None,
            };
            match result {
                None => {
                    let status = if cancel.reason() == Some(Reason::Expired) {
                        Status::Expired
                    } else {
                        Status::Aborted
                    };
                    let message = if status == Status::Expired {
                        "stopped: a parent's timeout ran out"
                    } else {
                        "stopped: the pipeline was aborted"
                    };
                    self.finish(
                        fqn,
                        status,
                        Some(NodeError {
                            error_type: if status == Status::Expired {
                                ErrorType::Timeout
                            } else {
                                ErrorType::Unknown
                            },
                            message: message.into(),
                        }),
                    );
                    return Flow::Continue;
                }
                Some(Ok(success)) => {
                    self.state.update(fqn, |r| {
                        r.outputs = success.outputs;
                        r.summary = success.summary;
                        r.retries = attempt;
                    });
                    self.finish(fqn, Status::Success, None);
                    return Flow::Continue;
                }
                Some(Err(failure)) => {
                    self.state.update(fqn, |r| {
                        r.outputs = failure.outputs;
                        r.retries = attempt;
                    });
                    let error_type = super::failure::error_type(&failure.kind);
                    if let Some(Action::Retry {
                        count, intervals, ..
                    }) = self.action_for(step_node, scope, error_type)
                        && attempt < count
                    {
                        let pause = interval(&intervals, attempt);
                        attempt += 1;
                        self.observer.log(
                            fqn,
                            Level::Warn,
                            &format!(
                                "{}; retrying ({attempt} of {count}) in {}",
                                failure.kind,
                                crate::pipeline::duration::format(pause)
                            ),
                        );
                        tokio::select! { _ = tokio::time::sleep(pause) => continue, _ = cancel.cancelled() => {} }
                    }
                    return self
                        .fail(step_node, scope, FailureSignal::Step(failure.kind), attempt)
                        .await;
                }
            }
        }
    }

    /// Fetches a Git-hosted schema into `into` unless a step of this run already has. Steps that
    /// need it at the same time wait for one fetch; after a failed fetch the next step tries again.
    pub(super) async fn fetch_schema_once(
        &self,
        fetch: SchemaFetch,
        workspace: PathBuf,
        directory: PathBuf,
    ) -> Result<(), String> {
        let checkout = self
            .schema_checkouts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(workspace.join(&directory))
            .or_default()
            .clone();
        checkout
            .get_or_try_init(|| async move {
                tokio::task::spawn_blocking(move || {
                    fetch.fetch_into_workspace(&workspace, &directory)
                })
                .await
                .unwrap_or_else(|e| Err(format!("fetching the schema stopped: {e}")))
            })
            .await
            .map(drop)
    }
}

/// The step's spec with every expression resolved. A scalar that is exactly one expression
/// keeps the value's type.
pub(super) fn resolve_spec(spec: &Node, lookup: &dyn Resolver) -> Result<Value, String> {
    Ok(match &spec.value {
        YamlValue::Null => Value::Null,
        YamlValue::Scalar { text, quoted } => {
            if expr::has_expression(text) {
                expr::interpolate(text, lookup).map_err(|e| e.to_string())?
            } else if *quoted {
                Value::String(text.clone())
            } else {
                crate::yaml::plain_scalar_to_json(text)
            }
        }
        YamlValue::Seq(items) => Value::Array(
            items
                .iter()
                .map(|i| resolve_spec(i, lookup))
                .collect::<Result<_, _>>()?,
        ),
        YamlValue::Map(entries) => Value::Object(
            entries
                .iter()
                .map(|(k, v)| {
                    Ok((
                        k.as_str().unwrap_or_default().to_string(),
                        resolve_spec(v, lookup)?,
                    ))
                })
                .collect::<Result<_, String>>()?,
        ),
    })
}
