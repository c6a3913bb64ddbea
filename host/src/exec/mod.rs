//! Runs a plan: stages in order (or in parallel), steps in order (or in parallel), each step in
//! the sandbox; `when`, failure strategies, retries, rollbacks and timeouts as in Harness.
//!
//! Invariants: every node of the plan ends with a final status (nodes that never started are
//! Skipped); a parent's status is the aggregate of its children's; cancelling (Ctrl-C, `Abort`,
//! a parent timeout) stops running steps, which end Aborted or Expired.

//! The executor is split by job: [`walk`] goes down the tree (stages, sequences, parallel
//! blocks, step groups, rollbacks), [`step`] runs one step with its retries, [`failure`] chooses
//! what a failure does, [`records`] keeps every node's record, and [`components`] loads the step
//! types a plan uses. What is resolved before a run starts lives with the plan
//! ([`crate::plan::inputs`]).

mod cancel;
mod components;
mod failure;
mod records;
mod scope;
mod state;
pub mod status;
mod step;
mod walk;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use serde_json::Value;
use tokio::sync::OnceCell;

use cancel::with_deadline;
pub use cancel::{Cancel, Reason};
pub use components::load_components;
pub use state::{NodeError, Record, RunState};
use status::{Status, aggregate};

use crate::config::Config;

use crate::log::{Level, LogSink, SecretMask};
use crate::plan::{NodeKind, PlanNode};
use crate::sandbox::{Sandbox, StepComponent};

/// What the run tells the outside world as it goes.
pub trait Observer: Send + Sync {
    fn started(&self, record: &Record);
    fn finished(&self, record: &Record);
    fn log(&self, step_fqn: &str, level: Level, text: &str);
}

/// Pipeline facts that expressions can read (resolved with the plan).
pub use crate::plan::inputs::Meta;

/// The result of a run.
pub struct Outcome {
    pub status: Status,
    pub records: Vec<Record>,
    pub meta: Meta,
    pub started_at: SystemTime,
    pub duration: Duration,
}

/// One run of one plan.
pub struct Run<'a> {
    root: &'a PlanNode,
    pub(crate) meta: Meta,
    pub(crate) state: RunState,
    pub(crate) pipeline_variables: BTreeMap<String, Value>,
    sandbox: &'a Sandbox,
    config: &'a Config,
    components: HashMap<String, Arc<StepComponent>>,
    observer: Arc<dyn Observer>,
    mask: SecretMask,
    nodes: HashMap<String, &'a PlanNode>,
    workspace_root: PathBuf,
    /// The run's root token: an `Abort` action cancels it at once.
    root_cancel: Cancel,
    /// Git-hosted schema checkouts by directory: set once fetched, shared by the run's DB steps.
    schema_checkouts: Mutex<HashMap<PathBuf, Arc<OnceCell<()>>>>,
}

struct Sink {
    observer: Arc<dyn Observer>,
    fqn: String,
}

impl LogSink for Sink {
    fn line(&self, level: Level, text: &str) {
        self.observer.log(&self.fqn, level, text);
    }
}

impl<'a> Run<'a> {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        root: &'a PlanNode,
        meta: Meta,
        pipeline_variables: BTreeMap<String, Value>,
        sandbox: &'a Sandbox,
        config: &'a Config,
        components: HashMap<String, Arc<StepComponent>>,
        observer: Arc<dyn Observer>,
        mask: SecretMask,
        workspace_root: PathBuf,
    ) -> Self {
        let nodes = std::iter::once(root)
            .chain(root.descendants())
            .filter(|n| n.kind != NodeKind::Parallel)
            .map(|n| (n.fqn.clone(), n))
            .collect();
        // Scripts and kubeconfigs get absolute paths, whatever the working directory.
        let workspace_root = std::path::absolute(&workspace_root).unwrap_or(workspace_root);
        Run {
            root,
            meta,
            state: RunState::new(root),
            pipeline_variables,
            sandbox,
            config,
            components,
            observer,
            mask,
            nodes,
            workspace_root,
            root_cancel: Cancel::default(),
            schema_checkouts: Mutex::default(),
        }
    }

    pub(crate) fn spec_of(&self, fqn: &str) -> Option<Value> {
        self.nodes
            .get(fqn)
            .and_then(|n| n.step.as_ref())
            .map(|s| s.spec.to_json())
    }

    /// Runs the pipeline until it ends or `cancel` fires.
    pub async fn execute(mut self, cancel: Cancel) -> Outcome {
        self.root_cancel = cancel.clone();
        let root = self.root;
        let started_at = SystemTime::now();
        let clock = std::time::Instant::now();
        self.start(&root.fqn);
        let pipeline_cancel = cancel.child();
        let work = self.run_stages(root, &pipeline_cancel);
        with_deadline(
            root.common.as_ref().and_then(|c| c.timeout),
            &pipeline_cancel,
            work,
        )
        .await;
        self.state.skip_unstarted();
        let stages: Vec<Status> = self
            .state
            .snapshot()
            .iter()
            .filter(|r| r.kind == NodeKind::Stage)
            .map(|r| r.status)
            .collect();
        let status = aggregate(stages);
        self.finish(&root.fqn, status, None);
        Outcome {
            status,
            records: self.state.snapshot(),
            meta: self.meta.clone(),
            started_at,
            duration: clock.elapsed(),
        }
    }
}
