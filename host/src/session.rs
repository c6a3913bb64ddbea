//! The one entry point to the library: what `lockstep validate`, `plan` and `run` do. The CLI and
//! the tests both go through it, so a test validates exactly what `lockstep run` validates.
//!
//! ```text
//! Session::load(file, source, config)   parse the pipeline, check every step against lockstep.yaml
//!   .plan(vars, meta)                   fill runtime inputs, resolve variables, build the graph
//!   .prepare(&plan, sandbox, workspace) load the step types' components, check the machine
//!   .run(prepared, observer, cancel)    execute
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::Value;

use crate::config::Config;
use crate::diag::{Diagnostic, InvalidInput};
use crate::exec::{self, Cancel, Meta, Observer, Outcome, Run};
use crate::pipeline::{self, Pipeline};
use crate::plan::inputs::{InputError, MetaLookup};
use crate::plan::{self as graph, PlanError, PlanNode};
use crate::sandbox::{Sandbox, StepComponent};
use crate::steps;

/// A pipeline read and checked against the operator's configuration.
pub struct Session {
    pub file: PathBuf,
    pub pipeline: Pipeline,
    pub config: Config,
    /// What the checks found that does not stop a run.
    pub warnings: Vec<Diagnostic>,
}

/// A plan with its inputs resolved: what a run executes.
pub struct Plan {
    pub root: PlanNode,
    pub variables: BTreeMap<String, Value>,
    pub meta: Meta,
}

/// A plan whose components are loaded and whose workspace is known: nothing left to check.
pub struct Prepared<'a> {
    plan: &'a Plan,
    sandbox: &'a Sandbox,
    components: std::collections::HashMap<String, Arc<StepComponent>>,
    workspace_root: PathBuf,
}

impl Session {
    /// Parses `source` (the pipeline at `file`) and checks every step's type and spec against
    /// `config`. `Err` lists every error (and the warnings beside them).
    pub fn load(file: &Path, source: &str, config: Config) -> Result<Session, InvalidInput> {
        let parsed = pipeline::parse_pipeline(file, source)?;
        let mut diagnostics = parsed.warnings;
        diagnostics.extend(crate::steps::check_pipeline(&parsed.pipeline, &config));
        if diagnostics.iter().any(Diagnostic::is_error) {
            return Err(InvalidInput(diagnostics));
        }
        Ok(Session {
            file: file.to_path_buf(),
            pipeline: parsed.pipeline,
            config,
            warnings: diagnostics,
        })
    }

    /// Facts about this execution that expressions read (`<+pipeline.executionId>`, …).
    pub fn meta(&self) -> Meta {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        Meta {
            name: self.pipeline.name.clone(),
            identifier: self.pipeline.identifier.clone(),
            execution_id: format!(
                "{:x}{:05x}",
                now.as_secs(),
                now.subsec_micros() ^ std::process::id()
            ),
            sequence_id: 1,
            start_ts: now.as_millis() as u64,
        }
    }

    /// Fills every runtime input from `vars` (or its default), resolves the pipeline variables
    /// and builds the graph. `Err` names the variable and says how to supply it.
    pub fn plan(&self, vars: &BTreeMap<String, String>, meta: Meta) -> Result<Plan, InputError> {
        let (root, variables) = graph::inputs::prepare(&self.pipeline, vars, &self.config, &meta)?;
        Ok(Plan {
            root,
            variables,
            meta,
        })
    }

    /// The graph as written, for `lockstep plan`: runtime inputs without a value are shown as
    /// they are rather than refused.
    pub fn plan_as_written(&self, meta: &Meta) -> Result<PlanNode, PlanError> {
        graph::build(
            &self.pipeline,
            &MetaLookup {
                meta,
                variables: &BTreeMap::new(),
                config: &self.config,
            },
        )
    }

    /// Everything checked before the first step starts: the components of every step type the
    /// plan uses (pinned digests, imports), every step group's cluster, whether this machine can
    /// confine its scripts, and a workspace that steps cannot use to reach the component cache.
    /// `Err` lists every problem.
    pub fn prepare<'a>(
        &self,
        plan: &'a Plan,
        sandbox: &'a Sandbox,
        workspace_root: PathBuf,
    ) -> Result<Prepared<'a>, Vec<String>> {
        // Every path a step is given is absolute (a Run step's KUBECONFIG among them), whatever
        // directory its script runs in.
        let workspace_root = std::path::absolute(&workspace_root)
            .map_err(|e| vec![format!("the workspace {}: {e}", workspace_root.display())])?;
        let components = exec::load_components(&plan.root, &self.config, sandbox)?;
        steps::k8s::check_clusters(&plan.root, &self.config)?;
        let shared: Vec<&Path> = self
            .config
            .process_policy
            .paths
            .iter()
            .map(|p| p.path.as_path())
            .collect();
        sandbox
            .check_isolation(&workspace_root, &shared)
            .map_err(|e| vec![e])?;
        Ok(Prepared {
            plan,
            sandbox,
            components,
            workspace_root,
        })
    }

    /// Runs a prepared plan until it ends or `cancel` fires.
    pub async fn run(
        &self,
        prepared: Prepared<'_>,
        observer: Arc<dyn Observer>,
        cancel: Cancel,
    ) -> Outcome {
        let Prepared {
            plan,
            sandbox,
            components,
            workspace_root,
        } = prepared;
        let run = Run::new(
            &plan.root,
            plan.meta.clone(),
            plan.variables.clone(),
            sandbox,
            &self.config,
            components,
            observer,
            self.config.mask.clone(),
            workspace_root,
        );
        run.execute(cancel).await
    }
}
