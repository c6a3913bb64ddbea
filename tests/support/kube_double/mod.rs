//! A Kubernetes API-server DOUBLE for the tests: no kube-apiserver can be installed on these
//! machines, so the product's real `kube` client talks HTTP to this stateful stand-in on loopback.
//!
//! It serves discovery (`/api`, `/apis`, the group-version resource lists, `/version`, OpenAPI
//! v3), CRUD on namespaced and cluster-scoped objects, and behaves as the real server does where
//! Lockstep could get it wrong:
//! - writes: server-side apply with field ownership and conflicts ([`apply`]), strategic-merge
//!   and merge patches, `dryRun=All`, `resourceVersion` preconditions on replace and apply;
//! - validation ([`validation`]): RFC 1123 names, label values, the 1 MiB data limit of
//!   ConfigMaps and Secrets, the 3 MiB request limit; failures are `Status` objects with the
//!   server's `reason`, `message` and `details`;
//! - reads: label and field selectors with the server's syntax ([`selectors`]), watches;
//! - controllers ([`workloads`]): rollouts that succeed, progress slowly, exceed their progress
//!   deadline, or never start because an image cannot be pulled (a pod in `ImagePullBackOff`).
//!
//! Every request is recorded, so a test can prove that nothing reached the "cluster".

mod apply;
mod selectors;
mod validation;
mod workloads;

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
    // A custom resource whose kind ends in `List` without being a list.
    ("example.com", "v1", "AccessList", "accesslists", true),
];

#[derive(Default)]
struct State {
    /// `plural/namespace/name` → object (namespace empty when cluster-scoped).
    objects: BTreeMap<String, Value>,
    /// Who owns which fields of each object, by the same key.
    ownership: HashMap<String, apply::Ownership>,
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

    /// Every object stored under `plural` in `namespace`, in name order.
    pub fn objects(&self, plural: &str, namespace: &str) -> Vec<Value> {
        let prefix = format!("{plural}/{namespace}/");
        self.state
            .lock()
            .unwrap()
            .objects
            .iter()
            .filter(|(key, _)| key.starts_with(&prefix))
            .map(|(_, object)| object.clone())
            .collect()
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
            let mut groups: Vec<&str> = RESOURCES
                .iter()
                .map(|r| r.0)
                .filter(|g| !g.is_empty())
                .collect();
            groups.dedup();
            let groups: Vec<Value> = groups
                .iter()
                .map(|g| json!({"name": g, "versions": [{"groupVersion": format!("{g}/v1"), "version": "v1"}], "preferredVersion": {"groupVersion": format!("{g}/v1"), "version": "v1"}}))
                .collect();
            json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
        }
        "/api/v1" => resources("", "v1"),
        other if other.starts_with("/apis/") && other.matches('/').count() == 3 => {
            let (group, version) = other["/apis/".len()..].split_once('/')?;
            if !RESOURCES.iter().any(|r| r.0 == group && r.1 == version) {
                return None;
            }
            resources(group, version)
        }
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
            // Query strings encode a space as `+` (a literal `+` as `%2B`).
            let v = v.replace('+', " ");
            let decoded = percent_encoding::percent_decode_str(&v).decode_utf8_lossy();
            (k.to_string(), decoded.into_owned())
        })
        .collect()
}

/// What an error response names: the object and its resource.
struct Subject<'a> {
    group: &'a str,
    kind: &'a str,
    plural: &'a str,
    name: &'a str,
}

impl Subject<'_> {
    /// `configmaps "x"`, `deployments.apps "x"`: how the server names an object in messages.
    fn resource(&self) -> String {
        if self.group.is_empty() {
            format!("{} \"{}\"", self.plural, self.name)
        } else {
            format!("{}.{} \"{}\"", self.plural, self.group, self.name)
        }
    }

    fn failure(&self, code: u16, reason: &str, message: String, causes: Value) -> Response {
        let mut details = json!({"name": self.name, "group": self.group, "kind": self.plural});
        if !causes.is_null() {
            details["causes"] = causes;
            details["kind"] = json!(self.kind);
        }
        let body = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message, "reason": reason, "details": details, "code": code});
        (StatusCode::from_u16(code).unwrap(), axum::Json(body)).into_response()
    }

    fn not_found(&self) -> Response {
        self.failure(
            404,
            "NotFound",
            format!("{} not found", self.resource()),
            Value::Null,
        )
    }

    fn already_exists(&self) -> Response {
        self.failure(
            409,
            "AlreadyExists",
            format!("{} already exists", self.resource()),
            Value::Null,
        )
    }

    fn modified(&self) -> Response {
        self.failure(409, "Conflict", format!("Operation cannot be fulfilled on {}: the object has been modified; please apply your changes to the latest version and try again", self.resource()), Value::Null)
    }

    fn invalid(&self, field: &str, message: &str) -> Response {
        self.failure(
            422,
            "Invalid",
            format!(
                "{} \"{}\" is invalid: {field}: {message}",
                self.kind, self.name
            ),
            json!([{"reason": "FieldValueInvalid", "message": message, "field": field}]),
        )
    }
}

/// Refuses what the server would not store.
fn check(subject: &Subject<'_>, object: &Value) -> Option<Response> {
    let (field, message) = validation::invalid(subject.kind, subject.name, object)?;
    Some(subject.invalid(&field, &message))
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
    if body.len() > validation::MAX_REQUEST_BYTES {
        return status(
            413,
            "RequestEntityTooLarge",
            format!(
                "Request entity too large: limit is {}",
                validation::MAX_REQUEST_BYTES
            ),
        );
    }
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
            "the server could not find the requested resource".into(),
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
    let dry_run = params.get("dryRun").is_some_and(|d| d == "All");
    let manager = params.get("fieldManager").cloned();
    let parse = |body: &Bytes| serde_json::from_slice::<Value>(body);
    match (method.clone(), name) {
        (Method::GET, None) => {
            let prefix = if namespace.is_empty() && namespaced {
                format!("{plural}/")
            } else {
                format!("{plural}/{namespace}/")
            };
            let mut items = vec![];
            for (k, object) in &state.objects {
                if !k.starts_with(&prefix) {
                    continue;
                }
                let labels = params
                    .get("labelSelector")
                    .map_or(Ok(true), |s| selectors::labels_match(object, s));
                let fields = params
                    .get("fieldSelector")
                    .map_or(Ok(true), |s| selectors::fields_match(object, s));
                match (labels, fields) {
                    (Ok(true), Ok(true)) => items.push(object.clone()),
                    (Err(message), _) | (_, Err(message)) => {
                        return status(400, "BadRequest", message);
                    }
                    _ => {}
                }
            }
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
                workloads::progress_slow_rollout(&mut state, &key);
            }
            let subject = Subject {
                group,
                kind,
                plural,
                name: &name,
            };
            match state.objects.get(&key) {
                Some(object) => ok(object.clone()),
                None => subject.not_found(),
            }
        }
        (Method::DELETE, Some(name)) => {
            let subject = Subject {
                group,
                kind,
                plural,
                name: &name,
            };
            match state.objects.remove(&key(&name)) {
                Some(_) => {
                    state.ownership.remove(&key(&name));
                    ok(
                        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": {"name": name, "group": group, "kind": plural}}),
                    )
                }
                None => subject.not_found(),
            }
        }
        (Method::POST, None) => {
            let Ok(object) = parse(&body) else {
                return status(400, "BadRequest", "the body is not JSON".into());
            };
            let Some(name) = object
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .map(str::to_string)
            else {
                return status(
                    422,
                    "Invalid",
                    format!(
                        "{kind} \"\" is invalid: metadata.name: Required value: name or generateName is required"
                    ),
                );
            };
            let subject = Subject {
                group,
                kind,
                plural,
                name: &name,
            };
            if let Some(refused) = check(&subject, &object) {
                return refused;
            }
            if state.objects.contains_key(&key(&name)) {
                return subject.already_exists();
            }
            if object.pointer("/metadata/resourceVersion").is_some() {
                return subject.invalid(
                    "metadata.resourceVersion",
                    "Invalid value: 0x0: must not be set on objects to be created",
                );
            }
            if dry_run {
                return (StatusCode::CREATED, axum::Json(object)).into_response();
            }
            let manager = manager.unwrap_or_else(|| "unknown".into());
            let stored = write(
                &mut state,
                &key(&name),
                object.clone(),
                &namespace,
                None,
                &api_version,
                |ownership, stored| {
                    ownership.update(stored, apply::leaves(&object), &manager);
                },
            );
            workloads::start_rollout(&mut state, kind, &key(&name), &name, &namespace);
            (
                StatusCode::CREATED,
                axum::Json(state.objects.get(&key(&name)).cloned().unwrap_or(stored)),
            )
                .into_response()
        }
        (Method::PUT, Some(name)) => {
            let Ok(object) = parse(&body) else {
                return status(400, "BadRequest", "the body is not JSON".into());
            };
            let subject = Subject {
                group,
                kind,
                plural,
                name: &name,
            };
            let Some(previous) = state.objects.get(&key(&name)).cloned() else {
                return subject.not_found();
            };
            if let Some(refused) = check(&subject, &object) {
                return refused;
            }
            if let Some(sent) = object.pointer("/metadata/resourceVersion")
                && Some(sent) != previous.pointer("/metadata/resourceVersion")
            {
                return subject.modified();
            }
            if dry_run {
                return ok(object);
            }
            let manager = manager.unwrap_or_else(|| "unknown".into());
            let stored = write(
                &mut state,
                &key(&name),
                object.clone(),
                &namespace,
                Some(&previous),
                &api_version,
                |ownership, stored| {
                    ownership.update(stored, apply::leaves(&object), &manager);
                },
            );
            workloads::start_rollout(&mut state, kind, &key(&name), &name, &namespace);
            ok(state.objects.get(&key(&name)).cloned().unwrap_or(stored))
        }
        (Method::PATCH, Some(name)) => {
            let content_type = headers
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string();
            let Ok(patch) = parse(&body) else {
                return status(400, "BadRequest", "the body is not JSON".into());
            };
            let subject = Subject {
                group,
                kind,
                plural,
                name: &name,
            };
            let previous = state.objects.get(&key(&name)).cloned();
            let apply = content_type.starts_with("application/apply-patch");
            if let Some(sent) = patch.pointer("/metadata/resourceVersion")
                && previous
                    .as_ref()
                    .and_then(|p| p.pointer("/metadata/resourceVersion"))
                    != Some(sent)
            {
                return subject.modified();
            }
            let (merged, ownership) = if apply {
                let Some(manager) = &manager else {
                    return status(400, "BadRequest", "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch".into());
                };
                if patch.pointer("/metadata/name").and_then(Value::as_str) != Some(name.as_str()) {
                    return status(
                        400,
                        "BadRequest",
                        format!(
                            "the name of the object ({}) does not match the name on the URL ({name})",
                            patch
                                .pointer("/metadata/name")
                                .and_then(Value::as_str)
                                .unwrap_or_default()
                        ),
                    );
                }
                if patch["apiVersion"] != json!(api_version) || patch["kind"] != json!(kind) {
                    return status(
                        400,
                        "BadRequest",
                        format!(
                            "the API version in the data ({}) does not match the expected API version ({api_version}), or the kind ({}) is not {kind}",
                            patch["apiVersion"], patch["kind"]
                        ),
                    );
                }
                let force = params.get("force").is_some_and(|f| f == "true");
                let mut ownership = state
                    .ownership
                    .get(&key(&name))
                    .cloned()
                    .unwrap_or_default();
                match ownership.apply(previous.as_ref(), &patch, manager, force) {
                    Ok(merged) => (merged, ownership),
                    Err(conflicts) => {
                        let causes: Vec<Value> = conflicts.0.iter().map(|(m, p)| json!({"reason": "FieldManagerConflict", "message": format!("conflict with \"{m}\" using {api_version}"), "field": format!(".{}", p.join("."))})).collect();
                        return subject.failure(
                            409,
                            "Conflict",
                            conflicts.message(&api_version),
                            Value::Array(causes),
                        );
                    }
                }
            } else {
                let Some(previous) = &previous else {
                    return subject.not_found();
                };
                let mut merged = previous.clone();
                if content_type.starts_with("application/strategic-merge-patch") {
                    apply::strategic_merge_patch(&mut merged, &patch);
                } else if content_type.starts_with("application/merge-patch") {
                    apply::merge_patch(&mut merged, &patch);
                } else {
                    return status(
                        415,
                        "UnsupportedMediaType",
                        format!(
                            "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json (sent {content_type})"
                        ),
                    );
                }
                let mut ownership = state
                    .ownership
                    .get(&key(&name))
                    .cloned()
                    .unwrap_or_default();
                ownership.update(
                    &merged,
                    apply::leaves(&patch),
                    manager.as_deref().unwrap_or("unknown"),
                );
                (merged, ownership)
            };
            if let Some(refused) = check(&subject, &merged) {
                return refused;
            }
            if dry_run {
                return ok(merged);
            }
            let stored = write(
                &mut state,
                &key(&name),
                merged,
                &namespace,
                previous.as_ref(),
                &api_version,
                |owned, _| *owned = ownership,
            );
            workloads::start_rollout(&mut state, kind, &key(&name), &name, &namespace);
            ok(state.objects.get(&key(&name)).cloned().unwrap_or(stored))
        }
        _ => status(
            405,
            "MethodNotAllowed",
            format!(
                "the server does not allow this method on the requested resource ({method} {path})"
            ),
        ),
    }
}

/// Stores `object` with server-set metadata: uid, resourceVersion, creationTimestamp,
/// generation (bumped when the spec changed), the namespace, and `managedFields` after `own`
/// has recorded who set what.
fn write(
    state: &mut State,
    key: &str,
    mut object: Value,
    namespace: &str,
    previous: Option<&Value>,
    api_version: &str,
    own: impl FnOnce(&mut apply::Ownership, &Value),
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
    if let Some(status) = previous.and_then(|p| p.get("status"))
        && object.get("status").is_none()
    {
        object["status"] = status.clone();
    }
    let inherited =
        |field: &str| previous.and_then(|p| p.pointer(&format!("/metadata/{field}")).cloned());
    let uid = inherited("uid").unwrap_or_else(|| json!(format!("uid-{}", state.resource_version)));
    let created = inherited("creationTimestamp").unwrap_or_else(|| json!("2026-01-01T00:00:00Z"));
    let metadata = object
        .as_object_mut()
        .unwrap()
        .entry("metadata")
        .or_insert_with(|| json!({}));
    metadata["uid"] = uid;
    metadata["resourceVersion"] = json!(state.resource_version.to_string());
    metadata["generation"] = json!(generation);
    metadata["creationTimestamp"] = created;
    if !namespace.is_empty() {
        metadata["namespace"] = json!(namespace);
    }
    let mut ownership = state.ownership.remove(key).unwrap_or_default();
    own(&mut ownership, &object);
    object["metadata"]["managedFields"] = ownership.managed_fields(&json!(api_version));
    state.ownership.insert(key.to_string(), ownership);
    state.objects.insert(key.to_string(), object.clone());
    object
}
