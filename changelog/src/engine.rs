//! Applying and rolling back a changelog, with Liquibase's tracking history, on any [`Store`].
//!
//! Invariants, where Lockstep is stricter than Liquibase 4.28:
//! - Everything is validated (checksums of ran changesets, that every pending change can run on
//!   this database, the rollbacks a rollback needs) before the first write; a problem means
//!   nothing was written.
//! - A changeset and its history row commit in one transaction where the database has them
//!   (and the changeset runs in a transaction), so a failure leaves neither.
//! - The changelog lock is taken with guarded writes only, and a lock left by a dead Lockstep
//!   runner is taken over where the store can tell (see [`crate::sql_store`]).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use foldhash::{HashMap, HashSet};

use crate::checksum::{CheckSum, ChecksumVersion};
use crate::db::{DbError, Dialect, Mongo, Sql};
use crate::filters;
use crate::model::*;
use crate::mongo_store::MongoStore;
use crate::properties::Scope;
use crate::sql_store::SqlStore;
pub use crate::store::HistoryRow;
use crate::store::{LOCKED_BY_PREFIX, LockAttempt, NewRow, Record, RowOrder, Store};

/// What DATABASECHANGELOG.LIQUIBASE holds: the Liquibase release whose format Lockstep writes.
pub const LIQUIBASE_VERSION: &str = "4.28.0";

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// Nothing was written.
    #[error("nothing was changed, because:\n{}", .0.join("\n"))]
    Invalid(Vec<String>),
    /// Changesets before this one stay applied; this one left nothing behind (in a transaction).
    #[error(
        "changeset {changeset} failed: {error} ({applied} changeset(s) before it were applied and stay)"
    )]
    ChangeSetFailed {
        changeset: String,
        error: DbError,
        applied: usize,
    },
    #[error(
        "could not acquire the changelog lock: it is held by {by} since {since}\n  help: if that process is gone for good, run `lockstep db release-locks`"
    )]
    Locked { by: String, since: String },
    #[error(
        "could not acquire the changelog lock: another Lockstep runner holds it and is still connected"
    )]
    HeldByRunner,
    #[error("tag `{tag}` is not in DATABASECHANGELOG (tags there: {known})")]
    UnknownTag { tag: String, known: String },
    /// A changelog's own `preConditions` (onFail/onError HALT) did not hold; nothing ran.
    #[error("{file}: the changelog's preConditions stop the update: {why}; nothing was applied")]
    PreconditionsHalt { file: String, why: String },
    #[error("{0}")]
    Db(#[from] DbError),
}

/// Settings of one run of a command.
#[derive(Debug, Clone)]
pub struct RunSettings {
    /// The instance's contexts (`context` in lockstep.yaml), already split.
    pub contexts: Vec<String>,
    pub label_filter: Option<String>,
    /// Who the lock names, after the `lockstep ` prefix (host, step, execution).
    pub holder: String,
    /// How long to wait for a lock held by someone alive.
    pub lock_wait: Duration,
    /// MongoDB, which has no session-bound lock: how long a runner's lock lasts unless it renews
    /// it (it renews it between changesets). A lock whose lease ran out is taken over.
    pub lock_lease: Duration,
}

impl Default for RunSettings {
    fn default() -> Self {
        RunSettings {
            contexts: vec![],
            label_filter: None,
            holder: "runner".into(),
            lock_wait: Duration::from_secs(300),
            lock_lease: Duration::from_secs(120),
        }
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
    store: Box<dyn Store + 'd>,
    /// The SQL dialect, for the inverses that write literals; `None` on MongoDB.
    dialect: Option<Dialect>,
    settings: RunSettings,
    /// Things worth telling the user (a stale lock taken over, checksums upgraded, …).
    pub notes: Vec<String>,
    /// Told at once, while it lasts: waiting for a lock another runner holds.
    waiting: Box<dyn FnMut(&str) + 'd>,
}

/// How often a wait for the changelog lock says it is still waiting.
const LOCK_WAIT_REPORT: Duration = Duration::from_secs(10);

fn epoch_millis() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis())
}

fn new_deployment_id() -> String {
    format!("{:010}", epoch_millis() % 10_000_000_000)
}

impl<'d> Engine<'d> {
    /// An engine over a SQL database (PostgreSQL, SQLite).
    pub fn sql(db: &'d mut dyn Sql, settings: RunSettings) -> Self {
        Engine {
            dialect: Some(db.dialect()),
            store: Box::new(SqlStore::new(db)),
            settings,
            notes: vec![],
            waiting: Box::new(|_| {}),
        }
    }

    /// An engine over a MongoDB database.
    pub fn mongo(db: &'d mut dyn Mongo, settings: RunSettings) -> Self {
        Engine {
            dialect: None,
            store: Box::new(MongoStore::new(db, settings.lock_lease)),
            settings,
            notes: vec![],
            waiting: Box::new(|_| {}),
        }
    }

    /// Reads `changelog` (relative to `root`) as this run sees it: see [`load`].
    pub fn load(
        &self,
        root: &Path,
        changelog: &str,
        given: &BTreeMap<String, String>,
    ) -> Result<Changelog, Vec<ChangelogError>> {
        load(&self.settings, self.store.dbms(), root, changelog, given)
    }

    /// Where a wait for a lock held by someone else is reported, as it starts and every 10 s.
    pub fn on_waiting(&mut self, report: impl FnMut(&str) + 'd) {
        self.waiting = Box::new(report);
    }

    /// DATABASECHANGELOG in execution order (empty when it does not exist yet).
    pub fn history(&mut self) -> Result<Vec<HistoryRow>, EngineError> {
        Ok(self.store.history()?)
    }

    fn selected<'c>(&self, changelog: &'c Changelog) -> impl Iterator<Item = &'c ChangeSet> {
        let dbms = self.store.dbms();
        let (contexts, labels) = (
            self.settings.contexts.clone(),
            self.settings.label_filter.clone(),
        );
        changelog.changesets.iter().filter(move |cs| {
            !cs.ignore
                && filters::dbms_matches(cs.dbms.as_deref(), dbms)
                && cs
                    .inherited_contexts
                    .iter()
                    .map(String::as_str)
                    .chain(cs.context.as_deref())
                    .all(|context| filters::context_matches(Some(context), &contexts))
                && filters::labels_match(labels.as_deref(), labels_column(cs).as_deref())
        })
    }

    /// The changesets an update would run, and every reason it cannot run.
    fn pending<'c>(
        &self,
        changelog: &'c Changelog,
        history: &[HistoryRow],
    ) -> (Vec<Pending<'c>>, Vec<String>) {
        let selected: Vec<&ChangeSet> = self.selected(changelog).collect();
        let (checksums, scan) = PendingScan::checksums_beside(&selected, || {
            let mut scan = PendingScan::new(&selected);
            for row in history {
                scan.ran(row.key(), row.md5sum.as_deref());
            }
            scan
        });
        self.finish(scan, &checksums)
    }

    /// Each pending changeset's checks against this store, then what is pending and why not.
    fn finish<'c>(
        &self,
        scan: PendingScan<'c>,
        checksums: &[CheckSum],
    ) -> (Vec<Pending<'c>>, Vec<String>) {
        let (pending, mut problems) = scan.finish(checksums);
        for Pending { changeset, .. } in &pending {
            for change in &changeset.changes {
                if let Err(problem) = self.store.check(change) {
                    problems.push(format!(
                        "{}:{}: changeset {}: {problem}",
                        changeset.file,
                        changeset.line,
                        changeset.identifier()
                    ));
                }
            }
        }
        (pending, problems)
    }

    /// Changesets not yet applied (after filters), in changelog order. Takes no lock.
    pub fn status<'c>(
        &mut self,
        changelog: &'c Changelog,
    ) -> Result<Vec<&'c ChangeSet>, EngineError> {
        // The history is matched row by row as it is read, never held whole: status is the
        // command that runs on the largest histories most often. It is read in any order, as
        // that is cheapest; only when a changeset has two rows, and so the later one counts, is
        // it read again in execution order (Liquibase never writes two).
        // Meanwhile, a second thread computes the checksums to compare.
        let selected: Vec<&ChangeSet> = self.selected(changelog).collect();
        let (checksums, scan) = PendingScan::checksums_beside(&selected, || {
            let scan = self.scan_ran(&selected, RowOrder::Any)?;
            if scan.ran_twice {
                self.scan_ran(&selected, RowOrder::Execution)
            } else {
                Ok(scan)
            }
        });
        let (pending, problems) = self.finish(scan?, &checksums);
        if !problems.is_empty() {
            return Err(EngineError::Invalid(problems));
        }
        Ok(pending.into_iter().map(|p| p.changeset).collect())
    }

    /// `selected` matched against the history read in `order`.
    fn scan_ran<'c>(
        &mut self,
        selected: &[&'c ChangeSet],
        order: RowOrder,
    ) -> Result<PendingScan<'c>, EngineError> {
        let mut scan = PendingScan::new(selected);
        self.store.each_ran(order, &mut |row| {
            scan.ran(row.key(), row.md5sum.as_deref());
            Ok(())
        })?;
        Ok(scan)
    }

    /// Runs pending changesets in changelog order (at most `count`). With `mark_failed_as_ran`,
    /// a failing changeset is recorded as EXECUTED (Liquibase's mark-next-changeset-ran) before
    /// the error is returned.
    pub fn update(
        &mut self,
        changelog: &Changelog,
        count: Option<usize>,
        mark_failed_as_ran: bool,
    ) -> Result<UpdateReport, EngineError> {
        let history = self.history()?;
        let (pending, problems) = self.pending(changelog, &history);
        if !problems.is_empty() {
            return Err(EngineError::Invalid(problems));
        }
        if pending.is_empty() {
            return Ok(UpdateReport::default());
        }
        self.changelog_preconditions(changelog)?;
        self.with_lock(|engine| {
            engine.store.ensure_history()?;
            // Another runner may have applied some while we waited for the lock.
            let history = engine.history()?;
            let (pending, problems) = engine.pending(changelog, &history);
            if !problems.is_empty() {
                return Err(EngineError::Invalid(problems));
            }
            engine.upgrade_checksums(changelog, &history)?;
            let deployment_id = new_deployment_id();
            // ORDEREXECUTED: max+1, read once, then advanced for each row written.
            let mut last_order = history.iter().map(|r| r.order_executed).max().unwrap_or(0);
            let mut report = UpdateReport::default();
            for step in pending.into_iter().take(count.unwrap_or(usize::MAX)) {
                let order = last_order + 1;
                match engine.apply(&step, order, &deployment_id) {
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
                            let record = engine.record(&step, "EXECUTED", order, &deployment_id);
                            engine.store.run(&[], &record, false)?;
                            engine.notes.push(format!("changeset {} failed and was marked as ran", step.changeset.identifier()));
                        }
                        return Err(EngineError::ChangeSetFailed { changeset: step.changeset.identifier(), error, applied: report.applied.len() });
                    }
                }
            }
            Ok(report)
        })
    }

    /// The history record of a pending changeset: an insert, or for a re-run an update.
    fn record(
        &self,
        step: &Pending<'_>,
        exec_type: &'static str,
        order: i64,
        deployment_id: &str,
    ) -> Record<'static> {
        let row = new_row(step.changeset, exec_type, order, deployment_id);
        if step.rerun {
            Record::Update(row)
        } else {
            Record::Insert(row)
        }
    }

    /// Runs one changeset and writes its row, in one transaction when it runs in one.
    fn apply(
        &mut self,
        step: &Pending<'_>,
        order: i64,
        deployment_id: &str,
    ) -> Result<Applied, DbError> {
        let changeset = step.changeset;
        let unmet = changeset
            .preconditions
            .as_ref()
            .and_then(|preconditions| self.unmet(preconditions));
        if let Some((action, why)) = unmet {
            match action {
                OnPrecondition::Halt => return Err(DbError::Failed(why)),
                OnPrecondition::Continue => return Ok(Applied::Skipped),
                OnPrecondition::MarkRan => {
                    let record = self.record(step, "MARK_RAN", order, deployment_id);
                    self.store.run(&[], &record, false)?;
                    return Ok(Applied::MarkedRan);
                }
                OnPrecondition::Warn => self.notes.push(format!(
                    "changeset {}: {why}; it runs anyway (WARN)",
                    changeset.identifier()
                )),
            }
        }
        if let Some(why) = changeset.changes.iter().find_map(Change::stop) {
            return Err(DbError::Failed(format!(
                "stopped by a `stop` change: {why}"
            )));
        }
        let record = self.record(
            step,
            if step.rerun { "RERAN" } else { "EXECUTED" },
            order,
            deployment_id,
        );
        self.store
            .run(&changeset.changes, &record, changeset.run_in_transaction)?;
        self.notes.extend(
            changeset
                .changes
                .iter()
                .filter_map(Change::output)
                .map(String::from),
        );
        if let Some(dialect) = self.dialect {
            self.notes.extend(
                changeset
                    .changes
                    .iter()
                    .filter_map(|change| change.does_nothing_on(dialect))
                    .map(|what| format!("changeset {}: {what}", changeset.identifier())),
            );
        }
        Ok(Applied::Ran)
    }

    /// Checks the changelog files' own `preConditions`: HALT stops the update before anything
    /// runs, WARN says so and goes on. Liquibase's CONTINUE at this level skips the file's
    /// changesets, which Lockstep does not do yet: it refuses rather than run them.
    fn changelog_preconditions(&mut self, changelog: &Changelog) -> Result<(), EngineError> {
        for (file, preconditions) in &changelog.preconditions {
            let Some((action, why)) = self.unmet(preconditions) else {
                continue;
            };
            match action {
                OnPrecondition::Halt => {
                    return Err(EngineError::PreconditionsHalt {
                        file: file.clone(),
                        why,
                    });
                }
                OnPrecondition::Warn => self.notes.push(format!(
                    "{file}: the changelog's preConditions: {why}; the update goes on (WARN)"
                )),
                OnPrecondition::Continue | OnPrecondition::MarkRan => {
                    return Err(EngineError::Invalid(vec![format!(
                        "{file}: the changelog's preConditions do not hold ({why}), and Lockstep does not yet skip a changelog file's changesets as Liquibase's onFail CONTINUE does\n  help: use onFail: HALT or WARN on the changelog's preConditions, or put them on its changesets"
                    )]));
                }
            }
        }
        Ok(())
    }

    /// `None` when `preconditions` hold; else the action they ask for (onFail, or onError when
    /// one could not be checked) and why.
    fn unmet(&mut self, preconditions: &Preconditions) -> Option<(OnPrecondition, String)> {
        match self.all_hold(&preconditions.checks) {
            Ok(true) => None,
            Ok(false) => Some((
                preconditions.on_fail,
                "a precondition does not hold".to_string(),
            )),
            Err(e) => Some((
                preconditions.on_error,
                format!("a precondition could not be checked: {e}"),
            )),
        }
    }

    fn all_hold(&mut self, checks: &[Precondition]) -> Result<bool, DbError> {
        for check in checks {
            if !self.holds(check)? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    fn holds(&mut self, check: &Precondition) -> Result<bool, DbError> {
        Ok(match check {
            Precondition::ChangeSetExecuted { id, author, file } => self
                .store
                .history()?
                .iter()
                .any(|r| r.key() == (file.as_str(), id.as_str(), author.as_str())),
            Precondition::Dbms { dbms } => filters::dbms_matches(Some(dbms), self.store.dbms()),
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
            reads_the_database => self.store.holds(reads_the_database)?,
        })
    }

    /// The SQL `update` would run, in order, without writing anything — not even the tracking
    /// tables (Liquibase's update-sql). The lock is not taken.
    pub fn update_sql(
        &mut self,
        changelog: &Changelog,
        count: Option<usize>,
    ) -> Result<Vec<String>, EngineError> {
        let history = self.history()?;
        let (pending, problems) = self.pending(changelog, &history);
        if !problems.is_empty() {
            return Err(EngineError::Invalid(problems));
        }
        let deployment_id = new_deployment_id();
        let mut order = history.iter().map(|r| r.order_executed).max().unwrap_or(0);
        let mut out = vec![];
        if !pending.is_empty() {
            self.changelog_preconditions(changelog)?;
            out.extend(self.store.script_setup().map_err(no_script)?);
        }
        for step in pending.iter().take(count.unwrap_or(usize::MAX)) {
            order += 1;
            out.push(format!("-- Changeset {}", step.changeset.identifier()));
            let record = self.record(
                step,
                if step.rerun { "RERAN" } else { "EXECUTED" },
                order,
                &deployment_id,
            );
            out.extend(
                self.store
                    .script(&step.changeset.changes, &record)
                    .map_err(no_script)?,
            );
        }
        Ok(out)
    }

    /// The SQL `rollback` would run, newest first, without writing anything.
    pub fn rollback_sql(
        &mut self,
        changelog: &Changelog,
        target: &RollbackTarget,
    ) -> Result<Vec<String>, EngineError> {
        let history = self.history()?;
        let mut out = vec![];
        for step in self.rollback_plan(changelog, &history, target)? {
            out.push(format!("-- Rolling back {}", step.name()));
            out.extend(
                self.store
                    .script(&step.changes, &Record::Delete(&step.row))
                    .map_err(no_script)?,
            );
        }
        Ok(out)
    }

    /// Rewrites NULL and older checksums of ran changesets to V9.
    fn upgrade_checksums(
        &mut self,
        changelog: &Changelog,
        history: &[HistoryRow],
    ) -> Result<(), DbError> {
        let by_key: HashMap<(&str, &str, &str), &ChangeSet> = changelog
            .changesets
            .iter()
            .map(|c| ((c.file.as_str(), c.id.as_str(), c.author.as_str()), c))
            .collect();
        let mut updates = vec![];
        for row in history {
            let stale = row
                .md5sum
                .as_deref()
                .is_none_or(|s| CheckSum::parse(s).map_or(true, |c| c.version != 9));
            if let (true, Some(changeset)) = (stale, by_key.get(&row.key())) {
                updates.push((row, changeset.checksum(ChecksumVersion::V9).to_string()));
            }
        }
        if updates.is_empty() {
            return Ok(());
        }
        self.store.set_checksums(&updates)?;
        for (row, checksum) in &updates {
            self.notes.push(format!(
                "upgraded the checksum of {}::{}::{} from {} to {checksum}",
                row.filename,
                row.id,
                row.author,
                row.md5sum.as_deref().unwrap_or("NULL")
            ));
        }
        Ok(())
    }

    /// Rolls back the newest changesets (by count) or everything after a tag, newest first.
    pub fn rollback(
        &mut self,
        changelog: &Changelog,
        target: &RollbackTarget,
    ) -> Result<RollbackReport, EngineError> {
        let history = self.history()?;
        let plan = self.rollback_plan(changelog, &history, target)?;
        if plan.is_empty() {
            return Ok(RollbackReport::default());
        }
        self.with_lock(|engine| {
            let mut report = RollbackReport::default();
            for step in plan {
                if let Err(error) =
                    engine
                        .store
                        .run(&step.changes, &Record::Delete(&step.row), true)
                {
                    return Err(EngineError::ChangeSetFailed {
                        changeset: step.name(),
                        error,
                        applied: report.rolled_back.len(),
                    });
                }
                if let Some(changeset) = step.changeset {
                    report.rolled_back.push(changeset);
                }
            }
            Ok(report)
        })
    }

    /// Each row a rollback removes (newest first), the changeset it belongs to, and the changes
    /// that undo it. Every changeset that cannot be undone is reported at once.
    fn rollback_plan(
        &self,
        changelog: &Changelog,
        history: &[HistoryRow],
        target: &RollbackTarget,
    ) -> Result<Vec<RollbackStep>, EngineError> {
        let by_key: HashMap<(&str, &str, &str), &ChangeSet> = changelog
            .changesets
            .iter()
            .map(|c| ((c.file.as_str(), c.id.as_str(), c.author.as_str()), c))
            .collect();
        let mut plan = vec![];
        let mut problems = vec![];
        for row in self.rollback_rows(changelog, history, target)? {
            match by_key.get(&row.key()).copied() {
                Some(changeset) => match rollback_changes(changeset, changelog, self.dialect)
                    .and_then(|changes| self.checked(changeset, changes))
                {
                    Ok(changes) => plan.push(RollbackStep {
                        row,
                        changeset: Some(changeset.identifier()),
                        changes,
                    }),
                    Err(problem) => problems.push(problem),
                },
                // A row the runner wrote itself (a synthetic tag row): just removed.
                None => plan.push(RollbackStep {
                    row,
                    changeset: None,
                    changes: vec![],
                }),
            }
        }
        if problems.is_empty() {
            Ok(plan)
        } else {
            Err(EngineError::Invalid(problems))
        }
    }

    /// `changes` (undoing `changeset`) if every one of them can run on this database.
    fn checked(&self, changeset: &ChangeSet, changes: Vec<Change>) -> Result<Vec<Change>, String> {
        for change in &changes {
            self.store.check(change).map_err(|problem| {
                format!(
                    "{}:{}: the rollback of changeset {}: {problem}",
                    changeset.file,
                    changeset.line,
                    changeset.identifier()
                )
            })?;
        }
        Ok(changes)
    }

    /// The rows a rollback removes, newest first.
    fn rollback_rows(
        &self,
        changelog: &Changelog,
        history: &[HistoryRow],
        target: &RollbackTarget,
    ) -> Result<Vec<HistoryRow>, EngineError> {
        let known: HashSet<(&str, &str, &str)> = changelog
            .changesets
            .iter()
            .map(|c| (c.file.as_str(), c.id.as_str(), c.author.as_str()))
            .collect();
        let synthetic = |row: &HistoryRow| row.filename == "liquibase-internal";
        match target {
            RollbackTarget::Count(n) => Ok(history
                .iter()
                .rev()
                .filter(|r| known.contains(&r.key()))
                .take(*n)
                .cloned()
                .collect()),
            RollbackTarget::Tag(tag) => {
                let Some(position) = history.iter().rposition(|r| {
                    r.tag
                        .as_deref()
                        .is_some_and(|t| t.eq_ignore_ascii_case(tag))
                }) else {
                    let mut tags: Vec<&str> =
                        history.iter().filter_map(|r| r.tag.as_deref()).collect();
                    tags.dedup();
                    return Err(EngineError::UnknownTag {
                        tag: tag.clone(),
                        known: if tags.is_empty() {
                            "none".into()
                        } else {
                            tags.join(", ")
                        },
                    });
                };
                let tagged = &history[position];
                let mut rows: Vec<HistoryRow> = history[position + 1..]
                    .iter()
                    .rev()
                    .filter(|r| known.contains(&r.key()) || synthetic(r))
                    .cloned()
                    .collect();
                if tagged.description.as_deref() == Some("tagDatabase")
                    && known.contains(&tagged.key())
                {
                    rows.push(tagged.clone());
                }
                Ok(rows)
            }
        }
    }

    /// Sets `tag` on the newest row; on an empty history, first inserts Liquibase's synthetic row.
    pub fn tag(&mut self, tag: &str) -> Result<(), EngineError> {
        self.with_lock(|engine| {
            engine.store.ensure_history()?;
            match engine.history()?.last() {
                Some(newest) => engine.store.set_tag(newest, tag)?,
                None => {
                    engine.insert_synthetic(&epoch_millis().to_string(), "liquibase", tag, 1)?
                }
            }
            Ok(())
        })
    }

    fn insert_synthetic(
        &mut self,
        id: &str,
        author: &str,
        tag: &str,
        order: i64,
    ) -> Result<(), DbError> {
        let row = NewRow {
            id: id.to_string(),
            author: author.to_string(),
            filename: "liquibase-internal".into(),
            order_executed: order,
            exec_type: "EXECUTED",
            md5sum: crate::checksum::changeset(ChecksumVersion::V9, &[]).to_string(),
            description: "empty".into(),
            comments: String::new(),
            tag: Some(tag.to_string()),
            contexts: None,
            labels: None,
            liquibase: LIQUIBASE_VERSION,
            deployment_id: new_deployment_id(),
        };
        self.store.run(&[], &Record::Insert(row), false)
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
    pub fn tag_after_apply(
        &mut self,
        tag: &str,
        applied: usize,
        always: bool,
    ) -> Result<(), EngineError> {
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
                engine.store.ensure_history()?;
                let order = history.iter().map(|r| r.order_executed).max().unwrap_or(0) + 1;
                let id: String = format!(
                    "harness_{}",
                    tag.chars()
                        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
                        .collect::<String>()
                );
                engine.insert_synthetic(&id, "harness", tag, order)?;
                Ok(())
            }),
        }
    }

    /// Clears the lock unconditionally (`release-locks`).
    pub fn release_locks(&mut self) -> Result<(), EngineError> {
        Ok(self.store.release_locks()?)
    }

    /// Runs `work` holding the changelog lock, and releases it whatever happens.
    fn with_lock<T>(
        &mut self,
        work: impl FnOnce(&mut Self) -> Result<T, EngineError>,
    ) -> Result<T, EngineError> {
        let me = format!("{LOCKED_BY_PREFIX}{}", self.settings.holder);
        self.lock(&me)?;
        let result = work(self);
        let released = self.store.unlock(&me);
        let value = result?;
        released?;
        Ok(value)
    }

    fn lock(&mut self, me: &str) -> Result<(), EngineError> {
        let started = Instant::now();
        let deadline = started + self.settings.lock_wait;
        let mut next_report = started;
        loop {
            let give_up = match self.store.try_lock(me)? {
                LockAttempt::Acquired => return Ok(()),
                LockAttempt::TookOver { by, since, why } => {
                    self.notes.push(format!(
                        "took over a stale changelog lock left by {by} (since {since}); {why}"
                    ));
                    return Ok(());
                }
                LockAttempt::Held { by, since } => EngineError::Locked { by, since },
                LockAttempt::HeldByRunner => EngineError::HeldByRunner,
            };
            let now = Instant::now();
            if now >= deadline {
                return Err(give_up);
            }
            if now >= next_report {
                let holder = match &give_up {
                    EngineError::Locked { by, since } => format!("{by} (since {since})"),
                    _ => "another Lockstep runner, still connected".to_string(),
                };
                (self.waiting)(&format!(
                    "waiting for the changelog lock, held by {holder}: {} s so far, giving up after {} s",
                    (now - started).as_secs(),
                    self.settings.lock_wait.as_secs()
                ));
                next_report = now + LOCK_WAIT_REPORT;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// A store that has no script to print says so as invalid input, not as a database failure.
fn no_script(error: DbError) -> EngineError {
    match error {
        DbError::Invalid(message) => EngineError::Invalid(vec![message]),
        other => other.into(),
    }
}

/// One row a rollback removes, and how.
struct RollbackStep {
    row: HistoryRow,
    /// `path::id::author`; `None` for a row the runner wrote itself (a synthetic tag row).
    changeset: Option<String>,
    changes: Vec<Change>,
}

impl RollbackStep {
    fn name(&self) -> String {
        self.changeset.clone().unwrap_or_else(|| {
            format!(
                "{}::{}::{}",
                self.row.filename, self.row.id, self.row.author
            )
        })
    }
}

/// The DATABASECHANGELOG row for `changeset`, with the columns Liquibase 4.28 writes.
/// Liquibase's `StringUtil.limitSize(description, 250)`: a longer text keeps 247 characters
/// and ends in `...`.
fn limit_size(text: &str) -> String {
    const LIMIT: usize = 250;
    if text.chars().count() <= LIMIT {
        return text.to_string();
    }
    let kept: String = text.chars().take(LIMIT - 3).collect();
    format!("{kept}...")
}

fn new_row(
    changeset: &ChangeSet,
    exec_type: &'static str,
    order: i64,
    deployment_id: &str,
) -> NewRow {
    let description = if changeset.changes.is_empty() {
        "empty".to_string()
    } else {
        limit_size(
            &changeset
                .changes
                .iter()
                .map(Change::description)
                .collect::<Vec<_>>()
                .join("; "),
        )
    };
    NewRow {
        id: changeset.id.clone(),
        author: changeset.author.clone(),
        filename: changeset.file.clone(),
        order_executed: order,
        exec_type,
        md5sum: changeset.checksum(ChecksumVersion::V9).to_string(),
        description,
        comments: changeset.comment.clone().unwrap_or_default(),
        // A tagDatabase change tags its own row.
        tag: changeset
            .changes
            .iter()
            .find_map(Change::tag)
            .map(str::to_string),
        contexts: contexts_column(changeset),
        labels: labels_column(changeset),
        liquibase: LIQUIBASE_VERSION,
        deployment_id: deployment_id.to_string(),
    }
}

/// Reads `changelog` (relative to `root`) as a run with `settings` on `dbms` sees it: `property`
/// definitions scoped by `context`, `labels` or `dbms` count only when they admit this run's.
/// [`Engine::load`] is this for its store; this is for reading before the store is open.
pub fn load(
    settings: &RunSettings,
    dbms: &str,
    root: &Path,
    changelog: &str,
    given: &BTreeMap<String, String>,
) -> Result<Changelog, Vec<ChangelogError>> {
    let scope = Scope {
        contexts: settings.contexts.clone(),
        label_filter: settings.label_filter.clone(),
        dbms: dbms.to_string(),
    };
    crate::load::load(root, changelog, given, &scope)
}

/// Matches history rows, one at a time, against the changesets a run selects.
struct PendingScan<'c> {
    selected: Vec<&'c ChangeSet>,
    /// Where each of `selected` is, by its identity (unique: the loader refuses duplicates).
    by_key: HashMap<(&'c str, &'c str, &'c str), usize>,
    /// What the history says of each of `selected`, the last row for it winning.
    seen: Vec<Seen>,
    /// Whether one of `selected` had more than one row.
    ran_twice: bool,
}

#[derive(Clone, Copy)]
enum Seen {
    NotRan,
    /// Ran, with a checksum Lockstep can recompute, and its version.
    Ran(CheckSum, ChecksumVersion),
    /// Ran, with no checksum to compare: NULL, unreadable or of an older version. Liquibase
    /// accepts it, and so does Lockstep.
    RanUnchecked,
}

impl<'c> PendingScan<'c> {
    fn new(selected: &[&'c ChangeSet]) -> Self {
        let selected = selected.to_vec();
        let by_key = selected
            .iter()
            .enumerate()
            .map(|(i, c)| ((c.file.as_str(), c.id.as_str(), c.author.as_str()), i))
            .collect();
        let seen = vec![Seen::NotRan; selected.len()];
        PendingScan {
            selected,
            by_key,
            seen,
            ran_twice: false,
        }
    }

    /// A history row of the changeset `key` (file, id, author), with its stored checksum.
    fn ran(&mut self, key: (&str, &str, &str), md5sum: Option<&str>) {
        let Some(&at) = self.by_key.get(&key) else {
            return;
        };
        self.ran_twice |= !matches!(self.seen[at], Seen::NotRan);
        let stored = md5sum.and_then(|text| CheckSum::parse(text).ok());
        self.seen[at] = match stored.map(|c| (c, c.computable_version())) {
            Some((stored, Some(version))) => Seen::Ran(stored, version),
            _ => Seen::RanUnchecked,
        };
    }

    /// Each of `selected`'s checksum now. With `beside`, they are computed on a second thread
    /// while `beside` runs (reading the history, which is mostly waiting for the server).
    fn checksums_beside<T>(
        selected: &[&ChangeSet],
        beside: impl FnOnce() -> T,
    ) -> (Vec<CheckSum>, T) {
        let compute = || -> Vec<CheckSum> {
            selected
                .iter()
                .map(|c| c.checksum(ChecksumVersion::V9))
                .collect()
        };
        std::thread::scope(|scope| {
            // Where there are no threads (a DB step's WebAssembly), one after the other.
            match std::thread::Builder::new().spawn_scoped(scope, compute) {
                Ok(thread) => {
                    let beside = beside();
                    let checksums = thread
                        .join()
                        .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
                    (checksums, beside)
                }
                Err(_) => {
                    let beside = beside();
                    (compute(), beside)
                }
            }
        })
    }

    /// The changesets to run, in changelog order, and why any cannot; `checksums` are each of
    /// `selected`'s now.
    fn finish(self, checksums: &[CheckSum]) -> (Vec<Pending<'c>>, Vec<String>) {
        let mut pending = vec![];
        let mut problems = vec![];
        for ((changeset, seen), now) in self.selected.into_iter().zip(self.seen).zip(checksums) {
            if !changeset.unsupported.is_empty() {
                problems.extend(changeset.unsupported.iter().cloned());
                continue;
            }
            let rerun = match seen {
                Seen::NotRan => false,
                _ if changeset.run_always => true,
                Seen::RanUnchecked => continue,
                Seen::Ran(stored, version) => {
                    match checksum_verdict(changeset, stored, version, *now) {
                        Verdict::Same => continue,
                        Verdict::Changed if changeset.run_on_change => true,
                        Verdict::Changed => {
                            problems.push(format!(
                            "{}:{}: changeset {} was changed after it ran: its checksum was {stored} and is now {now}\n  help: revert the change, or add `--validCheckSum: {now}` (or `validCheckSum`) to accept it, or `runOnChange:true` to re-run it",
                            changeset.file, changeset.line, changeset.identifier()
                        ));
                            continue;
                        }
                    }
                }
            };
            pending.push(Pending { changeset, rerun });
        }
        (pending, problems)
    }
}

enum Applied {
    Ran,
    MarkedRan,
    Skipped,
}

enum Verdict {
    /// The same, or different but accepted by a validCheckSum.
    Same,
    Changed,
}

/// Compares a ran changeset with its stored checksum, recomputed at the stored `version`; `now`
/// is its checksum at the current version.
fn checksum_verdict(
    changeset: &ChangeSet,
    stored: CheckSum,
    version: ChecksumVersion,
    now: CheckSum,
) -> Verdict {
    let same = match version {
        ChecksumVersion::V9 => stored == now,
        ChecksumVersion::V8 => changeset.checksum(version) == stored,
    };
    if same {
        return Verdict::Same;
    }
    let (stored, now) = (stored.to_string(), now.to_string());
    let accepted = changeset.valid_checksums.iter().any(|v| {
        let v = v.trim();
        matches!(
            v.to_ascii_lowercase().as_str(),
            "any" | "1:any" | "1:all" | "1:*"
        ) || v.eq_ignore_ascii_case(&stored)
            || v.eq_ignore_ascii_case(&now)
    });
    if accepted {
        Verdict::Same
    } else {
        Verdict::Changed
    }
}

/// The changes that undo `changeset` on `dialect` (`None`: MongoDB); an error names it when it
/// cannot be undone.
fn rollback_changes(
    changeset: &ChangeSet,
    changelog: &Changelog,
    dialect: Option<Dialect>,
) -> Result<Vec<Change>, String> {
    let at = |problem: String| {
        format!(
            "{}:{}: the rollback of changeset {}: {problem}",
            changeset.file,
            changeset.line,
            changeset.identifier()
        )
    };
    if let Some(unsupported) = changeset.unsupported.first() {
        return Err(unsupported.clone());
    }
    match &changeset.rollback {
        Rollback::Empty => Ok(vec![]),
        Rollback::Sql(sql) => Ok(vec![Change::Sql(sql.clone())]),
        Rollback::Changes(changes) => Ok(changes.clone()),
        Rollback::Reference { id, author, path } => match changelog.changesets.iter().find(|c| {
            &c.id == id && &c.author == author && path.as_ref().is_none_or(|p| p == &c.file)
        }) {
            Some(referenced) => Ok(referenced.changes.clone()),
            None => Err(at(format!(
                "it refers to changeset {id} by {author}, which is not in the changelog"
            ))),
        },
        Rollback::Automatic => {
            // Inverses run in reverse change order.
            let mut out = vec![];
            for change in changeset.changes.iter().rev() {
                match change {
                    Change::LoadData(load) => match dialect.and_then(|d| load.inverse(d)) {
                        Some(inverse) => out.extend(inverse.into_iter().map(Change::Structured)),
                        None => {
                            return Err(at(format!(
                                "{} has no automatic rollback; write one",
                                load.name()
                            )));
                        }
                    },
                    Change::Sql(_) | Change::SqlFile(_) => {
                        return Err(format!(
                            "{}:{}: changeset {} has no rollback, and raw SQL has no automatic inverse\n  help: add a rollback (`--rollback <sql>`, or `rollback:` in YAML; `empty` if nothing needs undoing)",
                            changeset.file,
                            changeset.line,
                            changeset.identifier()
                        ));
                    }
                    Change::Structured(structured) => {
                        if let Some(inverse) = structured
                            .inverse()
                            .map_err(|e| at(format!("{e}; write one")))?
                        {
                            out.extend(inverse.into_iter().map(Change::Structured));
                        }
                    }
                    Change::Mongo(mongo) => out.push(Change::Mongo(
                        mongo
                            .inverse()
                            .map_err(|e| at(format!("{e}; write one under `rollback:`")))?,
                    )),
                }
            }
            Ok(out)
        }
    }
}

/// The CONTEXTS column, as Liquibase 4.28's buildFullContext writes it: the contexts of the
/// includes that lead to the changeset, then its own, joined with ` AND `, each in parentheses
/// when it holds a space or a comma (never the run's contexts). NULL without any.
fn contexts_column(changeset: &ChangeSet) -> Option<String> {
    let parts: Vec<String> = changeset
        .inherited_contexts
        .iter()
        .map(String::as_str)
        .chain(changeset.context.as_deref())
        .map(str::trim)
        .filter(|expression| !expression.is_empty())
        .map(|expression| {
            if expression.contains(' ') || expression.contains(',') {
                format!("({expression})")
            } else {
                expression.to_string()
            }
        })
        .collect();
    (!parts.is_empty()).then(|| parts.join(" AND "))
}

/// The LABELS column: the includes' labels, then the changeset's, comma-separated.
fn labels_column(changeset: &ChangeSet) -> Option<String> {
    let labels: Vec<&str> = changeset
        .inherited_labels
        .iter()
        .map(String::as_str)
        .chain(changeset.labels.as_deref())
        .flat_map(|l| l.split(','))
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    (!labels.is_empty()).then(|| labels.join(","))
}
