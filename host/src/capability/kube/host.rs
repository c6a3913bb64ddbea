//! The `lockstep:kube/cluster` host functions: each call goes to the step's [`KubeClient`], whose
//! grant was found by connector name when the client was opened.

use wasmtime::component::Resource;

use super::KubeView;
use super::bindings::lockstep::kube::cluster as wit;
use super::client::KubeClient;
use std::sync::atomic::Ordering;

use crate::capability::{Error, WitError, find_grant};

impl wit::Host for KubeView<'_> {}

impl wit::HostClient for KubeView<'_> {
    async fn open(
        &mut self,
        connector: String,
    ) -> wasmtime::Result<Result<Resource<KubeClient>, WitError>> {
        let grant = match find_grant(&self.ctx.grants, &connector, &self.ctx.step) {
            Ok(grant) => grant.clone(),
            Err(denied) => return Ok(Err(denied.into())),
        };
        if let Err(exhausted) = self.connections.take() {
            return Ok(Err(exhausted.into()));
        }
        match KubeClient::open(&grant).await {
            Ok(client) => Ok(Ok(self.table.push(client)?)),
            Err(error) => {
                self.connections.give_back();
                Ok(Err(error.into()))
            }
        }
    }

    async fn apply(
        &mut self,
        handle: Resource<KubeClient>,
        manifest: String,
        namespace: Option<String>,
        dry_run: bool,
    ) -> wasmtime::Result<Result<String, WitError>> {
        Ok(self
            .table
            .get(&handle)?
            .apply(&manifest, namespace.as_deref(), dry_run)
            .await
            .map_err(Into::into))
    }

    async fn get(
        &mut self,
        handle: Resource<KubeClient>,
        target: wit::ObjectRef,
    ) -> wasmtime::Result<Result<Option<String>, WitError>> {
        Ok(self
            .table
            .get(&handle)?
            .get(&target)
            .await
            .map_err(Into::into))
    }

    async fn list(
        &mut self,
        handle: Resource<KubeClient>,
        api_version: String,
        kind: String,
        namespace: Option<String>,
        selector: Option<String>,
    ) -> wasmtime::Result<Result<Vec<String>, WitError>> {
        Ok(self
            .table
            .get(&handle)?
            .list(
                &api_version,
                &kind,
                namespace.as_deref(),
                selector.as_deref(),
            )
            .await
            .map_err(Into::into))
    }

    async fn delete(
        &mut self,
        handle: Resource<KubeClient>,
        target: wit::ObjectRef,
    ) -> wasmtime::Result<Result<bool, WitError>> {
        Ok(self
            .table
            .get(&handle)?
            .delete(&target)
            .await
            .map_err(Into::into))
    }

    async fn create(
        &mut self,
        handle: Resource<KubeClient>,
        manifest: String,
        namespace: Option<String>,
    ) -> wasmtime::Result<Result<String, WitError>> {
        Ok(self
            .table
            .get(&handle)?
            .create(&manifest, namespace.as_deref())
            .await
            .map_err(Into::into))
    }

    async fn wait_rollout(
        &mut self,
        handle: Resource<KubeClient>,
        target: wit::ObjectRef,
    ) -> wasmtime::Result<Result<wit::Rollout, WitError>> {
        let waited = self
            .table
            .get(&handle)?
            .wait_rollout(&target, self.ctx.give_up_at)
            .await;
        if let Err(Error::LimitExceeded(_)) = &waited {
            self.ctx.ran_out_of_time.store(true, Ordering::Relaxed);
        }
        Ok(waited.map_err(Into::into))
    }

    async fn drop(&mut self, handle: Resource<KubeClient>) -> wasmtime::Result<()> {
        self.table.delete(handle)?;
        self.connections.give_back();
        Ok(())
    }
}
