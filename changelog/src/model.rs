//! Changesets and changes as a changelog defines them (after `${}` expansion).

use std::collections::BTreeMap;

use crate::attribute_changes::{AttributeChange, Kind};
use crate::changes::Structured;
use crate::checksum::{self, CheckSum, ChecksumVersion, SqlSettings};
use crate::db::Dialect;
use crate::mongo_changes::MongoChange;
use crate::statements;

/// Where a problem in a changelog is, and what it is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}: error: {message}{}", help.as_ref().map(|h| format!("\n  help: {h}")).unwrap_or_default())]
pub struct ChangelogError {
    pub file: String,
    pub line: usize,
    pub message: String,
    pub help: Option<String>,
}

/// One changelog file's changesets, in order.
#[derive(Debug, Clone, PartialEq)]
pub struct Changelog {
    /// The path as given (relative to the search root); FILENAME unless overridden.
    pub path: String,
    pub changesets: Vec<ChangeSet>,
    /// The `preConditions` of the changelog files themselves (root level), with their file:
    /// an update checks them before it runs anything.
    pub preconditions: Vec<(String, Preconditions)>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ChangeSet {
    pub id: String,
    pub author: String,
    /// FILENAME in DATABASECHANGELOG: the changelog's path, or its `logicalFilePath`.
    pub file: String,
    /// The line the changeset starts on, for messages.
    pub line: usize,
    pub changes: Vec<Change>,
    pub rollback: Rollback,
    pub preconditions: Option<Preconditions>,
    pub run_always: bool,
    pub run_on_change: bool,
    pub fail_on_error: bool,
    pub run_in_transaction: bool,
    pub ignore: bool,
    pub context: Option<String>,
    pub labels: Option<String>,
    /// The `context`s and `labels` of the includes that lead to this changeset, outermost
    /// first: it runs only where each of them admits the run too.
    pub inherited_contexts: Vec<String>,
    pub inherited_labels: Vec<String>,
    pub dbms: Option<String>,
    /// Checksums (or `ANY`) that are accepted in place of the computed one.
    pub valid_checksums: Vec<String>,
    pub comment: Option<String>,
    /// Change types Lockstep cannot run, each with where it is written. The changeset is refused
    /// before anything is written if a command would run it (or needs its checksum); a changeset
    /// filtered out by context, label or dbms may have them, as Liquibase only reads what it runs.
    pub unsupported: Vec<String>,
}

/// Why a changeset attribute refuses its changeset, if it does: one Lockstep does not know
/// (Liquibase ignores an unknown one, so a misspelt `context` would run the changeset
/// everywhere), or a value that changes what Liquibase does in a way Lockstep does not.
/// `key` and `value` as the changelog writes them; the caller says where.
pub fn changeset_attribute_refusal(key: &str, value: &str) -> Option<String> {
    const KNOWN: &[&str] = &[
        "id",
        "author",
        "changes",
        "rollback",
        "preConditions",
        "validCheckSum",
        "comment",
        "created",
        "context",
        "contextFilter",
        "labels",
        "dbms",
        "runAlways",
        "alwaysRun",
        "runOnChange",
        "failOnError",
        "runInTransaction",
        "ignore",
        "logicalFilePath",
    ];
    let unsupported = |why: &str| Some(format!("changeset attribute `{key}: {value}`: {why}"));
    match key {
        _ if KNOWN.contains(&key) => None,
        "objectQuotingStrategy" if value.eq_ignore_ascii_case("LEGACY") => None,
        "objectQuotingStrategy" => unsupported(
            "Liquibase then quotes the names it writes, which Lockstep does not do yet; remove it to keep LEGACY quoting",
        ),
        "onValidationFail" if value.eq_ignore_ascii_case("HALT") => None,
        "onValidationFail" => unsupported(
            "Lockstep stops at a changed checksum (HALT) and does not mark the changeset ran instead; remove it, or accept the new checksum with `validCheckSum`",
        ),
        "runWith" if value.is_empty() || value.eq_ignore_ascii_case("jdbc") => None,
        "runWith" | "runWithSpoolFile" => unsupported(
            "it runs the changeset through a program (psql, sqlplus) on the machine that applies the changelog, and Lockstep never lets a changelog do that; remove it to run the SQL over the connection",
        ),
        "runOrder" => unsupported(
            "Lockstep runs changesets in changelog order and does not move them first or last; move the changeset instead",
        ),
        "modifySql" => unsupported(
            "Lockstep would run the SQL unmodified, so it refuses instead; write the SQL you want with a `sql` change",
        ),
        _ => Some(format!(
            "`{key}` is not a changeset attribute Lockstep knows (misspelt?): Liquibase ignores it, and a misspelt `context` or `dbms` would run the changeset everywhere; supported: {}, objectQuotingStrategy (LEGACY), onValidationFail (HALT), runWith (jdbc)",
            KNOWN.join(", ")
        )),
    }
}

impl ChangeSet {
    /// A changeset with Liquibase's attribute defaults and no changes.
    pub fn new(
        id: impl Into<String>,
        author: impl Into<String>,
        file: impl Into<String>,
        line: usize,
    ) -> Self {
        ChangeSet {
            id: id.into(),
            author: author.into(),
            file: file.into(),
            line,
            changes: vec![],
            rollback: Rollback::Automatic,
            preconditions: None,
            run_always: false,
            run_on_change: false,
            fail_on_error: true,
            run_in_transaction: true,
            ignore: false,
            context: None,
            labels: None,
            inherited_contexts: vec![],
            inherited_labels: vec![],
            dbms: None,
            valid_checksums: vec![],
            comment: None,
            unsupported: vec![],
        }
    }

    /// The checksum Liquibase stores in MD5SUM for this changeset.
    pub fn checksum(&self, version: ChecksumVersion) -> CheckSum {
        let changes: Vec<CheckSum> = self.changes.iter().map(|c| c.checksum(version)).collect();
        checksum::changeset(version, &changes)
    }

    /// `path::id::author`, how Liquibase names a changeset in messages.
    pub fn identifier(&self) -> String {
        format!("{}::{}::{}", self.file, self.id, self.author)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    Sql(SqlChange),
    /// `sqlFile`: SQL read from a file when the changelog is loaded.
    SqlFile(SqlFile),
    /// `loadData` / `loadUpdateData`: rows read from a CSV file when the changelog is loaded.
    /// Boxed: the largest change, and rare; every other change would be as big.
    LoadData(Box<LoadData>),
    Structured(Structured),
    Mongo(MongoChange),
}

impl Change {
    pub fn checksum(&self, version: ChecksumVersion) -> CheckSum {
        match self {
            Change::Sql(sql) => checksum::sql(version, &sql.sql, &sql.settings),
            Change::SqlFile(file) => checksum::sql(version, &file.text, &file.sql.settings),
            Change::LoadData(load) => load.checksum(version),
            Change::Structured(change) => change.checksum(version),
            Change::Mongo(change) => change.checksum(version),
        }
    }

    /// The DESCRIPTION column's text for this change.
    pub fn description(&self) -> String {
        match self {
            Change::Sql(_) => "sql".to_string(),
            Change::SqlFile(file) => format!("sqlFile path={}", file.path),
            Change::LoadData(load) => format!("{} tableName={}", load.name(), load.table),
            Change::Structured(change) => change.description(),
            Change::Mongo(change) => change.description(),
        }
    }

    /// The statements that make this change on `dialect`.
    pub fn statements(&self, dialect: Dialect) -> Result<Vec<String>, String> {
        match self {
            Change::Sql(sql) | Change::SqlFile(SqlFile { sql, .. }) => {
                Ok(statements::split(&sql.sql, &sql.settings))
            }
            Change::LoadData(load) => load.statements(dialect),
            Change::Structured(change) => change.statements(dialect),
            Change::Mongo(change) => Err(format!(
                "{} is a MongoDB change; it cannot run on {}",
                change.name(),
                dialect.dbms_name()
            )),
        }
    }

    /// What an `output` change says when its changeset runs.
    pub fn output(&self) -> Option<&str> {
        match self {
            Change::Structured(Structured::Attributes(change)) => change.output(),
            _ => None,
        }
    }

    /// What to say of a change that does nothing on `dialect`, as in Liquibase.
    pub fn does_nothing_on(&self, dialect: Dialect) -> Option<String> {
        match self {
            Change::Structured(Structured::Attributes(change)) => change.does_nothing_on(dialect),
            _ => None,
        }
    }

    /// Why a `stop` change stops the update before its changeset runs.
    pub fn stop(&self) -> Option<&str> {
        match self {
            Change::Structured(Structured::Attributes(change)) => change.stop(),
            _ => None,
        }
    }

    /// The tag a `tagDatabase` change writes into its row.
    pub fn tag(&self) -> Option<&str> {
        match self {
            Change::Structured(Structured::TagDatabase { tag }) => Some(tag),
            _ => None,
        }
    }
}

/// Raw SQL: a `sql` change, or the body of a formatted-SQL changeset.
#[derive(Debug, Clone, PartialEq)]
pub struct SqlChange {
    pub sql: String,
    pub settings: SqlSettings,
}

/// A `sqlFile` change: the file and, once loaded, its SQL.
#[derive(Debug, Clone, PartialEq)]
pub struct SqlFile {
    /// `path` as the changelog writes it (DESCRIPTION shows it).
    pub path: String,
    /// The file relative to the schema's root.
    pub resolved: String,
    /// The file as read: Liquibase's checksum hashes it before `${}` is expanded.
    pub text: String,
    /// What runs: the text with `${}` expanded.
    pub sql: SqlChange,
}

/// How a changeset is undone.
#[derive(Debug, Clone, PartialEq)]
pub enum Rollback {
    /// None given: the changes' automatic inverses, or impossible if a change has none.
    Automatic,
    /// Given as empty (`--rollback empty`, `rollback: []`): nothing to run; the row is deleted.
    Empty,
    Sql(SqlChange),
    /// Changes given explicitly, run in the order given.
    Changes(Vec<Change>),
    /// The forward changes of another changeset.
    Reference {
        id: String,
        author: String,
        path: Option<String>,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Preconditions {
    pub on_fail: OnPrecondition,
    pub on_error: OnPrecondition,
    /// All must hold.
    pub checks: Vec<Precondition>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnPrecondition {
    Halt,
    Continue,
    MarkRan,
    Warn,
}

impl OnPrecondition {
    pub fn parse(text: &str) -> Option<Self> {
        match text.to_ascii_uppercase().as_str() {
            "HALT" => Some(OnPrecondition::Halt),
            "CONTINUE" => Some(OnPrecondition::Continue),
            "MARK_RAN" => Some(OnPrecondition::MarkRan),
            "WARN" => Some(OnPrecondition::Warn),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Precondition {
    SqlCheck {
        expected: String,
        sql: String,
    },
    TableExists {
        table: String,
        schema: Option<String>,
    },
    ViewExists {
        view: String,
        schema: Option<String>,
    },
    ColumnExists {
        table: String,
        column: String,
    },
    IndexExists {
        index: String,
    },
    RowCount {
        table: String,
        expected: i64,
    },
    TableIsEmpty {
        table: String,
    },
    ChangeSetExecuted {
        id: String,
        author: String,
        file: String,
    },
    /// `type` as in a `dbms` attribute (`postgresql`, `!sqlite`, …).
    Dbms {
        dbms: String,
    },
    /// MongoDB: the collection exists.
    CollectionExists {
        collection: String,
    },
    /// MongoDB: at least one document matches `filter` (shell-style JSON; all when absent).
    DocumentExists {
        collection: String,
        filter: Option<String>,
    },
    /// MongoDB: exactly `expected` documents match `filter`.
    ExpectedDocumentCount {
        collection: String,
        filter: Option<String>,
        expected: i64,
    },
    And(Vec<Precondition>),
    Or(Vec<Precondition>),
    Not(Vec<Precondition>),
}

impl Precondition {
    /// The name a changelog gives it.
    pub fn name(&self) -> &'static str {
        match self {
            Precondition::SqlCheck { .. } => "sqlCheck",
            Precondition::TableExists { .. } => "tableExists",
            Precondition::ViewExists { .. } => "viewExists",
            Precondition::ColumnExists { .. } => "columnExists",
            Precondition::IndexExists { .. } => "indexExists",
            Precondition::RowCount { .. } => "rowCount",
            Precondition::TableIsEmpty { .. } => "tableIsEmpty",
            Precondition::ChangeSetExecuted { .. } => "changeSetExecuted",
            Precondition::Dbms { .. } => "dbms",
            Precondition::CollectionExists { .. } => "collectionExists",
            Precondition::DocumentExists { .. } => "documentExists",
            Precondition::ExpectedDocumentCount { .. } => "expectedDocumentCount",
            Precondition::And(_) => "and",
            Precondition::Or(_) => "or",
            Precondition::Not(_) => "not",
        }
    }
}

/// `loadData` and `loadUpdateData`: rows read from a CSV file when the changelog is loaded.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadData {
    pub schema: Option<String>,
    pub table: String,
    /// `path` as the changelog writes it, and the file relative to the schema's root.
    pub path: String,
    pub resolved: String,
    pub separator: u8,
    pub quote: u8,
    pub comment_prefix: String,
    /// `loadUpdateData`'s `primaryKey` (columns, comma-separated): rows are updated if there.
    pub primary_key: Option<String>,
    /// The `columns` configuration: which table column each of the file's columns fills, and
    /// how its values are written. Liquibase leaves it out of the checksum.
    pub columns: Vec<LoadColumn>,
    /// The file's lines without empty and comment lines, which Liquibase's checksum hashes.
    pub text: String,
    pub header: Vec<String>,
    /// Each row's values as the file has them.
    pub rows: Vec<Vec<String>>,
}

/// One `column` of loadData's `columns`: it configures the file's column at `index` (from 0),
/// or else the one whose header is `header`, or else the one whose header is `name`.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadColumn {
    pub name: Option<String>,
    pub header: Option<String>,
    pub index: Option<usize>,
    pub kind: LoadType,
}

/// A loadData column's `type`: how a value of the file is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoadType {
    /// No `type`: a quoted literal the server casts to the column's type.
    AsTheTable,
    /// A quoted literal, and an empty value is the empty string, not NULL.
    String,
    /// A number, written as a number.
    Numeric,
    /// `true`, `t`, `yes`, `y` or `1` (any case) is true, anything else false.
    Boolean,
    Date,
    Datetime,
    Uuid,
    /// An SQL expression, written as it is.
    Computed,
    /// Not loaded.
    Skip,
}

impl LoadType {
    /// The `type` a changelog writes; the error says what Lockstep cannot load, and why.
    pub fn parse(declared: &str) -> Result<Self, String> {
        Ok(match declared.to_ascii_uppercase().as_str() {
            "STRING" => LoadType::String,
            "NUMERIC" => LoadType::Numeric,
            "BOOLEAN" => LoadType::Boolean,
            "DATE" => LoadType::Date,
            "DATETIME" => LoadType::Datetime,
            "UUID" => LoadType::Uuid,
            "COMPUTED" => LoadType::Computed,
            "SKIP" => LoadType::Skip,
            "BLOB" | "CLOB" => return Err(format!("type `{declared}` loads each value from the file it names, and Lockstep does not read files a CSV names; load the column's text with type STRING, or use `sql`")),
            "SEQUENCE" => return Err("type `SEQUENCE` is not supported by Lockstep; fill the column with a default (`nextval(...)`) instead".into()),
            _ => return Err(format!("type `{declared}` is not a loadData column type; use STRING, NUMERIC, BOOLEAN, DATE, DATETIME, UUID, COMPUTED or SKIP")),
        })
    }
}

/// A value of the file as Liquibase reads it: `NULL` (any case) is NULL, and so is an empty
/// value, except in a STRING column.
fn value(kind: LoadType, raw: &str) -> Option<&str> {
    let null = raw.eq_ignore_ascii_case("NULL") || (raw.is_empty() && kind != LoadType::String);
    (!null).then_some(raw)
}

/// Whether `value` is a number Liquibase writes the same way on every database: digits, with
/// an optional sign and fraction (an exponent is read differently by each of its drivers).
fn is_plain_number(value: &str) -> bool {
    let digits = value.strip_prefix(['-', '+']).unwrap_or(value);
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, "0"));
    !whole.is_empty()
        && !fraction.is_empty()
        && whole
            .bytes()
            .chain(fraction.bytes())
            .all(|b| b.is_ascii_digit())
}

/// A NUMERIC value as Liquibase's MySQL and SQLite drivers bind it: parsed, so that `007` is
/// `7` and `3.50` is `3.5` (PostgreSQL gets the text as written).
fn bound_number(value: &str) -> String {
    let value = value.strip_prefix('+').unwrap_or(value);
    match value.split_once('.') {
        None => value
            .parse::<i64>()
            .map_or(value.to_string(), |n| n.to_string()),
        Some((whole, fraction)) if fraction.bytes().all(|b| b == b'0') => whole
            .parse::<i64>()
            .map_or(value.to_string(), |n| n.to_string()),
        Some(_) => value
            .parse::<f64>()
            .map_or(value.to_string(), |n| n.to_string()),
    }
}

impl LoadData {
    pub fn name(&self) -> &'static str {
        if self.primary_key.is_some() {
            "loadUpdateData"
        } else {
            "loadData"
        }
    }

    /// Liquibase 4.28: the MD5 of `table:` and the checksum of the file's text.
    pub fn checksum(&self, version: ChecksumVersion) -> CheckSum {
        let file = checksum::text(version, &self.text);
        checksum::text(version, &format!("{}:{file}", self.table))
    }

    /// The file's text, as Liquibase reads it for the checksum: empty and comment lines skipped.
    pub fn read(&mut self, text: &str) -> Result<(), String> {
        // Liquibase takes the first line as the header even when it is a comment, then fails
        // on the first row (its width differs) or at the database (`#` names no column).
        if let Some((at, header)) = text
            .lines()
            .enumerate()
            .find(|(_, line)| !line.trim().is_empty())
            .filter(|(_, line)| {
                !self.comment_prefix.is_empty() && line.starts_with(&self.comment_prefix)
            })
        {
            return Err(format!(
                "{}:{}: the header line `{header}` starts with the comment prefix `{}`, and Liquibase reads the first line as the header even so; put the header line first (comments may follow it)",
                self.resolved,
                at + 1,
                self.comment_prefix
            ));
        }
        self.text = text
            .lines()
            .filter(|line| !line.trim().is_empty() && !line.starts_with(&self.comment_prefix))
            .collect::<Vec<_>>()
            .join("\n");
        let mut reader = csv::ReaderBuilder::new()
            .delimiter(self.separator)
            .quote(self.quote)
            .from_reader(self.text.as_bytes());
        self.header = reader
            .headers()
            .map_err(|e| format!("{}: {e}", self.resolved))?
            .iter()
            .map(|h| h.trim().to_string())
            .collect();
        self.rows = vec![];
        for record in reader.records() {
            let record = record.map_err(|e| format!("{}: {e}", self.resolved))?;
            self.rows.push(record.iter().map(str::to_string).collect());
        }
        for (at, header) in self.header.iter().enumerate() {
            if self.config(at, header).map(|c| c.kind) != Some(LoadType::Numeric) {
                continue;
            }
            let values = self.rows.iter().filter_map(|row| row.get(at));
            if let Some(bad) = values
                .filter_map(|raw| value(LoadType::Numeric, raw))
                .find(|v| !is_plain_number(v))
            {
                return Err(format!(
                    "{}: column `{header}` is NUMERIC, and `{bad}` is not a plain decimal number (digits, a sign, a fraction: Liquibase's drivers read anything else differently)",
                    self.resolved
                ));
            }
        }
        Ok(())
    }

    /// The `columns` entry that configures the file's column `at`, whose header is `header`.
    fn config(&self, at: usize, header: &str) -> Option<&LoadColumn> {
        self.columns.iter().find(|c| {
            c.index == Some(at)
                || c.header
                    .as_deref()
                    .is_some_and(|h| h.eq_ignore_ascii_case(header))
                || c.name
                    .as_deref()
                    .is_some_and(|n| n.eq_ignore_ascii_case(header))
        })
    }

    /// The table columns the file fills, each with the file's column it comes from and how its
    /// values are written (SKIP columns left out).
    fn targets(&self) -> Vec<(usize, &str, LoadType)> {
        self.header
            .iter()
            .enumerate()
            .filter_map(|(at, header)| match self.config(at, header) {
                Some(LoadColumn {
                    kind: LoadType::Skip,
                    ..
                }) => None,
                Some(config) => Some((at, config.name.as_deref().unwrap_or(header), config.kind)),
                None => Some((at, header.as_str(), LoadType::AsTheTable)),
            })
            .collect()
    }

    /// loadUpdateData's automatic inverse on `dialect`, as Liquibase's: a `delete` of each row
    /// by its primary key (the rows it updated are deleted too). `None` for loadData, which has
    /// none.
    pub fn inverse(&self, dialect: Dialect) -> Option<Vec<Structured>> {
        let keys = self.keys()?;
        let mut common = BTreeMap::from([("tableName".to_string(), self.table.clone())]);
        if let Some(schema) = &self.schema {
            common.insert("schemaName".into(), schema.clone());
        }
        let targets = self.targets();
        Some(
            self.rows
                .iter()
                .map(|row| {
                    let matches: Vec<String> = targets
                        .iter()
                        .filter(|(_, column, _)| keys.contains(column))
                        .map(|&(at, column, kind)| {
                            match row.get(at).and_then(|raw| value(kind, raw)) {
                                Some(value) => format!("{column} = {}", dialect.quoted(value)),
                                None => format!("{column} IS NULL"),
                            }
                        })
                        .collect();
                    let mut attributes = common.clone();
                    attributes.insert("where".into(), matches.join(" AND "));
                    Structured::Attributes(AttributeChange {
                        kind: Kind::Delete,
                        attributes,
                        columns: vec![],
                    })
                })
                .collect(),
        )
    }

    /// loadUpdateData's `primaryKey` columns.
    fn keys(&self) -> Option<Vec<&str>> {
        Some(
            self.primary_key
                .as_deref()?
                .split(',')
                .map(str::trim)
                .collect(),
        )
    }

    /// One statement per row, as Liquibase writes them (values as literals the server casts to
    /// the column's type); loadUpdateData's upsert is each database's own.
    pub fn statements(&self, dialect: Dialect) -> Result<Vec<String>, String> {
        self.statements_into(dialect, &[])
    }

    /// [`Self::statements`] for a table whose `boolean_columns` take `true` and `false` as 1
    /// and 0: MySQL's BOOLEAN is TINYINT(1) and SQLite has none, so neither casts the words, and
    /// Liquibase reads the column's type to convert them.
    pub fn statements_into(
        &self,
        dialect: Dialect,
        boolean_columns: &[String],
    ) -> Result<Vec<String>, String> {
        let table = match &self.schema {
            Some(schema) => format!("{schema}.{}", self.table),
            None => self.table.clone(),
        };
        let targets = self.targets();
        if dialect == Dialect::Sqlite
            && let Some((_, column, kind)) = targets.iter().find(|(_, _, kind)| {
                matches!(
                    kind,
                    LoadType::Date | LoadType::Datetime | LoadType::Computed
                )
            })
        {
            return Err(format!(
                "{} column `{column}` has type {}, which Liquibase does not load into SQLite as written (its SQLite driver stores dates as epoch milliseconds in the JVM's time zone, and fails on COMPUTED); declare the column STRING to load the text as it is",
                self.name(),
                format!("{kind:?}").to_uppercase()
            ));
        }
        let literal = |column: &str, kind: LoadType, raw: &str| {
            let Some(v) = value(kind, raw) else {
                return "NULL".to_string();
            };
            let truth = || {
                matches!(
                    v.to_ascii_lowercase().as_str(),
                    "true" | "t" | "yes" | "y" | "1"
                )
            };
            match kind {
                LoadType::AsTheTable => {
                    let boolean = boolean_columns
                        .iter()
                        .any(|c| c.eq_ignore_ascii_case(column));
                    match v.to_ascii_lowercase().as_str() {
                        "true" if boolean => "1".to_string(),
                        "false" if boolean => "0".to_string(),
                        _ => dialect.quoted(v),
                    }
                }
                LoadType::Boolean => match (dialect, truth()) {
                    (Dialect::Postgresql, true) => "TRUE".into(),
                    (Dialect::Postgresql, false) => "FALSE".into(),
                    (_, truth) => u8::from(truth).to_string(),
                },
                LoadType::Numeric if dialect == Dialect::Postgresql => v.to_string(),
                LoadType::Numeric => bound_number(v),
                // Liquibase reads `2020-01-02T10:11:12` as a timestamp and writes it with a space.
                LoadType::Datetime if v.get(10..11) == Some("T") => {
                    dialect.quoted(&format!("{} {}", &v[..10], &v[11..]))
                }
                LoadType::String | LoadType::Date | LoadType::Datetime | LoadType::Uuid => {
                    dialect.quoted(v)
                }
                // SKIP never gets here: `targets` leaves its columns out.
                LoadType::Computed | LoadType::Skip => v.to_string(),
            }
        };
        let columns: Vec<&str> = targets.iter().map(|(_, column, _)| *column).collect();
        let column_list = columns.join(", ");
        let keys = self.keys().unwrap_or_default();
        Ok(self
            .rows
            .iter()
            .map(|row| {
                let values: Vec<String> = targets
                    .iter()
                    .map(|&(at, column, kind)| {
                        literal(column, kind, row.get(at).map_or("", String::as_str))
                    })
                    .collect();
                let insert = format!(
                    "INSERT INTO {table} ({column_list}) VALUES ({})",
                    values.join(", ")
                );
                if keys.is_empty() {
                    return insert;
                }
                let pairs = || columns.iter().zip(&values);
                let sets: Vec<String> = pairs()
                    .filter(|(c, _)| !keys.contains(c))
                    .map(|(c, v)| format!("{c} = {v}"))
                    .collect();
                let key: Vec<String> = pairs()
                    .filter(|(c, _)| keys.contains(c))
                    .map(|(c, v)| format!("{c} = {v}"))
                    .collect();
                match dialect {
                    Dialect::Mysql | Dialect::Mariadb => {
                        return format!("{insert} ON DUPLICATE KEY UPDATE {}", sets.join(", "));
                    }
                    // As Liquibase: the row is replaced whole, so columns the file does not
                    // name get their defaults again.
                    Dialect::Sqlite => return format!("INSERT OR REPLACE{}", &insert["INSERT".len()..]),
                    Dialect::Postgresql => {}
                }
                format!(
                    "DO $$ BEGIN UPDATE {table} SET {} WHERE {}; IF NOT FOUND THEN {insert}; END IF; END $$",
                    sets.join(", "),
                    key.join(" AND ")
                )
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changeset_attributes_that_change_nothing_lockstep_does_are_accepted_and_the_rest_refused() {
        for (key, value) in [
            ("created", "2024-01-01"),
            ("objectQuotingStrategy", "legacy"),
            ("onValidationFail", "HALT"),
            ("runWith", "jdbc"),
        ] {
            assert_eq!(changeset_attribute_refusal(key, value), None, "{key}");
        }
        for (key, value, says) in [
            (
                "objectQuotingStrategy",
                "QUOTE_ALL_OBJECTS",
                "quotes the names",
            ),
            (
                "onValidationFail",
                "MARK_RAN",
                "does not mark the changeset ran",
            ),
            ("runWith", "psql", "through a program"),
            ("runOrder", "first", "changelog order"),
            ("contxt", "prod", "misspelt"),
        ] {
            let refusal = changeset_attribute_refusal(key, value).unwrap();
            assert!(refusal.contains(says), "{refusal}");
        }
    }

    #[test]
    fn a_backslash_in_a_value_is_doubled_on_mysql_where_it_would_be_an_escape() {
        let insert = Change::Structured(Structured::Attributes(AttributeChange {
            kind: Kind::Insert,
            attributes: BTreeMap::from([("tableName".into(), "t".into())]),
            columns: vec![BTreeMap::from([
                ("name".into(), "path".into()),
                ("value".into(), r"C:\temp".into()),
            ])],
        }));
        assert_eq!(
            insert.statements(Dialect::Postgresql).unwrap(),
            [r"INSERT INTO t (path) VALUES ('C:\temp')"]
        );
        for mysql in [Dialect::Mysql, Dialect::Mariadb] {
            assert_eq!(
                insert.statements(mysql).unwrap(),
                [r"INSERT INTO t (path) VALUES ('C:\\temp')"]
            );
        }
    }
}
