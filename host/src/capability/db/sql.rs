//! SQL sessions: PostgreSQL through tokio-postgres, SQLite through rusqlite, MySQL and MariaDB
//! through [`super::mysql`], each kept on its instance's database (see the module docs of
//! [`super`]).

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use futures::TryStreamExt;
use lockstep_changelog::db::{DbError, Dialect, Rows, Value};
use tokio_postgres::types::{ToSql, Type};

use super::grant::DbTarget;
use super::mysql::MysqlSession;

/// An open session.
pub enum SqlConnection {
    Postgres(PostgresSession),
    Mysql(MysqlSession),
    Sqlite(SqliteSession),
}

/// A PostgreSQL session, and the second session that [`SqlConnection::hold`] keeps a
/// transaction open on (the changelog lock's row), opened on first use with the same settings.
pub struct PostgresSession {
    client: tokio_postgres::Client,
    config: Box<tokio_postgres::Config>,
    held: Option<Box<tokio_postgres::Client>>,
}

async fn connect(config: &tokio_postgres::Config) -> Result<tokio_postgres::Client, DbError> {
    let (client, driver) = config
        .connect(tokio_postgres::NoTls)
        .await
        .map_err(|e| DbError::Unavailable(format!("connecting to PostgreSQL: {e}")))?;
    tokio::spawn(driver);
    Ok(client)
}

async fn pg_execute(
    client: &tokio_postgres::Client,
    sql: &str,
    params: &[Value],
) -> Result<u64, DbError> {
    let typed = pg_params(params);
    let refs: Vec<(&(dyn ToSql + Sync), Type)> = typed
        .iter()
        .map(|(v, t)| (v.as_ref() as &(dyn ToSql + Sync), t.clone()))
        .collect();
    client.execute_typed(sql, &refs).await.map_err(pg_error)
}

impl PostgresSession {
    /// [`lockstep_changelog::db::Sql::transaction`] in two round trips fewer than one statement
    /// at a time, which is a changeset's whole overhead on a fast server:
    /// - `BEGIN` goes in one query with the first statement, and a query stops at its first
    ///   error, so nothing runs outside the transaction;
    /// - `COMMIT` is sent right behind `last` without waiting for it. After a failed statement
    ///   PostgreSQL takes that `COMMIT` for a `ROLLBACK`, so nothing half-done commits.
    pub async fn transaction(
        &self,
        statements: &[String],
        (sql, params): (&str, &[Value]),
    ) -> Result<(), DbError> {
        let client = &self.client;
        let (opening, rest) = match statements.split_first() {
            Some((first, rest)) => (format!("BEGIN;\n{first}"), rest),
            None => ("BEGIN".to_string(), statements),
        };
        let result = async {
            client.batch_execute(&opening).await.map_err(pg_error)?;
            for statement in rest {
                client.batch_execute(statement).await.map_err(pg_error)?;
            }
            let (recorded, committed) = futures::join!(
                pg_execute(client, sql, params),
                client.batch_execute("COMMIT")
            );
            recorded?;
            committed.map_err(pg_error)
        }
        .await;
        if result.is_err() {
            client.batch_execute("ROLLBACK").await.map_err(pg_error)?;
        }
        result
    }
}

/// A SQLite connection, and the file lock that stands in for PostgreSQL's advisory lock: an
/// exclusive `flock` on `<database>.lockstep-lock`, which the OS releases if the process dies.
pub struct SqliteSession {
    connection: rusqlite::Connection,
    /// Why the authorizer refused the last refused statement.
    refused: Arc<Mutex<Option<&'static str>>>,
    lock_path: PathBuf,
    lock: Option<std::fs::File>,
}

impl SqliteSession {
    /// A SQLite error, saying why when the authorizer refused the statement.
    fn error(&self, error: rusqlite::Error) -> DbError {
        if error.sqlite_error_code() == Some(rusqlite::ErrorCode::AuthorizationForStatementDenied) {
            let why = self
                .refused
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .take()
                .unwrap_or("it is not allowed");
            return DbError::AccessDenied(format!(
                "SQLite refused the statement: {why}; a step reaches only its instance's database file"
            ));
        }
        sqlite_error(error)
    }

    fn try_lock(&mut self) -> Result<bool, DbError> {
        use std::os::fd::AsRawFd;
        if self.lock.is_some() {
            return Ok(true);
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&self.lock_path)
            .map_err(|e| {
                DbError::Unavailable(format!("opening {}: {e}", self.lock_path.display()))
            })?;
        // SAFETY: flock on a descriptor we own; no memory is shared with the kernel.
        let taken = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0;
        if taken {
            self.lock = Some(file);
        }
        Ok(taken)
    }
}

fn pg_error(error: tokio_postgres::Error) -> DbError {
    match error.as_db_error() {
        Some(db) => DbError::Failed(format!("{}: {}", db.code().code(), db.message())),
        None if error.is_closed() => {
            DbError::Unavailable(format!("the connection closed: {error}"))
        }
        None => DbError::Failed(error.to_string()),
    }
}

fn sqlite_error(error: rusqlite::Error) -> DbError {
    match error {
        rusqlite::Error::SqliteFailure(code, _)
            if code.code == rusqlite::ErrorCode::DatabaseBusy
                || code.code == rusqlite::ErrorCode::DatabaseLocked =>
        {
            DbError::Conflict(error.to_string())
        }
        other => DbError::Failed(other.to_string()),
    }
}

/// Refuses a PostgreSQL role that reaches beyond its databases: a superuser, or a member of the
/// roles that run host programs (`COPY … TO PROGRAM`) or read and write server files.
async fn refuse_powerful_role(client: &tokio_postgres::Client) -> Result<(), DbError> {
    let row = client
        .query_one(
            "SELECT current_user::text, r.rolsuper, pg_has_role(current_user, 'pg_execute_server_program', 'USAGE') OR pg_has_role(current_user, 'pg_read_server_files', 'USAGE') OR pg_has_role(current_user, 'pg_write_server_files', 'USAGE') FROM pg_roles r WHERE r.rolname = current_user",
            &[],
        )
        .await
        .map_err(pg_error)?;
    let (role, superuser, server_access): (String, bool, bool) =
        (row.get(0), row.get(1), row.get(2));
    let what = match (superuser, server_access) {
        (true, _) => {
            "a superuser, who can run host programs (COPY … TO PROGRAM), read server files and reach every database"
        }
        (false, true) => {
            "a member of pg_execute_server_program, pg_read_server_files or pg_write_server_files, who can run host programs or read and write server files"
        }
        (false, false) => return Ok(()),
    };
    Err(DbError::AccessDenied(format!(
        "the connector connects as `{role}`, {what}; connect as a role that owns only the application's database (see \"Security model\" in the README), or set `allowSuperuser: true` on the db instance in lockstep.yaml"
    )))
}

/// Keeps a SQLite connection on its own file: refuses, through an authorizer, what would reach
/// another file (ATTACH, DETACH, VACUUM INTO, extensions, directory pragmas), and turns on
/// defensive mode. Returns where the authorizer leaves its reason.
fn confine_sqlite(
    connection: &mut rusqlite::Connection,
) -> Result<Arc<Mutex<Option<&'static str>>>, DbError> {
    use rusqlite::config::DbConfig;
    use rusqlite::hooks::{AuthAction, Authorization};
    connection
        .set_db_config(DbConfig::SQLITE_DBCONFIG_DEFENSIVE, true)
        .map_err(sqlite_error)?;
    connection
        .set_db_config(DbConfig::SQLITE_DBCONFIG_TRUSTED_SCHEMA, false)
        .map_err(sqlite_error)?;
    connection
        .set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_FTS3_TOKENIZER, false)
        .map_err(sqlite_error)?;
    let refused = Arc::new(Mutex::new(None));
    let reason = refused.clone();
    connection
        .authorizer(Some(move |context: rusqlite::hooks::AuthContext<'_>| {
            let why = match context.action {
                AuthAction::Attach { .. } => Some("ATTACH opens another database file"),
                AuthAction::Detach { .. } => Some("DETACH is refused with ATTACH"),
                AuthAction::Function { function_name }
                    if function_name.eq_ignore_ascii_case("load_extension") =>
                {
                    Some("extensions are native code")
                }
                AuthAction::Pragma { pragma_name, .. }
                    if ["temp_store_directory", "data_store_directory"]
                        .iter()
                        .any(|p| pragma_name.eq_ignore_ascii_case(p)) =>
                {
                    Some("this pragma names a directory")
                }
                _ => None,
            };
            match why {
                Some(why) => {
                    *reason.lock().unwrap_or_else(|e| e.into_inner()) = Some(why);
                    Authorization::Deny
                }
                None => Authorization::Allow,
            }
        }))
        .map_err(sqlite_error)?;
    Ok(refused)
}

impl SqlConnection {
    pub async fn open(target: &DbTarget) -> Result<Self, DbError> {
        match target {
            DbTarget::Mongo { .. } => Err(DbError::Invalid(
                "this instance is a MongoDB database; open it with lockstep:db/mongo".into(),
            )),
            DbTarget::Postgres {
                config,
                allow_superuser,
            } => {
                let client = connect(config).await?;
                if !allow_superuser {
                    refuse_powerful_role(&client).await?;
                }
                Ok(SqlConnection::Postgres(PostgresSession {
                    client,
                    config: config.clone(),
                    held: None,
                }))
            }
            DbTarget::Mysql {
                opts,
                allow_superuser,
            } => Ok(SqlConnection::Mysql(
                MysqlSession::open(opts, *allow_superuser).await?,
            )),
            DbTarget::Sqlite { path } => {
                // The path comes from lockstep.yaml; its directory is created on first use.
                if let Some(parent) = path.parent() {
                    std::fs::create_dir_all(parent).map_err(|e| {
                        DbError::Unavailable(format!("creating {}: {e}", parent.display()))
                    })?;
                }
                let mut connection = rusqlite::Connection::open(path).map_err(|e| {
                    DbError::Unavailable(format!("opening {}: {e}", path.display()))
                })?;
                // Concurrent writers wait for each other rather than failing at once.
                connection
                    .busy_timeout(std::time::Duration::from_secs(30))
                    .map_err(sqlite_error)?;
                let refused = confine_sqlite(&mut connection)?;
                let mut lock_path = path.clone().into_os_string();
                lock_path.push(".lockstep-lock");
                Ok(SqlConnection::Sqlite(SqliteSession {
                    connection,
                    refused,
                    lock_path: lock_path.into(),
                    lock: None,
                }))
            }
        }
    }

    pub fn dialect(&self) -> Dialect {
        match self {
            SqlConnection::Postgres(_) => Dialect::Postgresql,
            SqlConnection::Mysql(session) => session.dialect(),
            SqlConnection::Sqlite(_) => Dialect::Sqlite,
        }
    }

    pub async fn batch(&mut self, sql: &str) -> Result<(), DbError> {
        match self {
            SqlConnection::Postgres(PostgresSession { client, .. }) => {
                client.batch_execute(sql).await.map_err(pg_error)
            }
            SqlConnection::Mysql(session) => session.batch(sql).await,
            SqlConnection::Sqlite(session) => session
                .connection
                .execute_batch(sql)
                .map_err(|e| session.error(e)),
        }
    }

    pub async fn execute(&mut self, sql: &str, params: &[Value]) -> Result<u64, DbError> {
        match self {
            SqlConnection::Postgres(PostgresSession { client, .. }) => {
                pg_execute(client, sql, params).await
            }
            SqlConnection::Mysql(session) => session.execute(sql, params).await,
            SqlConnection::Sqlite(session) => {
                let mut statement = session
                    .connection
                    .prepare(sql)
                    .map_err(|e| session.error(e))?;
                bind_numbered(&mut statement, params)?;
                Ok(statement.raw_execute().map_err(sqlite_error)? as u64)
            }
        }
    }

    pub async fn query(&mut self, sql: &str, params: &[Value]) -> Result<Rows, DbError> {
        let mut rows = vec![];
        let columns = self
            .query_each(sql, params, |row| {
                rows.push(row);
                Ok(())
            })
            .await?;
        Ok(Rows { columns, rows })
    }

    /// Hands each row to `each` as it arrives, stopping at the first error it returns, and
    /// returns the column names (none for an empty PostgreSQL result). A large result (100,000
    /// history rows) is never held whole.
    pub async fn query_each(
        &mut self,
        sql: &str,
        params: &[Value],
        mut each: impl FnMut(Vec<Value>) -> Result<(), DbError>,
    ) -> Result<Vec<String>, DbError> {
        match self {
            SqlConnection::Postgres(PostgresSession { client, .. }) => {
                let typed = pg_params(params);
                let refs: Vec<(&(dyn ToSql + Sync), Type)> = typed
                    .iter()
                    .map(|(v, t)| (v.as_ref() as &(dyn ToSql + Sync), t.clone()))
                    .collect();
                let stream = client
                    .query_typed_raw(sql, refs.iter().map(|(v, t)| (*v, t.clone())))
                    .await
                    .map_err(pg_error)?;
                let mut stream = std::pin::pin!(stream);
                let mut columns = vec![];
                while let Some(row) = stream.try_next().await.map_err(pg_error)? {
                    if columns.is_empty() {
                        columns = row.columns().iter().map(|c| c.name().to_string()).collect();
                    }
                    each(pg_row(&row)?)?;
                }
                Ok(columns)
            }
            SqlConnection::Mysql(session) => session.query_each(sql, params, each).await,
            SqlConnection::Sqlite(session) => {
                let mut statement = session
                    .connection
                    .prepare(sql)
                    .map_err(|e| session.error(e))?;
                let columns: Vec<String> = statement.column_names().map(str::to_string).collect();
                let width = columns.len();
                bind_numbered(&mut statement, params)?;
                let mut result = statement.raw_query();
                while let Some(row) = result.next().map_err(sqlite_error)? {
                    each(
                        (0..width)
                            .map(|i| sqlite_value(row.get_ref(i)))
                            .collect::<Result<_, _>>()?,
                    )?;
                }
                Ok(columns)
            }
        }
    }

    pub async fn try_advisory_lock(&mut self, key: i64) -> Result<bool, DbError> {
        match self {
            SqlConnection::Postgres(PostgresSession { client, .. }) => {
                let row = client
                    .query_one("SELECT pg_try_advisory_lock($1)", &[&key])
                    .await
                    .map_err(pg_error)?;
                Ok(row.get::<_, bool>(0))
            }
            SqlConnection::Mysql(session) => session.try_advisory_lock(key).await,
            SqlConnection::Sqlite(session) => session.try_lock(),
        }
    }

    /// Runs `sql` on the second session, in a transaction that stays open until
    /// [`Self::release_held`] or until this connection closes; if the runner dies, the server
    /// rolls it back. Not on SQLite.
    pub async fn hold(&mut self, sql: &str, params: &[Value]) -> Result<u64, DbError> {
        let session = match self {
            SqlConnection::Postgres(session) => session,
            SqlConnection::Mysql(session) => return session.hold(sql, params).await,
            SqlConnection::Sqlite(_) => {
                return Err(DbError::Invalid(
                    "SQLite has one writer, so there is no second session to hold a transaction on"
                        .into(),
                ));
            }
        };
        let held = match session.held.take() {
            Some(held) => held,
            None => {
                let held = Box::new(connect(&session.config).await?);
                // A server-wide idle timeout must not end the transaction while the run goes on.
                held.batch_execute("SET idle_in_transaction_session_timeout = 0; BEGIN")
                    .await
                    .map_err(pg_error)?;
                held
            }
        };
        let result = pg_execute(&held, sql, params).await;
        session.held = Some(held);
        result
    }

    /// Rolls back what [`Self::hold`] holds and closes its session.
    pub async fn release_held(&mut self) -> Result<(), DbError> {
        match self {
            SqlConnection::Postgres(session) => {
                if let Some(held) = session.held.take() {
                    held.batch_execute("ROLLBACK").await.map_err(pg_error)?;
                }
                Ok(())
            }
            SqlConnection::Mysql(session) => session.release_held().await,
            SqlConnection::Sqlite(_) => Ok(()),
        }
    }

    pub async fn advisory_unlock(&mut self, key: i64) -> Result<(), DbError> {
        match self {
            SqlConnection::Postgres(PostgresSession { client, .. }) => client
                .execute("SELECT pg_advisory_unlock($1)", &[&key])
                .await
                .map(|_| ())
                .map_err(pg_error),
            SqlConnection::Mysql(session) => session.advisory_unlock(key).await,
            SqlConnection::Sqlite(session) => {
                // Closing the file releases the flock.
                session.lock = None;
                Ok(())
            }
        }
    }
}

/// Parameters with explicit types, so that the server casts them to the column's type.
fn pg_params(params: &[Value]) -> Vec<(Box<dyn ToSql + Sync + Send>, Type)> {
    params
        .iter()
        .map(|value| -> (Box<dyn ToSql + Sync + Send>, Type) {
            match value {
                Value::Null => (Box::new(None::<String>), Type::TEXT),
                Value::Boolean(b) => (Box::new(*b), Type::BOOL),
                Value::Integer(i) => (Box::new(*i), Type::INT8),
                Value::Float(f) => (Box::new(*f), Type::FLOAT8),
                Value::Text(t) => (Box::new(t.clone()), Type::TEXT),
            }
        })
        .collect()
}

fn pg_row(row: &tokio_postgres::Row) -> Result<Vec<Value>, DbError> {
    // Sized up front (collecting a `Result` cannot be): one row per history row, 100,000 of them.
    let mut values = Vec::with_capacity(row.len());
    for (i, column) in row.columns().iter().enumerate() {
        let ty = column.type_();
        let value = if *ty == Type::BOOL {
            row.try_get::<_, Option<bool>>(i)
                .map(|v| v.map_or(Value::Null, Value::Boolean))
        } else if *ty == Type::INT2 {
            row.try_get::<_, Option<i16>>(i)
                .map(|v| v.map_or(Value::Null, |n| Value::Integer(n.into())))
        } else if *ty == Type::INT4 {
            row.try_get::<_, Option<i32>>(i)
                .map(|v| v.map_or(Value::Null, |n| Value::Integer(n.into())))
        } else if *ty == Type::INT8 {
            row.try_get::<_, Option<i64>>(i)
                .map(|v| v.map_or(Value::Null, Value::Integer))
        } else if *ty == Type::FLOAT4 {
            row.try_get::<_, Option<f32>>(i)
                .map(|v| v.map_or(Value::Null, |n| Value::Float(n.into())))
        } else if *ty == Type::FLOAT8 {
            row.try_get::<_, Option<f64>>(i)
                .map(|v| v.map_or(Value::Null, Value::Float))
        } else if [Type::TEXT, Type::VARCHAR, Type::BPCHAR, Type::NAME].contains(ty) {
            row.try_get::<_, Option<String>>(i)
                .map(|v| v.map_or(Value::Null, Value::Text))
        } else {
            return Err(DbError::Invalid(format!(
                "column `{}` has type {ty}; cast it to text in the query",
                column.name()
            )));
        };
        values.push(value.map_err(|e| DbError::Failed(e.to_string()))?);
    }
    Ok(values)
}

/// Binds `params[n - 1]` to `$n`, wherever `$n` appears: SQLite numbers `$n` parameters by their
/// first appearance, not by `n`, so binding by position would differ from PostgreSQL.
fn bind_numbered(statement: &mut rusqlite::Statement<'_>, params: &[Value]) -> Result<(), DbError> {
    for (i, value) in params.iter().enumerate() {
        match statement
            .parameter_index(&format!("${}", i + 1))
            .map_err(sqlite_error)?
        {
            Some(index) => statement
                .raw_bind_parameter(index, sqlite_param(value))
                .map_err(sqlite_error)?,
            None => {
                return Err(DbError::Invalid(format!(
                    "the statement has no parameter ${}",
                    i + 1
                )));
            }
        }
    }
    Ok(())
}

fn sqlite_param(value: &Value) -> rusqlite::types::Value {
    use rusqlite::types::Value as S;
    match value {
        Value::Null => S::Null,
        Value::Boolean(b) => S::Integer(i64::from(*b)),
        Value::Integer(i) => S::Integer(*i),
        Value::Float(f) => S::Real(*f),
        Value::Text(t) => S::Text(t.clone()),
    }
}

fn sqlite_value(value: rusqlite::Result<rusqlite::types::ValueRef<'_>>) -> Result<Value, DbError> {
    use rusqlite::types::ValueRef as S;
    Ok(match value.map_err(sqlite_error)? {
        S::Null => Value::Null,
        S::Integer(i) => Value::Integer(i),
        S::Real(f) => Value::Float(f),
        S::Text(t) => Value::Text(String::from_utf8_lossy(t).into_owned()),
        S::Blob(_) => {
            return Err(DbError::Invalid(
                "blob columns are not supported; select them as hex text".into(),
            ));
        }
    })
}
