//! Node statuses and how a parent's status follows from its children's (Harness section A7).

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Status {
    /// Not started yet.
    Queued,
    Running,
    Success,
    Failed,
    Skipped,
    IgnoreFailed,
    Aborted,
    Expired,
    Errored,
}

impl Status {
    /// Whether the node ended in a way that counts as a failure for `when` and exit codes.
    pub fn is_failure(self) -> bool {
        matches!(
            self,
            Status::Failed | Status::Aborted | Status::Expired | Status::Errored
        )
    }

    pub fn is_final(self) -> bool {
        !matches!(self, Status::Queued | Status::Running)
    }

    /// The engine's enum name, as `<+...status>` expressions return it.
    pub fn engine_name(self) -> &'static str {
        match self {
            Status::Queued => "QUEUED",
            Status::Running => "RUNNING",
            Status::Success => "SUCCEEDED",
            Status::Failed => "FAILED",
            Status::Skipped => "SKIPPED",
            Status::IgnoreFailed => "IGNORE_FAILED",
            Status::Aborted => "ABORTED",
            Status::Expired => "EXPIRED",
            Status::Errored => "ERRORED",
        }
    }
}

/// A parent's status from its children's:
/// 1. all children in {Success, Skipped, IgnoreFailed} → IgnoreFailed if any is, else Success
///    (a parent with no children that ran is Success);
/// 2. otherwise the first present of Aborted, Errored, Failed, Expired, then Running, Queued.
pub fn aggregate(children: impl IntoIterator<Item = Status>) -> Status {
    let children: Vec<Status> = children.into_iter().collect();
    if children
        .iter()
        .all(|s| matches!(s, Status::Success | Status::Skipped | Status::IgnoreFailed))
    {
        return if children.contains(&Status::IgnoreFailed) {
            Status::IgnoreFailed
        } else {
            Status::Success
        };
    }
    [
        Status::Aborted,
        Status::Errored,
        Status::Failed,
        Status::Expired,
        Status::Running,
        Status::Queued,
    ]
    .into_iter()
    .find(|s| children.contains(s))
    .unwrap_or(Status::Success)
}

#[cfg(test)]
mod tests {
    use super::Status::*;
    use super::*;

    #[test]
    fn success_and_skipped_children_make_success() {
        assert_eq!(aggregate([Success, Skipped]), Success);
        assert_eq!(aggregate([]), Success);
    }

    #[test]
    fn any_ignore_failed_child_makes_ignore_failed() {
        assert_eq!(aggregate([Success, IgnoreFailed, Skipped]), IgnoreFailed);
    }

    #[test]
    fn negative_statuses_follow_the_priority_order() {
        assert_eq!(aggregate([Failed, Aborted, Errored]), Aborted);
        assert_eq!(aggregate([Failed, Errored, Expired]), Errored);
        assert_eq!(aggregate([Expired, Failed, Success]), Failed);
        assert_eq!(aggregate([Expired, IgnoreFailed]), Expired);
    }
}
