//! The `lockstep:db/sql` host functions, on [`DbView`].

use lockstep_changelog::db::{DbError, Dialect, Rows, Value};
use wasmtime::component::Resource;

use super::DbView;
use super::bindings::lockstep::db::sql as wit;
use super::grant::DbTarget;
use super::sql::SqlConnection;
use crate::capability::{Error, WitError, find_grant};

fn from_wit_value(value: wit::Value) -> Value {
    match value {
        wit::Value::Null => Value::Null,
        wit::Value::Boolean(b) => Value::Boolean(b),
        wit::Value::Integer(i) => Value::Integer(i),
        wit::Value::Float(f) => Value::Float(f),
        wit::Value::Text(t) => Value::Text(t),
    }
}

fn to_wit_value(value: Value) -> wit::Value {
    match value {
        Value::Null => wit::Value::Null,
        Value::Boolean(b) => wit::Value::Boolean(b),
        Value::Integer(i) => wit::Value::Integer(i),
        Value::Float(f) => wit::Value::Float(f),
        Value::Text(t) => wit::Value::Text(t),
    }
}

fn to_wit_rows(rows: Rows) -> wit::Rows {
    wit::Rows {
        columns: rows.columns,
        rows: rows
            .rows
            .into_iter()
            .map(|r| r.into_iter().map(to_wit_value).collect())
            .collect(),
    }
}

impl DbView<'_> {
    fn connection(
        &mut self,
        handle: &Resource<SqlConnection>,
    ) -> wasmtime::Result<&mut SqlConnection> {
        Ok(self.table.get_mut(handle)?)
    }

    /// Opens a connection to `instance` for any database interface (SQL or MongoDB). The grant
    /// and the connection budget are checked here, before any I/O, so no interface can forget them.
    pub(crate) async fn open_granted<C, Fut>(
        &mut self,
        instance: &str,
        open: impl FnOnce(DbTarget) -> Fut,
    ) -> wasmtime::Result<Result<Resource<C>, WitError>>
    where
        C: Send + 'static,
        Fut: std::future::Future<Output = Result<C, DbError>>,
    {
        let target = match find_grant(&self.ctx.grants, instance, &self.ctx.step) {
            Ok(grant) => grant.target.clone(),
            Err(denied) => return Ok(Err(denied.into())),
        };
        if let Err(exhausted) = self.connections.take() {
            return Ok(Err(exhausted.into()));
        }
        match open(target).await {
            Ok(connection) => Ok(Ok(self.table.push(connection)?)),
            Err(e) => {
                self.connections.give_back();
                Ok(Err(Error::from(e).into()))
            }
        }
    }

    /// Closes a connection of either interface.
    pub(crate) fn close<C: 'static>(&mut self, handle: Resource<C>) -> wasmtime::Result<()> {
        self.table.delete(handle)?;
        self.connections.give_back();
        Ok(())
    }
}

impl wit::Host for DbView<'_> {}

impl wit::HostConnection for DbView<'_> {
    async fn open(
        &mut self,
        instance: String,
    ) -> wasmtime::Result<Result<Resource<SqlConnection>, WitError>> {
        self.open_granted(&instance, |target| async move {
            SqlConnection::open(&target).await
        })
        .await
    }

    async fn dialect(&mut self, handle: Resource<SqlConnection>) -> wasmtime::Result<wit::Dialect> {
        Ok(match self.connection(&handle)?.dialect() {
            Dialect::Postgresql => wit::Dialect::Postgresql,
            Dialect::Sqlite => wit::Dialect::Sqlite,
            Dialect::Mysql => wit::Dialect::Mysql,
            Dialect::Mariadb => wit::Dialect::Mariadb,
        })
    }

    async fn batch(
        &mut self,
        handle: Resource<SqlConnection>,
        sql: String,
    ) -> wasmtime::Result<Result<(), WitError>> {
        Ok(self
            .connection(&handle)?
            .batch(&sql)
            .await
            .map_err(|e| Error::from(e).into()))
    }

    async fn execute(
        &mut self,
        handle: Resource<SqlConnection>,
        sql: String,
        params: Vec<wit::Value>,
    ) -> wasmtime::Result<Result<u64, WitError>> {
        let params: Vec<Value> = params.into_iter().map(from_wit_value).collect();
        Ok(self
            .connection(&handle)?
            .execute(&sql, &params)
            .await
            .map_err(|e| Error::from(e).into()))
    }

    async fn query(
        &mut self,
        handle: Resource<SqlConnection>,
        sql: String,
        params: Vec<wit::Value>,
    ) -> wasmtime::Result<Result<wit::Rows, WitError>> {
        let params: Vec<Value> = params.into_iter().map(from_wit_value).collect();
        Ok(self
            .connection(&handle)?
            .query(&sql, &params)
            .await
            .map(to_wit_rows)
            .map_err(|e| Error::from(e).into()))
    }

    async fn try_advisory_lock(
        &mut self,
        handle: Resource<SqlConnection>,
        key: i64,
    ) -> wasmtime::Result<Result<bool, WitError>> {
        Ok(self
            .connection(&handle)?
            .try_advisory_lock(key)
            .await
            .map_err(|e| Error::from(e).into()))
    }

    async fn advisory_unlock(
        &mut self,
        handle: Resource<SqlConnection>,
        key: i64,
    ) -> wasmtime::Result<Result<(), WitError>> {
        Ok(self
            .connection(&handle)?
            .advisory_unlock(key)
            .await
            .map_err(|e| Error::from(e).into()))
    }

    async fn hold(
        &mut self,
        handle: Resource<SqlConnection>,
        sql: String,
        params: Vec<wit::Value>,
    ) -> wasmtime::Result<Result<u64, WitError>> {
        let params: Vec<Value> = params.into_iter().map(from_wit_value).collect();
        Ok(self
            .connection(&handle)?
            .hold(&sql, &params)
            .await
            .map_err(|e| Error::from(e).into()))
    }

    async fn release_held(
        &mut self,
        handle: Resource<SqlConnection>,
    ) -> wasmtime::Result<Result<(), WitError>> {
        Ok(self
            .connection(&handle)?
            .release_held()
            .await
            .map_err(|e| Error::from(e).into()))
    }

    async fn drop(&mut self, handle: Resource<SqlConnection>) -> wasmtime::Result<()> {
        self.close(handle)
    }
}
