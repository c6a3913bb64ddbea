//! `lockstep:kube`: Kubernetes clusters, reached by the name of a Kubernetes connector.
//!
//! - [`grant`]: what a step may do on a cluster, and the check every call and every proxied
//!   request passes before anything leaves the host;
//! - [`resolve`]: connectors and step groups of lockstep.yaml turned into clusters and grants;
//! - [`client`]: the real `kube` client bounded by a grant (apply, get, list, delete, rollouts);
//! - `host`: the WIT host functions, on [`KubeView`].

pub mod client;
pub mod grant;
mod host;
pub mod resolve;

use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use wasmtime::component::{HasData, Linker, ResourceTable};

pub use client::{FIELD_MANAGER, KubeClient, connect};
pub use grant::{KindsFrom, KubeCluster, KubeGrant, Verb};

use crate::capability::ConnectionBudget;

/// The host bindings of `lockstep:kube`.
pub mod bindings {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "lockstep:kube/imports",
        imports: { default: async | trappable },
        with: {
            "lockstep:common/types": crate::capability::error::wit::lockstep::common::types,
            "lockstep:kube/cluster.client": super::KubeClient,
        },
    });
}

/// One step run's Kubernetes grants.
pub struct KubeCtx {
    pub grants: Vec<KubeGrant>,
    /// The step's identifier, for denials.
    pub step: String,
    /// When waiting for a rollout stops, shortly before the step's timeout: the step still has
    /// time to record how its deploy ended.
    pub give_up_at: Instant,
    /// Set when a wait gave up for that reason: the step's failure is then a timeout.
    pub ran_out_of_time: AtomicBool,
}

impl KubeCtx {
    pub fn new(grants: Vec<KubeGrant>, step: String, timeout: Duration) -> Self {
        // A fifth of the timeout, at most 5 s, is left for the step after a wait gives up.
        let margin = (timeout / 5).min(Duration::from_secs(5));
        KubeCtx {
            grants,
            step,
            give_up_at: Instant::now() + timeout - margin,
            ran_out_of_time: AtomicBool::new(false),
        }
    }
}

/// What the host functions of `lockstep:kube` work on: the step's grants, its resource table
/// and its connection budget.
pub struct KubeView<'a> {
    pub ctx: &'a KubeCtx,
    pub table: &'a mut ResourceTable,
    pub connections: &'a mut ConnectionBudget,
}

/// A store whose steps may be granted clusters.
pub trait KubeState: Send {
    fn kube(&mut self) -> KubeView<'_>;
}

struct HasKube;

impl HasData for HasKube {
    type Data<'a> = KubeView<'a>;
}

pub fn add_to_linker<T: KubeState + 'static>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    bindings::lockstep::kube::cluster::add_to_linker::<T, HasKube>(linker, |state| state.kube())
}
