//! What one step run's store holds: WASI, the resource table and limits, the step itself, and one
//! context per capability. Each capability reaches only its own context (with the table and the
//! connection budget, where it opens connections) through its view trait; the sandbox composes
//! them and nothing else.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use wasmtime::component::ResourceTable;
use wasmtime::{StoreLimits, StoreLimitsBuilder};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::limits::{
    MAX_INSTANCES_PER_STORE, MAX_MEMORIES_PER_STORE, MAX_TABLES_PER_STORE, StepLimits,
};
use crate::capability::db::{DbCtx, DbState, DbView};
use crate::capability::git::{GitCtx, GitState};
use crate::capability::kube::{KubeCtx, KubeState, KubeView};
use crate::capability::process::{ProcessCtx, ProcessState};
use crate::capability::{ConnectionBudget, Grants};
use crate::log::StepLog;

/// The host side of a step's `context` resource. A store holds exactly one.
pub struct StepContext;

/// The step itself, as its `context` shows it.
pub struct StepRun {
    pub identifier: String,
    pub step_type: String,
    /// The resolved spec.
    pub spec: serde_json::Value,
    /// The operator's settings for the step type.
    pub settings: Option<serde_json::Value>,
    pub log: StepLog,
    pub outputs: BTreeMap<String, String>,
    outputs_budget: usize,
    outputs_used: usize,
}

impl StepRun {
    pub fn new(
        identifier: String,
        step_type: String,
        spec: serde_json::Value,
        settings: Option<serde_json::Value>,
        log: StepLog,
        outputs_budget: usize,
    ) -> Self {
        StepRun {
            identifier,
            step_type,
            spec,
            settings,
            log,
            outputs: BTreeMap::new(),
            outputs_budget,
            outputs_used: 0,
        }
    }

    pub(super) fn set_output(
        &mut self,
        name: String,
        value: String,
    ) -> Result<(), crate::capability::WitError> {
        if !crate::pipeline::is_identifier(&name) {
            return Err(crate::capability::WitError::Invalid(format!(
                "output name `{name}` must be an identifier (letters, digits, `_`)"
            )));
        }
        let previous = self.outputs.get(&name).map_or(0, |v| name.len() + v.len());
        let used = self.outputs_used - previous + name.len() + value.len();
        if used > self.outputs_budget {
            return Err(crate::capability::WitError::LimitExceeded(format!(
                "outputs may total at most {} KiB",
                self.outputs_budget / 1024
            )));
        }
        self.outputs_used = used;
        self.outputs.insert(name, value);
        Ok(())
    }
}

/// One step run's store data. Lives in the `Store`, dropped with it.
pub struct StepState {
    pub(super) wasi: WasiCtx,
    pub(super) table: ResourceTable,
    pub(super) limits: StoreLimits,
    pub(super) step: StepRun,
    /// Database sessions and cluster clients open now, against the step's limit.
    connections: ConnectionBudget,
    process: ProcessCtx,
    db: DbCtx,
    git: GitCtx,
    kube: KubeCtx,
}

impl StepState {
    /// The store data of `step`, within `limits`, each capability's context made from its grants.
    pub(super) fn new(
        wasi: WasiCtx,
        step: StepRun,
        grants: Grants,
        workspace: PathBuf,
        limits: &StepLimits,
        timeout: Duration,
    ) -> Self {
        let store_limits = StoreLimitsBuilder::new()
            .memory_size(limits.memory_bytes)
            .instances(MAX_INSTANCES_PER_STORE)
            .tables(MAX_TABLES_PER_STORE)
            .memories(MAX_MEMORIES_PER_STORE)
            .trap_on_grow_failure(true)
            .build();
        let mut table = ResourceTable::new();
        table.set_max_capacity(limits.handles);
        let log = step.log.clone();
        let name = step.identifier.clone();
        StepState {
            wasi,
            table,
            limits: store_limits,
            connections: ConnectionBudget::new(limits.connections),
            process: ProcessCtx {
                grant: grants.process,
                workspace: workspace.clone(),
                log,
                step: name.clone(),
            },
            db: DbCtx {
                grants: grants.db,
                step: name.clone(),
            },
            git: GitCtx {
                grants: grants.git,
                workspace,
                step: name.clone(),
            },
            kube: KubeCtx::new(grants.kube, name, timeout),
            step,
        }
    }
}

impl WasiView for StepState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl ProcessState for StepState {
    fn process(&mut self) -> &mut ProcessCtx {
        &mut self.process
    }
}

impl DbState for StepState {
    fn db(&mut self) -> DbView<'_> {
        DbView {
            ctx: &self.db,
            table: &mut self.table,
            connections: &mut self.connections,
        }
    }
}

impl GitState for StepState {
    fn git(&mut self) -> &mut GitCtx {
        &mut self.git
    }
}

impl StepState {
    /// Whether a host call gave up because the step's time was running out.
    pub(super) fn ran_out_of_time(&self) -> bool {
        self.kube
            .ran_out_of_time
            .load(std::sync::atomic::Ordering::Relaxed)
    }
}

impl KubeState for StepState {
    fn kube(&mut self) -> KubeView<'_> {
        KubeView {
            ctx: &self.kube,
            table: &mut self.table,
            connections: &mut self.connections,
        }
    }
}
