//! The client side of `lockstep:kube`: the real `kube` client, bounded by a [`KubeGrant`].
//!
//! Invariants:
//! - Every call passes [`KubeGrant::check`] before any request leaves the host, discovery
//!   included; a custom resource found cluster-scoped by discovery needs a grant that names it.
//! - Applies are server-side (field manager `lockstep`, conflicts forced); kinds are resolved by
//!   API discovery, so CRDs work as well as built-in kinds.
//! - 409 conflicts and transient failures (429, 5xx, connection errors) are retried with backoff;
//!   other API errors map to the WIT error variants with the server's message.

use std::time::Duration;

use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use kube::core::GroupVersionKind;
use kube::discovery::{ApiResource, Scope};
use serde_json::Value;

use super::bindings::lockstep::kube::cluster as wit;
use super::grant::{KubeCluster, KubeGrant, Verb};
use crate::capability::Error;

/// The field manager of every server-side apply.
pub const FIELD_MANAGER: &str = "lockstep";
/// How often a rollout is checked while waiting for it.
const ROLLOUT_POLL: Duration = Duration::from_millis(250);

/// An open connection to a cluster, with the grant that bounds it.
pub struct KubeClient {
    client: kube::Client,
    grant: KubeGrant,
}

fn api_error(error: kube::Error) -> Error {
    match error {
        kube::Error::Api(status) => {
            let message = if status.message.is_empty() {
                status.reason.clone()
            } else {
                status.message.clone()
            };
            match status.code {
                401 | 403 => Error::AccessDenied(format!("the cluster refused: {message}")),
                404 => Error::NotFound(message),
                409 => Error::Conflict(message),
                400 | 422 => Error::Invalid(message),
                429 | 500..=599 => Error::Unavailable(message),
                code => Error::Failed(format!("{message} (HTTP {code})")),
            }
        }
        kube::Error::Discovery(e) => Error::NotFound(format!("API discovery: {e}")),
        other => Error::Unavailable(other.to_string()),
    }
}

fn transient(error: &kube::Error) -> bool {
    match error {
        kube::Error::Api(status) => matches!(status.code, 409 | 429 | 500..=599),
        kube::Error::HyperError(_) | kube::Error::Service(_) => true,
        _ => false,
    }
}

/// Runs `call` up to four times while it fails with a conflict or a transient error.
async fn with_retries<T, F, Fut>(mut call: F) -> Result<T, kube::Error>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, kube::Error>>,
{
    let mut delay = Duration::from_millis(100);
    for _ in 0..3 {
        match call().await {
            Err(error) if transient(&error) => {
                tokio::time::sleep(delay).await;
                delay *= 2;
            }
            done => return done,
        }
    }
    call().await
}

/// `apps/v1` → (`apps`, `v1`); `v1` → (``, `v1`).
fn group_version(api_version: &str) -> (&str, &str) {
    api_version.split_once('/').unwrap_or(("", api_version))
}

/// A client for the cluster a connector points at. Reads the kubeconfig; sends nothing.
pub async fn connect(cluster: &KubeCluster) -> Result<kube::Client, Error> {
    let config = match cluster {
        KubeCluster::InCluster => kube::Config::incluster()
            .map_err(|e| Error::Unavailable(format!("in-cluster configuration: {e}")))?,
        KubeCluster::Kubeconfig { path, context } => {
            let kubeconfig = kube::config::Kubeconfig::read_from(path)
                .map_err(|e| Error::Invalid(format!("kubeconfig {}: {e}", path.display())))?;
            let options = kube::config::KubeConfigOptions {
                context: context.clone(),
                ..Default::default()
            };
            kube::Config::from_custom_kubeconfig(kubeconfig, &options)
                .await
                .map_err(|e| Error::Invalid(format!("kubeconfig {}: {e}", path.display())))?
        }
    };
    kube::Client::try_from(config).map_err(|e| Error::Unavailable(e.to_string()))
}

impl KubeClient {
    pub async fn open(grant: &KubeGrant) -> Result<Self, Error> {
        Ok(KubeClient {
            client: connect(&grant.cluster).await?,
            grant: grant.clone(),
        })
    }

    /// The API of `kind` (resolved by discovery) in `namespace`, after the grant allowed it, and
    /// whether the kind is namespaced.
    async fn api(
        &self,
        verb: Verb,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
    ) -> Result<(Api<DynamicObject>, Scope), Error> {
        self.grant.check(verb, api_version, kind, namespace)?;
        let (group, version) = group_version(api_version);
        let gvk = GroupVersionKind::gvk(group, version, kind);
        let (resource, capabilities) =
            with_retries(|| kube::discovery::pinned_kind(&self.client, &gvk))
                .await
                .map_err(api_error)?;
        let api = match (&capabilities.scope, namespace) {
            (Scope::Cluster, _) if !self.grant.kinds.iter().any(|k| k == kind) => {
                // A custom resource: its scope is known only now, before any object request.
                return Err(Error::AccessDenied(format!(
                    "`{kind}` is cluster-scoped: a grant must name it (connector `{}`)",
                    self.grant.connector
                )));
            }
            (Scope::Cluster, _) => Api::all_with(self.client.clone(), &resource),
            (Scope::Namespaced, Some(namespace)) => {
                Api::namespaced_with(self.client.clone(), namespace, &resource)
            }
            (Scope::Namespaced, None) => Api::all_with(self.client.clone(), &resource),
        };
        Ok((api, capabilities.scope))
    }

    fn namespace_of<'a>(&'a self, given: Option<&'a str>) -> Option<&'a str> {
        given.or(self.grant.default_namespace())
    }

    pub async fn apply(
        &self,
        manifest: &str,
        namespace: Option<&str>,
        dry_run: bool,
    ) -> Result<String, Error> {
        let mut object: Value = serde_json::from_str(manifest)
            .map_err(|e| Error::Invalid(format!("the manifest is not a JSON object: {e}")))?;
        let field = |name: &str| object.get(name).and_then(Value::as_str).map(str::to_string);
        let (Some(api_version), Some(kind)) = (field("apiVersion"), field("kind")) else {
            return Err(Error::Invalid(
                "a manifest needs `apiVersion` and `kind`".into(),
            ));
        };
        let name = object
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| Error::Invalid(format!("the {kind} needs `metadata.name`")))?;
        let namespace = object
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .map(str::to_string)
            .or_else(|| self.namespace_of(namespace).map(str::to_string));
        let (api, scope) = self
            .api(Verb::Apply, &api_version, &kind, namespace.as_deref())
            .await?;
        if let (Scope::Namespaced, Some(namespace), Some(metadata)) = (
            scope,
            &namespace,
            object.get_mut("metadata").and_then(Value::as_object_mut),
        ) {
            metadata.insert("namespace".into(), Value::String(namespace.clone()));
        }
        let mut params = PatchParams::apply(FIELD_MANAGER).force();
        if dry_run {
            params = params.dry_run();
        }
        let patch = Patch::Apply(&object);
        let applied = with_retries(|| api.patch(&name, &params, &patch))
            .await
            .map_err(api_error)?;
        Ok(serde_json::to_string(&applied).unwrap_or_default())
    }

    pub async fn get(&self, target: &wit::ObjectRef) -> Result<Option<String>, Error> {
        let namespace = self.namespace_of(target.namespace.as_deref());
        let (api, _) = self
            .api(Verb::Get, &target.api_version, &target.kind, namespace)
            .await?;
        let found = with_retries(|| api.get_opt(&target.name))
            .await
            .map_err(api_error)?;
        Ok(found.map(|o| serde_json::to_string(&o).unwrap_or_default()))
    }

    pub async fn list(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        selector: Option<&str>,
    ) -> Result<Vec<String>, Error> {
        let (api, _) = self.api(Verb::List, api_version, kind, namespace).await?;
        let mut params = ListParams::default();
        if let Some(selector) = selector {
            params = params.labels(selector);
        }
        let list = with_retries(|| api.list(&params))
            .await
            .map_err(api_error)?;
        Ok(list
            .items
            .iter()
            .map(|o| serde_json::to_string(o).unwrap_or_default())
            .collect())
    }

    pub async fn delete(&self, target: &wit::ObjectRef) -> Result<bool, Error> {
        let namespace = self.namespace_of(target.namespace.as_deref());
        let (api, _) = self
            .api(Verb::Delete, &target.api_version, &target.kind, namespace)
            .await?;
        let params = DeleteParams::default();
        match with_retries(|| api.delete(&target.name, &params)).await {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(status)) if status.code == 404 => Ok(false),
            Err(error) => Err(api_error(error)),
        }
    }

    /// Polls the workload until it has rolled out or reports ProgressDeadlineExceeded. The step's
    /// timeout bounds the wait.
    pub async fn wait_rollout(&self, target: &wit::ObjectRef) -> Result<wit::Rollout, Error> {
        if !matches!(
            target.kind.as_str(),
            "Deployment" | "StatefulSet" | "DaemonSet"
        ) {
            return Err(Error::Invalid(format!(
                "a rollout is a Deployment's, StatefulSet's or DaemonSet's, not a {}'s",
                target.kind
            )));
        }
        let namespace = self
            .namespace_of(target.namespace.as_deref())
            .map(str::to_string);
        let (api, _) = self
            .api(
                Verb::Get,
                &target.api_version,
                &target.kind,
                namespace.as_deref(),
            )
            .await?;
        loop {
            let object = with_retries(|| api.get(&target.name))
                .await
                .map_err(api_error)?;
            let object = serde_json::to_value(&object).unwrap_or_default();
            match rollout_state(&target.kind, &object) {
                RolloutState::Done { ready, desired } => {
                    return Ok(wit::Rollout {
                        ready,
                        desired,
                        message: format!(
                            "{} {} rolled out: {ready}/{desired} ready",
                            target.kind, target.name
                        ),
                    });
                }
                RolloutState::Failed(reason) => {
                    let events = self.events(namespace.as_deref(), &target.name).await;
                    return Err(Error::Failed(format!(
                        "{} {} did not roll out: {reason}{events}",
                        target.kind, target.name
                    )));
                }
                RolloutState::Progressing => tokio::time::sleep(ROLLOUT_POLL).await,
            }
        }
    }

    /// The object's recent events, one per line, for a failure message (empty if none).
    async fn events(&self, namespace: Option<&str>, name: &str) -> String {
        let Some(namespace) = namespace else {
            return String::new();
        };
        let api: Api<DynamicObject> = Api::namespaced_with(
            self.client.clone(),
            namespace,
            &ApiResource::from_gvk(&GroupVersionKind::gvk("", "v1", "Event")),
        );
        let params = ListParams::default().fields(&format!("involvedObject.name={name}"));
        let Ok(list) = api.list(&params).await else {
            return String::new();
        };
        let lines: Vec<String> = list
            .items
            .iter()
            .map(|e| {
                let text = |field: &str| {
                    e.data
                        .get(field)
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string()
                };
                format!("\n  event {}: {}", text("reason"), text("message"))
            })
            .collect();
        lines.concat()
    }
}

enum RolloutState {
    Done { ready: u32, desired: u32 },
    Progressing,
    Failed(String),
}

/// What `kubectl rollout status` decides, from the object's spec and status.
fn rollout_state(kind: &str, object: &Value) -> RolloutState {
    let number =
        |pointer: &str| object.pointer(pointer).and_then(Value::as_u64).unwrap_or(0) as u32;
    let generation = number("/metadata/generation");
    if number("/status/observedGeneration") < generation {
        return RolloutState::Progressing;
    }
    if let Some(conditions) = object
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        && let Some(stuck) = conditions
            .iter()
            .find(|c| c["type"] == "Progressing" && c["reason"] == "ProgressDeadlineExceeded")
    {
        return RolloutState::Failed(format!(
            "ProgressDeadlineExceeded: {}",
            stuck["message"].as_str().unwrap_or_default()
        ));
    }
    let (desired, updated, ready, available) = match kind {
        "DaemonSet" => (
            number("/status/desiredNumberScheduled"),
            number("/status/updatedNumberScheduled"),
            number("/status/numberReady"),
            number("/status/numberAvailable"),
        ),
        _ => {
            let desired = object
                .pointer("/spec/replicas")
                .and_then(Value::as_u64)
                .map_or(1, |r| r as u32);
            let available = if kind == "StatefulSet" {
                number("/status/readyReplicas")
            } else {
                number("/status/availableReplicas")
            };
            (
                desired,
                number("/status/updatedReplicas"),
                number("/status/readyReplicas"),
                available,
            )
        }
    };
    let total = if kind == "DaemonSet" {
        desired
    } else {
        number("/status/replicas")
    };
    if updated >= desired && ready >= desired && available >= desired && total <= desired {
        RolloutState::Done { ready, desired }
    } else {
        RolloutState::Progressing
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rollout_is_done_when_every_replica_is_updated_ready_and_available() {
        let deployment = |observed: u64, updated: u64, conditions: Value| serde_json::json!({"metadata": {"generation": 2}, "spec": {"replicas": 2}, "status": {"observedGeneration": observed, "replicas": 2, "updatedReplicas": updated, "readyReplicas": updated, "availableReplicas": updated, "conditions": conditions}});
        assert!(
            matches!(
                rollout_state("Deployment", &deployment(1, 2, Value::Null)),
                RolloutState::Progressing
            ),
            "an old generation is not done"
        );
        assert!(matches!(
            rollout_state("Deployment", &deployment(2, 1, Value::Null)),
            RolloutState::Progressing
        ));
        assert!(matches!(
            rollout_state("Deployment", &deployment(2, 2, Value::Null)),
            RolloutState::Done {
                ready: 2,
                desired: 2
            }
        ));
        let stuck = serde_json::json!([{"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded", "message": "ReplicaSet \"app-1\" has timed out progressing."}]);
        assert!(
            matches!(rollout_state("Deployment", &deployment(2, 1, stuck)), RolloutState::Failed(m) if m.contains("has timed out progressing"))
        );
    }

    #[test]
    fn stateful_sets_and_daemon_sets_roll_out_by_their_own_counters() {
        let stateful = |ready: u64| serde_json::json!({"metadata": {"generation": 1}, "spec": {"replicas": 3}, "status": {"observedGeneration": 1, "replicas": 3, "updatedReplicas": 3, "readyReplicas": ready}});
        assert!(matches!(
            rollout_state("StatefulSet", &stateful(2)),
            RolloutState::Progressing
        ));
        assert!(matches!(
            rollout_state("StatefulSet", &stateful(3)),
            RolloutState::Done {
                ready: 3,
                desired: 3
            }
        ));
        let daemons = |available: u64| serde_json::json!({"metadata": {"generation": 4}, "status": {"observedGeneration": 4, "desiredNumberScheduled": 5, "updatedNumberScheduled": 5, "numberReady": 5, "numberAvailable": available}});
        assert!(matches!(
            rollout_state("DaemonSet", &daemons(4)),
            RolloutState::Progressing
        ));
        assert!(matches!(
            rollout_state("DaemonSet", &daemons(5)),
            RolloutState::Done {
                ready: 5,
                desired: 5
            }
        ));
    }
}
