//! `K8sApply`, `K8sRollingDeploy` and `K8sRollingRollback`: one component that applies
//! manifests from the stage workspace to its step group's cluster, through the `kube` capability.

use std::path::PathBuf;

use lockstep_builtins::k8s::{Settings, Spec, WORKSPACE_MOUNT, release_key};

use super::{BindContext, Bound, BuiltInStep, SpecLocation};
use crate::capability::kube::{Verb, resolve};
use crate::capability::{FileGrant, Grants};
use crate::config::{Config, Refusal};
use crate::diag::{Diagnostic, Location};
use crate::plan::PlanNode;
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
            default_release: release_key(&format!(
                "{}-{}",
                context.pipeline,
                stage_of(context.fqn)
            )),
            timeout_seconds: context.timeout.as_secs(),
        }))
    }
}

/// Whether a step group's Kubernetes cluster can be reached as lockstep.yaml says: its
/// connector, kubeconfig, context and namespace (a step group whose cluster is wrong would
/// otherwise fail only when its turn comes, after earlier steps ran). A connector lockstep.yaml
/// lacks is a warning, as for every connector a pipeline names: the pipeline is valid, and
/// [`crate::session::Session::prepare`] refuses to start it.
pub fn check_group_infra(infra: &Node, group: &Location, config: &Config) -> Vec<Diagnostic> {
    let spec = infra.get("spec");
    let field = |key: &str| spec.and_then(|s| s.get(key));
    let at = |key: &str| {
        Location::new(
            group.file.to_path_buf(),
            field(key).map_or(infra.pos, |n| n.pos),
            format!("{}.stepGroupInfra.spec.{key}", group.yaml_path),
        )
    };
    let Some(connector) = field("connectorRef").and_then(Node::as_str) else {
        return vec![Diagnostic::error(at("connectorRef"), "`stepGroupInfra` needs `spec.connectorRef`, a Kubernetes connector").with_help("write `stepGroupInfra: { type: KubernetesDirect, spec: { connectorRef: <connector>, namespace: <namespace> } }`")];
    };
    let namespace = field("namespace").and_then(Node::as_str);
    if connector.contains("<+") || namespace.is_some_and(|n| n.contains("<+")) {
        return vec![];
    }
    if !config.connectors.contains_key(connector) {
        return vec![Diagnostic::warning(at("connectorRef"), format!("connector `{connector}` is not in lockstep.yaml, so `lockstep run` will refuse this pipeline before any step runs")).with_help(format!("add `{connector}: {{ type: Kubernetes, kubeconfig: …, context: … }}` under `connectors:` in lockstep.yaml"))];
    }
    match resolve::group_grant(config, connector, namespace, vec![]) {
        Ok(_) => vec![],
        Err(refusal) => {
            let key = match &refusal {
                Refusal::Denied(_) => "namespace",
                Refusal::Configuration(_) => "connectorRef",
            };
            vec![
                Diagnostic::error(at(key), refusal.to_string())
                    .with_help("the step group's steps cannot run until lockstep.yaml and the kubeconfig agree with it"),
            ]
        }
    }
}

/// Every step group's cluster in the plan, as the run will reach it: `Err` names each that
/// lockstep.yaml cannot give (what [`check_group_infra`] warned of, among them).
pub fn check_clusters(root: &PlanNode, config: &Config) -> Result<(), Vec<String>> {
    let problems: Vec<String> = root
        .descendants()
        .into_iter()
        .filter_map(|node| Some((node, node.infra.as_ref()?)))
        .filter_map(|(node, infra)| {
            resolve::group_grant(config, &infra.connector, infra.namespace.as_deref(), vec![])
                .err()
                .map(|refusal| format!("step group `{}`: {refusal}", node.fqn))
        })
        .collect();
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}

/// `deploy` of `pipeline.stages.deploy.spec.execution.steps.…` (a looping copy: `deploy_1`).
fn stage_of(fqn: &str) -> &str {
    fqn.split('.').nth(2).unwrap_or("stage")
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
