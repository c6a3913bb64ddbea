//! The one consumer of `saphyr-parser` events: a tree of raw nodes that keeps each node's
//! position, its tag and whether a scalar was plain. [`crate::parse`] and
//! [`crate::kube::parse_manifests`] read this tree each in their own way.

use std::collections::HashMap;

use saphyr_parser::{Event, Parser, ScalarStyle, Span, Tag};

use crate::{Node, Pos, SyntaxError, Value};

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Raw {
    pub pos: Pos,
    /// `!!str` for the core schema's tags, else the handle and suffix as written (`!foo`).
    pub tag: Option<String>,
    pub kind: RawKind,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum RawKind {
    Scalar { text: String, plain: bool },
    Seq(Vec<Raw>),
    Map(Vec<(Raw, Raw)>),
}

impl Raw {
    /// The node of [`crate::parse`]: tags dropped, plain `~`/`null`/empty scalars null.
    pub fn into_node(self) -> Node {
        let value = match self.kind {
            RawKind::Scalar { text, plain: true }
                if matches!(text.as_str(), "~" | "null" | "Null" | "NULL" | "") =>
            {
                Value::Null
            }
            RawKind::Scalar { text, plain } => Value::Scalar {
                text,
                quoted: !plain,
            },
            RawKind::Seq(items) => Value::Seq(items.into_iter().map(Raw::into_node).collect()),
            RawKind::Map(entries) => Value::Map(
                entries
                    .into_iter()
                    .map(|(k, v)| (k.into_node(), v.into_node()))
                    .collect(),
            ),
        };
        Node {
            value,
            pos: self.pos,
        }
    }
}

/// Parses `source` into its documents' root nodes.
pub(crate) fn parse(source: &str) -> Result<Vec<Raw>, SyntaxError> {
    let mut builder = Builder::default();
    for event in Parser::new_from_str(source) {
        match event {
            Ok((event, span)) => builder.on_event(event, span),
            Err(e) => {
                return Err(SyntaxError {
                    pos: Pos {
                        line: e.marker().line(),
                        col: e.marker().col() + 1,
                    },
                    message: e.info().to_string(),
                });
            }
        }
    }
    Ok(builder.documents)
}

fn tag_name(tag: Option<&Tag>) -> Option<String> {
    let tag = tag?;
    Some(if tag.is_yaml_core_schema() {
        format!("!!{}", tag.suffix)
    } else {
        format!("{}{}", tag.handle, tag.suffix)
    })
}

#[derive(Default)]
struct Builder {
    documents: Vec<Raw>,
    /// Open collections: the node being filled, a map's key waiting for its value, the anchor.
    stack: Vec<(Raw, Option<Raw>, usize)>,
    anchors: HashMap<usize, Raw>,
}

impl Builder {
    fn on_event(&mut self, event: Event<'_>, span: Span) {
        let pos = Pos {
            line: span.start.line(),
            col: span.start.col() + 1,
        };
        let collection = |kind, tag: Option<std::borrow::Cow<'_, Tag>>| Raw {
            pos,
            tag: tag_name(tag.as_deref()),
            kind,
        };
        match event {
            Event::Scalar(text, style, anchor, tag) => {
                let node = Raw {
                    pos,
                    tag: tag_name(tag.as_deref()),
                    kind: RawKind::Scalar {
                        text: text.into_owned(),
                        plain: matches!(style, ScalarStyle::Plain),
                    },
                };
                self.finish(node, anchor);
            }
            Event::SequenceStart(anchor, tag) => {
                self.stack
                    .push((collection(RawKind::Seq(vec![]), tag), None, anchor))
            }
            Event::MappingStart(anchor, tag) => {
                self.stack
                    .push((collection(RawKind::Map(vec![]), tag), None, anchor))
            }
            Event::SequenceEnd | Event::MappingEnd => {
                if let Some((node, _, anchor)) = self.stack.pop() {
                    self.finish(node, anchor);
                }
            }
            Event::Alias(id) => {
                let node = self.anchors.get(&id).cloned().unwrap_or(Raw {
                    pos,
                    tag: None,
                    kind: RawKind::Scalar {
                        text: String::new(),
                        plain: true,
                    },
                });
                self.finish(node, 0);
            }
            Event::StreamStart
            | Event::StreamEnd
            | Event::DocumentStart(_)
            | Event::DocumentEnd
            | Event::Nothing => {}
        }
    }

    fn finish(&mut self, node: Raw, anchor: usize) {
        if anchor != 0 {
            self.anchors.insert(anchor, node.clone());
        }
        match self.stack.last_mut() {
            None => self.documents.push(node),
            Some((
                Raw {
                    kind: RawKind::Seq(items),
                    ..
                },
                _,
                _,
            )) => items.push(node),
            Some((
                Raw {
                    kind: RawKind::Map(entries),
                    ..
                },
                pending,
                _,
            )) => match pending.take() {
                None => *pending = Some(node),
                Some(key) => entries.push((key, node)),
            },
            Some(_) => unreachable!("only collections are pushed on the stack"),
        }
    }
}
