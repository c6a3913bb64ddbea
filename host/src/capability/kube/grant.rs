//! What a step may do on a cluster, and the check every call and every proxied request passes
//! before anything leaves the host.
//!
//! A kind a grant names is reachable whatever it is. The wildcard `*` covers namespaced kinds
//! only, and never the sensitive ones: Secrets, and the RBAC kinds (a RoleBinding to
//! `cluster-admin` would hand the cluster over). Cluster-scoped built-in kinds are known here, so
//! they are refused without a request; a custom resource's scope comes from API discovery (a read
//! of API metadata, never of objects), and a cluster-scoped one is refused before any object is.

use http::Method;

use crate::capability::{Error, NamedGrant};
pub use crate::config::{KubeCluster, Verb};

/// What a step may do on one cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KubeGrant {
    pub connector: String,
    pub cluster: KubeCluster,
    /// Namespaces it may touch; `*` for any. The first is the default for objects that name none.
    pub namespaces: Vec<String>,
    /// Kinds it may touch: `*` for any namespaced kind but Secrets and RBAC kinds; a named kind
    /// (`Secret`, `RoleBinding`, `Namespace`, …) whatever it is.
    pub kinds: Vec<String>,
    pub verbs: Vec<Verb>,
    /// Where the operator sets `kinds`, for a refusal to say.
    pub kinds_from: KindsFrom,
}

/// Where a grant's kinds come from in lockstep.yaml.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KindsFrom {
    /// `connectors.NAME.kinds`: built-in K8s steps and Run steps of a Kubernetes step group.
    Connector,
    /// `stepTypes.TYPE.grants.kube[].kinds`: a custom step type's own grant.
    StepType(String),
}

/// Built-in kinds that live outside namespaces.
const CLUSTER_SCOPED: &[&str] = &[
    "APIService",
    "CSIDriver",
    "CSINode",
    "CertificateSigningRequest",
    "ClusterRole",
    "ClusterRoleBinding",
    "ClusterTrustBundle",
    "ComponentStatus",
    "CustomResourceDefinition",
    "DeviceClass",
    "FlowSchema",
    "IPAddress",
    "IngressClass",
    "MutatingAdmissionPolicy",
    "MutatingAdmissionPolicyBinding",
    "MutatingWebhookConfiguration",
    "Namespace",
    "Node",
    "PersistentVolume",
    "PriorityClass",
    "PriorityLevelConfiguration",
    "ResourceSlice",
    "RuntimeClass",
    "SelfSubjectAccessReview",
    "SelfSubjectReview",
    "SelfSubjectRulesReview",
    "ServiceCIDR",
    "StorageClass",
    "StorageVersionMigration",
    "SubjectAccessReview",
    "TokenReview",
    "ValidatingAdmissionPolicy",
    "ValidatingAdmissionPolicyBinding",
    "ValidatingWebhookConfiguration",
    "VolumeAttachment",
    "VolumeAttributesClass",
];

const RBAC_GROUP: &str = "rbac.authorization.k8s.io";

pub fn is_cluster_scoped(kind: &str) -> bool {
    CLUSTER_SCOPED.contains(&kind)
}

/// The resource name the API uses for a kind (`NetworkPolicy` → `networkpolicies`).
pub fn plural(kind: &str) -> String {
    let lower = kind.to_ascii_lowercase();
    if lower.ends_with("endpoints") {
        lower
    } else if lower.ends_with('s')
        || lower.ends_with('x')
        || lower.ends_with("ch")
        || lower.ends_with("sh")
    {
        format!("{lower}es")
    } else if lower.ends_with('y')
        && !lower.ends_with("ay")
        && !lower.ends_with("ey")
        && !lower.ends_with("oy")
    {
        format!("{}ies", &lower[..lower.len() - 1])
    } else {
        format!("{lower}s")
    }
}

/// `apps/v1` → `apps`; `v1` → ``.
pub fn group_of(api_version: &str) -> &str {
    api_version.split_once('/').map_or("", |(group, _)| group)
}

impl NamedGrant for KubeGrant {
    const KIND: &'static str = "Kubernetes connector";

    fn name(&self) -> &str {
        &self.connector
    }
}

impl KubeGrant {
    /// The namespace an object without one goes to.
    pub fn default_namespace(&self) -> Option<&str> {
        self.namespaces
            .iter()
            .map(String::as_str)
            .find(|n| *n != "*")
    }

    fn all_namespaces(&self) -> bool {
        self.namespaces.iter().any(|n| n == "*")
    }

    fn names(&self, kind: &str) -> bool {
        self.kinds.iter().any(|k| k == kind)
    }

    fn wildcard(&self) -> bool {
        self.kinds.iter().any(|k| k == "*")
    }

    /// Why `kind` (of `group`) is out of this grant, if it is.
    fn refuse_kind(&self, group: &str, kind: &str) -> Option<String> {
        if self.names(kind) {
            return None;
        }
        let why = if kind == "Secret" && group.is_empty() {
            "Secrets need a grant that names `Secret`".to_string()
        } else if group == RBAC_GROUP {
            format!("RBAC kinds need a grant that names `{kind}`")
        } else if is_cluster_scoped(kind) {
            format!("`{kind}` is cluster-scoped: a grant must name it")
        } else if self.wildcard() {
            return None;
        } else {
            format!("granted kinds: {}", self.kinds.join(", "))
        };
        Some(format!(
            "kind `{kind}` is not granted; {why}; {}",
            self.fix()
        ))
    }

    /// Where the operator grants a kind.
    fn fix(&self) -> String {
        match &self.kinds_from {
            KindsFrom::Connector => format!(
                "the operator adds kinds with `connectors.{}.kinds` in lockstep.yaml",
                self.connector
            ),
            KindsFrom::StepType(step_type) => format!(
                "the operator adds kinds with `stepTypes.{step_type}.grants.kube[].kinds` in lockstep.yaml"
            ),
        }
    }

    /// The refusal of a kind that discovery found cluster-scoped (a custom resource).
    pub fn refuse_cluster_scoped(&self, kind: &str) -> Error {
        self.denied(format!(
            "kind `{kind}` is not granted; `{kind}` is cluster-scoped: a grant must name it; {}",
            self.fix()
        ))
    }

    fn denied(&self, why: String) -> Error {
        Error::AccessDenied(format!("{why} (connector `{}`)", self.connector))
    }

    /// Whether `verb` on `kind` in `namespace` is allowed, judged before anything is sent.
    /// `namespace: None` means every namespace (a list); a named cluster-scoped kind needs none.
    pub fn check(
        &self,
        verb: Verb,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
    ) -> Result<(), Error> {
        if !self.verbs.contains(&verb) {
            return Err(self.denied(format!("`{}` is not granted", verb.name())));
        }
        if let Some(why) = self.refuse_kind(group_of(api_version), kind) {
            return Err(self.denied(why));
        }
        if is_cluster_scoped(kind) {
            return Ok(());
        }
        match namespace {
            Some(namespace) => self.check_namespace(namespace),
            None if !self.all_namespaces() => Err(self.denied(format!(
                "listing every namespace is not granted (granted: {}); name one",
                self.namespaces.join(", ")
            ))),
            None => Ok(()),
        }
    }

    /// Whether a request a script's kubectl sends through the cluster proxy stays within this
    /// grant, judged from its method and path. Discovery and OpenAPI documents are readable.
    pub fn allows_request(&self, method: &Method, path: &str) -> Result<(), String> {
        let verb = match *method {
            Method::GET | Method::HEAD => Verb::Get,
            Method::POST | Method::PUT | Method::PATCH => Verb::Apply,
            Method::DELETE => Verb::Delete,
            _ => return Err(format!("method {method} is not proxied")),
        };
        let segments: Vec<&str> = path
            .trim_matches('/')
            .split('/')
            .filter(|s| !s.is_empty())
            .collect();
        // (group, the rest after the version)
        let (group, rest) = match segments.as_slice() {
            []
            | ["version"]
            | ["api"]
            | ["apis"]
            | ["api", _]
            | ["apis", _]
            | ["apis", _, _]
            | ["openapi", ..]
                if verb == Verb::Get =>
            {
                return Ok(());
            }
            ["api", _, rest @ ..] => ("", rest),
            ["apis", group, _, rest @ ..] => (*group, rest),
            _ => return Err("only the Kubernetes API is proxied".into()),
        };
        let refuse = |error: Error| match error {
            Error::AccessDenied(message) => message,
            other => other.to_string(),
        };
        // A read of a collection is a list.
        let on = |name: &[&str]| {
            if verb == Verb::Get && name.is_empty() {
                Verb::List
            } else {
                verb
            }
        };
        match rest {
            ["namespaces", namespace] if verb == Verb::Get => {
                self.check_namespace(namespace).map_err(refuse)
            }
            ["namespaces", namespace, resource, name @ ..] => self
                .check_resource(on(name), group, resource, Some(namespace))
                .map_err(refuse),
            [resource, name @ ..] => self
                .check_resource(on(name), group, resource, None)
                .map_err(refuse),
            [] => Err("only the Kubernetes API is proxied".into()),
        }
    }

    fn check_namespace(&self, namespace: &str) -> Result<(), Error> {
        if self.all_namespaces() || self.namespaces.iter().any(|n| n == namespace) {
            Ok(())
        } else {
            Err(self.denied(format!(
                "namespace `{namespace}` is not granted (granted: {})",
                self.namespaces.join(", ")
            )))
        }
    }

    /// [`KubeGrant::check`] for a request that names a resource (`deployments`), not a kind.
    fn check_resource(
        &self,
        verb: Verb,
        group: &str,
        resource: &str,
        namespace: Option<&str>,
    ) -> Result<(), Error> {
        let kind = match (group, resource) {
            ("", "secrets") => "Secret".to_string(),
            _ => self
                .kinds
                .iter()
                .map(String::as_str)
                .chain(CLUSTER_SCOPED.iter().copied())
                .chain(["Role", "RoleBinding"])
                .find(|k| *k != "*" && plural(k) == resource)
                .map_or_else(|| resource.to_string(), str::to_string),
        };
        let api_version = if group.is_empty() {
            "v1".to_string()
        } else {
            format!("{group}/v1")
        };
        self.check(verb, &api_version, &kind, namespace)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(namespaces: &[&str], kinds: &[&str]) -> KubeGrant {
        KubeGrant {
            connector: "cluster".into(),
            cluster: KubeCluster::InCluster,
            namespaces: namespaces.iter().map(|s| s.to_string()).collect(),
            kinds: kinds.iter().map(|s| s.to_string()).collect(),
            verbs: vec![Verb::Get, Verb::List, Verb::Apply],
            kinds_from: KindsFrom::Connector,
        }
    }

    fn denied(result: Result<(), Error>) -> String {
        match result {
            Err(Error::AccessDenied(message)) => message,
            other => panic!("expected a denial, got {other:?}"),
        }
    }

    #[test]
    fn namespaces_kinds_and_verbs_are_checked_before_anything_is_sent() {
        let shop = grant(&["shop"], &["*"]);
        assert!(
            shop.check(Verb::Apply, "apps/v1", "Deployment", Some("shop"))
                .is_ok()
        );
        assert!(
            denied(shop.check(Verb::Apply, "apps/v1", "Deployment", Some("default")))
                .contains("namespace `default` is not granted")
        );
        assert!(
            denied(shop.check(Verb::Delete, "apps/v1", "Deployment", Some("shop")))
                .contains("`delete` is not granted")
        );
    }

    #[test]
    fn listing_every_namespace_needs_a_wildcard_namespace_grant() {
        assert!(
            denied(grant(&["shop"], &["*"]).check(Verb::List, "v1", "ConfigMap", None))
                .contains("listing every namespace is not granted")
        );
        assert!(
            grant(&["*"], &["*"])
                .check(Verb::List, "v1", "ConfigMap", None)
                .is_ok()
        );
    }

    #[test]
    fn secrets_rbac_and_cluster_scoped_kinds_need_a_grant_that_names_them() {
        let wildcard = grant(&["*"], &["*"]);
        assert!(
            denied(wildcard.check(Verb::Get, "v1", "Secret", Some("shop")))
                .contains("Secrets need a grant that names `Secret`")
        );
        assert!(
            denied(wildcard.check(
                Verb::Apply,
                "rbac.authorization.k8s.io/v1",
                "RoleBinding",
                Some("shop")
            ))
            .contains("RBAC kinds need a grant that names `RoleBinding`")
        );
        assert!(
            denied(wildcard.check(
                Verb::Apply,
                "rbac.authorization.k8s.io/v1",
                "ClusterRoleBinding",
                None
            ))
            .contains("RBAC kinds")
        );
        assert!(
            denied(wildcard.check(Verb::Apply, "v1", "Namespace", Some("shop")))
                .contains("`Namespace` is cluster-scoped: a grant must name it")
        );
        assert!(
            grant(&["shop"], &["Secret"])
                .check(Verb::Get, "v1", "Secret", Some("shop"))
                .is_ok()
        );
        assert!(
            grant(&["shop"], &["RoleBinding"])
                .check(
                    Verb::Apply,
                    "rbac.authorization.k8s.io/v1",
                    "RoleBinding",
                    Some("shop")
                )
                .is_ok()
        );
        assert!(
            grant(&["shop"], &["Namespace"])
                .check(Verb::Apply, "v1", "Namespace", None)
                .is_ok()
        );
    }

    #[test]
    fn plurals_follow_the_api_servers_resource_names() {
        for (kind, resource) in [
            ("Deployment", "deployments"),
            ("NetworkPolicy", "networkpolicies"),
            ("Ingress", "ingresses"),
            ("StorageClass", "storageclasses"),
            ("Endpoints", "endpoints"),
            ("Gateway", "gateways"),
        ] {
            assert_eq!(plural(kind), resource);
        }
    }

    #[test]
    fn a_proxied_request_stays_in_the_groups_namespace_and_kinds() {
        let shop = grant(&["shop"], &["*"]);
        for allowed in [
            "/version",
            "/api",
            "/apis",
            "/api/v1",
            "/apis/apps/v1",
            "/openapi/v3",
            "/openapi/v3/apis/apps/v1",
            "/api/v1/namespaces/shop",
            "/apis/apps/v1/namespaces/shop/deployments/app",
            "/api/v1/namespaces/shop/configmaps",
        ] {
            assert_eq!(
                shop.allows_request(&Method::GET, allowed),
                Ok(()),
                "{allowed}"
            );
        }
        assert_eq!(
            shop.allows_request(
                &Method::PATCH,
                "/apis/apps/v1/namespaces/shop/deployments/app"
            ),
            Ok(())
        );
        for (method, refused, why) in [
            (
                Method::GET,
                "/api/v1/namespaces/kube-system/configmaps",
                "namespace `kube-system` is not granted",
            ),
            (
                Method::GET,
                "/api/v1/configmaps",
                "listing every namespace is not granted",
            ),
            (
                Method::GET,
                "/api/v1/namespaces/shop/secrets/db",
                "Secrets need a grant",
            ),
            (
                Method::POST,
                "/apis/rbac.authorization.k8s.io/v1/namespaces/shop/rolebindings",
                "RBAC kinds",
            ),
            (
                Method::POST,
                "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
                "RBAC kinds",
            ),
            (Method::GET, "/api/v1/nodes", "cluster-scoped"),
            (
                Method::DELETE,
                "/apis/apps/v1/namespaces/shop/deployments/app",
                "`delete` is not granted",
            ),
            (Method::POST, "/api", "only the Kubernetes API"),
            (Method::GET, "/metrics", "only the Kubernetes API"),
        ] {
            let message = shop.allows_request(&method, refused).unwrap_err();
            assert!(message.contains(why), "{method} {refused}: {message}");
        }
    }
}
