//! `K8sApply`, `K8sRollingDeploy` and `K8sRollingRollback`: one component that applies
//! manifests from the stage workspace to its step group's cluster, through the `kube` capability.

use std::path::PathBuf;

use lockstep_builtins::k8s::{Settings, Spec, WORKSPACE_MOUNT};

use super::{BindContext, Bound, BuiltInStep, SpecLocation};
use crate::capability::kube::{Verb, resolve};
use crate::capability::{FileGrant, Grants};
use crate::config::{Config, Refusal};
use crate::diag::Diagnostic;
use crate::yaml::Node;

pub struct Kubernetes;

impl BuiltInStep for Kubernetes {
    fn names(&self) -> &'static [&'static str] {
        &["K8sApply", "K8sRollingDeploy", "K8sRollingRollback"]
    }

    fn component(&self) -> &'static [u8] {
        include_bytes!(concat!(
            env!("LOCKSTEP_GUEST_DIR"),
            "/lockstep_step_k8s.wasm"
        ))
    }

    fn check(
        &self,
        step_type: &str,
        spec: &Node,
        at: &SpecLocation<'_>,
        _: &Config,
        out: &mut Vec<Diagnostic>,
    ) {
        if step_type != "K8sRollingRollback" {
            check_manifest_paths(step_type, spec, at, out);
        }
    }

    /// Its grants: the cluster of its step group's `stepGroupInfra`, in the group's namespace
    /// (else the kubeconfig context's) if the operator allows it for the connector, the
    /// operator's kinds for it, and the stage workspace read-only to read manifests. Its
    /// settings: the connector and the namespace.
    fn bind(
        &self,
        _: &str,
        spec: serde_json::Value,
        context: &BindContext<'_>,
    ) -> Result<Bound, Refusal> {
        let infra = context.infra.ok_or_else(|| {
            Refusal::Configuration("a Kubernetes step needs a cluster: run it in a step group with `stepGroupInfra: { type: KubernetesDirect, spec: { connectorRef: <Kubernetes connector>, namespace: … } }`".into())
        })?;
        // The step reads its spec through the same parse: pruning on for one is on for both.
        let read =
            Spec::from_json(&spec).map_err(|e| Refusal::Configuration(format!("the spec: {e}")))?;
        let mut verbs = vec![Verb::Get, Verb::List, Verb::Apply];
        // Pruning deletes what an earlier release had and this one does not.
        if read.pruning_enabled.on() {
            verbs.push(Verb::Delete);
        }
        let (grant, namespace) = resolve::group_grant(
            context.config,
            &infra.connector,
            infra.namespace.as_deref(),
            verbs,
        )?;
        let files = vec![FileGrant {
            host_path: PathBuf::new(),
            guest_path: WORKSPACE_MOUNT.to_string(),
            read_only: true,
        }];
        Ok(Bound::new(
            Grants {
                kube: vec![grant],
                files,
                ..Grants::default()
            },
            spec,
        )
        .with_settings(Settings {
            connector: infra.connector.clone(),
            namespace,
        }))
    }
}

fn check_manifest_paths(
    step_type: &str,
    spec: &Node,
    at: &SpecLocation<'_>,
    out: &mut Vec<Diagnostic>,
) {
    let listed = spec
        .get("filePaths")
        .and_then(Node::as_seq)
        .is_some_and(|paths| !paths.is_empty() && paths.iter().all(|p| p.as_str().is_some()));
    if !listed {
        out.push(Diagnostic::error(at.field("filePaths"), format!("a {step_type} step needs `filePaths`, a list of manifest files or directories in the stage workspace")).with_help("write e.g. `filePaths: [orkes/deployment.yml]`"));
    }
}
