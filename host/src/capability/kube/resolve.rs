//! Kubernetes names in lockstep.yaml, resolved: a connector's cluster, and what a step group's
//! steps may do there.

use super::grant::{KindsFrom, KubeCluster, KubeGrant, Verb};
use crate::config::{Config, ConnectorKind, ConnectorSpec, Refusal};

/// The Kubernetes connector `name`: its kubeconfig and context, or the in-cluster configuration.
pub fn cluster(config: &Config, name: &str) -> Result<KubeCluster, Refusal> {
    match config.connector(name, ConnectorKind::Kubernetes)? {
        ConnectorSpec::Kubernetes { cluster, .. } => Ok(cluster.clone()),
        _ => unreachable!("checked to be a Kubernetes connector"),
    }
}

/// What a Kubernetes step group may do on its cluster, for its K8s steps (`verbs`) and Run
/// steps: the group's namespace, else the kubeconfig context's, only if the operator allows it
/// for the connector (`namespaces:`; by default the context's namespace alone), with the
/// operator's `kinds:`. Returns the grant and the namespace.
pub fn group_grant(
    config: &Config,
    connector: &str,
    namespace: Option<&str>,
    verbs: Vec<Verb>,
) -> Result<(KubeGrant, String), Refusal> {
    let ConnectorSpec::Kubernetes {
        cluster,
        namespaces,
        kinds,
    } = config.connector(connector, ConnectorKind::Kubernetes)?
    else {
        unreachable!("checked to be a Kubernetes connector")
    };
    let context_namespace = default_namespace(cluster)
        .map_err(|e| Refusal::Configuration(format!("connector `{connector}`: {e}")))?;
    let namespace = namespace.map_or_else(|| context_namespace.clone(), str::to_string);
    let allowed = namespaces
        .clone()
        .unwrap_or_else(|| vec![context_namespace]);
    if !allowed.iter().any(|n| n == "*" || *n == namespace) {
        return Err(Refusal::Denied(format!(
            "the step group's namespace `{namespace}` is not allowed for connector `{connector}` (allowed: {}); the operator allows namespaces with `connectors.{connector}.namespaces` in lockstep.yaml",
            allowed.join(", ")
        )));
    }
    let grant = KubeGrant {
        connector: connector.to_string(),
        cluster: cluster.clone(),
        namespaces: vec![namespace.clone()],
        kinds: kinds.clone(),
        verbs,
        kinds_from: KindsFrom::Connector,
    };
    Ok((grant, namespace))
}

/// The namespace kubectl would use with a connector: its kubeconfig context's, else `default`
/// (in a cluster: the service account's).
pub fn default_namespace(cluster: &KubeCluster) -> Result<String, String> {
    match cluster {
        KubeCluster::InCluster => Ok(std::fs::read_to_string(
            "/var/run/secrets/kubernetes.io/serviceaccount/namespace",
        )
        .map_or_else(|_| "default".to_string(), |n| n.trim().to_string())),
        KubeCluster::Kubeconfig { path, context } => {
            let kubeconfig = kube::config::Kubeconfig::read_from(path)
                .map_err(|e| format!("kubeconfig {}: {e}", path.display()))?;
            let name = context.clone().or(kubeconfig.current_context.clone());
            let named = kubeconfig
                .contexts
                .iter()
                .find(|c| Some(&c.name) == name.as_ref());
            if let (Some(name), None) = (&name, named) {
                return Err(format!(
                    "kubeconfig {} has no context `{name}`",
                    path.display()
                ));
            }
            Ok(named
                .and_then(|c| c.context.as_ref())
                .and_then(|c| c.namespace.clone())
                .unwrap_or_else(|| "default".to_string()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(namespaces: &str) -> (Config, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("kubeconfig"), "apiVersion: v1\nkind: Config\nclusters: [{ name: c, cluster: { server: 'https://k:6443' } }]\nusers: [{ name: u, user: {} }]\ncontexts: [{ name: staging, context: { cluster: c, user: u, namespace: shop } }]\ncurrent-context: staging\n").unwrap();
        let text = format!(
            "connectors:\n  prod: {{ type: Kubernetes, kubeconfig: kubeconfig{namespaces} }}\n"
        );
        (
            Config::parse(&dir.path().join("lockstep.yaml"), &text).unwrap(),
            dir,
        )
    }

    #[test]
    fn a_group_without_a_namespace_uses_the_kubeconfig_contexts_the_only_one_allowed_by_default() {
        let (config, _dir) = config("");
        let (grant, namespace) = group_grant(&config, "prod", None, vec![Verb::Get]).unwrap();
        assert_eq!(namespace, "shop");
        assert_eq!(grant.namespaces, ["shop"]);
        assert_eq!(grant.kinds, ["*"]);
        let refused =
            group_grant(&config, "prod", Some("kube-system"), vec![Verb::Get]).unwrap_err();
        assert!(
            matches!(&refused, Refusal::Denied(m) if m.contains("`kube-system` is not allowed for connector `prod` (allowed: shop)")),
            "{refused}"
        );
    }

    #[test]
    fn the_operator_lists_the_namespaces_pipelines_may_use() {
        let (config, _dir) = config(", namespaces: [shop, billing]");
        assert_eq!(
            group_grant(&config, "prod", Some("billing"), vec![Verb::Get])
                .unwrap()
                .1,
            "billing"
        );
        assert!(group_grant(&config, "prod", Some("default"), vec![Verb::Get]).is_err());
        assert!(
            matches!(group_grant(&config, "nope", None, vec![]), Err(Refusal::Configuration(m)) if m.contains("connector `nope` is not defined"))
        );
    }
}
