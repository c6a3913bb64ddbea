//! The Git connectors a step may clone from, and the repository URL a clone names.

use crate::capability::NamedGrant;

/// A Git connector, resolved from lockstep.yaml.
#[derive(Clone, PartialEq, Eq)]
pub struct GitRemote {
    /// `file://…` or `https://…`: the repository, or with `account` the prefix of repositories.
    pub url: String,
    /// `connectionType: Account`: the URL is a prefix, and a clone names a `repoName` under it.
    pub account: bool,
    pub username: Option<String>,
    /// From the connector's `tokenRef`.
    pub token: Option<String>,
}

impl std::fmt::Debug for GitRemote {
    // Never print the token.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GitRemote")
            .field("url", &self.url)
            .field("account", &self.account)
            .finish_non_exhaustive()
    }
}

/// A Git connector a step may clone from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GitGrant {
    pub connector: String,
    pub remote: GitRemote,
}

impl NamedGrant for GitGrant {
    const KIND: &'static str = "Git connector";

    fn name(&self) -> &str {
        &self.connector
    }
}

impl GitRemote {
    /// The repository's URL: the connector's, or for an account connector `<url>/<repo_name>`.
    pub fn repository_url(&self, repo_name: Option<&str>) -> Result<String, String> {
        match (self.account, repo_name.filter(|r| !r.is_empty())) {
            (true, Some(repo)) if !is_plain_repository_path(repo) => Err(format!("repoName `{repo}` must be a repository path under the connector's URL: segments of letters, digits, `.`, `_` and `-`, without `.` or `..` segments")),
            (true, Some(repo)) => Ok(format!("{}/{repo}", self.url.trim_end_matches('/'))),
            (true, None) => Err("this Git connector is account-level (`connectionType: Account`): say which repository with `repoName`".into()),
            (false, _) => Ok(self.url.clone()),
        }
    }
}

/// `group/repo.git`, not `../private/r`, `%2e%2e` or `a//b`.
fn is_plain_repository_path(repo: &str) -> bool {
    repo.split('/').all(|segment| {
        !segment.is_empty()
            && segment != "."
            && segment != ".."
            && segment
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
    })
}
