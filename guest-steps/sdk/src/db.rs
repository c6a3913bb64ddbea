//! SQL databases (PostgreSQL, SQLite) by `dbInstance` label. Needs `grants: { db: [INSTANCE] }`.
//! The step never sees an address or a credential.

use crate::__private::bindings::lockstep::db::sql as wit;
use crate::Error;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Postgresql,
    Sqlite,
    Mysql,
    Mariadb,
}

/// A parameter or a result value. A `Null` parameter is sent as text.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Boolean(bool),
    Integer(i64),
    Float(f64),
    Text(String),
}

/// A query's result.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Rows {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Value>>,
}

/// A session on one database instance; closed when dropped.
pub struct Connection(wit::Connection);

fn to_wit(value: &Value) -> wit::Value {
    match value {
        Value::Null => wit::Value::Null,
        Value::Boolean(b) => wit::Value::Boolean(*b),
        Value::Integer(i) => wit::Value::Integer(*i),
        Value::Float(f) => wit::Value::Float(*f),
        Value::Text(t) => wit::Value::Text(t.clone()),
    }
}

fn from_wit(value: wit::Value) -> Value {
    match value {
        wit::Value::Null => Value::Null,
        wit::Value::Boolean(b) => Value::Boolean(b),
        wit::Value::Integer(i) => Value::Integer(i),
        wit::Value::Float(f) => Value::Float(f),
        wit::Value::Text(t) => Value::Text(t),
    }
}

impl Connection {
    /// Opens the database of `instance`; `access-denied`, before any I/O, when the step was not
    /// granted it (whether or not it exists).
    pub fn open(instance: &str) -> Result<Connection, Error> {
        Ok(Connection(wit::Connection::open(instance)?))
    }

    pub fn dialect(&self) -> Dialect {
        match self.0.dialect() {
            wit::Dialect::Postgresql => Dialect::Postgresql,
            wit::Dialect::Sqlite => Dialect::Sqlite,
            wit::Dialect::Mysql => Dialect::Mysql,
            wit::Dialect::Mariadb => Dialect::Mariadb,
        }
    }

    /// Runs statements without parameters (also `BEGIN`, `COMMIT`, `ROLLBACK`).
    pub fn batch(&self, sql: &str) -> Result<(), Error> {
        self.0.batch(sql).map_err(Into::into)
    }

    /// Runs one statement with `$1`, `$2`, … parameters; the number of rows affected.
    pub fn execute(&self, sql: &str, params: &[Value]) -> Result<u64, Error> {
        self.0
            .execute(sql, &params.iter().map(to_wit).collect::<Vec<_>>())
            .map_err(Into::into)
    }

    /// Runs one query with `$1`, `$2`, … parameters. Columns of other types than boolean,
    /// integers, floats and text are refused: cast them to text in the query.
    pub fn query(&self, sql: &str, params: &[Value]) -> Result<Rows, Error> {
        let rows = self
            .0
            .query(sql, &params.iter().map(to_wit).collect::<Vec<_>>())?;
        Ok(Rows {
            columns: rows.columns,
            rows: rows
                .rows
                .into_iter()
                .map(|r| r.into_iter().map(from_wit).collect())
                .collect(),
        })
    }

    /// A session-scoped advisory lock, without waiting (PostgreSQL `pg_try_advisory_lock`).
    pub fn try_advisory_lock(&self, key: i64) -> Result<bool, Error> {
        self.0.try_advisory_lock(key).map_err(Into::into)
    }

    pub fn advisory_unlock(&self, key: i64) -> Result<(), Error> {
        self.0.advisory_unlock(key).map_err(Into::into)
    }

    /// Runs one statement on a second session, in a transaction that stays open until
    /// [`Connection::release_held`]; the server rolls it back if the run dies. PostgreSQL only.
    pub fn hold(&self, sql: &str, params: &[Value]) -> Result<u64, Error> {
        self.0
            .hold(sql, &params.iter().map(to_wit).collect::<Vec<_>>())
            .map_err(Into::into)
    }

    /// Rolls back and closes what [`Connection::hold`] opened.
    pub fn release_held(&self) -> Result<(), Error> {
        self.0.release_held().map_err(Into::into)
    }
}

/// The changelog engine runs on a step's connection directly.
#[cfg(feature = "changelog")]
mod engine {
    use lockstep_changelog::db::{self as engine, DbError};

    use super::{Connection, Dialect, Value};
    use crate::Error;

    pub(crate) fn db_error(error: Error) -> DbError {
        match error {
            Error::AccessDenied(m) => DbError::AccessDenied(m),
            Error::NotFound(m) => DbError::NotFound(m),
            Error::Conflict(m) => DbError::Conflict(m),
            Error::Invalid(m) => DbError::Invalid(m),
            Error::Unavailable(m) => DbError::Unavailable(m),
            Error::LimitExceeded(m) | Error::Failed(m) => DbError::Failed(m),
        }
    }

    fn ours(value: &engine::Value) -> Value {
        match value {
            engine::Value::Null => Value::Null,
            engine::Value::Boolean(b) => Value::Boolean(*b),
            engine::Value::Integer(i) => Value::Integer(*i),
            engine::Value::Float(f) => Value::Float(*f),
            engine::Value::Text(t) => Value::Text(t.clone()),
        }
    }

    fn theirs(value: Value) -> engine::Value {
        match value {
            Value::Null => engine::Value::Null,
            Value::Boolean(b) => engine::Value::Boolean(b),
            Value::Integer(i) => engine::Value::Integer(i),
            Value::Float(f) => engine::Value::Float(f),
            Value::Text(t) => engine::Value::Text(t),
        }
    }

    impl engine::Sql for Connection {
        fn dialect(&self) -> engine::Dialect {
            match Connection::dialect(self) {
                Dialect::Postgresql => engine::Dialect::Postgresql,
                Dialect::Sqlite => engine::Dialect::Sqlite,
                Dialect::Mysql => engine::Dialect::Mysql,
                Dialect::Mariadb => engine::Dialect::Mariadb,
            }
        }

        fn batch(&mut self, sql: &str) -> Result<(), DbError> {
            Connection::batch(self, sql).map_err(db_error)
        }

        fn execute(&mut self, sql: &str, params: &[engine::Value]) -> Result<u64, DbError> {
            Connection::execute(self, sql, &params.iter().map(ours).collect::<Vec<_>>())
                .map_err(db_error)
        }

        fn query(&mut self, sql: &str, params: &[engine::Value]) -> Result<engine::Rows, DbError> {
            let rows = Connection::query(self, sql, &params.iter().map(ours).collect::<Vec<_>>())
                .map_err(db_error)?;
            Ok(engine::Rows {
                columns: rows.columns,
                rows: rows
                    .rows
                    .into_iter()
                    .map(|r| r.into_iter().map(theirs).collect())
                    .collect(),
            })
        }

        fn try_advisory_lock(&mut self, key: i64) -> Result<bool, DbError> {
            Connection::try_advisory_lock(self, key).map_err(db_error)
        }

        fn advisory_unlock(&mut self, key: i64) -> Result<(), DbError> {
            Connection::advisory_unlock(self, key).map_err(db_error)
        }

        fn hold(&mut self, sql: &str, params: &[engine::Value]) -> Result<u64, DbError> {
            Connection::hold(self, sql, &params.iter().map(ours).collect::<Vec<_>>())
                .map_err(db_error)
        }

        fn release_held(&mut self) -> Result<(), DbError> {
            Connection::release_held(self).map_err(db_error)
        }
    }
}
#[cfg(feature = "changelog")]
pub(crate) use engine::db_error;
