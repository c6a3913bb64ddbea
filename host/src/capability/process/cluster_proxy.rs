//! The API server of a Kubernetes step group, as the group's Run steps reach it.
//!
//! Harness runs such steps in a pod of that cluster; Lockstep runs them in the process sandbox,
//! whose network namespace reaches nothing, and serves them a plain-HTTP proxy listening on that
//! namespace's loopback (so no other process can reach it). The proxy checks every request against
//! the group's Kubernetes grant (the operator's namespaces and kinds for the connector, narrowed
//! to the group's namespace) before anything leaves the host, then forwards it with the
//! connector's credentials through the real `kube` client: the script never holds them.
//!
//! When the operator gives scripts the host's network (or turns confinement off), there is no
//! private loopback to listen on: the script gets the connector's own kubeconfig instead,
//! narrowed to its context and the group's namespace, with its files inlined.

use std::convert::Infallible;
use std::sync::Arc;

use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use kube::client::Body;
use tokio::task::JoinSet;

use super::jail::CLUSTER_PORT;
use crate::capability::Error;
use crate::capability::kube::{KubeCluster, KubeGrant, connect};

/// The largest request body forwarded (the API server's own limit is about 3 MiB).
const MAX_REQUEST_BYTES: usize = 8 << 20;

/// A step group's cluster, for the Run steps inside the group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterAccess {
    /// What the scripts may do there: the group's namespace, the operator's kinds.
    pub grant: KubeGrant,
    /// kubectl's default namespace: the group's.
    pub namespace: String,
}

impl ClusterAccess {
    /// A kubeconfig that points kubectl at the proxy on the script's loopback. It holds no
    /// credential.
    pub fn proxy_kubeconfig(&self) -> String {
        let name = &self.grant.connector;
        let config = serde_json::json!({
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{ "name": name, "cluster": { "server": format!("http://127.0.0.1:{CLUSTER_PORT}") } }],
            "users": [{ "name": "lockstep", "user": {} }],
            "contexts": [{ "name": name, "context": { "cluster": name, "user": "lockstep", "namespace": self.namespace } }],
            "current-context": name,
        });
        serde_json::to_string_pretty(&config).unwrap_or_default()
    }

    /// The connector's own kubeconfig, for a script on the host's network: only its context, with
    /// the group's namespace and every file it names inlined (the script cannot read them).
    pub fn direct_kubeconfig(&self) -> Result<String, String> {
        let KubeCluster::Kubeconfig { path, context } = &self.grant.cluster else {
            return Err(format!(
                "connector `{}` is in-cluster; its service account is not available to scripts on the host's network",
                self.grant.connector
            ));
        };
        let shown = path.display();
        let mut kubeconfig = kube::config::Kubeconfig::read_from(path)
            .map_err(|e| format!("kubeconfig {shown}: {e}"))?;
        let current = context
            .clone()
            .or(kubeconfig.current_context.clone())
            .ok_or_else(|| format!("kubeconfig {shown} names no current context"))?;
        kubeconfig.contexts.retain(|c| c.name == current);
        let named = kubeconfig
            .contexts
            .first_mut()
            .and_then(|c| c.context.as_mut())
            .ok_or_else(|| format!("kubeconfig {shown} has no context `{current}`"))?;
        named.namespace = Some(self.namespace.clone());
        let (cluster, user) = (named.cluster.clone(), named.user.clone());
        kubeconfig.clusters.retain(|c| c.name == cluster);
        kubeconfig
            .auth_infos
            .retain(|a| Some(&a.name) == user.as_ref());
        kubeconfig.current_context = Some(current);
        let base = path.parent().unwrap_or(std::path::Path::new("."));
        let inline = |file: &mut Option<String>| -> Result<Option<String>, String> {
            let Some(name) = file.take() else {
                return Ok(None);
            };
            let read = std::fs::read(base.join(&name))
                .map_err(|e| format!("kubeconfig {shown}: reading {name}: {e}"))?;
            Ok(Some(base64::engine::Engine::encode(
                &base64::engine::general_purpose::STANDARD,
                read,
            )))
        };
        for cluster in kubeconfig
            .clusters
            .iter_mut()
            .filter_map(|c| c.cluster.as_mut())
        {
            if let Some(data) = inline(&mut cluster.certificate_authority)? {
                cluster.certificate_authority_data = Some(data);
            }
        }
        for user in kubeconfig
            .auth_infos
            .iter_mut()
            .filter_map(|a| a.auth_info.as_mut())
        {
            if let Some(data) = inline(&mut user.client_certificate)? {
                user.client_certificate_data = Some(data);
            }
            if let Some(data) = inline(&mut user.client_key)? {
                user.client_key_data = Some(data.into());
            }
            if let Some(file) = user.token_file.take() {
                let token = std::fs::read_to_string(base.join(&file))
                    .map_err(|e| format!("kubeconfig {shown}: reading {file}: {e}"))?;
                user.token = Some(token.trim().to_string().into());
            }
        }
        serde_json::to_string_pretty(&kubeconfig).map_err(|e| format!("kubeconfig {shown}: {e}"))
    }
}

/// Serves one script's kubectl until dropped.
pub struct ClusterProxy {
    task: tokio::task::JoinHandle<()>,
}

struct Shared {
    client: kube::Client,
    grant: KubeGrant,
}

impl ClusterProxy {
    /// Connects to the cluster and serves `listener`, which only the script can reach.
    pub async fn start(
        listener: std::net::TcpListener,
        access: &ClusterAccess,
    ) -> Result<ClusterProxy, Error> {
        let client = connect(&access.grant.cluster).await?;
        let prepare =
            |e: std::io::Error| Error::Unavailable(format!("serving the cluster proxy: {e}"));
        listener.set_nonblocking(true).map_err(prepare)?;
        let listener = tokio::net::TcpListener::from_std(listener).map_err(prepare)?;
        let shared = Arc::new(Shared {
            client,
            grant: access.grant.clone(),
        });
        let task = tokio::spawn(async move {
            // Dropped with the accept loop, so no connection outlives the proxy.
            let mut connections = JoinSet::new();
            while let Ok((stream, _)) = listener.accept().await {
                let shared = shared.clone();
                connections.spawn(async move {
                    let service = hyper::service::service_fn(move |request| {
                        let shared = shared.clone();
                        async move { Ok::<_, Infallible>(forward(request, &shared).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
                });
                while connections.try_join_next().is_some() {}
            }
        });
        Ok(ClusterProxy { task })
    }
}

impl Drop for ClusterProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Headers that describe one hop, not the request.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
    "authorization",
];

fn end_to_end(
    headers: &HeaderMap,
) -> impl Iterator<Item = (&http::HeaderName, &http::HeaderValue)> {
    headers
        .iter()
        .filter(|(name, _)| !HOP_BY_HOP.contains(&name.as_str()))
}

async fn forward(request: Request<Incoming>, shared: &Shared) -> Response<Body> {
    let path = request.uri().path().to_string();
    if let Err(denied) = shared.grant.allows_request(request.method(), &path) {
        return status(
            StatusCode::FORBIDDEN,
            "Forbidden",
            &format!("Lockstep refused {} {path}: {denied}", request.method()),
        );
    }
    let (parts, body) = request.into_parts();
    let Ok(collected) = Limited::new(body, MAX_REQUEST_BYTES).collect().await else {
        return status(
            StatusCode::PAYLOAD_TOO_LARGE,
            "RequestEntityTooLarge",
            "the request body is larger than 8 MiB, or was cut off",
        );
    };
    let mut forwarded = Request::builder()
        .method(parts.method)
        .uri(parts.uri.path_and_query().map_or("/", |p| p.as_str()));
    for (name, value) in end_to_end(&parts.headers) {
        forwarded = forwarded.header(name, value);
    }
    let Ok(forwarded) = forwarded.body(Body::from(collected.to_bytes())) else {
        return status(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "the request could not be forwarded",
        );
    };
    match shared.client.send(forwarded).await {
        Ok(response) => {
            let (parts, body) = response.into_parts();
            let mut back = Response::builder().status(parts.status);
            for (name, value) in end_to_end(&parts.headers) {
                back = back.header(name, value);
            }
            back.body(body).unwrap_or_else(|_| {
                status(
                    StatusCode::BAD_GATEWAY,
                    "InternalError",
                    "the API server's response could not be relayed",
                )
            })
        }
        Err(error) => status(
            StatusCode::BAD_GATEWAY,
            "ServiceUnavailable",
            &format!(
                "the cluster of connector `{}` could not be reached: {error}",
                shared.grant.connector
            ),
        ),
    }
}

/// A response the way the API server words a failure (a `Status` object), which kubectl prints.
fn status(code: StatusCode, reason: &str, message: &str) -> Response<Body> {
    let body = serde_json::json!({ "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message, "reason": reason, "code": code.as_u16() });
    Response::builder()
        .status(code)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string().into_bytes()))
        .expect("a static response")
}
