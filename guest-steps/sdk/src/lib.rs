//! Write a Lockstep pipeline step in Rust.
//!
//! A step is a `cdylib` crate built for `wasm32-wasip2` (`lockstep step new NAME` writes one):
//!
//! ```ignore
//! use lockstep_step::{Error, Outcome, Step, StepContext, export_step};
//!
//! #[derive(serde::Deserialize)]
//! struct Spec { greeting: String }
//!
//! struct Hello;
//!
//! impl Step for Hello {
//!     fn run(ctx: &StepContext) -> Result<Outcome, Error> {
//!         let spec: Spec = ctx.spec_as()?;
//!         ctx.info(&spec.greeting);
//!         ctx.set_output("greeted", "yes")?;
//!         Ok(Outcome::summary("said hello"))
//!     }
//! }
//!
//! export_step!(Hello);
//! ```
//!
//! One trait ([`Step`]), one macro ([`export_step!`]), a context ([`StepContext`]) and one module
//! per capability ([`process`], [`db`], [`mongo`], [`git`], [`kube`]), each usable only when the
//! step type is granted it in lockstep.yaml. The component imports only what it calls, so a step
//! that never touches [`process`] needs no `process` grant. The WIT bindings stay inside this
//! crate: a step never sees wit-bindgen.

mod context;
pub mod db;
mod error;
pub mod git;
pub mod kube;
pub mod mongo;
pub mod process;
pub mod testing;

pub use context::{Level, Outcome, StepContext};
pub use error::Error;
/// Re-exported so a step can read its spec as untyped JSON without another dependency.
pub use serde_json;

/// A pipeline step.
pub trait Step {
    /// Does the step's work. `Ok` is a success (with an optional one-line summary); `Err` fails
    /// the step with that error, whose kind decides the Harness error type (`access-denied` is
    /// `Authorization`, `unavailable` is `Connectivity`, …).
    fn run(ctx: &StepContext) -> Result<Outcome, Error>;
}

/// Exports `$step` (a type implementing [`Step`]) as the component's step.
#[macro_export]
macro_rules! export_step {
    ($step:ty) => {
        #[doc(hidden)]
        pub struct __LockstepExport;

        impl $crate::__private::bindings::Guest for __LockstepExport {
            fn run(
                ctx: &$crate::__private::bindings::lockstep::step::host::Context,
            ) -> ::core::result::Result<$crate::__private::bindings::Outcome, $crate::__private::bindings::lockstep::common::types::Error> {
                $crate::__private::run::<$step>(ctx)
            }
        }

        $crate::__private::bindings::export_platform!(__LockstepExport with_types_in $crate::__private::bindings);
    };
}

/// What [`export_step!`] expands to needs; not part of the API.
#[doc(hidden)]
pub mod __private {
    pub mod bindings {
        wit_bindgen::generate!({
            world: "platform",
            path: "../../wit",
            pub_export_macro: true,
            export_macro_name: "export_platform",
            default_bindings_module: "lockstep_step::__private::bindings",
            generate_all,
        });
    }

    pub fn run<S: crate::Step>(
        ctx: &bindings::lockstep::step::host::Context,
    ) -> Result<bindings::Outcome, bindings::lockstep::common::types::Error> {
        S::run(&crate::StepContext::host(ctx))
            .map(|outcome| bindings::Outcome {
                summary: outcome.summary,
            })
            .map_err(Into::into)
    }
}
