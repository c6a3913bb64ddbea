//! `lockstep:kube`: Kubernetes clusters, reached by the name of a Kubernetes connector.
//!
//! - [`grant`]: what a step may do on a cluster, and the check every call and every proxied
//!   request passes before anything leaves the host.
//! - [`client`]: the real `kube` client bounded by a grant (apply, get, list, delete, rollouts).
//! - [`host`]: the WIT host functions.

pub mod client;
pub mod grant;
mod host;

pub use client::{FIELD_MANAGER, KubeClient, connect};
pub use grant::{KubeCluster, KubeGrant, Verb};
