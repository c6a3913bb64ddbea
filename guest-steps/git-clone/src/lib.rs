//! The built-in `GitClone` step: clones `connectorRef` (and `repoName` under an account-level
//! connector) at a branch, tag or commit into the stage workspace, where later steps find it.
//!
//! Only the `lockstep:git` capability is imported: the host clones on the step's behalf, so the
//! step sees neither the URL's credentials nor any file outside what it asked for.

use lockstep_builtins::NumberOrText;
use lockstep_builtins::git_clone::Settings;
use lockstep_step::git::{self, CloneRequest, Reference};
use lockstep_step::{Error, Outcome, Step, StepContext, export_step};
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GitCloneSpec {
    connector_ref: String,
    repo_name: Option<String>,
    build: Build,
    depth: Option<NumberOrText>,
    clone_directory: Option<String>,
}

#[derive(Deserialize)]
struct Build {
    #[serde(rename = "type")]
    kind: String,
    spec: BuildSpec,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BuildSpec {
    branch: Option<NumberOrText>,
    tag: Option<NumberOrText>,
    commit_sha: Option<NumberOrText>,
}

/// Harness clones under `/harness`, the workspace; Lockstep's workspace is the stage's directory.
fn workspace_relative(directory: &str) -> Result<String, Error> {
    let relative = directory
        .strip_prefix("/harness")
        .map(|rest| rest.trim_start_matches('/'))
        .unwrap_or(directory);
    if relative.is_empty() {
        return Err(Error::Invalid(
            "`cloneDirectory` cannot be the workspace itself; name a directory inside it".into(),
        ));
    }
    Ok(relative.to_string())
}

struct GitClone;

impl Step for GitClone {
    fn run(ctx: &StepContext) -> Result<Outcome, Error> {
        let spec: GitCloneSpec = ctx.spec_as()?;
        let settings: Settings = ctx.settings()?;
        let missing = |field: &str| {
            Error::Invalid(format!(
                "`build.type: {}` needs `build.spec.{field}`",
                spec.build.kind
            ))
        };
        let reference = match spec.build.kind.as_str() {
            "branch" => Reference::Branch(
                spec.build
                    .spec
                    .branch
                    .as_ref()
                    .ok_or_else(|| missing("branch"))?
                    .text(),
            ),
            "tag" => Reference::Tag(
                spec.build
                    .spec
                    .tag
                    .as_ref()
                    .ok_or_else(|| missing("tag"))?
                    .text(),
            ),
            "commitSha" => Reference::CommitSha(
                spec.build
                    .spec
                    .commit_sha
                    .as_ref()
                    .ok_or_else(|| missing("commitSha"))?
                    .text(),
            ),
            other => {
                return Err(Error::Invalid(format!(
                    "`build.type: {other}` is not supported; use branch, tag or commitSha"
                )));
            }
        };
        // Harness's defaults: 50 commits for a branch or tag; a commit may be anywhere, so all.
        let depth = match &spec.depth {
            Some(depth) => depth.text().trim().parse().map_err(|_| {
                Error::Invalid(format!("depth `{}` is not a whole number", depth.text()))
            })?,
            None if matches!(reference, Reference::CommitSha(_)) => 0,
            None => 50,
        };
        let directory = workspace_relative(
            spec.clone_directory
                .as_deref()
                .unwrap_or(&settings.directory),
        )?;
        let request = CloneRequest {
            connector: spec.connector_ref.clone(),
            repo_name: spec.repo_name.clone(),
            reference,
            depth,
            directory: directory.clone(),
        };
        let cloned = git::clone(&request)?;
        ctx.set_output("commitSha", &cloned.commit_sha)?;
        ctx.set_output("cloneDirectory", &directory)?;
        ctx.info(&format!(
            "cloned {} at {} into {directory}/",
            cloned.url, cloned.commit_sha
        ));
        Ok(Outcome::summary(format!(
            "{} at {}",
            directory,
            &cloned.commit_sha[..12.min(cloned.commit_sha.len())]
        )))
    }
}

export_step!(GitClone);
