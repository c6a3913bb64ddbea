//! A YAML tree that remembers where every node came from (JSON is read as YAML).
//!
//! Built from `saphyr-parser` events. Anchors and aliases are resolved (an alias is a copy of
//! its anchor's node, keeping the anchor's position). [`parse`] ignores tags and types plain
//! scalars as YAML 1.2 does; [`kube::parse_manifests`] reads Kubernetes manifests as kubectl does.

mod events;
pub mod kube;

/// A position in a source file: 1-based line, 1-based column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pos {
    pub line: usize,
    pub col: usize,
}

/// A syntax error: where, and what the parser said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    pub pos: Pos,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    /// A scalar's text. `quoted` scalars are always strings; plain ones may read as bool/number.
    Scalar {
        text: String,
        quoted: bool,
    },
    Seq(Vec<Node>),
    Map(Vec<(Node, Node)>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub value: Value,
    pub pos: Pos,
}

impl Node {
    pub fn kind(&self) -> &'static str {
        match &self.value {
            Value::Null => "nothing",
            Value::Scalar { .. } => "a scalar",
            Value::Seq(_) => "a list",
            Value::Map(_) => "a map",
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(self.value, Value::Null)
    }

    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            Value::Scalar { text, .. } => Some(text),
            _ => None,
        }
    }

    pub fn as_map(&self) -> Option<&[(Node, Node)]> {
        match &self.value {
            Value::Map(entries) => Some(entries),
            _ => None,
        }
    }

    pub fn as_seq(&self) -> Option<&[Node]> {
        match &self.value {
            Value::Seq(items) => Some(items),
            _ => None,
        }
    }

    /// The value of `key` in a map node.
    pub fn get(&self, key: &str) -> Option<&Node> {
        self.as_map()?
            .iter()
            .find(|(k, _)| k.as_str() == Some(key))
            .map(|(_, v)| v)
    }

    /// Converts to JSON following YAML 1.2 core-schema typing of plain scalars.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match &self.value {
            Value::Null => J::Null,
            Value::Scalar { text, quoted: true } => J::String(text.clone()),
            Value::Scalar {
                text,
                quoted: false,
            } => plain_scalar_to_json(text),
            Value::Seq(items) => J::Array(items.iter().map(Node::to_json).collect()),
            Value::Map(entries) => J::Object(
                entries
                    .iter()
                    .map(|(k, v)| (k.as_str().unwrap_or_default().to_string(), v.to_json()))
                    .collect(),
            ),
        }
    }
}

pub fn plain_scalar_to_json(text: &str) -> serde_json::Value {
    use serde_json::Value as J;
    match text {
        "true" | "True" | "TRUE" => return J::Bool(true),
        "false" | "False" | "FALSE" => return J::Bool(false),
        "null" | "Null" | "NULL" | "~" | "" => return J::Null,
        _ => {}
    }
    if let Ok(i) = text.parse::<i64>() {
        return J::from(i);
    }
    if text.chars().any(|c| c.is_ascii_digit())
        && let Ok(f) = text.parse::<f64>()
        && f.is_finite()
    {
        return J::from(f);
    }
    J::String(text.to_string())
}

/// Parses `source` into its documents' root nodes.
pub fn parse(source: &str) -> Result<Vec<Node>, SyntaxError> {
    Ok(events::parse(source)?
        .into_iter()
        .map(events::Raw::into_node)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes_keep_their_line_and_column() {
        let roots = parse("a:\n  b: [1, x]\n  c: 'q'\n").unwrap();
        let root = &roots[0];
        let b = root.get("a").unwrap().get("b").unwrap();
        assert_eq!(b.pos, Pos { line: 2, col: 6 });
        assert_eq!(b.as_seq().unwrap()[1].pos, Pos { line: 2, col: 10 });
        assert_eq!(
            root.get("a").unwrap().get("c").unwrap().to_json(),
            serde_json::json!("q")
        );
    }

    #[test]
    fn plain_scalars_are_typed_like_yaml_1_2() {
        let roots = parse("[true, 3, 1.5, '3', x, ~]").unwrap();
        assert_eq!(
            roots[0].to_json(),
            serde_json::json!([true, 3, 1.5, "3", "x", null])
        );
    }

    #[test]
    fn syntax_errors_name_the_line() {
        let err = parse("a: [1, 2\nb: c\n").unwrap_err();
        assert_eq!(err.pos.line, 2, "{err:?}");
    }

    #[test]
    fn aliases_copy_their_anchor() {
        let roots = parse("a: &x {k: v}\nb: *x\n").unwrap();
        assert_eq!(
            roots[0].get("b").unwrap().get("k").unwrap().as_str(),
            Some("v")
        );
    }
}
