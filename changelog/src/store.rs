//! What the engine needs from a database: its tracking history, its lock, and a way to run
//! changes. [`crate::sql_store`] keeps Liquibase's tables on PostgreSQL and SQLite;
//! [`crate::mongo_store`] keeps liquibase-mongodb's collections. Everything else (what is pending,
//! validation, rollback plans, tags) is the engine's and is the same for all of them.

use crate::db::DbError;
use crate::model::{Change, Precondition};

/// The lock holder names Lockstep writes start with this, so a stale one can be told from
/// Liquibase's.
pub const LOCKED_BY_PREFIX: &str = "lockstep ";

/// One row (or document) of DATABASECHANGELOG, as read back.
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryRow {
    pub id: String,
    pub author: String,
    pub filename: String,
    pub date_executed: String,
    pub order_executed: i64,
    pub exec_type: String,
    pub md5sum: Option<String>,
    pub description: Option<String>,
    pub tag: Option<String>,
    pub deployment_id: Option<String>,
}

impl HistoryRow {
    /// The identity triple, in the order the engine's maps use.
    pub fn key(&self) -> (&str, &str, &str) {
        (&self.filename, &self.id, &self.author)
    }
}

/// What telling which changesets are pending needs of a history row: its identity and checksum.
#[derive(Debug, Clone, PartialEq)]
pub struct RanRow {
    pub id: String,
    pub author: String,
    pub filename: String,
    pub md5sum: Option<String>,
}

/// The order a store hands out history rows in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowOrder {
    /// As they ran: DATEEXECUTED, then ORDEREXECUTED.
    Execution,
    /// Whatever order is cheapest to read (no server-side sort of 100,000 rows).
    Any,
}

impl RanRow {
    /// The identity triple, in the order the engine's maps use.
    pub fn key(&self) -> (&str, &str, &str) {
        (&self.filename, &self.id, &self.author)
    }
}

/// A row to write, with every column Liquibase 4.28 fills in. The date is the store's to set.
#[derive(Debug, Clone, PartialEq)]
pub struct NewRow {
    pub id: String,
    pub author: String,
    pub filename: String,
    pub order_executed: i64,
    pub exec_type: &'static str,
    pub md5sum: String,
    pub description: String,
    pub comments: String,
    pub tag: Option<String>,
    pub contexts: Option<String>,
    pub labels: Option<String>,
    pub liquibase: &'static str,
    pub deployment_id: String,
}

/// What a run of changes does to the history.
#[derive(Debug, Clone, PartialEq)]
pub enum Record<'a> {
    Insert(NewRow),
    /// A re-run: the row with the same identity is rewritten.
    Update(NewRow),
    /// A rollback: the row goes.
    Delete(&'a HistoryRow),
}

impl Record<'_> {
    /// The changeset it records, as (FILENAME, ID, AUTHOR), and whether it is a rollback.
    pub fn changeset(&self) -> ((&str, &str, &str), bool) {
        match self {
            Record::Insert(row) | Record::Update(row) => {
                ((&row.filename, &row.id, &row.author), false)
            }
            Record::Delete(row) => (row.key(), true),
        }
    }
}

/// The refusal a runner gives when it finds that another stopped in the middle of `changeset`
/// (`file::id::author`), which ran outside a transaction because `why`.
pub fn interrupted(changeset: &str, rollback: bool, since: &str, why: &str) -> DbError {
    let (done, doing) = if rollback {
        ("rolled back", "rolling back")
    } else {
        ("applied", "applying")
    };
    DbError::Conflict(format!(
        "changeset {changeset} may be half-{done}: a runner stopped while {doing} it (since {since}), and {why}; it is not run again by itself\n  help: check what of it is in the database and finish or undo it by hand; then `lockstep db release-locks` clears the mark, and the next update runs the changeset again"
    ))
}

/// The outcome of one try at the changelog lock.
#[derive(Debug, Clone, PartialEq)]
pub enum LockAttempt {
    Acquired,
    /// Acquired by taking over a lock its holder, another Lockstep runner, can no longer hold.
    TookOver {
        by: String,
        since: String,
        /// How Lockstep knows the holder is gone.
        why: &'static str,
    },
    /// Held by someone who may still be working (Liquibase, or a runner that is alive).
    Held {
        by: String,
        since: String,
    },
    /// Held by a Lockstep runner that is still connected.
    HeldByRunner,
}

pub trait Store {
    /// The name `dbms` filters and preconditions compare with.
    fn dbms(&self) -> &'static str;
    /// Whether `change` can run here; the error says why not. Checked before the first write.
    fn check(&self, change: &Change) -> Result<(), String>;
    /// Hands each history row to `each` as it is read, in execution order (nothing when the
    /// history does not exist yet), so that a large history is never held whole.
    fn each_history(
        &mut self,
        each: &mut dyn FnMut(HistoryRow) -> Result<(), DbError>,
    ) -> Result<(), DbError>;
    /// Each history row's identity and checksum, in `order`: what `status` needs. A store
    /// overrides it to read less than whole rows (on 10,000 rows, formatting the dates is most
    /// of the query); by default it is [`Store::each_history`], cut down, always in execution
    /// order.
    fn each_ran(
        &mut self,
        _order: RowOrder,
        each: &mut dyn FnMut(RanRow) -> Result<(), DbError>,
    ) -> Result<(), DbError> {
        self.each_history(&mut |row| {
            each(RanRow {
                id: row.id,
                author: row.author,
                filename: row.filename,
                md5sum: row.md5sum,
            })
        })
    }
    /// The whole history, in execution order.
    fn history(&mut self) -> Result<Vec<HistoryRow>, DbError> {
        let mut history = vec![];
        self.each_history(&mut |row| {
            history.push(row);
            Ok(())
        })?;
        Ok(history)
    }
    /// Creates the history table or collection if it is missing.
    fn ensure_history(&mut self) -> Result<(), DbError>;
    /// Runs `changes` in order and then `record`, as one transaction when `atomic` and the
    /// database has transactions.
    fn run(&mut self, changes: &[Change], record: &Record<'_>, atomic: bool)
    -> Result<(), DbError>;
    /// Whether a precondition that reads the database holds. The engine itself evaluates
    /// `and`/`or`/`not`, `dbms` and `changeSetExecuted`.
    fn holds(&mut self, check: &Precondition) -> Result<bool, DbError>;
    /// Rewrites the checksums of ran rows (all or nothing where the database allows).
    fn set_checksums(&mut self, updates: &[(&HistoryRow, String)]) -> Result<(), DbError>;
    fn set_tag(&mut self, row: &HistoryRow, tag: &str) -> Result<(), DbError>;
    /// One try at the changelog lock for `me`; never waits.
    fn try_lock(&mut self, me: &str) -> Result<LockAttempt, DbError>;
    fn unlock(&mut self, me: &str) -> Result<(), DbError>;
    /// Clears the lock whoever holds it (`release-locks`).
    fn release_locks(&mut self) -> Result<(), DbError>;
    /// What `update-sql` prints first: the statements that would create the history, if missing.
    /// An error (`Invalid`) where the database has no such script.
    fn script_setup(&mut self) -> Result<Vec<String>, DbError>;
    /// What `update-sql` / `rollback-sql` print for a changeset: the statements of `changes` and
    /// of `record`. An error (`Invalid`) where the database has no such script.
    fn script(&mut self, changes: &[Change], record: &Record<'_>) -> Result<Vec<String>, DbError>;
}
