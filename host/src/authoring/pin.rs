//! Pins a built component in lockstep.yaml: the step type's `component` and `sha256` are written
//! into the operator's file as text, so its comments, order and other entries stay as they are,
//! and the result is parsed as lockstep.yaml before it replaces the file.

use std::path::{Component, Path, PathBuf};

use lockstep_yaml::{self as yaml, Node, Value};

use super::AuthoringError;
use crate::config::Config;

/// What is pinned: `stepTypes.<type_name>.{component, sha256}`.
pub struct Pin<'a> {
    pub type_name: &'a str,
    /// As written in the file (relative to it where possible).
    pub component: &'a str,
    pub sha256: &'a str,
}

/// How the file changed.
#[derive(Debug, PartialEq, Eq)]
pub enum Pinned {
    Added,
    Updated,
}

/// Pins `component` (with its digest) as step type `type_name` in the lockstep.yaml at `config`,
/// which is created when missing. The file is replaced only by text that parses as lockstep.yaml.
pub fn pin_in_file(
    config: &Path,
    type_name: &str,
    component: &Path,
    sha256: &str,
) -> Result<Pinned, AuthoringError> {
    let refuse = |message: String| AuthoringError::Pin {
        config: config.to_path_buf(),
        message,
    };
    let text = match std::fs::read_to_string(config) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(AuthoringError::io(config)(e)),
    };
    let base = absolute(config.parent().unwrap_or(Path::new(".")));
    let written = relative_to(&absolute(component), &base);
    let (pinned, updated) = pin(
        &text,
        &Pin {
            type_name,
            component: &written.to_string_lossy(),
            sha256,
        },
    )
    .map_err(|refusal| refuse(refusal.to_string()))?;
    Config::parse(config, &updated).map_err(|invalid| {
        refuse(format!(
            "pinning would leave it invalid, so it was not changed:\n{invalid}"
        ))
    })?;
    let dir = config.parent().filter(|d| !d.as_os_str().is_empty());
    let mut file = tempfile::NamedTempFile::new_in(dir.unwrap_or(Path::new(".")))
        .map_err(AuthoringError::io(config))?;
    std::io::Write::write_all(&mut file, updated.as_bytes()).map_err(AuthoringError::io(config))?;
    file.persist(config)
        .map_err(|e| AuthoringError::io(config)(e.error))?;
    Ok(pinned)
}

fn absolute(path: &Path) -> PathBuf {
    path.canonicalize()
        .or_else(|_| std::path::absolute(path))
        .unwrap_or_else(|_| path.to_path_buf())
}

/// `path` as seen from `base` (both absolute): `steps/a.wasm`, `../x/a.wasm`.
fn relative_to(path: &Path, base: &Path) -> PathBuf {
    let path: Vec<Component> = path.components().collect();
    let base: Vec<Component> = base.components().collect();
    let shared = path.iter().zip(&base).take_while(|(a, b)| a == b).count();
    if shared == 0 {
        return path.iter().collect();
    }
    let up = std::iter::repeat_n(Component::ParentDir, base.len() - shared);
    up.chain(path[shared..].iter().copied()).collect()
}

/// Why a lockstep.yaml cannot be edited safely by a program; a person can.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PinRefusal {
    #[error("line {line}: {message}")]
    Syntax { line: usize, message: String },
    #[error("it is not a map of settings; pin the step by hand")]
    NotAMap,
    #[error(
        "line {line}: `{path}` is not written as a block; write it as one, or pin the step by hand"
    )]
    NotABlock { line: usize, path: String },
}

/// The text of a lockstep.yaml with `pin` in it.
pub fn pin(text: &str, pin: &Pin<'_>) -> Result<(Pinned, String), PinRefusal> {
    let documents = yaml::parse(text).map_err(|e| PinRefusal::Syntax {
        line: e.pos.line,
        message: e.message,
    })?;
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let component = serde_json::to_string(pin.component).expect("a string serializes");
    let entry = |indent: usize| {
        let pad = " ".repeat(indent);
        vec![
            format!("{pad}{}:", pin.type_name),
            format!("{pad}  component: {component}"),
            format!("{pad}  sha256: {}", pin.sha256),
        ]
    };
    let root = documents.first().filter(|d| !d.is_null());
    let root_entries = match root {
        None => &[][..],
        Some(root) => root.as_map().ok_or(PinRefusal::NotAMap)?,
    };
    let Some(index) = root_entries
        .iter()
        .position(|(k, _)| k.as_str() == Some("stepTypes"))
    else {
        lines.push("stepTypes:".into());
        lines.extend(entry(2));
        return Ok((Pinned::Added, joined(lines)));
    };
    let (key, types) = &root_entries[index];
    let types_entries = match &types.value {
        Value::Null => &[][..],
        Value::Map(entries) if entries.is_empty() => &[][..],
        Value::Map(entries) if types.pos.line > key.pos.line => entries,
        _ => {
            return Err(PinRefusal::NotABlock {
                line: key.pos.line,
                path: "stepTypes".into(),
            });
        }
    };
    match types_entries
        .iter()
        .find(|(k, _)| k.as_str() == Some(pin.type_name))
    {
        Some((type_key, fields)) => {
            update(&mut lines, type_key, fields, &component, pin)?;
            Ok((Pinned::Updated, joined(lines)))
        }
        None if types_entries.is_empty() => {
            lines[key.pos.line - 1] = format!("{}stepTypes:", " ".repeat(key.pos.col - 1));
            let at = key.pos.line;
            lines.splice(at..at, entry(key.pos.col + 1));
            Ok((Pinned::Added, joined(lines)))
        }
        None => {
            // After the last line of `stepTypes`: before the next top-level key, else at the end.
            let end = root_entries
                .get(index + 1)
                .map_or(lines.len(), |(next, _)| next.pos.line - 1);
            let end = last_content_line(&lines, end);
            lines.splice(end..end, entry(types_entries[0].0.pos.col - 1));
            Ok((Pinned::Added, joined(lines)))
        }
    }
}

/// Rewrites `component` and `sha256` of an existing block entry, adding what is missing.
fn update(
    lines: &mut Vec<String>,
    type_key: &Node,
    fields: &Node,
    component: &str,
    pin: &Pin<'_>,
) -> Result<(), PinRefusal> {
    let flow = || PinRefusal::NotABlock {
        line: type_key.pos.line,
        path: format!("stepTypes.{}", pin.type_name),
    };
    let Some(entries) = fields
        .as_map()
        .filter(|_| fields.pos.line > type_key.pos.line)
    else {
        return Err(flow());
    };
    let indent = entries
        .first()
        .map_or(type_key.pos.col + 1, |(k, _)| k.pos.col);
    let mut missing = vec![];
    for (name, value) in [("sha256", pin.sha256), ("component", component)] {
        match entries.iter().find(|(k, _)| k.as_str() == Some(name)) {
            Some((_, old)) if old.pos.line > 0 => {
                let Value::Scalar { text, .. } = &old.value else {
                    return Err(flow());
                };
                let line = &mut lines[old.pos.line - 1];
                let start = line
                    .char_indices()
                    .nth(old.pos.col - 1)
                    .map_or(line.len(), |(i, _)| i);
                // A trailing comment stays, with the spaces that align it; it starts after the
                // old value (a quoted value is at least as long as its text).
                let after = (start + text.len()).min(line.len());
                let comment = line[after..]
                    .find(" #")
                    .map(|i| after + line[after..after + i].trim_end().len())
                    .map(|from| line[from..].to_string());
                line.replace_range(start.., &(value.to_string() + &comment.unwrap_or_default()));
            }
            Some(_) => return Err(flow()),
            None => missing.push(format!("{}{name}: {value}", " ".repeat(indent - 1))),
        }
    }
    let at = type_key.pos.line;
    lines.splice(at..at, missing);
    Ok(())
}

/// The index after the last line before `end` that is neither blank nor a comment.
fn last_content_line(lines: &[String], end: usize) -> usize {
    let mut at = end;
    while at > 0 {
        let line = lines[at - 1].trim();
        if !line.is_empty() && !line.starts_with('#') {
            break;
        }
        at -= 1;
    }
    at
}

fn joined(lines: Vec<String>) -> String {
    lines.join("\n") + "\n"
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIGEST: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn pinned(text: &str) -> Result<(Pinned, String), PinRefusal> {
        pin(
            text,
            &Pin {
                type_name: "HelloStep",
                component: "hello/hello_step.wasm",
                sha256: DIGEST,
            },
        )
    }

    fn parses(text: &str) -> Config {
        Config::parse(Path::new("lockstep.yaml"), text).unwrap_or_else(|e| panic!("{e}\n{text}"))
    }

    #[test]
    fn a_new_type_is_added_to_an_empty_file_and_to_a_file_without_step_types() {
        let (how, text) = pinned("").unwrap();
        assert_eq!(how, Pinned::Added);
        assert_eq!(parses(&text).step_types["HelloStep"].sha256, DIGEST);
        let (_, text) = pinned("# the operator's\nsecrets:\n  t: { env: T }\n").unwrap();
        assert!(
            text.starts_with(
                "# the operator's\nsecrets:\n  t: { env: T }\nstepTypes:\n  HelloStep:\n"
            ),
            "{text}"
        );
        parses(&text);
    }

    #[test]
    fn a_new_type_joins_the_other_step_types_and_the_rest_of_the_file_is_untouched() {
        let before = format!(
            "stepTypes:\n    Other:\n        component: other.wasm\n        sha256: {DIGEST}\n\n# processes\nprocessSandbox:\n  network: none\n"
        );
        let (how, text) = pinned(&before).unwrap();
        assert_eq!(how, Pinned::Added);
        assert_eq!(
            text,
            format!(
                "stepTypes:\n    Other:\n        component: other.wasm\n        sha256: {DIGEST}\n    HelloStep:\n      component: \"hello/hello_step.wasm\"\n      sha256: {DIGEST}\n\n# processes\nprocessSandbox:\n  network: none\n"
            )
        );
        assert_eq!(parses(&text).step_types.len(), 2);
        let (_, text) = pinned("stepTypes: {}\n").unwrap();
        assert!(parses(&text).step_types.contains_key("HelloStep"), "{text}");
    }

    #[test]
    fn an_existing_type_gets_its_new_digest_and_keeps_its_grants_and_comments() {
        let before = "stepTypes:\n  HelloStep:\n    component: old.wasm   # rebuilt by CI\n    sha256: ffff\n    grants: { env: { A: b } }\n";
        let (how, text) = pinned(before).unwrap();
        assert_eq!(how, Pinned::Updated);
        assert_eq!(
            text,
            format!(
                "stepTypes:\n  HelloStep:\n    component: \"hello/hello_step.wasm\"   # rebuilt by CI\n    sha256: {DIGEST}\n    grants: {{ env: {{ A: b }} }}\n"
            )
        );
        assert_eq!(
            parses(&text).step_types["HelloStep"].grants.env,
            vec![("A".to_string(), "b".to_string())]
        );
        let (_, text) = pinned("stepTypes:\n  HelloStep:\n    grants: {}\n").unwrap();
        parses(&text);
    }

    #[test]
    fn flow_style_entries_are_left_for_a_person_to_edit() {
        let block = |line: usize, path: &str| {
            Err(PinRefusal::NotABlock {
                line,
                path: path.into(),
            })
        };
        assert_eq!(
            pinned("stepTypes: { HelloStep: { component: a.wasm } }\n"),
            block(1, "stepTypes")
        );
        assert_eq!(
            pinned("stepTypes:\n  HelloStep: { component: a.wasm }\n"),
            block(2, "stepTypes.HelloStep")
        );
        assert_eq!(pinned("- a list\n"), Err(PinRefusal::NotAMap));
    }

    #[test]
    fn the_component_is_written_relative_to_the_file() {
        assert_eq!(
            relative_to(Path::new("/w/steps/h/h.wasm"), Path::new("/w")),
            PathBuf::from("steps/h/h.wasm")
        );
        assert_eq!(
            relative_to(Path::new("/w/h/h.wasm"), Path::new("/w/ops")),
            PathBuf::from("../h/h.wasm")
        );
    }

    #[test]
    fn a_file_that_pinning_would_break_is_not_changed() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("lockstep.yaml");
        let before = "stepTypes:\n  HelloStep:\n    component: a.wasm\n    sha256: ffff\n    limits: { memory: 99Gi }\n";
        std::fs::write(&config, before).unwrap();
        let error =
            pin_in_file(&config, "HelloStep", &dir.path().join("h.wasm"), DIGEST).unwrap_err();
        assert!(error.to_string().contains("was not changed"), "{error}");
        assert_eq!(std::fs::read_to_string(&config).unwrap(), before);
    }
}
