//! What the run has recorded so far about every node.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use serde_json::Value;

use super::status::Status;
use crate::plan::{NodeKind, PlanNode};

#[derive(Debug, Clone)]
pub struct Record {
    pub fqn: String,
    pub identifier: String,
    pub name: String,
    pub node_type: String,
    pub kind: NodeKind,
    pub status: Status,
    pub started_at: Option<SystemTime>,
    started: Option<Instant>,
    pub duration: Option<Duration>,
    pub outputs: BTreeMap<String, String>,
    /// Resolved variables of a stage or step group.
    pub variables: BTreeMap<String, Value>,
    pub error: Option<NodeError>,
    /// How many times the step was retried.
    pub retries: u32,
    pub summary: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct NodeError {
    /// The Harness error type failure strategies matched (`Timeout`, `Unknown`, …).
    pub error_type: crate::pipeline::ErrorType,
    pub message: String,
}

/// Records in plan order, indexed by FQN.
#[derive(Default)]
pub struct RunState {
    records: Mutex<(Vec<Record>, HashMap<String, usize>)>,
}

impl RunState {
    pub fn new(root: &PlanNode) -> Self {
        let nodes = std::iter::once(root)
            .chain(root.descendants())
            .filter(|n| n.kind != NodeKind::Parallel);
        let mut list = vec![];
        let mut index = HashMap::new();
        for node in nodes {
            index.insert(node.fqn.clone(), list.len());
            list.push(Record {
                fqn: node.fqn.clone(),
                identifier: node.identifier.clone(),
                name: node.name.clone(),
                node_type: node.type_name().to_string(),
                kind: node.kind,
                status: Status::Queued,
                started_at: None,
                started: None,
                duration: None,
                outputs: BTreeMap::new(),
                variables: BTreeMap::new(),
                error: None,
                retries: 0,
                summary: None,
            });
        }
        RunState {
            records: Mutex::new((list, index)),
        }
    }

    pub fn update<R>(&self, fqn: &str, f: impl FnOnce(&mut Record) -> R) -> Option<R> {
        let mut guard = self.records.lock().unwrap_or_else(|e| e.into_inner());
        let (list, index) = &mut *guard;
        index.get(fqn).copied().map(|i| f(&mut list[i]))
    }

    pub fn get(&self, fqn: &str) -> Option<Record> {
        let guard = self.records.lock().unwrap_or_else(|e| e.into_inner());
        guard.1.get(fqn).map(|i| guard.0[*i].clone())
    }

    pub fn status(&self, fqn: &str) -> Status {
        self.get(fqn).map_or(Status::Queued, |r| r.status)
    }

    pub fn start(&self, fqn: &str) -> Option<Record> {
        self.update(fqn, |r| {
            r.status = Status::Running;
            r.started_at = Some(SystemTime::now());
            r.started = Some(Instant::now());
            r.clone()
        })
    }

    pub fn finish(&self, fqn: &str, status: Status, error: Option<NodeError>) -> Option<Record> {
        self.update(fqn, |r| {
            r.status = status;
            r.duration = r.started.map(|s| s.elapsed());
            r.error = error;
            r.clone()
        })
    }

    /// Puts the nodes of a step group back to Queued before the group is retried.
    pub fn reset_below(&self, prefix: &str) {
        let mut guard = self.records.lock().unwrap_or_else(|e| e.into_inner());
        for record in guard
            .0
            .iter_mut()
            .filter(|r| r.fqn.starts_with(prefix) && r.fqn.len() > prefix.len())
        {
            record.status = Status::Queued;
            record.outputs.clear();
            record.error = None;
            record.duration = None;
        }
    }

    /// Nodes that never started end Skipped.
    pub fn skip_unstarted(&self) {
        let mut guard = self.records.lock().unwrap_or_else(|e| e.into_inner());
        for record in guard.0.iter_mut().filter(|r| r.status == Status::Queued) {
            record.status = Status::Skipped;
        }
    }

    pub fn snapshot(&self) -> Vec<Record> {
        self.records
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .0
            .clone()
    }

    /// FQNs under `prefix` whose last segment is `identifier`.
    pub fn find_by_identifier(&self, prefix: &str, identifier: &str) -> Vec<String> {
        let guard = self.records.lock().unwrap_or_else(|e| e.into_inner());
        guard
            .0
            .iter()
            .filter(|r| {
                r.fqn.starts_with(prefix) && r.identifier == identifier && r.kind != NodeKind::Stage
            })
            .map(|r| r.fqn.clone())
            .collect()
    }

    /// The longest FQN that `path` (dot-joined segments) starts with, and the rest.
    pub fn split_fqn<'p>(&self, path: &'p [String]) -> Option<(String, &'p [String])> {
        let guard = self.records.lock().unwrap_or_else(|e| e.into_inner());
        (1..=path.len()).rev().find_map(|n| {
            let candidate = path[..n].join(".");
            guard
                .1
                .contains_key(&candidate)
                .then_some((candidate, &path[n..]))
        })
    }
}
