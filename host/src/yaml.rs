//! YAML files of the host (pipelines, lockstep.yaml): the shared node tree, plus the file name
//! so that every diagnostic can say where it is.

use std::path::Path;
use std::sync::Arc;

pub use lockstep_yaml::{Node, Value, plain_scalar_to_json};

use crate::diag::{Diagnostic, Location, Pos};

/// A parsed YAML file: its documents, and the file name used in diagnostics.
#[derive(Debug)]
pub struct Document {
    pub file: Arc<Path>,
    pub roots: Vec<Node>,
}

impl Document {
    pub fn location(&self, pos: Pos, yaml_path: impl Into<String>) -> Location {
        Location {
            file: self.file.clone(),
            pos,
            yaml_path: yaml_path.into(),
        }
    }
}

/// Parses `source`; a syntax error becomes a diagnostic at the offending position.
pub fn parse(file: &Path, source: &str) -> Result<Document, Diagnostic> {
    let file: Arc<Path> = Arc::from(file);
    match lockstep_yaml::parse(source) {
        Ok(roots) => Ok(Document { file, roots }),
        Err(e) => Err(Diagnostic::error(
            Location {
                file,
                pos: e.pos,
                yaml_path: String::new(),
            },
            format!("this is not valid YAML: {}", e.message),
        )
        .with_help("check the indentation and quoting on this line and the one before it")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syntax_errors_name_the_file_and_line() {
        let err = parse(Path::new("p.yaml"), "a: [1, 2\nb: c\n").unwrap_err();
        assert!(err.to_string().starts_with("p.yaml:2:"), "{err}");
    }
}
