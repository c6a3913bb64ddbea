//! The built-in `DBSchemaApply` and `DBSchemaRollback` steps (one component, two step types).
//!
//! The changelog is read from the schema's root, preopened read-only at `/schema`; the database is
//! reached only through `lockstep:db`, opened by the `dbInstance` label the step was granted.
//! What lockstep.yaml says about the instance arrives in `spec.lockstep` (added by the runner).

use std::collections::BTreeMap;

use lockstep_changelog::db::{DbError, Dialect, Mongo, Rows, Sql, Value};
use lockstep_changelog::engine::{Engine, EngineError, RollbackTarget, RunSettings};
use lockstep_changelog::load::load;
use lockstep_step::db::{self as wit};
use lockstep_step::mongo as wit_mongo;
use lockstep_step::{Context, ContextExt, Error, Outcome, Step, export_step};
use serde::Deserialize;

/// Where the runner preopens the schema's root.
const SCHEMA_MOUNT: &str = "/schema";

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DbSpec {
    db_instance: String,
    tag: Option<String>,
    #[serde(default)]
    mark_next_change_set_run: bool,
    /// The retired spelling of `markNextChangeSetRun: true`.
    change_set_failure_strategy: Option<String>,
    #[serde(default)]
    tag_database_change_set: bool,
    change_set_count: Option<CountOrText>,
    lockstep: Injected,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum CountOrText {
    Count(u64),
    Text(String),
}

/// Added by the runner from lockstep.yaml.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Injected {
    changelog_file: String,
    #[serde(default)]
    contexts: Vec<String>,
    label_filter: Option<String>,
    #[serde(default)]
    properties: BTreeMap<String, String>,
    lock_holder: String,
    /// `sql` or `mongodb`: which `lockstep:db` interface the instance is reached through.
    database_kind: String,
}

/// The engine's view of a `lockstep:db` connection.
struct HostSql(wit::Connection);

fn from_wit_error(error: lockstep_step::Error) -> DbError {
    match error {
        Error::AccessDenied(m) => DbError::AccessDenied(m),
        Error::NotFound(m) => DbError::NotFound(m),
        Error::Conflict(m) => DbError::Conflict(m),
        Error::Invalid(m) => DbError::Invalid(m),
        Error::Unavailable(m) => DbError::Unavailable(m),
        Error::LimitExceeded(m) | Error::Failed(m) => DbError::Failed(m),
    }
}

fn to_wit(value: &Value) -> wit::Value {
    match value {
        Value::Null => wit::Value::Null,
        Value::Boolean(b) => wit::Value::Boolean(*b),
        Value::Integer(i) => wit::Value::Integer(*i),
        Value::Float(f) => wit::Value::Float(*f),
        Value::Text(t) => wit::Value::Text(t.clone()),
    }
}

fn from_wit(value: wit::Value) -> Value {
    match value {
        wit::Value::Null => Value::Null,
        wit::Value::Boolean(b) => Value::Boolean(b),
        wit::Value::Integer(i) => Value::Integer(i),
        wit::Value::Float(f) => Value::Float(f),
        wit::Value::Text(t) => Value::Text(t),
    }
}

impl Sql for HostSql {
    fn dialect(&self) -> Dialect {
        match self.0.dialect() {
            wit::Dialect::Postgresql => Dialect::Postgresql,
            wit::Dialect::Sqlite => Dialect::Sqlite,
        }
    }

    fn batch(&mut self, sql: &str) -> Result<(), DbError> {
        self.0.batch(sql).map_err(from_wit_error)
    }

    fn execute(&mut self, sql: &str, params: &[Value]) -> Result<u64, DbError> {
        self.0
            .execute(sql, &params.iter().map(to_wit).collect::<Vec<_>>())
            .map_err(from_wit_error)
    }

    fn query(&mut self, sql: &str, params: &[Value]) -> Result<Rows, DbError> {
        let rows: wit::Rows = self
            .0
            .query(sql, &params.iter().map(to_wit).collect::<Vec<_>>())
            .map_err(from_wit_error)?;
        Ok(Rows {
            columns: rows.columns,
            rows: rows
                .rows
                .into_iter()
                .map(|r| r.into_iter().map(from_wit).collect())
                .collect(),
        })
    }

    fn try_advisory_lock(&mut self, key: i64) -> Result<bool, DbError> {
        self.0.try_advisory_lock(key).map_err(from_wit_error)
    }

    fn advisory_unlock(&mut self, key: i64) -> Result<(), DbError> {
        self.0.advisory_unlock(key).map_err(from_wit_error)
    }
}

/// The engine's view of a `lockstep:db/mongo` connection.
struct HostMongo(wit_mongo::Connection);

impl Mongo for HostMongo {
    fn run_command(&mut self, command: &str) -> Result<String, DbError> {
        self.0.run_command(command).map_err(from_wit_error)
    }

    fn run_admin_command(&mut self, command: &str) -> Result<String, DbError> {
        self.0.run_admin_command(command).map_err(from_wit_error)
    }
}

fn engine_error(error: EngineError) -> Error {
    match error {
        EngineError::Invalid(_) | EngineError::UnknownTag { .. } => {
            Error::Invalid(error.to_string())
        }
        EngineError::Locked { .. } | EngineError::HeldByRunner => {
            Error::Conflict(error.to_string())
        }
        EngineError::Db(DbError::Unavailable(m)) => Error::Unavailable(m),
        EngineError::Db(DbError::AccessDenied(m)) => Error::AccessDenied(m),
        other => Error::Failed(other.to_string()),
    }
}

struct DbSchema;

impl Step for DbSchema {
    fn run(ctx: &Context) -> Result<Outcome, Error> {
        let spec: DbSpec = ctx.spec_as()?;
        let changelog = load(
            std::path::Path::new(SCHEMA_MOUNT),
            &spec.lockstep.changelog_file,
            &spec.lockstep.properties,
        )
        .map_err(|errors| {
            Error::Invalid(
                errors
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("\n"),
            )
        })?;
        let settings = RunSettings {
            contexts: spec.lockstep.contexts.clone(),
            label_filter: spec.lockstep.label_filter.clone(),
            holder: spec.lockstep.lock_holder.clone(),
            ..RunSettings::default()
        };
        let (mut sql, mut mongo);
        let mut engine = if spec.lockstep.database_kind == "mongodb" {
            mongo = HostMongo(wit_mongo::Connection::open(&spec.db_instance)?);
            Engine::mongo(&mut mongo, settings)
        } else {
            sql = HostSql(wit::Connection::open(&spec.db_instance)?);
            Engine::sql(&mut sql, settings)
        };
        let outcome = match ctx.step_type().as_str() {
            "DBSchemaRollback" => rollback(ctx, &spec, &changelog, &mut engine),
            _ => apply(ctx, &spec, &changelog, &mut engine),
        };
        for note in &engine.notes {
            ctx.info(note);
        }
        outcome
    }
}

fn apply(
    ctx: &Context,
    spec: &DbSpec,
    changelog: &lockstep_changelog::model::Changelog,
    engine: &mut Engine<'_>,
) -> Result<Outcome, Error> {
    let generated = format!(
        "pre_{}_{}",
        ctx.step_identifier(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    );
    let pre_start_tag = engine.pre_start_tag(&generated).map_err(engine_error)?;
    ctx.set_output("preStartTag", &pre_start_tag)?;
    let mark = spec.mark_next_change_set_run
        || spec.change_set_failure_strategy.as_deref() == Some("MARK_NEXT_RUN");
    let report = match engine.update(changelog, None, mark) {
        Ok(report) => report,
        Err(error) => {
            if let EngineError::ChangeSetFailed { applied, .. } = &error {
                ctx.set_output("changeSetsApplied", &applied.to_string())?;
            }
            return Err(engine_error(error));
        }
    };
    for applied in &report.applied {
        ctx.info(&format!("applied {applied}"));
    }
    ctx.set_output("changeSetsApplied", &report.applied.len().to_string())?;
    if let Some(tag) = &spec.tag {
        engine
            .tag_after_apply(tag, report.applied.len(), spec.tag_database_change_set)
            .map_err(engine_error)?;
    }
    Ok(Outcome::summary(format!(
        "{} changeset(s) applied; pre-start tag {pre_start_tag}",
        report.applied.len()
    )))
}

fn rollback(
    ctx: &Context,
    spec: &DbSpec,
    changelog: &lockstep_changelog::model::Changelog,
    engine: &mut Engine<'_>,
) -> Result<Outcome, Error> {
    let target = match (&spec.tag, &spec.change_set_count) {
        (Some(tag), None) => RollbackTarget::Tag(tag.clone()),
        (None, Some(CountOrText::Count(n))) => RollbackTarget::Count(*n as usize),
        (None, Some(CountOrText::Text(t))) => {
            RollbackTarget::Count(t.trim().parse().map_err(|_| {
                Error::Invalid(format!("changeSetCount `{t}` is not a whole number"))
            })?)
        }
        _ => {
            return Err(Error::Invalid(
                "give exactly one of `tag` or `changeSetCount`".into(),
            ));
        }
    };
    let report = engine.rollback(changelog, &target).map_err(engine_error)?;
    for undone in &report.rolled_back {
        ctx.info(&format!("rolled back {undone}"));
    }
    ctx.set_output(
        "changeSetsRolledBack",
        &report.rolled_back.len().to_string(),
    )?;
    Ok(Outcome::summary(format!(
        "{} changeset(s) rolled back",
        report.rolled_back.len()
    )))
}

export_step!(DbSchema);
