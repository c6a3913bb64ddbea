//! liquibase-mongodb's tracking collections, DATABASECHANGELOG and DATABASECHANGELOGLOCK, in the
//! instance's database.
//!
//! Invariants:
//! - The history collection has the unique index `ui_DATABASECHANGELOG` on
//!   `{fileName, author, id}` and the `$jsonSchema` validator liquibase-mongodb applies, so a row
//!   can never be written twice, whoever writes it.
//! - The lock is taken with one guarded `findAndModify` (`locked: false` → `true`) and released
//!   with an update guarded by `lockedBy`, never check-then-replace, so two runners cannot both win
//!   (the race liquibase-mongodb 4.28 has).
//! - The lock is a lease, since MongoDB has no session-bound lock: its holder renews
//!   `lockGranted` between changesets, and a Lockstep holder whose lease ran out is taken over
//!   with a guarded `findAndModify`, which says so. A lock held by liquibase-mongodb is waited for.
//! - Where the server has transactions (a replica set), a changeset of inserts and its history
//!   document commit in one transaction. Other changesets (collection and index changes, commands)
//!   run outside one, so the lock document names the changeset while it runs
//!   (`changeSetInProgress`); a runner that finds the name there after a crash reports the
//!   changeset as possibly half-done and does not re-run it.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value, json};

use crate::changes::Structured;
use crate::db::{DbError, Mongo};
use crate::model::{Change, Precondition};
use crate::mongo_changes::{MongoChange, MongoCommand};
use crate::mongo_json;
use crate::store::{HistoryRow, LOCKED_BY_PREFIX, LockAttempt, NewRow, Record, Store, interrupted};

const HISTORY: &str = "DATABASECHANGELOG";
const LOCK: &str = "DATABASECHANGELOGLOCK";
/// The server's code for a duplicate key.
const DUPLICATE_KEY: i64 = 11000;
/// The server's code for "collection already exists".
const NAMESPACE_EXISTS: i64 = 48;
/// The lock document's field that names the changeset running outside a transaction.
const IN_PROGRESS: &str = "changeSetInProgress";
/// The lock document's field that holds the session the holder runs its transactions in.
const SESSION: &str = "transactionSession";

pub struct MongoStore<'d> {
    db: &'d mut dyn Mongo,
    lease: Duration,
    /// Who holds the lock through this store, and when it last renewed it.
    held: Option<(String, Instant)>,
    /// The session transactions run in (its `lsid`), once asked; `Some(None)` without
    /// transactions.
    session: Option<Option<Value>>,
    /// Whether the lock document names that session for this holding of the lock.
    session_recorded: bool,
}

/// A moment as an Extended JSON date.
fn date(at: SystemTime) -> Value {
    let millis = at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis());
    json!({ "$date": { "$numberLong": millis.to_string() } })
}

fn now() -> Value {
    date(SystemTime::now())
}

/// The history collection's validator, as liquibase-mongodb applies it.
fn history_validator() -> Value {
    let text = json!({ "bsonType": ["string", "null"] });
    json!({
        "$jsonSchema": {
            "bsonType": "object",
            "description": "Database Change Log Table.",
            "required": ["id", "author", "fileName", "execType"],
            "properties": {
                "id": { "bsonType": "string" },
                "author": { "bsonType": "string" },
                "fileName": { "bsonType": "string" },
                "dateExecuted": { "bsonType": ["date", "null"] },
                "orderExecuted": { "bsonType": ["int", "null"] },
                "execType": { "bsonType": "string", "enum": ["EXECUTED", "FAILED", "SKIPPED", "RERAN", "MARK_RAN"] },
                "md5sum": text, "description": text, "comments": text, "tag": text,
                "contexts": text, "labels": text, "liquibase": text, "deploymentId": text
            }
        }
    })
}

fn lock_validator() -> Value {
    json!({
        "$jsonSchema": {
            "bsonType": "object",
            "description": "Database Lock Collection.",
            "required": ["_id", "locked"],
            "properties": {
                "_id": { "bsonType": "int" },
                "locked": { "bsonType": "bool" },
                "lockGranted": { "bsonType": ["date", "null"] },
                "lockedBy": { "bsonType": ["string", "null"] }
            }
        }
    })
}

/// A date as Extended JSON gives it back (`{"$date": "…"}` or `{"$date": {"$numberLong": …}}`), as text.
fn date_text(value: &Value) -> String {
    match value.get("$date") {
        Some(Value::String(iso)) => iso.clone(),
        Some(Value::Object(long)) => long
            .get("$numberLong")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
        Some(other) => other.to_string(),
        None => String::new(),
    }
}

fn integer(value: Option<&Value>) -> Option<i64> {
    match value? {
        Value::Number(n) => n.as_i64(),
        Value::Object(wrapped) => wrapped
            .get("$numberInt")
            .or(wrapped.get("$numberLong"))
            .and_then(Value::as_str)
            .and_then(|s| s.parse().ok()),
        _ => None,
    }
}

fn string(document: &Value, field: &str) -> Option<String> {
    document
        .get(field)
        .and_then(Value::as_str)
        .map(str::to_string)
}

/// The server's code of a command error, if the message carries one (`… (11000): …`).
fn error_code(error: &DbError) -> Option<i64> {
    let DbError::Failed(message) = error else {
        return None;
    };
    let open = message.find('(')?;
    let close = message[open..].find(')')? + open;
    message[open + 1..close].parse().ok()
}

impl<'d> MongoStore<'d> {
    pub fn new(db: &'d mut dyn Mongo, lease: Duration) -> Self {
        MongoStore {
            db,
            lease,
            held: None,
            session: None,
            session_recorded: false,
        }
    }

    /// Runs a command; write errors inside an `ok: 1` reply are errors too.
    fn command(&mut self, body: Value) -> Result<Value, DbError> {
        let reply = self.db.run_command(&body.to_string())?;
        checked(&reply)
    }

    fn run_change(&mut self, command: MongoCommand) -> Result<(), DbError> {
        let text = Value::Object(command.body).to_string();
        let reply = if command.admin {
            self.db.run_admin_command(&text)?
        } else {
            self.db.run_command(&text)?
        };
        checked(&reply).map(drop)
    }

    /// Every document of a `find`, following the cursor.
    fn find(
        &mut self,
        collection: &str,
        filter: Value,
        sort: Value,
    ) -> Result<Vec<Value>, DbError> {
        let reply = self.command(
            json!({ "find": collection, "filter": filter, "sort": sort, "batchSize": 10_000 }),
        )?;
        let mut documents = reply["cursor"]["firstBatch"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let mut cursor = integer(reply["cursor"].get("id")).unwrap_or(0);
        while cursor != 0 {
            let more = self.command(json!({ "getMore": { "$numberLong": cursor.to_string() }, "collection": collection, "batchSize": 10_000 }))?;
            documents.extend(
                more["cursor"]["nextBatch"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default(),
            );
            cursor = integer(more["cursor"].get("id")).unwrap_or(0);
        }
        Ok(documents)
    }

    fn collection_exists(&mut self, name: &str) -> Result<bool, DbError> {
        let reply = self.command(
            json!({ "listCollections": 1, "filter": { "name": name }, "nameOnly": true }),
        )?;
        Ok(reply["cursor"]["firstBatch"]
            .as_array()
            .is_some_and(|found| !found.is_empty()))
    }

    /// Creates a collection with a validator; one that already exists is left as it is.
    fn create_collection(&mut self, name: &str, validator: Value) -> Result<bool, DbError> {
        match self.command(json!({ "create": name, "validator": validator, "validationLevel": "strict", "validationAction": "error" })) {
            Ok(_) => Ok(true),
            Err(error) if error_code(&error) == Some(NAMESPACE_EXISTS) => Ok(false),
            Err(error) => Err(error),
        }
    }

    fn count(&mut self, collection: &str, filter: &Option<String>) -> Result<i64, DbError> {
        let query = match filter {
            Some(text) => Value::Object(
                mongo_json::parse_document(text)
                    .map_err(|e| DbError::Invalid(format!("the precondition's `filter`: {e}")))?,
            ),
            None => json!({}),
        };
        let reply = self.command(json!({ "count": collection, "query": query }))?;
        Ok(integer(reply.get("n")).unwrap_or(0))
    }

    fn record(&mut self, record: &Record<'_>) -> Result<(), DbError> {
        match record {
            Record::Insert(row) => self.command(json!({ "insert": HISTORY, "documents": [document(row)] })).map(drop),
            Record::Update(row) => self.command(json!({ "update": HISTORY, "updates": [{ "q": key(&row.filename, &row.author, &row.id), "u": { "$set": document(row) } }] })).map(drop),
            Record::Delete(row) => self.command(json!({ "delete": HISTORY, "deletes": [{ "q": key(&row.filename, &row.author, &row.id), "limit": 1 }] })).map(drop),
        }
    }

    fn claim(&mut self, me: &str) -> Result<bool, DbError> {
        let reply = self.command(json!({
            "findAndModify": LOCK,
            "query": { "_id": 1, "locked": false },
            "update": { "$set": { "locked": true, "lockGranted": now(), "lockedBy": me } },
            "new": true
        }))?;
        Ok(reply.get("value").is_some_and(|v| !v.is_null()))
    }

    fn lock_document(&mut self) -> Result<Option<Value>, DbError> {
        Ok(self
            .find(LOCK, json!({ "_id": 1 }), json!({}))?
            .into_iter()
            .next())
    }

    /// Takes the lock, or takes it over from a Lockstep runner whose lease ran out.
    fn claim_or_take_over(&mut self, me: &str) -> Result<LockAttempt, DbError> {
        if self.claim(me)? {
            return Ok(LockAttempt::Acquired);
        }
        let Some(lock) = self.lock_document()? else {
            // No lock document yet: create it (a racing runner may win; either way one exists).
            self.create_collection(LOCK, lock_validator())?;
            match self.command(json!({ "insert": LOCK, "documents": [{ "_id": 1, "locked": false, "lockGranted": null, "lockedBy": null }] })) {
                Err(error) if error_code(&error) != Some(DUPLICATE_KEY) => return Err(error),
                _ => {}
            }
            return self.claim_or_take_over(me);
        };
        let by = string(&lock, "lockedBy").unwrap_or_else(|| "(unknown)".into());
        let since = lock
            .get("lockGranted")
            .map(date_text)
            .unwrap_or_else(|| "(unknown)".into());
        if by.starts_with(LOCKED_BY_PREFIX) {
            let expired = SystemTime::now()
                .checked_sub(self.lease)
                .unwrap_or(UNIX_EPOCH);
            let reply = self.command(json!({
                "findAndModify": LOCK,
                "query": { "_id": 1, "locked": true, "lockedBy": by, "lockGranted": { "$lt": date(expired) } },
                "update": { "$set": { "lockGranted": now(), "lockedBy": me } },
                "new": true
            }))?;
            if reply.get("value").is_some_and(|v| !v.is_null()) {
                // Its open transaction would hold what it wrote until the server expires it.
                if let Some(session) = lock.get(SESSION).filter(|s| s.is_object()) {
                    self.command(json!({ "killSessions": [session] }))?;
                }
                return Ok(LockAttempt::TookOver {
                    by,
                    since,
                    why: "its lease ran out (a Lockstep runner renews its lock on MongoDB between changesets)",
                });
            }
        }
        Ok(LockAttempt::Held { by, since })
    }

    /// Renews the lease once a third of it has passed; fails if another runner took it over.
    fn renew(&mut self) -> Result<(), DbError> {
        let Some((me, renewed)) = self.held.take() else {
            return Ok(());
        };
        if renewed.elapsed() < self.lease / 3 {
            self.held = Some((me, renewed));
            return Ok(());
        }
        let reply = self.command(json!({ "update": LOCK, "updates": [{ "q": { "_id": 1, "locked": true, "lockedBy": me }, "u": { "$set": { "lockGranted": now() } } }] }))?;
        if integer(reply.get("n")) != Some(1) {
            return Err(DbError::Conflict(format!(
                "the changelog lock was taken over while this run held it (its lease of {} s ran out); stopping before the next changeset\n  help: give changesets that run longer a longer lease with --lock-lease",
                self.lease.as_secs()
            )));
        }
        self.held = Some((me, Instant::now()));
        Ok(())
    }

    /// Whether transactions can be used; the first time in a holding of the lock, the lock
    /// document is told their session, outside any transaction, so that a runner taking over
    /// after this one dies can end the transaction it left open.
    fn has_transactions(&mut self) -> Result<bool, DbError> {
        if self.session.is_none() {
            let lsid = match self.db.transaction_session()? {
                Some(text) => Some(
                    serde_json::from_str::<Value>(&text)
                        .map_err(|e| DbError::Failed(format!("the session id is not JSON: {e}")))?,
                ),
                None => None,
            };
            self.session = Some(lsid);
        }
        let Some(Some(lsid)) = self.session.clone() else {
            return Ok(false);
        };
        if !self.session_recorded {
            let me = self.held.as_ref().map(|(me, _)| me.clone());
            self.command(json!({ "update": LOCK, "updates": [{ "q": { "_id": 1, "lockedBy": me }, "u": { "$set": { SESSION: lsid } } }] }))?;
            self.session_recorded = true;
        }
        Ok(true)
    }

    /// Names the changeset that `record` writes in the lock document while it runs.
    fn mark_in_progress(&mut self, record: &Record<'_>) -> Result<(), DbError> {
        let ((filename, id, author), rollback) = record.changeset();
        let mark = json!({ "fileName": filename, "id": id, "author": author, "rollback": rollback, "since": now() });
        self.command(json!({ "update": LOCK, "updates": [{ "q": { "_id": 1 }, "u": { "$set": { IN_PROGRESS: mark } } }] }))
            .map(drop)
    }

    fn clear_in_progress(&mut self) -> Result<(), DbError> {
        self.command(json!({ "update": LOCK, "updates": [{ "q": { "_id": 1 }, "u": { "$unset": { IN_PROGRESS: "" } } }] }))
            .map(drop)
    }

    /// With the lock just taken: refuses to go on if a runner stopped in the middle of a
    /// changeset that ran outside a transaction; a mark whose changeset did finish is cleared.
    fn check_interrupted(&mut self) -> Result<(), DbError> {
        let Some(mark) = self
            .lock_document()?
            .and_then(|lock| lock.get(IN_PROGRESS).cloned())
        else {
            return Ok(());
        };
        let (filename, id, author) = (
            string(&mark, "fileName").unwrap_or_default(),
            string(&mark, "id").unwrap_or_default(),
            string(&mark, "author").unwrap_or_default(),
        );
        let rollback = mark.get("rollback").and_then(Value::as_bool) == Some(true);
        let recorded = !self
            .find(HISTORY, key(&filename, &author, &id), json!({}))?
            .is_empty();
        if recorded != rollback {
            return self.clear_in_progress();
        }
        let since = mark.get("since").map(date_text).unwrap_or_default();
        Err(interrupted(
            &format!("{filename}::{id}::{author}"),
            rollback,
            &since,
            "MongoDB ran it outside a transaction",
        ))
    }
}

/// Whether a changeset of `changes` can commit with its history document in one transaction:
/// inserts can; collection and index changes, and arbitrary commands, are not run in one.
fn transactable(changes: &[Change]) -> bool {
    changes.iter().all(|change| {
        matches!(
            change,
            Change::Mongo(MongoChange::InsertOne { .. } | MongoChange::InsertMany { .. })
                | Change::Structured(Structured::TagDatabase { .. } | Structured::Empty)
        )
    })
}

/// The reply of a command, with write errors turned into errors.
fn checked(reply: &str) -> Result<Value, DbError> {
    let reply: Value = serde_json::from_str(reply)
        .map_err(|e| DbError::Failed(format!("the server's reply is not JSON: {e}")))?;
    if let Some(error) = reply
        .get("writeErrors")
        .and_then(Value::as_array)
        .and_then(|errors| errors.first())
    {
        let code = integer(error.get("code")).unwrap_or_default();
        return Err(DbError::Failed(format!(
            "write error ({code}): {}",
            error
                .get("errmsg")
                .and_then(Value::as_str)
                .unwrap_or("(no message)")
        )));
    }
    if let Some(error) = reply.get("writeConcernError") {
        return Err(DbError::Failed(format!(
            "write concern error: {}",
            error
                .get("errmsg")
                .and_then(Value::as_str)
                .unwrap_or("(no message)")
        )));
    }
    Ok(reply)
}

fn no_script() -> DbError {
    DbError::Invalid("update-sql and rollback-sql print SQL, and a MongoDB changelog has none (Liquibase refuses them too)\n  help: `lockstep db status` lists what an update would run".into())
}

/// The command a change runs (none for `tagDatabase` and `empty`); an error for a SQL change.
fn command_of(change: &Change) -> Result<Option<MongoCommand>, String> {
    match change {
        Change::Mongo(change) => change.command().map(Some),
        Change::Structured(Structured::TagDatabase { .. } | Structured::Empty) => Ok(None),
        Change::Sql(_) | Change::SqlFile(_) | Change::LoadData(_) => Err(format!(
            "`{}` is a SQL change; it cannot run on MongoDB",
            change.description()
        )),
        Change::Structured(change) => Err(format!(
            "`{}` is a SQL change; it cannot run on MongoDB",
            change.name()
        )),
    }
}

fn key(filename: &str, author: &str, id: &str) -> Value {
    json!({ "fileName": filename, "author": author, "id": id })
}

/// A history document, with liquibase-mongodb's field names, order and types.
fn document(row: &NewRow) -> Value {
    let mut fields = Map::new();
    fields.insert("fileName".into(), json!(row.filename));
    fields.insert("id".into(), json!(row.id));
    fields.insert("author".into(), json!(row.author));
    fields.insert("md5sum".into(), json!(row.md5sum));
    fields.insert("dateExecuted".into(), now());
    fields.insert("tag".into(), json!(row.tag));
    fields.insert("execType".into(), json!(row.exec_type));
    fields.insert("description".into(), json!(row.description));
    fields.insert("comments".into(), json!(row.comments));
    fields.insert("contexts".into(), json!(row.contexts));
    fields.insert("labels".into(), json!(row.labels));
    fields.insert("deploymentId".into(), json!(row.deployment_id));
    fields.insert(
        "orderExecuted".into(),
        json!({ "$numberInt": row.order_executed.to_string() }),
    );
    fields.insert("liquibase".into(), json!(row.liquibase));
    Value::Object(fields)
}

impl Store for MongoStore<'_> {
    fn dbms(&self) -> &'static str {
        crate::db::MONGODB_DBMS
    }

    fn check(&self, change: &Change) -> Result<(), String> {
        command_of(change).map(drop)
    }

    fn each_history(
        &mut self,
        each: &mut dyn FnMut(HistoryRow) -> Result<(), DbError>,
    ) -> Result<(), DbError> {
        let documents = self.find(HISTORY, json!({}), json!({ "orderExecuted": 1 }))?;
        documents.iter().try_for_each(|d| {
            each(HistoryRow {
                id: string(d, "id").unwrap_or_default(),
                author: string(d, "author").unwrap_or_default(),
                filename: string(d, "fileName").unwrap_or_default(),
                date_executed: d.get("dateExecuted").map(date_text).unwrap_or_default(),
                order_executed: integer(d.get("orderExecuted")).unwrap_or_default(),
                exec_type: string(d, "execType").unwrap_or_default(),
                md5sum: string(d, "md5sum"),
                description: string(d, "description"),
                tag: string(d, "tag"),
                deployment_id: string(d, "deploymentId"),
            })
        })
    }

    fn ensure_history(&mut self) -> Result<(), DbError> {
        if self.collection_exists(HISTORY)? {
            return Ok(());
        }
        self.create_collection(HISTORY, history_validator())?;
        self.command(json!({ "createIndexes": HISTORY, "indexes": [{ "key": { "fileName": 1, "author": 1, "id": 1 }, "name": "ui_DATABASECHANGELOG", "unique": true }] }))
            .map(drop)
    }

    fn run(
        &mut self,
        changes: &[Change],
        record: &Record<'_>,
        atomic: bool,
    ) -> Result<(), DbError> {
        self.renew()?;
        let mut commands = vec![];
        for change in changes {
            commands.extend(command_of(change).map_err(DbError::Invalid)?);
        }
        if commands.is_empty() {
            return self.record(record);
        }
        if atomic && transactable(changes) && self.has_transactions()? {
            self.db.start_transaction()?;
            let done = commands
                .into_iter()
                .try_for_each(|command| self.run_change(command))
                .and_then(|()| self.record(record));
            return match done {
                Ok(()) => self.db.commit_transaction(),
                Err(error) => {
                    // The error is what matters; the server drops the transaction either way.
                    let _ = self.db.abort_transaction();
                    Err(error)
                }
            };
        }
        self.mark_in_progress(record)?;
        // A first change that is one write and failed changed nothing; otherwise the mark stays.
        let first_is_one_write = changes.iter().find_map(|c| match c {
            Change::Mongo(change) => Some(!matches!(
                change,
                MongoChange::InsertMany { .. }
                    | MongoChange::RunCommand { .. }
                    | MongoChange::AdminCommand { .. }
            )),
            _ => None,
        }) == Some(true);
        for (index, command) in commands.into_iter().enumerate() {
            if let Err(error) = self.run_change(command) {
                if index == 0 && first_is_one_write {
                    self.clear_in_progress()?;
                }
                return Err(error);
            }
        }
        self.record(record)?;
        self.clear_in_progress()
    }

    fn holds(&mut self, check: &Precondition) -> Result<bool, DbError> {
        Ok(match check {
            Precondition::CollectionExists { collection } => self.collection_exists(collection)?,
            Precondition::DocumentExists { collection, filter } => {
                self.count(collection, filter)? > 0
            }
            Precondition::ExpectedDocumentCount {
                collection,
                filter,
                expected,
            } => self.count(collection, filter)? == *expected,
            other => {
                return Err(DbError::Invalid(format!(
                    "precondition `{}` cannot be checked on MongoDB",
                    other.name()
                )));
            }
        })
    }

    fn set_checksums(&mut self, updates: &[(&HistoryRow, String)]) -> Result<(), DbError> {
        let updates: Vec<Value> = updates.iter().map(|(row, checksum)| json!({ "q": key(&row.filename, &row.author, &row.id), "u": { "$set": { "md5sum": checksum } } })).collect();
        self.command(json!({ "update": HISTORY, "updates": updates }))
            .map(drop)
    }

    fn set_tag(&mut self, row: &HistoryRow, tag: &str) -> Result<(), DbError> {
        self.command(json!({ "update": HISTORY, "updates": [{ "q": key(&row.filename, &row.author, &row.id), "u": { "$set": { "tag": tag } } }] })).map(drop)
    }

    fn try_lock(&mut self, me: &str) -> Result<LockAttempt, DbError> {
        let attempt = self.claim_or_take_over(me)?;
        if matches!(
            attempt,
            LockAttempt::Acquired | LockAttempt::TookOver { .. }
        ) {
            self.held = Some((me.to_string(), Instant::now()));
            self.session_recorded = false;
            if let Err(interrupted) = self.check_interrupted() {
                self.unlock(me)?;
                return Err(interrupted);
            }
        }
        Ok(attempt)
    }

    fn unlock(&mut self, me: &str) -> Result<(), DbError> {
        self.held = None;
        self.command(json!({ "update": LOCK, "updates": [{ "q": { "_id": 1, "locked": true, "lockedBy": me }, "u": { "$set": { "locked": false }, "$unset": { SESSION: "" } } }] })).map(drop)
    }

    fn release_locks(&mut self) -> Result<(), DbError> {
        self.command(json!({ "update": LOCK, "updates": [{ "q": { "_id": 1 }, "u": { "$set": { "locked": false }, "$unset": { IN_PROGRESS: "", SESSION: "" } } }] })).map(drop)
    }

    fn script_setup(&mut self) -> Result<Vec<String>, DbError> {
        Err(no_script())
    }

    fn script(
        &mut self,
        _changes: &[Change],
        _record: &Record<'_>,
    ) -> Result<Vec<String>, DbError> {
        Err(no_script())
    }
}
