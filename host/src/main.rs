//! The `lockstep` command line: a thin layer over the library.

mod db_command;
mod progress;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use clap::{Parser, Subcommand, ValueEnum};

use lockstep::config::{CONFIG_VARIABLE, Config, ConfigSource};
use lockstep::diag::Diagnostic;
use lockstep::exec::{self, Cancel, Meta, Reason, Run};
use lockstep::pipeline::{self, Parsed};
use lockstep::sandbox::Sandbox;
use lockstep::sandbox::artifact::ArtifactCache;
use lockstep::{plan, report, steps};

/// Run Harness-style pipelines locally, every step sandboxed as a WebAssembly component.
#[derive(Parser)]
#[command(
    name = "lockstep",
    version,
    after_help = "Exit codes: 0 the pipeline succeeded (or ended IgnoreFailed); 1 it failed, was aborted or expired; 2 the input is invalid.\nConnectors, secrets, custom step types and the process sandbox come from the operator's lockstep.yaml: --config, else $LOCKSTEP_CONFIG, else ~/.config/lockstep/lockstep.yaml. A lockstep.yaml in the repository is never read by itself (see \"Security model\" in the README)."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check a pipeline: structure, fields, expressions' syntax, step specs. Runs nothing.
    Validate {
        /// The pipeline YAML file.
        file: PathBuf,
        #[command(flatten)]
        config: ConfigArgs,
    },
    /// Show the graph the pipeline resolves to, with looping strategies expanded.
    Plan {
        file: PathBuf,
        /// `tree` for the terminal, `mermaid` for a diagram.
        #[arg(long, value_enum, default_value_t = Format::Tree)]
        format: Format,
        /// Set a pipeline variable (repeatable): --var env=prod
        #[arg(long = "var", value_name = "NAME=VALUE", value_parser = parse_var)]
        vars: Vec<(String, String)>,
        #[command(flatten)]
        config: ConfigArgs,
    },
    /// Run a pipeline.
    Run {
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
    },
    /// Work on one database's schema: status, update, rollback, tag, history, … (Liquibase-style).
    Db(db_command::DbArgs),
}

#[derive(clap::Args)]
struct ConfigArgs {
    /// The operator's lockstep.yaml (else $LOCKSTEP_CONFIG, else ~/.config/lockstep/lockstep.yaml).
    #[arg(long, value_name = "PATH")]
    config: Option<PathBuf>,
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Tree,
    Mermaid,
}

fn parse_var(text: &str) -> Result<(String, String), String> {
    let (name, value) = text
        .split_once('=')
        .ok_or_else(|| format!("`{text}` is not NAME=VALUE"))?;
    Ok((name.trim().to_string(), value.to_string()))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Validate { file, config } => validate(&file, &config),
        Command::Plan {
            file,
            format,
            vars,
            config,
        } => show_plan(&file, format, vars, &config),
        Command::Run {
            file,
            vars,
            report,
            workspace,
            max_parallel,
            config,
        } => run(&file, vars, report, workspace, max_parallel, &config),
        Command::Db(args) => db_command::run(args),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(2)
        }
    }
}

fn print_diagnostics<'a>(diagnostics: impl IntoIterator<Item = &'a Diagnostic>) {
    for d in diagnostics {
        eprintln!("{d}");
    }
}

/// Reads the pipeline and the operator's config, printing every diagnostic. `None` when there
/// were errors.
fn load(file: &Path, args: &ConfigArgs) -> anyhow::Result<Option<(Parsed, Config)>> {
    let source =
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let config_source = ConfigSource::find(args.config.as_deref());
    warn_about_repository_config(file, &config_source);
    let config = match config_source.load() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("{e:#}");
            return Ok(None);
        }
    };
    if let Some(warning) = config.process_policy.unconfined_warning() {
        eprintln!("warning: {warning}");
    }
    let parsed = match pipeline::parse_pipeline(file, &source) {
        Ok(parsed) => parsed,
        Err(invalid) => {
            eprintln!("{invalid}");
            return Ok(None);
        }
    };
    let checks = steps::check_pipeline(&parsed.pipeline, &config);
    print_diagnostics(parsed.warnings.iter().chain(&checks));
    let errors = checks.iter().filter(|d| d.is_error()).count();
    if errors > 0 {
        eprintln!("{errors} error{} found", if errors == 1 { "" } else { "s" });
        return Ok(None);
    }
    Ok(Some((parsed, config)))
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
        eprintln!(
            "warning: {} is not read: a lockstep.yaml in the repository could grant its pipelines anything. If you trust it, pass `--config {}` (or set {CONFIG_VARIABLE})",
            beside.display(),
            beside.display()
        );
    }
}

fn validate(file: &Path, args: &ConfigArgs) -> anyhow::Result<ExitCode> {
    Ok(match load(file, args)? {
        Some((parsed, _)) => {
            println!(
                "{} is valid: pipeline `{}`",
                file.display(),
                parsed.pipeline.identifier
            );
            ExitCode::SUCCESS
        }
        None => ExitCode::from(2),
    })
}

fn meta_for(parsed: &Parsed) -> Meta {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    Meta {
        name: parsed.pipeline.name.clone(),
        identifier: parsed.pipeline.identifier.clone(),
        execution_id: format!(
            "{:x}{:05x}",
            now.as_secs(),
            now.subsec_micros() ^ std::process::id()
        ),
        sequence_id: 1,
        start_ts: now.as_millis() as u64,
    }
}

fn show_plan(
    file: &Path,
    format: Format,
    vars: Vec<(String, String)>,
    args: &ConfigArgs,
) -> anyhow::Result<ExitCode> {
    let Some((parsed, config)) = load(file, args)? else {
        return Ok(ExitCode::from(2));
    };
    let mask = config.mask.clone();
    let meta = meta_for(&parsed);
    // Without --var, show the plan even when runtime inputs have no value yet.
    let unresolved = vars
        .is_empty()
        .then(|| {
            plan::build(
                &parsed.pipeline,
                &exec::MetaLookup {
                    meta: &meta,
                    variables: &BTreeMap::new(),
                    config: &config,
                    mask: &mask,
                },
            )
            .ok()
        })
        .flatten();
    let root = match unresolved {
        Some(root) => root,
        None => match exec::prepare(
            &parsed.pipeline,
            &vars.into_iter().collect(),
            &config,
            &mask,
            &meta,
        ) {
            Ok((root, _)) => root,
            Err(message) => {
                eprintln!("error: {message}");
                return Ok(ExitCode::from(2));
            }
        },
    };
    print!(
        "{}",
        match format {
            Format::Tree => plan::render_tree(&root),
            Format::Mermaid => plan::render_mermaid(&root),
        }
    );
    Ok(ExitCode::SUCCESS)
}

fn run(
    file: &Path,
    vars: Vec<(String, String)>,
    report_path: Option<PathBuf>,
    workspace: Option<PathBuf>,
    max_parallel: usize,
    args: &ConfigArgs,
) -> anyhow::Result<ExitCode> {
    let Some((parsed, config)) = load(file, args)? else {
        return Ok(ExitCode::from(2));
    };
    let mask = config.mask.clone();
    let meta = meta_for(&parsed);
    let (root, variables) = match exec::prepare(
        &parsed.pipeline,
        &vars.into_iter().collect(),
        &config,
        &mask,
        &meta,
    ) {
        Ok(resolved) => resolved,
        Err(message) => {
            eprintln!("error: {message}");
            return Ok(ExitCode::from(2));
        }
    };
    let sandbox = Sandbox::new(max_parallel, ArtifactCache::default_dir(), &|w| {
        eprintln!("warning: {w}")
    })?;
    let components = match exec::load_components(&root, &config, &sandbox) {
        Ok(components) => components,
        Err(problems) => {
            for p in &problems {
                eprintln!("error: {p}");
            }
            eprintln!("nothing was run: fix the step types above first");
            return Ok(ExitCode::from(2));
        }
    };
    let (workspace_root, temporary) = match workspace {
        Some(dir) => (dir, None),
        None => {
            let dir = tempfile::Builder::new().prefix("lockstep-").tempdir()?;
            (dir.path().to_path_buf(), Some(dir))
        }
    };
    let shared: Vec<&Path> = config
        .process_policy
        .paths
        .iter()
        .map(|p| p.path.as_path())
        .collect();
    if let Err(message) = sandbox.check_isolation(&workspace_root, &shared) {
        eprintln!("error: {message}");
        return Ok(ExitCode::from(2));
    }
    let observer = progress::Progress::new(&root, mask.clone());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let outcome = runtime.block_on(async {
        let cancel = Cancel::default();
        let on_interrupt = cancel.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                eprintln!("\ninterrupted: aborting the running steps…");
                on_interrupt.cancel(Reason::Aborted);
            }
        });
        let run = Run::new(
            &root,
            meta,
            variables,
            &sandbox,
            &config,
            components,
            observer.clone(),
            mask.clone(),
            workspace_root,
        );
        run.execute(cancel).await
    });
    observer.done(&outcome);
    if let Some(path) = report_path {
        let json = serde_json::to_string_pretty(&report::build(&outcome, &mask))?;
        std::fs::write(&path, json + "\n")
            .with_context(|| format!("cannot write the report to {}", path.display()))?;
    }
    drop(temporary);
    Ok(
        if matches!(
            outcome.status,
            exec::status::Status::Success | exec::status::Status::IgnoreFailed
        ) {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        },
    )
}
