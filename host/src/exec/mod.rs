//! Runs a plan: stages in order (or in parallel), steps in order (or in parallel), each step in
//! the sandbox; `when`, failure strategies, retries, rollbacks and timeouts as in Harness.
//!
//! Invariants: every node of the plan ends with a final status (nodes that never started are
//! Skipped); a parent's status is the aggregate of its children's; cancelling (Ctrl-C, `Abort`,
//! a parent timeout) stops running steps, which end Aborted or Expired.

mod cancel;
mod scope;
mod state;
pub mod status;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use futures::future::join_all;
use serde_json::Value;
use tokio::sync::{OnceCell, Semaphore};

pub use cancel::{Cancel, Reason};
use scope::{Frame, Lookup, Scope};
pub use state::{NodeError, Record, RunState};
use status::{Status, aggregate};

use crate::config::{Config, Refusal, SchemaFetch};
use crate::expr::{self, Resolver};
use crate::pipeline::{
    Action, ErrorType, FailureRule, Pipeline, StatusGate, Variable, VariableKind, VariableValue,
};
use crate::plan::{NodeKind, PlanNode};
use crate::sandbox::log::{Level, LogSink, SecretMask, StepLog};
use crate::sandbox::{FailureKind, Invocation, Sandbox, StepComponent};
use crate::steps::{self, StepSource};
use crate::yaml::{Node, Value as YamlValue};

/// What the run tells the outside world as it goes.
pub trait Observer: Send + Sync {
    fn started(&self, record: &Record);
    fn finished(&self, record: &Record);
    fn log(&self, step_fqn: &str, level: Level, text: &str);
}

/// Pipeline facts that expressions can read.
#[derive(Debug, Clone)]
pub struct Meta {
    pub name: String,
    pub identifier: String,
    pub execution_id: String,
    pub sequence_id: u64,
    pub start_ts: u64,
}

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

/// Control flow a failure sends up the tree.
#[derive(Debug, Clone, PartialEq)]
enum Flow {
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
    fn severity(&self) -> u8 {
        match self {
            Flow::Continue => 0,
            Flow::GroupRollback | Flow::RetryGroup { .. } => 1,
            Flow::StageRollback => 2,
            Flow::PipelineRollback => 3,
            Flow::Abort => 4,
        }
    }
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
fn value_text(variable: &Variable, overrides: &BTreeMap<String, String>) -> Result<String, String> {
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
fn finish_variable(
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

/// Loads the component of every step type the plan uses, before any step starts.
/// Returns every problem at once.
pub fn load_components(
    root: &PlanNode,
    config: &Config,
    sandbox: &Sandbox,
) -> Result<HashMap<String, Arc<StepComponent>>, Vec<String>> {
    let mut components = HashMap::new();
    let mut problems = vec![];
    let mut seen = std::collections::HashSet::new();
    for node in root
        .descendants()
        .into_iter()
        .filter(|n| n.kind == NodeKind::Step)
    {
        let step_type = node.type_name().to_string();
        if !seen.insert(step_type.clone()) {
            continue;
        }
        let loaded = match steps::source(config, &step_type) {
            StepSource::Unavailable(message) => Err(format!("{message} (step `{}`)", node.fqn)),
            StepSource::BuiltIn(b) => sandbox
                .load(b.wasm, None)
                .map_err(|e| format!("built-in step type `{step_type}`: {e}")),
            StepSource::Custom(custom) => match std::fs::read(&custom.component) {
                Ok(bytes) => sandbox.load(&bytes, Some(&custom.sha256)).map_err(|e| {
                    format!(
                        "{}: step type `{step_type}` ({}): {e}",
                        custom.location,
                        custom.component.display()
                    )
                }),
                Err(e) => Err(format!(
                    "{}: step type `{step_type}`: cannot read {}: {e}",
                    custom.location,
                    custom.component.display()
                )),
            },
        };
        match loaded {
            Ok(component) => {
                components.insert(step_type, Arc::new(component));
            }
            Err(problem) => problems.push(problem),
        }
    }
    if let Some(problem) = process_sandbox_problem(root, config) {
        problems.push(problem);
    }
    if problems.is_empty() {
        Ok(components)
    } else {
        Err(problems)
    }
}

/// When the plan runs scripts and the operator requires them confined: whether this machine can
/// confine them. Checked before any step starts, so a run never gets halfway to find out.
fn process_sandbox_problem(root: &PlanNode, config: &Config) -> Option<String> {
    use crate::capability::process::policy::Confinement;
    if config.process_policy.confinement != Confinement::Required {
        return None;
    }
    let runs_scripts = root
        .descendants()
        .iter()
        .filter(|n| n.kind == NodeKind::Step)
        .any(|n| match steps::source(config, n.type_name()) {
            StepSource::BuiltIn(b) => b.name == "Run",
            StepSource::Custom(c) => c.process,
            StepSource::Unavailable(_) => false,
        });
    let refused = runs_scripts
        .then(|| crate::capability::process::probe(&config.process_policy).err())
        .flatten()?;
    Some(format!(
        "Run steps cannot be confined on this machine: {refused}"
    ))
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

    pub(crate) fn secret(&self, id: &str) -> Result<String, String> {
        let value = self.config.secret(id)?;
        self.mask.add(&value);
        Ok(value)
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

    fn start(&self, fqn: &str) {
        if let Some(record) = self.state.start(fqn) {
            self.observer.started(&record);
        }
    }

    fn finish(&self, fqn: &str, status: Status, error: Option<NodeError>) {
        let error = error.map(|e| NodeError {
            message: self.mask.apply(&e.message),
            ..e
        });
        if let Some(record) = self.state.finish(fqn, status, error) {
            self.observer.finished(&record);
        }
    }

    /// A stage or step group that could not start its children: it ends Errored, they Skipped.
    fn errored(&self, node: &PlanNode, message: String) {
        if self.state.status(&node.fqn) == Status::Queued {
            self.start(&node.fqn);
        }
        self.finish(
            &node.fqn,
            Status::Errored,
            Some(NodeError {
                error_type: "Unknown".into(),
                message,
            }),
        );
        self.skip(node, "not run");
    }

    fn skip(&self, node: &PlanNode, why: &str) {
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

    async fn run_stages(&self, root: &PlanNode, cancel: &Cancel) {
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
    async fn run_stage(
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
    async fn rollback(&self, stage: &PlanNode, cancel: &Cancel) {
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

    fn stage_workspace(&self, stage: &PlanNode) -> PathBuf {
        self.workspace_root.join(&stage.identifier)
    }

    /// The stage as expressions see it; its variables are those recorded when it started.
    fn stage_frame(&self, stage: &PlanNode) -> Arc<Frame> {
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

    fn finish_aggregate(&self, node: &PlanNode) {
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

    fn first_error(&self, node: &PlanNode) -> Option<NodeError> {
        node.descendants()
            .iter()
            .filter(|n| n.kind == NodeKind::Step)
            .find_map(|n| {
                self.state
                    .get(&n.fqn)
                    .and_then(|r| r.error.clone().filter(|_| r.status.is_failure()))
            })
    }

    async fn run_sequence(&self, items: &[PlanNode], scope: &Scope, cancel: &Cancel) -> Flow {
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

    async fn run_item(&self, node: &PlanNode, scope: &Scope, cancel: &Cancel) -> Flow {
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
    fn gate(&self, node: &PlanNode, scope: &Scope) -> Result<bool, String> {
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

    fn condition(&self, condition: &str, scope: &Scope) -> Result<bool, String> {
        let lookup = Lookup { run: self, scope };
        // The whole condition is one expression; `<+...>` inside it are spliced in as operands.
        expr::interpolate(&format!("<+{condition}>"), &lookup)
            .map(|v| expr::is_truthy(&v))
            .map_err(|e| format!("when.condition: {e}"))
    }

    fn frame_variables(
        &self,
        node: &PlanNode,
        scope: &Scope,
    ) -> Result<BTreeMap<String, Value>, String> {
        let mut out = BTreeMap::new();
        for variable in &node.variables {
            // `prepare` has filled every runtime input, so this never asks for one.
            let raw = value_text(variable, &BTreeMap::new())?;
            let lookup = Lookup { run: self, scope };
            let value = expr::interpolate(&raw, &lookup)
                .map_err(|e| format!("variable `{}`: {e}", variable.name))?;
            out.insert(
                variable.name.clone(),
                finish_variable(variable.kind, value, self.config, &self.mask)?,
            );
        }
        Ok(out)
    }

    async fn run_group(&self, group: &PlanNode, scope: &Scope, cancel: &Cancel) -> Flow {
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

    async fn run_step(&self, step_node: &PlanNode, scope: &Scope, cancel: &Cancel) -> Flow {
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
        let infra = scope.groups.iter().rev().find_map(|g| g.infra.as_ref());
        let steps::Bound {
            grants,
            spec,
            schema_fetch,
        } = match source.bind(
            spec,
            self.config,
            &step_node.fqn,
            &self.meta.execution_id,
            infra,
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
        let limits = source.limits();
        let timeout = step.common.timeout.unwrap_or(limits.default_timeout);
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
                                "Timeout"
                            } else {
                                "Unknown"
                            }
                            .into(),
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
                    let error_type = failure.kind.error_type();
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

    /// The failure action that applies to `error_type` at this step: the step's rules, then each
    /// enclosing step group's (innermost first), then the stage's. In each list, a rule naming
    /// the type wins over an `AllErrors` rule.
    fn action_for(&self, step: &PlanNode, scope: &Scope, error_type: ErrorType) -> Option<Action> {
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

    /// Fetches a Git-hosted schema into `into` unless a step of this run already has. Steps that
    /// need it at the same time wait for one fetch; after a failed fetch the next step tries again.
    async fn fetch_schema_once(
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

    async fn fail(
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
                (kind.error_type(), kind.to_string(), status)
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
            error_type: error_type.name().to_string(),
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

enum FailureSignal {
    Expression(String),
    /// lockstep.yaml lacks what the step needs.
    Configuration(String),
    /// The operator's lockstep.yaml does not allow what the step asks for.
    Denied(String),
    Step(FailureKind),
}

/// Harness reuses the last interval when the list is shorter than the retry count.
fn interval(intervals: &[Duration], attempt: u32) -> Duration {
    intervals
        .get(attempt as usize)
        .or(intervals.last())
        .copied()
        .unwrap_or(Duration::from_secs(1))
}

/// FQNs of a node's direct children (through `parallel`), rollback steps included.
fn direct_records(node: &PlanNode) -> Vec<String> {
    fn collect(nodes: &[PlanNode], out: &mut Vec<String>) {
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

/// Runs `work`; if `timeout` passes first, cancels `cancel` as Expired and lets `work` finish
/// recording what it stopped.
async fn with_deadline<F: std::future::Future>(
    timeout: Option<Duration>,
    cancel: &Cancel,
    work: F,
) -> F::Output {
    let Some(timeout) = timeout else {
        return work.await;
    };
    tokio::pin!(work);
    tokio::select! {
        output = &mut work => output,
        _ = tokio::time::sleep(timeout) => {
            cancel.cancel(Reason::Expired);
            work.await
        }
    }
}

/// The step's spec with every expression resolved. A scalar that is exactly one expression
/// keeps the value's type.
fn resolve_spec(spec: &Node, lookup: &dyn Resolver) -> Result<Value, String> {
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
