//! Label and field selectors, as the API server parses them.

use serde_json::Value;

/// One requirement of a label selector.
#[derive(Debug, PartialEq)]
enum Requirement {
    Equals(String, String),
    NotEquals(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    DoesNotExist(String),
}

/// Splits on commas that are not inside `( )`.
fn terms(selector: &str) -> Vec<&str> {
    let (mut out, mut depth, mut start) = (vec![], 0, 0);
    for (i, c) in selector.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(&selector[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&selector[start..]);
    out.into_iter()
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .collect()
}

fn parse_label_term(term: &str) -> Result<Requirement, String> {
    let set = |rest: &str| -> Result<Vec<String>, String> {
        let inner = rest
            .trim()
            .strip_prefix('(')
            .and_then(|r| r.strip_suffix(')'))
            .ok_or_else(|| format!("unable to parse requirement: {term}"))?;
        Ok(inner.split(',').map(|v| v.trim().to_string()).collect())
    };
    if let Some(key) = term.strip_prefix('!') {
        return Ok(Requirement::DoesNotExist(key.trim().into()));
    }
    if let Some((key, rest)) = term.split_once(" notin ") {
        return Ok(Requirement::NotIn(key.trim().into(), set(rest)?));
    }
    if let Some((key, rest)) = term.split_once(" in ") {
        return Ok(Requirement::In(key.trim().into(), set(rest)?));
    }
    if let Some((key, value)) = term.split_once("!=") {
        return Ok(Requirement::NotEquals(
            key.trim().into(),
            value.trim().into(),
        ));
    }
    if let Some((key, value)) = term.split_once("==").or_else(|| term.split_once('=')) {
        return Ok(Requirement::Equals(key.trim().into(), value.trim().into()));
    }
    if term.contains(|c: char| c.is_whitespace() || "()<>".contains(c)) {
        return Err(format!("unable to parse requirement: {term}"));
    }
    Ok(Requirement::Exists(term.into()))
}

/// Whether `object`'s labels satisfy `selector` (`a=b,c!=d,e in (f,g),!h`); `Err` as the server
/// refuses a selector it cannot parse.
pub fn labels_match(object: &Value, selector: &str) -> Result<bool, String> {
    let labels = object.pointer("/metadata/labels");
    let label = |key: &str| labels.and_then(|l| l.get(key)).and_then(Value::as_str);
    for term in terms(selector) {
        let ok = match parse_label_term(term)? {
            Requirement::Equals(k, v) => label(&k) == Some(&v),
            Requirement::NotEquals(k, v) => label(&k) != Some(&v),
            Requirement::In(k, vs) => label(&k).is_some_and(|l| vs.iter().any(|v| v == l)),
            Requirement::NotIn(k, vs) => label(&k).is_none_or(|l| !vs.iter().any(|v| v == l)),
            Requirement::Exists(k) => label(&k).is_some(),
            Requirement::DoesNotExist(k) => label(&k).is_none(),
        };
        if !ok {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Whether `object` satisfies a field selector (`metadata.name=x,involvedObject.name!=y`).
pub fn fields_match(object: &Value, selector: &str) -> Result<bool, String> {
    for term in terms(selector) {
        let (path, value, negated) = if let Some((k, v)) = term.split_once("!=") {
            (k, v, true)
        } else if let Some((k, v)) = term.split_once("==").or_else(|| term.split_once('=')) {
            (k, v, false)
        } else {
            return Err(format!(
                "invalid selector: '{term}'; can't understand '{term}'"
            ));
        };
        let found = object
            .pointer(&format!("/{}", path.trim().replace('.', "/")))
            .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string))
            .unwrap_or_default();
        if (found == value.trim()) == negated {
            return Ok(false);
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn label_selectors_have_the_servers_syntax() {
        let o = json!({"metadata": {"labels": {"app": "web", "tier": "front"}}});
        for (selector, expected) in [
            ("app=web", true),
            ("app==web,tier=front", true),
            ("app!=web", false),
            ("tier in (front, back)", true),
            ("tier notin (front)", false),
            ("app", true),
            ("!release", true),
            ("!app", false),
            ("", true),
        ] {
            assert_eq!(labels_match(&o, selector), Ok(expected), "{selector}");
        }
        assert!(labels_match(&o, "tier in front").is_err());
    }
}
