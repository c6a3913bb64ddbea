//! Pipelines that deploy to the Kubernetes API-server double: a lockstep.yaml with connector
//! `db` (namespace `shop` allowed), steps inside its step group, manifests written into the
//! stage workspace first.

use lockstep::exec::Cancel;

use super::kube_double::ApiServerDouble;
use super::*;

/// lockstep.yaml with Kubernetes connector `connector` → the double, which the operator allows
/// pipelines to use in namespace `shop`.
pub fn named_config(
    double: &ApiServerDouble,
    dir: &std::path::Path,
    connector: &str,
    extra: &str,
) -> String {
    format!(
        "connectors:\n  {connector}: {{ type: Kubernetes, kubeconfig: '{}', context: double, namespaces: [shop] }}\n{extra}",
        double.kubeconfig(dir).display()
    )
}

/// [`named_config`] with connector `db`.
pub fn config(double: &ApiServerDouble, dir: &std::path::Path, extra: &str) -> String {
    named_config(double, dir, "db", extra)
}

/// Steps inside a step group whose `stepGroupInfra` is connector `connector`, namespace `shop`.
pub fn group_on(connector: &str, steps: &str) -> String {
    group(
        "deploy_group",
        steps,
        &format!(
            "  stepGroupInfra:\n    type: KubernetesDirect\n    spec:\n      connectorRef: {connector}\n      namespace: shop\n"
        ),
    )
}

/// [`group_on`] connector `db`.
pub fn in_cluster_group(steps: &str) -> String {
    group_on("db", steps)
}

/// A step of `kind` (K8sApply, K8sRollingDeploy, …) with `spec`, and `extra` step fields.
pub fn k8s_step(kind: &str, id: &str, spec: &str, extra: &str) -> String {
    format!(
        "- step:\n    type: {kind}\n    name: {id}\n    identifier: {id}\n    spec:\n{}{}",
        indent(spec, 6),
        indent(extra, 2)
    )
}

pub fn apply_step(id: &str, spec: &str, extra: &str) -> String {
    k8s_step("K8sApply", id, spec, extra)
}

/// A Run step that writes each `(path, text)` into the stage workspace.
pub fn write_files(files: &[(&str, &str)]) -> String {
    let script: String = files
        .iter()
        .map(|(path, text)| {
            format!("mkdir -p \"$(dirname {path})\"\ncat > {path} <<'EOF'\n{text}EOF\n")
        })
        .collect();
    run_step("write", &script, "")
}

/// What a deploy runs: `files` written into the stage workspace, then `steps` in the step group
/// of `connector`, in stage `stage` of pipeline `test`.
pub struct Deploy<'a> {
    pub files: &'a [(&'a str, &'a str)],
    pub steps: &'a str,
    pub stage: &'a str,
    pub connector: &'a str,
    /// Appended to lockstep.yaml.
    pub config: &'a str,
}

impl Default for Deploy<'_> {
    fn default() -> Self {
        Deploy {
            files: &[],
            steps: "",
            stage: "s",
            connector: "db",
            config: "",
        }
    }
}

impl Deploy<'_> {
    pub fn run(&self, double: &ApiServerDouble) -> Ran {
        let dir = tempfile::tempdir().unwrap();
        let pipeline =
            pipeline_with_steps(&(write_files(self.files) + &group_on(self.connector, self.steps)))
                .replacen(
                    "    identifier: s\n",
                    &format!("    identifier: {}\n", self.stage),
                    1,
                );
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(run_with_files(
            &pipeline,
            &named_config(double, dir.path(), self.connector, self.config),
            &[],
            Cancel::default(),
            &[],
        ))
    }
}
