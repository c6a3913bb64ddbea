//! MySQL and MariaDB sessions, through `mysql_async` (the maintained async driver, tokio-based,
//! built here without TLS or C dependencies).
//!
//! What keeps a session on its database:
//! - the connector must name a database (see `resolve`), and a user with global privileges
//!   (on `*.*`: FILE, which reads and writes server files, SUPER, or rights on every database) is
//!   refused unless the instance says `allowSuperuser: true`; a user granted only the
//!   application's database reaches nothing else;
//! - `LOAD DATA LOCAL INFILE` makes the *client* send a file of its own machine to the server.
//!   The session's local-infile handler ([`RefuseHostFiles`]) answers every such request with
//!   an empty file and an error, without opening anything; the session stays usable.
//!
//! Statements arrive with PostgreSQL's `$n` parameters (the `lockstep:db` contract); they are
//! rewritten to MySQL's positional `?` here.

use lockstep_changelog::db::{DbError, Dialect, Value};
use mysql_async::prelude::Queryable;

pub struct MysqlSession {
    conn: mysql_async::Conn,
    opts: mysql_async::Opts,
    dialect: Dialect,
    /// The second session [`MysqlSession::hold`] keeps a transaction open on.
    held: Option<Box<mysql_async::Conn>>,
}

impl MysqlSession {
    pub async fn open(opts: &mysql_async::Opts, allow_superuser: bool) -> Result<Self, DbError> {
        let mut conn = connect(opts).await?;
        // One round trip: which server this is, and what the user may do beyond its database.
        let (version, user, global_privileges): (String, String, Option<String>) = conn
            .query_first(
                "SELECT VERSION(), CURRENT_USER(), GROUP_CONCAT(PRIVILEGE_TYPE ORDER BY PRIVILEGE_TYPE SEPARATOR ', ') FROM information_schema.USER_PRIVILEGES WHERE GRANTEE = CONCAT('''', SUBSTRING_INDEX(CURRENT_USER(), '@', 1), '''@''', SUBSTRING_INDEX(CURRENT_USER(), '@', -1), '''') AND PRIVILEGE_TYPE <> 'USAGE'",
            )
            .await
            .map_err(mysql_error)?
            .ok_or_else(|| DbError::Failed("the server answered no row".into()))?;
        if let (false, Some(privileges)) = (allow_superuser, global_privileges) {
            return Err(global_privileges_refused(&user, privileges));
        }
        let dialect = if version.contains("MariaDB") {
            Dialect::Mariadb
        } else {
            Dialect::Mysql
        };
        Ok(MysqlSession {
            conn,
            opts: opts.clone(),
            dialect,
            held: None,
        })
    }

    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    pub async fn batch(&mut self, sql: &str) -> Result<(), DbError> {
        self.conn.query_drop(sql).await.map_err(mysql_error)
    }

    pub async fn execute(&mut self, sql: &str, params: &[Value]) -> Result<u64, DbError> {
        execute_on(&mut self.conn, sql, params).await
    }

    /// Hands each row to `each` as it arrives and returns the column names (see
    /// [`super::sql::SqlConnection::query_each`]).
    pub async fn query_each(
        &mut self,
        sql: &str,
        params: &[Value],
        mut each: impl FnMut(Vec<Value>) -> Result<(), DbError>,
    ) -> Result<Vec<String>, DbError> {
        let (sql, params) = positional(sql, params)?;
        let mut result = self
            .conn
            .exec_iter(sql, mysql_async::Params::Positional(params))
            .await
            .map_err(mysql_error)?;
        let columns = result
            .columns_ref()
            .iter()
            .map(|c| c.name_str().into_owned())
            .collect();
        while let Some(row) = result.next().await.map_err(mysql_error)? {
            let values = row
                .unwrap_raw()
                .into_iter()
                .map(|value| from_mysql(value.unwrap_or(mysql_async::Value::NULL)))
                .collect::<Result<_, _>>()
                .and_then(&mut each);
            if let Err(error) = values {
                // The rest of the result must be read before the session can be used again.
                result.drop_result().await.map_err(mysql_error)?;
                return Err(error);
            }
        }
        Ok(columns)
    }

    /// A named lock (`GET_LOCK`), which the server releases when the session ends. Lock names
    /// are server-wide, so the name is made of the database's name and `key`.
    pub async fn try_advisory_lock(&mut self, key: i64) -> Result<bool, DbError> {
        let taken: Option<Option<i64>> = self
            .conn
            .exec_first(
                format!("SELECT GET_LOCK({LOCK_NAME}, 0)"),
                (key.to_string(),),
            )
            .await
            .map_err(mysql_error)?;
        Ok(taken.flatten() == Some(1))
    }

    pub async fn advisory_unlock(&mut self, key: i64) -> Result<(), DbError> {
        self.conn
            .exec_drop(format!("DO RELEASE_LOCK({LOCK_NAME})"), (key.to_string(),))
            .await
            .map_err(mysql_error)
    }

    /// Runs `sql` on the second session, in a transaction left open until
    /// [`Self::release_held`]; if the runner dies, the server rolls it back.
    pub async fn hold(&mut self, sql: &str, params: &[Value]) -> Result<u64, DbError> {
        let mut held = match self.held.take() {
            Some(held) => held,
            None => {
                let mut held = Box::new(connect(&self.opts).await?);
                // The server's idle timeout (8 h by default) must not end the run's lock.
                held.query_drop("SET SESSION wait_timeout = 31536000; START TRANSACTION")
                    .await
                    .map_err(mysql_error)?;
                held
            }
        };
        let result = execute_on(&mut held, sql, params).await;
        self.held = Some(held);
        result
    }

    pub async fn release_held(&mut self) -> Result<(), DbError> {
        if let Some(mut held) = self.held.take() {
            held.query_drop("ROLLBACK").await.map_err(mysql_error)?;
            held.disconnect().await.map_err(mysql_error)?;
        }
        Ok(())
    }
}

/// `GET_LOCK`'s name for the key in `?`: at most 64 characters, whatever the database's name.
const LOCK_NAME: &str = "CONCAT('lockstep-', SHA1(CONCAT(DATABASE(), ':', ?)))";

async fn connect(opts: &mysql_async::Opts) -> Result<mysql_async::Conn, DbError> {
    let opts = mysql_async::OptsBuilder::from_opts(opts.clone())
        .local_infile_handler(Some(RefuseHostFiles));
    mysql_async::Conn::new(opts)
        .await
        .map_err(|e| DbError::Unavailable(format!("connecting to MySQL: {e}")))
}

/// Answers a server's request for a client file (`LOAD DATA LOCAL INFILE`) with no data and an
/// error. Without a handler the driver would give up mid-protocol and lose the session.
struct RefuseHostFiles;

impl mysql_async::prelude::GlobalHandler for RefuseHostFiles {
    fn handle(
        &self,
        _file_name: &[u8],
    ) -> futures::future::BoxFuture<
        'static,
        Result<mysql_async::InfileData, mysql_async::LocalInfileError>,
    > {
        use futures::StreamExt;
        let refusal = std::io::Error::new(std::io::ErrorKind::PermissionDenied, "refused");
        let data: mysql_async::InfileData = futures::stream::iter([Err(refusal)]).boxed();
        Box::pin(async move { Ok(data) })
    }
}

async fn execute_on(
    conn: &mut mysql_async::Conn,
    sql: &str,
    params: &[Value],
) -> Result<u64, DbError> {
    if params.is_empty() {
        // The text protocol: every statement runs, also those that cannot be prepared.
        conn.query_drop(sql).await.map_err(mysql_error)?;
    } else {
        let (sql, params) = positional(sql, params)?;
        conn.exec_drop(sql, mysql_async::Params::Positional(params))
            .await
            .map_err(mysql_error)?;
    }
    Ok(conn.affected_rows())
}

/// The refusal of a user with privileges on every database (`*.*`), FILE and SUPER among them.
fn global_privileges_refused(user: &str, privileges: String) -> DbError {
    let listed = if privileges.len() > 120 {
        format!("{}…", &privileges[..privileges.floor_char_boundary(120)])
    } else {
        privileges
    };
    DbError::AccessDenied(format!(
        "the connector connects as `{user}`, who holds global privileges ({listed}) that reach every database, and with FILE the server's files; connect as a user granted only the application's database (GRANT ALL ON app.* TO …; see \"Security model\" in the README), or set `allowSuperuser: true` on the db instance in lockstep.yaml"
    ))
}

fn mysql_error(error: mysql_async::Error) -> DbError {
    use mysql_async::{DriverError, Error};
    match error {
        Error::Server(e) => DbError::Failed(format!("{} ({}): {}", e.code, e.state, e.message)),
        Error::Driver(DriverError::LocalInfile(_)) => {
            DbError::AccessDenied(
                "the server asked for a file of the runner's machine (LOAD DATA LOCAL INFILE); a step never sends host files: load data with loadData or INSERT".into(),
            )
        }
        Error::Io(e) => DbError::Unavailable(format!("the connection failed: {e}")),
        other => DbError::Failed(other.to_string()),
    }
}

/// `sql` with each `$n` outside quotes and comments turned into `?`, and the parameters in the
/// order the `?`s appear (a `$n` may appear twice, or out of order).
fn positional(sql: &str, params: &[Value]) -> Result<(String, Vec<mysql_async::Value>), DbError> {
    let mut out = String::with_capacity(sql.len());
    let mut ordered = vec![];
    let mut chars = sql.char_indices().peekable();
    while let Some((_, c)) = chars.next() {
        match c {
            '\'' | '"' | '`' => {
                out.push(c);
                for (_, inner) in chars.by_ref() {
                    out.push(inner);
                    if inner == c {
                        break;
                    }
                }
            }
            '$' if chars.peek().is_some_and(|(_, d)| d.is_ascii_digit()) => {
                let mut number = 0usize;
                while let Some((_, d)) = chars.peek().copied().filter(|(_, d)| d.is_ascii_digit()) {
                    number = number * 10 + d.to_digit(10).unwrap_or(0) as usize;
                    chars.next();
                }
                let value = number
                    .checked_sub(1)
                    .and_then(|i| params.get(i))
                    .ok_or_else(|| {
                        DbError::Invalid(format!("the statement has no parameter ${number}"))
                    })?;
                ordered.push(to_mysql(value));
                out.push('?');
            }
            _ => out.push(c),
        }
    }
    Ok((out, ordered))
}

fn to_mysql(value: &Value) -> mysql_async::Value {
    use mysql_async::Value as M;
    match value {
        Value::Null => M::NULL,
        Value::Boolean(b) => M::Int(i64::from(*b)),
        Value::Integer(i) => M::Int(*i),
        Value::Float(f) => M::Double(*f),
        Value::Text(t) => M::Bytes(t.clone().into_bytes()),
    }
}

fn from_mysql(value: mysql_async::Value) -> Result<Value, DbError> {
    use mysql_async::Value as M;
    Ok(match value {
        M::NULL => Value::Null,
        M::Int(i) => Value::Integer(i),
        M::UInt(u) => i64::try_from(u)
            .map(Value::Integer)
            .unwrap_or(Value::Float(u as f64)),
        M::Float(f) => Value::Float(f.into()),
        M::Double(f) => Value::Float(f),
        M::Bytes(bytes) => Value::Text(String::from_utf8(bytes).map_err(|_| {
            DbError::Invalid("binary columns are not supported; select them as HEX(…)".into())
        })?),
        M::Date(year, month, day, hour, minute, second, micros) => Value::Text(if micros == 0 {
            format!("{year:04}-{month:02}-{day:02} {hour:02}:{minute:02}:{second:02}")
        } else {
            format!("{year:04}-{month:02}-{day:02} {hour:02}:{minute:02}:{second:02}.{micros:06}")
        }),
        M::Time(negative, days, hours, minutes, seconds, _) => Value::Text(format!(
            "{}{:02}:{minutes:02}:{seconds:02}",
            if negative { "-" } else { "" },
            u32::from(hours) + days * 24
        )),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dollar_parameters_become_question_marks_in_order_of_appearance() {
        let (sql, params) = positional(
            "UPDATE t SET a = $2, b = '$1', c = `$9` WHERE d = $1 AND e = $2",
            &[Value::Integer(1), Value::from("two")],
        )
        .unwrap();
        assert_eq!(
            sql,
            "UPDATE t SET a = ?, b = '$1', c = `$9` WHERE d = ? AND e = ?"
        );
        assert_eq!(
            params,
            vec![
                mysql_async::Value::Bytes(b"two".to_vec()),
                mysql_async::Value::Int(1),
                mysql_async::Value::Bytes(b"two".to_vec()),
            ]
        );
        assert!(matches!(
            positional("SELECT $3", &[]),
            Err(DbError::Invalid(m)) if m.contains("$3")
        ));
    }
}
