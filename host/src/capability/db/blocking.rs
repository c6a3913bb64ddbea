//! The changelog engine is synchronous; the CLI (`lockstep db`) drives a SQL session from it.

use lockstep_changelog::db::{DbError, Dialect, Rows, Value, transaction_one_by_one};

use super::sql::SqlConnection;

/// Drives a [`SqlConnection`] from synchronous code (the changelog engine) on a tokio runtime.
/// Its methods block, so call them off the runtime's worker threads.
pub struct BlockingSql {
    connection: SqlConnection,
    runtime: tokio::runtime::Handle,
}

impl BlockingSql {
    pub fn new(connection: SqlConnection, runtime: tokio::runtime::Handle) -> Self {
        BlockingSql {
            connection,
            runtime,
        }
    }
}

impl lockstep_changelog::db::Sql for BlockingSql {
    fn dialect(&self) -> Dialect {
        self.connection.dialect()
    }

    fn batch(&mut self, sql: &str) -> Result<(), DbError> {
        self.runtime.block_on(self.connection.batch(sql))
    }

    fn execute(&mut self, sql: &str, params: &[Value]) -> Result<u64, DbError> {
        self.runtime.block_on(self.connection.execute(sql, params))
    }

    fn query(&mut self, sql: &str, params: &[Value]) -> Result<Rows, DbError> {
        self.runtime.block_on(self.connection.query(sql, params))
    }

    fn query_each(
        &mut self,
        sql: &str,
        params: &[Value],
        each: &mut dyn FnMut(Vec<Value>) -> Result<(), DbError>,
    ) -> Result<(), DbError> {
        self.runtime
            .block_on(self.connection.query_each(sql, params, each))
            .map(drop)
    }

    fn try_advisory_lock(&mut self, key: i64) -> Result<bool, DbError> {
        self.runtime
            .block_on(self.connection.try_advisory_lock(key))
    }

    fn advisory_unlock(&mut self, key: i64) -> Result<(), DbError> {
        self.runtime.block_on(self.connection.advisory_unlock(key))
    }

    fn hold(&mut self, sql: &str, params: &[Value]) -> Result<u64, DbError> {
        self.runtime.block_on(self.connection.hold(sql, params))
    }

    fn release_held(&mut self) -> Result<(), DbError> {
        self.runtime.block_on(self.connection.release_held())
    }

    fn transaction(
        &mut self,
        statements: &[String],
        last: (&str, &[Value]),
    ) -> Result<(), DbError> {
        match &self.connection {
            SqlConnection::Postgres(session) => {
                self.runtime.block_on(session.transaction(statements, last))
            }
            _ => transaction_one_by_one(self, statements, last),
        }
    }
}
