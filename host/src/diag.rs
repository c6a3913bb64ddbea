//! Diagnostics that point at a place in a YAML file.
//!
//! Every error and warning Lockstep reports about user input is a [`Diagnostic`]: it names the
//! file, the line and column, the YAML path of the field, what is wrong and how to fix it.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use lockstep_yaml::Pos;

/// Where a YAML node is: the file, its position, and its path from the document root
/// (`pipeline.stages[0].stage.spec`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub file: Arc<Path>,
    pub pos: Pos,
    pub yaml_path: String,
}

impl Location {
    pub fn new(file: impl Into<PathBuf>, pos: Pos, yaml_path: impl Into<String>) -> Self {
        Location {
            file: Arc::from(file.into()),
            pos,
            yaml_path: yaml_path.into(),
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}",
            self.file.display(),
            self.pos.line,
            self.pos.col
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Error,
    Warning,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub severity: Severity,
    pub location: Location,
    pub message: String,
    /// What the user can do about it.
    pub help: Option<String>,
}

impl Diagnostic {
    pub fn error(location: Location, message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Error,
            location,
            message: message.into(),
            help: None,
        }
    }

    pub fn warning(location: Location, message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Warning,
            location,
            message: message.into(),
            help: None,
        }
    }

    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let label = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(f, "{}: {label}: {}", self.location, self.message)?;
        if !self.location.yaml_path.is_empty() {
            write!(f, "\n  at: {}", self.location.yaml_path)?;
        }
        if let Some(help) = &self.help {
            write!(f, "\n  help: {help}")?;
        }
        Ok(())
    }
}

/// Collects diagnostics while a document is checked, so that one run reports every problem.
#[derive(Debug, Default)]
pub struct Diagnostics {
    items: Vec<Diagnostic>,
}

impl Diagnostics {
    pub fn push(&mut self, diagnostic: Diagnostic) {
        self.items.push(diagnostic);
    }

    pub fn extend(&mut self, other: Diagnostics) {
        self.items.extend(other.items);
    }

    pub fn has_errors(&self) -> bool {
        self.items.iter().any(Diagnostic::is_error)
    }

    pub fn errors(&self) -> impl Iterator<Item = &Diagnostic> {
        self.items.iter().filter(|d| d.is_error())
    }

    pub fn warnings(&self) -> impl Iterator<Item = &Diagnostic> {
        self.items.iter().filter(|d| !d.is_error())
    }

    pub fn iter(&self) -> impl Iterator<Item = &Diagnostic> {
        self.items.iter()
    }

    /// Every diagnostic, in document order (the order they were found in where positions tie).
    pub fn into_vec(mut self) -> Vec<Diagnostic> {
        self.items
            .sort_by_key(|d| (d.location.pos.line, d.location.pos.col));
        self.items
    }
}

/// The error returned when a document has at least one error-level diagnostic.
/// It carries every diagnostic found (warnings included), in document order.
#[derive(Debug, thiserror::Error)]
#[error("{}", render(.0))]
pub struct InvalidInput(pub Vec<Diagnostic>);

fn render(items: &[Diagnostic]) -> String {
    let errors = items.iter().filter(|d| d.is_error()).count();
    let mut out = items
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n");
    out.push_str(&format!(
        "\n{errors} error{} found",
        if errors == 1 { "" } else { "s" }
    ));
    out
}
