//! YAML and JSON changelogs (`databaseChangeLog:` → `changeSet` / `include` / `includeAll` /
//! `property`), read with the positions of every node so that errors name the line.

use crate::attribute_changes::{AttributeChange, Kind};
use crate::changes::{Column, Constraints, Structured};
use crate::checksum::SqlSettings;
use crate::model::*;
use crate::mongo_changes::MongoChange;
use crate::properties::{self, Definition, FileProperties};
use lockstep_yaml::{self as yaml, Node, Value};

/// One item of a changelog file, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Entry {
    ChangeSet(Box<ChangeSet>),
    Include {
        file: String,
        relative: bool,
        /// `errorIfMissing: false`: a file that is not there is skipped.
        error_if_missing: bool,
        scope: IncludeScope,
        line: usize,
    },
    IncludeAll {
        path: String,
        relative: bool,
        /// `errorIfMissing: false`: a directory that is not there (or empty) is skipped.
        error_if_missing: bool,
        scope: IncludeScope,
        line: usize,
    },
    /// The file's own `preConditions`, which gate the whole update.
    Preconditions(Preconditions),
}

/// The `context` and `labels` of an include or includeAll, which its changesets inherit.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct IncludeScope {
    pub context: Option<String>,
    pub labels: Option<String>,
}

struct Reader<'a> {
    file: &'a str,
    properties: &'a mut FileProperties,
    errors: Vec<ChangelogError>,
    /// Change types not supported in the changeset being read (see [`ChangeSet::unsupported`]).
    unsupported: Vec<String>,
}

/// Parses one YAML or JSON changelog file. `file` is its FILENAME; the file's own `property`
/// definitions are added to `properties`.
pub fn parse(
    file: &str,
    source: &str,
    properties: &mut FileProperties,
) -> Result<Vec<Entry>, Vec<ChangelogError>> {
    let roots = yaml::parse(source).map_err(|e| {
        vec![ChangelogError {
            file: file.to_string(),
            line: e.pos.line,
            message: format!("this is not valid YAML or JSON: {}", e.message),
            help: Some("check the indentation and quoting on this line".into()),
        }]
    })?;
    let root = roots.into_iter().next().unwrap_or(Node {
        value: Value::Null,
        pos: yaml::Pos { line: 1, col: 1 },
    });
    entries(file, &root, properties)
}

/// Reads a changelog already in the YAML shape (`databaseChangeLog:` → items); XML changelogs
/// are converted to this shape first.
pub fn entries(
    file: &str,
    root: &Node,
    properties: &mut FileProperties,
) -> Result<Vec<Entry>, Vec<ChangelogError>> {
    let Some(items) = root.get("databaseChangeLog").and_then(Node::as_seq) else {
        return Err(vec![ChangelogError {
            file: file.to_string(),
            line: 1,
            message: "there is no `databaseChangeLog` list".into(),
            help: Some(
                "a changelog starts with `databaseChangeLog:` followed by `- changeSet:` items"
                    .into(),
            ),
        }]);
    };
    let mut reader = Reader {
        file,
        properties,
        errors: vec![],
        unsupported: vec![],
    };
    // Liquibase reads a YAML changelog's properties before anything else in it.
    for item in items {
        if let Some(property) = item.get("property") {
            reader.property(property);
        }
    }
    let mut logical_path = None;
    let mut entries = vec![];
    for item in items {
        let Some([(key, body)]) = item.as_map() else {
            reader.error(
                item,
                "each item of `databaseChangeLog` has exactly one key",
                "write `- changeSet:`, `- include:` or `- includeAll:`",
            );
            continue;
        };
        match key.as_str().unwrap_or_default() {
            "changeSet" => {
                if let Some(changeset) = reader.changeset(body, logical_path.as_deref()) {
                    entries.push(Entry::ChangeSet(Box::new(changeset)));
                }
            }
            "include" => match reader.string(body, "file") {
                Some(path) => entries.push(Entry::Include {
                    file: path,
                    relative: reader.flag(body, "relativeToChangelogFile", false),
                    error_if_missing: reader.flag(body, "errorIfMissing", true),
                    scope: reader.include_scope(body),
                    line: body.pos.line,
                }),
                None => reader.error(
                    body,
                    "an include needs `file`",
                    "write `- include: { file: db/more.yaml }`",
                ),
            },
            "includeAll" => match reader.string(body, "path") {
                Some(path) => entries.push(Entry::IncludeAll {
                    path,
                    relative: reader.flag(body, "relativeToChangelogFile", false),
                    error_if_missing: reader.flag(body, "errorIfMissing", true),
                    scope: reader.include_scope(body),
                    line: body.pos.line,
                }),
                None => reader.error(
                    body,
                    "an includeAll needs `path`",
                    "write `- includeAll: { path: db/changes/ }`",
                ),
            },
            "logicalFilePath" => logical_path = text(Some(body)),
            "preConditions" => {
                if let Some(preconditions) = reader.preconditions(body) {
                    entries.push(Entry::Preconditions(preconditions));
                }
            }
            "property" | "objectQuotingStrategy" => {}
            other => reader.error(
                key,
                &format!("`{other}` cannot appear in `databaseChangeLog`"),
                "use changeSet, include, includeAll or property",
            ),
        }
    }
    if reader.errors.is_empty() {
        Ok(entries)
    } else {
        Err(reader.errors)
    }
}

fn text(node: Option<&Node>) -> Option<String> {
    match &node?.value {
        Value::Scalar { text, .. } => Some(text.clone()),
        _ => None,
    }
}

impl Reader<'_> {
    fn error(&mut self, node: &Node, message: &str, help: &str) {
        self.errors.push(ChangelogError {
            file: self.file.to_string(),
            line: node.pos.line,
            message: message.to_string(),
            help: Some(help.to_string()),
        });
    }

    /// A string field, with `${}` expanded.
    fn string(&self, node: &Node, key: &str) -> Option<String> {
        text(node.get(key)).map(|t| self.properties.expand(&t))
    }

    /// The file a change (`sqlFile`, `loadData`) names, relative to the schema's root; an
    /// encoding other than UTF-8 refuses the changeset.
    fn named_file(&mut self, node: &Node, change: &str, path: &str) -> String {
        if let Some(other) = self
            .string(node, "encoding")
            .filter(|e| !e.eq_ignore_ascii_case("utf-8") && !e.eq_ignore_ascii_case("utf8"))
        {
            self.unsupported.push(format!("{}:{}: {change} `encoding: {other}` is not supported by Lockstep\n  help: save the file as UTF-8", self.file, node.pos.line));
        }
        let relative = self.flag(node, "relativeToChangelogFile", false);
        crate::load::resolve(self.file, path, relative)
    }

    fn include_scope(&self, node: &Node) -> IncludeScope {
        IncludeScope {
            context: self
                .string(node, "context")
                .or_else(|| self.string(node, "contextFilter")),
            labels: self.string(node, "labels"),
        }
    }

    fn property(&mut self, node: &Node) {
        let (Some(name), Some(value)) = (text(node.get("name")), text(node.get("value"))) else {
            let help = if node.get("file").is_some() {
                "Lockstep does not read properties files yet; define each property with `name` and `value`"
            } else {
                "write `- property: { name: schema, value: app }`"
            };
            return self.error(node, "a property needs `name` and `value`", help);
        };
        let definition = Definition {
            name,
            value,
            context: self
                .string(node, "context")
                .or_else(|| self.string(node, "contextFilter")),
            labels: self.string(node, "labels"),
            dbms: self.string(node, "dbms"),
            global: self.flag(node, "global", true),
        };
        self.properties.define(definition);
    }

    fn flag(&mut self, node: &Node, key: &str, default: bool) -> bool {
        match self.string(node, key).as_deref() {
            None => default,
            Some("true") => true,
            Some("false") => false,
            Some(other) => {
                let at = node.get(key).unwrap_or(node).clone();
                self.error(
                    &at,
                    &format!("`{key}: {other}` must be true or false"),
                    &format!("write `{key}: true` or `{key}: false`"),
                );
                default
            }
        }
    }

    fn optional_flag(&mut self, node: &Node, key: &str) -> Option<bool> {
        node.get(key).is_some().then(|| self.flag(node, key, false))
    }

    fn changeset(&mut self, body: &Node, logical_path: Option<&str>) -> Option<ChangeSet> {
        let (Some(id), Some(author)) = (self.string(body, "id"), self.string(body, "author"))
        else {
            self.error(
                body,
                "a changeSet needs `id` and `author`",
                "add `id:` and `author:`",
            );
            return None;
        };
        let file = self
            .string(body, "logicalFilePath")
            .or(logical_path.map(String::from))
            .unwrap_or_else(|| self.file.to_string());
        let mut changeset = ChangeSet::new(id, author, file, body.pos.line);
        self.unsupported.clear();
        self.properties.take_undefined();
        for (key, value) in body.as_map().unwrap_or_default() {
            let key = key.as_str().unwrap_or_default();
            let value = text(Some(value)).unwrap_or_default();
            if let Some(refusal) = changeset_attribute_refusal(key, &value) {
                self.unsupported
                    .push(format!("{}:{}: {refusal}", self.file, body.pos.line));
            }
        }
        changeset.run_always =
            self.flag(body, "runAlways", false) || self.flag(body, "alwaysRun", false);
        changeset.run_on_change = self.flag(body, "runOnChange", false);
        changeset.fail_on_error = self.flag(body, "failOnError", true);
        changeset.run_in_transaction = self.flag(body, "runInTransaction", true);
        changeset.ignore = self.flag(body, "ignore", false);
        changeset.context = self
            .string(body, "context")
            .or_else(|| self.string(body, "contextFilter"));
        changeset.labels = self.string(body, "labels");
        changeset.dbms = self.string(body, "dbms");
        changeset.comment = self.string(body, "comment");
        self.valid_checksums(body, &mut changeset);
        for item in body
            .get("changes")
            .and_then(Node::as_seq)
            .unwrap_or_default()
        {
            let Some([(key, change)]) = item.as_map() else {
                self.error(
                    item,
                    "each item of `changes` has exactly one key, the change type",
                    "write e.g. `- createTable: {...}`",
                );
                continue;
            };
            // Liquibase accepts these inside `changes:` too.
            match key.as_str().unwrap_or_default() {
                "rollback" => changeset.rollback = self.rollback(change),
                "validCheckSum" => self.valid_checksums(item, &mut changeset),
                "preConditions" => changeset.preconditions = self.preconditions(change),
                "modifySql" => self.unsupported.push(format!(
                    "{}:{}: `modifySql` is not supported by Lockstep yet\n  help: Lockstep would run the SQL unmodified, so it refuses instead; write the SQL you want with a `sql` change",
                    self.file, key.pos.line
                )),
                name => {
                    if let Some(change) = self.change(name, change) {
                        changeset.changes.push(change);
                    }
                }
            }
        }
        if let Some(rollback) = body.get("rollback") {
            changeset.rollback = self.rollback(rollback);
        }
        if let Some(preconditions) = body.get("preConditions") {
            changeset.preconditions = self.preconditions(preconditions);
        }
        let undefined = self.properties.take_undefined();
        if !undefined.is_empty() {
            self.unsupported.push(properties::undefined_message(
                self.file,
                changeset.line,
                &undefined,
            ));
        }
        changeset.unsupported = std::mem::take(&mut self.unsupported);
        Some(changeset)
    }

    /// `preConditions`: a list of single-key items (YAML, JSON) or a map (XML), holding
    /// `onFail` / `onError` and the checks, which must all hold.
    fn preconditions(&mut self, node: &Node) -> Option<Preconditions> {
        let mut preconditions = Preconditions {
            on_fail: OnPrecondition::Halt,
            on_error: OnPrecondition::Halt,
            checks: vec![],
        };
        for (key, value) in entries_of(node) {
            let name = key.as_str().unwrap_or_default();
            match name {
                "onFail" | "onError" => {
                    match text(Some(value)).as_deref().and_then(OnPrecondition::parse) {
                        Some(action) if name == "onFail" => preconditions.on_fail = action,
                        Some(action) => preconditions.on_error = action,
                        None => self.error(
                            value,
                            &format!("`{name}` must be HALT, CONTINUE, MARK_RAN or WARN"),
                            "write e.g. `onFail: MARK_RAN`",
                        ),
                    }
                }
                "onFailMessage" | "onErrorMessage" | "onSqlOutput" => {}
                _ => preconditions.checks.extend(self.precondition(name, value)),
            }
        }
        Some(preconditions)
    }

    fn precondition(&mut self, name: &str, node: &Node) -> Option<Precondition> {
        let nested = |reader: &mut Self| {
            entries_of(node)
                .into_iter()
                .filter_map(|(k, v)| reader.precondition(k.as_str().unwrap_or_default(), v))
                .collect::<Vec<_>>()
        };
        Some(match name {
            "and" => Precondition::And(nested(self)),
            "or" => Precondition::Or(nested(self)),
            "not" => Precondition::Not(nested(self)),
            "tableExists" => Precondition::TableExists {
                table: self.required(node, name, "tableName")?,
                schema: self.string(node, "schemaName"),
            },
            "viewExists" => Precondition::ViewExists {
                view: self.required(node, name, "viewName")?,
                schema: self.string(node, "schemaName"),
            },
            "columnExists" => Precondition::ColumnExists {
                table: self.required(node, name, "tableName")?,
                column: self.required(node, name, "columnName")?,
            },
            "indexExists" => Precondition::IndexExists {
                index: self.required(node, name, "indexName")?,
            },
            "sqlCheck" => Precondition::SqlCheck {
                expected: self.required(node, name, "expectedResult")?,
                sql: self.required(node, name, "sql")?,
            },
            "rowCount" => {
                let expected = self.required(node, name, "expectedRows")?;
                let Ok(expected) = expected.parse() else {
                    self.error(
                        node,
                        &format!("rowCount's expectedRows `{expected}` is not a whole number"),
                        "write e.g. `expectedRows: 0`",
                    );
                    return None;
                };
                Precondition::RowCount {
                    table: self.required(node, name, "tableName")?,
                    expected,
                }
            }
            "tableIsEmpty" => Precondition::TableIsEmpty {
                table: self.required(node, name, "tableName")?,
            },
            "changeSetExecuted" => Precondition::ChangeSetExecuted {
                id: self.required(node, name, "id")?,
                author: self.required(node, name, "author")?,
                file: self.required(node, name, "changeLogFile")?,
            },
            "dbms" => Precondition::Dbms {
                dbms: self.required(node, name, "type")?,
            },
            "collectionExists" => Precondition::CollectionExists {
                collection: self.required(node, name, "collectionName")?,
            },
            "documentExists" => Precondition::DocumentExists {
                collection: self.required(node, name, "collectionName")?,
                filter: self.json(node, "filter"),
            },
            "expectedDocumentCount" => {
                let expected = self.required(node, name, "expectedCount")?;
                let Ok(expected) = expected.parse() else {
                    self.error(node, &format!("expectedDocumentCount's expectedCount `{expected}` is not a whole number"), "write e.g. `expectedCount: 0`");
                    return None;
                };
                Precondition::ExpectedDocumentCount {
                    collection: self.required(node, name, "collectionName")?,
                    filter: self.json(node, "filter"),
                    expected,
                }
            }
            other => {
                self.error(node, &format!("precondition `{other}` is not supported by Lockstep"), "supported: tableExists, viewExists, columnExists, indexExists, sqlCheck, rowCount, tableIsEmpty, changeSetExecuted, dbms, and, or, not; for MongoDB: collectionExists, documentExists, expectedDocumentCount");
                return None;
            }
        })
    }

    fn valid_checksums(&mut self, node: &Node, changeset: &mut ChangeSet) {
        match node.get("validCheckSum") {
            Some(Node {
                value: Value::Seq(items),
                ..
            }) => changeset
                .valid_checksums
                .extend(items.iter().filter_map(|i| text(Some(i)))),
            Some(single) => changeset.valid_checksums.extend(text(Some(single))),
            None => {}
        }
    }

    fn rollback(&mut self, node: &Node) -> Rollback {
        match &node.value {
            Value::Null => Rollback::Empty,
            Value::Scalar { text, .. } => {
                let sql = self.properties.expand(text);
                if sql.trim().is_empty() || sql.trim().eq_ignore_ascii_case("empty") {
                    Rollback::Empty
                } else {
                    Rollback::Sql(SqlChange {
                        sql,
                        settings: yaml_sql_settings(),
                    })
                }
            }
            Value::Seq(items) if items.is_empty() => Rollback::Empty,
            Value::Seq(items) => Rollback::Changes(
                items
                    .iter()
                    .filter_map(|item| match item.as_map() {
                        Some([(key, body)]) => self.change(key.as_str().unwrap_or_default(), body),
                        _ => {
                            self.error(
                                item,
                                "each rollback item has exactly one key, the change type",
                                "write e.g. `- dropTable: {tableName: t}`",
                            );
                            None
                        }
                    })
                    .collect(),
            ),
            Value::Map(_) if node.get("changeSetId").is_some() => match (
                self.string(node, "changeSetId"),
                self.string(node, "changeSetAuthor"),
            ) {
                (Some(id), Some(author)) => Rollback::Reference {
                    id,
                    author,
                    path: self.string(node, "changeSetPath"),
                },
                _ => {
                    self.error(
                        node,
                        "a rollback reference needs `changeSetId` and `changeSetAuthor`",
                        "add `changeSetAuthor:`",
                    );
                    Rollback::Automatic
                }
            },
            Value::Map(entries) => Rollback::Changes(
                entries
                    .iter()
                    .filter_map(|(k, v)| self.change(k.as_str().unwrap_or_default(), v))
                    .collect(),
            ),
        }
    }

    fn required(&mut self, node: &Node, change: &str, key: &str) -> Option<String> {
        let value = self.string(node, key);
        if value.is_none() {
            self.error(
                node,
                &format!("{change} needs `{key}`"),
                &format!("add `{key}:` to the {change}"),
            );
        }
        value
    }

    /// A field holding MongoDB JSON: a string (`document: |`), or `{"$rawJson": …}` whose value
    /// becomes pretty-printed JSON text, as liquibase-mongodb's JSON parser does.
    fn json(&mut self, node: &Node, key: &str) -> Option<String> {
        let field = node.get(key)?;
        if let Some(raw) = field.get("$rawJson") {
            return Some(serde_json::to_string_pretty(&raw.to_json()).unwrap_or_default());
        }
        let value = self.string(node, key);
        if value.is_none() {
            self.error(
                field,
                &format!("`{key}` must be a string of JSON or {{\"$rawJson\": …}}"),
                &format!("write `{key}: |` followed by the JSON on the next lines"),
            );
        }
        value
    }

    fn required_json(&mut self, node: &Node, change: &str, key: &str) -> Option<String> {
        if node.get(key).is_none() {
            self.error(
                node,
                &format!("{change} needs `{key}`"),
                &format!("add `{key}:` to the {change}"),
            );
            return None;
        }
        self.json(node, key)
    }

    /// The eight change types of liquibase-mongodb; `None` when `name` is not one of them.
    fn mongo_change(&mut self, name: &str, node: &Node) -> Option<Option<MongoChange>> {
        let is_mongo_index = node.get("collectionName").is_some();
        let collection = |reader: &mut Self| reader.required(node, name, "collectionName");
        Some(match name {
            "createCollection" => (|| {
                Some(MongoChange::CreateCollection {
                    collection: collection(self)?,
                    options: self.json(node, "options"),
                })
            })(),
            "dropCollection" => {
                collection(self).map(|collection| MongoChange::DropCollection { collection })
            }
            "createIndex" if is_mongo_index => (|| {
                Some(MongoChange::CreateIndex {
                    collection: collection(self)?,
                    keys: self.required_json(node, name, "keys")?,
                    options: self.json(node, "options"),
                })
            })(),
            "dropIndex" if is_mongo_index => (|| {
                Some(MongoChange::DropIndex {
                    collection: collection(self)?,
                    keys: self.required_json(node, name, "keys")?,
                })
            })(),
            "insertOne" => (|| {
                Some(MongoChange::InsertOne {
                    collection: collection(self)?,
                    document: self.required_json(node, name, "document")?,
                    options: self.json(node, "options"),
                })
            })(),
            "insertMany" => (|| {
                Some(MongoChange::InsertMany {
                    collection: collection(self)?,
                    documents: self.required_json(node, name, "documents")?,
                    options: self.json(node, "options"),
                })
            })(),
            "runCommand" => self
                .required_json(node, name, "command")
                .map(|command| MongoChange::RunCommand { command }),
            "adminCommand" => self
                .required_json(node, name, "command")
                .map(|command| MongoChange::AdminCommand { command }),
            _ => return None,
        })
    }

    /// Remembers, for the engine to refuse if the changeset runs, every attribute of `node`
    /// (a `what`) that is not in `known`: Lockstep never ignores what it does not understand.
    fn refuse_unknown(&mut self, node: &Node, what: &str, known: &[&str]) {
        for (key, _) in node.as_map().unwrap_or_default() {
            let key = key.as_str().unwrap_or_default();
            if known.contains(&key) {
                continue;
            }
            let help = match key {
                // Liquibase 4.28 open source accepts it and creates no CHECK.
                "checkConstraint" => "Liquibase 4.28 (open source) creates no CHECK constraint for it, so neither tool would do what the changelog says; add the constraint with a `sql` change".to_string(),
                _ => format!(
                    "Lockstep refuses what it cannot do exactly as Liquibase does; supported here: {}",
                    known.join(", ")
                ),
            };
            self.unsupported.push(format!(
                "{}:{}: `{key}` on {what} is not supported by Lockstep\n  help: {help}",
                self.file, node.pos.line
            ));
        }
    }

    /// The `columns` of a change; each column may have the attributes in `known`.
    /// loadData's and loadUpdateData's `columns`; a type Lockstep cannot load refuses the
    /// changeset if it runs.
    fn load_columns(&mut self, node: &Node, change: &str) -> Vec<LoadColumn> {
        let items = node
            .get("columns")
            .and_then(Node::as_seq)
            .unwrap_or_default();
        let what = format!("a column of {change}");
        items
            .iter()
            .filter_map(|item| {
                let column = item.get("column").unwrap_or(item);
                self.refuse_unknown(column, &what, &["name", "header", "index", "type"]);
                let index = match self.string(column, "index") {
                    None => None,
                    Some(index) => match index.parse() {
                        Ok(index) => Some(index),
                        Err(_) => {
                            self.error(column, &format!("{what} has `index: {index}`, which is not a column number"), "write the file's column number, counting from 0");
                            return None;
                        }
                    },
                };
                let (name, header) = (self.string(column, "name"), self.string(column, "header"));
                if name.is_none() && header.is_none() && index.is_none() {
                    self.error(column, &format!("{what} names no column"), "give it `name:` (the table's column), and `header:` or `index:` when the file calls it otherwise");
                    return None;
                }
                let kind = match self.string(column, "type").map(|t| LoadType::parse(&t)) {
                    None => LoadType::AsTheTable,
                    Some(Ok(kind)) => kind,
                    Some(Err(problem)) => {
                        self.unsupported.push(format!("{}:{}: {change}: {problem}", self.file, column.pos.line));
                        LoadType::AsTheTable
                    }
                };
                Some(LoadColumn { name, header, index, kind })
            })
            .collect()
    }

    fn columns(&mut self, node: &Node, change: &str, known: &[&str]) -> Vec<Column> {
        let Some(items) = node.get("columns").and_then(Node::as_seq) else {
            self.error(
                node,
                &format!("{change} needs `columns`"),
                "add `columns:` with `- column: {name: …, type: …}` items",
            );
            return vec![];
        };
        let what = format!("a column of {change}");
        items
            .iter()
            .filter_map(|item| {
                let column = item.get("column").unwrap_or(item);
                self.refuse_unknown(column, &what, known);
                let name = self.required(column, "a column", "name")?;
                let constraints = column.get("constraints").map(|c| {
                    self.refuse_unknown(c, "a column's constraints", CONSTRAINT_ATTRIBUTES);
                    Constraints {
                        nullable: self.optional_flag(c, "nullable"),
                        primary_key: self.optional_flag(c, "primaryKey"),
                        primary_key_name: self.string(c, "primaryKeyName"),
                        unique: self.optional_flag(c, "unique"),
                        unique_constraint_name: self.string(c, "uniqueConstraintName"),
                        foreign_key_name: self.string(c, "foreignKeyName"),
                        references: self.string(c, "references"),
                        referenced_table_schema: self.string(c, "referencedTableSchemaName"),
                        referenced_table: self.string(c, "referencedTableName"),
                        referenced_columns: self.string(c, "referencedColumnNames"),
                        delete_cascade: self.optional_flag(c, "deleteCascade"),
                    }
                });
                Some(Column {
                    name,
                    column_type: self.string(column, "type"),
                    default: DEFAULT_KEYS
                        .iter()
                        .find_map(|key| self.string(column, key).map(|v| (key.to_string(), v))),
                    auto_increment: self.optional_flag(column, "autoIncrement"),
                    start_with: self.string(column, "startWith"),
                    increment_by: self.string(column, "incrementBy"),
                    constraints,
                })
            })
            .collect()
    }

    fn change(&mut self, name: &str, node: &Node) -> Option<Change> {
        if let Some(mongo) = self.mongo_change(name, node) {
            return mongo.map(Change::Mongo);
        }
        if let Value::Scalar { text, .. } = &node.value
            && name == "sql"
        {
            return Some(Change::Sql(SqlChange {
                sql: self.properties.expand(text),
                settings: yaml_sql_settings(),
            }));
        }
        if let Some(kind) = Kind::from_name(name) {
            return self
                .attribute_change(kind, node)
                .map(|change| Change::Structured(Structured::Attributes(change)));
        }
        if name == "sqlFile" {
            self.refuse_unknown(
                node,
                "`sqlFile`",
                &[
                    "path",
                    "relativeToChangelogFile",
                    "splitStatements",
                    "endDelimiter",
                    "stripComments",
                    "encoding",
                    "comment",
                ],
            );
            let path = self.required(node, name, "path")?;
            let resolved = self.named_file(node, name, &path);
            let settings = SqlSettings {
                end_delimiter: self.string(node, "endDelimiter"),
                split_statements: self.flag(node, "splitStatements", true),
                strip_comments: self.flag(node, "stripComments", false),
            };
            return Some(Change::SqlFile(SqlFile {
                path,
                resolved,
                text: String::new(),
                sql: SqlChange {
                    sql: String::new(),
                    settings,
                },
            }));
        }
        if name == "loadData" || name == "loadUpdateData" {
            let update = name == "loadUpdateData";
            let mut known = vec![
                "tableName",
                "file",
                "relativeToChangelogFile",
                "separator",
                "quotchar",
                "commentLineStartsWith",
                "encoding",
                "schemaName",
                "columns",
            ];
            if update {
                known.push("primaryKey");
            }
            self.refuse_unknown(node, &format!("`{name}`"), &known);
            let table = self.required(node, name, "tableName")?;
            let path = self.required(node, name, "file")?;
            let primary_key = if update {
                Some(self.required(node, name, "primaryKey")?)
            } else {
                None
            };
            let byte = |reader: &Self, key: &str, default: u8| {
                reader
                    .string(node, key)
                    .and_then(|s| s.bytes().next())
                    .unwrap_or(default)
            };
            let resolved = self.named_file(node, name, &path);
            return Some(Change::LoadData(Box::new(LoadData {
                schema: self.string(node, "schemaName"),
                table,
                path,
                resolved,
                separator: byte(self, "separator", b','),
                quote: byte(self, "quotchar", b'"'),
                comment_prefix: self
                    .string(node, "commentLineStartsWith")
                    .unwrap_or_else(|| "#".into()),
                primary_key,
                columns: self.load_columns(node, name),
                text: String::new(),
                header: vec![],
                rows: vec![],
            })));
        }
        if name == "executeCommand" {
            self.unsupported.push(format!("{}:{}: `executeCommand` runs a program on the machine that applies the changelog, and Lockstep never lets a changelog do that\n  help: a changelog is repository content and gets only database access; run programs in a Run step, whose access the operator grants", self.file, node.pos.line));
            return None;
        }
        let Some(known) = change_attributes(name) else {
            self.unsupported.push(format!("{}:{}: change type `{name}` is not supported by Lockstep yet\n  help: supported: sql, sqlFile, createTable, addColumn, createIndex, dropTable, dropColumn, dropIndex, renameTable, renameColumn, addNotNullConstraint, dropNotNullConstraint, createView, dropView, renameView, addPrimaryKey, dropPrimaryKey, addUniqueConstraint, dropUniqueConstraint, addForeignKeyConstraint, dropForeignKeyConstraint, dropAllForeignKeyConstraints, addDefaultValue, dropDefaultValue, modifyDataType, addAutoIncrement, mergeColumns, addLookupTable, createSequence, alterSequence, renameSequence, dropSequence, createProcedure, dropProcedure, setTableRemarks, setColumnRemarks, insert, update, delete, loadData, loadUpdateData, output, stop, tagDatabase, empty (Liquibase Pro's change types are not); for MongoDB: createCollection, dropCollection, createIndex, dropIndex, insertOne, insertMany, runCommand, adminCommand", self.file, node.pos.line));
            return None;
        };
        self.refuse_unknown(node, &format!("`{name}`"), known);
        let schema = self.string(node, "schemaName");
        let structured = match name {
            "sql" => {
                let sql = self.required(node, "sql", "sql")?;
                let settings = SqlSettings {
                    end_delimiter: self.string(node, "endDelimiter"),
                    split_statements: self.flag(node, "splitStatements", true),
                    strip_comments: self.flag(node, "stripComments", false),
                };
                return Some(Change::Sql(SqlChange { sql, settings }));
            }
            "createTable" => Structured::CreateTable {
                schema,
                table: self.required(node, name, "tableName")?,
                columns: self.columns(node, name, COLUMN_ATTRIBUTES),
            },
            "addColumn" => Structured::AddColumn {
                schema,
                table: self.required(node, name, "tableName")?,
                columns: self.columns(node, name, COLUMN_ATTRIBUTES),
            },
            "createIndex" => Structured::CreateIndex {
                schema,
                table: self.required(node, name, "tableName")?,
                index: self.string(node, "indexName"),
                columns: self
                    .columns(node, name, &["name"])
                    .into_iter()
                    .map(|c| c.name)
                    .collect(),
                unique: self.optional_flag(node, "unique"),
            },
            "dropTable" => Structured::DropTable {
                schema,
                table: self.required(node, name, "tableName")?,
                cascade: self.optional_flag(node, "cascadeConstraints"),
            },
            "dropColumn" => Structured::DropColumn {
                schema,
                table: self.required(node, name, "tableName")?,
                column: self.required(node, name, "columnName")?,
            },
            "dropIndex" => Structured::DropIndex {
                schema,
                table: self.string(node, "tableName"),
                index: self.required(node, name, "indexName")?,
            },
            "renameTable" => Structured::RenameTable {
                schema,
                old: self.required(node, name, "oldTableName")?,
                new: self.required(node, name, "newTableName")?,
            },
            "renameColumn" => Structured::RenameColumn {
                schema,
                table: self.required(node, name, "tableName")?,
                old: self.required(node, name, "oldColumnName")?,
                new: self.required(node, name, "newColumnName")?,
                column_type: self.string(node, "columnDataType"),
            },
            "addNotNullConstraint" => Structured::AddNotNullConstraint {
                schema,
                table: self.required(node, name, "tableName")?,
                column: self.required(node, name, "columnName")?,
                column_type: self.string(node, "columnDataType"),
                default_null_value: self.string(node, "defaultNullValue"),
            },
            "dropNotNullConstraint" => Structured::DropNotNullConstraint {
                schema,
                table: self.required(node, name, "tableName")?,
                column: self.required(node, name, "columnName")?,
                column_type: self.string(node, "columnDataType"),
            },
            "createView" => Structured::CreateView {
                schema,
                view: self.required(node, name, "viewName")?,
                query: self.required(node, name, "selectQuery")?,
                replace: self.optional_flag(node, "replaceIfExists"),
            },
            "dropView" => Structured::DropView {
                schema,
                view: self.required(node, name, "viewName")?,
            },
            "tagDatabase" => Structured::TagDatabase {
                tag: self.required(node, name, "tag")?,
            },
            _ => Structured::Empty,
        };
        Some(Change::Structured(structured))
    }
}

impl Reader<'_> {
    /// A change of `kind`, read from its attributes; a required one missing is an error.
    fn attribute_change(&mut self, kind: Kind, node: &Node) -> Option<AttributeChange> {
        let (required, optional) = kind.attributes();
        let known: Vec<&str> = required.iter().chain(optional).copied().collect();
        let name = kind.name();
        // Liquibase's other spelling of an attribute, which it reads (and checksums) as the
        // attribute itself.
        let alias = |key: &str| match (kind, key) {
            (Kind::CreateProcedure, "procedureText") => Some("procedureBody"),
            _ => None,
        };
        let spellings: Vec<&str> = known
            .iter()
            .copied()
            .chain(known.iter().filter_map(|key| alias(key)))
            .collect();
        self.refuse_unknown(node, &format!("`{name}`"), &spellings);
        let mut attributes = std::collections::BTreeMap::new();
        for key in known.iter().filter(|key| **key != "columns") {
            match self
                .string(node, key)
                .or_else(|| alias(key).and_then(|alias| self.string(node, alias)))
            {
                Some(value) => {
                    attributes.insert(key.to_string(), value);
                }
                None if required.contains(key) => {
                    self.error(
                        node,
                        &format!("{name} needs `{key}`"),
                        &format!("add `{key}:`"),
                    );
                    return None;
                }
                None => {}
            }
        }
        // Liquibase's defaults for these, which its checksum hashes.
        let defaults: &[(&str, &str)] = match kind {
            Kind::Stop => &[("message", "Stop command in changelog file")],
            Kind::Output => &[("target", "STDERR")],
            _ => &[],
        };
        for (key, value) in defaults {
            attributes
                .entry(key.to_string())
                .or_insert_with(|| value.to_string());
        }
        let mut columns = vec![];
        if required.contains(&"columns") {
            let what = format!("a column of {name}");
            for item in node
                .get("columns")
                .and_then(Node::as_seq)
                .unwrap_or_default()
            {
                let column = item.get("column").unwrap_or(item);
                self.refuse_unknown(column, &what, kind.column_attributes());
                columns.push(
                    kind.column_attributes()
                        .iter()
                        .filter_map(|key| self.string(column, key).map(|v| (key.to_string(), v)))
                        .collect(),
                );
            }
            if columns.is_empty() {
                self.error(
                    node,
                    &format!("{name} needs `columns`"),
                    "add `columns:` with `- column: {name: …, value: …}` items",
                );
                return None;
            }
        }
        Some(AttributeChange {
            kind,
            attributes,
            columns,
        })
    }
}

const DEFAULT_KEYS: &[&str] = &[
    "defaultValue",
    "defaultValueNumeric",
    "defaultValueBoolean",
    "defaultValueComputed",
];

const COLUMN_ATTRIBUTES: &[&str] = &[
    "name",
    "type",
    "defaultValue",
    "defaultValueNumeric",
    "defaultValueBoolean",
    "defaultValueComputed",
    "autoIncrement",
    "startWith",
    "incrementBy",
    "constraints",
];

const CONSTRAINT_ATTRIBUTES: &[&str] = &[
    "nullable",
    "primaryKey",
    "primaryKeyName",
    "unique",
    "uniqueConstraintName",
    "foreignKeyName",
    "references",
    "referencedTableSchemaName",
    "referencedTableName",
    "referencedColumnNames",
    "deleteCascade",
];

/// The attributes of each SQL change type Lockstep runs (`columns` are checked on their own).
fn change_attributes(change: &str) -> Option<&'static [&'static str]> {
    Some(match change {
        "sql" => &[
            "sql",
            "endDelimiter",
            "splitStatements",
            "stripComments",
            "comment",
        ],
        "createTable" | "addColumn" => &["schemaName", "tableName", "columns"],
        "createIndex" => &["schemaName", "tableName", "indexName", "unique", "columns"],
        "dropTable" => &["schemaName", "tableName", "cascadeConstraints"],
        "dropColumn" => &["schemaName", "tableName", "columnName"],
        "dropIndex" => &["schemaName", "tableName", "indexName"],
        "renameTable" => &["schemaName", "oldTableName", "newTableName"],
        "renameColumn" => &[
            "schemaName",
            "tableName",
            "oldColumnName",
            "newColumnName",
            "columnDataType",
        ],
        "addNotNullConstraint" => &[
            "schemaName",
            "tableName",
            "columnName",
            "columnDataType",
            "defaultNullValue",
        ],
        "dropNotNullConstraint" => &["schemaName", "tableName", "columnName", "columnDataType"],
        "createView" => &["schemaName", "viewName", "selectQuery", "replaceIfExists"],
        "dropView" => &["schemaName", "viewName"],
        "tagDatabase" => &["tag"],
        "empty" => &[],
        _ => return None,
    })
}

/// The (key, value) entries of a list of single-key maps (YAML) or of a map (XML).
fn entries_of(node: &Node) -> Vec<(&Node, &Node)> {
    match &node.value {
        Value::Seq(items) => items
            .iter()
            .filter_map(|i| i.as_map())
            .flat_map(|m| m.iter().map(|(k, v)| (k, v)))
            .collect(),
        Value::Map(entries) => entries.iter().map(|(k, v)| (k, v)).collect(),
        _ => vec![],
    }
}

/// A `sql` change in YAML, JSON or XML keeps its comments (formatted SQL strips them).
fn yaml_sql_settings() -> SqlSettings {
    SqlSettings {
        strip_comments: false,
        ..SqlSettings::default()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::checksum::ChecksumVersion::V9;
    use std::collections::BTreeMap;

    type Parse = fn(&str, &str, &mut FileProperties) -> Result<Vec<Entry>, Vec<ChangelogError>>;

    /// The changesets of a file read with no properties given.
    pub(crate) fn changesets_of(parse: Parse, file: &str, source: &str) -> Vec<ChangeSet> {
        parse(file, source, &mut FileProperties::only(&BTreeMap::new()))
            .unwrap_or_else(|e| panic!("{e:?}"))
            .into_iter()
            .filter_map(|e| match e {
                Entry::ChangeSet(c) => Some(*c),
                _ => None,
            })
            .collect()
    }

    fn changesets(source: &str) -> Vec<ChangeSet> {
        changesets_of(parse, "db/changelog.yaml", source)
    }

    #[test]
    fn yaml_changesets_match_liquibases_golden_checksums() {
        let cs = changesets(
            "databaseChangeLog:\n  - changeSet:\n      id: 1\n      author: a\n      changes:\n        - sql: insert into person(id,name) values (1,'x')\n  - changeSet:\n      id: 2\n      author: a\n      changes:\n        - createTable:\n            tableName: person\n            columns:\n              - column:\n                  name: id\n                  type: int\n                  constraints:\n                    primaryKey: true\n                    nullable: false\n              - column:\n                  name: name\n                  type: varchar(50)\n",
        );
        assert_eq!(
            cs[0].checksum(V9).to_string(),
            "9:14a5dbbef2f55fbd6efeaa8be6c6b53d"
        );
        assert_eq!(
            cs[1].checksum(V9).to_string(),
            "9:3d828f93c7594c31e5da979cbc268032"
        );
        assert_eq!(
            cs[1].changes[0].description(),
            "createTable tableName=person"
        );
    }

    #[test]
    fn json_is_read_too() {
        let cs = changesets(
            r#"{"databaseChangeLog": [{"changeSet": {"id": "1", "author": "a", "changes": [{"sql": "insert into person(id,name) values (1,'x')"}]}}]}"#,
        );
        assert_eq!(
            cs[0].checksum(V9).to_string(),
            "9:14a5dbbef2f55fbd6efeaa8be6c6b53d"
        );
    }

    #[test]
    fn rollback_forms_and_entries() {
        let entries = parse("c.yaml", "databaseChangeLog:\n  - property: {name: t, value: people}\n  - changeSet:\n      id: 1\n      author: a\n      changes:\n        - sql: create table ${t} (id int)\n        - rollback: drop table ${t}\n  - changeSet:\n      id: 2\n      author: a\n      changes: [{empty: {}}]\n      rollback: []\n  - changeSet:\n      id: 3\n      author: a\n      changes: [{tagDatabase: {tag: v1}}]\n      rollback:\n        - dropTable: {tableName: people}\n  - include: {file: more.yaml, relativeToChangelogFile: true}\n  - includeAll: {path: changes/}\n", &mut FileProperties::only(&BTreeMap::new())).unwrap();
        let Entry::ChangeSet(first) = &entries[0] else {
            panic!()
        };
        assert!(matches!(&first.rollback, Rollback::Sql(s) if s.sql == "drop table people"));
        let Entry::ChangeSet(second) = &entries[1] else {
            panic!()
        };
        assert_eq!(second.rollback, Rollback::Empty);
        let Entry::ChangeSet(third) = &entries[2] else {
            panic!()
        };
        assert!(matches!(&third.rollback, Rollback::Changes(c) if c.len() == 1));
        assert_eq!(third.changes[0].tag(), Some("v1"));
        assert_eq!(
            entries[3],
            Entry::Include {
                file: "more.yaml".into(),
                relative: true,
                error_if_missing: true,
                scope: IncludeScope::default(),
                line: 20
            }
        );
        assert!(
            matches!(&entries[4], Entry::IncludeAll { path, relative: false, .. } if path == "changes/")
        );
    }

    #[test]
    fn problems_name_the_line() {
        let errors = parse(
            "c.yaml",
            "databaseChangeLog:\n  - changeSet:\n      id: 1\n      changes: []\n",
            &mut FileProperties::only(&BTreeMap::new()),
        )
        .unwrap_err();
        let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert!(
            text[0].starts_with("c.yaml:3: error: a changeSet needs `id` and `author`"),
            "{text:#?}"
        );
    }

    #[test]
    fn an_unsupported_change_type_is_kept_with_its_changeset_for_the_engine_to_refuse_if_it_runs() {
        let entries = parse("c.yaml", "databaseChangeLog:\n  - changeSet:\n      id: 2\n      author: a\n      changes:\n        - addCheckConstraint: {}\n", &mut FileProperties::only(&BTreeMap::new())).unwrap();
        let Entry::ChangeSet(changeset) = &entries[0] else {
            panic!("{entries:?}")
        };
        assert!(
            changeset.unsupported[0].starts_with(
                "c.yaml:6: change type `addCheckConstraint` is not supported by Lockstep yet"
            ),
            "{:?}",
            changeset.unsupported
        );
    }
}
