//! What a failure does: the failure strategy that applies (the step's, then each enclosing
//! group's, then the stage's), the status it leaves, and the control flow it sends up the tree.

use std::time::Duration;

use super::Run;
use super::cancel::Reason;
use super::scope::Scope;
use super::state::NodeError;
use super::status::Status;
use crate::capability;
use crate::pipeline::{Action, ErrorType, FailureRule};
use crate::plan::PlanNode;
use crate::sandbox::FailureKind;

/// Control flow a failure sends up the tree.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Flow {
    Continue,
    GroupRollback,
    RetryGroup {
        count: u32,
        intervals: Vec<Duration>,
    },
    StageRollback,
    PipelineRollback,
    Abort,
}

impl Flow {
    pub(super) fn severity(&self) -> u8 {
        match self {
            Flow::Continue => 0,
            Flow::GroupRollback | Flow::RetryGroup { .. } => 1,
            Flow::StageRollback => 2,
            Flow::PipelineRollback => 3,
            Flow::Abort => 4,
        }
    }
}

impl Run<'_> {
    /// The failure action that applies to `error_type` at this step: the step's rules, then each
    /// enclosing step group's (innermost first), then the stage's. In each list, a rule naming
    /// the type wins over an `AllErrors` rule.
    pub(super) fn action_for(
        &self,
        step: &PlanNode,
        scope: &Scope,
        error_type: ErrorType,
    ) -> Option<Action> {
        let mut levels: Vec<&[FailureRule]> = vec![
            step.common
                .as_ref()
                .map_or(&[][..], |c| &c.failure_strategies),
        ];
        for group in scope.groups.iter().rev() {
            if let Some(node) = self.nodes.get(&group.fqn) {
                levels.push(
                    node.common
                        .as_ref()
                        .map_or(&[][..], |c| &c.failure_strategies),
                );
            }
        }
        if let Some(stage) = scope.stage.as_ref().and_then(|s| self.nodes.get(&s.fqn)) {
            levels.push(
                stage
                    .common
                    .as_ref()
                    .map_or(&[][..], |c| &c.failure_strategies),
            );
        }
        levels.into_iter().find_map(|rules| {
            rules
                .iter()
                .find(|r| r.names(error_type))
                .or_else(|| rules.iter().find(|r| r.catches_all()))
                .map(|r| r.action.clone())
        })
    }

    pub(super) async fn fail(
        &self,
        step: &PlanNode,
        scope: &Scope,
        signal: FailureSignal,
        attempts: u32,
    ) -> Flow {
        let (error_type, message, failed_status) = match &signal {
            FailureSignal::Expression(message) => {
                (ErrorType::Unknown, message.clone(), Status::Failed)
            }
            FailureSignal::Configuration(message) => (
                ErrorType::ConfigurationFailure,
                message.clone(),
                Status::Failed,
            ),
            FailureSignal::Denied(message) => (
                ErrorType::Authorization,
                format!("access denied: {message}"),
                Status::Failed,
            ),
            FailureSignal::Step(kind) => {
                let status = match kind {
                    FailureKind::Timeout(_) => Status::Expired,
                    _ => Status::Failed,
                };
                (error_type(kind), kind.to_string(), status)
            }
        };
        let mut action = self.action_for(step, scope, error_type);
        if let Some(Action::Retry {
            on_retry_failure, ..
        }) = action
        {
            action = Some(*on_retry_failure);
        }
        let error = Some(NodeError {
            error_type,
            message: if attempts > 0 {
                format!("{message} (after {attempts} retries)")
            } else {
                message
            },
        });
        let (status, flow, marks_failed) = match action {
            Some(Action::Ignore) => (Status::IgnoreFailed, Flow::Continue, false),
            Some(Action::MarkAsSuccess | Action::ProceedWithDefaultValues) => {
                (Status::Success, Flow::Continue, false)
            }
            None | Some(Action::MarkAsFailure) | Some(Action::Retry { .. }) => {
                (failed_status, Flow::Continue, true)
            }
            Some(Action::Abort) => (Status::Aborted, Flow::Abort, true),
            Some(Action::StageRollback) => (failed_status, Flow::StageRollback, true),
            Some(Action::PipelineRollback) => (failed_status, Flow::PipelineRollback, true),
            Some(Action::StepGroupRollback) => (failed_status, Flow::GroupRollback, true),
            Some(Action::RetryStepGroup { count, intervals }) => {
                (failed_status, Flow::RetryGroup { count, intervals }, true)
            }
        };
        if marks_failed {
            scope.mark_failed();
        }
        self.finish(&step.fqn, status, error);
        if flow == Flow::Abort {
            self.root_cancel.cancel(Reason::Aborted);
        }
        flow
    }
}

pub(super) enum FailureSignal {
    Expression(String),
    /// lockstep.yaml lacks what the step needs.
    Configuration(String),
    /// The operator's lockstep.yaml does not allow what the step asks for.
    Denied(String),
    Step(FailureKind),
}

/// The Harness error type failure strategies match a sandbox failure against.
pub(super) fn error_type(kind: &FailureKind) -> ErrorType {
    use ErrorType as E;
    match kind {
        FailureKind::Denied { .. } | FailureKind::Forbidden { .. } => E::Authorization,
        FailureKind::Setup(_) => E::ConfigurationFailure,
        FailureKind::Timeout(_) => E::Timeout,
        FailureKind::OutOfMemory(_) | FailureKind::HostcallLimit(_) | FailureKind::HandleLimit => {
            E::ResourceLimitsFailure
        }
        FailureKind::Trap(_) => E::Unknown,
        FailureKind::Step(error) => match error {
            capability::Error::AccessDenied(_) => E::Authorization,
            capability::Error::Unavailable(_) => E::Connectivity,
            capability::Error::LimitExceeded(_) => E::ResourceLimitsFailure,
            capability::Error::Invalid(_) => E::ConfigurationFailure,
            capability::Error::NotFound(_)
            | capability::Error::Conflict(_)
            | capability::Error::Failed(_) => E::Unknown,
        },
    }
}

/// Harness reuses the last interval when the list is shorter than the retry count.
pub(super) fn interval(intervals: &[Duration], attempt: u32) -> Duration {
    intervals
        .get(attempt as usize)
        .or(intervals.last())
        .copied()
        .unwrap_or(Duration::from_secs(1))
}
