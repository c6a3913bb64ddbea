//! The built-in Kubernetes steps. `K8sApply`: the manifests of `filePaths` (files or directories
//! of `.yaml`/`.yml`/`.json`, in the stage workspace), validated by a server-side dry run unless
//! `skipDryRun`, applied server-side, then waited for until every Deployment, StatefulSet and
//! DaemonSet among them has rolled out, unless `skipSteadyStateCheck`.
//!
//! The cluster, namespace and kinds it may touch are the runner's grant (from the step group's
//! `stepGroupInfra`); the workspace is preopened read-only at `/workspace`.

use std::path::{Path, PathBuf};

use lockstep_changelog::yaml;
use lockstep_step::kube::{Client, ObjectRef};
use lockstep_step::{Context, ContextExt, Error, Outcome, Step, export_step};
use serde::Deserialize;
use serde_json::Value;

const WORKSPACE: &str = "/workspace";

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ApplySpec {
    file_paths: Vec<String>,
    #[serde(default)]
    skip_dry_run: Flag,
    #[serde(default)]
    skip_steady_state_check: Flag,
    lockstep: Injected,
}

/// `true`, or `"true"` as Harness pipelines often write it.
#[derive(Deserialize, Default)]
#[serde(untagged)]
enum Flag {
    Bool(bool),
    Text(String),
    #[default]
    Unset,
}

impl Flag {
    fn on(&self) -> bool {
        match self {
            Flag::Bool(b) => *b,
            Flag::Text(t) => t.eq_ignore_ascii_case("true"),
            Flag::Unset => false,
        }
    }
}

/// Added by the runner.
#[derive(Deserialize)]
struct Injected {
    connector: String,
    namespace: String,
}

/// Every manifest file under `path` (a file, or a directory read in name order).
fn manifest_files(path: &Path) -> Result<Vec<PathBuf>, Error> {
    let shown = path.strip_prefix(WORKSPACE).unwrap_or(path).display().to_string();
    let metadata = std::fs::metadata(path).map_err(|e| Error::NotFound(format!("{shown}: {e} (filePaths are relative to the stage workspace)")))?;
    if metadata.is_file() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(path)
        .map_err(|e| Error::Failed(format!("{shown}: {e}")))?
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml" || e == "json"))
        .collect();
    files.sort();
    Ok(files)
}

/// The objects of one manifest file (YAML, several documents allowed), as JSON.
fn objects(path: &Path) -> Result<Vec<Value>, Error> {
    let shown = path.strip_prefix(WORKSPACE).unwrap_or(path).display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| Error::Failed(format!("{shown}: {e}")))?;
    let documents = yaml::parse(&text).map_err(|e| Error::Invalid(format!("{shown}:{}: {}", e.pos.line, e.message)))?;
    let mut out = vec![];
    for document in documents {
        match document.to_json() {
            Value::Null => {}
            Value::Object(object) if object.get("kind").and_then(Value::as_str).is_some_and(|k| k.ends_with("List")) => {
                out.extend(object.get("items").and_then(Value::as_array).cloned().unwrap_or_default());
            }
            object @ Value::Object(_) => out.push(object),
            _ => return Err(Error::Invalid(format!("{shown}:{}: a manifest document must be an object", document.pos.line))),
        }
    }
    Ok(out)
}

fn describe(object: &Value) -> String {
    format!("{}/{}", object["kind"].as_str().unwrap_or("?"), object.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("?"))
}

struct K8s;

impl Step for K8s {
    fn run(ctx: &Context) -> Result<Outcome, Error> {
        let spec: ApplySpec = ctx.spec_as()?;
        let mut manifests = vec![];
        for path in &spec.file_paths {
            for file in manifest_files(&Path::new(WORKSPACE).join(path))? {
                manifests.extend(objects(&file)?);
            }
        }
        if manifests.is_empty() {
            return Err(Error::Invalid(format!("no manifests in {}", spec.file_paths.join(", "))));
        }
        let client = Client::open(&spec.lockstep.connector)?;
        let namespace = Some(spec.lockstep.namespace.as_str());
        if !spec.skip_dry_run.on() {
            for object in &manifests {
                client.apply(&object.to_string(), namespace, true).map_err(|e| with_context(e, &format!("dry run of {}", describe(object))))?;
            }
        }
        let mut workloads = vec![];
        for object in &manifests {
            let applied: Value = serde_json::from_str(&client.apply(&object.to_string(), namespace, false).map_err(|e| with_context(e, &format!("applying {}", describe(object))))?).unwrap_or_default();
            ctx.info(&format!("applied {} in {}", describe(object), applied.pointer("/metadata/namespace").and_then(Value::as_str).unwrap_or("(cluster)")));
            if matches!(object["kind"].as_str(), Some("Deployment" | "StatefulSet" | "DaemonSet")) {
                workloads.push(ObjectRef {
                    api_version: object["apiVersion"].as_str().unwrap_or_default().to_string(),
                    kind: object["kind"].as_str().unwrap_or_default().to_string(),
                    namespace: applied.pointer("/metadata/namespace").and_then(Value::as_str).map(str::to_string),
                    name: applied.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default().to_string(),
                });
            }
        }
        if !spec.skip_steady_state_check.on() {
            for workload in &workloads {
                ctx.info(&format!("waiting for {}/{} to roll out", workload.kind, workload.name));
                let rollout = client.wait_rollout(workload)?;
                ctx.info(&rollout.message);
            }
        }
        ctx.set_output("objectsApplied", &manifests.len().to_string())?;
        Ok(Outcome::summary(format!("{} object(s) applied{}", manifests.len(), if workloads.is_empty() || spec.skip_steady_state_check.on() { String::new() } else { format!(", {} rolled out", workloads.len()) })))
    }
}

/// The same error, its message prefixed with what was being done.
fn with_context(error: Error, doing: &str) -> Error {
    match error {
        Error::AccessDenied(m) => Error::AccessDenied(format!("{doing}: {m}")),
        Error::NotFound(m) => Error::NotFound(format!("{doing}: {m}")),
        Error::Conflict(m) => Error::Conflict(format!("{doing}: {m}")),
        Error::Invalid(m) => Error::Invalid(format!("{doing}: {m}")),
        Error::LimitExceeded(m) => Error::LimitExceeded(format!("{doing}: {m}")),
        Error::Unavailable(m) => Error::Unavailable(format!("{doing}: {m}")),
        Error::Failed(m) => Error::Failed(format!("{doing}: {m}")),
    }
}

export_step!(K8s);
