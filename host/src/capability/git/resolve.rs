//! Git names in lockstep.yaml, resolved: a connector's remote (with its token), and a Git-hosted
//! schema's repository and reference.

use std::path::Path;

use super::clone::{Reference, clone, clone_into_workspace};
use super::grant::GitRemote;
use crate::capability::Error;
use crate::config::{Config, ConnectorKind, ConnectorSpec, Refusal};

/// The Git connector `name`, with its token read from its secret.
pub fn remote(config: &Config, name: &str) -> Result<GitRemote, Refusal> {
    let ConnectorSpec::Git {
        url,
        account,
        username,
        token_ref,
    } = config.connector(name, ConnectorKind::Git)?
    else {
        unreachable!("checked to be a Git connector")
    };
    let token = token_ref
        .as_ref()
        .map(|secret| config.secret(secret))
        .transpose()?;
    Ok(GitRemote {
        url: url.clone(),
        account: *account,
        username: username.clone(),
        token,
    })
}

/// A Git-hosted schema ready to fetch.
#[derive(Debug, Clone)]
pub struct SchemaFetch {
    pub remote: GitRemote,
    pub url: String,
    pub reference: Reference,
}

/// The schema's Git source, resolved: the remote (with its token), the repository URL and the
/// reference. `None` for a schema whose changelog is under its `root`.
pub fn schema_fetch(config: &Config, schema: &str) -> Result<Option<SchemaFetch>, Refusal> {
    let Some(git) = config.db_schemas.get(schema).and_then(|s| s.git.as_ref()) else {
        return Ok(None);
    };
    let remote = remote(config, &git.connector)
        .map_err(|e| Refusal::Configuration(format!("db schema `{schema}`: {e}")))?;
    let url = remote
        .repository_url(git.repo_name.as_deref())
        .map_err(|e| {
            Refusal::Configuration(format!(
                "db schema `{schema}`: connector `{}`: {e}",
                git.connector
            ))
        })?;
    Ok(Some(SchemaFetch {
        remote,
        url,
        reference: git.reference.clone(),
    }))
}

impl SchemaFetch {
    /// Clones the repository into `into` (a fresh directory). Blocking: run it off the async workers.
    pub fn fetch(&self, into: &Path) -> Result<(), String> {
        clone(&self.remote, &self.url, &self.reference, 1, into)
            .map(drop)
            .map_err(|e| self.failed(e))
    }

    /// Clones the repository into `directory` of a stage workspace, the way GitClone does (no
    /// symlink a step left there is followed). Blocking.
    pub fn fetch_into_workspace(&self, workspace: &Path, directory: &Path) -> Result<(), String> {
        clone_into_workspace(
            &self.remote,
            &self.url,
            &self.reference,
            1,
            workspace,
            &directory.to_string_lossy(),
        )
        .map(drop)
        .map_err(|e| self.failed(e))
    }

    fn failed(&self, error: Error) -> String {
        format!("fetching the schema from {}: {error}", self.url)
    }
}
