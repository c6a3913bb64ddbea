//! A Kubernetes API-server DOUBLE for the tests: no kube-apiserver can be installed on these
//! machines, so the product's real `kube` client talks HTTP to this stateful stand-in on loopback.
//!
//! It serves discovery (`/api`, `/apis`, the group-version resource lists, `/version`), CRUD on
//! namespaced and cluster-scoped objects, server-side apply (creating when missing, recording
//! field managers, `dryRun=All`), lists with label and field selectors, `resourceVersion`
//! conflicts on replace, and a Deployment rollout simulation that can succeed, progress slowly,
//! or fail with ProgressDeadlineExceeded (with an Event saying why). Every request is recorded,
//! so a test can prove that nothing reached the "cluster".

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// The app the tests deploy: Deployment `go-mongodb-app` (2 replicas) and ConfigMap `app-settings`.
pub const APP_MANIFESTS: &str = "apiVersion: apps/v1
kind: Deployment
metadata:
  name: go-mongodb-app
  labels: { app: go-mongodb-app }
spec:
  replicas: 2
  selector: { matchLabels: { app: go-mongodb-app } }
  template:
    metadata: { labels: { app: go-mongodb-app } }
    spec:
      containers:
        - name: app
          image: registry.example.com/app:1.0
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: app-settings
data:
  MONGO_DB: orders
";

/// How a Deployment's rollout goes after it is applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rollout {
    /// Ready at once.
    Succeeds,
    /// Ready after this many reads of the Deployment.
    Slow(u32),
    /// Never ready: ProgressDeadlineExceeded.
    Fails,
}

/// (group, version, kind, plural, namespaced)
const RESOURCES: &[(&str, &str, &str, &str, bool)] = &[
    ("", "v1", "ConfigMap", "configmaps", true),
    ("", "v1", "Secret", "secrets", true),
    ("", "v1", "Service", "services", true),
    ("", "v1", "Pod", "pods", true),
    ("", "v1", "Event", "events", true),
    ("", "v1", "Namespace", "namespaces", false),
    ("apps", "v1", "Deployment", "deployments", true),
    ("apps", "v1", "StatefulSet", "statefulsets", true),
    ("apps", "v1", "DaemonSet", "daemonsets", true),
];

#[derive(Default)]
struct State {
    /// `plural/namespace/name` → object (namespace empty when cluster-scoped).
    objects: BTreeMap<String, Value>,
    resource_version: u64,
    requests: Vec<String>,
    /// Deployment name → how its rollouts go (default: succeeds).
    rollouts: HashMap<String, Rollout>,
    /// Deployment key → reads left before a slow rollout completes.
    slow: HashMap<String, u32>,
    /// Images that cannot be pulled: a Deployment running one fails its rollout.
    broken_images: Vec<String>,
    /// HTTP codes the next requests on objects fail with, in order (a flaky or contended server).
    faults: Vec<u16>,
}

pub struct ApiServerDouble {
    pub address: SocketAddr,
    state: Arc<Mutex<State>>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl ApiServerDouble {
    pub fn start() -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let state = Arc::new(Mutex::new(State::default()));
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let address = listener.local_addr().unwrap();
        let shared = state.clone();
        let app = axum::Router::new().fallback(
            move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
                let state = shared.clone();
                async move { handle(&state, method, uri, headers, body) }
            },
        );
        runtime.spawn(async move { axum::serve(listener, app).await.unwrap() });
        ApiServerDouble {
            address,
            state,
            runtime: Some(runtime),
        }
    }

    /// A kubeconfig for this server, context `double`, written into `dir`.
    pub fn kubeconfig(&self, dir: &Path) -> PathBuf {
        let path = dir.join("kubeconfig");
        let text = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: double\n  cluster:\n    server: http://{}\ncontexts:\n- name: double\n  context:\n    cluster: double\n    user: tester\n    namespace: default\ncurrent-context: double\nusers:\n- name: tester\n  user:\n    token: test-token\n",
            self.address
        );
        std::fs::write(&path, text).unwrap();
        path
    }

    pub fn set_rollout(&self, deployment: &str, rollout: Rollout) {
        self.state
            .lock()
            .unwrap()
            .rollouts
            .insert(deployment.to_string(), rollout);
    }

    /// Fails the next `count` requests on objects with HTTP `code` (409 Conflict, 503, …).
    pub fn fail_next(&self, count: usize, code: u16) {
        self.state
            .lock()
            .unwrap()
            .faults
            .extend(std::iter::repeat_n(code, count));
    }

    /// Makes every rollout of a Deployment whose pods use `image` fail, as if it could not be pulled.
    pub fn break_image(&self, image: &str) {
        self.state
            .lock()
            .unwrap()
            .broken_images
            .push(image.to_string());
    }

    /// The object stored under `plural` in `namespace` (`""` when cluster-scoped).
    pub fn object(&self, plural: &str, namespace: &str, name: &str) -> Option<Value> {
        self.state
            .lock()
            .unwrap()
            .objects
            .get(&format!("{plural}/{namespace}/{name}"))
            .cloned()
    }

    /// Every request so far, as `METHOD /path?query`.
    pub fn requests(&self) -> Vec<String> {
        self.state.lock().unwrap().requests.clone()
    }

    /// Requests that touched objects (discovery and `/version` left out).
    pub fn object_requests(&self) -> Vec<String> {
        self.requests()
            .into_iter()
            .filter(|r| {
                r.split_once(' ').is_some_and(|(_, path)| {
                    discovery(path.split('?').next().unwrap_or_default()).is_none()
                })
            })
            .collect()
    }
}

impl Drop for ApiServerDouble {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

fn status(code: u16, reason: &str, message: String) -> Response {
    let body = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message, "reason": reason, "code": code});
    (StatusCode::from_u16(code).unwrap(), axum::Json(body)).into_response()
}

fn ok(value: Value) -> Response {
    (StatusCode::OK, axum::Json(value)).into_response()
}

fn discovery(path: &str) -> Option<Value> {
    let resources = |group: &str, version: &str| {
        let list: Vec<Value> = RESOURCES
            .iter()
            .filter(|r| r.0 == group && r.1 == version)
            .map(|(_, _, kind, plural, namespaced)| json!({"name": plural, "singularName": kind.to_lowercase(), "namespaced": namespaced, "kind": kind, "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"]}))
            .collect();
        let group_version = if group.is_empty() {
            version.to_string()
        } else {
            format!("{group}/{version}")
        };
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": list})
    };
    Some(match path {
        "/version" => {
            json!({"major": "1", "minor": "33", "gitVersion": "v1.33.0-double", "platform": "linux/amd64"})
        }
        "/api" => {
            json!({"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}]})
        }
        "/apis" => {
            json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": [{"name": "apps", "versions": [{"groupVersion": "apps/v1", "version": "v1"}], "preferredVersion": {"groupVersion": "apps/v1", "version": "v1"}}]})
        }
        "/api/v1" => resources("", "v1"),
        "/apis/apps/v1" => resources("apps", "v1"),
        "/openapi/v3" => {
            json!({"paths": {"api/v1": {"serverRelativeURL": "/openapi/v3/api/v1?hash=double"}, "apis/apps/v1": {"serverRelativeURL": "/openapi/v3/apis/apps/v1?hash=double"}}})
        }
        "/openapi/v3/api/v1" => openapi("", "v1"),
        "/openapi/v3/apis/apps/v1" => openapi("apps", "v1"),
        _ => return None,
    })
}

/// An OpenAPI v3 document of a group version, as much of it as kubectl reads: each resource's
/// PATCH operation, tagged with its kind and taking `fieldValidation` (so kubectl validates
/// server-side instead of downloading schemas).
fn openapi(group: &str, version: &str) -> Value {
    let prefix = if group.is_empty() {
        format!("/api/{version}")
    } else {
        format!("/apis/{group}/{version}")
    };
    let paths: serde_json::Map<String, Value> = RESOURCES
        .iter()
        .filter(|r| r.0 == group && r.1 == version)
        .map(|(_, _, kind, plural, namespaced)| {
            let path = if *namespaced { format!("{prefix}/namespaces/{{namespace}}/{plural}/{{name}}") } else { format!("{prefix}/{plural}/{{name}}") };
            let patch = json!({"x-kubernetes-group-version-kind": {"group": group, "version": version, "kind": kind}, "parameters": [{"name": "fieldValidation", "in": "query", "schema": {"type": "string"}}], "responses": {"200": {"description": "OK"}}});
            (path, json!({"patch": patch}))
        })
        .collect();
    json!({"openapi": "3.0.0", "info": {"title": "Kubernetes", "version": "v1.33.0-double"}, "paths": paths})
}

/// What a resource path names: the resource, the namespace (if any) and the object (if any).
struct Target {
    resource: &'static (&'static str, &'static str, &'static str, &'static str, bool),
    namespace: Option<String>,
    name: Option<String>,
}

fn target(path: &str) -> Option<Target> {
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let (group, version, rest) = match parts.as_slice() {
        ["api", version, rest @ ..] => ("", *version, rest),
        ["apis", group, version, rest @ ..] => (*group, *version, rest),
        _ => return None,
    };
    let (namespace, rest) = match rest {
        ["namespaces", namespace, plural, rest @ ..] => {
            (Some(namespace.to_string()), [&[*plural][..], rest].concat())
        }
        rest => (None, rest.to_vec()),
    };
    let resource = RESOURCES
        .iter()
        .find(|r| r.0 == group && r.1 == version && Some(&r.3) == rest.first())?;
    Some(Target {
        resource,
        namespace,
        name: rest.get(1).map(|s| s.to_string()),
    })
}

fn query(uri: &Uri) -> HashMap<String, String> {
    uri.query()
        .unwrap_or_default()
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| {
            (
                k.to_string(),
                v.replace("%3D", "=")
                    .replace("%2C", ",")
                    .replace("%2F", "/"),
            )
        })
        .collect()
}

/// Objects merge recursively; anything else (lists included) is replaced, like an apply that
/// owns the fields it sends.
fn merge(into: &mut Value, from: &Value) {
    match (into, from) {
        (Value::Object(into), Value::Object(from)) => {
            for (key, value) in from {
                merge(into.entry(key.clone()).or_insert(Value::Null), value);
            }
        }
        (into, from) => *into = from.clone(),
    }
}

fn selected(object: &Value, labels: Option<&String>, fields: Option<&String>) -> bool {
    let labels_ok = labels.is_none_or(|selector| {
        selector.split(',').filter(|s| !s.is_empty()).all(|pair| {
            pair.split_once('=').is_some_and(|(k, v)| {
                object
                    .pointer(&format!("/metadata/labels/{k}"))
                    .and_then(Value::as_str)
                    == Some(v)
            })
        })
    });
    let fields_ok = fields.is_none_or(|selector| {
        selector.split(',').filter(|s| !s.is_empty()).all(|pair| {
            pair.split_once('=').is_some_and(|(k, v)| {
                object
                    .pointer(&format!("/{}", k.replace('.', "/")))
                    .and_then(Value::as_str)
                    == Some(v)
            })
        })
    });
    labels_ok && fields_ok
}

fn handle(
    state: &Mutex<State>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut state = state.lock().unwrap();
    let path = uri.path().to_string();
    state.requests.push(format!(
        "{method} {}",
        uri.path_and_query().map_or(path.clone(), |p| p.to_string())
    ));
    if method == Method::GET
        && let Some(document) = discovery(&path)
    {
        return ok(document);
    }
    let Some(Target {
        resource,
        namespace,
        name,
    }) = target(&path)
    else {
        return status(
            404,
            "NotFound",
            format!("the server could not find the requested resource ({path})"),
        );
    };
    if !state.faults.is_empty() {
        let code = state.faults.remove(0);
        let reason = if code == 409 {
            "Conflict"
        } else {
            "ServiceUnavailable"
        };
        return status(code, reason, format!("injected failure {code}"));
    }
    let (group, version, kind, plural, namespaced) = *resource;
    let namespace = if namespaced {
        namespace.unwrap_or_default()
    } else {
        String::new()
    };
    let api_version = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    let params = query(&uri);
    let key = |name: &str| format!("{plural}/{namespace}/{name}");
    match (method.clone(), name) {
        (Method::GET, None) => {
            let prefix = if namespace.is_empty() && namespaced {
                format!("{plural}/")
            } else {
                format!("{plural}/{namespace}/")
            };
            let items: Vec<Value> = state
                .objects
                .iter()
                .filter(|(k, o)| {
                    k.starts_with(&prefix)
                        && selected(o, params.get("labelSelector"), params.get("fieldSelector"))
                })
                .map(|(_, o)| o.clone())
                .collect();
            let rv = state.resource_version.to_string();
            if params.get("watch").is_some_and(|w| w == "true" || w == "1") {
                // A watch from the start: every matching object as ADDED, then the stream ends
                // (a client reconnects from the last resourceVersion, as after a server timeout).
                let events: String = items
                    .iter()
                    .filter(|o| {
                        params.get("resourceVersion").is_none_or(|since| {
                            since == "0"
                                || o.pointer("/metadata/resourceVersion")
                                    .and_then(Value::as_str)
                                    .and_then(|v| v.parse::<u64>().ok())
                                    > since.parse().ok()
                        })
                    })
                    .map(|o| format!("{}\n", json!({"type": "ADDED", "object": o})))
                    .collect();
                return (
                    StatusCode::OK,
                    [("content-type", "application/json")],
                    events,
                )
                    .into_response();
            }
            ok(
                json!({"kind": format!("{kind}List"), "apiVersion": api_version, "metadata": {"resourceVersion": rv}, "items": items}),
            )
        }
        (Method::GET, Some(name)) => {
            let key = key(&name);
            if kind == "Deployment" {
                progress_slow_rollout(&mut state, &key);
            }
            match state.objects.get(&key) {
                Some(object) => ok(object.clone()),
                None => status(404, "NotFound", format!("{plural} \"{name}\" not found")),
            }
        }
        (Method::DELETE, Some(name)) => match state.objects.remove(&key(&name)) {
            Some(_) => ok(
                json!({"kind": "Status", "apiVersion": "v1", "status": "Success", "details": {"name": name, "kind": plural}}),
            ),
            None => status(404, "NotFound", format!("{plural} \"{name}\" not found")),
        },
        (Method::POST, None) => {
            let Ok(object) = serde_json::from_slice::<Value>(&body) else {
                return status(400, "BadRequest", "the body is not JSON".into());
            };
            let Some(name) = object
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .map(str::to_string)
            else {
                return status(422, "Invalid", "metadata.name is required".into());
            };
            if state.objects.contains_key(&key(&name)) {
                return status(
                    409,
                    "AlreadyExists",
                    format!("{plural} \"{name}\" already exists"),
                );
            }
            let stored = store(
                &mut state,
                key(&name),
                object,
                &namespace,
                None,
                "kubectl-create",
            );
            if kind == "Deployment" {
                start_rollout(&mut state, &key(&name), &name, &namespace);
            }
            (
                StatusCode::CREATED,
                axum::Json(state.objects.get(&key(&name)).cloned().unwrap_or(stored)),
            )
                .into_response()
        }
        (Method::PUT, Some(name)) => {
            let Ok(object) = serde_json::from_slice::<Value>(&body) else {
                return status(400, "BadRequest", "the body is not JSON".into());
            };
            let current = state
                .objects
                .get(&key(&name))
                .and_then(|o| o.pointer("/metadata/resourceVersion").cloned());
            if let (Some(sent), Some(current)) =
                (object.pointer("/metadata/resourceVersion"), &current)
                && sent != current
            {
                return status(
                    409,
                    "Conflict",
                    format!(
                        "Operation cannot be fulfilled on {plural} \"{name}\": the object has been modified; please apply your changes to the latest version and try again"
                    ),
                );
            }
            let previous = state.objects.get(&key(&name)).cloned();
            ok(store(
                &mut state,
                key(&name),
                object,
                &namespace,
                previous.as_ref(),
                "kubectl-replace",
            ))
        }
        (Method::PATCH, Some(name)) => {
            let apply = headers
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|t| t.starts_with("application/apply-patch"));
            let Ok(patch) = serde_json::from_slice::<Value>(&body) else {
                return status(400, "BadRequest", "the body is not JSON".into());
            };
            let previous = state.objects.get(&key(&name)).cloned();
            if previous.is_none() && !apply {
                return status(404, "NotFound", format!("{plural} \"{name}\" not found"));
            }
            let mut merged = previous.clone().unwrap_or_else(|| json!({}));
            merge(&mut merged, &patch);
            let manager = params
                .get("fieldManager")
                .cloned()
                .unwrap_or_else(|| "unknown".into());
            if params.contains_key("dryRun") {
                return ok(merged);
            }
            let stored = store(
                &mut state,
                key(&name),
                merged,
                &namespace,
                previous.as_ref(),
                &manager,
            );
            if kind == "Deployment" {
                start_rollout(&mut state, &key(&name), &name, &namespace);
            }
            ok(state.objects.get(&key(&name)).cloned().unwrap_or(stored))
        }
        _ => status(
            405,
            "MethodNotAllowed",
            format!("{method} is not supported on {path}"),
        ),
    }
}

/// Stores `object` with server-set metadata: uid, resourceVersion, generation (bumped when the
/// spec changed), the namespace, and the field manager.
fn store(
    state: &mut State,
    key: String,
    mut object: Value,
    namespace: &str,
    previous: Option<&Value>,
    manager: &str,
) -> Value {
    state.resource_version += 1;
    let generation = match previous {
        None => 1,
        Some(previous) => {
            let generation = previous
                .pointer("/metadata/generation")
                .and_then(Value::as_i64)
                .unwrap_or(1);
            if previous.get("spec") == object.get("spec") {
                generation
            } else {
                generation + 1
            }
        }
    };
    let metadata = object
        .as_object_mut()
        .unwrap()
        .entry("metadata")
        .or_insert_with(|| json!({}));
    let uid = previous
        .and_then(|p| p.pointer("/metadata/uid").cloned())
        .unwrap_or_else(|| json!(format!("uid-{}", state.resource_version)));
    merge(
        metadata,
        &json!({"uid": uid, "resourceVersion": state.resource_version.to_string(), "generation": generation}),
    );
    if !namespace.is_empty() {
        metadata["namespace"] = json!(namespace);
    }
    let mut managers: Vec<Value> = metadata
        .get("managedFields")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if !managers.iter().any(|m| m["manager"] == manager) {
        managers.push(json!({"manager": manager, "operation": "Apply", "apiVersion": object["apiVersion"].clone()}));
    }
    object["metadata"]["managedFields"] = json!(managers);
    state.objects.insert(key, object.clone());
    object
}

fn start_rollout(state: &mut State, key: &str, name: &str, namespace: &str) {
    let broken = state
        .objects
        .get(key)
        .and_then(|o| o.pointer("/spec/template/spec/containers"))
        .and_then(Value::as_array)
        .is_some_and(|containers| {
            containers.iter().any(|c| {
                c["image"]
                    .as_str()
                    .is_some_and(|i| state.broken_images.iter().any(|b| b == i))
            })
        });
    let rollout = if broken {
        Rollout::Fails
    } else {
        state
            .rollouts
            .get(name)
            .copied()
            .unwrap_or(Rollout::Succeeds)
    };
    let Some(object) = state.objects.get_mut(key) else {
        return;
    };
    let generation = object
        .pointer("/metadata/generation")
        .cloned()
        .unwrap_or(json!(1));
    let desired = object
        .pointer("/spec/replicas")
        .and_then(Value::as_u64)
        .unwrap_or(1);
    match rollout {
        Rollout::Succeeds => object["status"] = complete(&generation, desired),
        Rollout::Slow(reads) => {
            object["status"] = json!({"observedGeneration": generation, "replicas": desired, "updatedReplicas": 0, "readyReplicas": 0, "availableReplicas": 0});
            state.slow.insert(key.to_string(), reads);
        }
        Rollout::Fails => {
            let message = format!("ReplicaSet \"{name}-7d9f8c\" has timed out progressing.");
            object["status"] = json!({"observedGeneration": generation, "replicas": desired, "updatedReplicas": 0, "readyReplicas": 0, "availableReplicas": 0, "unavailableReplicas": desired,
                "conditions": [{"type": "Available", "status": "False", "reason": "MinimumReplicasUnavailable"}, {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded", "message": message}]});
            state.resource_version += 1;
            let event_name = format!("{name}.failed");
            let event = json!({"apiVersion": "v1", "kind": "Event", "metadata": {"name": event_name, "namespace": namespace, "resourceVersion": state.resource_version.to_string()},
                "involvedObject": {"kind": "Deployment", "name": name, "namespace": namespace}, "reason": "Failed", "message": "Back-off pulling image \"registry.example.com/app:broken\"", "type": "Warning"});
            state
                .objects
                .insert(format!("events/{namespace}/{event_name}"), event);
        }
    }
}

fn complete(generation: &Value, desired: u64) -> Value {
    json!({"observedGeneration": generation, "replicas": desired, "updatedReplicas": desired, "readyReplicas": desired, "availableReplicas": desired,
        "conditions": [{"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable"}, {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable"}]})
}

fn progress_slow_rollout(state: &mut State, key: &str) {
    let Some(left) = state.slow.get_mut(key) else {
        return;
    };
    if *left > 0 {
        *left -= 1;
        return;
    }
    state.slow.remove(key);
    if let Some(object) = state.objects.get_mut(key) {
        let generation = object
            .pointer("/metadata/generation")
            .cloned()
            .unwrap_or(json!(1));
        let desired = object
            .pointer("/spec/replicas")
            .and_then(Value::as_u64)
            .unwrap_or(1);
        object["status"] = complete(&generation, desired);
    }
}
