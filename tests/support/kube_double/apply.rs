//! Writes to an object as the API server makes them: server-side apply with field ownership,
//! strategic-merge and JSON-merge patches, and the `managedFields` that record who owns what.
//!
//! Ownership is tracked per leaf field (lists are atomic, as for most list fields of built-in
//! kinds). An apply by manager M takes the fields it sends; a field another manager owns with a
//! different value is a conflict unless the apply is forced, which transfers it; a field M
//! applied before and no longer sends is removed unless another manager owns it too. Any other
//! write (create, replace, patch) makes its manager own the fields it set, taking them from
//! others.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value, json};

/// A field, as its path of keys.
pub type Path = Vec<String>;

/// Who owns which fields of one object: manager → (operation, fields).
#[derive(Debug, Clone, Default)]
pub struct Ownership {
    managers: BTreeMap<String, (&'static str, BTreeSet<Path>)>,
}

/// Fields the server sets and nobody owns.
fn server_owned(path: &[String]) -> bool {
    matches!(
        path.first().map(String::as_str),
        Some("apiVersion" | "kind" | "status")
    ) || (path.first().map(String::as_str) == Some("metadata")
        && matches!(
            path.get(1).map(String::as_str),
            Some(
                "name"
                    | "namespace"
                    | "uid"
                    | "resourceVersion"
                    | "generation"
                    | "creationTimestamp"
                    | "managedFields"
            )
        ))
}

/// Every leaf field of `value`: scalars, lists and empty maps.
pub fn leaves(value: &Value) -> BTreeSet<Path> {
    fn walk(value: &Value, path: &mut Path, out: &mut BTreeSet<Path>) {
        match value {
            Value::Object(map) if !map.is_empty() => {
                for (key, child) in map {
                    path.push(key.clone());
                    walk(child, path, out);
                    path.pop();
                }
            }
            _ => {
                if !server_owned(path) && !path.is_empty() {
                    out.insert(path.clone());
                }
            }
        }
    }
    let mut out = BTreeSet::new();
    walk(value, &mut vec![], &mut out);
    out
}

fn at<'v>(value: &'v Value, path: &[String]) -> Option<&'v Value> {
    path.iter().try_fold(value, |v, key| v.get(key))
}

fn remove(value: &mut Value, path: &[String]) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut current = value;
    for key in parents {
        match current.get_mut(key) {
            Some(next) => current = next,
            None => return,
        }
    }
    if let Some(map) = current.as_object_mut() {
        map.remove(last);
    }
}

/// Maps merge recursively; anything else is replaced.
fn overlay(into: &mut Value, from: &Value) {
    match (into, from) {
        (Value::Object(into), Value::Object(from)) => {
            for (key, value) in from {
                overlay(into.entry(key.clone()).or_insert(Value::Null), value);
            }
        }
        (into, from) => *into = from.clone(),
    }
}

/// A refused apply: the fields other managers own with other values.
pub struct Conflicts(pub Vec<(String, Path)>);

impl Conflicts {
    /// The server's message: `Apply failed with 1 conflict: conflict with "kubectl" using v1: .data.a`.
    pub fn message(&self, api_version: &str) -> String {
        let lines: Vec<String> = self
            .0
            .iter()
            .map(|(manager, path)| {
                format!(
                    "conflict with \"{manager}\" using {api_version}: .{}",
                    path.join(".")
                )
            })
            .collect();
        let count = lines.len();
        format!(
            "Apply failed with {count} conflict{}: {}",
            if count == 1 { "" } else { "s" },
            lines.join("\n")
        )
    }
}

impl Ownership {
    /// Server-side apply of `config` by `manager` onto `live` (`None`: the object is new).
    pub fn apply(
        &mut self,
        live: Option<&Value>,
        config: &Value,
        manager: &str,
        force: bool,
    ) -> Result<Value, Conflicts> {
        let sent = leaves(config);
        let mut object = live.cloned().unwrap_or_else(|| json!({}));
        let mut conflicts = vec![];
        for (other, (_, fields)) in &self.managers {
            if other == manager {
                continue;
            }
            for path in fields.intersection(&sent) {
                if at(&object, path) != at(config, path) {
                    conflicts.push((other.clone(), path.clone()));
                }
            }
        }
        if !conflicts.is_empty() && !force {
            return Err(Conflicts(conflicts));
        }
        let others: BTreeSet<Path> = self
            .managers
            .iter()
            .filter(|(m, _)| *m != manager)
            .flat_map(|(_, (_, fields))| fields.iter().cloned())
            .collect();
        if let Some((_, before)) = self.managers.get(manager) {
            for dropped in before.difference(&sent) {
                if !others.contains(dropped) {
                    remove(&mut object, dropped);
                }
            }
        }
        overlay(&mut object, config);
        for (_, path) in &conflicts {
            for (_, fields) in self.managers.values_mut() {
                fields.remove(path);
            }
        }
        self.managers.insert(manager.to_string(), ("Apply", sent));
        self.tidy(&object);
        Ok(object)
    }

    /// Any other write by `manager` that left the object as `object`, having set `fields`.
    pub fn update(&mut self, object: &Value, fields: BTreeSet<Path>, manager: &str) {
        for (other, (_, owned)) in self.managers.iter_mut() {
            if other != manager {
                owned.retain(|p| !fields.contains(p));
            }
        }
        let entry = self
            .managers
            .entry(manager.to_string())
            .or_insert(("Update", BTreeSet::new()));
        entry.1.extend(fields);
        self.tidy(object);
    }

    /// Forgets fields the object no longer has, and managers that own nothing.
    fn tidy(&mut self, object: &Value) {
        for (_, fields) in self.managers.values_mut() {
            fields.retain(|p| at(object, p).is_some());
        }
        self.managers.retain(|_, (_, fields)| !fields.is_empty());
    }

    /// `metadata.managedFields`, as the server shows it.
    pub fn managed_fields(&self, api_version: &Value) -> Value {
        Value::Array(
            self.managers
                .iter()
                .map(|(manager, (operation, fields))| {
                    let mut set = Map::new();
                    for path in fields {
                        let mut node = &mut set;
                        for key in path {
                            node = node
                                .entry(format!("f:{key}"))
                                .or_insert_with(|| json!({}))
                                .as_object_mut()
                                .expect("field sets are maps");
                        }
                    }
                    json!({"manager": manager, "operation": operation, "apiVersion": api_version, "fieldsType": "FieldsV1", "fieldsV1": set})
                })
                .collect(),
        )
    }
}

/// A JSON merge patch (RFC 7386): `null` deletes, maps merge, anything else replaces.
pub fn merge_patch(into: &mut Value, patch: &Value) {
    match (into, patch) {
        (Value::Object(into), Value::Object(patch)) => {
            for (key, value) in patch {
                if value.is_null() {
                    into.remove(key);
                } else {
                    merge_patch(into.entry(key.clone()).or_insert(Value::Null), value);
                }
            }
        }
        (into, patch) => *into = patch.clone(),
    }
}

/// A strategic merge patch, as kubectl's client-side apply sends it: like a merge patch, but
/// lists of named objects (containers, env, volumes, …) merge by `name`, `$patch: delete`
/// removes one, and the `$`-directives are not stored.
pub fn strategic_merge_patch(into: &mut Value, patch: &Value) {
    match (into, patch) {
        (Value::Object(into), Value::Object(patch)) => {
            for (key, value) in patch {
                if key.starts_with('$') {
                    continue;
                }
                if value.is_null() {
                    into.remove(key);
                } else {
                    strategic_merge_patch(into.entry(key.clone()).or_insert(Value::Null), value);
                }
            }
        }
        (Value::Array(into), Value::Array(patch)) if named(into) && named(patch) => {
            for element in patch {
                let name = &element["name"];
                let position = into.iter().position(|e| &e["name"] == name);
                let delete = element.get("$patch").and_then(Value::as_str) == Some("delete");
                match (position, delete) {
                    (Some(i), true) => {
                        into.remove(i);
                    }
                    (Some(i), false) => strategic_merge_patch(&mut into[i], element),
                    (None, false) => {
                        let mut added = Value::Null;
                        strategic_merge_patch(&mut added, element);
                        into.push(added);
                    }
                    (None, true) => {}
                }
            }
        }
        (into, Value::Object(patch)) => {
            let mut fresh = Value::Object(Map::new());
            strategic_merge_patch(&mut fresh, &Value::Object(patch.clone()));
            *into = fresh;
        }
        (into, patch) => *into = patch.clone(),
    }
}

fn named(list: &[Value]) -> bool {
    !list.is_empty()
        && list
            .iter()
            .all(|e| e.get("name").is_some_and(Value::is_string))
}
