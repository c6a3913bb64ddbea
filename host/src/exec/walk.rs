//! Down the tree: stages in order (or in parallel), their sequences of steps, parallel blocks,
//! step groups with their retries and rollbacks, stage and pipeline rollbacks; `when` gates.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use futures::future::join_all;
use serde_json::Value;
use tokio::sync::Semaphore;

use super::Run;
use super::cancel::{Cancel, Reason, with_deadline};
use super::failure::{Flow, interval};
use super::scope::{Frame, Lookup, Scope};
use super::state::NodeError;
use super::status::{Status, aggregate};
use crate::expr;
use crate::log::Level;
use crate::pipeline::StatusGate;
use crate::plan::inputs::{finish_variable, value_text};
use crate::plan::{NodeKind, PlanNode};

impl Run<'_> {
    pub(super) async fn run_stages(&self, root: &PlanNode, cancel: &Cancel) {
        let mut executed: Vec<&PlanNode> = vec![];
        let mut failed_any = false;
        let mut failed_unhandled = false;
        let mut stopping = false;
        for item in &root.children {
            if stopping || cancel.reason().is_some() {
                self.skip(item, "not run: the pipeline stopped");
                continue;
            }
            let stages: Vec<&PlanNode> = if item.kind == NodeKind::Parallel {
                item.children.iter().collect()
            } else {
                vec![item]
            };
            let limit = Arc::new(Semaphore::new(
                item.concurrency.unwrap_or(Semaphore::MAX_PERMITS),
            ));
            let results = join_all(stages.iter().map(|stage| {
                let limit = limit.clone();
                async move {
                    let _permit = limit.acquire().await;
                    self.run_stage(stage, cancel, failed_any, failed_unhandled)
                        .await
                }
            }))
            .await;
            for (stage, (ran, flow, rolled_back)) in stages.iter().zip(results) {
                if ran {
                    executed.push(stage);
                }
                let status = self.state.status(&stage.fqn);
                if status.is_failure() {
                    failed_any = true;
                    failed_unhandled |= !rolled_back;
                }
                match flow {
                    Flow::PipelineRollback => {
                        stopping = true;
                        for done in executed.iter().rev() {
                            self.rollback(done, cancel).await;
                            self.finish_aggregate(done);
                        }
                    }
                    Flow::Abort => {
                        stopping = true;
                        cancel.cancel(Reason::Aborted);
                    }
                    _ => {}
                }
            }
        }
    }

    /// Returns (whether it ran, the flow it ended with, whether it was rolled back).
    pub(super) async fn run_stage(
        &self,
        stage: &PlanNode,
        cancel: &Cancel,
        failed_any: bool,
        failed_unhandled: bool,
    ) -> (bool, Flow, bool) {
        let common = stage.common.as_ref().expect("stages have common fields");
        let gate = common
            .when
            .as_ref()
            .map_or(StatusGate::Success, |w| w.status);
        let gate_open = match gate {
            StatusGate::Success => !failed_any,
            StatusGate::Failure => failed_unhandled,
            StatusGate::All => true,
        };
        if !gate_open {
            self.skip(stage, "its `when` did not match the pipeline status");
            return (false, Flow::Continue, false);
        }
        let workspace = self.stage_workspace(stage);
        let failed = Arc::new(AtomicBool::new(false));
        let mut scope = Scope {
            stage: None,
            groups: vec![],
            step: None,
            strategy: stage.strategy.clone(),
            failed,
            workspace: workspace.clone(),
        };
        if let Some(condition) = common.when.as_ref().and_then(|w| w.condition.as_ref()) {
            match self.condition(condition, &scope) {
                Ok(true) => {}
                Ok(false) => {
                    self.skip(stage, "its `when.condition` is false");
                    return (false, Flow::Continue, false);
                }
                Err(message) => {
                    self.errored(stage, message);
                    return (true, Flow::Continue, false);
                }
            }
        }
        self.start(&stage.fqn);
        if let Err(e) = std::fs::create_dir_all(&workspace) {
            self.errored(
                stage,
                format!(
                    "cannot create the stage workspace {}: {e}",
                    workspace.display()
                ),
            );
            return (true, Flow::Continue, false);
        }
        let variables = match self.frame_variables(stage, &scope) {
            Ok(v) => v,
            Err(message) => {
                self.errored(stage, message);
                return (true, Flow::Continue, false);
            }
        };
        self.state.update(&stage.fqn, |r| r.variables = variables);
        scope.stage = Some(self.stage_frame(stage));
        let stage_cancel = cancel.child();
        let mut flow = with_deadline(
            common.timeout,
            &stage_cancel,
            self.run_sequence(&stage.children, &scope, &stage_cancel),
        )
        .await;
        let mut rolled_back = false;
        if flow == Flow::StageRollback {
            self.rollback(stage, cancel).await;
            rolled_back = true;
            flow = Flow::Continue;
        }
        self.finish_aggregate(stage);
        (true, flow, rolled_back)
    }

    /// Runs a stage's rollback steps with a failure flag of their own: by default each runs only
    /// while the rollback so far succeeded; `when: stageStatus: All` runs it regardless.
    pub(super) async fn rollback(&self, stage: &PlanNode, cancel: &Cancel) {
        if stage.rollback.is_empty() {
            return;
        }
        let scope = Scope {
            stage: Some(self.stage_frame(stage)),
            groups: vec![],
            step: None,
            strategy: stage.strategy.clone(),
            failed: Arc::new(AtomicBool::new(false)),
            workspace: self.stage_workspace(stage),
        };
        Box::pin(self.run_sequence(&stage.rollback, &scope, cancel)).await;
    }

    pub(super) fn stage_workspace(&self, stage: &PlanNode) -> PathBuf {
        self.workspace_root.join(&stage.identifier)
    }

    /// The stage as expressions see it; its variables are those recorded when it started.
    pub(super) fn stage_frame(&self, stage: &PlanNode) -> Arc<Frame> {
        let variables = self
            .state
            .get(&stage.fqn)
            .map(|r| r.variables)
            .unwrap_or_default();
        Arc::new(Frame {
            fqn: stage.fqn.clone(),
            identifier: stage.identifier.clone(),
            name: stage.name.clone(),
            variables,
            strategy: stage.strategy.clone(),
            infra: None,
        })
    }

    pub(super) fn finish_aggregate(&self, node: &PlanNode) {
        let statuses: Vec<Status> = direct_records(node)
            .iter()
            .map(|fqn| self.state.status(fqn))
            .collect();
        let status = aggregate(statuses);
        let error = (status.is_failure())
            .then(|| self.first_error(node))
            .flatten();
        self.finish(&node.fqn, status, error);
    }

    pub(super) fn first_error(&self, node: &PlanNode) -> Option<NodeError> {
        node.descendants()
            .iter()
            .filter(|n| n.kind == NodeKind::Step)
            .find_map(|n| {
                self.state
                    .get(&n.fqn)
                    .and_then(|r| r.error.clone().filter(|_| r.status.is_failure()))
            })
    }

    pub(super) async fn run_sequence(
        &self,
        items: &[PlanNode],
        scope: &Scope,
        cancel: &Cancel,
    ) -> Flow {
        let mut flow = Flow::Continue;
        for item in items {
            if flow != Flow::Continue || cancel.reason().is_some() {
                self.skip(
                    item,
                    "not run: an earlier failure stopped this list of steps",
                );
                continue;
            }
            flow = Box::pin(self.run_item(item, scope, cancel)).await;
        }
        flow
    }

    pub(super) async fn run_item(&self, node: &PlanNode, scope: &Scope, cancel: &Cancel) -> Flow {
        match node.kind {
            NodeKind::Parallel => {
                // Siblings see the stage as it was when the block started, not each other's failures.
                let failed_before = scope.has_failed();
                let limit = Arc::new(Semaphore::new(
                    node.concurrency.unwrap_or(Semaphore::MAX_PERMITS),
                ));
                let results = join_all(node.children.iter().map(|child| {
                    let limit = limit.clone();
                    let child_scope = Scope {
                        failed: Arc::new(AtomicBool::new(failed_before)),
                        ..scope.clone()
                    };
                    async move {
                        let _permit = limit.acquire().await;
                        if cancel.reason().is_some() {
                            self.skip(child, "not run: the pipeline stopped");
                            return (Flow::Continue, false);
                        }
                        let flow = Box::pin(self.run_item(child, &child_scope, cancel)).await;
                        (flow, child_scope.has_failed())
                    }
                }))
                .await;
                if results.iter().any(|(_, failed)| *failed) {
                    scope.mark_failed();
                }
                results
                    .into_iter()
                    .map(|(flow, _)| flow)
                    .max_by_key(Flow::severity)
                    .unwrap_or(Flow::Continue)
            }
            NodeKind::Step => self.run_step(node, scope, cancel).await,
            NodeKind::StepGroup => self.run_group(node, scope, cancel).await,
            NodeKind::Stage | NodeKind::Pipeline => unreachable!("stages are run by run_stages"),
        }
    }

    /// Whether a step or step group runs: its `when` against the scope's failure flag.
    pub(super) fn gate(&self, node: &PlanNode, scope: &Scope) -> Result<bool, String> {
        let when = node.common.as_ref().and_then(|c| c.when.as_ref());
        let status_ok = match when.map_or(StatusGate::Success, |w| w.status) {
            StatusGate::Success => !scope.has_failed(),
            StatusGate::Failure => scope.has_failed(),
            StatusGate::All => true,
        };
        match when.and_then(|w| w.condition.as_ref()) {
            Some(condition) if status_ok => self.condition(condition, scope),
            _ => Ok(status_ok),
        }
    }

    pub(super) fn condition(&self, condition: &str, scope: &Scope) -> Result<bool, String> {
        let lookup = Lookup { run: self, scope };
        // The whole condition is one expression; `<+...>` inside it are spliced in as operands.
        expr::interpolate(&format!("<+{condition}>"), &lookup)
            .map(|v| expr::is_truthy(&v))
            .map_err(|e| format!("when.condition: {e}"))
    }

    pub(super) fn frame_variables(
        &self,
        node: &PlanNode,
        scope: &Scope,
    ) -> Result<BTreeMap<String, Value>, String> {
        let mut out = BTreeMap::new();
        for variable in &node.variables {
            // `prepare` has filled every runtime input, so this never asks for one.
            let raw = value_text(variable, &BTreeMap::new()).map_err(|e| e.to_string())?;
            let lookup = Lookup { run: self, scope };
            let value = expr::interpolate(&raw, &lookup)
                .map_err(|e| format!("variable `{}`: {e}", variable.name))?;
            out.insert(
                variable.name.clone(),
                finish_variable(variable.kind, value, self.config)
                    .map_err(|e| format!("variable `{}`: {e}", variable.name))?,
            );
        }
        Ok(out)
    }

    pub(super) async fn run_group(&self, group: &PlanNode, scope: &Scope, cancel: &Cancel) -> Flow {
        match self.gate(group, scope) {
            Ok(true) => {}
            Ok(false) => {
                self.skip(group, "its `when` did not match");
                return Flow::Continue;
            }
            Err(message) => {
                self.errored(group, message);
                scope.mark_failed();
                return Flow::Continue;
            }
        }
        self.start(&group.fqn);
        let variables = match self.frame_variables(group, scope) {
            Ok(v) => v,
            Err(message) => {
                self.errored(group, message);
                scope.mark_failed();
                return Flow::Continue;
            }
        };
        self.state
            .update(&group.fqn, |r| r.variables = variables.clone());
        let mut inner = scope.clone();
        inner.groups.push(Arc::new(Frame {
            fqn: group.fqn.clone(),
            identifier: group.identifier.clone(),
            name: group.name.clone(),
            variables,
            strategy: group.strategy.clone(),
            infra: group.infra.clone(),
        }));
        if group.strategy.is_some() {
            inner.strategy = group.strategy.clone();
        }
        let failed_before = scope.has_failed();
        let timeout = group.common.as_ref().and_then(|c| c.timeout);
        let mut retries = 0;
        let flow = loop {
            let group_cancel = cancel.child();
            let flow = with_deadline(
                timeout,
                &group_cancel,
                self.run_sequence(&group.children, &inner, &group_cancel),
            )
            .await;
            match flow {
                Flow::RetryGroup {
                    count,
                    ref intervals,
                } if retries < count && cancel.reason().is_none() => {
                    let pause = interval(intervals, retries);
                    retries += 1;
                    self.observer.log(
                        &group.fqn,
                        Level::Warn,
                        &format!(
                            "retrying step group `{}` ({retries} of {count}) in {}",
                            group.identifier,
                            crate::pipeline::duration::format(pause)
                        ),
                    );
                    tokio::select! { _ = tokio::time::sleep(pause) => {}, _ = cancel.cancelled() => break Flow::Continue }
                    self.state.reset_below(&format!("{}.", group.fqn));
                    inner
                        .failed
                        .store(failed_before, std::sync::atomic::Ordering::SeqCst);
                }
                Flow::RetryGroup { .. } => break Flow::Continue,
                Flow::GroupRollback => {
                    let rollback_scope = Scope {
                        failed: Arc::new(AtomicBool::new(false)),
                        ..inner.clone()
                    };
                    Box::pin(self.run_sequence(&group.rollback, &rollback_scope, cancel)).await;
                    break Flow::Continue;
                }
                other => break other,
            }
        };
        self.finish_aggregate(group);
        flow
    }
}

/// FQNs of a node's direct children (through `parallel`), rollback steps included.
pub(super) fn direct_records(node: &PlanNode) -> Vec<String> {
    pub(super) fn collect(nodes: &[PlanNode], out: &mut Vec<String>) {
        for n in nodes {
            if n.kind == NodeKind::Parallel {
                collect(&n.children, out)
            } else {
                out.push(n.fqn.clone())
            }
        }
    }
    let mut out = vec![];
    collect(&node.children, &mut out);
    collect(&node.rollback, &mut out);
    out
}
