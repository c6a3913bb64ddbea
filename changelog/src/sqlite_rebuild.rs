//! The column changes SQLite cannot make in place (addDefaultValue, dropDefaultValue,
//! addAutoIncrement, addColumn of a key or unique column, dropColumn of a key, unique or indexed
//! column), made the way SQLite's documentation says to make them
//! (<https://www.sqlite.org/lang_altertable.html#otheralter>): the table is written anew from its
//! own CREATE TABLE text with columns edited, added or removed, its rows are copied over with
//! their rowids, and its indexes and triggers are re-created from their own text.
//!
//! The table keeps its name throughout (its rows wait in a TEMP table while it is re-created),
//! so no view, trigger or foreign key that names it is rewritten or broken. Liquibase rebuilds
//! from its snapshot of the table instead, which loses unique constraints, constraint names and
//! column types, and renames the table so that the views reading it break.
//!
//! Invariants: the rebuild runs inside the changeset's transaction, with foreign keys off (a
//! DROP TABLE would otherwise fire the children's ON DELETE actions); and it checks, before that
//! transaction commits, that the new table differs from the old one only in the edited columns
//! (`PRAGMA table_xinfo`, `index_list` and `foreign_key_list`) and that every view still reads.

use sqlparser::dialect::SQLiteDialect;
use sqlparser::keywords::Keyword;
use sqlparser::tokenizer::{Location, Token, Tokenizer};

use crate::db::{DbError, Dialect, Rows, Sql, Value};

/// How a rebuild changes the table's columns.
#[derive(Debug, Clone, PartialEq)]
pub enum ColumnEdit {
    /// `DEFAULT sql`, replacing the column's default if it has one.
    SetDefault {
        column: String,
        sql: String,
    },
    DropDefault {
        column: String,
    },
    /// The column becomes `INTEGER … PRIMARY KEY AUTOINCREMENT`; it must be the table's whole
    /// primary key. `start_with` raises the table's `sqlite_sequence` so that the next id is it.
    AutoIncrement {
        column: String,
        start_with: Option<i64>,
    },
    /// New columns, each `(name, definition)`, after the table's last column, and the table
    /// constraints that come with them after its last constraint.
    AddColumns {
        columns: Vec<(String, String)>,
        constraints: Vec<String>,
    },
    /// The column goes, with the table constraints, CHECKs and indexes that name it, as on
    /// PostgreSQL. Where no key, index or CHECK could name it, SQLite's own `DROP COLUMN` drops it
    /// in place instead.
    DropColumn {
        column: String,
    },
}

impl ColumnEdit {
    /// The columns it changes or adds.
    fn columns(&self) -> Vec<&str> {
        match self {
            ColumnEdit::SetDefault { column, .. }
            | ColumnEdit::DropDefault { column }
            | ColumnEdit::AutoIncrement { column, .. }
            | ColumnEdit::DropColumn { column } => vec![column],
            ColumnEdit::AddColumns { columns, .. } => {
                columns.iter().map(|(name, _)| name.as_str()).collect()
            }
        }
    }
}

/// One change that rebuilds its table.
#[derive(Debug, Clone, PartialEq)]
pub struct Rebuild {
    pub table: String,
    pub edit: ColumnEdit,
}

/// The statements of a rebuild, read from the database as it is now, and what the rebuilt
/// table must look like.
pub struct Plan {
    pub statements: Vec<String>,
    before: Shape,
}

/// Why `change`, which rebuilds its SQLite table, has no statements outside a run.
pub(crate) fn known_only_when_it_runs(change: &str) -> String {
    format!(
        "{change} on SQLite rebuilds the table from the database's own definition of it, so its statements are known only when it runs"
    )
}

/// The TEMP table the rows wait in while their table is re-created.
const HOLDING: &str = "temp.lockstep_rebuild_rows";

impl Rebuild {
    /// What rebuilding the table takes now; `None` when the column already is as asked.
    pub fn plan(&self, db: &mut dyn Sql) -> Result<Option<Plan>, DbError> {
        let (name, create) = db
            .query(
                "SELECT name, sql FROM sqlite_schema WHERE type = 'table' AND name = $1 COLLATE NOCASE",
                &[Value::from(self.table.as_str())],
            )?
            .rows
            .into_iter()
            .find_map(|row| match <[Value; 2]>::try_from(row) {
                Ok([Value::Text(name), Value::Text(sql)]) => Some((name, sql)),
                _ => None,
            })
            .ok_or_else(|| {
                DbError::NotFound(format!(
                    "no table `{}` to rebuild: the table is rebuilt from the database's own definition of it, so it must exist when the change runs (`update-sql` cannot show the rebuild of a table an earlier changeset creates)",
                    self.table
                ))
            })?;
        let table = Value::from(name.as_str());
        let quoted_name = quoted(&name);
        let dropped = match &self.edit {
            ColumnEdit::DropColumn { column } => Some(column.as_str()),
            _ => None,
        };
        let Some(edited) = edit_table(&create, &self.edit).map_err(|why| {
            DbError::Invalid(format!(
                "cannot rebuild table `{}` to change {}: {why}",
                self.table,
                self.described_columns()
            ))
        })?
        else {
            return Ok(None);
        };
        // A CHECK may name the column too, and SQLite's DROP COLUMN refuses it where PostgreSQL
        // drops the CHECK with the column.
        if let Some(column) = dropped
            && !edited.had_check
            && !is_keyed(db, &name, column)?
        {
            return Ok(Some(Plan {
                statements: vec![format!(
                    "ALTER TABLE main.{quoted_name} DROP COLUMN {}",
                    quoted(column)
                )],
                before: Shape::of(db, &name)?,
            }));
        }
        let columns: Vec<String> = db
            .query(
                "SELECT name FROM pragma_table_xinfo($1) WHERE hidden = 0 ORDER BY cid",
                std::slice::from_ref(&table),
            )?
            .rows
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_text().map(str::to_string))
            .filter(|c| !dropped.is_some_and(|d| d.eq_ignore_ascii_case(c)))
            .collect();
        // The rowid is copied too, unless the table has none or a column hides it.
        let keeps_rowid = edited.has_rowid
            && !columns.iter().any(|c| {
                ["rowid", "_rowid_", "oid"]
                    .iter()
                    .any(|alias| c.eq_ignore_ascii_case(alias))
            });
        let copied: Vec<String> = keeps_rowid
            .then(|| "rowid".to_string())
            .into_iter()
            .chain(columns.iter().map(|c| quoted(c)))
            .collect();
        let holding_columns: Vec<String> = (0..copied.len()).map(|i| format!("c{i}")).collect();
        let copied = copied.join(", ");
        let mut statements = vec![
            // Untyped columns: no affinity, so every value waits exactly as it was stored.
            format!("CREATE TABLE {HOLDING} ({})", holding_columns.join(", ")),
            format!("INSERT INTO {HOLDING} SELECT {copied} FROM main.{quoted_name}"),
            format!("DROP TABLE main.{quoted_name}"),
            edited.sql,
            format!("INSERT INTO main.{quoted_name} ({copied}) SELECT * FROM {HOLDING}"),
            format!("DROP TABLE {HOLDING}"),
        ];
        // Its indexes and triggers, but not the indexes on a dropped column.
        statements.extend(
            db.query(
                "SELECT sql FROM sqlite_schema AS s WHERE type IN ('index', 'trigger') AND tbl_name = $1 COLLATE NOCASE AND sql IS NOT NULL AND NOT EXISTS (SELECT 1 FROM pragma_index_info(s.name) WHERE name = $2 COLLATE NOCASE) ORDER BY rowid",
                &[table.clone(), Value::from(dropped)],
            )?
            .rows
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_text().map(str::to_string)),
        );
        // An AUTOINCREMENT table keeps a sqlite_sequence row; one whose column went, does not.
        let sequence = sequence_of(db, &name)?.filter(|_| edited.autoincrement);
        let start_after = match self.edit {
            ColumnEdit::AutoIncrement {
                start_with: Some(start),
                ..
            } => Some(start.saturating_sub(1).max(sequence.unwrap_or(0))),
            _ => sequence,
        };
        if let Some(seq) = start_after {
            // Re-created, the table's sequence is its largest id; keep the ids it handed out.
            let name = Dialect::Sqlite.quoted(&name);
            statements.push(format!(
                "UPDATE sqlite_sequence SET seq = MAX(seq, {seq}) WHERE name = {name}"
            ));
            statements.push(format!(
                "INSERT INTO sqlite_sequence (name, seq) SELECT {name}, {seq} WHERE NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = {name})"
            ));
        }
        Ok(Some(Plan {
            statements,
            before: Shape::of(db, &name)?,
        }))
    }

    /// Checks, after `plan`'s statements ran, that only the edited columns changed and that
    /// every view still reads.
    pub fn verify(&self, plan: &Plan, db: &mut dyn Sql) -> Result<(), DbError> {
        let views = db.query("SELECT name FROM sqlite_schema WHERE type = 'view'", &[])?;
        for view in views.rows.into_iter().flatten() {
            let view = view.as_text().unwrap_or_default();
            db.query(&format!("SELECT * FROM main.{} LIMIT 0", quoted(view)), &[])
                .map_err(|error| {
                    DbError::Failed(format!(
                        "changing {} of table `{}` would break view `{view}` ({error}); nothing was changed",
                        self.described_columns(),
                        self.table
                    ))
                })?;
        }
        let after = Shape::of(db, &self.table)?;
        let columns = self.edit.columns();
        if plan.before.without(&columns) == after.without(&columns) {
            Ok(())
        } else {
            Err(DbError::Failed(format!(
                "rebuilding table `{}` changed more than {} (before: {:?}; after: {:?}); nothing was changed",
                self.table,
                self.described_columns(),
                plan.before,
                after
            )))
        }
    }

    /// "column `a`", or "columns `a`, `b`".
    fn described_columns(&self) -> String {
        let columns = self.edit.columns();
        let names: Vec<String> = columns.iter().map(|c| format!("`{c}`")).collect();
        let noun = if names.len() == 1 {
            "column"
        } else {
            "columns"
        };
        format!("{noun} {}", names.join(", "))
    }
}

/// Whether a key, a unique constraint, an index or a foreign key names `column`, so that
/// SQLite's `DROP COLUMN` refuses it.
fn is_keyed(db: &mut dyn Sql, table: &str, column: &str) -> Result<bool, DbError> {
    let names = [Value::from(table), Value::from(column)];
    let keyed = db.query(
        "SELECT 1 FROM pragma_table_xinfo($1) WHERE name = $2 COLLATE NOCASE AND pk > 0 UNION ALL SELECT 1 FROM pragma_index_list($1) AS list, pragma_index_info(list.name) AS info WHERE info.name = $2 COLLATE NOCASE UNION ALL SELECT 1 FROM pragma_foreign_key_list($1) WHERE \"from\" = $2 COLLATE NOCASE",
        &names,
    )?;
    Ok(!keyed.rows.is_empty())
}

/// The table's `sqlite_sequence` value, if it has one.
fn sequence_of(db: &mut dyn Sql, table: &str) -> Result<Option<i64>, DbError> {
    let no_sequences = db
        .query(
            "SELECT 1 FROM sqlite_schema WHERE name = 'sqlite_sequence'",
            &[],
        )?
        .rows
        .is_empty();
    if no_sequences {
        return Ok(None);
    }
    Ok(db
        .query(
            "SELECT seq FROM sqlite_sequence WHERE name = $1",
            &[Value::from(table)],
        )?
        .rows
        .into_iter()
        .flatten()
        .find_map(|v| v.as_integer()))
}

fn quoted(identifier: &str) -> String {
    format!("\"{}\"", identifier.replace('"', "\"\""))
}

/// What SQLite says of a table: its columns, indexes and foreign keys.
#[derive(Debug, PartialEq)]
struct Shape {
    columns: Rows,
    indexes: Rows,
    foreign_keys: Rows,
}

impl Shape {
    fn of(db: &mut dyn Sql, table: &str) -> Result<Self, DbError> {
        let table = [Value::from(table)];
        Ok(Shape {
            columns: db.query(
                "SELECT name, type, \"notnull\", dflt_value, pk, hidden FROM pragma_table_xinfo($1) ORDER BY cid",
                &table,
            )?,
            // Automatic indexes are compared by what they are: their numbers may change.
            indexes: db.query(
                "SELECT CASE WHEN origin = 'c' THEN name END, \"unique\", origin, partial, (SELECT group_concat(name, ',') FROM pragma_index_info(list.name)) FROM pragma_index_list($1) AS list ORDER BY 1, 2, 3, 4, 5",
                &table,
            )?,
            // Keys are numbered by their place in the text: compared by what they are.
            foreign_keys: db.query(
                "SELECT \"table\", \"from\", \"to\", on_update, on_delete, match, seq FROM pragma_foreign_key_list($1) ORDER BY 1, 2, 3, 4, 5, 6, 7",
                &table,
            )?,
        })
    }

    /// The shape without `columns`, the indexes on them and their foreign keys.
    fn without(&self, columns: &[&str]) -> [Vec<&Vec<Value>>; 3] {
        let names = |value: &Value| {
            value.as_text().is_some_and(|names| {
                names
                    .split(',')
                    .any(|name| columns.iter().any(|c| c.eq_ignore_ascii_case(name)))
            })
        };
        [
            (&self.columns, 0),
            (&self.indexes, 4),
            (&self.foreign_keys, 1),
        ]
        .map(|(rows, at)| rows.rows.iter().filter(|row| !names(&row[at])).collect())
    }
}

/// A token of a CREATE TABLE text, and where it is in that text, in bytes.
struct Piece {
    token: Token,
    start: usize,
    end: usize,
}

impl Piece {
    /// The keyword, for an unquoted word.
    fn keyword(&self) -> Option<Keyword> {
        match &self.token {
            Token::Word(word) if word.quote_style.is_none() => Some(word.keyword),
            _ => None,
        }
    }

    fn is(&self, keyword: Keyword) -> bool {
        self.keyword() == Some(keyword)
    }

    /// The name a word or a string names, without its quotes.
    fn name(&self) -> Option<&str> {
        match &self.token {
            Token::Word(word) => Some(&word.value),
            Token::SingleQuotedString(name) => Some(name),
            _ => None,
        }
    }
}

/// The tokens of `sql`, without whitespace and comments.
fn tokenize(sql: &str) -> Result<Vec<Piece>, String> {
    let tokens = Tokenizer::new(&SQLiteDialect {}, sql)
        .tokenize_with_location()
        .map_err(|e| e.to_string())?;
    let line_starts: Vec<usize> = std::iter::once(0)
        .chain(sql.match_indices('\n').map(|(i, _)| i + 1))
        .collect();
    // Locations count lines and characters from 1.
    let offset = |at: Location| -> usize {
        let line_start = line_starts[(at.line as usize).saturating_sub(1)];
        let rest = &sql[line_start..];
        line_start
            + rest
                .char_indices()
                .nth((at.column as usize).saturating_sub(1))
                .map_or(rest.len(), |(i, _)| i)
    };
    Ok(tokens
        .into_iter()
        .filter(|t| !matches!(t.token, Token::Whitespace(_)))
        .map(|t| Piece {
            start: offset(t.span.start),
            end: offset(t.span.end),
            token: t.token,
        })
        .collect())
}

/// The index after the token at `at`, or after the parenthesised group it opens.
fn after_group(pieces: &[Piece], at: usize) -> usize {
    if pieces[at].token != Token::LParen {
        return at + 1;
    }
    let mut depth = 0;
    for (i, piece) in pieces.iter().enumerate().skip(at) {
        match piece.token {
            Token::LParen => depth += 1,
            Token::RParen => {
                depth -= 1;
                if depth == 0 {
                    return i + 1;
                }
            }
            _ => {}
        }
    }
    pieces.len()
}

/// The words that begin a column constraint.
const CONSTRAINT_STARTS: &[Keyword] = &[
    Keyword::CONSTRAINT,
    Keyword::PRIMARY,
    Keyword::NOT,
    Keyword::NULL,
    Keyword::UNIQUE,
    Keyword::CHECK,
    Keyword::DEFAULT,
    Keyword::COLLATE,
    Keyword::REFERENCES,
    Keyword::GENERATED,
    Keyword::AS,
];

/// One constraint of a column definition: pieces `start..end`, and its keyword (after its
/// `CONSTRAINT name`, when it has one).
struct ColumnConstraint {
    start: usize,
    keyword_at: usize,
    end: usize,
}

/// A column definition: its name, type and constraints, as piece indices.
struct ColumnDef {
    name: usize,
    type_name: std::ops::Range<usize>,
    constraints: Vec<ColumnConstraint>,
    end: usize,
}

/// Splits the column definition at pieces `start..end` (SQLite's `column-def`).
fn column_def(pieces: &[Piece], start: usize, end: usize) -> ColumnDef {
    let starts_constraint = |i: usize| {
        pieces[i]
            .keyword()
            .is_some_and(|k| CONSTRAINT_STARTS.contains(&k))
    };
    let mut i = start + 1;
    while i < end && !starts_constraint(i) {
        i = after_group(pieces, i);
    }
    let type_name = start + 1..i;
    let mut constraints = vec![];
    while i < end {
        let first = i;
        if pieces[i].is(Keyword::CONSTRAINT) {
            i += 2;
        }
        let keyword_at = i.min(end - 1);
        let keyword = pieces[keyword_at].keyword();
        i = keyword_at + 1;
        // What follows the keyword and could be read as the start of another constraint.
        match keyword {
            Some(Keyword::NOT) | Some(Keyword::COLLATE) => i += 1,
            Some(Keyword::DEFAULT) => {
                if i < end && matches!(pieces[i].token, Token::Minus | Token::Plus) {
                    i += 1;
                }
                if i < end {
                    i = after_group(pieces, i);
                }
            }
            _ => {}
        }
        while i < end {
            let belongs = match keyword {
                // `ON DELETE SET NULL`, `SET DEFAULT`, `NOT DEFERRABLE`.
                Some(Keyword::REFERENCES) => {
                    (matches!(pieces[i].keyword(), Some(Keyword::NULL | Keyword::DEFAULT))
                        && pieces[i - 1].is(Keyword::SET))
                        || (pieces[i].is(Keyword::NOT)
                            && pieces.get(i + 1).is_some_and(|p| p.is(Keyword::DEFERRABLE)))
                }
                Some(Keyword::GENERATED) => pieces[i].is(Keyword::AS),
                _ => false,
            };
            if starts_constraint(i) && !belongs {
                break;
            }
            i = after_group(pieces, i);
        }
        constraints.push(ColumnConstraint {
            start: first,
            keyword_at,
            end: i.min(end),
        });
    }
    ColumnDef {
        name: start,
        type_name,
        constraints,
        end,
    }
}

/// A CREATE TABLE text with one column edited.
#[derive(Debug, PartialEq)]
struct Edited {
    sql: String,
    /// Not a WITHOUT ROWID table.
    has_rowid: bool,
    /// The table had a CHECK constraint before the edit.
    had_check: bool,
    /// The edited table has an AUTOINCREMENT column, so it keeps a sqlite_sequence row.
    autoincrement: bool,
}

/// `create` (a table's CREATE TABLE text, as sqlite_schema keeps it) with `column` edited;
/// `None` when the column already is as `edit` asks.
fn edit_table(create: &str, edit: &ColumnEdit) -> Result<Option<Edited>, String> {
    let pieces = tokenize(create)?;
    let open = pieces
        .iter()
        .position(|p| p.token == Token::LParen)
        .ok_or("its CREATE TABLE has no column list (a table made with AS SELECT)")?;
    let close = after_group(&pieces, open) - 1;
    let has_rowid = !pieces[close..]
        .windows(2)
        .any(|w| w[0].is(Keyword::WITHOUT) && w[1].is(Keyword::ROWID));
    // The column definitions and table constraints, split at the commas between them.
    let mut items = vec![];
    let mut item_start = open + 1;
    let mut i = open + 1;
    while i < close {
        if pieces[i].token == Token::Comma {
            items.push(item_start..i);
            item_start = i + 1;
            i += 1;
        } else {
            i = after_group(&pieces, i);
        }
    }
    items.push(item_start..close);
    let is_table_constraint = |start: usize| {
        matches!(
            pieces[start].keyword(),
            Some(
                Keyword::CONSTRAINT
                    | Keyword::PRIMARY
                    | Keyword::UNIQUE
                    | Keyword::CHECK
                    | Keyword::FOREIGN
            )
        )
    };
    let column_items: Vec<&std::ops::Range<usize>> = items
        .iter()
        .filter(|item| !item.is_empty() && !is_table_constraint(item.start))
        .collect();
    let find = |column: &str| {
        column_items
            .iter()
            .find(|item| {
                pieces[item.start]
                    .name()
                    .is_some_and(|n| n.eq_ignore_ascii_case(column))
            })
            .map(|item| column_def(&pieces, item.start, item.end))
    };
    let defined =
        |column: &str| find(column).ok_or_else(|| format!("the table has no column `{column}`"));
    let text = |range: std::ops::Range<usize>| {
        &create[pieces[range.start].start..pieces[range.end - 1].end]
    };
    let constraint = |def: &ColumnDef, keyword: Keyword| {
        def.constraints
            .iter()
            .find(|c| pieces[c.keyword_at].is(keyword))
            .map(|c| (c.start, c.keyword_at, c.end))
    };
    // (byte range, replacement) pairs, applied from the last.
    let mut replacements: Vec<(std::ops::Range<usize>, String)> = vec![];
    match edit {
        ColumnEdit::AddColumns {
            columns,
            constraints,
        } => {
            if let Some((name, _)) = columns.iter().find(|(name, _)| find(name).is_some()) {
                return Err(format!("the table already has a column `{name}`"));
            }
            let last_column = column_items.last().ok_or("the table has no columns")?;
            let end = pieces[last_column.end - 1].end;
            for (_, definition) in columns {
                replacements.push((end..end, format!(", {definition}")));
            }
            let end = pieces[close - 1].end;
            for constraint in constraints {
                replacements.push((end..end, format!(", {constraint}")));
            }
        }
        ColumnEdit::DropColumn { column } => {
            defined(column)?;
            let names_it = |range: std::ops::Range<usize>| {
                pieces[range].iter().any(
                    |p| matches!(&p.token, Token::Word(w) if w.value.eq_ignore_ascii_case(column)),
                )
            };
            // The columns a table constraint is on: a foreign key's own columns, not those it
            // references (they may share the name).
            let constrains_it = |item: &std::ops::Range<usize>| {
                let keyword = if pieces[item.start].is(Keyword::CONSTRAINT) {
                    item.start + 2
                } else {
                    item.start
                };
                match pieces.get(keyword) {
                    Some(p) if p.is(Keyword::FOREIGN) => pieces[keyword..item.end]
                        .iter()
                        .position(|p| p.token == Token::LParen)
                        .is_some_and(|at| {
                            names_it(keyword + at..after_group(&pieces, keyword + at))
                        }),
                    _ => names_it(item.clone()),
                }
            };
            // The column's definition, and the table constraints on it.
            let removed: Vec<bool> = items
                .iter()
                .map(|item| {
                    !item.is_empty()
                        && if is_table_constraint(item.start) {
                            constrains_it(item)
                        } else {
                            pieces[item.start]
                                .name()
                                .is_some_and(|n| n.eq_ignore_ascii_case(column))
                        }
                })
                .collect();
            // Another column's CHECK that names it goes too, as on PostgreSQL.
            for item in column_items.iter().filter(|item| {
                !pieces[item.start]
                    .name()
                    .is_some_and(|n| n.eq_ignore_ascii_case(column))
            }) {
                let other = column_def(&pieces, item.start, item.end);
                for check in other
                    .constraints
                    .iter()
                    .filter(|c| pieces[c.keyword_at].is(Keyword::CHECK) && names_it(c.start..c.end))
                {
                    replacements.push((
                        pieces[check.start - 1].end..pieces[check.end - 1].end,
                        String::new(),
                    ));
                }
            }
            let first_kept = removed
                .iter()
                .position(|r| !r)
                .ok_or("the table would have no columns left")?;
            // Each goes with the comma before it; those before the first kept, with the one after.
            if first_kept > 0 {
                replacements.push((
                    pieces[items[0].start].start..pieces[items[first_kept].start].start,
                    String::new(),
                ));
            }
            for (k, item) in items.iter().enumerate().skip(first_kept + 1) {
                if removed[k] {
                    replacements.push((
                        pieces[items[k - 1].end - 1].end..pieces[item.end - 1].end,
                        String::new(),
                    ));
                }
            }
        }
        ColumnEdit::SetDefault { column: name, sql } => {
            let def = defined(name)?;
            match constraint(&def, Keyword::DEFAULT) {
                Some((_, keyword, end)) => replacements.push((
                    pieces[keyword].start..pieces[end - 1].end,
                    format!("DEFAULT {sql}"),
                )),
                None => {
                    let end = pieces[def.end - 1].end;
                    replacements.push((end..end, format!(" DEFAULT {sql}")));
                }
            }
        }
        ColumnEdit::DropDefault { column: name } => {
            match constraint(&defined(name)?, Keyword::DEFAULT) {
                Some((start, _, end)) => {
                    replacements.push((pieces[start - 1].end..pieces[end - 1].end, String::new()))
                }
                None => return Ok(None),
            }
        }
        ColumnEdit::AutoIncrement { column, .. } => {
            let def = defined(column)?;
            let is_integer =
                def.type_name.len() == 1 && pieces[def.type_name.start].is(Keyword::INTEGER);
            let type_end = pieces[def.type_name.end.max(def.name + 1) - 1].end;
            if !is_integer {
                let range = match def.type_name.is_empty() {
                    true => type_end..type_end,
                    false => pieces[def.type_name.start].start..type_end,
                };
                let space = if def.type_name.is_empty() { " " } else { "" };
                replacements.push((range, format!("{space}INTEGER")));
            }
            match constraint(&def, Keyword::PRIMARY) {
                Some((start, _, end)) => {
                    let already = pieces[start..end]
                        .iter()
                        .any(|p| p.is(Keyword::AUTOINCREMENT));
                    if already && is_integer {
                        return Ok(None);
                    }
                    if !already {
                        let end = pieces[end - 1].end;
                        replacements.push((end..end, " AUTOINCREMENT".into()));
                    }
                }
                None => {
                    // The table's own PRIMARY KEY (column) becomes the column's.
                    let key = items
                        .iter()
                        .filter(|item| !item.is_empty() && is_table_constraint(item.start))
                        .find(|item| {
                            let keyword = if pieces[item.start].is(Keyword::CONSTRAINT) { item.start + 2 } else { item.start };
                            keyword < item.end && pieces[keyword].is(Keyword::PRIMARY)
                        })
                        .ok_or_else(|| format!("`{column}` is not the table's primary key, and SQLite's AUTOINCREMENT is only for an INTEGER PRIMARY KEY"))?;
                    let named = pieces[key.start].is(Keyword::CONSTRAINT);
                    let list = pieces[key.start..key.end]
                        .iter()
                        .position(|p| p.token == Token::LParen)
                        .map(|at| key.start + at)
                        .ok_or("its PRIMARY KEY has no column list")?;
                    let list_end = after_group(&pieces, list);
                    let only_this = list_end == list + 3
                        && pieces[list + 1]
                            .name()
                            .is_some_and(|n| n.eq_ignore_ascii_case(column));
                    if !only_this {
                        return Err(format!(
                            "`{column}` is not the table's whole primary key ({}), and SQLite's AUTOINCREMENT is only for an INTEGER PRIMARY KEY",
                            text(list..list_end)
                        ));
                    }
                    let name = if named {
                        text(key.start..key.start + 2).to_string() + " "
                    } else {
                        String::new()
                    };
                    let conflict = if list_end < key.end {
                        format!(" {}", text(list_end..key.end))
                    } else {
                        String::new()
                    };
                    // After the type, as Liquibase writes it.
                    replacements.push((
                        type_end..type_end,
                        format!(" {name}PRIMARY KEY{conflict} AUTOINCREMENT"),
                    ));
                    // The item goes with the comma before it.
                    replacements.push((
                        pieces[key.start - 2].end..pieces[key.end - 1].end,
                        String::new(),
                    ));
                }
            }
        }
    }
    // From the last; of two at one place, the one pushed later goes in first, so ends up after.
    replacements.sort_by_key(|(range, _)| range.start);
    let mut sql = create.to_string();
    for (range, replacement) in replacements.into_iter().rev() {
        sql.replace_range(range, &replacement);
    }
    let autoincrement = tokenize(&sql)?.iter().any(|p| p.is(Keyword::AUTOINCREMENT));
    Ok(Some(Edited {
        sql,
        has_rowid,
        had_check: pieces.iter().any(|p| p.is(Keyword::CHECK)),
        autoincrement,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn edited(create: &str, edit: ColumnEdit) -> String {
        edit_table(create, &edit).unwrap().unwrap().sql
    }

    fn set_default(column: &str, sql: &str) -> ColumnEdit {
        ColumnEdit::SetDefault {
            column: column.into(),
            sql: sql.into(),
        }
    }

    fn drop_default(column: &str) -> ColumnEdit {
        ColumnEdit::DropDefault {
            column: column.into(),
        }
    }

    fn auto_increment(column: &str) -> ColumnEdit {
        ColumnEdit::AutoIncrement {
            column: column.into(),
            start_with: None,
        }
    }

    #[test]
    fn a_default_is_added_to_the_column_and_nothing_else_is_touched() {
        assert_eq!(
            edited(
                "CREATE TABLE t (id INTEGER PRIMARY KEY, \"Name\" VARCHAR(20) NOT NULL UNIQUE /* who */, n NUMBER(5, 2))",
                set_default("name", "'it''s'")
            ),
            "CREATE TABLE t (id INTEGER PRIMARY KEY, \"Name\" VARCHAR(20) NOT NULL UNIQUE DEFAULT 'it''s' /* who */, n NUMBER(5, 2))"
        );
    }

    #[test]
    fn a_default_replaces_the_one_the_column_has_whatever_it_is() {
        for (old, rest) in [
            ("DEFAULT -1", " NOT NULL"),
            ("DEFAULT (datetime('now'))", " CHECK (n > 0)"),
            ("DEFAULT NULL", " REFERENCES p (id) ON DELETE SET DEFAULT"),
            ("DEFAULT 'a,b'", ""),
        ] {
            assert_eq!(
                edited(
                    &format!("CREATE TABLE t (n INT {old}{rest}, m INT)"),
                    set_default("n", "5")
                ),
                format!("CREATE TABLE t (n INT DEFAULT 5{rest}, m INT)")
            );
        }
    }

    #[test]
    fn a_dropped_default_leaves_the_other_constraints() {
        assert_eq!(
            edited(
                "CREATE TABLE t (n INT NOT NULL CONSTRAINT d DEFAULT 5 REFERENCES p (id) ON DELETE SET NULL NOT DEFERRABLE, m INT)",
                drop_default("n")
            ),
            "CREATE TABLE t (n INT NOT NULL REFERENCES p (id) ON DELETE SET NULL NOT DEFERRABLE, m INT)"
        );
        assert_eq!(
            edit_table(
                "CREATE TABLE t (n INT DEFAULT 5, m INT)",
                &drop_default("m")
            ),
            Ok(None)
        );
    }

    #[test]
    fn an_autoincrement_key_is_an_integer_primary_key_in_the_column() {
        assert_eq!(
            edited(
                "CREATE TABLE u (id INT, x INTEGER NOT NULL, PRIMARY KEY (id))",
                auto_increment("id")
            ),
            "CREATE TABLE u (id INTEGER PRIMARY KEY AUTOINCREMENT, x INTEGER NOT NULL)"
        );
        assert_eq!(
            edited(
                "CREATE TABLE u (id BIGINT NOT NULL, x TEXT, CONSTRAINT pk_u PRIMARY KEY (id) ON CONFLICT REPLACE, UNIQUE (x))",
                auto_increment("id")
            ),
            "CREATE TABLE u (id INTEGER CONSTRAINT pk_u PRIMARY KEY ON CONFLICT REPLACE AUTOINCREMENT NOT NULL, x TEXT, UNIQUE (x))"
        );
        assert_eq!(
            edited(
                "CREATE TABLE u (id INTEGER CONSTRAINT PK_U PRIMARY KEY, x TEXT) STRICT",
                auto_increment("id")
            ),
            "CREATE TABLE u (id INTEGER CONSTRAINT PK_U PRIMARY KEY AUTOINCREMENT, x TEXT) STRICT"
        );
        assert_eq!(
            edited("CREATE TABLE u (id PRIMARY KEY)", auto_increment("id")),
            "CREATE TABLE u (id INTEGER PRIMARY KEY AUTOINCREMENT)"
        );
        assert_eq!(
            edit_table(
                "CREATE TABLE u (id INTEGER PRIMARY KEY AUTOINCREMENT)",
                &auto_increment("id")
            ),
            Ok(None)
        );
    }

    #[test]
    fn an_autoincrement_needs_the_column_to_be_the_whole_primary_key() {
        for create in [
            "CREATE TABLE u (id INT, x INT)",
            "CREATE TABLE u (id INT, x INT, PRIMARY KEY (id, x))",
        ] {
            let error = edit_table(create, &auto_increment("id")).unwrap_err();
            assert!(
                error.contains("AUTOINCREMENT is only for an INTEGER PRIMARY KEY"),
                "{error}"
            );
        }
    }

    #[test]
    fn added_columns_follow_the_last_column_and_their_keys_the_last_constraint() {
        let add = ColumnEdit::AddColumns {
            columns: vec![
                ("code".into(), "code VARCHAR(10)".into()),
                ("n".into(), "n INTEGER DEFAULT 0".into()),
            ],
            constraints: vec!["CONSTRAINT uq_code UNIQUE (code)".into()],
        };
        assert_eq!(
            edited(
                "CREATE TABLE t (id INTEGER NOT NULL, CONSTRAINT PK_T PRIMARY KEY (id))",
                add.clone()
            ),
            "CREATE TABLE t (id INTEGER NOT NULL, code VARCHAR(10), n INTEGER DEFAULT 0, CONSTRAINT PK_T PRIMARY KEY (id), CONSTRAINT uq_code UNIQUE (code))"
        );
        assert_eq!(
            edited("CREATE TABLE t (id INT)", add.clone()),
            "CREATE TABLE t (id INT, code VARCHAR(10), n INTEGER DEFAULT 0, CONSTRAINT uq_code UNIQUE (code))"
        );
        assert_eq!(
            edit_table("CREATE TABLE t (id INT, \"CODE\" TEXT)", &add).unwrap_err(),
            "the table already has a column `code`"
        );
    }

    #[test]
    fn a_dropped_column_takes_the_table_constraints_that_name_it() {
        let drop = |column: &str| ColumnEdit::DropColumn {
            column: column.into(),
        };
        let create = "CREATE TABLE t (a INT, code TEXT CONSTRAINT uq UNIQUE, b INT, CONSTRAINT PK_T PRIMARY KEY (a), UNIQUE (b, code), CHECK (b > 0))";
        assert_eq!(
            edited(create, drop("code")),
            "CREATE TABLE t (a INT, b INT, CONSTRAINT PK_T PRIMARY KEY (a), CHECK (b > 0))"
        );
        assert_eq!(
            edited(create, drop("a")),
            "CREATE TABLE t (code TEXT CONSTRAINT uq UNIQUE, b INT, UNIQUE (b, code), CHECK (b > 0))"
        );
        assert_eq!(
            edited(
                "CREATE TABLE t (code INT, b INT CHECK (b > code) NOT NULL, p INT, FOREIGN KEY (p) REFERENCES parent (code))",
                drop("code")
            ),
            "CREATE TABLE t (b INT NOT NULL, p INT, FOREIGN KEY (p) REFERENCES parent (code))"
        );
        assert_eq!(
            edit_table("CREATE TABLE t (a INT)", &drop("a")).unwrap_err(),
            "the table would have no columns left"
        );
    }

    #[test]
    fn a_column_the_table_does_not_have_is_named() {
        assert_eq!(
            edit_table("CREATE TABLE t (a INT)", &drop_default("b")).unwrap_err(),
            "the table has no column `b`"
        );
    }

    #[test]
    fn a_table_without_rowid_is_copied_without_one() {
        let edited = edit_table(
            "CREATE TABLE t (a INT PRIMARY KEY, b INT) WITHOUT ROWID",
            &set_default("b", "1"),
        )
        .unwrap()
        .unwrap();
        assert!(!edited.has_rowid);
    }
}
