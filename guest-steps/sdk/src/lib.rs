//! The guest SDK for Lockstep steps.
//!
//! A step is a `cdylib` crate built for `wasm32-wasip2`:
//!
//! ```ignore
//! use lockstep_step::{Context, ContextExt, Error, Outcome, Step, export_step};
//!
//! #[derive(serde::Deserialize)]
//! struct Spec { greeting: String }
//!
//! struct Hello;
//!
//! impl Step for Hello {
//!     fn run(ctx: &Context) -> Result<Outcome, Error> {
//!         let spec: Spec = ctx.spec_as()?;
//!         ctx.info(&spec.greeting);
//!         ctx.set_output("greeted", "yes")?;
//!         Ok(Outcome::done())
//!     }
//! }
//!
//! export_step!(Hello);
//! ```
//!
//! The component imports only the interfaces it calls: a step that never touches
//! [`process`] does not import it, and so needs no grant for it.

#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        world: "platform",
        path: "../../wit",
        pub_export_macro: true,
        export_macro_name: "export_step",
        default_bindings_module: "lockstep_step::bindings",
        generate_all,
    });
}

pub use bindings::Guest as Step;
pub use bindings::Outcome;
pub use bindings::export_step;
pub use bindings::lockstep::common::types::Error;
pub use bindings::lockstep::step::host::{Context, LogLevel, Value};
/// Re-exported so a step can read its spec as untyped JSON without another dependency.
pub use serde_json;

/// SQL databases by `dbInstance` label. Needs a `db` grant for that instance.
pub mod db {
    pub use crate::bindings::lockstep::db::sql::{Connection, Dialect, Rows, Value};
}

/// MongoDB databases by `dbInstance` label, commands as Extended JSON. Needs a `db` grant.
pub mod mongo {
    pub use crate::bindings::lockstep::db::mongo::Connection;
}

/// Clones Git repositories by connector name into the stage workspace. Needs a `git` grant.
pub mod git {
    pub use crate::bindings::lockstep::git::repo::{CloneRequest, Cloned, Reference, clone};
}

/// Kubernetes clusters by connector name, objects as JSON. Needs a `kube` grant.
pub mod kube {
    pub use crate::bindings::lockstep::kube::cluster::{Client, ObjectRef, Rollout};
}

/// Runs shell scripts on the host. Needs the `process` grant.
pub mod process {
    pub use crate::bindings::lockstep::process::process::{
        Script, ScriptResult, Shell, run_script,
    };
}

impl Outcome {
    /// A successful outcome with nothing more to say.
    pub fn done() -> Self {
        Outcome { summary: None }
    }

    /// A successful outcome with a one-line summary for the progress tree and the report.
    pub fn summary(line: impl Into<String>) -> Self {
        Outcome {
            summary: Some(line.into()),
        }
    }
}

/// Conveniences over the raw [`Context`] resource.
pub trait ContextExt {
    /// Deserializes the whole resolved spec into `T`; a mismatch is an `invalid` error
    /// that names the problem, ready to return from `run`.
    fn spec_as<T: serde::de::DeserializeOwned>(&self) -> Result<T, Error>;
    fn debug(&self, message: &str);
    fn info(&self, message: &str);
    fn warn(&self, message: &str);
    fn error(&self, message: &str);
}

impl ContextExt for Context {
    fn spec_as<T: serde::de::DeserializeOwned>(&self) -> Result<T, Error> {
        let json = match self.spec("") {
            Some(Value::Json(text)) => text,
            Some(Value::Null) | None => "{}".to_string(),
            Some(_) => return Err(Error::Invalid("the step's spec is not a map".into())),
        };
        serde_json::from_str(&json).map_err(|e| Error::Invalid(format!("spec: {e}")))
    }

    fn debug(&self, message: &str) {
        self.log(LogLevel::Debug, message)
    }

    fn info(&self, message: &str) {
        self.log(LogLevel::Info, message)
    }

    fn warn(&self, message: &str) {
        self.log(LogLevel::Warn, message)
    }

    fn error(&self, message: &str) {
        self.log(LogLevel::Error, message)
    }
}
