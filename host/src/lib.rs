//! Lockstep: Harness-style pipelines whose every step runs as a sandboxed WebAssembly component.
//!
//! The `lockstep` binary is a thin CLI over this library, whose entry point is [`session`]:
//! [`pipeline`] reads and checks YAML, [`config`] reads the operator's lockstep.yaml, [`steps`]
//! knows each step type, [`plan`] resolves the pipeline into a graph, [`exec`] runs the graph,
//! [`sandbox`] runs each step as a component with the [`capability`] modules it was granted.

pub mod authoring;
pub mod capability;
pub mod config;
pub mod diag;
pub mod exec;
pub mod expr;
pub mod log;
pub mod pipeline;
pub mod plan;
pub mod report;
pub mod sandbox;
pub mod session;
pub mod steps;
pub mod yaml;
