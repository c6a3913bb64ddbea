//! Applying and rolling back a changelog on a SQL database, with Liquibase's tracking tables.
//!
//! Invariants, where Lockstep is stricter than Liquibase 4.28:
//! - Everything is validated (checksums of ran changesets, rollbacks a rollback needs) before
//!   the first write; a problem means nothing was written.
//! - A changeset and its DATABASECHANGELOG row commit in one transaction (when the changeset runs
//!   in a transaction), so a failure leaves neither.
//! - The DATABASECHANGELOGLOCK row is paired with a session advisory lock (PostgreSQL
//!   `pg_try_advisory_lock`; for SQLite the host's file lock). A runner that dies releases the
//!   advisory lock with its session, so a lock row it left behind is recognised as stale and taken
//!   over, with a note saying so. A row held by Liquibase itself is waited for.

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::checksum::{CheckSum, ChecksumVersion};
use crate::db::{DbError, Dialect, Sql, Value};
use crate::filters;
use crate::model::*;
use crate::statements;

/// What DATABASECHANGELOG.LIQUIBASE holds: the Liquibase release whose format Lockstep writes.
pub const LIQUIBASE_VERSION: &str = "4.28.0";
/// The advisory-lock key: "Lockstep" in ASCII.
const ADVISORY_KEY: i64 = 0x4c6f_636b_7374_6570;
/// LOCKEDBY values Lockstep writes start with this, so a stale one can be told from Liquibase's.
const LOCKED_BY_PREFIX: &str = "lockstep ";

const CREATE_CHANGELOG: &str = "CREATE TABLE DATABASECHANGELOG (ID VARCHAR(255) NOT NULL, AUTHOR VARCHAR(255) NOT NULL, FILENAME VARCHAR(255) NOT NULL, DATEEXECUTED TIMESTAMP NOT NULL, ORDEREXECUTED INTEGER NOT NULL, EXECTYPE VARCHAR(10) NOT NULL, MD5SUM VARCHAR(35), DESCRIPTION VARCHAR(255), COMMENTS VARCHAR(255), TAG VARCHAR(255), LIQUIBASE VARCHAR(20), CONTEXTS VARCHAR(255), LABELS VARCHAR(255), DEPLOYMENT_ID VARCHAR(10))";
const CREATE_LOCK: &str = "CREATE TABLE DATABASECHANGELOGLOCK (ID INTEGER NOT NULL, LOCKED BOOLEAN NOT NULL, LOCKGRANTED TIMESTAMP, LOCKEDBY VARCHAR(255), CONSTRAINT DATABASECHANGELOGLOCK_PKEY PRIMARY KEY (ID))";

/// One row of DATABASECHANGELOG.
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
    fn key(&self) -> (&str, &str, &str) {
        (&self.filename, &self.id, &self.author)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// Nothing was written.
    #[error("nothing was changed, because:\n{}", .0.join("\n"))]
    Invalid(Vec<String>),
    /// Changesets before this one stay applied; this one left nothing behind (in a transaction).
    #[error("changeset {changeset} failed: {error} ({applied} changeset(s) before it were applied and stay)")]
    ChangeSetFailed { changeset: String, error: DbError, applied: usize },
    #[error("could not acquire the changelog lock: it is held by {by} since {since}\n  help: if that process is gone for good, run `lockstep db release-locks`")]
    Locked { by: String, since: String },
    #[error("could not acquire the changelog lock: another Lockstep runner holds it and is still connected")]
    HeldByRunner,
    #[error("tag `{tag}` is not in DATABASECHANGELOG (tags there: {known})")]
    UnknownTag { tag: String, known: String },
    #[error("{0}")]
    Db(#[from] DbError),
}

/// Settings of one run of a command.
#[derive(Debug, Clone)]
pub struct RunSettings {
    /// The instance's contexts (`context` in lockstep.yaml), already split.
    pub contexts: Vec<String>,
    pub label_filter: Option<String>,
    /// Who the lock row names, after the `lockstep ` prefix (host, step, execution).
    pub holder: String,
    /// How long to wait for a lock held by someone alive.
    pub lock_wait: Duration,
}

impl Default for RunSettings {
    fn default() -> Self {
        RunSettings { contexts: vec![], label_filter: None, holder: "runner".into(), lock_wait: Duration::from_secs(300) }
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct UpdateReport {
    /// `path::id::author` of each changeset that ran (or was marked ran), in order.
    pub applied: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum RollbackTarget {
    Count(usize),
    Tag(String),
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct RollbackReport {
    pub rolled_back: Vec<String>,
}

/// What to run for one changeset of an update.
struct Pending<'c> {
    changeset: &'c ChangeSet,
    /// Already ran: it re-runs (runAlways / runOnChange) and its row is updated.
    rerun: bool,
}

pub struct Engine<'d> {
    db: &'d mut dyn Sql,
    settings: RunSettings,
    /// Things worth telling the user (a stale lock taken over, checksums upgraded, …).
    pub notes: Vec<String>,
}

fn epoch_millis() -> u128 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis())
}

fn text(value: &Value) -> Option<String> {
    match value {
        Value::Null => None,
        Value::Text(t) => Some(t.clone()),
        other => Some(format!("{other:?}")),
    }
}

impl<'d> Engine<'d> {
    pub fn new(db: &'d mut dyn Sql, settings: RunSettings) -> Self {
        Engine { db, settings, notes: vec![] }
    }

    fn table_exists(&mut self, name: &str) -> Result<bool, DbError> {
        let sql = match self.db.dialect() {
            Dialect::Postgresql => "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = current_schema() AND table_name = $1",
            Dialect::Sqlite => "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND lower(name) = $1",
        };
        let rows = self.db.query(sql, &[Value::from(name)])?;
        Ok(rows.rows.first().and_then(|r| r.first()).and_then(Value::as_integer).unwrap_or(0) > 0)
    }

    /// DATABASECHANGELOG in execution order (empty when the table does not exist yet).
    pub fn history(&mut self) -> Result<Vec<HistoryRow>, EngineError> {
        if !self.table_exists("databasechangelog")? {
            return Ok(vec![]);
        }
        let rows = self.db.query("SELECT ID, AUTHOR, FILENAME, CAST(DATEEXECUTED AS VARCHAR(40)), ORDEREXECUTED, EXECTYPE, MD5SUM, DESCRIPTION, TAG, DEPLOYMENT_ID FROM DATABASECHANGELOG ORDER BY DATEEXECUTED, ORDEREXECUTED", &[])?;
        Ok(rows
            .rows
            .iter()
            .map(|r| HistoryRow {
                id: text(&r[0]).unwrap_or_default(),
                author: text(&r[1]).unwrap_or_default(),
                filename: text(&r[2]).unwrap_or_default(),
                date_executed: text(&r[3]).unwrap_or_default(),
                order_executed: r[4].as_integer().unwrap_or_default(),
                exec_type: text(&r[5]).unwrap_or_default(),
                md5sum: text(&r[6]),
                description: text(&r[7]),
                tag: text(&r[8]),
                deployment_id: text(&r[9]),
            })
            .collect())
    }

    fn selected<'c>(&self, changelog: &'c Changelog) -> impl Iterator<Item = &'c ChangeSet> {
        let dbms = self.db.dialect().dbms_name();
        let (contexts, labels) = (self.settings.contexts.clone(), self.settings.label_filter.clone());
        changelog.changesets.iter().filter(move |cs| {
            !cs.ignore && filters::dbms_matches(cs.dbms.as_deref(), dbms) && filters::context_matches(cs.context.as_deref(), &contexts) && filters::labels_match(labels.as_deref(), cs.labels.as_deref())
        })
    }

    /// The changesets an update would run, and every reason it cannot run.
    fn pending<'c>(&self, changelog: &'c Changelog, history: &[HistoryRow]) -> (Vec<Pending<'c>>, Vec<String>) {
        let ran: HashMap<(&str, &str, &str), &HistoryRow> = history.iter().map(|r| (r.key(), r)).collect();
        let mut pending = vec![];
        let mut problems = vec![];
        for changeset in self.selected(changelog) {
            let Some(row) = ran.get(&(changeset.file.as_str(), changeset.id.as_str(), changeset.author.as_str())) else {
                pending.push(Pending { changeset, rerun: false });
                continue;
            };
            if changeset.run_always {
                pending.push(Pending { changeset, rerun: true });
                continue;
            }
            match checksum_verdict(changeset, row.md5sum.as_deref()) {
                Verdict::Same | Verdict::Accepted => {}
                Verdict::Changed { .. } if changeset.run_on_change => pending.push(Pending { changeset, rerun: true }),
                Verdict::Changed { stored, now } => problems.push(format!(
                    "{}:{}: changeset {} was changed after it ran: its checksum was {stored} and is now {now}\n  help: revert the change, or add `--validCheckSum: {now}` (or `validCheckSum`) to accept it, or `runOnChange:true` to re-run it",
                    changeset.file, changeset.line, changeset.identifier()
                )),
            }
        }
        (pending, problems)
    }

    /// Changesets not yet applied (after filters), in changelog order. Takes no lock.
    pub fn status<'c>(&mut self, changelog: &'c Changelog) -> Result<Vec<&'c ChangeSet>, EngineError> {
        let history = self.history()?;
        let (pending, problems) = self.pending(changelog, &history);
        if !problems.is_empty() {
            return Err(EngineError::Invalid(problems));
        }
        Ok(pending.into_iter().map(|p| p.changeset).collect())
    }

    /// Runs pending changesets in changelog order (at most `count`). With `mark_failed_as_ran`,
    /// a failing changeset is recorded as EXECUTED (Liquibase's mark-next-changeset-ran) before
    /// the error is returned.
    pub fn update(&mut self, changelog: &Changelog, count: Option<usize>, mark_failed_as_ran: bool) -> Result<UpdateReport, EngineError> {
        let history = self.history()?;
        let (pending, problems) = self.pending(changelog, &history);
        if !problems.is_empty() {
            return Err(EngineError::Invalid(problems));
        }
        if pending.is_empty() {
            return Ok(UpdateReport::default());
        }
        self.with_lock(|engine| {
            engine.ensure_changelog_table()?;
            // Another runner may have applied some while we waited for the lock.
            let history = engine.history()?;
            let (pending, problems) = engine.pending(changelog, &history);
            if !problems.is_empty() {
                return Err(EngineError::Invalid(problems));
            }
            engine.upgrade_checksums(changelog, &history)?;
            let deployment_id = format!("{:010}", epoch_millis() % 10_000_000_000);
            // ORDEREXECUTED: max+1, read once, then advanced for each row written.
            let mut last_order = history.iter().map(|r| r.order_executed).max().unwrap_or(0);
            let mut report = UpdateReport::default();
            for step in pending.into_iter().take(count.unwrap_or(usize::MAX)) {
                let order = last_order + 1;
                match engine.apply(step.changeset, step.rerun, order, &deployment_id) {
                    Ok(Applied::Ran | Applied::MarkedRan) => {
                        last_order = order;
                        report.applied.push(step.changeset.identifier());
                    }
                    Ok(Applied::Skipped) => {}
                    Err(error) if !step.changeset.fail_on_error => {
                        engine.notes.push(format!("changeset {} failed and has failOnError:false, so it is skipped (and retried next time): {error}", step.changeset.identifier()));
                    }
                    Err(error) => {
                        if mark_failed_as_ran {
                            engine.write_row(step.changeset, "EXECUTED", step.rerun, order, &deployment_id)?;
                            engine.notes.push(format!("changeset {} failed and was marked as ran", step.changeset.identifier()));
                        }
                        return Err(EngineError::ChangeSetFailed { changeset: step.changeset.identifier(), error, applied: report.applied.len() });
                    }
                }
            }
            Ok(report)
        })
    }

    /// Runs one changeset and writes its row, in one transaction when it runs in one.
    fn apply(&mut self, changeset: &ChangeSet, rerun: bool, order: i64, deployment_id: &str) -> Result<Applied, DbError> {
        if let Some(preconditions) = &changeset.preconditions {
            match self.check_preconditions(preconditions) {
                Ok(true) => {}
                outcome => {
                    let action = if outcome.is_ok() { preconditions.on_fail } else { preconditions.on_error };
                    let why = outcome.err().map_or_else(|| "a precondition does not hold".to_string(), |e| format!("a precondition could not be checked: {e}"));
                    match action {
                        OnPrecondition::Halt => return Err(DbError::Failed(why)),
                        OnPrecondition::Continue => return Ok(Applied::Skipped),
                        OnPrecondition::MarkRan => {
                            self.write_row(changeset, "MARK_RAN", rerun, order, deployment_id)?;
                            return Ok(Applied::MarkedRan);
                        }
                        OnPrecondition::Warn => self.notes.push(format!("changeset {}: {why}; it runs anyway (WARN)", changeset.identifier())),
                    }
                }
            }
        }
        let transactional = changeset.run_in_transaction;
        if transactional {
            self.db.batch("BEGIN")?;
        }
        let result = (|| {
            let dialect = self.db.dialect();
            for change in &changeset.changes {
                for statement in change.statements(dialect).map_err(DbError::Invalid)? {
                    self.db.batch(&statement)?;
                }
            }
            self.write_row(changeset, if rerun { "RERAN" } else { "EXECUTED" }, rerun, order, deployment_id)
        })();
        match result {
            Ok(()) if transactional => self.db.batch("COMMIT").map(|()| Applied::Ran),
            Ok(()) => Ok(Applied::Ran),
            Err(error) => {
                if transactional {
                    self.db.batch("ROLLBACK")?;
                }
                Err(error)
            }
        }
    }

    fn check_preconditions(&mut self, preconditions: &Preconditions) -> Result<bool, DbError> {
        self.all_hold(&preconditions.checks)
    }

    fn all_hold(&mut self, checks: &[Precondition]) -> Result<bool, DbError> {
        for check in checks {
            if !self.holds(check)? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    fn count(&mut self, sql: &str, params: &[Value]) -> Result<i64, DbError> {
        Ok(self.db.query(sql, params)?.rows.first().and_then(|r| r.first()).and_then(Value::as_integer).unwrap_or(0))
    }

    fn holds(&mut self, check: &Precondition) -> Result<bool, DbError> {
        let dialect = self.db.dialect();
        let lower = |name: &str| Value::Text(name.to_lowercase());
        Ok(match check {
            Precondition::SqlCheck { expected, sql } => {
                let value = self.db.query(sql, &[])?.rows.first().and_then(|r| r.first()).cloned().unwrap_or(Value::Null);
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
                    Dialect::Postgresql => "SELECT COUNT(*) FROM information_schema.views WHERE table_schema = current_schema() AND table_name = $1",
                    Dialect::Sqlite => "SELECT COUNT(*) FROM sqlite_master WHERE type = 'view' AND lower(name) = $1",
                };
                self.count(sql, &[lower(view)])? > 0
            }
            Precondition::ColumnExists { table, column } => {
                let sql = match dialect {
                    Dialect::Postgresql => "SELECT COUNT(*) FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = $1 AND column_name = $2",
                    Dialect::Sqlite => "SELECT COUNT(*) FROM pragma_table_info($1) WHERE lower(name) = $2",
                };
                self.count(sql, &[lower(table), lower(column)])? > 0
            }
            Precondition::IndexExists { index } => {
                let sql = match dialect {
                    Dialect::Postgresql => "SELECT COUNT(*) FROM pg_indexes WHERE schemaname = current_schema() AND indexname = $1",
                    Dialect::Sqlite => "SELECT COUNT(*) FROM sqlite_master WHERE type = 'index' AND lower(name) = $1",
                };
                self.count(sql, &[lower(index)])? > 0
            }
            Precondition::RowCount { table, expected } => self.count(&format!("SELECT COUNT(*) FROM {}", identifier(table)?), &[])? == *expected,
            Precondition::TableIsEmpty { table } => self.count(&format!("SELECT COUNT(*) FROM {}", identifier(table)?), &[])? == 0,
            Precondition::ChangeSetExecuted { id, author, file } => {
                self.table_exists("databasechangelog")? && self.count("SELECT COUNT(*) FROM DATABASECHANGELOG WHERE ID = $1 AND AUTHOR = $2 AND FILENAME = $3", &[Value::from(id.as_str()), Value::from(author.as_str()), Value::from(file.as_str())])? > 0
            }
            Precondition::Dbms { dbms } => filters::dbms_matches(Some(dbms), dialect.dbms_name()),
            Precondition::And(checks) => self.all_hold(checks)?,
            Precondition::Or(checks) => {
                for check in checks {
                    if self.holds(check)? {
                        return Ok(true);
                    }
                }
                false
            }
            Precondition::Not(checks) => {
                for check in checks {
                    if self.holds(check)? {
                        return Ok(false);
                    }
                }
                true
            }
        })
    }

    fn write_row(&mut self, changeset: &ChangeSet, exec_type: &str, rerun: bool, order: i64, deployment_id: &str) -> Result<(), DbError> {
        let (sql, params) = row_statement(changeset, exec_type, rerun, order, deployment_id, &self.settings.contexts);
        self.db.execute(sql, &params)?;
        Ok(())
    }

    /// The SQL `update` would run, in order, without writing anything — not even the tracking
    /// tables (Liquibase's update-sql). The lock is not taken.
    pub fn update_sql(&mut self, changelog: &Changelog, count: Option<usize>) -> Result<Vec<String>, EngineError> {
        let history = self.history()?;
        let (pending, problems) = self.pending(changelog, &history);
        if !problems.is_empty() {
            return Err(EngineError::Invalid(problems));
        }
        let mut out = vec![];
        if !pending.is_empty() && !self.table_exists("databasechangelog")? {
            out.push(format!("{CREATE_CHANGELOG};"));
        }
        let deployment_id = format!("{:010}", epoch_millis() % 10_000_000_000);
        let mut order = history.iter().map(|r| r.order_executed).max().unwrap_or(0);
        for step in pending.into_iter().take(count.unwrap_or(usize::MAX)) {
            order += 1;
            out.push(format!("-- Changeset {}", step.changeset.identifier()));
            let dialect = self.db.dialect();
            for change in &step.changeset.changes {
                out.extend(change.statements(dialect).map_err(|e| EngineError::Invalid(vec![e]))?.into_iter().map(|s| format!("{s};")));
            }
            let (sql, params) = row_statement(step.changeset, if step.rerun { "RERAN" } else { "EXECUTED" }, step.rerun, order, &deployment_id, &self.settings.contexts);
            out.push(format!("{};", with_literals(sql, &params)));
        }
        Ok(out)
    }

    /// The SQL `rollback` would run, newest first, without writing anything.
    pub fn rollback_sql(&mut self, changelog: &Changelog, target: &RollbackTarget) -> Result<Vec<String>, EngineError> {
        let history = self.history()?;
        let mut out = vec![];
        for step in self.rollback_plan(changelog, &history, target)? {
            out.push(format!("-- Rolling back {}", step.name()));
            out.extend(step.statements.iter().map(|s| format!("{s};")));
            out.push(format!("{};", with_literals(DELETE_ROW, &row_key(&step.row))));
        }
        Ok(out)
    }

    /// Rewrites NULL and older checksums of ran changesets to V9, in one transaction.
    fn upgrade_checksums(&mut self, changelog: &Changelog, history: &[HistoryRow]) -> Result<(), DbError> {
        let by_key: HashMap<(&str, &str, &str), &ChangeSet> = changelog.changesets.iter().map(|c| ((c.file.as_str(), c.id.as_str(), c.author.as_str()), c)).collect();
        let mut updates = vec![];
        for row in history {
            let stale = row.md5sum.as_deref().is_none_or(|s| CheckSum::parse(s).map_or(true, |c| c.version != 9));
            if let (true, Some(changeset)) = (stale, by_key.get(&row.key())) {
                updates.push((changeset.checksum(ChecksumVersion::V9).to_string(), row));
            }
        }
        if updates.is_empty() {
            return Ok(());
        }
        self.db.batch("BEGIN")?;
        for (checksum, row) in &updates {
            self.db.execute("UPDATE DATABASECHANGELOG SET MD5SUM = $1 WHERE ID = $2 AND AUTHOR = $3 AND FILENAME = $4", &[Value::Text(checksum.clone()), Value::from(row.id.as_str()), Value::from(row.author.as_str()), Value::from(row.filename.as_str())])?;
            self.notes.push(format!("upgraded the checksum of {}::{}::{} from {} to {checksum}", row.filename, row.id, row.author, row.md5sum.as_deref().unwrap_or("NULL")));
        }
        self.db.batch("COMMIT")
    }

    fn ensure_changelog_table(&mut self) -> Result<(), DbError> {
        if !self.table_exists("databasechangelog")? {
            self.db.batch(CREATE_CHANGELOG)?;
        }
        Ok(())
    }

    /// Rolls back the newest changesets (by count) or everything after a tag, newest first.
    pub fn rollback(&mut self, changelog: &Changelog, target: &RollbackTarget) -> Result<RollbackReport, EngineError> {
        let history = self.history()?;
        let plan = self.rollback_plan(changelog, &history, target)?;
        if plan.is_empty() {
            return Ok(RollbackReport::default());
        }
        self.with_lock(|engine| {
            let mut report = RollbackReport::default();
            for step in plan {
                engine.db.batch("BEGIN")?;
                let result = (|| {
                    for statement in &step.statements {
                        engine.db.batch(statement)?;
                    }
                    engine.db.execute(DELETE_ROW, &row_key(&step.row))
                })();
                match result {
                    Ok(_) => engine.db.batch("COMMIT")?,
                    Err(error) => {
                        engine.db.batch("ROLLBACK")?;
                        return Err(EngineError::ChangeSetFailed { changeset: step.name(), error, applied: report.rolled_back.len() });
                    }
                }
                if let Some(changeset) = step.changeset {
                    report.rolled_back.push(changeset);
                }
            }
            Ok(report)
        })
    }

    /// Each row a rollback removes (newest first), the changeset it belongs to, and the statements
    /// that undo it. Every changeset that cannot be undone is reported at once.
    fn rollback_plan(&self, changelog: &Changelog, history: &[HistoryRow], target: &RollbackTarget) -> Result<Vec<RollbackStep>, EngineError> {
        let by_key: HashMap<(&str, &str, &str), &ChangeSet> = changelog.changesets.iter().map(|c| ((c.file.as_str(), c.id.as_str(), c.author.as_str()), c)).collect();
        let mut plan = vec![];
        let mut problems = vec![];
        for row in self.rollback_rows(changelog, history, target)? {
            match by_key.get(&row.key()).copied() {
                Some(changeset) => match rollback_statements(changeset, changelog, self.db.dialect()) {
                    Ok(statements) => plan.push(RollbackStep { row, changeset: Some(changeset.identifier()), statements }),
                    Err(problem) => problems.push(problem),
                },
                // A row the runner wrote itself (a synthetic tag row): just removed.
                None => plan.push(RollbackStep { row, changeset: None, statements: vec![] }),
            }
        }
        if problems.is_empty() { Ok(plan) } else { Err(EngineError::Invalid(problems)) }
    }

    /// The rows a rollback removes, newest first.
    fn rollback_rows(&self, changelog: &Changelog, history: &[HistoryRow], target: &RollbackTarget) -> Result<Vec<HistoryRow>, EngineError> {
        let known: std::collections::HashSet<(&str, &str, &str)> = changelog.changesets.iter().map(|c| (c.file.as_str(), c.id.as_str(), c.author.as_str())).collect();
        let synthetic = |row: &HistoryRow| row.filename == "liquibase-internal";
        match target {
            RollbackTarget::Count(n) => Ok(history.iter().rev().filter(|r| known.contains(&r.key())).take(*n).cloned().collect()),
            RollbackTarget::Tag(tag) => {
                let Some(position) = history.iter().rposition(|r| r.tag.as_deref().is_some_and(|t| t.eq_ignore_ascii_case(tag))) else {
                    let mut tags: Vec<&str> = history.iter().filter_map(|r| r.tag.as_deref()).collect();
                    tags.dedup();
                    return Err(EngineError::UnknownTag { tag: tag.clone(), known: if tags.is_empty() { "none".into() } else { tags.join(", ") } });
                };
                let tagged = &history[position];
                let mut rows: Vec<HistoryRow> = history[position + 1..].iter().rev().filter(|r| known.contains(&r.key()) || synthetic(r)).cloned().collect();
                if tagged.description.as_deref() == Some("tagDatabase") && known.contains(&tagged.key()) {
                    rows.push(tagged.clone());
                }
                Ok(rows)
            }
        }
    }

    /// Sets `tag` on the newest row; on an empty history, first inserts Liquibase's synthetic row.
    pub fn tag(&mut self, tag: &str) -> Result<(), EngineError> {
        self.with_lock(|engine| {
            engine.ensure_changelog_table()?;
            let history = engine.history()?;
            match history.last() {
                Some(newest) => {
                    engine.db.execute("UPDATE DATABASECHANGELOG SET TAG = $1 WHERE ID = $2 AND AUTHOR = $3 AND FILENAME = $4", &[Value::from(tag), Value::from(newest.id.as_str()), Value::from(newest.author.as_str()), Value::from(newest.filename.as_str())])?;
                }
                None => engine.insert_synthetic(&epoch_millis().to_string(), "liquibase", tag, 1)?,
            }
            Ok(())
        })
    }

    fn insert_synthetic(&mut self, id: &str, author: &str, tag: &str, order: i64) -> Result<(), DbError> {
        let deployment_id = format!("{:010}", epoch_millis() % 10_000_000_000);
        let empty = crate::checksum::changeset(ChecksumVersion::V9, &[]).to_string();
        self.db.execute(
            "INSERT INTO DATABASECHANGELOG (ID, AUTHOR, FILENAME, DATEEXECUTED, ORDEREXECUTED, EXECTYPE, MD5SUM, DESCRIPTION, COMMENTS, TAG, LIQUIBASE, DEPLOYMENT_ID) VALUES ($1, $2, 'liquibase-internal', CURRENT_TIMESTAMP, $3, 'EXECUTED', $4, 'empty', '', $5, $6, $7)",
            &[Value::from(id), Value::from(author), Value::Integer(order), Value::Text(empty), Value::from(tag), Value::from(LIQUIBASE_VERSION), Value::Text(deployment_id)],
        )?;
        Ok(())
    }

    /// Harness's pre-start tag: the newest row's tag if it has one; otherwise `generated`,
    /// written now (on an empty database, onto Liquibase's synthetic row).
    pub fn pre_start_tag(&mut self, generated: &str) -> Result<String, EngineError> {
        if let Some(existing) = self.history()?.last().and_then(|r| r.tag.clone()) {
            return Ok(existing);
        }
        self.tag(generated)?;
        Ok(generated.to_string())
    }

    /// Harness's post-deployment tag. After changesets ran, it tags the newest row. When none ran it
    /// tags only with `always` (`tagDatabaseChangeSet`): kept if the newest row has it, set on an
    /// untagged newest row, else written on a synthetic row `harness_<tag>` by `harness`.
    pub fn tag_after_apply(&mut self, tag: &str, applied: usize, always: bool) -> Result<(), EngineError> {
        if applied > 0 {
            return self.tag(tag);
        }
        if !always {
            return Ok(());
        }
        let history = self.history()?;
        match history.last() {
            Some(newest) if newest.tag.as_deref() == Some(tag) => Ok(()),
            Some(newest) if newest.tag.is_none() => self.tag(tag),
            _ => self.with_lock(|engine| {
                engine.ensure_changelog_table()?;
                let order = history.iter().map(|r| r.order_executed).max().unwrap_or(0) + 1;
                let id: String = format!("harness_{}", tag.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect::<String>());
                engine.insert_synthetic(&id, "harness", tag, order)?;
                Ok(())
            }),
        }
    }

    /// Clears the lock row unconditionally (`release-locks`).
    pub fn release_locks(&mut self) -> Result<(), EngineError> {
        if self.table_exists("databasechangeloglock")? {
            self.db.execute("UPDATE DATABASECHANGELOGLOCK SET LOCKED = FALSE, LOCKEDBY = NULL, LOCKGRANTED = NULL WHERE ID = 1", &[])?;
        }
        Ok(())
    }

    /// Runs `work` holding the changelog lock, and releases it whatever happens.
    fn with_lock<T>(&mut self, work: impl FnOnce(&mut Self) -> Result<T, EngineError>) -> Result<T, EngineError> {
        self.lock()?;
        let result = work(self);
        let released = self.unlock();
        let value = result?;
        released?;
        Ok(value)
    }

    fn lock(&mut self) -> Result<(), EngineError> {
        let deadline = Instant::now() + self.settings.lock_wait;
        let me = format!("{LOCKED_BY_PREFIX}{}", self.settings.holder);
        loop {
            if self.db.try_advisory_lock(ADVISORY_KEY)? {
                match self.claim_lock_row(&me) {
                    Ok(None) => return Ok(()),
                    Ok(Some((by, since))) => {
                        self.db.advisory_unlock(ADVISORY_KEY)?;
                        if Instant::now() >= deadline {
                            return Err(EngineError::Locked { by, since });
                        }
                    }
                    Err(error) => {
                        self.db.advisory_unlock(ADVISORY_KEY)?;
                        return Err(error);
                    }
                }
            } else if Instant::now() >= deadline {
                return Err(EngineError::HeldByRunner);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// With the advisory lock held: takes the lock row, or says who holds it (a live Liquibase).
    fn claim_lock_row(&mut self, me: &str) -> Result<Option<(String, String)>, EngineError> {
        if !self.table_exists("databasechangeloglock")? {
            self.db.batch(CREATE_LOCK)?;
        }
        self.db.execute("INSERT INTO DATABASECHANGELOGLOCK (ID, LOCKED) SELECT 1, FALSE WHERE NOT EXISTS (SELECT 1 FROM DATABASECHANGELOGLOCK WHERE ID = 1)", &[])?;
        let claimed = self.db.execute("UPDATE DATABASECHANGELOGLOCK SET LOCKED = TRUE, LOCKEDBY = $1, LOCKGRANTED = CURRENT_TIMESTAMP WHERE ID = 1 AND LOCKED = FALSE", &[Value::from(me)])?;
        if claimed == 1 {
            return Ok(None);
        }
        let rows = self.db.query("SELECT LOCKEDBY, CAST(LOCKGRANTED AS VARCHAR(40)) FROM DATABASECHANGELOGLOCK WHERE ID = 1", &[])?;
        let row = rows.rows.first().cloned().unwrap_or_default();
        let by = row.first().and_then(text).unwrap_or_else(|| "(unknown)".into());
        let since = row.get(1).and_then(text).unwrap_or_else(|| "(unknown)".into());
        if by.starts_with(LOCKED_BY_PREFIX) {
            // We hold the advisory lock, so the Lockstep runner that wrote this row is gone.
            self.db.execute("UPDATE DATABASECHANGELOGLOCK SET LOCKEDBY = $1, LOCKGRANTED = CURRENT_TIMESTAMP WHERE ID = 1", &[Value::from(me)])?;
            self.notes.push(format!("took over a stale changelog lock left by {by} (since {since}); that runner is no longer connected"));
            return Ok(None);
        }
        Ok(Some((by, since)))
    }

    fn unlock(&mut self) -> Result<(), EngineError> {
        self.db.execute("UPDATE DATABASECHANGELOGLOCK SET LOCKED = FALSE, LOCKEDBY = NULL, LOCKGRANTED = NULL WHERE ID = 1", &[])?;
        self.db.advisory_unlock(ADVISORY_KEY)?;
        Ok(())
    }
}

/// One row a rollback removes, and how.
struct RollbackStep {
    row: HistoryRow,
    /// `path::id::author`; `None` for a row the runner wrote itself (a synthetic tag row).
    changeset: Option<String>,
    statements: Vec<String>,
}

impl RollbackStep {
    fn name(&self) -> String {
        self.changeset.clone().unwrap_or_else(|| format!("{}::{}::{}", self.row.filename, self.row.id, self.row.author))
    }
}

const DELETE_ROW: &str = "DELETE FROM DATABASECHANGELOG WHERE ID = $1 AND AUTHOR = $2 AND FILENAME = $3";

fn row_key(row: &HistoryRow) -> [Value; 3] {
    [Value::from(row.id.as_str()), Value::from(row.author.as_str()), Value::from(row.filename.as_str())]
}

/// The statement that records a changeset in DATABASECHANGELOG: an INSERT, or for a re-run the
/// UPDATE of its row (keyed by ID, AUTHOR, FILENAME). Columns as Liquibase 4.28 writes them.
fn row_statement(changeset: &ChangeSet, exec_type: &str, rerun: bool, order: i64, deployment_id: &str, contexts: &[String]) -> (&'static str, Vec<Value>) {
    let checksum = changeset.checksum(ChecksumVersion::V9).to_string();
    let description = if changeset.changes.is_empty() { "empty".to_string() } else { changeset.changes.iter().map(Change::description).collect::<Vec<_>>().join("; ") };
    let labels = changeset.labels.as_deref().map(|l| l.split(',').map(str::trim).filter(|l| !l.is_empty()).collect::<Vec<_>>().join(",")).filter(|l| !l.is_empty());
    let params = vec![
        Value::Integer(order),
        Value::Text(checksum),
        Value::Text(description),
        Value::Text(changeset.comment.clone().unwrap_or_default()),
        Value::from(exec_type),
        Value::from(contexts_column(contexts, changeset.context.as_deref()).as_deref()),
        Value::from(labels.as_deref()),
        Value::from(LIQUIBASE_VERSION),
        Value::from(deployment_id),
        Value::from(changeset.id.as_str()),
        Value::from(changeset.author.as_str()),
        Value::from(changeset.file.as_str()),
        // A tagDatabase change tags its own row.
        Value::from(changeset.changes.iter().find_map(Change::tag)),
    ];
    let sql = if rerun {
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

enum Applied {
    Ran,
    MarkedRan,
    Skipped,
}

enum Verdict {
    Same,
    /// Different, but a validCheckSum accepts it (or the stored value is NULL or legacy).
    Accepted,
    Changed { stored: String, now: String },
}

/// Compares a ran changeset with its stored checksum, recomputed at the stored version.
fn checksum_verdict(changeset: &ChangeSet, stored: Option<&str>) -> Verdict {
    let Some(stored) = stored else { return Verdict::Accepted };
    let Some(version) = CheckSum::parse(stored).ok().and_then(|c| c.computable_version()) else { return Verdict::Accepted };
    let now = changeset.checksum(version).to_string();
    if now.eq_ignore_ascii_case(stored) {
        return Verdict::Same;
    }
    let current = changeset.checksum(ChecksumVersion::V9).to_string();
    let accepted = changeset.valid_checksums.iter().any(|v| {
        let v = v.trim();
        matches!(v.to_ascii_lowercase().as_str(), "any" | "1:any" | "1:all" | "1:*") || v.eq_ignore_ascii_case(stored) || v.eq_ignore_ascii_case(&current)
    });
    if accepted { Verdict::Accepted } else { Verdict::Changed { stored: stored.to_string(), now: current } }
}

/// The statements that undo `changeset`; an error names it when it cannot be undone.
fn rollback_statements(changeset: &ChangeSet, changelog: &Changelog, dialect: Dialect) -> Result<Vec<String>, String> {
    let at = |problem: String| format!("{}:{}: the rollback of changeset {}: {problem}", changeset.file, changeset.line, changeset.identifier());
    let run = |changes: &[Change]| -> Result<Vec<String>, String> {
        let mut out = vec![];
        for change in changes {
            out.extend(change.statements(dialect).map_err(at)?);
        }
        Ok(out)
    };
    match &changeset.rollback {
        Rollback::Empty => Ok(vec![]),
        Rollback::Sql(sql) => Ok(statements::split(&sql.sql, &sql.settings)),
        Rollback::Changes(changes) => run(changes),
        Rollback::Reference { id, author, path } => match changelog.changesets.iter().find(|c| &c.id == id && &c.author == author && path.as_ref().is_none_or(|p| p == &c.file)) {
            Some(referenced) => run(&referenced.changes),
            None => Err(at(format!("it refers to changeset {id} by {author}, which is not in the changelog"))),
        },
        Rollback::Automatic => {
            // Inverses run in reverse change order.
            let mut out = vec![];
            for change in changeset.changes.iter().rev() {
                match change {
                    Change::Sql(_) => {
                        return Err(format!(
                            "{}:{}: changeset {} has no rollback, and raw SQL has no automatic inverse\n  help: add a rollback (`--rollback <sql>`, or `rollback:` in YAML; `empty` if nothing needs undoing)",
                            changeset.file, changeset.line, changeset.identifier()
                        ));
                    }
                    Change::Structured(structured) => {
                        if let Some(inverse) = structured.inverse().map_err(|e| at(format!("{e}; write one")))? {
                            for undo in inverse {
                                out.extend(undo.statements(dialect).map_err(at)?);
                            }
                        }
                    }
                }
            }
            Ok(out)
        }
    }
}

/// A table name to put into SQL: letters, digits, `_` and one optional `schema.` prefix only.
fn identifier(name: &str) -> Result<&str, DbError> {
    let ok = !name.is_empty() && name.split('.').count() <= 2 && name.split('.').all(|part| !part.is_empty() && part.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'));
    if ok { Ok(name) } else { Err(DbError::Invalid(format!("`{name}` is not a table name"))) }
}

/// The CONTEXTS column: the run's contexts and the changeset's, joined with ` AND `; a part
/// containing a space or a comma is wrapped in parentheses. NULL when there are none.
fn contexts_column(runtime: &[String], changeset: Option<&str>) -> Option<String> {
    let mut parts: Vec<String> = vec![];
    let runtime = runtime.join(",");
    for part in [runtime.as_str(), changeset.unwrap_or_default()] {
        let part = part.trim();
        if part.is_empty() {
            continue;
        }
        parts.push(if part.contains(' ') || part.contains(',') { format!("({part})") } else { part.to_string() });
    }
    (!parts.is_empty()).then(|| parts.join(" AND "))
}
