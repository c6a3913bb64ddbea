//! What the engine needs from a database connection. The steps implement [`Sql`] and [`Mongo`]
//! over the `lockstep:db` host interfaces; the host implements them over its drivers.

use std::fmt;

/// MongoDB's name in `dbms` filters; it has no SQL [`Dialect`].
pub const MONGODB_DBMS: &str = "mongodb";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Postgresql,
    Sqlite,
    /// MySQL, and [`Dialect::Mariadb`]: the same SQL, but Liquibase tells them apart in `dbms`.
    Mysql,
    Mariadb,
}

impl Dialect {
    /// The name `dbms` filters use (Liquibase's short name: `dbms: mysql` does not match MariaDB).
    pub fn dbms_name(self) -> &'static str {
        match self {
            Dialect::Postgresql => "postgresql",
            Dialect::Sqlite => "sqlite",
            Dialect::Mysql => "mysql",
            Dialect::Mariadb => "mariadb",
        }
    }

    /// MySQL or MariaDB: no transactional DDL, backquoted identifiers, `?` parameters.
    pub fn is_mysql(self) -> bool {
        matches!(self, Dialect::Mysql | Dialect::Mariadb)
    }

    /// `text` as a string literal, as Liquibase writes one here: a `'` doubled, and on MySQL,
    /// which reads a backslash as an escape, a `\` doubled too.
    pub fn quoted(self, text: &str) -> String {
        let text = text.replace('\'', "''");
        if self.is_mysql() {
            format!("'{}'", text.replace('\\', "\\\\"))
        } else {
            format!("'{text}'")
        }
    }
}

/// A parameter or result value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Boolean(bool),
    Integer(i64),
    Float(f64),
    Text(String),
}

impl Value {
    pub fn as_text(&self) -> Option<&str> {
        match self {
            Value::Text(t) => Some(t),
            _ => None,
        }
    }

    pub fn as_integer(&self) -> Option<i64> {
        match self {
            Value::Integer(i) => Some(*i),
            Value::Text(t) => t.parse().ok(),
            _ => None,
        }
    }
}

impl From<&str> for Value {
    fn from(text: &str) -> Self {
        Value::Text(text.to_string())
    }
}

impl From<Option<&str>> for Value {
    fn from(text: Option<&str>) -> Self {
        text.map_or(Value::Null, Value::from)
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Rows {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Value>>,
}

/// A database error, classified the way the step interfaces report errors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DbError {
    AccessDenied(String),
    NotFound(String),
    Conflict(String),
    Invalid(String),
    Unavailable(String),
    /// The statement failed (syntax, constraint, …): the database's own message.
    Failed(String),
}

impl fmt::Display for DbError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DbError::AccessDenied(m) => write!(f, "access denied: {m}"),
            DbError::NotFound(m) => write!(f, "not found: {m}"),
            DbError::Conflict(m) => write!(f, "conflict: {m}"),
            DbError::Invalid(m) => write!(f, "invalid: {m}"),
            DbError::Unavailable(m) => write!(f, "unavailable: {m}"),
            DbError::Failed(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for DbError {}

/// A SQL session. Statements run in order on one connection, so `BEGIN` … `COMMIT` through
/// [`Sql::batch`] form one transaction.
pub trait Sql {
    fn dialect(&self) -> Dialect;
    fn batch(&mut self, sql: &str) -> Result<(), DbError>;
    fn execute(&mut self, sql: &str, params: &[Value]) -> Result<u64, DbError>;
    fn query(&mut self, sql: &str, params: &[Value]) -> Result<Rows, DbError>;
    /// Hands each row of a query to `each`, in order, stopping at the first error `each`
    /// returns. A session that can stream overrides it, so that a large result (100,000 history
    /// rows) is never held whole; by default it is [`Sql::query`], then row by row.
    fn query_each(
        &mut self,
        sql: &str,
        params: &[Value],
        each: &mut dyn FnMut(Vec<Value>) -> Result<(), DbError>,
    ) -> Result<(), DbError> {
        self.query(sql, params)?.rows.into_iter().try_for_each(each)
    }
    fn try_advisory_lock(&mut self, key: i64) -> Result<bool, DbError>;
    fn advisory_unlock(&mut self, key: i64) -> Result<(), DbError>;
    /// Runs one statement on a second session of the same database, inside a transaction that
    /// stays open until [`Sql::release_held`]; if this process dies, the server rolls it back.
    /// PostgreSQL, MySQL and MariaDB (SQLite has no second writer): an error there.
    fn hold(&mut self, sql: &str, params: &[Value]) -> Result<u64, DbError>;
    /// Rolls back and closes what [`Sql::hold`] opened; nothing when nothing is held.
    fn release_held(&mut self) -> Result<(), DbError>;
    /// Runs `statements`, then `last` with its parameters, in one transaction that commits only
    /// when all of them succeed, and is rolled back otherwise. By default one at a time
    /// ([`transaction_one_by_one`]); a session whose server can take several at once (a
    /// PostgreSQL pipeline) overrides it to save round trips.
    fn transaction(
        &mut self,
        statements: &[String],
        last: (&str, &[Value]),
    ) -> Result<(), DbError> {
        transaction_one_by_one(self, statements, last)
    }
}

/// [`Sql::transaction`] one statement at a time: `BEGIN`, each statement, `last`, `COMMIT`, or
/// `ROLLBACK` after the first that fails.
pub fn transaction_one_by_one<S: Sql + ?Sized>(
    db: &mut S,
    statements: &[String],
    (sql, params): (&str, &[Value]),
) -> Result<(), DbError> {
    db.batch("BEGIN")?;
    let result = (|| {
        for statement in statements {
            db.batch(statement)?;
        }
        db.execute(sql, params).map(drop)
    })();
    commit_or_roll_back(db, result)
}

/// Ends the transaction `result` was the work of: `COMMIT` if it succeeded, else `ROLLBACK`
/// and its error.
pub fn commit_or_roll_back<S: Sql + ?Sized>(
    db: &mut S,
    result: Result<(), DbError>,
) -> Result<(), DbError> {
    match result {
        Ok(()) => db.batch("COMMIT"),
        Err(error) => {
            db.batch("ROLLBACK")?;
            Err(error)
        }
    }
}

/// A MongoDB session on one database. Commands and replies are Extended JSON text.
pub trait Mongo {
    /// Runs `command` on the connection's database and returns the reply. A reply with `ok: 0`
    /// is an error; write errors inside an `ok: 1` reply are the caller's to check.
    fn run_command(&mut self, command: &str) -> Result<String, DbError>;
    /// Runs `command` on the `admin` database (liquibase-mongodb's adminCommand).
    fn run_admin_command(&mut self, command: &str) -> Result<String, DbError>;
    /// The id (`lsid`, Extended JSON) of the session this connection runs transactions in,
    /// made on first use; `None` when the deployment has no transactions (a standalone server;
    /// they need a replica set or a sharded cluster).
    fn transaction_session(&mut self) -> Result<Option<String>, DbError>;
    /// Starts a transaction in that session: commands run in it until
    /// [`Mongo::commit_transaction`] or [`Mongo::abort_transaction`].
    fn start_transaction(&mut self) -> Result<(), DbError>;
    fn commit_transaction(&mut self) -> Result<(), DbError>;
    /// Undoes the open transaction; nothing when none is open.
    fn abort_transaction(&mut self) -> Result<(), DbError>;
}
