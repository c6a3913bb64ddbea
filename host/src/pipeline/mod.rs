//! Harness-style pipeline YAML: the model, and the parser that checks it.

pub mod duration;
pub mod model;
mod parse;

pub use model::*;
pub use parse::{Parsed, closest, is_identifier, parse_pipeline};
