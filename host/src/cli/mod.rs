//! The commands: `validate`, `plan` and `run` here, over [`Session`]; `db` in [`db`], `step` in
//! [`step`].

pub mod db;
pub mod output;
mod progress;
pub mod step;

use output::{say, say_raw, tell};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::ValueEnum;

use lockstep::config::{CONFIG_VARIABLE, ConfigSource};
use lockstep::exec::{Cancel, Reason, status::Status};
use lockstep::sandbox::Sandbox;
use lockstep::sandbox::artifact::ArtifactCache;
use lockstep::session::Session;
use lockstep::{plan, report};

/// Exit code 2: the input is invalid and nothing ran.
const INVALID: u8 = 2;

#[derive(clap::Args)]
pub struct ConfigArgs {
    /// The operator's lockstep.yaml (else $LOCKSTEP_CONFIG, else ~/.config/lockstep/lockstep.yaml).
    #[arg(long, value_name = "PATH")]
    pub config: Option<PathBuf>,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum Format {
    Tree,
    Mermaid,
}

#[derive(clap::Args)]
pub struct RunArgs {
    file: PathBuf,
    /// Set a pipeline variable (repeatable), e.g. for a `<+input>`: --var env=prod
    #[arg(long = "var", value_name = "NAME=VALUE", value_parser = parse_var)]
    vars: Vec<(String, String)>,
    /// Write the JSON report here (format in the README).
    #[arg(long, value_name = "PATH")]
    report: Option<PathBuf>,
    /// Directory for stage workspaces (kept). Default: a temporary directory, removed after the run.
    #[arg(long, value_name = "DIR")]
    workspace: Option<PathBuf>,
    /// How many steps may run at once across the pipeline (sizes the instance pool).
    #[arg(long, default_value_t = 32, value_name = "N")]
    max_parallel: usize,
    #[command(flatten)]
    config: ConfigArgs,
}

pub fn parse_var(text: &str) -> Result<(String, String), String> {
    let (name, value) = text
        .split_once('=')
        .ok_or_else(|| format!("`{text}` is not NAME=VALUE"))?;
    Ok((name.trim().to_string(), value.to_string()))
}

/// Reads the pipeline and the operator's config and checks them, printing every diagnostic.
/// `None` when there were errors.
fn load(file: &Path, args: &ConfigArgs) -> anyhow::Result<Option<Session>> {
    let source =
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let config_source = ConfigSource::find(args.config.as_deref());
    warn_about_repository_config(file, &config_source);
    let config = match config_source.load() {
        Ok(config) => config,
        Err(e) => {
            tell!("{e:#}");
            return Ok(None);
        }
    };
    if let Some(warning) = config.process_policy.unconfined_warning() {
        tell!("warning: {warning}");
    }
    match Session::load(file, &source, config) {
        Ok(session) => {
            for warning in &session.warnings {
                tell!("{warning}");
            }
            Ok(Some(session))
        }
        Err(invalid) => {
            tell!("{invalid}");
            Ok(None)
        }
    }
}

/// A lockstep.yaml next to the pipeline is repository content: it is not read unless the
/// operator points at it, since it could grant itself anything. Says so when one is there.
fn warn_about_repository_config(pipeline: &Path, source: &ConfigSource) {
    let beside = pipeline
        .parent()
        .unwrap_or(Path::new("."))
        .join("lockstep.yaml");
    let same = |a: &Path, b: &Path| std::fs::canonicalize(a).ok() == std::fs::canonicalize(b).ok();
    if beside.is_file() && !source.path().is_some_and(|p| same(p, &beside)) {
        tell!(
            "warning: {} is not read: a lockstep.yaml in the repository could grant its pipelines anything. If you trust it, pass `--config {}` (or set {CONFIG_VARIABLE})",
            beside.display(),
            beside.display()
        );
    }
}

pub fn validate(file: &Path, args: &ConfigArgs) -> anyhow::Result<ExitCode> {
    Ok(match load(file, args)? {
        Some(session) => {
            say!(
                "{} is valid: pipeline `{}`",
                file.display(),
                session.pipeline.identifier
            );
            ExitCode::SUCCESS
        }
        None => ExitCode::from(INVALID),
    })
}

pub fn show_plan(
    file: &Path,
    format: Format,
    vars: Vec<(String, String)>,
    args: &ConfigArgs,
) -> anyhow::Result<ExitCode> {
    let Some(session) = load(file, args)? else {
        return Ok(ExitCode::from(INVALID));
    };
    let meta = session.meta();
    // Without --var, show the plan even when runtime inputs have no value yet.
    let unresolved = if vars.is_empty() {
        session.plan_as_written(&meta).ok()
    } else {
        None
    };
    let root = match unresolved {
        Some(root) => root,
        None => match session.plan(&vars.into_iter().collect(), meta) {
            Ok(plan) => plan.root,
            Err(message) => {
                tell!("error: {message}");
                return Ok(ExitCode::from(INVALID));
            }
        },
    };
    say_raw!(
        "{}",
        match format {
            Format::Tree => plan::render_tree(&root),
            Format::Mermaid => plan::render_mermaid(&root),
        }
    );
    Ok(ExitCode::SUCCESS)
}

pub fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    let Some(session) = load(&args.file, &args.config)? else {
        return Ok(ExitCode::from(INVALID));
    };
    let vars: BTreeMap<String, String> = args.vars.into_iter().collect();
    let plan = match session.plan(&vars, session.meta()) {
        Ok(plan) => plan,
        Err(message) => {
            tell!("error: {message}");
            return Ok(ExitCode::from(INVALID));
        }
    };
    // A report that cannot be written is found out now, not after the deploy.
    if let Some(path) = &args.report
        && let Some(dir) = path
            .parent()
            .filter(|d| !d.as_os_str().is_empty() && !d.is_dir())
    {
        tell!(
            "error: cannot write the report to {}: directory {} does not exist",
            path.display(),
            dir.display()
        );
        return Ok(ExitCode::from(INVALID));
    }
    let sandbox = Sandbox::new(args.max_parallel, ArtifactCache::default_dir(), &|w| {
        tell!("warning: {w}")
    })?;
    let (workspace_root, temporary) = match args.workspace {
        Some(dir) => (dir, None),
        None => {
            let dir = tempfile::Builder::new().prefix("lockstep-").tempdir()?;
            (dir.path().to_path_buf(), Some(dir))
        }
    };
    let prepared = match session.prepare(&plan, &sandbox, workspace_root) {
        Ok(prepared) => prepared,
        Err(problems) => {
            for p in &problems {
                tell!("error: {p}");
            }
            tell!("nothing was run: fix the problems above first");
            return Ok(ExitCode::from(INVALID));
        }
    };
    let mask = session.config.mask.clone();
    let observer = progress::Progress::new(&plan.root, mask.clone());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let outcome = runtime.block_on(async {
        let cancel = Cancel::default();
        let on_interrupt = cancel.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                tell!("\ninterrupted: aborting the running steps…");
                on_interrupt.cancel(Reason::Aborted);
            }
        });
        session.run(prepared, observer.clone(), cancel).await
    });
    observer.done(&outcome);
    if let Some(path) = args.report {
        let json = serde_json::to_string_pretty(&report::build(&outcome, &mask))?;
        std::fs::write(&path, json + "\n")
            .with_context(|| format!("cannot write the report to {}", path.display()))?;
    }
    drop(temporary);
    Ok(
        if matches!(outcome.status, Status::Success | Status::IgnoreFailed) {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        },
    )
}
