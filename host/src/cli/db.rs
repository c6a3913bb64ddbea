//! `lockstep db …`: Liquibase-style commands against one `dbInstance` of lockstep.yaml, run with
//! the same engine as the DB steps.

use super::output::{say, tell};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;

use lockstep::capability::db::{BlockingSql, DbTarget, SqlConnection};
use lockstep::capability::mongo::{BlockingMongo, MongoConnection};
use lockstep::config::{CONFIG_VARIABLE, ConfigSource};
use lockstep_changelog::engine::{Engine, EngineError, RollbackTarget, RunSettings};

/// The open database, of whichever kind the instance is.
enum Connection {
    Sql(BlockingSql),
    Mongo(BlockingMongo),
}

impl Connection {
    /// The database's name in `dbms` filters.
    fn dbms(&self) -> &'static str {
        match self {
            Connection::Sql(sql) => lockstep_changelog::db::Sql::dialect(sql).dbms_name(),
            Connection::Mongo(_) => lockstep_changelog::db::MONGODB_DBMS,
        }
    }
}

#[derive(clap::Args)]
pub struct DbArgs {
    /// The `dbInstances` entry of lockstep.yaml to work on.
    #[arg(long, global = true, value_name = "NAME")]
    instance: Option<String>,
    /// The operator's lockstep.yaml (else $LOCKSTEP_CONFIG, else ~/.config/lockstep/lockstep.yaml).
    #[arg(long, global = true, value_name = "PATH")]
    config: Option<PathBuf>,
    /// How long to wait for the changelog lock another runner holds (`30s`, `5m`; default 5m).
    #[arg(long, global = true, value_name = "DURATION", value_parser = parse_duration)]
    lock_timeout: Option<std::time::Duration>,
    /// MongoDB: how long the lock lasts unless renewed; a runner renews it between changesets,
    /// and a lock whose lease ran out (its runner died) is taken over (default 2m).
    #[arg(long, global = true, value_name = "DURATION", value_parser = parse_duration)]
    lock_lease: Option<std::time::Duration>,
    #[command(subcommand)]
    command: DbCommand,
}

#[derive(Subcommand)]
enum DbCommand {
    /// List the changesets not yet applied. Takes no lock.
    Status,
    /// Apply pending changesets, in changelog order.
    Update {
        /// Apply at most N.
        #[arg(long, value_name = "N")]
        count: Option<usize>,
    },
    /// Print the SQL `update` would run. Writes nothing.
    UpdateSql {
        #[arg(long, value_name = "N")]
        count: Option<usize>,
    },
    /// Undo the newest N changesets, or everything applied after a tag.
    Rollback(RollbackArgs),
    /// Print the SQL `rollback` would run. Writes nothing.
    RollbackSql(RollbackArgs),
    /// Tag the newest applied changeset (on an empty database, a marker row).
    Tag { tag: String },
    /// Show DATABASECHANGELOG, oldest first.
    History,
    /// Check the changelog, and the checksums of applied changesets against it. Writes nothing.
    Validate,
    /// Clear the changelog lock unconditionally (after a runner that is certainly gone).
    ReleaseLocks,
}

#[derive(clap::Args)]
#[group(required = true, multiple = false)]
struct RollbackArgs {
    #[arg(long, value_name = "N")]
    count: Option<usize>,
    #[arg(long, value_name = "TAG")]
    tag: Option<String>,
}

impl RollbackArgs {
    fn target(&self) -> RollbackTarget {
        match (&self.tag, self.count) {
            (Some(tag), _) => RollbackTarget::Tag(tag.clone()),
            (None, count) => RollbackTarget::Count(count.unwrap_or(1)),
        }
    }
}

fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    lockstep::pipeline::duration::parse(text)
        .ok_or_else(|| format!("`{text}` is not a duration; write e.g. `30s`, `5m` or `1h`"))
}

/// Problems with the input exit 2, failures of the command 1.
fn invalid(message: impl std::fmt::Display) -> ExitCode {
    tell!("error: {message}");
    ExitCode::from(2)
}

pub fn run(args: DbArgs) -> anyhow::Result<ExitCode> {
    let source = ConfigSource::find(args.config.as_deref());
    let Some(config_path) = source.path().map(PathBuf::from) else {
        return Ok(invalid(format!(
            "say which lockstep.yaml with --config PATH (or set {CONFIG_VARIABLE}); a lockstep.yaml in the working directory is not read by itself, since a repository could ship one"
        )));
    };
    let config = match source.load() {
        Ok(config) => config,
        Err(e) => return Ok(invalid(format!("{e:#}"))),
    };
    let Some(instance_name) = args.instance.clone() else {
        let known: Vec<&str> = config.db_instances.keys().map(String::as_str).collect();
        return Ok(invalid(format!(
            "say which database with --instance NAME (instances in {}: {})",
            config_path.display(),
            if known.is_empty() {
                "none".into()
            } else {
                known.join(", ")
            }
        )));
    };
    let Some(instance) = config.db_instances.get(&instance_name) else {
        return Ok(invalid(format!(
            "{} has no db instance `{instance_name}` under `dbInstances:`",
            config_path.display()
        )));
    };
    let schema = &config.db_schemas[&instance.schema];
    // A schema in a Git repository is fetched into a temporary checkout first.
    let checkout = match lockstep::capability::git::resolve::schema_fetch(&config, &instance.schema)
    {
        Ok(Some(fetch)) => {
            let dir = tempfile::tempdir()?;
            if let Err(message) = fetch.fetch(dir.path()) {
                tell!("error: {message}");
                return Ok(ExitCode::from(1));
            }
            Some(dir)
        }
        Ok(None) => None,
        Err(message) => return Ok(invalid(message)),
    };
    let root = checkout
        .as_ref()
        .map_or(schema.root.as_path(), |dir| dir.path());
    let target = match lockstep::capability::db::resolve::target(&config, &instance_name) {
        Ok(target) => target,
        Err(message) => return Ok(invalid(message)),
    };
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "localhost".into());
    let settings = RunSettings {
        contexts: instance
            .context
            .as_deref()
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .map(String::from)
            .collect(),
        label_filter: instance.labels.clone(),
        holder: format!("{host} pid {} (lockstep db)", std::process::id()),
        lock_wait: args
            .lock_timeout
            .unwrap_or(RunSettings::default().lock_wait),
        lock_lease: args.lock_lease.unwrap_or(RunSettings::default().lock_lease),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let load = |dbms: &str| {
        lockstep_changelog::engine::load(
            &settings,
            dbms,
            root,
            &schema.changelog,
            &instance.substitute_properties,
        )
    };
    // The changelog is read while the connection opens, when which database it is is known
    // before connecting.
    let (connection, loaded) = std::thread::scope(|scope| {
        let loading = target.dbms_before_connecting().and_then(|dbms| {
            std::thread::Builder::new()
                // The main thread's size: a changelog that parses there parses here.
                .stack_size(8 << 20)
                .spawn_scoped(scope, move || load(dbms))
                .ok()
        });
        let connection = match &target {
            DbTarget::Mongo { .. } => runtime
                .block_on(MongoConnection::open(&target))
                .map(|c| Connection::Mongo(BlockingMongo::new(c, runtime.handle().clone()))),
            _ => runtime
                .block_on(SqlConnection::open(&target))
                .map(|c| Connection::Sql(BlockingSql::new(c, runtime.handle().clone()))),
        };
        let loaded = loading.map(|thread| {
            thread
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        });
        (connection, loaded)
    });
    let mut connection = match connection {
        Ok(connection) => connection,
        Err(e) => {
            tell!("error: {instance_name}: {e}");
            return Ok(ExitCode::from(1));
        }
    };
    let loaded = loaded.unwrap_or_else(|| load(connection.dbms()));
    let changelog = match loaded {
        Ok(changelog) => changelog,
        Err(errors) => {
            for e in &errors {
                tell!("{e}");
            }
            return Ok(ExitCode::from(2));
        }
    };
    let mut engine = match &mut connection {
        Connection::Sql(sql) => Engine::sql(sql, settings),
        Connection::Mongo(mongo) => Engine::mongo(mongo, settings),
    };
    engine.on_waiting(|report| tell!("note: {report}"));
    let outcome = execute(&mut engine, &args.command, &changelog, &instance_name);
    for note in &engine.notes {
        tell!("note: {note}");
    }
    // The process is about to exit: freeing 100,000 parsed changesets one allocation at a time
    // would only delay that.
    std::mem::forget(changelog);
    Ok(match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error @ (EngineError::Invalid(_) | EngineError::UnknownTag { .. })) => invalid(error),
        Err(error) => {
            tell!("error: {error}");
            ExitCode::from(1)
        }
    })
}

fn execute(
    engine: &mut Engine<'_>,
    command: &DbCommand,
    changelog: &lockstep_changelog::model::Changelog,
    instance: &str,
) -> Result<(), EngineError> {
    match command {
        DbCommand::Status => {
            let pending = engine.status(changelog)?;
            if pending.is_empty() {
                say!("{instance} is up to date");
            } else {
                say!(
                    "{} changeset(s) have not been applied to {instance}:",
                    pending.len()
                );
                for changeset in pending {
                    say!("  {}", changeset.identifier());
                }
            }
        }
        DbCommand::Update { count } => {
            let report = engine.update(changelog, *count, false)?;
            for applied in &report.applied {
                say!("applied {applied}");
            }
            say!(
                "{} changeset(s) applied to {instance}",
                report.applied.len()
            );
        }
        DbCommand::UpdateSql { count } => {
            for statement in engine.update_sql(changelog, *count)? {
                say!("{statement}");
            }
        }
        DbCommand::Rollback(target) => {
            let report = engine.rollback(changelog, &target.target())?;
            for undone in &report.rolled_back {
                say!("rolled back {undone}");
            }
            say!(
                "{} changeset(s) rolled back on {instance}",
                report.rolled_back.len()
            );
        }
        DbCommand::RollbackSql(target) => {
            for statement in engine.rollback_sql(changelog, &target.target())? {
                say!("{statement}");
            }
        }
        DbCommand::Tag { tag } => {
            engine.tag(tag)?;
            say!("tagged {instance} as {tag}");
        }
        DbCommand::History => {
            let rows = engine.history()?;
            say!(
                "{:<12} {:<26} {:<40} {:<16} {:<24} TAG",
                "DEPLOYMENT",
                "DATE",
                "FILENAME",
                "AUTHOR",
                "ID"
            );
            for row in rows {
                say!(
                    "{:<12} {:<26} {:<40} {:<16} {:<24} {}",
                    row.deployment_id.unwrap_or_default(),
                    row.date_executed,
                    row.filename,
                    row.author,
                    row.id,
                    row.tag.unwrap_or_default()
                );
            }
        }
        DbCommand::Validate => {
            let pending = engine.status(changelog)?.len();
            say!(
                "{} is valid: {} changeset(s), {pending} not yet applied to {instance}",
                changelog.path,
                changelog.changesets.len()
            );
        }
        DbCommand::ReleaseLocks => {
            engine.release_locks()?;
            say!("released the changelog lock of {instance}");
        }
    }
    Ok(())
}
