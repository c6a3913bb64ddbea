//! The Liquibase changelog model, shared by the database steps (as wasm components) and the CLI.
//!
//! This crate does no database I/O: it parses changelogs, computes checksums exactly as
//! Liquibase 4.28 does, and (in later modules) decides what to run. It compiles for the host and
//! for `wasm32-wasip2` alike.

pub mod attribute_changes;
pub mod changes;
pub mod checksum;
pub mod db;
pub mod engine;
pub mod filters;
pub mod formatted_sql;
pub mod load;
pub mod model;
pub mod mongo_changes;
pub mod mongo_json;
mod mongo_store;
pub mod properties;
mod sql_store;
mod sqlite_rebuild;
pub mod statements;
mod store;
pub mod xml_changelog;
pub mod yaml_changelog;

pub use checksum::{CheckSum, ChecksumVersion};
pub use model::{Change, ChangeSet, Rollback};
