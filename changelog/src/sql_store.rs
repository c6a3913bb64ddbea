//! Liquibase's tracking tables on PostgreSQL, MySQL/MariaDB and SQLite, exactly as 4.28 creates
//! them.
//!
//! The DATABASECHANGELOGLOCK row is paired with a session advisory lock (PostgreSQL
//! `pg_try_advisory_lock`, MySQL `GET_LOCK`; for SQLite the host's file lock), which keeps
//! Lockstep runners apart.
//!
//! On PostgreSQL and MySQL the row is set LOCKED in a transaction held open on a second session
//! for the whole run ([`Sql::hold`]), never committed. Liquibase, trying to lock, waits on that
//! row (on MySQL for `innodb_lock_wait_timeout`, then it fails); if the runner dies, the server
//! rolls the transaction back and Liquibase goes on.
//!
//! MySQL commits each DDL statement by itself, so a changeset with DDL cannot commit with its
//! history row. While such a changeset runs, a second lock-table row (ID 2, never LOCKED, so
//! Liquibase ignores it) names it; a runner that finds that row after a crash reports the
//! changeset as possibly half-done and does not re-run it, as on MongoDB. A changeset of data
//! changes only commits with its history row in one transaction, as on PostgreSQL.
//! On SQLite, which has one writer, the row is committed; a runner that dies releases its file
//! lock, so the next Lockstep run recognises the row as stale and takes it over (Liquibase needs
//! `lockstep db release-locks` then). A row locked by Liquibase itself is waited for.

use crate::changes::Structured;
use crate::db::{DbError, Dialect, Sql, Value, commit_or_roll_back};
use crate::model::{Change, Precondition, SqlFile};
use crate::sqlite_rebuild::Rebuild;
use crate::store::{
    HistoryRow, LOCKED_BY_PREFIX, LockAttempt, NewRow, RanRow, Record, RowOrder, Store, interrupted,
};

/// The advisory-lock key: "Lockstep" in ASCII.
const ADVISORY_KEY: i64 = 0x4c6f_636b_7374_6570;

/// DATABASECHANGELOG as Liquibase 4.28 creates it: DATEEXECUTED is TIMESTAMP on PostgreSQL and
/// TEXT on SQLite; MySQL's is Liquibase's own text.
fn create_changelog(dialect: Dialect) -> String {
    let date = match dialect {
        Dialect::Postgresql => "TIMESTAMP",
        Dialect::Sqlite => "TEXT",
        Dialect::Mysql | Dialect::Mariadb => {
            return "CREATE TABLE DATABASECHANGELOG (ID VARCHAR(255) NOT NULL, AUTHOR VARCHAR(255) NOT NULL, FILENAME VARCHAR(255) NOT NULL, DATEEXECUTED datetime NOT NULL, ORDEREXECUTED INT NOT NULL, EXECTYPE VARCHAR(10) NOT NULL, MD5SUM VARCHAR(35) NULL, `DESCRIPTION` VARCHAR(255) NULL, COMMENTS VARCHAR(255) NULL, TAG VARCHAR(255) NULL, LIQUIBASE VARCHAR(20) NULL, CONTEXTS VARCHAR(255) NULL, LABELS VARCHAR(255) NULL, DEPLOYMENT_ID VARCHAR(10) NULL)".into();
        }
    };
    format!(
        "CREATE TABLE DATABASECHANGELOG (ID VARCHAR(255) NOT NULL, AUTHOR VARCHAR(255) NOT NULL, FILENAME VARCHAR(255) NOT NULL, DATEEXECUTED {date} NOT NULL, ORDEREXECUTED INTEGER NOT NULL, EXECTYPE VARCHAR(10) NOT NULL, MD5SUM VARCHAR(35), DESCRIPTION VARCHAR(255), COMMENTS VARCHAR(255), TAG VARCHAR(255), LIQUIBASE VARCHAR(20), CONTEXTS VARCHAR(255), LABELS VARCHAR(255), DEPLOYMENT_ID VARCHAR(10))"
    )
}

/// DATABASECHANGELOGLOCK as Liquibase 4.28 creates it, per dialect.
fn create_lock(dialect: Dialect) -> &'static str {
    match dialect {
        Dialect::Postgresql => {
            "CREATE TABLE DATABASECHANGELOGLOCK (ID INTEGER NOT NULL, LOCKED BOOLEAN NOT NULL, LOCKGRANTED TIMESTAMP, LOCKEDBY VARCHAR(255), CONSTRAINT DATABASECHANGELOGLOCK_PKEY PRIMARY KEY (ID))"
        }
        Dialect::Sqlite => {
            "CREATE TABLE DATABASECHANGELOGLOCK (ID INTEGER NOT NULL, LOCKED BOOLEAN NOT NULL, LOCKGRANTED TEXT, LOCKEDBY VARCHAR(255), CONSTRAINT PK_DATABASECHANGELOGLOCK PRIMARY KEY (ID))"
        }
        Dialect::Mysql | Dialect::Mariadb => {
            "CREATE TABLE DATABASECHANGELOGLOCK (ID INT NOT NULL, `LOCKED` TINYINT(1) NOT NULL, LOCKGRANTED datetime NULL, LOCKEDBY VARCHAR(255) NULL, CONSTRAINT PK_DATABASECHANGELOGLOCK PRIMARY KEY (ID))"
        }
    }
}

/// The type a date or timestamp is cast to, to be read as text.
fn text_type(dialect: Dialect) -> &'static str {
    if dialect.is_mysql() {
        "CHAR(40)"
    } else {
        "VARCHAR(40)"
    }
}

const DELETE_ROW: &str =
    "DELETE FROM DATABASECHANGELOG WHERE ID = $1 AND AUTHOR = $2 AND FILENAME = $3";
const CLEAR_LOCK: &str = "UPDATE DATABASECHANGELOGLOCK SET LOCKED = FALSE, LOCKEDBY = NULL, LOCKGRANTED = NULL WHERE ID = 1";
/// The lock-table row that names the changeset running outside a transaction (MySQL).
const IN_PROGRESS_ID: i64 = 2;
/// What the mark says the runner was doing, before the changeset's `file::id::author`.
const APPLYING: &str = "applying";
const ROLLING_BACK: &str = "rolling-back";
/// LOCKEDBY's width: a longer mark is cut, and then matched by its start.
const LOCKED_BY_WIDTH: usize = 255;

pub struct SqlStore<'d> {
    db: &'d mut dyn Sql,
}

impl<'d> SqlStore<'d> {
    pub fn new(db: &'d mut dyn Sql) -> Self {
        SqlStore { db }
    }

    fn table_exists(&mut self, name: &str) -> Result<bool, DbError> {
        let sql = match self.db.dialect() {
            Dialect::Postgresql => {
                "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = current_schema() AND table_name = $1"
            }
            Dialect::Sqlite => {
                "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND lower(name) = $1"
            }
            Dialect::Mysql | Dialect::Mariadb => {
                "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = DATABASE() AND table_type = 'BASE TABLE' AND lower(table_name) = $1"
            }
        };
        Ok(self.count(sql, &[Value::from(name)])? > 0)
    }

    fn count(&mut self, sql: &str, params: &[Value]) -> Result<i64, DbError> {
        Ok(self
            .db
            .query(sql, params)?
            .rows
            .first()
            .and_then(|r| r.first())
            .and_then(Value::as_integer)
            .unwrap_or(0))
    }

    fn statements(&mut self, changes: &[Change]) -> Result<Vec<String>, DbError> {
        let dialect = self.db.dialect();
        let mut out = vec![];
        for change in changes {
            if let Some(rebuild) = rebuild_of(change, dialect) {
                let plan = rebuild.map_err(DbError::Invalid)?.plan(self.db)?;
                out.extend(plan.map(|plan| plan.statements).unwrap_or_default());
                continue;
            }
            let statements = match change {
                Change::LoadData(load) if dialect != Dialect::Postgresql => {
                    let booleans = self.boolean_columns(load.schema.as_deref(), &load.table)?;
                    load.statements_into(dialect, &booleans)
                }
                Change::Structured(Structured::Attributes(change)) if dialect.is_mysql() => {
                    match change.drops_foreign_keys_of() {
                        Some((schema, table)) => {
                            let keys = self.foreign_keys(schema, table)?;
                            Ok(change.drop_foreign_keys(&keys))
                        }
                        None => change.statements(dialect),
                    }
                }
                _ => change.statements(dialect),
            };
            out.extend(statements.map_err(DbError::Invalid)?);
        }
        Ok(out)
    }

    /// A changeset that rebuilds an SQLite table: each change's statements are read from the
    /// database as the change before it left it, and all run in one transaction with the
    /// history row (whatever `runInTransaction` says: a half-done rebuild would lose the table).
    /// Foreign keys are off meanwhile, or dropping the table would fire its children's ON DELETE
    /// actions; SQLite ignores that pragma inside a transaction, so it is set around it.
    fn run_rebuilding(&mut self, changes: &[Change], record: &Record<'_>) -> Result<(), DbError> {
        let enforced = self.count("PRAGMA foreign_keys", &[])? == 1;
        if enforced {
            self.db.batch("PRAGMA foreign_keys = OFF")?;
        }
        self.db.batch("BEGIN")?;
        let result = self.run_each(changes, record);
        let ended = commit_or_roll_back(self.db, result);
        if enforced {
            self.db.batch("PRAGMA foreign_keys = ON")?;
        }
        ended
    }

    fn run_each(&mut self, changes: &[Change], record: &Record<'_>) -> Result<(), DbError> {
        for change in changes {
            if let Some(rebuild) = rebuild_of(change, self.db.dialect()) {
                let rebuild = rebuild.map_err(DbError::Invalid)?;
                if let Some(plan) = rebuild.plan(self.db)? {
                    for statement in &plan.statements {
                        self.db.batch(statement)?;
                    }
                    rebuild.verify(&plan, self.db)?;
                }
                continue;
            }
            for statement in self.statements(std::slice::from_ref(change))? {
                self.db.batch(&statement)?;
            }
        }
        self.record(record)
    }

    /// The names of a MySQL table's foreign keys.
    fn foreign_keys(&mut self, schema: Option<&str>, table: &str) -> Result<Vec<String>, DbError> {
        let rows = self.db.query("SELECT CONSTRAINT_NAME FROM information_schema.REFERENTIAL_CONSTRAINTS WHERE CONSTRAINT_SCHEMA = COALESCE($2, DATABASE()) AND TABLE_NAME = $1 ORDER BY CONSTRAINT_NAME", &[Value::from(table), Value::from(schema)])?;
        Ok(rows.rows.into_iter().flatten().filter_map(text).collect())
    }

    /// The BOOLEAN columns of a MySQL table (TINYINT(1)) or an SQLite one.
    fn boolean_columns(
        &mut self,
        schema: Option<&str>,
        table: &str,
    ) -> Result<Vec<String>, DbError> {
        let rows = if self.db.dialect() == Dialect::Sqlite {
            self.db.query(
                "SELECT name FROM pragma_table_info($1) WHERE upper(type) = 'BOOLEAN'",
                &[Value::from(table)],
            )?
        } else {
            self.db.query("SELECT column_name FROM information_schema.columns WHERE table_schema = COALESCE($2, DATABASE()) AND lower(table_name) = $1 AND column_type = 'tinyint(1)'", &[Value::Text(table.to_lowercase()), Value::from(schema)])?
        };
        Ok(rows.rows.into_iter().flatten().filter_map(text).collect())
    }

    fn record(&mut self, record: &Record<'_>) -> Result<(), DbError> {
        let (sql, params) = record_statement(record);
        self.db.execute(sql, &params)?;
        Ok(())
    }

    /// With the advisory lock held: takes the lock row, or says who holds it.
    fn claim_lock_row(&mut self, me: &str) -> Result<LockAttempt, DbError> {
        if !self.table_exists("databasechangeloglock")? {
            self.db.batch(create_lock(self.db.dialect()))?;
        }
        self.db.execute("INSERT INTO DATABASECHANGELOGLOCK (ID, LOCKED) SELECT 1, FALSE WHERE NOT EXISTS (SELECT 1 FROM DATABASECHANGELOGLOCK WHERE ID = 1)", &[])?;
        let mut took_over = None;
        if let Some((by, since)) = self.lock_holder()? {
            if !by.starts_with(LOCKED_BY_PREFIX) {
                return Ok(LockAttempt::Held { by, since });
            }
            // We hold the advisory lock, so the Lockstep runner that committed this row is gone.
            self.db.execute(CLEAR_LOCK, &[])?;
            took_over = Some((by, since));
        }
        let claim = "UPDATE DATABASECHANGELOGLOCK SET LOCKED = TRUE, LOCKEDBY = $1, LOCKGRANTED = CURRENT_TIMESTAMP WHERE ID = 1 AND LOCKED = FALSE";
        let claimed = match self.db.dialect() {
            Dialect::Sqlite => self.db.execute(claim, &[Value::from(me)])?,
            _ => self.db.hold(claim, &[Value::from(me)])?,
        };
        if claimed == 1 {
            return Ok(match took_over {
                Some((by, since)) => LockAttempt::TookOver {
                    by,
                    since,
                    why: "that runner is no longer connected",
                },
                None => LockAttempt::Acquired,
            });
        }
        // Liquibase locked it between our read and our claim.
        self.db.release_held()?;
        let (by, since) = self
            .lock_holder()?
            .unwrap_or_else(|| ("(unknown)".into(), "(unknown)".into()));
        Ok(LockAttempt::Held { by, since })
    }

    /// Runs `statements` outside a transaction (MySQL, where DDL commits by itself), with the
    /// changeset named in the lock table until its history row is written.
    fn run_marked(&mut self, statements: &[String], record: &Record<'_>) -> Result<(), DbError> {
        let ((filename, id, author), rollback) = record.changeset();
        let doing = if rollback { ROLLING_BACK } else { APPLYING };
        let mark: String = format!("{doing} {filename}::{id}::{author}")
            .chars()
            .take(LOCKED_BY_WIDTH)
            .collect();
        self.db.execute(
            "REPLACE INTO DATABASECHANGELOGLOCK (ID, LOCKED, LOCKGRANTED, LOCKEDBY) VALUES ($1, FALSE, CURRENT_TIMESTAMP, $2)",
            &[Value::Integer(IN_PROGRESS_ID), Value::Text(mark)],
        )?;
        for (index, statement) in statements.iter().enumerate() {
            if let Err(error) = self.db.batch(statement) {
                // MySQL's DDL statements are atomic: a first statement that failed changed
                // nothing. After a later one, the changeset is half-done and the mark stays.
                // If even the mark cannot be cleared, it stays and the next run asks for a look:
                // the statement's own error is the one to report.
                if index == 0 {
                    self.clear_in_progress().ok();
                }
                return Err(error);
            }
        }
        self.record(record)?;
        self.clear_in_progress()?;
        Ok(())
    }

    fn clear_in_progress(&mut self) -> Result<u64, DbError> {
        self.db.execute(
            "DELETE FROM DATABASECHANGELOGLOCK WHERE ID = $1",
            &[Value::Integer(IN_PROGRESS_ID)],
        )
    }

    /// With the lock just taken: refuses to go on if a runner stopped in the middle of a
    /// changeset that ran outside a transaction; a mark whose changeset did finish is cleared.
    fn check_interrupted(&mut self) -> Result<(), DbError> {
        let sql = format!(
            "SELECT LOCKEDBY, CAST(LOCKGRANTED AS {}) FROM DATABASECHANGELOGLOCK WHERE ID = $1",
            text_type(self.db.dialect())
        );
        let rows = self.db.query(&sql, &[Value::Integer(IN_PROGRESS_ID)])?;
        let Some(mut row) = rows.rows.into_iter().next().map(Vec::into_iter) else {
            return Ok(());
        };
        let mark = row.next().and_then(text).unwrap_or_default();
        let since = row.next().and_then(text).unwrap_or_default();
        let (rollback, key) = match mark.split_once(' ') {
            Some((ROLLING_BACK, key)) => (true, key.to_string()),
            Some((_, key)) => (false, key.to_string()),
            None => (false, mark.clone()),
        };
        let cut = mark.chars().count() == LOCKED_BY_WIDTH;
        let recorded = self.history()?.iter().any(|row| {
            let (filename, id, author) = row.key();
            let full = format!("{filename}::{id}::{author}");
            if cut {
                full.starts_with(&key)
            } else {
                full == key
            }
        });
        if recorded != rollback {
            self.clear_in_progress()?;
            return Ok(());
        }
        Err(interrupted(
            &key,
            rollback,
            &since,
            "MySQL commits each DDL statement by itself",
        ))
    }

    /// Who holds the committed lock row, and since when; `None` when it is not locked.
    fn lock_holder(&mut self) -> Result<Option<(String, String)>, DbError> {
        let sql = format!(
            "SELECT LOCKED, LOCKEDBY, CAST(LOCKGRANTED AS {}) FROM DATABASECHANGELOGLOCK WHERE ID = 1",
            text_type(self.db.dialect())
        );
        let rows = self.db.query(&sql, &[])?;
        let mut row = rows.rows.into_iter().next().unwrap_or_default().into_iter();
        let locked = matches!(row.next(), Some(Value::Boolean(true) | Value::Integer(1)));
        if !locked {
            return Ok(None);
        }
        let mut field = || {
            row.next()
                .and_then(text)
                .unwrap_or_else(|| "(unknown)".into())
        };
        Ok(Some((field(), field())))
    }
}

/// Whether MySQL commits `statement` by itself (DDL and the like): anything but a data change
/// or a query, judged by its first word after comments.
fn commits_by_itself(statement: &str) -> bool {
    let mut rest = statement.trim_start();
    loop {
        if let Some(after) = rest.strip_prefix("--").or_else(|| rest.strip_prefix('#')) {
            rest = after
                .split_once('\n')
                .map_or("", |(_, next)| next)
                .trim_start();
        } else if let Some(after) = rest.strip_prefix("/*") {
            rest = after
                .split_once("*/")
                .map_or("", |(_, next)| next)
                .trim_start();
        } else {
            break;
        }
    }
    let word: String = rest
        .chars()
        .take_while(char::is_ascii_alphabetic)
        .collect::<String>()
        .to_uppercase();
    !matches!(
        word.as_str(),
        "INSERT" | "UPDATE" | "DELETE" | "REPLACE" | "SELECT" | "WITH" | ""
    )
}

/// The rebuild an SQLite change needs, if it needs one.
fn rebuild_of(change: &Change, dialect: Dialect) -> Option<Result<Rebuild, String>> {
    match change {
        Change::Structured(change) if dialect == Dialect::Sqlite => change.sqlite_rebuild(),
        _ => None,
    }
}

fn text(value: Value) -> Option<String> {
    match value {
        Value::Null => None,
        Value::Text(t) => Some(t),
        other => Some(format!("{other:?}")),
    }
}

impl Store for SqlStore<'_> {
    fn dbms(&self) -> &'static str {
        self.db.dialect().dbms_name()
    }

    fn check(&self, change: &Change) -> Result<(), String> {
        match rebuild_of(change, self.db.dialect()) {
            Some(rebuild) => rebuild.map(drop),
            None => change.statements(self.db.dialect()).map(drop),
        }
    }

    fn each_history(
        &mut self,
        each: &mut dyn FnMut(HistoryRow) -> Result<(), DbError>,
    ) -> Result<(), DbError> {
        if !self.table_exists("databasechangelog")? {
            return Ok(());
        }
        let sql = format!(
            "SELECT ID, AUTHOR, FILENAME, CAST(DATEEXECUTED AS {}), ORDEREXECUTED, EXECTYPE, MD5SUM, DESCRIPTION, TAG, DEPLOYMENT_ID FROM DATABASECHANGELOG ORDER BY DATEEXECUTED, ORDEREXECUTED",
            text_type(self.db.dialect())
        );
        self.db.query_each(&sql, &[], &mut |row| {
            let columns: [Value; 10] = row.try_into().map_err(|row: Vec<Value>| {
                DbError::Invalid(format!(
                    "a DATABASECHANGELOG query returned {} columns instead of 10",
                    row.len()
                ))
            })?;
            let [
                id,
                author,
                filename,
                date_executed,
                order_executed,
                exec_type,
                md5sum,
                description,
                tag,
                deployment_id,
            ] = columns;
            each(HistoryRow {
                id: text(id).unwrap_or_default(),
                author: text(author).unwrap_or_default(),
                filename: text(filename).unwrap_or_default(),
                date_executed: text(date_executed).unwrap_or_default(),
                order_executed: order_executed.as_integer().unwrap_or_default(),
                exec_type: text(exec_type).unwrap_or_default(),
                md5sum: text(md5sum),
                description: text(description),
                tag: text(tag),
                deployment_id: text(deployment_id),
            })
        })
    }

    fn each_ran(
        &mut self,
        order: RowOrder,
        each: &mut dyn FnMut(RanRow) -> Result<(), DbError>,
    ) -> Result<(), DbError> {
        if !self.table_exists("databasechangelog")? {
            return Ok(());
        }
        // DATABASECHANGELOG has no index: ordering it is a sort of the whole table before the
        // first row comes back.
        let sql = match order {
            RowOrder::Execution => {
                "SELECT ID, AUTHOR, FILENAME, MD5SUM FROM DATABASECHANGELOG ORDER BY DATEEXECUTED, ORDEREXECUTED"
            }
            RowOrder::Any => "SELECT ID, AUTHOR, FILENAME, MD5SUM FROM DATABASECHANGELOG",
        };
        self.db.query_each(sql, &[], &mut |row| {
            let [id, author, filename, md5sum]: [Value; 4] =
                row.try_into().map_err(|row: Vec<Value>| {
                    DbError::Invalid(format!(
                        "a DATABASECHANGELOG query returned {} columns instead of 4",
                        row.len()
                    ))
                })?;
            each(RanRow {
                id: text(id).unwrap_or_default(),
                author: text(author).unwrap_or_default(),
                filename: text(filename).unwrap_or_default(),
                md5sum: text(md5sum),
            })
        })
    }

    fn ensure_history(&mut self) -> Result<(), DbError> {
        if !self.table_exists("databasechangelog")? {
            self.db.batch(&create_changelog(self.db.dialect()))?;
        }
        Ok(())
    }

    fn run(
        &mut self,
        changes: &[Change],
        record: &Record<'_>,
        atomic: bool,
    ) -> Result<(), DbError> {
        if changes
            .iter()
            .any(|change| rebuild_of(change, self.db.dialect()).is_some())
        {
            return self.run_rebuilding(changes, record);
        }
        let statements = self.statements(changes)?;
        if self.db.dialect().is_mysql() && statements.iter().any(|s| commits_by_itself(s)) {
            return self.run_marked(&statements, record);
        }
        if atomic {
            let (sql, params) = record_statement(record);
            return self.db.transaction(&statements, (sql, &params));
        }
        for statement in &statements {
            self.db.batch(statement)?;
        }
        self.record(record)
    }

    fn holds(&mut self, check: &Precondition) -> Result<bool, DbError> {
        let dialect = self.db.dialect();
        let lower = |name: &str| Value::Text(name.to_lowercase());
        Ok(match check {
            Precondition::SqlCheck { expected, sql } => {
                let value = self
                    .db
                    .query(sql, &[])?
                    .rows
                    .first()
                    .and_then(|r| r.first())
                    .cloned()
                    .unwrap_or(Value::Null);
                let actual = match value {
                    Value::Integer(i) => i.to_string(),
                    Value::Text(t) => t,
                    Value::Boolean(b) => b.to_string(),
                    Value::Float(f) => f.to_string(),
                    Value::Null => "null".into(),
                };
                actual.trim() == expected.trim()
            }
            Precondition::TableExists { table, .. } => self.table_exists(&table.to_lowercase())?,
            Precondition::ViewExists { view, .. } => {
                let sql = match dialect {
                    Dialect::Postgresql => {
                        "SELECT COUNT(*) FROM information_schema.views WHERE table_schema = current_schema() AND table_name = $1"
                    }
                    Dialect::Sqlite => {
                        "SELECT COUNT(*) FROM sqlite_master WHERE type = 'view' AND lower(name) = $1"
                    }
                    Dialect::Mysql | Dialect::Mariadb => {
                        "SELECT COUNT(*) FROM information_schema.views WHERE table_schema = DATABASE() AND lower(table_name) = $1"
                    }
                };
                self.count(sql, &[lower(view)])? > 0
            }
            Precondition::ColumnExists { table, column } => {
                let sql = match dialect {
                    Dialect::Postgresql => {
                        "SELECT COUNT(*) FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = $1 AND column_name = $2"
                    }
                    Dialect::Sqlite => {
                        "SELECT COUNT(*) FROM pragma_table_info($1) WHERE lower(name) = $2"
                    }
                    Dialect::Mysql | Dialect::Mariadb => {
                        "SELECT COUNT(*) FROM information_schema.columns WHERE table_schema = DATABASE() AND lower(table_name) = $1 AND lower(column_name) = $2"
                    }
                };
                self.count(sql, &[lower(table), lower(column)])? > 0
            }
            Precondition::IndexExists { index } => {
                let sql = match dialect {
                    Dialect::Postgresql => {
                        "SELECT COUNT(*) FROM pg_indexes WHERE schemaname = current_schema() AND indexname = $1"
                    }
                    Dialect::Sqlite => {
                        "SELECT COUNT(*) FROM sqlite_master WHERE type = 'index' AND lower(name) = $1"
                    }
                    Dialect::Mysql | Dialect::Mariadb => {
                        "SELECT COUNT(*) FROM information_schema.statistics WHERE table_schema = DATABASE() AND lower(index_name) = $1"
                    }
                };
                self.count(sql, &[lower(index)])? > 0
            }
            Precondition::RowCount { table, expected } => {
                self.count(&format!("SELECT COUNT(*) FROM {}", identifier(table)?), &[])?
                    == *expected
            }
            Precondition::TableIsEmpty { table } => {
                self.count(&format!("SELECT COUNT(*) FROM {}", identifier(table)?), &[])? == 0
            }
            other => {
                return Err(DbError::Invalid(format!(
                    "precondition `{}` cannot be checked on {}",
                    other.name(),
                    dialect.dbms_name()
                )));
            }
        })
    }

    fn set_checksums(&mut self, updates: &[(&HistoryRow, String)]) -> Result<(), DbError> {
        self.db.batch("BEGIN")?;
        for (row, checksum) in updates {
            self.db.execute("UPDATE DATABASECHANGELOG SET MD5SUM = $1 WHERE ID = $2 AND AUTHOR = $3 AND FILENAME = $4", &[Value::Text(checksum.clone()), Value::from(row.id.as_str()), Value::from(row.author.as_str()), Value::from(row.filename.as_str())])?;
        }
        self.db.batch("COMMIT")
    }

    fn set_tag(&mut self, row: &HistoryRow, tag: &str) -> Result<(), DbError> {
        self.db.execute(
            "UPDATE DATABASECHANGELOG SET TAG = $1 WHERE ID = $2 AND AUTHOR = $3 AND FILENAME = $4",
            &[
                Value::from(tag),
                Value::from(row.id.as_str()),
                Value::from(row.author.as_str()),
                Value::from(row.filename.as_str()),
            ],
        )?;
        Ok(())
    }

    fn try_lock(&mut self, me: &str) -> Result<LockAttempt, DbError> {
        if !self.db.try_advisory_lock(ADVISORY_KEY)? {
            return Ok(LockAttempt::HeldByRunner);
        }
        let attempt = self.claim_lock_row(me);
        if !matches!(
            attempt,
            Ok(LockAttempt::Acquired | LockAttempt::TookOver { .. })
        ) {
            self.db.advisory_unlock(ADVISORY_KEY)?;
        } else if self.db.dialect().is_mysql()
            && let Err(interrupted) = self.check_interrupted()
        {
            self.unlock(me)?;
            return Err(interrupted);
        }
        attempt
    }

    fn unlock(&mut self, _me: &str) -> Result<(), DbError> {
        match self.db.dialect() {
            Dialect::Sqlite => {
                self.db.execute(CLEAR_LOCK, &[])?;
            }
            _ => self.db.release_held()?,
        }
        self.db.advisory_unlock(ADVISORY_KEY)
    }

    fn release_locks(&mut self) -> Result<(), DbError> {
        if self.table_exists("databasechangeloglock")? {
            self.db.execute(CLEAR_LOCK, &[])?;
            self.clear_in_progress()?;
        }
        Ok(())
    }

    fn script_setup(&mut self) -> Result<Vec<String>, DbError> {
        Ok(if self.table_exists("databasechangelog")? {
            vec![]
        } else {
            vec![format!("{};", create_changelog(self.db.dialect()))]
        })
    }

    fn script(&mut self, changes: &[Change], record: &Record<'_>) -> Result<Vec<String>, DbError> {
        let mut out = vec![];
        for change in changes {
            // Liquibase ends each statement with the change's delimiter, unless it already does.
            let delimiter = match change {
                Change::Sql(sql) | Change::SqlFile(SqlFile { sql, .. }) => {
                    sql.settings.end_delimiter.as_deref().unwrap_or(";")
                }
                _ => ";",
            };
            for statement in self.statements(std::slice::from_ref(change))? {
                out.push(if statement.trim_end().ends_with(delimiter) {
                    statement
                } else {
                    format!("{statement}{delimiter}")
                });
            }
        }
        let (sql, params) = record_statement(record);
        out.push(format!("{};", with_literals(sql, &params)));
        Ok(out)
    }
}

/// The statement that writes `record`: an INSERT, an UPDATE keyed by ID, AUTHOR and FILENAME
/// for a re-run, or a DELETE. Columns as Liquibase 4.28 writes them.
fn record_statement(record: &Record<'_>) -> (&'static str, Vec<Value>) {
    let row = match record {
        Record::Delete(row) => {
            return (
                DELETE_ROW,
                vec![
                    Value::from(row.id.as_str()),
                    Value::from(row.author.as_str()),
                    Value::from(row.filename.as_str()),
                ],
            );
        }
        Record::Insert(row) | Record::Update(row) => row,
    };
    let NewRow {
        id,
        author,
        filename,
        order_executed,
        exec_type,
        md5sum,
        description,
        comments,
        tag,
        contexts,
        labels,
        liquibase,
        deployment_id,
    } = row;
    let params = vec![
        Value::Integer(*order_executed),
        Value::Text(md5sum.clone()),
        Value::Text(description.clone()),
        Value::Text(comments.clone()),
        Value::from(*exec_type),
        Value::from(contexts.as_deref()),
        Value::from(labels.as_deref()),
        Value::from(*liquibase),
        Value::Text(deployment_id.clone()),
        Value::Text(id.clone()),
        Value::Text(author.clone()),
        Value::Text(filename.clone()),
        Value::from(tag.as_deref()),
    ];
    let sql = if matches!(record, Record::Update(_)) {
        "UPDATE DATABASECHANGELOG SET DATEEXECUTED = CURRENT_TIMESTAMP, ORDEREXECUTED = $1, MD5SUM = $2, DESCRIPTION = $3, COMMENTS = $4, EXECTYPE = $5, CONTEXTS = $6, LABELS = $7, LIQUIBASE = $8, DEPLOYMENT_ID = $9, TAG = $13 WHERE ID = $10 AND AUTHOR = $11 AND FILENAME = $12"
    } else {
        "INSERT INTO DATABASECHANGELOG (ORDEREXECUTED, MD5SUM, DESCRIPTION, COMMENTS, EXECTYPE, CONTEXTS, LABELS, LIQUIBASE, DEPLOYMENT_ID, ID, AUTHOR, FILENAME, TAG, DATEEXECUTED) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, CURRENT_TIMESTAMP)"
    };
    (sql, params)
}

/// `sql` with each `$n` replaced by its parameter as a SQL literal, for printing.
fn with_literals(sql: &str, params: &[Value]) -> String {
    let mut out = sql.to_string();
    // Highest first, so `$1` does not eat the start of `$12`.
    for (index, value) in params.iter().enumerate().rev() {
        let literal = match value {
            Value::Null => "NULL".to_string(),
            Value::Boolean(b) => b.to_string().to_uppercase(),
            Value::Integer(i) => i.to_string(),
            Value::Float(f) => f.to_string(),
            Value::Text(t) => format!("'{}'", t.replace('\'', "''")),
        };
        out = out.replace(&format!("${}", index + 1), &literal);
    }
    out
}

/// A table name to put into SQL: letters, digits, `_` and one optional `schema.` prefix only.
fn identifier(name: &str) -> Result<&str, DbError> {
    let ok = !name.is_empty()
        && name.split('.').count() <= 2
        && name.split('.').all(|part| {
            !part.is_empty() && part.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        });
    if ok {
        Ok(name)
    } else {
        Err(DbError::Invalid(format!("`{name}` is not a table name")))
    }
}
