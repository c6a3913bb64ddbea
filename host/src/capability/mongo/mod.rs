//! `lockstep:db/mongo`: MongoDB connections to the `dbInstances` a step was granted, with the
//! real `mongodb` driver. Commands and replies are Extended JSON.
//!
//! Invariants: `open` checks the grant before any I/O; a connection reaches only its instance's
//! database, and `admin` only when the instance says `adminCommands: true`: a command that names
//! another database (`$db`, `$out`/`$merge` into another, `applyOps`, …) is refused before it is
//! sent; a reply with `ok: 0` is an error carrying the server's message.

pub mod connection;
mod host;

use wasmtime::component::Linker;

pub use connection::{BlockingMongo, MongoConnection};

use crate::capability::db::{DbState, HasDb};

/// The host bindings of `lockstep:db/mongo`.
pub mod bindings {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "lockstep:db/mongo-imports",
        imports: { default: async | trappable },
        with: {
            "lockstep:common/types": crate::capability::error::wit::lockstep::common::types,
            "lockstep:db/mongo.connection": super::MongoConnection,
        },
    });
}

/// MongoDB shares the databases' grants and view: an instance is opened by the same label.
pub fn add_to_linker<T: DbState + 'static>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    bindings::lockstep::db::mongo::add_to_linker::<T, HasDb>(linker, |state| state.db())
}
