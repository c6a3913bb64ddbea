//! The built-in `DBSchemaApply` and `DBSchemaRollback` steps (one component, two step types).
//!
//! The changelog is read from the schema's root, preopened read-only at `/schema`; the database is
//! reached only through `lockstep:db`, opened by the `dbInstance` label the step was granted.
//! What lockstep.yaml says about the instance arrives as the step's settings.

use lockstep_builtins::NumberOrText;
use lockstep_builtins::db::{DatabaseKind, SCHEMA_MOUNT, Settings};
use lockstep_changelog::db::DbError;
use lockstep_changelog::engine::{Engine, EngineError, RollbackTarget, RunSettings};
use lockstep_changelog::model::Changelog;
use lockstep_step::{Error, Outcome, Step, StepContext, db, export_step, mongo};
use serde::Deserialize;

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
    change_set_count: Option<NumberOrText>,
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
    fn run(ctx: &StepContext) -> Result<Outcome, Error> {
        let spec: DbSpec = ctx.spec_as()?;
        let settings: Settings = ctx.settings()?;
        let run_settings = RunSettings {
            contexts: settings.contexts,
            label_filter: settings.label_filter,
            holder: settings.lock_holder,
            ..RunSettings::default()
        };
        let (mut sql, mut mongo);
        let mut engine = match settings.database_kind {
            DatabaseKind::Mongodb => {
                mongo = mongo::Connection::open(&spec.db_instance)?;
                Engine::mongo(&mut mongo, run_settings)
            }
            DatabaseKind::Sql => {
                sql = db::Connection::open(&spec.db_instance)?;
                Engine::sql(&mut sql, run_settings)
            }
        };
        let changelog = engine
            .load(
                std::path::Path::new(SCHEMA_MOUNT),
                &settings.changelog_file,
                &settings.properties,
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
        engine.on_waiting(|report| ctx.info(report));
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
    ctx: &StepContext,
    spec: &DbSpec,
    changelog: &Changelog,
    engine: &mut Engine<'_>,
) -> Result<Outcome, Error> {
    let generated = format!(
        "pre_{}_{}",
        ctx.identifier(),
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
    ctx: &StepContext,
    spec: &DbSpec,
    changelog: &Changelog,
    engine: &mut Engine<'_>,
) -> Result<Outcome, Error> {
    let target = match (&spec.tag, &spec.change_set_count) {
        (Some(tag), None) => RollbackTarget::Tag(tag.clone()),
        (None, Some(count)) => {
            let count = count.text();
            RollbackTarget::Count(count.trim().parse().map_err(|_| {
                Error::Invalid(format!("changeSetCount `{count}` is not a whole number"))
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
