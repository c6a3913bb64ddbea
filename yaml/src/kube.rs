//! Kubernetes manifests read as kubectl, client-go and Helm read them: sigs.k8s.io/yaml, which
//! decodes with go-yaml v2 (YAML 1.1 typing) and converts the result to JSON.
//!
//! What differs from [`crate::parse`]'s YAML 1.2 reading, each as go-yaml v2 resolves it:
//! - integers: `0400` is octal (256), `0x1F` hex, `0b101` binary, `1_000` has separators;
//! - booleans: `yes`/`no`/`on`/`off`/`y`/`n` in their three spellings, besides `true`/`false`;
//! - tags: `!!str 8080` is text, `!!int "8080"` a number, `!!binary` base64-decoded text; an
//!   unknown tag leaves a scalar as text;
//! - merge keys: `<<: *defaults` (or a list of them) copies the maps' entries, entries written
//!   after it overriding them, and earlier maps of a list winning over later ones;
//! - map keys become JSON text: `1: a` gives `"1"`, `yes: a` gives `"true"`.

use serde_json::{Map, Number, Value as Json};

use crate::events::{Raw, RawKind};
use crate::{Pos, SyntaxError};

/// A manifest document, as JSON, and where it starts.
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    pub pos: Pos,
    pub value: Json,
}

/// Every document of a manifest file (empty ones included, as `null`).
pub fn parse_manifests(source: &str) -> Result<Vec<Document>, SyntaxError> {
    crate::events::parse(source)?
        .iter()
        .map(|root| {
            Ok(Document {
                pos: root.pos,
                value: json(root)?,
            })
        })
        .collect()
}

fn error(pos: Pos, message: String) -> SyntaxError {
    SyntaxError { pos, message }
}

fn json(node: &Raw) -> Result<Json, SyntaxError> {
    match &node.kind {
        RawKind::Scalar { text, plain } => scalar(node, text, *plain),
        RawKind::Seq(items) => items
            .iter()
            .map(json)
            .collect::<Result<_, _>>()
            .map(Json::Array),
        RawKind::Map(entries) => {
            let mut map = Map::new();
            for (key, value) in entries {
                if is_merge(key) {
                    merge(&mut map, value)?;
                } else {
                    map.insert(key_text(key)?, json(value)?);
                }
            }
            Ok(Json::Object(map))
        }
    }
}

fn is_merge(key: &Raw) -> bool {
    matches!(&key.kind, RawKind::Scalar { text, plain: true } if text == "<<") && key.tag.is_none()
}

/// `<<: map` or `<<: [map, …]`: entries merged in, earlier maps of a list taking precedence.
fn merge(into: &mut Map<String, Json>, value: &Raw) -> Result<(), SyntaxError> {
    let maps: Vec<&Raw> = match &value.kind {
        RawKind::Map(_) => vec![value],
        RawKind::Seq(items) => items.iter().rev().collect(),
        RawKind::Scalar { .. } => vec![value],
    };
    for map in maps {
        match json(map)? {
            Json::Object(entries) => into.extend(entries),
            _ => {
                return Err(error(
                    map.pos,
                    "a merge key `<<` needs a map or a list of maps".into(),
                ));
            }
        }
    }
    Ok(())
}

/// A map key as JSON text: what the key resolves to, written out.
fn key_text(key: &Raw) -> Result<String, SyntaxError> {
    Ok(match json(key)? {
        Json::String(text) => text,
        Json::Null => "null".into(),
        Json::Bool(b) => b.to_string(),
        Json::Number(n) => n.to_string(),
        _ => {
            return Err(error(
                key.pos,
                "a map key must be a scalar to become JSON".into(),
            ));
        }
    })
}

fn scalar(node: &Raw, text: &str, plain: bool) -> Result<Json, SyntaxError> {
    let invalid = |kind: &str| error(node.pos, format!("`{text}` is not a valid {kind}"));
    match node.tag.as_deref() {
        None if plain => resolve(text).map_err(|message| error(node.pos, message)),
        None | Some("!!str") | Some("!!timestamp") => Ok(Json::String(text.into())),
        Some("!!int") => match resolve(text) {
            Ok(Json::Number(n)) if n.is_i64() || n.is_u64() => Ok(Json::Number(n)),
            _ => Err(invalid("!!int")),
        },
        Some("!!float") => match resolve(text) {
            Ok(Json::Number(n)) => Ok(Json::Number(n)),
            _ => Err(invalid("!!float")),
        },
        Some("!!bool") => match resolve(text) {
            Ok(Json::Bool(b)) => Ok(Json::Bool(b)),
            _ => Err(invalid("!!bool")),
        },
        Some("!!null") => Ok(Json::Null),
        Some("!!binary") => {
            use base64::Engine as _;
            let compact: String = text.split_whitespace().collect();
            base64::engine::general_purpose::STANDARD
                .decode(compact)
                .map(|bytes| Json::String(String::from_utf8_lossy(&bytes).into_owned()))
                .map_err(|_| invalid("!!binary (base64)"))
        }
        Some(_) => Ok(Json::String(text.into())),
    }
}

/// A plain scalar as go-yaml v2 resolves it (its `resolve` table and number rules).
fn resolve(text: &str) -> Result<Json, String> {
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Ok(Json::Null),
        "y" | "Y" | "yes" | "Yes" | "YES" | "true" | "True" | "TRUE" | "on" | "On" | "ON" => {
            return Ok(Json::Bool(true));
        }
        "n" | "N" | "no" | "No" | "NO" | "false" | "False" | "FALSE" | "off" | "Off" | "OFF" => {
            return Ok(Json::Bool(false));
        }
        ".nan" | ".NaN" | ".NAN" | ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF"
        | "-.inf" | "-.Inf" | "-.INF" => {
            return Err(format!("`{text}` is not a number JSON can hold"));
        }
        _ => {}
    }
    let starts_numeric = text
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_digit() || matches!(c, '+' | '-' | '.'));
    if !starts_numeric {
        return Ok(Json::String(text.into()));
    }
    let plain = text.replace('_', "");
    if let Some(n) = go_parse_int(&plain) {
        return Ok(Json::Number(n));
    }
    if is_yaml_float(&plain)
        && let Ok(f) = plain.parse::<f64>()
    {
        return Ok(float(f));
    }
    Ok(Json::String(text.into()))
}

/// Go's `strconv.ParseInt(text, 0, 64)`, then `ParseUint`: an optional sign, then `0x`, `0o`,
/// `0b` or a leading `0` (octal) choosing the base.
fn go_parse_int(text: &str) -> Option<Number> {
    let (negative, digits) = match text.as_bytes().first()? {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    let lower = digits.to_ascii_lowercase();
    let (radix, body) = if let Some(hex) = lower.strip_prefix("0x") {
        (16, hex)
    } else if let Some(octal) = lower.strip_prefix("0o") {
        (8, octal)
    } else if let Some(binary) = lower.strip_prefix("0b") {
        (2, binary)
    } else if lower.len() > 1 && lower.starts_with('0') {
        (8, &lower[1..])
    } else {
        (10, lower.as_str())
    };
    if body.is_empty() || !body.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    let magnitude = u64::from_str_radix(body, radix).ok()?;
    if negative {
        let value = i64::try_from(magnitude)
            .ok()
            .map(|m| -m)
            .or((magnitude == 1 << 63).then_some(i64::MIN))?;
        Some(Number::from(value))
    } else {
        Some(Number::from(magnitude))
    }
}

/// go-yaml v2's float syntax: `^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$`.
fn is_yaml_float(text: &str) -> bool {
    let body = text.strip_prefix(['+', '-']).unwrap_or(text);
    let (mantissa, exponent) = match body.find(['e', 'E']) {
        Some(at) => (&body[..at], Some(&body[at + 1..])),
        None => (body, None),
    };
    let digits = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_digit());
    let mantissa_ok = match mantissa.split_once('.') {
        Some(("", fraction)) => digits(fraction),
        Some((whole, fraction)) => digits(whole) && fraction.chars().all(|c| c.is_ascii_digit()),
        None => digits(mantissa),
    };
    let exponent_ok = exponent.is_none_or(|e| digits(e.strip_prefix(['+', '-']).unwrap_or(e)));
    mantissa_ok && exponent_ok
}

/// A float as Go's JSON encoder writes it: a whole number without a fraction.
fn float(f: f64) -> Json {
    if f.fract() == 0.0 && f.abs() < 9.007_199_254_740_992e15 {
        Json::from(f as i64)
    } else {
        Json::from(f)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn read(source: &str) -> Json {
        parse_manifests(source).unwrap().remove(0).value
    }

    #[test]
    fn numbers_are_typed_as_go_yaml_v2_types_them() {
        assert_eq!(
            read("[0400, 0755, 0x1F, 0o17, 0b101, 1_000, -0400, 08, 1.5, 1e3, .5, 3.]"),
            json!([256, 493, 31, 15, 5, 1000, -256, 8, 1.5, 1000, 0.5, 3])
        );
        assert_eq!(
            read("[1.2.3, 0x, 12abc, '0400']"),
            json!(["1.2.3", "0x", "12abc", "0400"])
        );
    }

    #[test]
    fn yaml_1_1_booleans_and_nulls() {
        assert_eq!(
            read("[yes, No, ON, off, y, N, true, ~, null, '', maybe]"),
            json!([
                true, false, true, false, true, false, true, null, null, "", "maybe"
            ])
        );
    }

    #[test]
    fn tags_decide_over_the_text() {
        assert_eq!(
            read(
                "[!!str 8080, !!int \"8080\", !!float 1, !!bool yes, !!null x, !!binary aGk=, !custom 5]"
            ),
            json!(["8080", 8080, 1, true, null, "hi", "5"])
        );
        assert!(parse_manifests("!!int abc").is_err());
    }

    #[test]
    fn merge_keys_copy_entries_that_later_keys_override() {
        let source = "base: &base { image: app:1, name: app, port: 80 }
extra: &extra { port: 81, debug: true }
one: { <<: *base, name: web }
both: { <<: [*base, *extra], name: web }
";
        let value = read(source);
        assert_eq!(
            value["one"],
            json!({"image": "app:1", "name": "web", "port": 80})
        );
        assert_eq!(
            value["both"],
            json!({"image": "app:1", "name": "web", "port": 80, "debug": true})
        );
    }

    #[test]
    fn keys_become_json_text_and_infinities_are_refused_with_their_line() {
        assert_eq!(
            read("{1: a, yes: b, 0x10: c, ~: d}"),
            json!({"1": "a", "true": "b", "16": "c", "null": "d"})
        );
        let error = parse_manifests("a: 1\nb: .inf\n").unwrap_err();
        assert_eq!(error.pos.line, 2);
    }

    #[test]
    fn every_document_is_kept_with_its_line() {
        let documents = parse_manifests("a: 1\n---\n---\nb: 2\n").unwrap();
        assert_eq!(documents.len(), 3);
        assert_eq!(documents[1].value, Json::Null);
        assert_eq!(documents[2].pos.line, 4);
    }
}
