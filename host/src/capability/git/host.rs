//! The `lockstep:git/repo` host functions, on [`GitCtx`].

use super::GitCtx;
use super::bindings::lockstep::git::repo as wit;
use super::clone::{Reference, clone_into_workspace};
use crate::capability::{WitError, find_grant};

impl wit::Host for GitCtx {
    async fn clone(
        &mut self,
        request: wit::CloneRequest,
    ) -> wasmtime::Result<Result<wit::Cloned, WitError>> {
        let grant = match find_grant(&self.grants, &request.connector, &self.step) {
            Ok(grant) => grant.clone(),
            Err(denied) => return Ok(Err(denied.into())),
        };
        let url = match grant.remote.repository_url(request.repo_name.as_deref()) {
            Ok(url) => url,
            Err(invalid) => return Ok(Err(WitError::Invalid(invalid))),
        };
        let workspace = self.workspace.clone();
        let reference = match request.reference {
            wit::Reference::Branch(b) => Reference::Branch(b),
            wit::Reference::Tag(t) => Reference::Tag(t),
            wit::Reference::CommitSha(c) => Reference::CommitSha(c),
        };
        let cloned = tokio::task::spawn_blocking(move || {
            clone_into_workspace(
                &grant.remote,
                &url,
                &reference,
                request.depth,
                &workspace,
                &request.directory,
            )
        })
        .await?;
        Ok(cloned
            .map(|c| wit::Cloned {
                commit_sha: c.commit_sha,
                url: c.url,
            })
            .map_err(Into::into))
    }
}
