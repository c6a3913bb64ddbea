//! XML changelogs, read by converting them to the YAML changelog shape: an element becomes a
//! map of its attributes, its child elements become entries (`column`s and changes as lists),
//! and text becomes the value (`<sql>…</sql>`, `<rollback>…</rollback>`, `<comment>`).

use std::collections::BTreeMap;

use crate::model::ChangelogError;
use crate::properties::FileProperties;
use crate::yaml_changelog::{self, Entry};
use lockstep_yaml::{Node, Pos, Value};

/// Deeper than any changelog nests, and shallow enough to read without exhausting the stack.
const MAX_DEPTH: usize = 256;

pub fn parse(
    file: &str,
    source: &str,
    properties: &mut FileProperties,
) -> Result<Vec<Entry>, Vec<ChangelogError>> {
    let document = roxmltree::Document::parse(source).map_err(|e| {
        vec![ChangelogError {
            file: file.to_string(),
            line: e.pos().row as usize,
            message: format!("this is not valid XML: {e}"),
            help: Some("check that every element is closed and attributes are quoted".into()),
        }]
    })?;
    let root = document.root_element();
    if root.tag_name().name() != "databaseChangeLog" {
        return Err(vec![ChangelogError {
            file: file.to_string(),
            line: 1,
            message: format!(
                "the root element is <{}>, not <databaseChangeLog>",
                root.tag_name().name()
            ),
            help: Some("an XML changelog's root element is <databaseChangeLog>".into()),
        }]);
    }
    let pos = |node: roxmltree::Node<'_, '_>| {
        let at = document.text_pos_at(node.range().start);
        Pos {
            line: at.row as usize,
            col: at.col as usize,
        }
    };
    // Reading the elements recurses: a hostile file nested 20,000 deep would exhaust the stack.
    // Depths are counted in document order, each element's from its parent's.
    let mut depths = vec![0usize; document.descendants().count()];
    for node in root.descendants().filter(roxmltree::Node::is_element) {
        let depth = 1 + node
            .parent()
            .map_or(0, |parent| depths[parent.id().get_usize()]);
        if depth > MAX_DEPTH {
            return Err(vec![ChangelogError {
                file: file.to_string(),
                line: pos(node).line,
                message: format!("elements are nested more than {MAX_DEPTH} deep"),
                help: Some(
                    "a changelog nests a few levels: changeSet, a change, its columns".into(),
                ),
            }]);
        }
        depths[node.id().get_usize()] = depth;
    }
    // The root's `logicalFilePath` is the FILENAME of every changeset in the file.
    let logical = root
        .attribute("logicalFilePath")
        .map(|path| single("logicalFilePath", scalar(path, pos(root)), pos(root)));
    let items: Vec<Node> = logical
        .into_iter()
        .chain(
            root.children()
                .filter(roxmltree::Node::is_element)
                .map(|child| single(child.tag_name().name(), element(child, &pos), pos(child))),
        )
        .collect();
    let shaped = single(
        "databaseChangeLog",
        Node {
            value: Value::Seq(items),
            pos: pos(root),
        },
        pos(root),
    );
    yaml_changelog::entries(file, &shaped, properties)
}

fn scalar(text: &str, pos: Pos) -> Node {
    Node {
        value: Value::Scalar {
            text: text.to_string(),
            quoted: true,
        },
        pos,
    }
}

fn key(name: &str, pos: Pos) -> Node {
    scalar(name, pos)
}

/// `{name: value}`
fn single(name: &str, value: Node, pos: Pos) -> Node {
    Node {
        value: Value::Map(vec![(key(name, pos), value)]),
        pos,
    }
}

/// The children that are lists in the YAML shape, whichever element holds them.
const LIST_CHILDREN: &[&str] = &["column"];

fn element(node: roxmltree::Node<'_, '_>, pos: &dyn Fn(roxmltree::Node<'_, '_>) -> Pos) -> Node {
    let at = pos(node);
    let name = node.tag_name().name();
    let children: Vec<roxmltree::Node<'_, '_>> = node
        .children()
        .filter(roxmltree::Node::is_element)
        .collect();
    let text: String = node
        .children()
        .filter(roxmltree::Node::is_text)
        .filter_map(|t| t.text())
        .collect();
    let attributes: Vec<(Node, Node)> = node
        .attributes()
        .map(|a| (key(a.name(), at), scalar(a.value(), at)))
        .collect();

    // Text-only elements: `<comment>`, `<validCheckSum>`, a `<rollback>` of SQL, `<sql>` bodies.
    if children.is_empty() && attributes.is_empty() {
        return if text.trim().is_empty() {
            Node {
                value: Value::Null,
                pos: at,
            }
        } else {
            scalar(&text, at)
        };
    }
    let mut entries = attributes;
    match name {
        "sql" | "createView" | "sqlCheck" | "createProcedure" | "output" | "stop" => {
            let field = match name {
                "createView" => "selectQuery",
                "createProcedure" => "procedureText",
                "output" | "stop" => "message",
                _ => "sql",
            };
            if !text.trim().is_empty() {
                entries.push((key(field, at), scalar(text.trim(), at)));
            }
        }
        "changeSet" => {
            let mut changes = vec![];
            let mut checksums = vec![];
            for child in &children {
                match child.tag_name().name() {
                    "comment" | "rollback" | "preConditions" => entries.push((
                        key(child.tag_name().name(), pos(*child)),
                        element(*child, pos),
                    )),
                    "validCheckSum" => checksums.push(element(*child, pos)),
                    change => changes.push(single(change, element(*child, pos), pos(*child))),
                }
            }
            entries.push((
                key("changes", at),
                Node {
                    value: Value::Seq(changes),
                    pos: at,
                },
            ));
            if !checksums.is_empty() {
                entries.push((
                    key("validCheckSum", at),
                    Node {
                        value: Value::Seq(checksums),
                        pos: at,
                    },
                ));
            }
            return Node {
                value: Value::Map(entries),
                pos: at,
            };
        }
        "rollback" => {
            if children.is_empty() {
                return if text.trim().is_empty() && entries.is_empty() {
                    Node {
                        value: Value::Null,
                        pos: at,
                    }
                } else if entries.is_empty() {
                    scalar(&text, at)
                } else {
                    Node {
                        value: Value::Map(entries),
                        pos: at,
                    }
                };
            }
            let changes = children
                .iter()
                .map(|c| single(c.tag_name().name(), element(*c, pos), pos(*c)))
                .collect();
            return Node {
                value: Value::Seq(changes),
                pos: at,
            };
        }
        _ => {}
    }
    let mut lists: BTreeMap<&str, Vec<Node>> = BTreeMap::new();
    for child in &children {
        let child_name = child.tag_name().name();
        if LIST_CHILDREN.contains(&child_name) {
            lists.entry(child_name).or_default().push(single(
                child_name,
                element(*child, pos),
                pos(*child),
            ));
        } else {
            entries.push((key(child_name, pos(*child)), element(*child, pos)));
        }
    }
    for (child_name, items) in lists {
        entries.push((
            key(&format!("{child_name}s"), at),
            Node {
                value: Value::Seq(items),
                pos: at,
            },
        ));
    }
    Node {
        value: Value::Map(entries),
        pos: at,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checksum::ChecksumVersion::V9;
    use crate::model::{ChangeSet, Rollback};

    fn changesets(source: &str) -> Vec<ChangeSet> {
        crate::yaml_changelog::tests::changesets_of(parse, "db/changelog.xml", source)
    }

    #[test]
    fn xml_changesets_match_liquibases_golden_checksums() {
        let cs = changesets(
            r#"<?xml version="1.0" encoding="UTF-8"?>
<databaseChangeLog xmlns="http://www.liquibase.org/xml/ns/dbchangelog">
    <changeSet id="1" author="a">
        <sql>insert into person(id,name) values (1,'x')</sql>
        <rollback>delete from person where id = 1</rollback>
    </changeSet>
    <changeSet id="2" author="a" runOnChange="true">
        <comment>people</comment>
        <createTable tableName="person">
            <column name="id" type="int">
                <constraints primaryKey="true" nullable="false"/>
            </column>
            <column name="name" type="varchar(50)"/>
        </createTable>
    </changeSet>
    <changeSet id="3" author="a">
        <tagDatabase tag="v1"/>
        <rollback/>
    </changeSet>
    <include file="more.xml" relativeToChangelogFile="true"/>
</databaseChangeLog>"#,
        );
        assert_eq!(
            cs[0].checksum(V9).to_string(),
            "9:14a5dbbef2f55fbd6efeaa8be6c6b53d"
        );
        assert!(
            matches!(&cs[0].rollback, Rollback::Sql(s) if s.sql == "delete from person where id = 1")
        );
        assert_eq!(
            cs[1].checksum(V9).to_string(),
            "9:3d828f93c7594c31e5da979cbc268032"
        );
        assert!(cs[1].run_on_change);
        assert_eq!(cs[1].comment.as_deref(), Some("people"));
        assert_eq!(cs[2].rollback, Rollback::Empty);
        assert_eq!((cs[0].line, cs[1].line), (3, 7));
    }

    /// liquibase-mongodb's XML: namespaced change elements, JSON in child elements.
    #[test]
    fn mongodb_xml_changelogs_read_like_liquibase_mongodb_s() {
        let cs = changesets(
            r#"<databaseChangeLog xmlns="http://www.liquibase.org/xml/ns/dbchangelog" xmlns:mongodb="http://www.liquibase.org/xml/ns/mongodb">
    <changeSet id="1" author="it">
        <mongodb:insertOne collectionName="results">
            <mongodb:document>
                { info: "notExistsAnyDocumentInCollection1" }
            </mongodb:document>
        </mongodb:insertOne>
    </changeSet>
    <changeSet id="2" author="it">
        <mongodb:createIndex collectionName="results">
            <mongodb:keys>{ info: 1 }</mongodb:keys>
            <mongodb:options>{ unique: true, name: "ix_info" }</mongodb:options>
        </mongodb:createIndex>
    </changeSet>
</databaseChangeLog>"#,
        );
        assert_eq!(
            cs[0].checksum(V9).to_string(),
            "9:af9b299cda217428f9d082b71472c7c2"
        );
        assert!(
            matches!(&cs[1].changes[0], crate::model::Change::Mongo(crate::mongo_changes::MongoChange::CreateIndex { keys, .. }) if keys == "{ info: 1 }")
        );
    }

    #[test]
    fn malformed_xml_names_the_line() {
        let errors = parse(
            "c.xml",
            "<databaseChangeLog>\n  <changeSet id=\"1\" author=\"a\">\n</databaseChangeLog>\n",
            &mut FileProperties::only(&BTreeMap::new()),
        )
        .unwrap_err();
        assert_eq!(errors[0].line, 3, "{errors:?}");
        assert!(errors[0].message.starts_with("this is not valid XML"));
    }

    #[test]
    fn xml_nested_deeper_than_any_changelog_is_refused_not_a_stack_overflow() {
        let deep = format!(
            "<databaseChangeLog>\n{}{}</databaseChangeLog>\n",
            "<a>".repeat(100_000),
            "</a>".repeat(100_000)
        );
        let errors =
            parse("c.xml", &deep, &mut FileProperties::only(&BTreeMap::new())).unwrap_err();
        assert_eq!(errors[0].line, 2, "{errors:?}");
        assert_eq!(errors[0].message, "elements are nested more than 256 deep");
    }
}
