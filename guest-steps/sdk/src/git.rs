//! Clones Git repositories by connector name into the stage workspace. Needs
//! `grants: { git: [CONNECTOR] }`. The host clones; the step never sees the credentials.

use crate::__private::bindings::lockstep::git::repo as wit;
use crate::Error;

/// What to check out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reference {
    Branch(String),
    Tag(String),
    CommitSha(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloneRequest {
    /// The Git connector's name in lockstep.yaml.
    pub connector: String,
    /// For an account-level connector: the repository under its URL.
    pub repo_name: Option<String>,
    pub reference: Reference,
    /// Commits of history to fetch; 0 for all of it.
    pub depth: u32,
    /// Where the checkout lands, relative to the stage workspace; must not exist or be empty.
    pub directory: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cloned {
    /// The commit checked out (40 hex digits).
    pub commit_sha: String,
    /// The repository's URL, without credentials.
    pub url: String,
}

/// Clones and checks out.
pub fn clone(request: &CloneRequest) -> Result<Cloned, Error> {
    let reference = match &request.reference {
        Reference::Branch(b) => wit::Reference::Branch(b.clone()),
        Reference::Tag(t) => wit::Reference::Tag(t.clone()),
        Reference::CommitSha(c) => wit::Reference::CommitSha(c.clone()),
    };
    let request = wit::CloneRequest {
        connector: request.connector.clone(),
        repo_name: request.repo_name.clone(),
        reference,
        depth: request.depth,
        directory: request.directory.clone(),
    };
    let cloned = wit::clone(&request)?;
    Ok(Cloned {
        commit_sha: cloned.commit_sha,
        url: cloned.url,
    })
}
