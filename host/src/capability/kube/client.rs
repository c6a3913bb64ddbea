//! The client side of `lockstep:kube`: the real `kube` client, bounded by a [`KubeGrant`].
//!
//! Invariants:
//! - Every call passes [`KubeGrant::check`] before any request leaves the host, discovery
//!   included; a custom resource found cluster-scoped by discovery needs a grant that names it.
//! - Applies are server-side (field manager `lockstep`, conflicts forced); kinds are resolved by
//!   API discovery, so CRDs work as well as built-in kinds.
//! - 409 conflicts and transient failures (429, 5xx, connection errors) are retried with backoff;
//!   other API errors map to the WIT error variants with the server's message.

use std::time::{Duration, Instant};

use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
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
    /// The API server's address, for messages about reaching it.
    url: String,
}

/// Waiting reasons of a container that will not start without a change: a rollout with such a
/// pod cannot progress, whatever its deadline says.
const STUCK: &[&str] = &[
    "ImagePullBackOff",
    "ErrImageNeverPull",
    "InvalidImageName",
    "CrashLoopBackOff",
];

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
        // A name already taken stays taken: a retry would only be refused again.
        kube::Error::Api(status) if status.reason == "AlreadyExists" => false,
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
    let config = config(cluster).await?;
    kube::Client::try_from(config).map_err(|e| Error::Unavailable(e.to_string()))
}

async fn config(cluster: &KubeCluster) -> Result<kube::Config, Error> {
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
    Ok(config)
}

impl KubeClient {
    pub async fn open(grant: &KubeGrant) -> Result<Self, Error> {
        let config = config(&grant.cluster).await?;
        let url = config.cluster_url.to_string();
        Ok(KubeClient {
            client: kube::Client::try_from(config)
                .map_err(|e| Error::Unavailable(e.to_string()))?,
            grant: grant.clone(),
            url,
        })
    }

    /// [`api_error`], saying where the server could not be reached.
    fn error(&self, error: kube::Error) -> Error {
        match error {
            kube::Error::HyperError(_) | kube::Error::Service(_) => Error::Unavailable(format!(
                "cannot reach the Kubernetes API server at {} (connector `{}`): {error}",
                self.url, self.grant.connector
            )),
            other => api_error(other),
        }
    }

    /// A discovery failure: the kind the cluster lacks, or why it could not be asked.
    fn discovery_error(&self, error: kube::Error, api_version: &str, kind: &str) -> Error {
        let missing = match &error {
            kube::Error::Discovery(_) => true,
            kube::Error::Api(status) => status.code == 404,
            _ => false,
        };
        if missing {
            return Error::NotFound(format!(
                "the cluster has no kind `{kind}` in `{api_version}` (connector `{}`): check the manifest's `apiVersion` and `kind`, or install the CRD first",
                self.grant.connector
            ));
        }
        self.error(error)
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
                .map_err(|e| self.discovery_error(e, api_version, kind))?;
        let api = match (&capabilities.scope, namespace) {
            (Scope::Cluster, _) if !self.grant.kinds.iter().any(|k| k == kind) => {
                // A custom resource: its scope is known only now, before any object request.
                return Err(self.grant.refuse_cluster_scoped(kind));
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
        let (api, name, object) = self.object(manifest, namespace).await?;
        let mut params = PatchParams::apply(FIELD_MANAGER).force();
        if dry_run {
            params = params.dry_run();
        }
        let patch = Patch::Apply(&object);
        let applied = with_retries(|| api.patch(&name, &params, &patch))
            .await
            .map_err(|e| self.error(e))?;
        Ok(serde_json::to_string(&applied).unwrap_or_default())
    }

    pub async fn create(&self, manifest: &str, namespace: Option<&str>) -> Result<String, Error> {
        let (api, _, object) = self.object(manifest, namespace).await?;
        let object: DynamicObject = serde_json::from_value(object)
            .map_err(|e| Error::Invalid(format!("the manifest is not an object: {e}")))?;
        let params = PostParams {
            field_manager: Some(FIELD_MANAGER.into()),
            ..PostParams::default()
        };
        let created = with_retries(|| api.create(&params, &object))
            .await
            .map_err(|e| self.error(e))?;
        Ok(serde_json::to_string(&created).unwrap_or_default())
    }

    /// A manifest to send: its API (after the grant allowed an apply), its name, and the object
    /// with the namespace it goes to.
    async fn object(
        &self,
        manifest: &str,
        namespace: Option<&str>,
    ) -> Result<(Api<DynamicObject>, String, Value), Error> {
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
        Ok((api, name, object))
    }

    pub async fn get(&self, target: &wit::ObjectRef) -> Result<Option<String>, Error> {
        let namespace = self.namespace_of(target.namespace.as_deref());
        let (api, _) = self
            .api(Verb::Get, &target.api_version, &target.kind, namespace)
            .await?;
        let found = with_retries(|| api.get_opt(&target.name))
            .await
            .map_err(|e| self.error(e))?;
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
            .map_err(|e| self.error(e))?;
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
            Err(error) => Err(self.error(error)),
        }
    }

    /// Polls the workload until it has rolled out, cannot progress, or `give_up_at` comes (then
    /// `limit-exceeded`, so that the step can still record how its deploy ended).
    pub async fn wait_rollout(
        &self,
        target: &wit::ObjectRef,
        give_up_at: Instant,
    ) -> Result<wit::Rollout, Error> {
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
        let what = format!("{} {}", target.kind, target.name);
        for poll in 0.. {
            let object = with_retries(|| api.get(&target.name))
                .await
                .map_err(|e| self.error(e))?;
            let object = serde_json::to_value(&object).unwrap_or_default();
            let waiting = match rollout_state(&target.kind, &object) {
                RolloutState::Done {
                    ready,
                    desired,
                    message,
                } => {
                    return Ok(wit::Rollout {
                        ready,
                        desired,
                        message: format!("{what} rolled out: {message}"),
                    });
                }
                RolloutState::NotWaited(why) => {
                    return Ok(wit::Rollout {
                        ready: 0,
                        desired: 0,
                        message: format!("{what}: not waited for: {why}"),
                    });
                }
                RolloutState::Failed(reason) => {
                    let events = self.events(namespace.as_deref(), &object).await;
                    return Err(Error::Failed(format!(
                        "{what} did not roll out: {reason}{events}"
                    )));
                }
                RolloutState::Progressing(waiting) => waiting,
            };
            // Pods that cannot start end the wait long before a progress deadline would.
            if poll % 4 == 3
                && let Some(stuck) = self.stuck_pod(namespace.as_deref(), &object).await
            {
                let events = self.events(namespace.as_deref(), &object).await;
                return Err(Error::Failed(format!(
                    "{what} cannot roll out: {stuck}{events}"
                )));
            }
            if Instant::now() + ROLLOUT_POLL >= give_up_at {
                return Err(Error::LimitExceeded(format!(
                    "{what} has not rolled out within the step's timeout: {waiting}"
                )));
            }
            tokio::time::sleep(ROLLOUT_POLL).await;
        }
        unreachable!("the loop returns")
    }

    /// The pods of a workload's current template, found by its selector; none when the grant
    /// does not reach Pods.
    async fn pods(&self, namespace: Option<&str>, workload: &Value) -> Vec<Value> {
        let Some(namespace) = namespace else {
            return vec![];
        };
        if self
            .grant
            .check(Verb::List, "v1", "Pod", Some(namespace))
            .is_err()
        {
            return vec![];
        }
        let Some(labels) = workload
            .pointer("/spec/selector/matchLabels")
            .and_then(Value::as_object)
        else {
            return vec![];
        };
        let selector: Vec<String> = labels
            .iter()
            .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
            .collect();
        let api: Api<DynamicObject> = Api::namespaced_with(
            self.client.clone(),
            namespace,
            &ApiResource::from_gvk(&GroupVersionKind::gvk("", "v1", "Pod")),
        );
        let Ok(list) = api
            .list(&ListParams::default().labels(&selector.join(",")))
            .await
        else {
            return vec![];
        };
        let images = |containers: Option<&Value>| -> Vec<String> {
            containers
                .and_then(Value::as_array)
                .map(|cs| {
                    cs.iter()
                        .filter_map(|c| c["image"].as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default()
        };
        let template = images(workload.pointer("/spec/template/spec/containers"));
        list.items
            .iter()
            .map(|pod| serde_json::to_value(pod).unwrap_or_default())
            .filter(|pod| images(pod.pointer("/spec/containers")) == template)
            .collect()
    }

    /// A pod of the new template whose container waits for a reason that does not pass.
    async fn stuck_pod(&self, namespace: Option<&str>, workload: &Value) -> Option<String> {
        for pod in self.pods(namespace, workload).await {
            let statuses = ["initContainerStatuses", "containerStatuses"]
                .iter()
                .filter_map(|field| pod.pointer(&format!("/status/{field}")))
                .filter_map(Value::as_array)
                .flatten();
            for status in statuses {
                let waiting = &status["state"]["waiting"];
                if let Some(reason) = waiting["reason"].as_str()
                    && STUCK.contains(&reason)
                {
                    return Some(format!(
                        "pod {} container {}: {reason}: {}",
                        pod.pointer("/metadata/name")
                            .and_then(Value::as_str)
                            .unwrap_or("?"),
                        status["name"].as_str().unwrap_or("?"),
                        waiting["message"].as_str().unwrap_or_default()
                    ));
                }
            }
        }
        None
    }

    /// Recent events of the workload and of its pods, one per line, for a failure message.
    async fn events(&self, namespace: Option<&str>, workload: &Value) -> String {
        let Some(namespace) = namespace else {
            return String::new();
        };
        let mut names: Vec<String> = vec![
            workload
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
        ];
        names.extend(
            self.pods(Some(namespace), workload)
                .await
                .iter()
                .take(3)
                .filter_map(|p| p.pointer("/metadata/name").and_then(Value::as_str))
                .map(str::to_string),
        );
        let api: Api<DynamicObject> = Api::namespaced_with(
            self.client.clone(),
            namespace,
            &ApiResource::from_gvk(&GroupVersionKind::gvk("", "v1", "Event")),
        );
        let mut lines = String::new();
        for name in names {
            let params = ListParams::default().fields(&format!("involvedObject.name={name}"));
            let Ok(list) = api.list(&params).await else {
                continue;
            };
            for event in &list.items {
                let text = |field: &str| {
                    event
                        .data
                        .get(field)
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string()
                };
                lines.push_str(&format!(
                    "\n  event {name}: {}: {}",
                    text("reason"),
                    text("message")
                ));
            }
        }
        lines
    }
}

enum RolloutState {
    Done {
        ready: u32,
        desired: u32,
        message: String,
    },
    /// What it is waiting for, as `kubectl rollout status` says it.
    Progressing(String),
    Failed(String),
    /// A strategy `kubectl rollout status` cannot follow (`OnDelete`).
    NotWaited(String),
}

/// What `kubectl rollout status` decides, from the object's spec and status.
fn rollout_state(kind: &str, object: &Value) -> RolloutState {
    let number =
        |pointer: &str| object.pointer(pointer).and_then(Value::as_u64).unwrap_or(0) as u32;
    let generation = number("/metadata/generation");
    let observed = number("/status/observedGeneration");
    let strategy = |field: &str| {
        object
            .pointer(&format!("/spec/{field}/type"))
            .and_then(Value::as_str)
            .unwrap_or("RollingUpdate")
            .to_string()
    };
    match kind {
        "Deployment" => {
            if observed < generation {
                return RolloutState::Progressing(
                    "waiting for the deployment spec update to be observed".into(),
                );
            }
            if let Some(stuck) = object
                .pointer("/status/conditions")
                .and_then(Value::as_array)
                .and_then(|conditions| {
                    conditions.iter().find(|c| {
                        c["type"] == "Progressing" && c["reason"] == "ProgressDeadlineExceeded"
                    })
                })
            {
                return RolloutState::Failed(format!(
                    "ProgressDeadlineExceeded: {}",
                    stuck["message"].as_str().unwrap_or_default()
                ));
            }
            let desired = object
                .pointer("/spec/replicas")
                .and_then(Value::as_u64)
                .map_or(1, |r| r as u32);
            let (replicas, updated, available) = (
                number("/status/replicas"),
                number("/status/updatedReplicas"),
                number("/status/availableReplicas"),
            );
            if updated < desired {
                RolloutState::Progressing(format!(
                    "{updated} out of {desired} new replicas have been updated"
                ))
            } else if replicas > updated {
                RolloutState::Progressing(format!(
                    "{} old replicas are pending termination",
                    replicas - updated
                ))
            } else if available < updated {
                RolloutState::Progressing(format!(
                    "{available} of {updated} updated replicas are available"
                ))
            } else {
                RolloutState::Done {
                    ready: number("/status/readyReplicas").max(available),
                    desired,
                    message: format!("{available}/{desired} available"),
                }
            }
        }
        "DaemonSet" => {
            let strategy = strategy("updateStrategy");
            if strategy != "RollingUpdate" {
                return RolloutState::NotWaited(format!(
                    "`{strategy}` updates pods only when they are deleted (kubectl rollout status follows RollingUpdate only)"
                ));
            }
            if observed < generation {
                return RolloutState::Progressing(
                    "waiting for the daemon set spec update to be observed".into(),
                );
            }
            let (desired, updated, available) = (
                number("/status/desiredNumberScheduled"),
                number("/status/updatedNumberScheduled"),
                number("/status/numberAvailable"),
            );
            if updated < desired {
                RolloutState::Progressing(format!(
                    "{updated} out of {desired} new pods have been updated"
                ))
            } else if available < desired {
                RolloutState::Progressing(format!(
                    "{available} of {desired} updated pods are available"
                ))
            } else {
                RolloutState::Done {
                    ready: number("/status/numberReady").max(available),
                    desired,
                    message: format!("{available}/{desired} available"),
                }
            }
        }
        _ => {
            let strategy = strategy("updateStrategy");
            if strategy != "RollingUpdate" {
                return RolloutState::NotWaited(format!(
                    "`{strategy}` updates pods only when they are deleted (kubectl rollout status follows RollingUpdate only)"
                ));
            }
            if observed == 0 || observed < generation {
                return RolloutState::Progressing(
                    "waiting for the statefulset spec update to be observed".into(),
                );
            }
            let desired = object
                .pointer("/spec/replicas")
                .and_then(Value::as_u64)
                .map_or(1, |r| r as u32);
            let ready = number("/status/readyReplicas");
            if ready < desired {
                return RolloutState::Progressing(format!(
                    "waiting for {} pods to be ready",
                    desired - ready
                ));
            }
            let updated = number("/status/updatedReplicas");
            if object
                .pointer("/spec/updateStrategy/rollingUpdate")
                .is_some()
            {
                let partition = number("/spec/updateStrategy/rollingUpdate/partition");
                let wanted = desired.saturating_sub(partition);
                if updated < wanted {
                    return RolloutState::Progressing(format!(
                        "partitioned roll out: {updated} out of {wanted} new pods have been updated"
                    ));
                }
                return RolloutState::Done {
                    ready,
                    desired,
                    message: format!("partitioned roll out complete: {updated} new pods updated"),
                };
            }
            let revision = |field: &str| object.pointer(&format!("/status/{field}")).cloned();
            if revision("updateRevision") != revision("currentRevision") {
                return RolloutState::Progressing(format!(
                    "waiting for the rolling update to complete: {updated} pods at the new revision"
                ));
            }
            RolloutState::Done {
                ready,
                desired,
                message: format!("{ready}/{desired} ready"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn done(state: RolloutState) -> bool {
        matches!(state, RolloutState::Done { .. })
    }

    fn waiting(state: RolloutState) -> String {
        match state {
            RolloutState::Progressing(why) => why,
            _ => panic!("not progressing"),
        }
    }

    #[test]
    fn a_deployment_is_done_when_every_replica_is_updated_and_available() {
        let deployment = |observed: u64, updated: u64, conditions: Value| json!({"metadata": {"generation": 2}, "spec": {"replicas": 2}, "status": {"observedGeneration": observed, "replicas": 2, "updatedReplicas": updated, "readyReplicas": updated, "availableReplicas": updated, "conditions": conditions}});
        assert!(
            waiting(rollout_state("Deployment", &deployment(1, 2, Value::Null)))
                .contains("observed")
        );
        assert_eq!(
            waiting(rollout_state("Deployment", &deployment(2, 1, Value::Null))),
            "1 out of 2 new replicas have been updated"
        );
        assert!(done(rollout_state(
            "Deployment",
            &deployment(2, 2, Value::Null)
        )));
        let stuck = json!([{"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded", "message": "ReplicaSet \"app-1\" has timed out progressing."}]);
        assert!(
            matches!(rollout_state("Deployment", &deployment(2, 1, stuck)), RolloutState::Failed(m) if m.contains("has timed out progressing"))
        );
    }

    #[test]
    fn a_partitioned_stateful_set_is_done_when_the_pods_above_the_partition_are_updated() {
        let stateful = |updated: u64| json!({"metadata": {"generation": 2}, "spec": {"replicas": 3, "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 2}}}, "status": {"observedGeneration": 2, "replicas": 3, "readyReplicas": 3, "updatedReplicas": updated, "currentRevision": "a", "updateRevision": "b"}});
        assert_eq!(
            waiting(rollout_state("StatefulSet", &stateful(0))),
            "partitioned roll out: 0 out of 1 new pods have been updated"
        );
        assert!(
            matches!(rollout_state("StatefulSet", &stateful(1)), RolloutState::Done { message, .. } if message.starts_with("partitioned roll out complete"))
        );
    }

    #[test]
    fn a_stateful_set_without_a_partition_waits_for_its_revisions_to_agree() {
        let stateful = |ready: u64, current: &str| json!({"metadata": {"generation": 1}, "spec": {"replicas": 3}, "status": {"observedGeneration": 1, "replicas": 3, "updatedReplicas": 3, "readyReplicas": ready, "currentRevision": current, "updateRevision": "b"}});
        assert_eq!(
            waiting(rollout_state("StatefulSet", &stateful(2, "b"))),
            "waiting for 1 pods to be ready"
        );
        assert!(
            waiting(rollout_state("StatefulSet", &stateful(3, "a")))
                .contains("rolling update to complete")
        );
        assert!(done(rollout_state("StatefulSet", &stateful(3, "b"))));
    }

    #[test]
    fn on_delete_workloads_are_not_waited_for_as_kubectl_does_not() {
        for kind in ["StatefulSet", "DaemonSet"] {
            let object = json!({"metadata": {"generation": 1}, "spec": {"updateStrategy": {"type": "OnDelete"}}, "status": {}});
            assert!(
                matches!(rollout_state(kind, &object), RolloutState::NotWaited(m) if m.contains("OnDelete")),
                "{kind}"
            );
        }
    }

    #[test]
    fn a_daemon_set_rolls_out_by_its_scheduled_counters() {
        let daemons = |available: u64| json!({"metadata": {"generation": 4}, "status": {"observedGeneration": 4, "desiredNumberScheduled": 5, "updatedNumberScheduled": 5, "numberReady": 5, "numberAvailable": available}});
        assert_eq!(
            waiting(rollout_state("DaemonSet", &daemons(4))),
            "4 of 5 updated pods are available"
        );
        assert!(done(rollout_state("DaemonSet", &daemons(5))));
    }
}
