//! Harness `<+...>` expressions.
//!
//! [`interpolate`] resolves every expression in a text (innermost first, so expressions can
//! build paths for other expressions); [`evaluate`] evaluates the inside of one. Names are looked
//! up through a [`Resolver`], which the executor implements over the run's state.

mod parse;

use serde_json::Value;

pub use parse::{Expr, parse};

/// Where expression names come from.
pub trait Resolver {
    /// The value at a dotted path such as `pipeline.variables.env`; `Err` says why it is unknown.
    fn resolve(&self, path: &[String]) -> Result<Value, Reason>;
    /// `<+secrets.getValue("id")>`; the resolver records the value for masking.
    fn secret(&self, id: &str) -> Result<String, Reason>;
}

/// Why the inside of one `<+ >` has no value, in words for the diagnostic.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Reason {
    /// Not an expression: `<+a ==>`, an unclosed string.
    #[error("{0}")]
    Syntax(String),
    /// A name that nothing defines here, or not yet: `<+pipeline.variables.nope>`, a secret
    /// that is not configured.
    #[error("{0}")]
    Undefined(String),
    /// An operation the value does not allow: indexing a number, an unknown method.
    #[error("{0}")]
    Operation(String),
}

/// Why an expression could not be resolved. `expression` is the `<+...>` text as written.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("cannot resolve `{expression}`: {reason}")]
pub struct ExprError {
    pub expression: String,
    pub reason: Reason,
}

/// Values are capped (like Harness's 256 KB) so an expression cannot blow up memory.
pub const MAX_VALUE_BYTES: usize = 256 * 1024;

/// Whether `text` contains an expression at all.
pub fn has_expression(text: &str) -> bool {
    text.contains("<+")
}

/// Resolves every `<+...>` in `text`. A text that is exactly one expression keeps the value's
/// type (a number stays a number); otherwise the values are spliced into the text.
pub fn interpolate(text: &str, resolver: &dyn Resolver) -> Result<Value, ExprError> {
    let mut current = text.to_string();
    loop {
        let Some((start, end)) = innermost(&current) else {
            if let Some(open) = current.find("<+") {
                return Err(ExprError {
                    expression: current[open..].to_string(),
                    reason: Reason::Syntax("the expression is never closed with `>`".into()),
                });
            }
            return Ok(Value::String(current));
        };
        let inner = &current[start + 2..end];
        let value = evaluate(inner, resolver).map_err(|reason| ExprError {
            expression: current[start..=end].to_string(),
            reason,
        })?;
        if start == 0 && end == current.len() - 1 {
            return Ok(value);
        }
        let inside_outer = current[..start].contains("<+");
        let spliced = if inside_outer {
            as_operand(&current, start, end, &value)
        } else {
            to_text(&value)
        };
        if current.len() + spliced.len() > MAX_VALUE_BYTES {
            return Err(ExprError {
                expression: text.to_string(),
                reason: Reason::Operation(format!(
                    "the value is larger than {} KiB",
                    MAX_VALUE_BYTES / 1024
                )),
            });
        }
        current.replace_range(start..=end, &spliced);
    }
}

/// Like [`interpolate`], always producing text.
pub fn interpolate_text(text: &str, resolver: &dyn Resolver) -> Result<String, ExprError> {
    interpolate(text, resolver).map(|v| to_text(&v))
}

/// Evaluates the text inside one `<+ >`.
pub fn evaluate(source: &str, resolver: &dyn Resolver) -> Result<Value, Reason> {
    let expr = parse(source)?;
    eval(&expr, resolver)
}

/// How a value reads when spliced into text or compared as a string.
pub fn to_text(value: &Value) -> String {
    match value {
        Value::Null => "null".to_string(),
        Value::String(s) => s.clone(),
        Value::Number(n) => match n.as_f64() {
            Some(f) if f.fract() == 0.0 && f.abs() < 1e15 => format!("{}", f as i64),
            _ => n.to_string(),
        },
        other => other.to_string(),
    }
}

/// Truthiness for `when.condition` and `!`, `&&`, `||`.
pub fn is_truthy(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !(s.is_empty() || s == "false" || s == "null"),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

/// The span (`<+` .. `>`) of the first expression that contains no other expression.
fn innermost(text: &str) -> Option<(usize, usize)> {
    let bytes = text.as_bytes();
    let mut open: Option<usize> = None;
    let mut quote: Option<u8> = None;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        match quote {
            Some(q) if b == q => quote = None,
            Some(_) => {}
            None if b == b'<' && bytes.get(i + 1) == Some(&b'+') => {
                open = Some(i);
                i += 1;
            }
            None if (b == b'"' || b == b'\'') && open.is_some() => quote = Some(b),
            None if b == b'>' => {
                if let Some(start) = open
                    && closes_expression(bytes, i)
                {
                    return Some((start, i));
                }
            }
            None => {}
        }
        i += 1;
    }
    None
}

/// `a > b` and `a >= b` are comparisons; any other `>` ends the expression.
fn closes_expression(bytes: &[u8], i: usize) -> bool {
    let next = bytes.get(i + 1).copied();
    if next == Some(b'=') {
        return false;
    }
    let prev_space = i > 0 && bytes[i - 1] == b' ';
    let next_space = next == Some(b' ');
    !(prev_space && next_space)
}

/// Splices an inner value into an outer expression: raw when it is part of a path
/// (`pipeline.stages.<+x>.status`), as a literal otherwise (`<+<+x> == "y">`).
fn as_operand(text: &str, start: usize, end: usize, value: &Value) -> String {
    let before = text[..start].chars().last();
    let after = text[end + 1..].chars().next();
    if before == Some('.') || after == Some('.') || before == Some('[') {
        return to_text(value);
    }
    match value {
        Value::String(s) => serde_json::to_string(s).unwrap_or_default(),
        Value::Null => "null".to_string(),
        other => other.to_string(),
    }
}

fn eval(expr: &Expr, r: &dyn Resolver) -> Result<Value, Reason> {
    use parse::{BinaryOp, Expr as E};
    Ok(match expr {
        E::Literal(v) => v.clone(),
        E::Path(path) => r.resolve(path)?,
        E::Not(inner) => Value::Bool(!is_truthy(&eval(inner, r)?)),
        E::Ternary(cond, a, b) => {
            if is_truthy(&eval(cond, r)?) {
                eval(a, r)?
            } else {
                eval(b, r)?
            }
        }
        E::Binary(op, a, b) => match op {
            BinaryOp::And => Value::Bool(is_truthy(&eval(a, r)?) && is_truthy(&eval(b, r)?)),
            BinaryOp::Or => Value::Bool(is_truthy(&eval(a, r)?) || is_truthy(&eval(b, r)?)),
            BinaryOp::Add => {
                let (a, b) = (eval(a, r)?, eval(b, r)?);
                match (a.as_f64(), b.as_f64()) {
                    (Some(x), Some(y)) if !a.is_string() && !b.is_string() => number(x + y),
                    _ => Value::String(to_text(&a) + &to_text(&b)),
                }
            }
            BinaryOp::Eq => Value::Bool(loosely_equal(&eval(a, r)?, &eval(b, r)?)),
            BinaryOp::Ne => Value::Bool(!loosely_equal(&eval(a, r)?, &eval(b, r)?)),
            BinaryOp::Lt | BinaryOp::Gt | BinaryOp::Le | BinaryOp::Ge => {
                let ordering = compare(&eval(a, r)?, &eval(b, r)?);
                Value::Bool(match op {
                    BinaryOp::Lt => ordering.is_lt(),
                    BinaryOp::Gt => ordering.is_gt(),
                    BinaryOp::Le => ordering.is_le(),
                    _ => ordering.is_ge(),
                })
            }
            BinaryOp::Matches => {
                let (a, b) = (eval(a, r)?, eval(b, r)?);
                match &b {
                    Value::Array(items) => Value::Bool(items.iter().any(|i| loosely_equal(&a, i))),
                    other => Value::Bool(to_text(&a) == to_text(other)),
                }
            }
        },
        E::Call(receiver, method, args) => {
            if let E::Path(path) = receiver.as_ref()
                && method == "getValue"
                && matches!(path.first().map(String::as_str), Some("secrets"))
            {
                let id = args
                    .first()
                    .map(|a| eval(a, r))
                    .transpose()?
                    .map(|v| to_text(&v))
                    .ok_or_else(|| Reason::Operation("getValue needs a secret id".into()))?;
                let scoped = path[1..]
                    .iter()
                    .map(String::as_str)
                    .chain([id.as_str()])
                    .collect::<Vec<_>>()
                    .join(".");
                return r.secret(&scoped).map(Value::String);
            }
            let target = eval(receiver, r)?;
            let args = args
                .iter()
                .map(|a| eval(a, r))
                .collect::<Result<Vec<_>, _>>()?;
            call_method(&target, method, &args)?
        }
        E::Index(receiver, index) => {
            let target = eval(receiver, r)?;
            let index = eval(index, r)?;
            match (&target, &index) {
                (Value::Array(items), Value::Number(n)) => {
                    let i = n.as_u64().ok_or_else(|| {
                        Reason::Operation("a list index must be a whole number".into())
                    })? as usize;
                    items.get(i).cloned().ok_or_else(|| {
                        Reason::Operation({
                            format!("index {i} is past the end of a list of {}", items.len())
                        })
                    })?
                }
                (Value::Object(map), key) => map
                    .get(&to_text(key))
                    .cloned()
                    .ok_or_else(|| Reason::Operation(format!("no key `{}`", to_text(key))))?,
                _ => {
                    return Err(Reason::Operation(format!(
                        "cannot index {} with {}",
                        kind(&target),
                        to_text(&index)
                    )));
                }
            }
        }
    })
}

fn call_method(target: &Value, method: &str, args: &[Value]) -> Result<Value, Reason> {
    let text = to_text(target);
    let arg = |i: usize| {
        args.get(i)
            .map(to_text)
            .ok_or_else(|| Reason::Operation(format!("`{method}` needs {} argument(s)", i + 1)))
    };
    Ok(match method {
        "contains" => match target {
            Value::Array(items) => {
                let needle = args
                    .first()
                    .ok_or_else(|| Reason::Operation("`contains` needs an argument".into()))?;
                Value::Bool(items.iter().any(|i| loosely_equal(i, needle)))
            }
            _ => Value::Bool(text.contains(&arg(0)?)),
        },
        "startsWith" => Value::Bool(text.starts_with(&arg(0)?)),
        "endsWith" => Value::Bool(text.ends_with(&arg(0)?)),
        "split" => Value::Array(
            text.split(arg(0)?.as_str())
                .map(|s| Value::String(s.to_string()))
                .collect(),
        ),
        "toString" => Value::String(text),
        "concat" => Value::String(text + &arg(0)?),
        "toLowerCase" => Value::String(text.to_lowercase()),
        "toUpperCase" => Value::String(text.to_uppercase()),
        "trim" => Value::String(text.trim().to_string()),
        "length" | "size" => match target {
            Value::Array(items) => Value::from(items.len()),
            _ => Value::from(text.chars().count()),
        },
        "replace" => Value::String(text.replace(&arg(0)?, &arg(1)?)),
        "get" => match target {
            Value::Object(map) => map.get(&arg(0)?).cloned().ok_or_else(|| {
                Reason::Operation(format!("no key `{}`", arg(0).unwrap_or_default()))
            })?,
            _ => {
                return Err(Reason::Operation(format!(
                    "`get` needs a map, found {}",
                    kind(target)
                )));
            }
        },
        other => {
            return Err(Reason::Operation(format!(
                "unknown method `{other}`; supported: contains, startsWith, endsWith, split, toString, concat, toLowerCase, toUpperCase, trim, length, replace, get"
            )));
        }
    })
}

fn number(f: f64) -> Value {
    if f.fract() == 0.0 && f.abs() < 9e15 {
        Value::from(f as i64)
    } else {
        Value::from(f)
    }
}

fn as_number(value: &Value) -> Option<f64> {
    match value {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// JEXL-like equality: numbers compare numerically when both sides read as numbers,
/// booleans compare with their text forms, everything else by text.
fn loosely_equal(a: &Value, b: &Value) -> bool {
    if let (Some(x), Some(y)) = (as_number(a), as_number(b)) {
        return x == y;
    }
    match (a, b) {
        (Value::Null, Value::Null) => true,
        (Value::Null, _) | (_, Value::Null) => false,
        _ => to_text(a) == to_text(b),
    }
}

fn compare(a: &Value, b: &Value) -> std::cmp::Ordering {
    match (as_number(a), as_number(b)) {
        (Some(x), Some(y)) => x.partial_cmp(&y).unwrap_or(std::cmp::Ordering::Equal),
        _ => to_text(a).cmp(&to_text(b)),
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a map",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::collections::HashMap;

    struct Vars(HashMap<&'static str, Value>);

    impl Resolver for Vars {
        fn resolve(&self, path: &[String]) -> Result<Value, Reason> {
            self.0
                .get(path.join(".").as_str())
                .cloned()
                .ok_or_else(|| Reason::Undefined(format!("`{}` is not defined", path.join("."))))
        }
        fn secret(&self, id: &str) -> Result<String, Reason> {
            if id == "db_password" {
                Ok("hunter2".into())
            } else {
                Err(Reason::Undefined(format!("no secret `{id}`")))
            }
        }
    }

    fn vars() -> Vars {
        Vars(HashMap::from([
            ("pipeline.variables.env", json!("prod")),
            ("pipeline.variables.replicas", json!(3)),
            ("pipeline.variables.stage", json!("deploy")),
            ("pipeline.stages.deploy.status", json!("SUCCEEDED")),
            ("pipeline.variables.list", json!("a,b,c")),
        ]))
    }

    fn eval_text(text: &str) -> Value {
        interpolate(text, &vars()).unwrap()
    }

    #[test]
    fn a_whole_expression_keeps_its_type() {
        assert_eq!(eval_text("<+pipeline.variables.replicas>"), json!(3));
    }

    #[test]
    fn several_expressions_interpolate_into_text() {
        assert_eq!(
            eval_text("env=<+pipeline.variables.env> n=<+pipeline.variables.replicas>"),
            json!("env=prod n=3")
        );
    }

    #[test]
    fn comparison_and_logic_operators() {
        assert_eq!(
            eval_text(r#"<+pipeline.variables.env == "prod">"#),
            json!(true)
        );
        assert_eq!(
            eval_text(r#"<+pipeline.variables.env != "prod">"#),
            json!(false)
        );
        assert_eq!(eval_text("<+pipeline.variables.replicas > 2>"), json!(true));
        assert_eq!(
            eval_text("<+pipeline.variables.replicas >= 4>"),
            json!(false)
        );
        assert_eq!(
            eval_text("<+pipeline.variables.replicas < 4 && pipeline.variables.replicas <= 3>"),
            json!(true)
        );
        assert_eq!(
            eval_text(
                r#"<+pipeline.variables.env == "dev" || !(pipeline.variables.replicas == 1)>"#
            ),
            json!(true)
        );
    }

    #[test]
    fn ternary() {
        assert_eq!(
            eval_text(r#"<+pipeline.variables.env == "prod"?"big":"small">"#),
            json!("big")
        );
        assert_eq!(
            eval_text(r#"<+pipeline.variables.replicas == 1 ? "one" : "many">"#),
            json!("many")
        );
    }

    #[test]
    fn string_methods() {
        assert_eq!(
            eval_text(r#"<+pipeline.variables.env.contains("ro")>"#),
            json!(true)
        );
        assert_eq!(
            eval_text(r#"<+pipeline.variables.env.startsWith("pr")>"#),
            json!(true)
        );
        assert_eq!(
            eval_text(r#"<+pipeline.variables.env.endsWith("x")>"#),
            json!(false)
        );
        assert_eq!(
            eval_text(r#"<+pipeline.variables.list.split(",")[1]>"#),
            json!("b")
        );
        assert_eq!(
            eval_text(r#"<+pipeline.variables.list.split(",").contains("c")>"#),
            json!(true)
        );
    }

    #[test]
    fn nested_expressions_resolve_inner_first() {
        assert_eq!(
            eval_text(r#"<+<+pipeline.variables.env> == "prod">"#),
            json!(true)
        );
        assert_eq!(
            eval_text("<+pipeline.stages.<+pipeline.variables.stage>.status>"),
            json!("SUCCEEDED")
        );
    }

    #[test]
    fn secrets_resolve_through_the_resolver() {
        assert_eq!(
            eval_text(r#"<+secrets.getValue("db_password")>"#),
            json!("hunter2")
        );
    }

    #[test]
    fn an_unknown_name_names_the_expression() {
        let err = interpolate("x <+pipeline.variables.nope> y", &vars()).unwrap_err();
        assert_eq!(err.expression, "<+pipeline.variables.nope>");
        assert!(
            matches!(&err.reason, Reason::Undefined(m) if m.contains("pipeline.variables.nope")),
            "{err}"
        );
    }

    #[test]
    fn syntax_errors_are_reported_not_panicked() {
        for bad in [
            "<+a ==>",
            "<+(a>",
            r#"<+"unterminated>"#,
            "<+a ? b>",
            "<+.>",
        ] {
            assert!(interpolate(bad, &vars()).is_err(), "{bad}");
        }
    }

    #[test]
    fn text_without_expressions_is_unchanged() {
        assert_eq!(eval_text("a > b"), json!("a > b"));
    }
}
