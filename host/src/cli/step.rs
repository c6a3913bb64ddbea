//! `lockstep step …`: write a custom step ([`lockstep::authoring`]).

use super::output::{say, tell};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;

use lockstep::authoring::pin::{Pinned, pin_in_file};
use lockstep::authoring::scaffold::{Sdk, new_step};
use lockstep::authoring::{compile, type_name};
use lockstep::config::{CONFIG_VARIABLE, ConfigSource};

#[derive(Subcommand)]
pub enum StepCommand {
    /// Write a new step crate: the SDK as its dependency, a step that reads its spec, logs and
    /// sets an output, and a unit test (`cargo test` runs it on this machine).
    New {
        /// The crate's name (`hello-step`); its step type is the same in PascalCase (`HelloStep`).
        name: String,
        /// Where to write it (default: ./NAME). Must not exist, or be empty.
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
        /// The SDK (`guest-steps/sdk` of a Lockstep checkout); default: the checkout this
        /// lockstep was built from.
        #[arg(long, value_name = "PATH")]
        sdk: Option<PathBuf>,
    },
    /// Build a step crate for wasm32-wasip2 and pin its component (path and sha256) in
    /// lockstep.yaml under `stepTypes`, adding the entry or updating it (its grants stay).
    Build {
        /// The step crate's directory.
        #[arg(default_value = ".")]
        dir: PathBuf,
        /// The lockstep.yaml to pin it in (else $LOCKSTEP_CONFIG, else
        /// ~/.config/lockstep/lockstep.yaml); created when missing.
        #[arg(long, value_name = "PATH")]
        config: Option<PathBuf>,
        /// The step type to pin it as (default: the crate's name in PascalCase).
        #[arg(long = "type", value_name = "TYPE")]
        step_type: Option<String>,
    },
}

pub fn run(command: StepCommand) -> anyhow::Result<ExitCode> {
    match command {
        StepCommand::New { name, dir, sdk } => {
            let dir = dir.unwrap_or_else(|| PathBuf::from(&name));
            let mut found = Sdk::of_this_build();
            if let Some(path) = sdk {
                found = Sdk {
                    path,
                    target_dir: None,
                };
            }
            let made = new_step(&dir, &name, &found)?;
            say!(
                "wrote {} (step type {})\n\nnext:\n  cd {}\n  cargo test\n  lockstep step build --config path/to/lockstep.yaml\n\nthen use `type: {}` in a pipeline; it is granted nothing until its entry in lockstep.yaml says so",
                made.dir.display(),
                made.type_name,
                made.dir.display(),
                made.type_name
            );
        }
        StepCommand::Build {
            dir,
            config,
            step_type,
        } => {
            let Some(config) = ConfigSource::find(config.as_deref())
                .path()
                .map(PathBuf::from)
            else {
                anyhow::bail!(
                    "say which lockstep.yaml to pin the step in: `--config PATH` (or set {CONFIG_VARIABLE})"
                );
            };
            let built = compile::build(&dir, &|note| tell!("note: {note}"))?;
            let step_type = step_type.unwrap_or_else(|| type_name(&built.name));
            let pinned = pin_in_file(&config, &step_type, &built.component, &built.sha256)?;
            say!(
                "built {} (sha256 {})\n{} step type {step_type} in {}",
                built.component.display(),
                built.sha256,
                match pinned {
                    Pinned::Added => "added",
                    Pinned::Updated => "updated",
                },
                config.display()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
