//! Structured change types (`createTable`, `addColumn`, …): their SQL for PostgreSQL and SQLite,
//! their automatic inverses, their DESCRIPTION text, and the serializer fields their checksums
//! hash — all as Liquibase 4.28 has them.

use crate::checksum::{self, CheckSum, ChecksumVersion, Serialized, SqlSettings};
use crate::db::Dialect;

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Column {
    pub name: String,
    pub column_type: Option<String>,
    /// The default, under the key it was given with (`defaultValue`, `defaultValueNumeric`,
    /// `defaultValueBoolean`, `defaultValueComputed`): the key decides quoting and the checksum.
    pub default: Option<(String, String)>,
    pub auto_increment: Option<bool>,
    pub constraints: Option<Constraints>,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Constraints {
    pub nullable: Option<bool>,
    pub primary_key: Option<bool>,
    pub unique: Option<bool>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Structured {
    CreateTable {
        table: String,
        columns: Vec<Column>,
    },
    AddColumn {
        table: String,
        columns: Vec<Column>,
    },
    CreateIndex {
        table: String,
        index: Option<String>,
        columns: Vec<String>,
        unique: Option<bool>,
    },
    DropTable {
        table: String,
        cascade: Option<bool>,
    },
    DropColumn {
        table: String,
        column: String,
    },
    DropIndex {
        table: Option<String>,
        index: String,
    },
    RenameTable {
        old: String,
        new: String,
    },
    RenameColumn {
        table: String,
        old: String,
        new: String,
        column_type: Option<String>,
    },
    AddNotNullConstraint {
        table: String,
        column: String,
        column_type: Option<String>,
    },
    DropNotNullConstraint {
        table: String,
        column: String,
        column_type: Option<String>,
    },
    CreateView {
        view: String,
        query: String,
        replace: Option<bool>,
    },
    DropView {
        view: String,
    },
    TagDatabase {
        tag: String,
    },
    Empty,
}

fn scalar(text: impl Into<String>) -> Serialized {
    Serialized::Scalar(text.into())
}

fn push(fields: &mut Vec<(String, Serialized)>, name: &str, value: Option<impl ToString>) {
    if let Some(value) = value {
        fields.push((name.to_string(), scalar(value.to_string())));
    }
}

impl Column {
    fn serialized(&self) -> Serialized {
        let mut fields = vec![("name".to_string(), scalar(&self.name))];
        push(&mut fields, "type", self.column_type.as_ref());
        if let Some((key, value)) = &self.default {
            fields.push((key.clone(), scalar(value)));
        }
        push(&mut fields, "autoIncrement", self.auto_increment);
        if let Some(c) = &self.constraints {
            let mut inner = vec![];
            push(&mut inner, "nullable", c.nullable);
            push(&mut inner, "primaryKey", c.primary_key);
            push(&mut inner, "unique", c.unique);
            fields.push(("constraints".to_string(), Serialized::Object(inner)));
        }
        Serialized::Object(fields)
    }

    fn definition(&self, dialect: Dialect, inline_primary_key: bool) -> String {
        let mut out = format!(
            "{} {}",
            self.name,
            sql_type(
                self.column_type.as_deref().unwrap_or("text"),
                dialect,
                self.auto_increment == Some(true)
            )
        );
        if let Some((key, value)) = &self.default {
            // A plain defaultValue is a string; the typed forms are written as they are.
            let sql = if key == "defaultValue" {
                format!("'{}'", value.replace('\'', "''"))
            } else {
                value.clone()
            };
            out.push_str(&format!(" DEFAULT {sql}"));
        }
        let constraints = self.constraints.clone().unwrap_or_default();
        if inline_primary_key && constraints.primary_key == Some(true) {
            out.push_str(" PRIMARY KEY");
        }
        if constraints.nullable == Some(false) || constraints.primary_key == Some(true) {
            out.push_str(" NOT NULL");
        }
        if constraints.unique == Some(true) {
            out.push_str(" UNIQUE");
        }
        out
    }
}

/// Liquibase's type names to the database's.
fn sql_type(declared: &str, dialect: Dialect, auto_increment: bool) -> String {
    let lower = declared.trim().to_lowercase();
    if auto_increment && dialect == Dialect::Postgresql {
        return if lower.starts_with("bigint") {
            "BIGSERIAL".into()
        } else {
            "SERIAL".into()
        };
    }
    match lower.as_str() {
        "int" | "integer" | "int4" => "INTEGER".into(),
        "bigint" | "int8" => "BIGINT".into(),
        "smallint" | "int2" => "SMALLINT".into(),
        "boolean" | "bool" => "BOOLEAN".into(),
        "text" | "clob" => "TEXT".into(),
        "datetime" | "timestamp" => "TIMESTAMP".into(),
        "date" => "DATE".into(),
        "uuid" if dialect == Dialect::Postgresql => "UUID".into(),
        _ => declared.trim().to_uppercase(),
    }
}

impl Structured {
    /// The change's name in changelogs.
    pub fn name(&self) -> &'static str {
        match self {
            Structured::CreateTable { .. } => "createTable",
            Structured::AddColumn { .. } => "addColumn",
            Structured::CreateIndex { .. } => "createIndex",
            Structured::DropTable { .. } => "dropTable",
            Structured::DropColumn { .. } => "dropColumn",
            Structured::DropIndex { .. } => "dropIndex",
            Structured::RenameTable { .. } => "renameTable",
            Structured::RenameColumn { .. } => "renameColumn",
            Structured::AddNotNullConstraint { .. } => "addNotNullConstraint",
            Structured::DropNotNullConstraint { .. } => "dropNotNullConstraint",
            Structured::CreateView { .. } => "createView",
            Structured::DropView { .. } => "dropView",
            Structured::TagDatabase { .. } => "tagDatabase",
            Structured::Empty => "empty",
        }
    }

    /// The checksum Liquibase 4.28 computes for this change. `createView` hashes its query as SQL
    /// (whitespace-insensitive) next to the serializer text without it.
    pub fn checksum(&self, version: ChecksumVersion) -> CheckSum {
        match self {
            Structured::CreateView { query, .. } if version == ChecksumVersion::V9 => {
                let fields: Vec<(String, Serialized)> = self
                    .serialized()
                    .into_iter()
                    .filter(|(k, _)| k != "selectQuery")
                    .collect();
                let serializer = checksum::structured(version, self.name(), &fields);
                let sql = checksum::sql(version, query, &SqlSettings::default());
                checksum::text(version, &format!("{serializer}:{sql}"))
            }
            _ => checksum::structured(version, self.name(), &self.serialized()),
        }
    }

    /// The fields the StringChangeLogSerializer writes, which the checksum hashes.
    pub fn serialized(&self) -> Vec<(String, Serialized)> {
        let mut f = vec![];
        let columns =
            |columns: &[Column]| Serialized::List(columns.iter().map(Column::serialized).collect());
        match self {
            Structured::CreateTable {
                table,
                columns: cols,
            }
            | Structured::AddColumn {
                table,
                columns: cols,
            } => {
                f.push(("tableName".into(), scalar(table)));
                f.push(("columns".into(), columns(cols)));
            }
            Structured::CreateIndex {
                table,
                index,
                columns: cols,
                unique,
            } => {
                f.push(("tableName".into(), scalar(table)));
                push(&mut f, "indexName", index.as_ref());
                push(&mut f, "unique", *unique);
                f.push((
                    "columns".into(),
                    Serialized::List(
                        cols.iter()
                            .map(|c| Serialized::Object(vec![("name".into(), scalar(c))]))
                            .collect(),
                    ),
                ));
            }
            Structured::DropTable { table, cascade } => {
                f.push(("tableName".into(), scalar(table)));
                push(&mut f, "cascadeConstraints", *cascade);
            }
            Structured::DropColumn { table, column } => {
                f.push(("tableName".into(), scalar(table)));
                f.push(("columnName".into(), scalar(column)));
            }
            Structured::DropIndex { table, index } => {
                push(&mut f, "tableName", table.as_ref());
                f.push(("indexName".into(), scalar(index)));
            }
            Structured::RenameTable { old, new } => {
                f.push(("oldTableName".into(), scalar(old)));
                f.push(("newTableName".into(), scalar(new)));
            }
            Structured::RenameColumn {
                table,
                old,
                new,
                column_type,
            } => {
                f.push(("tableName".into(), scalar(table)));
                f.push(("oldColumnName".into(), scalar(old)));
                f.push(("newColumnName".into(), scalar(new)));
                push(&mut f, "columnDataType", column_type.as_ref());
            }
            Structured::AddNotNullConstraint {
                table,
                column,
                column_type,
            }
            | Structured::DropNotNullConstraint {
                table,
                column,
                column_type,
            } => {
                f.push(("tableName".into(), scalar(table)));
                f.push(("columnName".into(), scalar(column)));
                push(&mut f, "columnDataType", column_type.as_ref());
            }
            Structured::CreateView {
                view,
                query,
                replace,
            } => {
                f.push(("viewName".into(), scalar(view)));
                f.push(("selectQuery".into(), scalar(query)));
                push(&mut f, "replaceIfExists", *replace);
            }
            Structured::DropView { view } => f.push(("viewName".into(), scalar(view))),
            Structured::TagDatabase { tag } => f.push(("tag".into(), scalar(tag))),
            Structured::Empty => {}
        }
        f
    }

    /// DESCRIPTION: the name, then the sorted `k=v` of set fields whose name ends in `Name`.
    pub fn description(&self) -> String {
        let mut named: Vec<String> = self
            .serialized()
            .into_iter()
            .filter(|(k, _)| {
                k.to_lowercase().ends_with("name") && k != "schemaName" && k != "catalogName"
            })
            .filter_map(|(k, v)| match v {
                Serialized::Scalar(text) => Some(format!("{k}={text}")),
                _ => None,
            })
            .collect();
        named.sort();
        if named.is_empty() {
            self.name().to_string()
        } else {
            format!("{} {}", self.name(), named.join(", "))
        }
    }

    /// The statements that make this change.
    pub fn statements(&self, dialect: Dialect) -> Result<Vec<String>, String> {
        Ok(match self {
            Structured::CreateTable { table, columns } => {
                let keys: Vec<&str> = columns
                    .iter()
                    .filter(|c| c.constraints.as_ref().and_then(|k| k.primary_key) == Some(true))
                    .map(|c| c.name.as_str())
                    .collect();
                // SQLite's autoincrement needs the key inline; everywhere else a table constraint.
                let inline = dialect == Dialect::Sqlite && keys.len() == 1;
                let mut parts: Vec<String> = columns
                    .iter()
                    .map(|c| c.definition(dialect, inline))
                    .collect();
                if !keys.is_empty() && !inline {
                    parts.push(format!(
                        "CONSTRAINT {}_pkey PRIMARY KEY ({})",
                        table.to_lowercase(),
                        keys.join(", ")
                    ));
                }
                vec![format!("CREATE TABLE {table} ({})", parts.join(", "))]
            }
            Structured::AddColumn { table, columns } => columns
                .iter()
                .map(|c| format!("ALTER TABLE {table} ADD {}", c.definition(dialect, false)))
                .collect(),
            Structured::CreateIndex {
                table,
                index,
                columns,
                unique,
            } => {
                let name = index.clone().ok_or("createIndex needs `indexName`")?;
                vec![format!(
                    "CREATE {}INDEX {name} ON {table}({})",
                    if *unique == Some(true) { "UNIQUE " } else { "" },
                    columns.join(", ")
                )]
            }
            Structured::DropTable { table, cascade } => vec![format!(
                "DROP TABLE {table}{}",
                if *cascade == Some(true) && dialect == Dialect::Postgresql {
                    " CASCADE"
                } else {
                    ""
                }
            )],
            Structured::DropColumn { table, column } => {
                vec![format!("ALTER TABLE {table} DROP COLUMN {column}")]
            }
            Structured::DropIndex { index, .. } => vec![format!("DROP INDEX {index}")],
            Structured::RenameTable { old, new } => {
                vec![format!("ALTER TABLE {old} RENAME TO {new}")]
            }
            Structured::RenameColumn {
                table, old, new, ..
            } => vec![format!("ALTER TABLE {table} RENAME COLUMN {old} TO {new}")],
            Structured::AddNotNullConstraint { table, column, .. }
            | Structured::DropNotNullConstraint { table, column, .. }
                if dialect == Dialect::Sqlite =>
            {
                return Err(format!(
                    "{} on {table}.{column}: SQLite cannot change a column's NULL constraint; recreate the table instead",
                    self.name()
                ));
            }
            Structured::AddNotNullConstraint { table, column, .. } => vec![format!(
                "ALTER TABLE {table} ALTER COLUMN {column} SET NOT NULL"
            )],
            Structured::DropNotNullConstraint { table, column, .. } => vec![format!(
                "ALTER TABLE {table} ALTER COLUMN {column} DROP NOT NULL"
            )],
            Structured::CreateView {
                view,
                query,
                replace,
            } => {
                let or_replace = if *replace == Some(true) && dialect == Dialect::Postgresql {
                    "OR REPLACE "
                } else {
                    ""
                };
                vec![format!("CREATE {or_replace}VIEW {view} AS {query}")]
            }
            Structured::DropView { view } => vec![format!("DROP VIEW {view}")],
            Structured::TagDatabase { .. } | Structured::Empty => vec![],
        })
    }

    /// The change that undoes this one, if Liquibase has an automatic inverse for it.
    /// `Ok(None)` means nothing needs undoing (tagDatabase, empty).
    pub fn inverse(&self) -> Result<Option<Vec<Structured>>, String> {
        Ok(Some(match self {
            Structured::CreateTable { table, .. } => vec![Structured::DropTable {
                table: table.clone(),
                cascade: None,
            }],
            Structured::AddColumn { table, columns } => columns
                .iter()
                .map(|c| Structured::DropColumn {
                    table: table.clone(),
                    column: c.name.clone(),
                })
                .collect(),
            Structured::CreateIndex {
                table,
                index: Some(index),
                ..
            } => vec![Structured::DropIndex {
                table: Some(table.clone()),
                index: index.clone(),
            }],
            Structured::RenameTable { old, new } => vec![Structured::RenameTable {
                old: new.clone(),
                new: old.clone(),
            }],
            Structured::RenameColumn {
                table,
                old,
                new,
                column_type,
            } => vec![Structured::RenameColumn {
                table: table.clone(),
                old: new.clone(),
                new: old.clone(),
                column_type: column_type.clone(),
            }],
            Structured::AddNotNullConstraint {
                table,
                column,
                column_type,
            } => vec![Structured::DropNotNullConstraint {
                table: table.clone(),
                column: column.clone(),
                column_type: column_type.clone(),
            }],
            Structured::DropNotNullConstraint {
                table,
                column,
                column_type,
            } => vec![Structured::AddNotNullConstraint {
                table: table.clone(),
                column: column.clone(),
                column_type: column_type.clone(),
            }],
            Structured::CreateView { view, .. } => {
                vec![Structured::DropView { view: view.clone() }]
            }
            Structured::TagDatabase { .. } | Structured::Empty => return Ok(None),
            other => return Err(format!("{} has no automatic rollback", other.name())),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checksum::{self, ChecksumVersion::V9};

    fn person() -> Structured {
        Structured::CreateTable {
            table: "person".into(),
            columns: vec![
                Column {
                    name: "id".into(),
                    column_type: Some("int".into()),
                    constraints: Some(Constraints {
                        primary_key: Some(true),
                        nullable: Some(false),
                        unique: None,
                    }),
                    ..Column::default()
                },
                Column {
                    name: "name".into(),
                    column_type: Some("varchar(50)".into()),
                    ..Column::default()
                },
            ],
        }
    }

    #[test]
    fn create_table_matches_liquibases_checksum_and_description() {
        let change = person().checksum(V9);
        assert_eq!(change.to_string(), "9:857e96ee29abba5e0630248942cd5a47");
        assert_eq!(person().description(), "createTable tableName=person");
    }

    /// Values Liquibase 4.28 wrote for these changes (seen in the interop test).
    #[test]
    fn create_view_and_typed_defaults_match_liquibase() {
        let view = Structured::CreateView {
            view: "active_people".into(),
            query: "select id, full_name from person where active".into(),
            replace: None,
        };
        assert_eq!(
            checksum::changeset(V9, &[view.checksum(V9)]).to_string(),
            "9:06d0a72c4a50b9c1bc98efdbca539f13"
        );
        let add = Structured::AddColumn {
            table: "person".into(),
            columns: vec![
                Column {
                    name: "email".into(),
                    column_type: Some("varchar(200)".into()),
                    ..Column::default()
                },
                Column {
                    name: "active".into(),
                    column_type: Some("boolean".into()),
                    default: Some(("defaultValueBoolean".into(), "true".into())),
                    ..Column::default()
                },
            ],
        };
        assert_eq!(
            checksum::changeset(V9, &[add.checksum(V9)]).to_string(),
            "9:d23faa398a7f8887ba58dd8ad8f3db22"
        );
        assert_eq!(
            add.statements(Dialect::Postgresql).unwrap()[1],
            "ALTER TABLE person ADD active BOOLEAN DEFAULT true"
        );
    }

    #[test]
    fn sql_for_each_dialect() {
        assert_eq!(
            person().statements(Dialect::Postgresql).unwrap(),
            [
                "CREATE TABLE person (id INTEGER NOT NULL, name VARCHAR(50), CONSTRAINT person_pkey PRIMARY KEY (id))"
            ]
        );
        assert_eq!(
            person().statements(Dialect::Sqlite).unwrap(),
            ["CREATE TABLE person (id INTEGER PRIMARY KEY NOT NULL, name VARCHAR(50))"]
        );
        let index = Structured::CreateIndex {
            table: "person".into(),
            index: Some("ix_name".into()),
            columns: vec!["name".into()],
            unique: Some(true),
        };
        assert_eq!(
            index.statements(Dialect::Postgresql).unwrap(),
            ["CREATE UNIQUE INDEX ix_name ON person(name)"]
        );
        assert_eq!(
            index.description(),
            "createIndex indexName=ix_name, tableName=person"
        );
    }

    #[test]
    fn inverses() {
        assert_eq!(
            person().inverse().unwrap(),
            Some(vec![Structured::DropTable {
                table: "person".into(),
                cascade: None
            }])
        );
        assert_eq!(
            Structured::TagDatabase { tag: "v1".into() }
                .inverse()
                .unwrap(),
            None
        );
        assert!(
            Structured::DropTable {
                table: "t".into(),
                cascade: None
            }
            .inverse()
            .is_err()
        );
    }
}
