//! Change types described fully by their attributes (constraints, defaults, sequences, data,
//! views, remarks): Liquibase's serializer writes every attribute as given, so their checksums and
//! DESCRIPTIONs come from the attributes, and each kind turns them into SQL for PostgreSQL.
//! On SQLite, which cannot alter constraints, defaults, types or sequences in place, the data
//! changes and mergeColumns (which drops columns, as SQLite can) run; add/dropDefaultValue and
//! addAutoIncrement rebuild the table ([`AttributeChange::sqlite_rebuild`]); the others are
//! refused before any write.

use std::collections::BTreeMap;

use crate::changes::sql_type;
use crate::checksum::Serialized;
use crate::db::Dialect;
use crate::sqlite_rebuild::{ColumnEdit, Rebuild};

/// `Kind`, with each kind's name in changelogs.
macro_rules! kinds {
    ($($kind:ident => $name:literal,)*) => {
        /// Which change it is.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum Kind {
            $($kind,)*
        }

        impl Kind {
            pub fn from_name(name: &str) -> Option<Kind> {
                match name {
                    $($name => Some(Kind::$kind),)*
                    _ => None,
                }
            }

            /// The change's name in changelogs.
            pub fn name(self) -> &'static str {
                match self {
                    $(Kind::$kind => $name,)*
                }
            }
        }
    };
}

kinds! {
    AddPrimaryKey => "addPrimaryKey",
    DropPrimaryKey => "dropPrimaryKey",
    AddUniqueConstraint => "addUniqueConstraint",
    DropUniqueConstraint => "dropUniqueConstraint",
    AddForeignKeyConstraint => "addForeignKeyConstraint",
    DropForeignKeyConstraint => "dropForeignKeyConstraint",
    AddDefaultValue => "addDefaultValue",
    DropDefaultValue => "dropDefaultValue",
    ModifyDataType => "modifyDataType",
    CreateSequence => "createSequence",
    AlterSequence => "alterSequence",
    RenameSequence => "renameSequence",
    DropSequence => "dropSequence",
    RenameView => "renameView",
    SetTableRemarks => "setTableRemarks",
    SetColumnRemarks => "setColumnRemarks",
    Insert => "insert",
    Update => "update",
    Delete => "delete",
    AddAutoIncrement => "addAutoIncrement",
    MergeColumns => "mergeColumns",
    AddLookupTable => "addLookupTable",
    DropAllForeignKeyConstraints => "dropAllForeignKeyConstraints",
    CreateProcedure => "createProcedure",
    DropProcedure => "dropProcedure",
    Output => "output",
    Stop => "stop",
}

use Kind::*;

/// The defaults a column may be given, as in `addDefaultValue` and `createTable`.
const DEFAULTS: &[&str] = &[
    "defaultValue",
    "defaultValueNumeric",
    "defaultValueBoolean",
    "defaultValueComputed",
];

/// The values a column of `insert` and `update` may be given.
pub const VALUES: &[&str] = &["value", "valueNumeric", "valueBoolean", "valueComputed"];

impl Kind {
    /// The attributes it needs, then those it may have; `columns` is a list of columns.
    pub fn attributes(self) -> (&'static [&'static str], &'static [&'static str]) {
        match self {
            AddPrimaryKey => (
                &["tableName", "columnNames"],
                &["schemaName", "constraintName"],
            ),
            DropPrimaryKey => (&["tableName"], &["schemaName", "constraintName"]),
            AddUniqueConstraint => (
                &["tableName", "columnNames"],
                &["schemaName", "constraintName"],
            ),
            DropUniqueConstraint => (&["tableName", "constraintName"], &["schemaName"]),
            AddForeignKeyConstraint => (
                &[
                    "baseTableName",
                    "baseColumnNames",
                    "constraintName",
                    "referencedTableName",
                    "referencedColumnNames",
                ],
                &[
                    "baseTableSchemaName",
                    "referencedTableSchemaName",
                    "onDelete",
                    "onUpdate",
                ],
            ),
            DropForeignKeyConstraint => (
                &["baseTableName", "constraintName"],
                &["baseTableSchemaName"],
            ),
            AddDefaultValue => (
                &["tableName", "columnName"],
                &[
                    "schemaName",
                    "columnDataType",
                    "defaultValue",
                    "defaultValueNumeric",
                    "defaultValueBoolean",
                    "defaultValueComputed",
                ],
            ),
            DropDefaultValue => (
                &["tableName", "columnName"],
                &["schemaName", "columnDataType"],
            ),
            ModifyDataType => (&["tableName", "columnName", "newDataType"], &["schemaName"]),
            CreateSequence => (
                &["sequenceName"],
                &[
                    "schemaName",
                    "startValue",
                    "incrementBy",
                    "minValue",
                    "maxValue",
                    "cycle",
                ],
            ),
            AlterSequence => (
                &["sequenceName"],
                &["schemaName", "incrementBy", "minValue", "maxValue", "cycle"],
            ),
            RenameSequence => (&["oldSequenceName", "newSequenceName"], &["schemaName"]),
            DropSequence => (&["sequenceName"], &["schemaName"]),
            RenameView => (&["oldViewName", "newViewName"], &["schemaName"]),
            SetTableRemarks => (&["tableName", "remarks"], &["schemaName"]),
            SetColumnRemarks => (
                &["tableName", "columnName", "remarks"],
                &["schemaName", "columnDataType"],
            ),
            Insert => (&["tableName", "columns"], &["schemaName"]),
            Update => (&["tableName", "columns"], &["schemaName", "where"]),
            Delete => (&["tableName"], &["schemaName", "where"]),
            AddAutoIncrement => (
                &["tableName", "columnName"],
                &["schemaName", "columnDataType", "startWith", "incrementBy"],
            ),
            MergeColumns => (
                &[
                    "tableName",
                    "column1Name",
                    "column2Name",
                    "finalColumnName",
                    "finalColumnType",
                ],
                &["schemaName", "joinString"],
            ),
            AddLookupTable => (
                &[
                    "existingTableName",
                    "existingColumnName",
                    "newTableName",
                    "newColumnName",
                    "constraintName",
                ],
                &[
                    "existingTableSchemaName",
                    "newTableSchemaName",
                    "newColumnDataType",
                ],
            ),
            DropAllForeignKeyConstraints => (&["baseTableName"], &["baseTableSchemaName"]),
            CreateProcedure => (
                &["procedureText"],
                &["schemaName", "procedureName", "replaceIfExists"],
            ),
            DropProcedure => (&["procedureName"], &["schemaName"]),
            Output => (&[], &["message", "target"]),
            Stop => (&[], &["message"]),
        }
    }

    /// The column attributes, for the kinds that have `columns`.
    pub fn column_attributes(self) -> &'static [&'static str] {
        match self {
            Insert | Update => &[
                "name",
                "value",
                "valueNumeric",
                "valueBoolean",
                "valueComputed",
            ],
            _ => &[],
        }
    }

    /// The attribute whose SQL Liquibase's V9 checksum hashes on its own, as SQL.
    pub fn sql_field(self) -> Option<&'static str> {
        (self == CreateProcedure).then_some("procedureText")
    }

    /// Whether SQLite can run it in place.
    fn runs_on_sqlite(self) -> bool {
        matches!(
            self,
            Insert | Update | Delete | MergeColumns | Output | Stop
        )
    }
}

/// One change of a [`Kind`], with its attributes as the changelog gives them (`${}` expanded).
#[derive(Debug, Clone, PartialEq)]
pub struct AttributeChange {
    pub kind: Kind,
    pub attributes: BTreeMap<String, String>,
    /// `columns` of `insert` and `update`, each its attributes.
    pub columns: Vec<BTreeMap<String, String>>,
}

fn scalar(text: &str) -> Serialized {
    Serialized::Scalar(text.to_string())
}

impl AttributeChange {
    fn get(&self, name: &str) -> &str {
        self.attributes.get(name).map_or("", String::as_str)
    }

    /// `schema.name` when the schema attribute is set.
    fn at(&self, schema: &str, name: &str) -> String {
        match self.attributes.get(schema) {
            Some(schema) => format!("{schema}.{}", self.get(name)),
            None => self.get(name).to_string(),
        }
    }

    fn table(&self) -> String {
        self.at("schemaName", "tableName")
    }

    /// The fields Liquibase's serializer writes: every attribute, and the columns.
    pub fn serialized(&self) -> Vec<(String, Serialized)> {
        let mut fields: Vec<(String, Serialized)> = self
            .attributes
            .iter()
            .map(|(k, v)| (k.clone(), scalar(v)))
            .collect();
        if !self.columns.is_empty() {
            let columns = self
                .columns
                .iter()
                .map(|column| {
                    Serialized::Object(column.iter().map(|(k, v)| (k.clone(), scalar(v))).collect())
                })
                .collect();
            fields.push(("columns".into(), Serialized::List(columns)));
        }
        fields
    }

    /// A column's value as SQL: `value` is a string, the typed forms are written as they are.
    fn value(dialect: Dialect, column: &BTreeMap<String, String>) -> String {
        VALUES
            .iter()
            .find_map(|key| column.get(*key).map(|v| (key, v)))
            .map_or("NULL".to_string(), |(key, value)| {
                if *key == "value" {
                    dialect.quoted(value)
                } else {
                    value.clone()
                }
            })
    }

    /// The default an `addDefaultValue` sets, as SQL.
    fn default_value(&self, dialect: Dialect) -> Result<String, String> {
        DEFAULTS
            .iter()
            .find_map(|key| self.attributes.get(*key).map(|v| (key, v)))
            .map(|(key, value)| crate::changes::default_sql(key, value, dialect))
            .ok_or_else(|| "addDefaultValue needs one of defaultValue, defaultValueNumeric, defaultValueBoolean, defaultValueComputed".to_string())
    }

    /// ` START WITH 5 INCREMENT BY 2 …`: the options a sequence change sets, in Liquibase's order.
    fn sequence_options(&self) -> String {
        [
            ("startValue", "START WITH"),
            ("incrementBy", "INCREMENT BY"),
            ("minValue", "MINVALUE"),
            ("maxValue", "MAXVALUE"),
        ]
        .into_iter()
        .filter_map(|(attribute, clause)| {
            self.attributes
                .get(attribute)
                .map(|value| format!(" {clause} {value}"))
        })
        .collect()
    }

    /// dropAllForeignKeyConstraints on MySQL and MariaDB: the schema and table whose foreign
    /// keys the store reads from the database as the change runs, as Liquibase reads them.
    pub fn drops_foreign_keys_of(&self) -> Option<(Option<&str>, &str)> {
        (self.kind == DropAllForeignKeyConstraints).then(|| {
            (
                self.attributes
                    .get("baseTableSchemaName")
                    .map(String::as_str),
                self.get("baseTableName"),
            )
        })
    }

    /// dropAllForeignKeyConstraints on MySQL and MariaDB, once the store has read the names
    /// of the table's foreign `keys`.
    pub fn drop_foreign_keys(&self, keys: &[String]) -> Vec<String> {
        let base = self.at("baseTableSchemaName", "baseTableName");
        keys.iter()
            .map(|key| format!("ALTER TABLE {base} DROP FOREIGN KEY {key}"))
            .collect()
    }

    /// addDefaultValue, dropDefaultValue and addAutoIncrement on SQLite, which cannot change a
    /// column in place: the table is rebuilt ([`crate::sqlite_rebuild`]). `None` for the other
    /// kinds; an error for attributes SQLite cannot honour.
    pub(crate) fn sqlite_rebuild(&self) -> Option<Result<Rebuild, String>> {
        let column = self.get("columnName").to_string();
        let edit = match self.kind {
            AddDefaultValue => self
                .default_value(Dialect::Sqlite)
                .map(|sql| ColumnEdit::SetDefault { column, sql }),
            DropDefaultValue => Ok(ColumnEdit::DropDefault { column }),
            AddAutoIncrement => self.sqlite_auto_increment(column),
            _ => return None,
        };
        Some(edit.and_then(|edit| {
            if let Some(schema) = self.attributes.get("schemaName") {
                return Err(crate::changes::one_schema_on_sqlite(
                    self.kind.name(),
                    schema,
                ));
            }
            Ok(Rebuild {
                table: self.get("tableName").to_string(),
                edit,
            })
        }))
    }

    /// addAutoIncrement's edit on SQLite, whose AUTOINCREMENT counts up by one.
    fn sqlite_auto_increment(&self, column: String) -> Result<ColumnEdit, String> {
        if self
            .attributes
            .get("incrementBy")
            .is_some_and(|by| by.trim() != "1")
        {
            return Err("addAutoIncrement's `incrementBy` cannot be honoured on SQLite, whose AUTOINCREMENT counts up by one; leave it out".into());
        }
        let start_with = self
            .attributes
            .get("startWith")
            .map(|start| {
                start.trim().parse::<i64>().map_err(|_| {
                    format!("addAutoIncrement's `startWith` must be a whole number, not `{start}`")
                })
            })
            .transpose()?;
        Ok(ColumnEdit::AutoIncrement { column, start_with })
    }

    /// The statements where MySQL's differ from PostgreSQL's, as Liquibase 4.28 writes them for
    /// MariaDB; `None` where they are the same.
    fn mysql_statements(&self, dialect: Dialect) -> Result<Option<Vec<String>>, String> {
        let table = self.table();
        let column = self.get("columnName");
        // MySQL restates a column's whole definition to change one part of it.
        let column_type = || {
            self.attributes
                .get("columnDataType")
                .map(|t| sql_type(t, dialect))
                .ok_or_else(|| {
                    format!(
                        "{} on MySQL needs `columnDataType`: MySQL restates the whole column, as in Liquibase",
                        self.kind.name()
                    )
                })
        };
        Ok(Some(match self.kind {
            CreateSequence | AlterSequence | DropSequence if dialect == Dialect::Mysql => {
                return Err(format!(
                    "{} cannot run on MySQL, which has no sequences (MariaDB has them); use an AUTO_INCREMENT column",
                    self.kind.name()
                ));
            }
            RenameSequence => {
                return Err("renameSequence cannot run on MySQL and MariaDB: Liquibase 4.28 writes `ALTER SEQUENCE … RENAME TO`, which MariaDB rejects; write `RENAME TABLE old TO new` with `sql`".into());
            }
            AddAutoIncrement => {
                if self.attributes.contains_key("incrementBy") {
                    return Err("addAutoIncrement's `incrementBy` is not allowed on MySQL and MariaDB (Liquibase refuses it too: the server's auto_increment_increment sets it); leave it out".into());
                }
                let mut statements = vec![format!(
                    "ALTER TABLE {table} MODIFY {column} {} AUTO_INCREMENT",
                    column_type()?
                )];
                if let Some(start) = self.attributes.get("startWith") {
                    statements.push(format!("ALTER TABLE {table} AUTO_INCREMENT={start}"));
                }
                statements
            }
            // The store reads the table's keys as the change runs (see `drop_foreign_keys`):
            // there is nothing to write before that.
            DropAllForeignKeyConstraints => vec![],
            RenameView => vec![format!(
                "RENAME TABLE {} TO {}",
                self.at("schemaName", "oldViewName"),
                self.at("schemaName", "newViewName")
            )],
            DropPrimaryKey => vec![format!("ALTER TABLE {table} DROP PRIMARY KEY")],
            // MySQL names every primary key PRIMARY; Liquibase leaves the name out.
            AddPrimaryKey => vec![format!(
                "ALTER TABLE {table} ADD PRIMARY KEY ({})",
                self.get("columnNames")
            )],
            DropUniqueConstraint => vec![format!(
                "ALTER TABLE {table} DROP KEY {}",
                self.get("constraintName")
            )],
            DropForeignKeyConstraint => vec![format!(
                "ALTER TABLE {} DROP FOREIGN KEY {}",
                self.at("baseTableSchemaName", "baseTableName"),
                self.get("constraintName")
            )],
            AddDefaultValue => vec![format!(
                "ALTER TABLE {table} ALTER {column} SET DEFAULT {}",
                self.default_value(dialect)?
            )],
            DropDefaultValue => vec![format!("ALTER TABLE {table} ALTER {column} DROP DEFAULT")],
            ModifyDataType => vec![format!(
                "ALTER TABLE {table} MODIFY {column} {}",
                sql_type(self.get("newDataType"), dialect)
            )],
            CreateSequence => {
                let mut sql = format!(
                    "CREATE SEQUENCE {}{}",
                    self.at("schemaName", "sequenceName"),
                    self.sequence_options()
                );
                if self.attributes.get("cycle").map(String::as_str) == Some("true") {
                    sql.push_str(" CYCLE");
                }
                vec![sql]
            }
            DropSequence => vec![format!(
                "DROP SEQUENCE {}",
                self.at("schemaName", "sequenceName")
            )],
            SetTableRemarks => vec![format!(
                "ALTER TABLE {table} COMMENT = {}",
                dialect.quoted(self.get("remarks"))
            )],
            SetColumnRemarks => vec![format!(
                "ALTER TABLE {table} MODIFY COLUMN {column} {} COMMENT {}",
                column_type()?,
                dialect.quoted(self.get("remarks"))
            )],
            _ => return Ok(None),
        }))
    }

    pub fn statements(&self, dialect: Dialect) -> Result<Vec<String>, String> {
        if self.does_nothing_on(dialect).is_some() {
            return Ok(vec![]);
        }
        if dialect == Dialect::Sqlite && !self.kind.runs_on_sqlite() {
            if self.sqlite_rebuild().is_some() {
                return Err(crate::sqlite_rebuild::known_only_when_it_runs(
                    self.kind.name(),
                ));
            }
            let liquibase = match self.kind {
                DropPrimaryKey | RenameView | CreateProcedure | DropAllForeignKeyConstraints => {
                    "Liquibase fails on it there or does nothing"
                }
                _ => "Liquibase refuses it there too",
            };
            return Err(format!(
                "{} cannot run on SQLite, which cannot change a table's constraints, defaults, types or remarks in place ({liquibase}); write the new table with `sql`",
                self.kind.name()
            ));
        }
        if dialect.is_mysql()
            && let Some(statements) = self.mysql_statements(dialect)?
        {
            return Ok(statements);
        }
        let table = self.table();
        let column = self.get("columnName");
        Ok(match self.kind {
            AddAutoIncrement => {
                // As Liquibase 4.28 does it on PostgreSQL: a sequence the column owns.
                let sequence = self.at("schemaName", "tableName") + "_" + column + "_seq";
                let mut create = format!("CREATE SEQUENCE IF NOT EXISTS {sequence}");
                for (attribute, clause) in
                    [("startWith", "START WITH"), ("incrementBy", "INCREMENT BY")]
                {
                    if let Some(value) = self.attributes.get(attribute) {
                        create.push_str(&format!(" {clause} {value}"));
                    }
                }
                vec![
                    create,
                    format!("ALTER TABLE {table} ALTER COLUMN {column} SET NOT NULL"),
                    format!(
                        "ALTER TABLE {table} ALTER COLUMN {column} SET DEFAULT nextval({})",
                        dialect.quoted(&sequence)
                    ),
                    format!("ALTER SEQUENCE {sequence} OWNED BY {table}.{column}"),
                ]
            }
            MergeColumns => {
                let (first, second, merged) = (
                    self.get("column1Name"),
                    self.get("column2Name"),
                    self.get("finalColumnName"),
                );
                let join = dialect.quoted(self.get("joinString"));
                // As Liquibase writes them: MySQL's column says NULL, and its CONCAT_WS skips a
                // NULL, where PostgreSQL's `||` makes the whole NULL.
                let (nullable, value) = if dialect.is_mysql() {
                    (" NULL", format!("CONCAT_WS({join}, {first}, {second})"))
                } else {
                    ("", format!("{first} || {join} || {second}"))
                };
                // SQLite drops the two columns in place (3.35 and later), keeping the table's
                // constraints, indexes and the views that read it; Liquibase rebuilds the table.
                let merged_type = sql_type(self.get("finalColumnType"), dialect);
                vec![
                    format!("ALTER TABLE {table} ADD {merged} {merged_type}{nullable}"),
                    format!("UPDATE {table} SET {merged} = {value}"),
                    format!("ALTER TABLE {table} DROP COLUMN {first}"),
                    format!("ALTER TABLE {table} DROP COLUMN {second}"),
                ]
            }
            AddLookupTable => {
                let existing = self.at("existingTableSchemaName", "existingTableName");
                let lookup = self.at("newTableSchemaName", "newTableName");
                let (existing_column, new_column) =
                    (self.get("existingColumnName"), self.get("newColumnName"));
                let not_null = if dialect.is_mysql() {
                    let new_type = self
                        .attributes
                        .get("newColumnDataType")
                        .ok_or("addLookupTable on MySQL needs `newColumnDataType`: MySQL restates the whole column to make it NOT NULL, as in Liquibase")?;
                    let new_type = sql_type(new_type, dialect);
                    format!("ALTER TABLE {lookup} MODIFY {new_column} {new_type} NOT NULL")
                } else {
                    format!("ALTER TABLE {lookup} ALTER COLUMN {new_column} SET NOT NULL")
                };
                vec![
                    format!(
                        "CREATE TABLE {lookup} AS SELECT DISTINCT {existing_column} AS {new_column} FROM {existing} WHERE {existing_column} IS NOT NULL"
                    ),
                    not_null,
                    format!("ALTER TABLE {lookup} ADD PRIMARY KEY ({new_column})"),
                    format!(
                        "ALTER TABLE {existing} ADD CONSTRAINT {} FOREIGN KEY ({existing_column}) REFERENCES {lookup} ({new_column})",
                        self.get("constraintName")
                    ),
                ]
            }
            // Liquibase reads the table's foreign keys from the database; the server does it here.
            DropAllForeignKeyConstraints => {
                let base = self.at("baseTableSchemaName", "baseTableName");
                vec![format!(
                    "DO $$ DECLARE key record; BEGIN FOR key IN SELECT conname FROM pg_constraint WHERE contype = 'f' AND conrelid = {}::regclass LOOP EXECUTE 'ALTER TABLE {base} DROP CONSTRAINT ' || quote_ident(key.conname); END LOOP; END $$",
                    dialect.quoted(&base)
                )]
            }
            CreateProcedure => vec![self.get("procedureText").trim().to_string()],
            DropProcedure => vec![format!(
                "DROP PROCEDURE {}",
                self.at("schemaName", "procedureName")
            )],
            // Said or done by the engine, not by the database.
            Output | Stop => vec![],
            AddPrimaryKey => vec![match self.attributes.get("constraintName") {
                Some(name) => format!(
                    "ALTER TABLE {table} ADD CONSTRAINT {name} PRIMARY KEY ({})",
                    self.get("columnNames")
                ),
                None => format!(
                    "ALTER TABLE {table} ADD PRIMARY KEY ({})",
                    self.get("columnNames")
                ),
            }],
            DropPrimaryKey => vec![match self.attributes.get("constraintName") {
                Some(name) => format!("ALTER TABLE {table} DROP CONSTRAINT {name}"),
                // As Liquibase does it: the key's name, looked up by the server.
                None => {
                    let schema = self
                        .attributes
                        .get("schemaName")
                        .map_or("current_schema()".to_string(), |s| dialect.quoted(s));
                    format!(
                        "DO $$ DECLARE key_name varchar; BEGIN SELECT tc.constraint_name INTO STRICT key_name FROM information_schema.table_constraints tc WHERE tc.constraint_type = 'PRIMARY KEY' AND tc.table_name = {} AND tc.table_schema = {schema}; EXECUTE 'ALTER TABLE {table} DROP CONSTRAINT \"' || key_name || '\"'; END $$",
                        dialect.quoted(self.get("tableName"))
                    )
                }
            }],
            AddUniqueConstraint => vec![match self.attributes.get("constraintName") {
                Some(name) => format!(
                    "ALTER TABLE {table} ADD CONSTRAINT {name} UNIQUE ({})",
                    self.get("columnNames")
                ),
                None => format!(
                    "ALTER TABLE {table} ADD UNIQUE ({})",
                    self.get("columnNames")
                ),
            }],
            DropUniqueConstraint => vec![format!(
                "ALTER TABLE {table} DROP CONSTRAINT {}",
                self.get("constraintName")
            )],
            AddForeignKeyConstraint => vec![{
                let mut sql = format!(
                    "ALTER TABLE {} ADD CONSTRAINT {} FOREIGN KEY ({}) REFERENCES {} ({})",
                    self.at("baseTableSchemaName", "baseTableName"),
                    self.get("constraintName"),
                    self.get("baseColumnNames"),
                    self.at("referencedTableSchemaName", "referencedTableName"),
                    self.get("referencedColumnNames")
                );
                for (attribute, clause) in [("onDelete", "ON DELETE"), ("onUpdate", "ON UPDATE")] {
                    if let Some(action) = self.attributes.get(attribute) {
                        sql.push_str(&format!(" {clause} {action}"));
                    }
                }
                sql
            }],
            DropForeignKeyConstraint => vec![format!(
                "ALTER TABLE {} DROP CONSTRAINT {}",
                self.at("baseTableSchemaName", "baseTableName"),
                self.get("constraintName")
            )],
            AddDefaultValue => vec![format!(
                "ALTER TABLE {table} ALTER COLUMN {column} SET DEFAULT {}",
                self.default_value(dialect)?
            )],
            DropDefaultValue => vec![format!(
                "ALTER TABLE {table} ALTER COLUMN {column} DROP DEFAULT"
            )],
            ModifyDataType => vec![{
                let new_type = sql_type(self.get("newDataType"), dialect);
                format!(
                    "ALTER TABLE {table} ALTER COLUMN {column} TYPE {new_type} USING ({column}::{new_type})"
                )
            }],
            CreateSequence | AlterSequence => vec![{
                // Liquibase creates a sequence only if it does not exist yet.
                let verb = if self.kind == CreateSequence {
                    "CREATE SEQUENCE IF NOT EXISTS"
                } else {
                    "ALTER SEQUENCE"
                };
                let mut sql = format!(
                    "{verb} {}{}",
                    self.at("schemaName", "sequenceName"),
                    self.sequence_options()
                );
                match self.attributes.get("cycle").map(String::as_str) {
                    Some("true") => sql.push_str(" CYCLE"),
                    Some("false") => sql.push_str(" NO CYCLE"),
                    _ => {}
                }
                sql
            }],
            RenameSequence => vec![format!(
                "ALTER SEQUENCE {} RENAME TO {}",
                self.at("schemaName", "oldSequenceName"),
                self.get("newSequenceName")
            )],
            // As Liquibase drops it: with what depends on it.
            DropSequence => vec![format!(
                "DROP SEQUENCE {} CASCADE",
                self.at("schemaName", "sequenceName")
            )],
            RenameView => vec![format!(
                "ALTER VIEW {} RENAME TO {}",
                self.at("schemaName", "oldViewName"),
                self.get("newViewName")
            )],
            SetTableRemarks => vec![format!(
                "COMMENT ON TABLE {table} IS {}",
                dialect.quoted(self.get("remarks"))
            )],
            SetColumnRemarks => vec![format!(
                "COMMENT ON COLUMN {table}.{column} IS {}",
                dialect.quoted(self.get("remarks"))
            )],
            Insert => vec![{
                let names: Vec<&str> = self
                    .columns
                    .iter()
                    .map(|c| c.get("name").map_or("", String::as_str))
                    .collect();
                let values: Vec<String> = self
                    .columns
                    .iter()
                    .map(|c| Self::value(dialect, c))
                    .collect();
                format!(
                    "INSERT INTO {table} ({}) VALUES ({})",
                    names.join(", "),
                    values.join(", ")
                )
            }],
            Update => vec![{
                let sets: Vec<String> = self
                    .columns
                    .iter()
                    .map(|c| {
                        format!(
                            "{} = {}",
                            c.get("name").map_or("", String::as_str),
                            Self::value(dialect, c)
                        )
                    })
                    .collect();
                let mut sql = format!("UPDATE {table} SET {}", sets.join(", "));
                if let Some(condition) = self.attributes.get("where") {
                    sql.push_str(&format!(" WHERE {condition}"));
                }
                sql
            }],
            Delete => vec![{
                let mut sql = format!("DELETE FROM {table}");
                if let Some(condition) = self.attributes.get("where") {
                    sql.push_str(&format!(" WHERE {condition}"));
                }
                sql
            }],
        })
    }

    /// What an `output` change says.
    pub fn output(&self) -> Option<&str> {
        (self.kind == Output).then(|| self.get("message"))
    }

    /// A change that does nothing on `dialect`, as in Liquibase, with what to say when its
    /// changeset runs: the sequence changes on SQLite, which has no sequences.
    pub fn does_nothing_on(&self, dialect: Dialect) -> Option<String> {
        (dialect == Dialect::Sqlite
            && matches!(self.kind, CreateSequence | AlterSequence | DropSequence))
        .then(|| {
            format!(
                "{} did nothing: SQLite has no sequences, and Liquibase records the change without doing anything too",
                self.kind.name()
            )
        })
    }

    /// Why a `stop` change stops the update.
    pub fn stop(&self) -> Option<&str> {
        (self.kind == Stop).then(|| self.get("message"))
    }

    /// Liquibase's automatic inverse, if it has one.
    pub fn inverse(&self) -> Option<AttributeChange> {
        let keep = |names: &[(&str, &str)]| -> BTreeMap<String, String> {
            names
                .iter()
                .filter_map(|(from, to)| {
                    self.attributes
                        .get(*from)
                        .map(|v| (to.to_string(), v.clone()))
                })
                .collect()
        };
        let (kind, attributes) = match self.kind {
            AddPrimaryKey => (
                DropPrimaryKey,
                keep(&[
                    ("schemaName", "schemaName"),
                    ("tableName", "tableName"),
                    ("constraintName", "constraintName"),
                ]),
            ),
            AddUniqueConstraint => (
                DropUniqueConstraint,
                keep(&[
                    ("schemaName", "schemaName"),
                    ("tableName", "tableName"),
                    ("constraintName", "constraintName"),
                ]),
            ),
            AddForeignKeyConstraint => (
                DropForeignKeyConstraint,
                keep(&[
                    ("baseTableSchemaName", "baseTableSchemaName"),
                    ("baseTableName", "baseTableName"),
                    ("constraintName", "constraintName"),
                ]),
            ),
            AddDefaultValue => (
                DropDefaultValue,
                keep(&[
                    ("schemaName", "schemaName"),
                    ("tableName", "tableName"),
                    ("columnName", "columnName"),
                    ("columnDataType", "columnDataType"),
                ]),
            ),
            CreateSequence => (
                DropSequence,
                keep(&[
                    ("schemaName", "schemaName"),
                    ("sequenceName", "sequenceName"),
                ]),
            ),
            RenameSequence => (
                RenameSequence,
                keep(&[
                    ("schemaName", "schemaName"),
                    ("newSequenceName", "oldSequenceName"),
                    ("oldSequenceName", "newSequenceName"),
                ]),
            ),
            RenameView => (
                RenameView,
                keep(&[
                    ("schemaName", "schemaName"),
                    ("newViewName", "oldViewName"),
                    ("oldViewName", "newViewName"),
                ]),
            ),
            _ => return None,
        };
        Some(AttributeChange {
            kind,
            attributes,
            columns: vec![],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checksum::{self, ChecksumVersion::V9};

    fn change(kind: Kind, attributes: &[(&str, &str)]) -> AttributeChange {
        AttributeChange {
            kind,
            attributes: attributes
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            columns: vec![],
        }
    }

    #[test]
    fn a_foreign_key_is_written_as_liquibase_writes_it_and_undone_by_its_name() {
        let fk = change(
            AddForeignKeyConstraint,
            &[
                ("baseTableName", "emp"),
                ("baseColumnNames", "dept_id"),
                ("constraintName", "fk_emp_dept"),
                ("referencedTableName", "dept"),
                ("referencedColumnNames", "id"),
                ("onDelete", "CASCADE"),
            ],
        );
        assert_eq!(
            fk.statements(Dialect::Postgresql).unwrap(),
            [
                "ALTER TABLE emp ADD CONSTRAINT fk_emp_dept FOREIGN KEY (dept_id) REFERENCES dept (id) ON DELETE CASCADE"
            ]
        );
        let inverse = fk.inverse().unwrap();
        assert_eq!(
            inverse.statements(Dialect::Postgresql).unwrap(),
            ["ALTER TABLE emp DROP CONSTRAINT fk_emp_dept"]
        );
        // The checksum hashes every attribute as given.
        assert_eq!(
            checksum::structured(V9, "addForeignKeyConstraint", &fk.serialized()),
            checksum::structured(
                V9,
                "addForeignKeyConstraint",
                &fk.serialized().into_iter().rev().collect::<Vec<_>>()
            )
        );
    }

    #[test]
    fn only_data_changes_run_on_sqlite() {
        let insert = AttributeChange {
            kind: Insert,
            attributes: [("tableName".to_string(), "t".to_string())].into(),
            columns: vec![
                [
                    ("name".to_string(), "a".to_string()),
                    ("value".to_string(), "it's".to_string()),
                ]
                .into(),
                [
                    ("name".to_string(), "b".to_string()),
                    ("valueNumeric".to_string(), "2".to_string()),
                ]
                .into(),
            ],
        };
        assert_eq!(
            insert.statements(Dialect::Sqlite).unwrap(),
            ["INSERT INTO t (a, b) VALUES ('it''s', 2)"]
        );
        let error = change(AddPrimaryKey, &[("tableName", "t"), ("columnNames", "a")])
            .statements(Dialect::Sqlite)
            .unwrap_err();
        assert!(
            error.starts_with("addPrimaryKey cannot run on SQLite"),
            "{error}"
        );
    }

    #[test]
    fn on_sqlite_defaults_and_autoincrement_rebuild_the_table_with_what_sqlite_can_honour() {
        let column = [("tableName", "t"), ("columnName", "id")];
        let rebuild = |kind, extra: &[(&str, &str)]| {
            change(kind, &[&column[..], extra].concat())
                .sqlite_rebuild()
                .unwrap()
        };
        let id = || "id".to_string();
        assert_eq!(
            rebuild(AddDefaultValue, &[("defaultValueBoolean", "true")]).map(|r| r.edit),
            Ok(ColumnEdit::SetDefault {
                column: id(),
                sql: "1".into()
            })
        );
        assert_eq!(
            rebuild(DropDefaultValue, &[]).map(|r| r.edit),
            Ok(ColumnEdit::DropDefault { column: id() })
        );
        assert_eq!(
            rebuild(
                AddAutoIncrement,
                &[("startWith", "10"), ("incrementBy", "1")]
            )
            .map(|r| r.edit),
            Ok(ColumnEdit::AutoIncrement {
                column: id(),
                start_with: Some(10)
            })
        );
        for (attribute, value, refusal) in [
            (
                "incrementBy",
                "2",
                "SQLite, whose AUTOINCREMENT counts up by one",
            ),
            (
                "startWith",
                "ten",
                "`startWith` must be a whole number, not `ten`",
            ),
            ("schemaName", "other", "an SQLite database has one schema"),
        ] {
            let error = rebuild(AddAutoIncrement, &[(attribute, value)]).unwrap_err();
            assert!(error.contains(refusal), "{error}");
        }
        assert!(change(AddPrimaryKey, &column).sqlite_rebuild().is_none());
    }
}
