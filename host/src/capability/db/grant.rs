//! What a step may open: a `dbInstance` by label, and where it points (never shown to the step).

use std::path::PathBuf;

use crate::capability::NamedGrant;

/// A `dbInstance` a step may open, with where it points (resolved from lockstep.yaml).
#[derive(Debug, Clone)]
pub struct DbGrant {
    pub instance: String,
    pub target: DbTarget,
}

#[derive(Clone)]
pub enum DbTarget {
    Postgres {
        /// Password included, when the connector has one.
        config: Box<tokio_postgres::Config>,
        /// `allowSuperuser: true` on the instance.
        allow_superuser: bool,
    },
    /// MySQL or MariaDB; the options always name a database.
    Mysql {
        /// Password included, when the connector has one.
        opts: Box<mysql_async::Opts>,
        /// `allowSuperuser: true` on the instance.
        allow_superuser: bool,
    },
    Sqlite {
        path: PathBuf,
    },
    /// The connection string (credentials included) and the database the instance uses.
    Mongo {
        uri: String,
        database: String,
        /// From the connector's `passwordRef`, for the user the URI names.
        password: Option<String>,
        /// `adminCommands: true` on the instance: the `admin` database is reachable too.
        admin_commands: bool,
    },
}

impl DbTarget {
    /// The database's name in `dbms` filters, when it is known before connecting: a MySQL
    /// connector may reach MySQL or MariaDB, which only the server says.
    pub fn dbms_before_connecting(&self) -> Option<&'static str> {
        use lockstep_changelog::db::Dialect;
        match self {
            DbTarget::Postgres { .. } => Some(Dialect::Postgresql.dbms_name()),
            DbTarget::Sqlite { .. } => Some(Dialect::Sqlite.dbms_name()),
            DbTarget::Mongo { .. } => Some(lockstep_changelog::db::MONGODB_DBMS),
            DbTarget::Mysql { .. } => None,
        }
    }
}

impl std::fmt::Debug for DbTarget {
    // Never print a PostgreSQL config or a MongoDB URI: they may hold a password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DbTarget::Postgres { .. } => f.write_str("Postgres(..)"),
            DbTarget::Mysql { .. } => f.write_str("Mysql(..)"),
            DbTarget::Sqlite { path } => write!(f, "Sqlite {{ path: {path:?} }}"),
            DbTarget::Mongo { database, .. } => write!(f, "Mongo {{ database: {database:?}, .. }}"),
        }
    }
}

impl NamedGrant for DbGrant {
    const KIND: &'static str = "database instance";

    fn name(&self) -> &str {
        &self.instance
    }
}
