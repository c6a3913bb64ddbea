//! The `lockstep` command line: argument parsing and exit codes; the commands are in `cli/`,
//! each a thin layer over the library's [`lockstep::session`].

mod cli;

use cli::output::tell;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use cli::{ConfigArgs, Format, RunArgs};

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
        #[arg(long = "var", value_name = "NAME=VALUE", value_parser = cli::parse_var)]
        vars: Vec<(String, String)>,
        #[command(flatten)]
        config: ConfigArgs,
    },
    /// Run a pipeline.
    Run(RunArgs),
    /// Work on one database's schema: status, update, rollback, tag, history, … (Liquibase-style).
    Db(cli::db::DbArgs),
    /// Write and build custom steps: `step new NAME`, then `step build` to pin it in lockstep.yaml.
    #[command(subcommand)]
    Step(cli::step::StepCommand),
}

fn main() -> ExitCode {
    let result = match Cli::parse().command {
        Command::Validate { file, config } => cli::validate(&file, &config),
        Command::Plan {
            file,
            format,
            vars,
            config,
        } => cli::show_plan(&file, format, vars, &config),
        Command::Run(args) => cli::run(args),
        Command::Db(args) => cli::db::run(args),
        Command::Step(command) => cli::step::run(command),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            tell!("error: {error:#}");
            ExitCode::from(2)
        }
    }
}
