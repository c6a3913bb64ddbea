//! The built-in Kubernetes steps.
//!
//! - `K8sApply`: the manifests of `filePaths` (files or directories of `.yaml`/`.yml`/`.json`, in
//!   the stage workspace), validated by a server-side dry run unless `skipDryRun`, applied
//!   server-side, then waited for until every Deployment, StatefulSet and DaemonSet among them
//!   has rolled out, unless `skipSteadyStateCheck`.
//! - `K8sRollingDeploy`: the same, recorded as a numbered release of `releaseName` (default:
//!   `<connector>-<namespace>`) in the ConfigMap `lockstep-release-<releaseName>`, marked Succeeded
//!   or Failed; with `pruningEnabled`, objects of the previous successful release that this one no
//!   longer has are deleted.
//! - `K8sRollingRollback`: re-applies the newest successful release older than the newest
//!   release, and waits for it; the newest is marked RolledBack.
//!
//! The cluster, namespace and kinds they may touch are the runner's grant (from the step group's
//! `stepGroupInfra`); the workspace is preopened read-only at `/workspace`.

use std::path::{Path, PathBuf};

use lockstep_builtins::k8s::{Settings, Spec, WORKSPACE_MOUNT};
use lockstep_step::kube::{Client, ObjectRef};
use lockstep_step::{Error, Outcome, Step, StepContext, export_step};
use lockstep_yaml as yaml;
use serde::Deserialize;
use serde_json::Value;

/// How many releases the history keeps.
const RELEASES_KEPT: usize = 10;

/// One release in the history ConfigMap.
#[derive(serde::Serialize, Deserialize, Clone)]
struct Release {
    number: u64,
    /// InProgress, Succeeded, Failed or RolledBack.
    status: String,
    manifests: Vec<Value>,
}

/// Every manifest file under `path` (a file, or a directory read in name order).
fn manifest_files(path: &Path) -> Result<Vec<PathBuf>, Error> {
    let shown = path
        .strip_prefix(WORKSPACE_MOUNT)
        .unwrap_or(path)
        .display()
        .to_string();
    let metadata = std::fs::metadata(path).map_err(|e| {
        Error::NotFound(format!(
            "{shown}: {e} (filePaths are relative to the stage workspace)"
        ))
    })?;
    if metadata.is_file() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(path)
        .map_err(|e| Error::Failed(format!("{shown}: {e}")))?
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|p| {
            p.extension()
                .is_some_and(|e| e == "yaml" || e == "yml" || e == "json")
        })
        .collect();
    files.sort();
    Ok(files)
}

/// The objects of one manifest file (YAML, several documents allowed), as JSON.
fn objects(path: &Path) -> Result<Vec<Value>, Error> {
    let shown = path
        .strip_prefix(WORKSPACE_MOUNT)
        .unwrap_or(path)
        .display()
        .to_string();
    let text = std::fs::read_to_string(path).map_err(|e| Error::Failed(format!("{shown}: {e}")))?;
    let documents = yaml::parse(&text)
        .map_err(|e| Error::Invalid(format!("{shown}:{}: {}", e.pos.line, e.message)))?;
    let mut out = vec![];
    for document in documents {
        match document.to_json() {
            Value::Null => {}
            Value::Object(object)
                if object
                    .get("kind")
                    .and_then(Value::as_str)
                    .is_some_and(|k| k.ends_with("List")) =>
            {
                out.extend(
                    object
                        .get("items")
                        .and_then(Value::as_array)
                        .cloned()
                        .unwrap_or_default(),
                );
            }
            object @ Value::Object(_) => out.push(object),
            _ => {
                return Err(Error::Invalid(format!(
                    "{shown}:{}: a manifest document must be an object",
                    document.pos.line
                )));
            }
        }
    }
    Ok(out)
}

fn describe(object: &Value) -> String {
    format!(
        "{}/{}",
        object["kind"].as_str().unwrap_or("?"),
        object
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("?")
    )
}

/// A client on the granted cluster, in the granted namespace.
struct Cluster<'c> {
    ctx: &'c StepContext<'c>,
    client: Client,
    /// The granted connector and namespace.
    settings: Settings,
}

fn is_workload(object: &Value) -> bool {
    matches!(
        object["kind"].as_str(),
        Some("Deployment" | "StatefulSet" | "DaemonSet")
    )
}

fn reference(object: &Value, namespace: &str) -> ObjectRef {
    ObjectRef {
        api_version: object["apiVersion"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        kind: object["kind"].as_str().unwrap_or_default().to_string(),
        namespace: Some(
            object
                .pointer("/metadata/namespace")
                .and_then(Value::as_str)
                .unwrap_or(namespace)
                .to_string(),
        ),
        name: object
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
    }
}

impl Cluster<'_> {
    fn dry_run(&self, manifests: &[Value]) -> Result<(), Error> {
        for object in manifests {
            self.client
                .apply(object, Some(&self.settings.namespace), true)
                .map_err(|e| e.context(&format!("dry run of {}", describe(object))))?;
        }
        Ok(())
    }

    /// Applies every object, then (unless `skip_wait`) waits for each workload's rollout.
    fn apply_all(&self, manifests: &[Value], skip_wait: bool) -> Result<usize, Error> {
        for object in manifests {
            self.client
                .apply(object, Some(&self.settings.namespace), false)
                .map_err(|e| e.context(&format!("applying {}", describe(object))))?;
            self.ctx.info(&format!("applied {}", describe(object)));
        }
        let workloads: Vec<ObjectRef> = manifests
            .iter()
            .filter(|o| is_workload(o))
            .map(|o| reference(o, &self.settings.namespace))
            .collect();
        if !skip_wait {
            for workload in &workloads {
                self.ctx.info(&format!(
                    "waiting for {}/{} to roll out",
                    workload.kind, workload.name
                ));
                let rollout = self.client.wait_rollout(workload)?;
                self.ctx.info(&rollout.message);
            }
        }
        Ok(workloads.len())
    }

    fn history_name(release: &str) -> String {
        format!("lockstep-release-{release}")
    }

    /// The release history, oldest first.
    fn releases(&self, release: &str) -> Result<Vec<Release>, Error> {
        let target = ObjectRef {
            api_version: "v1".into(),
            kind: "ConfigMap".into(),
            namespace: Some(self.settings.namespace.clone()),
            name: Self::history_name(release),
        };
        let Some(object) = self.client.get(&target)? else {
            return Ok(vec![]);
        };
        let history = object
            .pointer("/data/releases")
            .and_then(Value::as_str)
            .unwrap_or("[]");
        serde_json::from_str(history).map_err(|e| {
            Error::Failed(format!(
                "the release history in ConfigMap {} is not readable: {e}",
                Self::history_name(release)
            ))
        })
    }

    fn save(&self, release: &str, mut releases: Vec<Release>) -> Result<(), Error> {
        let excess = releases.len().saturating_sub(RELEASES_KEPT);
        releases.drain(..excess);
        let history = serde_json::json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": { "name": Self::history_name(release), "labels": { "app.kubernetes.io/managed-by": "lockstep" } },
            "data": { "releases": serde_json::to_string(&releases).unwrap_or_default() }
        });
        self.client
            .apply(&history, Some(&self.settings.namespace), false)
            .map(drop)
            .map_err(|e| e.context("recording the release"))
    }
}

fn load_manifests(spec: &Spec) -> Result<Vec<Value>, Error> {
    let mut manifests = vec![];
    for path in &spec.file_paths {
        for file in manifest_files(&Path::new(WORKSPACE_MOUNT).join(path))? {
            manifests.extend(objects(&file)?);
        }
    }
    if manifests.is_empty() {
        return Err(Error::Invalid(if spec.file_paths.is_empty() {
            "`filePaths` lists no manifests".to_string()
        } else {
            format!("no manifests in {}", spec.file_paths.join(", "))
        }));
    }
    Ok(manifests)
}

/// `kind/namespace/name` of an object, to compare releases.
fn identity(object: &Value, namespace: &str) -> String {
    let target = reference(object, namespace);
    format!(
        "{}/{}/{}",
        target.kind,
        target.namespace.unwrap_or_default(),
        target.name
    )
}

fn apply(cluster: &Cluster<'_>, spec: &Spec) -> Result<Outcome, Error> {
    let manifests = load_manifests(spec)?;
    if !spec.skip_dry_run.on() {
        cluster.dry_run(&manifests)?;
    }
    let workloads = cluster.apply_all(&manifests, spec.skip_steady_state_check.on())?;
    cluster
        .ctx
        .set_output("objectsApplied", &manifests.len().to_string())?;
    let waited = if workloads == 0 || spec.skip_steady_state_check.on() {
        String::new()
    } else {
        format!(", {workloads} rolled out")
    };
    Ok(Outcome::summary(format!(
        "{} object(s) applied{waited}",
        manifests.len()
    )))
}

/// `releaseName`, else one per cluster and namespace, as Harness names releases per infrastructure.
fn release_name(
    spec: &Spec,
    Settings {
        connector,
        namespace,
    }: &Settings,
) -> String {
    spec.release_name
        .clone()
        .unwrap_or_else(|| format!("{connector}-{namespace}"))
}

fn rolling_deploy(cluster: &Cluster<'_>, spec: &Spec) -> Result<Outcome, Error> {
    let manifests = load_manifests(spec)?;
    let release = release_name(spec, &cluster.settings);
    if !spec.skip_dry_run.on() {
        cluster.dry_run(&manifests)?;
    }
    let mut releases = cluster.releases(&release)?;
    let previous = releases
        .iter()
        .rev()
        .find(|r| r.status == "Succeeded")
        .cloned();
    let number = releases.last().map_or(1, |r| r.number + 1);
    releases.push(Release {
        number,
        status: "InProgress".into(),
        manifests: manifests.clone(),
    });
    cluster.save(&release, releases.clone())?;
    let outcome = cluster.apply_all(&manifests, false);
    releases.last_mut().expect("just pushed").status = if outcome.is_ok() {
        "Succeeded"
    } else {
        "Failed"
    }
    .into();
    cluster.save(&release, releases)?;
    outcome?;
    let mut pruned = 0;
    if spec.pruning_enabled.on()
        && let Some(previous) = previous
    {
        let current: Vec<String> = manifests
            .iter()
            .map(|o| identity(o, &cluster.settings.namespace))
            .collect();
        for stale in previous
            .manifests
            .iter()
            .filter(|o| !current.contains(&identity(o, &cluster.settings.namespace)))
        {
            if cluster
                .client
                .delete(&reference(stale, &cluster.settings.namespace))?
            {
                cluster.ctx.info(&format!("pruned {}", describe(stale)));
                pruned += 1;
            }
        }
    }
    cluster
        .ctx
        .set_output("releaseNumber", &number.to_string())?;
    Ok(Outcome::summary(format!(
        "release {release} #{number}: {} object(s) applied{}",
        manifests.len(),
        if pruned > 0 {
            format!(", {pruned} pruned")
        } else {
            String::new()
        }
    )))
}

fn rolling_rollback(cluster: &Cluster<'_>, spec: &Spec) -> Result<Outcome, Error> {
    let release = release_name(spec, &cluster.settings);
    let mut releases = cluster.releases(&release)?;
    let Some(newest) = releases.last().map(|r| r.number) else {
        return Ok(Outcome::summary(format!(
            "release {release} has no history; nothing to roll back"
        )));
    };
    let Some(target) = releases
        .iter()
        .rev()
        .find(|r| r.number < newest && r.status == "Succeeded")
        .cloned()
    else {
        return Ok(Outcome::summary(format!(
            "release {release} has no successful release before #{newest}; nothing to restore"
        )));
    };
    cluster.apply_all(&target.manifests, false)?;
    releases.last_mut().expect("not empty").status = "RolledBack".into();
    cluster.save(&release, releases)?;
    cluster
        .ctx
        .set_output("restoredRelease", &target.number.to_string())?;
    Ok(Outcome::summary(format!(
        "release {release}: #{newest} rolled back to #{}",
        target.number
    )))
}

struct K8s;

impl Step for K8s {
    fn run(ctx: &StepContext) -> Result<Outcome, Error> {
        let spec =
            Spec::from_json(&ctx.whole_spec()).map_err(|e| Error::Invalid(format!("spec: {e}")))?;
        let settings: Settings = ctx.settings()?;
        let cluster = Cluster {
            ctx,
            client: Client::open(&settings.connector)?,
            settings,
        };
        match ctx.step_type().as_str() {
            "K8sRollingDeploy" => rolling_deploy(&cluster, &spec),
            "K8sRollingRollback" => rolling_rollback(&cluster, &spec),
            _ => apply(&cluster, &spec),
        }
    }
}

export_step!(K8s);
