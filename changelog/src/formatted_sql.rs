//! Formatted SQL changelogs (`--liquibase formatted sql`), parsed line by line as Liquibase 4.28
//! does: `--changeset author:id attr:value …`, `--rollback`, `--comment:`, `--preconditions`,
//! `--precondition-*`, `--validCheckSum:`, `--property`, `--ignoreLines:`. Directives are
//! case-insensitive and may have a space after `--`; every other line is the changeset's body,
//! plain `-- comments` included (they count towards the checksum).

use std::borrow::Cow;
use std::collections::BTreeMap;

use foldhash::HashSet;

use crate::checksum::SqlSettings;
use crate::model::*;
use crate::properties::{self, Definition, FileProperties};

/// Parses `source`. `file` is the changelog's FILENAME (its path relative to the search root);
/// the file's `--property` lines are added to `properties`.
pub fn parse(
    file: &str,
    source: &str,
    properties: &mut FileProperties,
) -> Result<Changelog, Vec<ChangelogError>> {
    let mut parser = Parser {
        file: file.to_string(),
        errors: vec![],
        properties,
    };
    parser.collect_properties(source);
    let changesets = parser.changesets(source);
    if parser.errors.is_empty() {
        Ok(Changelog {
            path: file.to_string(),
            changesets,
            preconditions: vec![],
        })
    } else {
        Err(parser.errors)
    }
}

struct Parser<'p> {
    file: String,
    errors: Vec<ChangelogError>,
    properties: &'p mut FileProperties,
}

/// A changeset being read; its lines are borrowed from the file's text.
struct Open<'s> {
    changeset: ChangeSet,
    body: Vec<&'s str>,
    rollback: Vec<&'s str>,
    settings: SqlSettings,
    rollback_settings: SqlSettings,
}

/// The keyword and the rest of a `--keyword rest` line, keyword lower-cased (borrowed when it
/// already is, as it is on nearly every line of a large changelog).
fn directive(line: &str) -> Option<(Cow<'_, str>, &str)> {
    let rest = line.strip_prefix("--")?.trim_start();
    let end = rest
        .find(|c: char| c.is_whitespace() || c == ':')
        .unwrap_or(rest.len());
    let keyword = &rest[..end];
    let keyword = if keyword.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(keyword.to_ascii_lowercase())
    } else {
        Cow::Borrowed(keyword)
    };
    Some((keyword, rest[end..].trim_start_matches(':').trim()))
}

fn starts_with_ignoring_case(text: &str, prefix: &str) -> bool {
    text.as_bytes()
        .get(..prefix.len())
        .is_some_and(|start| start.eq_ignore_ascii_case(prefix.as_bytes()))
}

/// `key:value` pairs; a value may be `"quoted"` to hold spaces.
fn attributes(text: &str) -> Vec<(String, String)> {
    let mut out = vec![];
    let mut rest = text.trim_start();
    while let Some(colon) = rest.find(':') {
        let key = rest[..colon].trim().to_string();
        let after = &rest[colon + 1..];
        let (value, next) = match after.strip_prefix('"') {
            Some(quoted) => match quoted.find('"') {
                Some(end) => (quoted[..end].to_string(), &quoted[end + 1..]),
                None => (quoted.to_string(), ""),
            },
            None => {
                let end = after.find(char::is_whitespace).unwrap_or(after.len());
                (after[..end].to_string(), &after[end..])
            }
        };
        out.push((key, value));
        rest = next.trim_start();
    }
    out
}

fn flag(value: &str) -> Option<bool> {
    match value.to_ascii_lowercase().as_str() {
        "true" => Some(true),
        "false" => Some(false),
        _ => None,
    }
}

impl Parser<'_> {
    fn error(&mut self, line: usize, message: impl Into<String>, help: impl Into<String>) {
        self.errors.push(ChangelogError {
            file: self.file.clone(),
            line,
            message: message.into(),
            help: Some(help.into()),
        });
    }

    fn expand(&self, text: &str) -> String {
        self.properties.expand(text)
    }

    /// `lines` joined, trimmed and expanded, in one allocation when there is nothing to trim or
    /// expand.
    fn expand_lines(&self, lines: &[&str]) -> String {
        let joined = lines.join("\n");
        if joined.trim().len() == joined.len() && !joined.contains("${") {
            return joined;
        }
        self.expand(joined.trim())
    }

    /// `--property name:n value:v [context:… labels:… dbms:… global:…]` lines, anywhere in the
    /// file, before any changeset is read.
    fn collect_properties(&mut self, source: &str) {
        for (index, line) in source.lines().enumerate() {
            if let Some((keyword, rest)) = directive(line)
                && keyword == "property"
            {
                let attrs: BTreeMap<String, String> = attributes(rest).into_iter().collect();
                match (attrs.get("name"), attrs.get("value")) {
                    (Some(name), Some(value)) => {
                        let global = attrs.get("global").is_none_or(|g| flag(g) != Some(false));
                        self.properties.define(Definition {
                            name: name.clone(),
                            value: value.clone(),
                            context: attrs.get("context").cloned(),
                            labels: attrs.get("labels").cloned(),
                            dbms: attrs.get("dbms").cloned(),
                            global,
                        });
                    }
                    _ => self.error(
                        index + 1,
                        "a --property line needs `name:` and `value:`",
                        "write `--property name:schema value:app`",
                    ),
                }
            }
        }
    }

    fn changesets<'s>(&mut self, source: &'s str) -> Vec<ChangeSet> {
        let mut lines = source
            .lines()
            .enumerate()
            .map(|(i, l)| (i + 1, l))
            .peekable();
        while lines.peek().is_some_and(|(_, l)| l.trim().is_empty()) {
            lines.next();
        }
        let logical_path = match lines.peek().and_then(|(_, l)| directive(l)) {
            Some((keyword, rest))
                if keyword == "liquibase" && starts_with_ignoring_case(rest, "formatted sql") =>
            {
                let path = attributes(&rest["formatted sql".len()..])
                    .into_iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case("logicalFilePath"))
                    .map(|(_, v)| v);
                lines.next();
                path
            }
            _ => return vec![self.raw(source)],
        };
        let default_file = logical_path.unwrap_or_else(|| self.file.clone());
        let mut done: Vec<ChangeSet> = vec![];
        let mut open: Option<Open<'s>> = None;
        let mut in_rollback_block = false;
        let mut ignoring = 0usize;
        let mut ignoring_block = false;
        for (number, line) in lines {
            if in_rollback_block {
                match line.find("*/") {
                    Some(end) => {
                        if let Some(o) = open.as_mut() {
                            o.rollback.push(&line[..end]);
                        }
                        in_rollback_block = false;
                    }
                    None => {
                        if let Some(o) = open.as_mut() {
                            o.rollback.push(line);
                        }
                    }
                }
                continue;
            }
            if ignoring > 0 || ignoring_block {
                ignoring = ignoring.saturating_sub(1);
                if ignoring_block
                    && directive(line)
                        .is_some_and(|(k, r)| k == "ignorelines" && r.eq_ignore_ascii_case("end"))
                {
                    ignoring_block = false;
                }
                continue;
            }
            let trimmed = line.trim_start();
            if starts_with_ignoring_case(trimmed, "/* liquibase rollback")
                || starts_with_ignoring_case(trimmed, "/*liquibase rollback")
            {
                let after = trimmed.split_once("rollback").map_or("", |(_, r)| r);
                match after.find("*/") {
                    Some(end) => {
                        if let Some(o) = open.as_mut() {
                            o.rollback.push(&after[..end]);
                        }
                    }
                    None => {
                        if let Some(o) = open.as_mut() {
                            o.rollback.push(after);
                        }
                        in_rollback_block = true;
                    }
                }
                continue;
            }
            let Some((keyword, rest)) = directive(line) else {
                match open.as_mut() {
                    Some(o) => o.body.push(line),
                    None if !line.trim().is_empty() => self.error(
                        number,
                        "this SQL is not inside a changeset",
                        "start the changeset with `--changeset author:id` above it",
                    ),
                    None => {}
                }
                continue;
            };
            match keyword.as_ref() {
                "changeset" => {
                    if let Some(o) = open.take() {
                        done.push(self.close(o));
                    }
                    open = self.start(number, rest, &default_file);
                }
                "rollback" => match open.as_mut() {
                    Some(o) => o.rollback.push(rest),
                    None => self.error(number, "--rollback is not inside a changeset", "put it after the changeset's SQL"),
                },
                "comment" if line.starts_with("--comment") => match open.as_mut() {
                    Some(o) => o.changeset.comment = Some(self.expand(rest)),
                    None => self.error(number, "--comment is not inside a changeset", "put it on the line after `--changeset`"),
                },
                "preconditions" => match open.as_mut() {
                    Some(o) => {
                        let mut preconditions = Preconditions { on_fail: OnPrecondition::Halt, on_error: OnPrecondition::Halt, checks: vec![] };
                        for (key, value) in attributes(rest) {
                            let Some(action) = OnPrecondition::parse(&value) else {
                                self.error(number, format!("`{value}` is not a precondition action"), "use HALT, CONTINUE, MARK_RAN or WARN");
                                continue;
                            };
                            match key.as_str() {
                                "onFail" => preconditions.on_fail = action,
                                "onError" => preconditions.on_error = action,
                                _ => {}
                            }
                        }
                        o.changeset.preconditions = Some(preconditions);
                    }
                    None => self.error(number, "--preconditions is not inside a changeset", "put it after `--changeset`"),
                },
                kind if kind.starts_with("precondition-") => {
                    let check = self.precondition(number, &kind["precondition-".len()..], rest);
                    match (open.as_mut(), check) {
                        (Some(o), Some(check)) => o.changeset.preconditions.get_or_insert(Preconditions { on_fail: OnPrecondition::Halt, on_error: OnPrecondition::Halt, checks: vec![] }).checks.push(check),
                        (None, _) => self.error(number, format!("--{kind} is not inside a changeset"), "put it after `--preconditions`"),
                        _ => {}
                    }
                }
                "validchecksum" => match open.as_mut() {
                    Some(o) => o.changeset.valid_checksums.push(rest.to_string()),
                    None => self.error(number, "--validCheckSum is not inside a changeset", "put it after `--changeset`"),
                },
                "ignorelines" => match rest.to_ascii_lowercase().as_str() {
                    "start" => ignoring_block = true,
                    count => match count.parse::<usize>() {
                        Ok(n) => ignoring = n,
                        Err(_) => self.error(number, format!("`--ignoreLines:{rest}` is not understood"), "write `--ignoreLines:start` … `--ignoreLines:end`, or `--ignoreLines:N`"),
                    },
                },
                "property" | "liquibase" => {}
                // Any other `-- text` is a comment in the body, and counts towards the checksum.
                _ => {
                    if let Some(o) = open.as_mut() {
                        o.body.push(line);
                    }
                }
            }
        }
        if let Some(o) = open.take() {
            done.push(self.close(o));
        }
        let mut seen = HashSet::default();
        for cs in &done {
            if !seen.insert((cs.id.as_str(), cs.author.as_str())) {
                self.error(
                    cs.line,
                    format!(
                        "duplicate identifiers: changeset `{}` by `{}` appears twice",
                        cs.id, cs.author
                    ),
                    "give each changeset its own id",
                );
            }
        }
        done
    }

    /// A file without the header is one changeset holding the whole file, unsplit.
    fn raw(&self, source: &str) -> ChangeSet {
        let mut changeset = ChangeSet::new("raw", "includeAll", self.file.clone(), 1);
        let settings = SqlSettings {
            end_delimiter: None,
            split_statements: false,
            strip_comments: false,
        };
        changeset.changes.push(Change::Sql(SqlChange {
            sql: self.expand(source),
            settings,
        }));
        changeset
    }

    fn start<'s>(&mut self, number: usize, rest: &str, default_file: &str) -> Option<Open<'s>> {
        let Some((author, id, attrs)) = author_and_id(rest) else {
            self.error(
                number,
                format!("`--changeset {rest}` does not name an author and an id"),
                "write `--changeset author:id`, quoting either if it holds spaces or colons",
            );
            return None;
        };
        self.properties.take_undefined();
        let mut changeset = ChangeSet::new(id, author, default_file, number);
        let mut settings = SqlSettings::default();
        let mut rollback_settings = SqlSettings::default();
        for (key, value) in attributes(attrs) {
            let value = self.expand(&value);
            let mut boolean = |target: &mut bool| match flag(&value) {
                Some(b) => *target = b,
                None => self.errors.push(ChangelogError {
                    file: self.file.clone(),
                    line: number,
                    message: format!("`{key}:{value}` must be true or false"),
                    help: Some(format!("write `{key}:true` or `{key}:false`")),
                }),
            };
            match key.as_str() {
                "runOnChange" => boolean(&mut changeset.run_on_change),
                "runAlways" => boolean(&mut changeset.run_always),
                "runInTransaction" => boolean(&mut changeset.run_in_transaction),
                "failOnError" => boolean(&mut changeset.fail_on_error),
                "ignore" => boolean(&mut changeset.ignore),
                "splitStatements" => boolean(&mut settings.split_statements),
                "stripComments" => boolean(&mut settings.strip_comments),
                "rollbackSplitStatements" => boolean(&mut rollback_settings.split_statements),
                "endDelimiter" => settings.end_delimiter = Some(value),
                "rollbackEndDelimiter" => rollback_settings.end_delimiter = Some(value),
                "context" | "contextFilter" => changeset.context = Some(value),
                "labels" => changeset.labels = Some(value),
                "dbms" => changeset.dbms = Some(value),
                "logicalFilePath" => changeset.file = value,
                _ => {
                    if let Some(refusal) = changeset_attribute_refusal(&key, &value) {
                        changeset
                            .unsupported
                            .push(format!("{}:{number}: {refusal}", self.file));
                    }
                }
            }
        }
        Some(Open {
            changeset,
            body: vec![],
            rollback: vec![],
            settings,
            rollback_settings,
        })
    }

    fn close(&mut self, open: Open<'_>) -> ChangeSet {
        let Open {
            mut changeset,
            body,
            rollback,
            settings,
            rollback_settings,
        } = open;
        let sql = self.expand_lines(&body);
        if !sql.is_empty() {
            // Exactly one: a `Vec` grown by `push` would hold room for four.
            changeset.changes = vec![Change::Sql(SqlChange { sql, settings })];
        }
        changeset.rollback = self.rollback(&rollback, rollback_settings);
        let undefined = self.properties.take_undefined();
        if !undefined.is_empty() {
            changeset.unsupported.push(properties::undefined_message(
                &self.file,
                changeset.line,
                &undefined,
            ));
        }
        changeset
    }

    fn rollback(&self, lines: &[&str], settings: SqlSettings) -> Rollback {
        if lines.is_empty() {
            return Rollback::Automatic;
        }
        let text = self.expand_lines(lines);
        if text.is_empty()
            || text.eq_ignore_ascii_case("empty")
            || text.eq_ignore_ascii_case("not required")
        {
            return Rollback::Empty;
        }
        let attrs: BTreeMap<String, String> = attributes(&text)
            .into_iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v))
            .collect();
        if let (Some(id), Some(author)) = (attrs.get("changesetid"), attrs.get("changesetauthor")) {
            return Rollback::Reference {
                id: id.clone(),
                author: author.clone(),
                path: attrs.get("changesetpath").cloned(),
            };
        }
        Rollback::Sql(SqlChange {
            sql: text,
            settings,
        })
    }

    fn precondition(&mut self, number: usize, kind: &str, rest: &str) -> Option<Precondition> {
        match kind {
            "sql-check" => {
                let Some(after) = rest.strip_prefix("expectedResult:") else {
                    self.error(
                        number,
                        "--precondition-sql-check needs `expectedResult:`",
                        "write `--precondition-sql-check expectedResult:0 select count(*) from t`",
                    );
                    return None;
                };
                let (expected, sql) = match after.strip_prefix('"') {
                    Some(quoted) => quoted
                        .split_once('"')
                        .map(|(e, s)| (e.to_string(), s.trim().to_string()))?,
                    None => after
                        .split_once(char::is_whitespace)
                        .map(|(e, s)| (e.to_string(), s.trim().to_string()))?,
                };
                Some(Precondition::SqlCheck {
                    expected,
                    sql: self.expand(&sql),
                })
            }
            "table-exists" | "view-exists" => {
                let attrs: BTreeMap<String, String> = attributes(rest)
                    .into_iter()
                    .map(|(k, v)| (k.to_ascii_lowercase(), self.expand(&v)))
                    .collect();
                let schema = attrs.get("schema").cloned();
                let (key, name) = if kind == "table-exists" {
                    ("table", attrs.get("table"))
                } else {
                    ("view", attrs.get("view"))
                };
                match (kind, name) {
                    ("table-exists", Some(table)) => Some(Precondition::TableExists {
                        table: table.clone(),
                        schema,
                    }),
                    (_, Some(view)) => Some(Precondition::ViewExists {
                        view: view.clone(),
                        schema,
                    }),
                    (_, None) => {
                        self.error(
                            number,
                            format!("--precondition-{kind} needs `{key}:`"),
                            format!("write `--precondition-{kind} {key}:name`"),
                        );
                        None
                    }
                }
            }
            other => {
                self.error(
                    number,
                    format!("`--precondition-{other}` is not a precondition of formatted SQL"),
                    "formatted SQL supports sql-check, table-exists and view-exists",
                );
                None
            }
        }
    }
}

/// Splits `author:id rest` where either may be `"quoted"`; the author runs to the first `:`.
fn author_and_id(text: &str) -> Option<(String, String, &str)> {
    let (author, after) = match text.strip_prefix('"') {
        Some(quoted) => {
            let end = quoted.find('"')?;
            (
                quoted[..end].to_string(),
                quoted[end + 1..].strip_prefix(':')?,
            )
        }
        None => {
            let colon = text.find(':')?;
            (text[..colon].trim().to_string(), &text[colon + 1..])
        }
    };
    let (id, rest) = match after.strip_prefix('"') {
        Some(quoted) => {
            let end = quoted.find('"')?;
            (quoted[..end].to_string(), &quoted[end + 1..])
        }
        None => {
            let end = after.find(char::is_whitespace).unwrap_or(after.len());
            (after[..end].to_string(), &after[end..])
        }
    };
    (!author.is_empty() && !id.is_empty()).then_some((author, id, rest))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checksum::ChecksumVersion::V9;

    fn parse_ok(source: &str) -> Changelog {
        parse(
            "db/changelog.sql",
            source,
            &mut FileProperties::only(&BTreeMap::new()),
        )
        .unwrap_or_else(|e| {
            panic!(
                "{}",
                e.iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("\n")
            )
        })
    }

    fn sql_of(changeset: &ChangeSet) -> &str {
        match &changeset.changes[0] {
            Change::Sql(sql) => &sql.sql,
            other => panic!("expected SQL, found {other:?}"),
        }
    }

    #[test]
    fn changesets_carry_author_id_body_and_the_liquibase_checksum() {
        let log = parse_ok(
            "--liquibase formatted sql\n\n--changeset alice:1\ncreate table t1 (id int primary key, name text);\n\n-- changeset bob:2\nalter table t1 add column x int;\n--rollback alter table t1 drop column x;\n",
        );
        assert_eq!(log.changesets.len(), 2);
        let (first, second) = (&log.changesets[0], &log.changesets[1]);
        assert_eq!(
            (
                first.author.as_str(),
                first.id.as_str(),
                first.file.as_str(),
                first.line
            ),
            ("alice", "1", "db/changelog.sql", 3)
        );
        assert_eq!(
            first.checksum(V9).to_string(),
            "9:71e9465eb9023b52374c5c6ee43c39e0"
        );
        assert_eq!(
            second.checksum(V9).to_string(),
            "9:661738456b595edcd9f303ca0bc59b50"
        );
        assert_eq!(first.rollback, Rollback::Automatic);
        assert!(
            matches!(&second.rollback, Rollback::Sql(s) if s.sql == "alter table t1 drop column x;")
        );
    }

    #[test]
    fn attributes_quoted_names_and_logical_file_path() {
        let log = parse_ok(
            "--liquibase formatted sql logicalFilePath:app/changes\n--changeset \"Jane Doe\":\"id with space\" runOnChange:true runAlways:TRUE failOnError:false splitStatements:false endDelimiter:GO context:\"prod and !test\" labels:a,b dbms:postgresql runInTransaction:false\nselect 1;\n",
        );
        let cs = &log.changesets[0];
        assert_eq!(
            (cs.author.as_str(), cs.id.as_str(), cs.file.as_str()),
            ("Jane Doe", "id with space", "app/changes")
        );
        assert!(cs.run_on_change && cs.run_always && !cs.fail_on_error && !cs.run_in_transaction);
        assert_eq!(cs.context.as_deref(), Some("prod and !test"));
        assert_eq!(cs.labels.as_deref(), Some("a,b"));
        assert_eq!(cs.dbms.as_deref(), Some("postgresql"));
        let Change::Sql(sql) = &cs.changes[0] else {
            panic!()
        };
        assert_eq!(
            sql.settings,
            SqlSettings {
                end_delimiter: Some("GO".into()),
                split_statements: false,
                strip_comments: true
            }
        );
    }

    #[test]
    fn body_comments_count_towards_the_checksum() {
        let plain = parse_ok(
            "--liquibase formatted sql\n--changeset a:1\ncreate table t1 (id int primary key, name text);\n",
        );
        let commented = parse_ok(
            "--liquibase formatted sql\n--changeset a:1\n-- the person table\ncreate table t1 (id int primary key, name text);\n",
        );
        assert_eq!(
            sql_of(&commented.changesets[0]),
            "-- the person table\ncreate table t1 (id int primary key, name text);"
        );
        assert_ne!(
            plain.changesets[0].checksum(V9),
            commented.changesets[0].checksum(V9)
        );
    }

    #[test]
    fn every_rollback_form() {
        let log = parse_ok(
            "--liquibase formatted sql\n--changeset a:1\nselect 1;\n--rollback empty\n--changeset a:2\nselect 2;\n--rollback not required\n--changeset a:3\nselect 3;\n--rollback changesetId:1 changesetAuthor:a\n--changeset a:4\nselect 4;\n--rollback delete from t\n--rollback where id = 4;\n--changeset a:5\nselect 5;\n/* liquibase rollback\ndrop table five;\n*/\n",
        );
        let rollbacks: Vec<&Rollback> = log.changesets.iter().map(|c| &c.rollback).collect();
        assert_eq!(rollbacks[0], &Rollback::Empty);
        assert_eq!(rollbacks[1], &Rollback::Empty);
        assert_eq!(
            rollbacks[2],
            &Rollback::Reference {
                id: "1".into(),
                author: "a".into(),
                path: None
            }
        );
        assert!(
            matches!(rollbacks[3], Rollback::Sql(s) if s.sql == "delete from t\nwhere id = 4;")
        );
        assert!(matches!(rollbacks[4], Rollback::Sql(s) if s.sql == "drop table five;"));
    }

    #[test]
    fn comments_valid_checksums_and_preconditions() {
        let log = parse_ok(
            "--liquibase formatted sql\n--changeset a:1\n--comment: makes the table\n--validCheckSum: 9:71e9465eb9023b52374c5c6ee43c39e0\n--validCheckSum: ANY\n--preconditions onFail:MARK_RAN onError:WARN\n--precondition-sql-check expectedResult:0 select count(*) from information_schema.tables where table_name = 't'\n--precondition-table-exists table:other schema:public\ncreate table t (id int);\n",
        );
        let cs = &log.changesets[0];
        assert_eq!(cs.comment.as_deref(), Some("makes the table"));
        assert_eq!(
            cs.valid_checksums,
            ["9:71e9465eb9023b52374c5c6ee43c39e0", "ANY"]
        );
        let pre = cs.preconditions.as_ref().unwrap();
        assert_eq!(
            (pre.on_fail, pre.on_error),
            (OnPrecondition::MarkRan, OnPrecondition::Warn)
        );
        assert_eq!(
            pre.checks[0],
            Precondition::SqlCheck {
                expected: "0".into(),
                sql: "select count(*) from information_schema.tables where table_name = 't'".into()
            }
        );
        assert_eq!(
            pre.checks[1],
            Precondition::TableExists {
                table: "other".into(),
                schema: Some("public".into())
            }
        );
        assert_eq!(sql_of(cs), "create table t (id int);");
    }

    #[test]
    fn properties_expand_before_the_checksum_and_given_ones_win() {
        let source = "--liquibase formatted sql\n--property name:table value:t1\n--property name:suffix value:from_file\n--changeset a:1\ncreate table ${table} (id int primary key, name text);\n--rollback drop table ${table}_${suffix};\n";
        let given = BTreeMap::from([("suffix".to_string(), "given".to_string())]);
        let log = parse("c.sql", source, &mut FileProperties::only(&given)).unwrap();
        let cs = &log.changesets[0];
        assert_eq!(
            cs.checksum(V9).to_string(),
            "9:71e9465eb9023b52374c5c6ee43c39e0"
        );
        assert!(matches!(&cs.rollback, Rollback::Sql(s) if s.sql == "drop table t1_given;"));
    }

    #[test]
    fn ignore_lines_skip_what_they_cover() {
        let log = parse_ok(
            "--liquibase formatted sql\n--changeset a:1\n--ignoreLines:start\nthis is not sql\n--ignoreLines:end\ncreate table t (id int);\n--ignoreLines:1\nskipped\n",
        );
        assert_eq!(sql_of(&log.changesets[0]), "create table t (id int);");
    }

    #[test]
    fn a_file_without_the_header_is_one_raw_changeset() {
        let log = parse_ok("create table a (id int);\n-- keep me\ncreate table b (id int);\n");
        let cs = &log.changesets[0];
        assert_eq!((cs.id.as_str(), cs.author.as_str()), ("raw", "includeAll"));
        let Change::Sql(sql) = &cs.changes[0] else {
            panic!()
        };
        assert!(!sql.settings.split_statements && !sql.settings.strip_comments);
        assert!(sql.sql.contains("-- keep me"));
    }

    #[test]
    fn problems_name_the_file_and_line() {
        let errors = parse("db/c.sql", "--liquibase formatted sql\nselect 0;\n--changeset nobody\nselect 1;\n--changeset a:1 runAlways:sometimes\nselect 2;\n--changeset a:1\nselect 3;\n--changeset a:2\n--precondition-row-count table:t\n", &mut FileProperties::only(&BTreeMap::new())).unwrap_err();
        let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert!(
            text[0].starts_with("db/c.sql:2: error: this SQL is not inside a changeset"),
            "{text:#?}"
        );
        assert!(
            text.iter().any(|t| t.starts_with(
                "db/c.sql:3: error: `--changeset nobody` does not name an author and an id"
            )),
            "{text:#?}"
        );
        assert!(
            text.iter()
                .any(|t| t
                    .starts_with("db/c.sql:5: error: `runAlways:sometimes` must be true or false")),
            "{text:#?}"
        );
        assert!(text.iter().any(|t| t.starts_with("db/c.sql:10: error: `--precondition-row-count` is not a precondition of formatted SQL")), "{text:#?}");
        assert!(
            text.iter().any(|t| t.starts_with(
                "db/c.sql:7: error: duplicate identifiers: changeset `1` by `a` appears twice"
            )),
            "{text:#?}"
        );
    }
}
