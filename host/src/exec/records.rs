//! Every node's record as the run goes: started, finished (its error masked), errored, skipped.

use super::Run;
use super::state::NodeError;
use super::status::Status;
use crate::pipeline::ErrorType;
use crate::plan::{NodeKind, PlanNode};

impl Run<'_> {
    pub(super) fn start(&self, fqn: &str) {
        if let Some(record) = self.state.start(fqn) {
            self.observer.started(&record);
        }
    }

    pub(super) fn finish(&self, fqn: &str, status: Status, error: Option<NodeError>) {
        let error = error.map(|e| NodeError {
            message: self.mask.apply(&e.message),
            ..e
        });
        if let Some(record) = self.state.finish(fqn, status, error) {
            self.observer.finished(&record);
        }
    }

    /// A stage or step group that could not start its children: it ends Errored, they Skipped.
    pub(super) fn errored(&self, node: &PlanNode, message: String) {
        if self.state.status(&node.fqn) == Status::Queued {
            self.start(&node.fqn);
        }
        self.finish(
            &node.fqn,
            Status::Errored,
            Some(NodeError {
                error_type: ErrorType::Unknown,
                message,
            }),
        );
        self.skip(node, "not run");
    }

    pub(super) fn skip(&self, node: &PlanNode, why: &str) {
        for n in std::iter::once(node)
            .chain(node.descendants())
            .filter(|n| n.kind != NodeKind::Parallel)
        {
            if self.state.status(&n.fqn) == Status::Queued {
                self.state.update(&n.fqn, |r| {
                    r.status = Status::Skipped;
                    r.summary = Some(why.to_string());
                });
                if let Some(record) = self.state.get(&n.fqn) {
                    self.observer.finished(&record);
                }
            }
        }
    }
}
