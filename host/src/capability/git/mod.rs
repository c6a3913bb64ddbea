//! `lockstep:git/repo`: clones from the Git connectors a step was granted, with libgit2 (no `git`
//! binary), into the stage workspace.
//!
//! - [`grant`]: the connectors a step may clone from, and the URL a clone names;
//! - [`resolve`]: Git connectors and Git-hosted schemas of lockstep.yaml, resolved;
//! - [`clone`]: the clone itself, and its placement without following symlinks;
//! - `host`: the WIT host function, on [`GitCtx`].
//!
//! Invariants: the grant is checked before any I/O; `repoName` is a plain repository path under an
//! account connector's URL (no `..`, no escapes); the destination is a relative path inside the
//! stage workspace that is missing or empty, and no symlink is followed to reach it (a checkout
//! is cloned into a private staging directory and moved into place through directory handles
//! opened without following symlinks); credentials (a token from a secret) never reach the step
//! or the logs; a failed clone leaves no directory behind.

pub mod clone;
pub mod grant;
mod host;
pub mod resolve;

use std::path::PathBuf;

use wasmtime::component::{HasSelf, Linker};

pub use clone::{Cloned, Reference, clone, clone_into_workspace};
pub use grant::{GitGrant, GitRemote};
pub use resolve::SchemaFetch;

/// The host bindings of `lockstep:git`.
pub mod bindings {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "lockstep:git/imports",
        imports: { default: async | trappable },
        with: { "lockstep:common/types": crate::capability::error::wit::lockstep::common::types },
    });
}

/// One step run's Git grants, and the workspace clones land in.
pub struct GitCtx {
    pub grants: Vec<GitGrant>,
    /// The stage workspace (absolute).
    pub workspace: PathBuf,
    /// The step's identifier, for denials.
    pub step: String,
}

/// A store whose steps may clone.
pub trait GitState: Send {
    fn git(&mut self) -> &mut GitCtx;
}

pub fn add_to_linker<T: GitState + 'static>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    bindings::lockstep::git::repo::add_to_linker::<T, HasSelf<GitCtx>>(linker, |state| state.git())
}
