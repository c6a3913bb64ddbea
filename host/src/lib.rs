//! Lockstep: Harness-style pipelines whose every step runs as a sandboxed WebAssembly component.
//!
//! The `lockstep` binary is a thin CLI over this library:
//! [`pipeline`] reads and checks YAML, [`plan`] resolves it into a graph, [`exec`] runs the graph,
//! [`sandbox`] runs each step as a component with the [`capability`] modules it was granted.

pub mod capability;
pub mod config;
pub mod diag;
pub mod exec;
pub mod expr;
pub mod pipeline;
pub mod plan;
pub mod report;
pub mod sandbox;
pub mod steps;
pub mod yaml;
