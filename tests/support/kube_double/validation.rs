//! What the API server refuses before it stores anything: invalid names and labels, and objects
//! over the size limits.

use serde_json::Value;

/// The API server's limit on a request body.
pub const MAX_REQUEST_BYTES: usize = 3 * 1024 * 1024;
/// A ConfigMap's or Secret's data, all keys together.
pub const MAX_DATA_BYTES: usize = 1024 * 1024;

const SUBDOMAIN: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
const LABEL_1123: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
const LABEL_1035: &str = "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')";
const LABEL_VALUE: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";

fn label_like(text: &str, extra: &[char]) -> bool {
    let edge = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    !text.is_empty()
        && text.starts_with(edge)
        && text.ends_with(edge)
        && text
            .chars()
            .all(|c| edge(c) || c == '-' || extra.contains(&c))
}

/// Why `name` cannot name a `kind`, in the server's words.
fn name_problem(kind: &str, name: &str) -> Option<String> {
    match kind {
        "Service" => (name.len() > 63
            || !label_like(name, &[])
            || !name.starts_with(|c: char| c.is_ascii_lowercase()))
        .then(|| LABEL_1035.to_string()),
        "Namespace" => (name.len() > 63 || !label_like(name, &[])).then(|| LABEL_1123.to_string()),
        _ => (name.len() > 253 || !name.split('.').all(|part| label_like(part, &[])))
            .then(|| SUBDOMAIN.to_string()),
    }
}

fn label_value_ok(value: &str) -> bool {
    let edge = |c: char| c.is_ascii_alphanumeric();
    value.is_empty()
        || (value.len() <= 63
            && value.starts_with(edge)
            && value.ends_with(edge)
            && value
                .chars()
                .all(|c| edge(c) || matches!(c, '-' | '_' | '.')))
}

/// A field the server found invalid: (field, message).
pub fn invalid(kind: &str, name: &str, object: &Value) -> Option<(String, String)> {
    if let Some(problem) = name_problem(kind, name) {
        return Some((
            "metadata.name".into(),
            format!("Invalid value: \"{name}\": {problem}"),
        ));
    }
    if let Some(labels) = object
        .pointer("/metadata/labels")
        .and_then(Value::as_object)
    {
        for (key, value) in labels {
            let text = value.as_str().unwrap_or_default();
            if !label_value_ok(text) {
                return Some((
                    format!("metadata.labels.{key}"),
                    format!("Invalid value: \"{text}\": {LABEL_VALUE}"),
                ));
            }
        }
    }
    if matches!(kind, "ConfigMap" | "Secret") {
        // binaryData travels as base64: its bytes are three quarters of its text.
        let size: usize = [("data", 4), ("stringData", 4), ("binaryData", 3)]
            .iter()
            .filter_map(|(field, quarters)| Some((object.get(*field)?.as_object()?, *quarters)))
            .flat_map(|(entries, quarters)| {
                entries.iter().map(move |(key, value)| {
                    key.len() + value.as_str().map_or(0, str::len) * quarters / 4
                })
            })
            .sum();
        if size > MAX_DATA_BYTES {
            return Some((
                "[]".into(),
                format!("Too long: must have at most {MAX_DATA_BYTES} bytes"),
            ));
        }
    }
    None
}
