//! The `lockstep:kube/cluster` host functions: each call goes to the step's [`KubeClient`], whose
//! grant was found by connector name when the client was opened.

use wasmtime::component::Resource;

use super::client::KubeClient;
use super::grant::KubeGrant;
use crate::sandbox::StepState;
use crate::sandbox::bindings::WitError;
use crate::sandbox::bindings::lockstep::kube::cluster as wit;

impl wit::Host for StepState {}

impl wit::HostClient for StepState {
    async fn open(
        &mut self,
        connector: String,
    ) -> wasmtime::Result<Result<Resource<KubeClient>, WitError>> {
        let grant = match KubeGrant::find(&self.run.grants.kube, &connector, &self.run.identifier) {
            Ok(grant) => grant.clone(),
            Err(denied) => return Ok(Err(denied)),
        };
        if let Err(exhausted) = self.run.connections.take() {
            return Ok(Err(exhausted));
        }
        match KubeClient::open(&grant).await {
            Ok(client) => Ok(Ok(self.table.push(client)?)),
            Err(error) => {
                self.run.connections.give_back();
                Ok(Err(error))
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
            .await)
    }

    async fn get(
        &mut self,
        handle: Resource<KubeClient>,
        target: wit::ObjectRef,
    ) -> wasmtime::Result<Result<Option<String>, WitError>> {
        Ok(self.table.get(&handle)?.get(&target).await)
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
            .await)
    }

    async fn delete(
        &mut self,
        handle: Resource<KubeClient>,
        target: wit::ObjectRef,
    ) -> wasmtime::Result<Result<bool, WitError>> {
        Ok(self.table.get(&handle)?.delete(&target).await)
    }

    async fn wait_rollout(
        &mut self,
        handle: Resource<KubeClient>,
        target: wit::ObjectRef,
    ) -> wasmtime::Result<Result<wit::Rollout, WitError>> {
        Ok(self.table.get(&handle)?.wait_rollout(&target).await)
    }

    async fn drop(&mut self, handle: Resource<KubeClient>) -> wasmtime::Result<()> {
        self.table.delete(handle)?;
        self.run.connections.give_back();
        Ok(())
    }
}
