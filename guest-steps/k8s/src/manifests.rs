//! Manifests from the stage workspace, read as kubectl reads them, and the names of their objects.

use std::path::{Path, PathBuf};

use lockstep_builtins::k8s::{Spec, WORKSPACE_MOUNT};
use lockstep_step::Error;
use lockstep_step::kube::ObjectRef;
use lockstep_yaml::kube::parse_manifests;
use serde_json::Value;

/// The objects of every file `filePaths` names, in order.
pub fn load(spec: &Spec) -> Result<Vec<Value>, Error> {
    let mut manifests = vec![];
    for path in &spec.file_paths {
        for file in files(&Path::new(WORKSPACE_MOUNT).join(path))? {
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

fn shown(path: &Path) -> String {
    path.strip_prefix(WORKSPACE_MOUNT)
        .unwrap_or(path)
        .display()
        .to_string()
}

/// Every manifest file under `path` (a file, or a directory read in name order).
fn files(path: &Path) -> Result<Vec<PathBuf>, Error> {
    let metadata = std::fs::metadata(path).map_err(|e| {
        Error::NotFound(format!(
            "{}: {e} (filePaths are relative to the stage workspace)",
            shown(path)
        ))
    })?;
    if metadata.is_file() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(path)
        .map_err(|e| Error::Failed(format!("{}: {e}", shown(path))))?
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

/// The objects of one manifest file (several documents allowed), typed as kubectl types them.
fn objects(path: &Path) -> Result<Vec<Value>, Error> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::Failed(format!("{}: {e}", shown(path))))?;
    let documents = parse_manifests(&text)
        .map_err(|e| Error::Invalid(format!("{}:{}: {}", shown(path), e.pos.line, e.message)))?;
    let mut out = vec![];
    for document in documents {
        match document.value {
            Value::Null => {}
            Value::Object(object) => match list_items(&object) {
                Some(items) => out.extend(items.iter().cloned()),
                None => out.push(Value::Object(object)),
            },
            _ => {
                return Err(Error::Invalid(format!(
                    "{}:{}: a manifest document must be an object",
                    shown(path),
                    document.pos.line
                )));
            }
        }
    }
    Ok(out)
}

/// The items of a list object, as kubectl flattens it: a kind ending in `List` that has an
/// `items` list (`v1/List`, `ConfigMapList`). A custom kind such as `AccessList` without `items`
/// is an object like any other.
fn list_items(object: &serde_json::Map<String, Value>) -> Option<&Vec<Value>> {
    let kind = object.get("kind").and_then(Value::as_str)?;
    if !kind.ends_with("List") {
        return None;
    }
    object.get("items").and_then(Value::as_array)
}

/// `Deployment/app`, for messages.
pub fn describe(object: &Value) -> String {
    format!(
        "{}/{}",
        object["kind"].as_str().unwrap_or("?"),
        object
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("?")
    )
}

pub fn is_workload(object: &Value) -> bool {
    matches!(
        object["kind"].as_str(),
        Some("Deployment" | "StatefulSet" | "DaemonSet")
    )
}

/// Which object `object` is, in `namespace` unless it names its own.
pub fn reference(object: &Value, namespace: &str) -> ObjectRef {
    let text = |pointer: &str| {
        object
            .pointer(pointer)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    ObjectRef {
        api_version: text("/apiVersion"),
        kind: text("/kind"),
        namespace: Some(
            object
                .pointer("/metadata/namespace")
                .and_then(Value::as_str)
                .unwrap_or(namespace)
                .to_string(),
        ),
        name: text("/metadata/name"),
    }
}

/// `kind/namespace/name` of an object, to compare releases.
pub fn identity(object: &Value, namespace: &str) -> String {
    let target = reference(object, namespace);
    format!(
        "{}/{}/{}",
        target.kind,
        target.namespace.unwrap_or_default(),
        target.name
    )
}

/// Adds `key: value` to the object's labels.
pub fn label(object: &mut Value, key: &str, value: &str) {
    if let Some(metadata) = object.as_object_mut().map(|o| {
        o.entry("metadata")
            .or_insert_with(|| Value::Object(Default::default()))
    }) && let Some(labels) = metadata.as_object_mut().map(|m| {
        m.entry("labels")
            .or_insert_with(|| Value::Object(Default::default()))
    }) && let Some(labels) = labels.as_object_mut()
    {
        labels.insert(key.into(), Value::String(value.into()));
    }
}
