//! The built-in Kubernetes steps.
//!
//! - `K8sApply`: the manifests of `filePaths` (files or directories of `.yaml`/`.yml`/`.json`, in
//!   the stage workspace, read as kubectl reads them), validated by a server-side dry run unless
//!   `skipDryRun`, applied server-side, then waited for until every Deployment, StatefulSet and
//!   DaemonSet among them has rolled out, unless `skipSteadyStateCheck`.
//! - `K8sRollingDeploy`: the same, recorded as a numbered release of `releaseName` (by default one
//!   per pipeline and stage), each object labelled with the release; with `pruningEnabled`,
//!   objects of the previous successful release that this one no longer has, and that carry this
//!   release's label, are deleted. See [`history`] for how releases are kept.
//! - `K8sRollingRollback`: re-applies the newest successful release older than the newest
//!   release, and waits for it; the newest is marked RolledBack.
//!
//! The cluster, namespace and kinds they may touch are the runner's grant (from the step group's
//! `stepGroupInfra`); the workspace is preopened read-only at `/workspace`.

mod cluster;
mod history;
mod manifests;

use lockstep_builtins::k8s::{Settings, Spec, release_key};
use lockstep_step::kube::Client;
use lockstep_step::{Error, Outcome, Step, StepContext, export_step};
use serde_json::Value;

use cluster::Cluster;
use history::{History, RELEASE_LABEL, Status};
use manifests::{describe, identity, label, reference};

fn apply(cluster: &Cluster<'_>, spec: &Spec) -> Result<Outcome, Error> {
    let manifests = manifests::load(spec)?;
    if !spec.skip_dry_run.on() {
        cluster.dry_run(&manifests)?;
    }
    let workloads = cluster.apply_all(&manifests)?;
    let waits = !spec.skip_steady_state_check.on();
    if waits {
        cluster.wait_all(&workloads)?;
    }
    cluster
        .ctx
        .set_output("objectsApplied", &manifests.len().to_string())?;
    let waited = if workloads.is_empty() || !waits {
        String::new()
    } else {
        format!(", {} rolled out", workloads.len())
    };
    Ok(Outcome::summary(format!(
        "{} object(s) applied{waited}",
        manifests.len()
    )))
}

/// `releaseName` as a valid key, else the runner's per-pipeline-and-stage default.
fn release(cluster: &Cluster<'_>, spec: &Spec) -> String {
    match &spec.release_name {
        Some(name) => {
            let key = release_key(name);
            if key != *name {
                cluster.ctx.info(&format!(
                    "release `{name}` is kept as `{key}` (Kubernetes names are lowercase letters, digits and `-`)"
                ));
            }
            key
        }
        None => cluster.settings.default_release.clone(),
    }
}

fn rolling_deploy(cluster: &Cluster<'_>, spec: &Spec) -> Result<Outcome, Error> {
    let key = release(cluster, spec);
    let mut manifests = manifests::load(spec)?;
    for object in &mut manifests {
        label(object, RELEASE_LABEL, &key);
    }
    if !spec.skip_dry_run.on() {
        cluster.dry_run(&manifests)?;
    }
    let history = History::new(cluster, &key);
    let releases = history.releases()?;
    history.check_idle(&releases)?;
    let previous = releases
        .iter()
        .rev()
        .find(|r| r.effective_status() == Status::Succeeded);
    let previous_manifests = match previous {
        Some(previous) if spec.pruning_enabled.on() => previous.manifests()?,
        _ => vec![],
    };
    let number = releases.last().map_or(1, |r| r.number + 1);
    let mut current = history.begin(number, &manifests, cluster.settings.timeout_seconds)?;
    let deployed = cluster
        .apply_all(&manifests)
        .and_then(|workloads| cluster.wait_all(&workloads));
    let status = if deployed.is_ok() {
        Status::Succeeded
    } else {
        Status::Failed
    };
    history.mark(&mut current, status)?;
    deployed?;
    let pruned = prune(cluster, &key, &previous_manifests, &manifests)?;
    let mut releases = history.releases()?;
    releases.retain(|r| r.number <= number);
    history.prune(&releases)?;
    cluster
        .ctx
        .set_output("releaseNumber", &number.to_string())?;
    Ok(Outcome::summary(format!(
        "release {key} #{number}: {} object(s) applied{}",
        manifests.len(),
        if pruned > 0 {
            format!(", {pruned} pruned")
        } else {
            String::new()
        }
    )))
}

/// Deletes what `previous` applied and `current` lacks, where the object still carries the
/// release's label (another release's object of the same name is left alone). How many it deleted.
fn prune(
    cluster: &Cluster<'_>,
    key: &str,
    previous: &[Value],
    current: &[Value],
) -> Result<usize, Error> {
    let namespace = cluster.namespace();
    let kept: Vec<String> = current.iter().map(|o| identity(o, namespace)).collect();
    let mut pruned = 0;
    for stale in previous
        .iter()
        .filter(|o| !kept.contains(&identity(o, namespace)))
    {
        let target = reference(stale, namespace);
        let ours = cluster.client.get(&target)?.is_some_and(|live| {
            live.pointer("/metadata/labels")
                .and_then(|labels| labels.get(RELEASE_LABEL))
                .and_then(Value::as_str)
                == Some(key)
        });
        if ours && cluster.client.delete(&target)? {
            cluster.ctx.info(&format!("pruned {}", describe(stale)));
            pruned += 1;
        }
    }
    Ok(pruned)
}

fn rolling_rollback(cluster: &Cluster<'_>, spec: &Spec) -> Result<Outcome, Error> {
    let key = release(cluster, spec);
    let history = History::new(cluster, &key);
    let mut releases = history.releases()?;
    history.check_idle(&releases)?;
    let Some(newest) = releases.last().map(|r| r.number) else {
        return Ok(Outcome::summary(format!(
            "release {key} has no history; nothing to roll back"
        )));
    };
    let Some(target) = releases
        .iter()
        .rev()
        .find(|r| r.number < newest && r.effective_status() == Status::Succeeded)
        .cloned()
    else {
        return Ok(Outcome::summary(format!(
            "release {key} has no successful release before #{newest}; nothing to restore"
        )));
    };
    let workloads = cluster.apply_all(&target.manifests()?)?;
    cluster.wait_all(&workloads)?;
    let newest = releases.last_mut().expect("not empty");
    history.mark(newest, Status::RolledBack)?;
    cluster
        .ctx
        .set_output("restoredRelease", &target.number.to_string())?;
    Ok(Outcome::summary(format!(
        "release {key}: #{} rolled back to #{}",
        newest.number, target.number
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
