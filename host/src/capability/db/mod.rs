//! `lockstep:db/sql`: SQL connections to the `dbInstances` a step was granted.
//!
//! - [`grant`]: the instances a step may open, and where they point;
//! - [`resolve`]: a `dbInstance` of lockstep.yaml turned into its target;
//! - [`sql`]: the sessions (PostgreSQL, SQLite; MySQL and MariaDB in `mysql`) and what keeps
//!   them on their database;
//! - [`blocking`]: a session driven by the synchronous changelog engine (`lockstep db`);
//! - `host`: the WIT host functions, on [`DbView`] (shared with [`crate::capability::mongo`]).
//!
//! Invariants: `open` checks the grant before any I/O and never reveals whether an ungranted
//! instance exists; a step sees instance labels only, never addresses or credentials; each
//! connection belongs to one step run and closes with its store.
//!
//! What a connection can reach is its instance's database and nothing else:
//! - SQLite: an authorizer refuses `ATTACH`, `DETACH`, `VACUUM INTO`, extension loading and the
//!   pragmas that name directories, and defensive mode protects the schema;
//! - PostgreSQL: a role that can run host programs or read and write server files (a superuser,
//!   or a member of `pg_execute_server_program`, `pg_read_server_files` or
//!   `pg_write_server_files`) is refused unless the instance says `allowSuperuser: true`;
//! - MySQL and MariaDB: a user with global privileges is refused the same way, and the server
//!   can never read a file of the runner's machine (`LOAD DATA LOCAL INFILE`).

pub mod blocking;
pub mod grant;
mod host;
mod mysql;
pub mod resolve;
pub mod sql;

use wasmtime::component::{HasData, Linker, ResourceTable};

pub use blocking::BlockingSql;
pub use grant::{DbGrant, DbTarget};
pub use sql::SqlConnection;

use crate::capability::ConnectionBudget;

/// The host bindings of `lockstep:db/sql`.
pub mod bindings {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "lockstep:db/sql-imports",
        imports: { default: async | trappable },
        with: {
            "lockstep:common/types": crate::capability::error::wit::lockstep::common::types,
            "lockstep:db/sql.connection": super::SqlConnection,
        },
    });
}

/// One step run's database grants.
pub struct DbCtx {
    pub grants: Vec<DbGrant>,
    /// The step's identifier, for denials.
    pub step: String,
}

/// What the database host functions (SQL and MongoDB) work on: the step's grants, its resource
/// table and its connection budget.
pub struct DbView<'a> {
    pub ctx: &'a DbCtx,
    pub table: &'a mut ResourceTable,
    pub connections: &'a mut ConnectionBudget,
}

/// A store whose steps may be granted databases.
pub trait DbState: Send {
    fn db(&mut self) -> DbView<'_>;
}

pub(crate) struct HasDb;

impl HasData for HasDb {
    type Data<'a> = DbView<'a>;
}

pub fn add_to_linker<T: DbState + 'static>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    bindings::lockstep::db::sql::add_to_linker::<T, HasDb>(linker, |state| state.db())
}
