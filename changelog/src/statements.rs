//! Splitting a SQL text into statements, and stripping comments, as a changeset's settings ask.
//!
//! Like Liquibase: split at `;`, and at a line that is only `go` or `/`; `endDelimiter` replaces
//! `;`, matched as Liquibase matches it against its SQL tokens: a word (`GO`) only as a whole
//! word and in any case (`go`, never the start of `GOODS`), `/` only at the start of a line.
//! Unlike Liquibase, quoted strings and PostgreSQL dollar-quoted bodies (`$$ … $$`) are never
//! split, so a function body survives without `splitStatements:false`.

use crate::checksum::SqlSettings;

pub fn split(sql: &str, settings: &SqlSettings) -> Vec<String> {
    let text = if settings.strip_comments {
        strip_comments(sql)
    } else {
        sql.to_string()
    };
    if !settings.split_statements {
        let whole = text.trim();
        return if whole.is_empty() {
            vec![]
        } else {
            vec![whole.to_string()]
        };
    }
    let delimiter = settings.end_delimiter.as_deref().unwrap_or(";");
    let mut statements = vec![];
    let mut current = String::new();
    let mut rest = text.as_str();
    while let Some(c) = rest.chars().next() {
        // Quoted text and dollar-quoted bodies are copied whole.
        if let Some(len) = quoted_length(rest) {
            current.push_str(&rest[..len]);
            rest = &rest[len..];
            continue;
        }
        if let Some(len) = delimiter_at(rest, &current, delimiter) {
            push(&mut statements, &mut current);
            rest = &rest[len..];
            continue;
        }
        if at_line_start(&current) {
            let line = rest.lines().next().unwrap_or_default().trim();
            if line.eq_ignore_ascii_case("go") || line == "/" {
                push(&mut statements, &mut current);
                rest = &rest[rest.find('\n').map_or(rest.len(), |n| n + 1)..];
                continue;
            }
        }
        current.push(c);
        rest = &rest[c.len_utf8()..];
    }
    push(&mut statements, &mut current);
    statements
}

fn is_word(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// The length of `delimiter` if `rest` starts with it where it counts as one, after `current`.
fn delimiter_at(rest: &str, current: &str, delimiter: &str) -> Option<usize> {
    let candidate = rest.get(..delimiter.len())?;
    if delimiter.starts_with(is_word) || delimiter.ends_with(is_word) {
        // A word: whole, in any case.
        let before_ok = !current.ends_with(is_word) || !delimiter.starts_with(is_word);
        let after_ok =
            !rest[delimiter.len()..].starts_with(is_word) || !delimiter.ends_with(is_word);
        return (candidate.eq_ignore_ascii_case(delimiter) && before_ok && after_ok)
            .then_some(delimiter.len());
    }
    (candidate == delimiter && (delimiter != "/" || at_line_start(current)))
        .then_some(delimiter.len())
}

fn push(statements: &mut Vec<String>, current: &mut String) {
    let statement = current.trim();
    if !statement.is_empty() {
        statements.push(statement.to_string());
    }
    current.clear();
}

fn at_line_start(current: &str) -> bool {
    current.trim_end_matches([' ', '\t']).is_empty()
        || current.trim_end_matches([' ', '\t']).ends_with('\n')
}

/// The length of a quoted string or dollar-quoted body starting `text`, if one does.
fn quoted_length(text: &str) -> Option<usize> {
    let first = text.chars().next()?;
    if first == '\'' || first == '"' {
        let mut chars = text.char_indices().skip(1);
        while let Some((i, c)) = chars.next() {
            if c == first {
                // A doubled quote is an escaped quote.
                if text[i + 1..].starts_with(first) {
                    chars.next();
                    continue;
                }
                return Some(i + 1);
            }
        }
        return Some(text.len());
    }
    if first == '$' {
        let tag_end = text[1..].find(|c: char| !(c.is_alphanumeric() || c == '_'))? + 1;
        if !text[tag_end..].starts_with('$') {
            return None;
        }
        let tag = &text[..=tag_end];
        let body = &text[tag.len()..];
        return Some(
            body.find(tag)
                .map_or(text.len(), |end| tag.len() + end + tag.len()),
        );
    }
    None
}

/// Removes `-- …` line comments and `/* … */` block comments outside quoted text.
pub fn strip_comments(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut rest = sql;
    while let Some(c) = rest.chars().next() {
        if let Some(len) = quoted_length(rest) {
            out.push_str(&rest[..len]);
            rest = &rest[len..];
        } else if rest.starts_with("--") {
            rest = &rest[rest.find('\n').unwrap_or(rest.len())..];
        } else if rest.starts_with("/*") {
            rest = rest.find("*/").map_or("", |end| &rest[end + 2..]);
        } else {
            out.push(c);
            rest = &rest[c.len_utf8()..];
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn default_split(sql: &str) -> Vec<String> {
        split(sql, &SqlSettings::default())
    }

    #[test]
    fn splits_at_semicolons_and_go_lines() {
        assert_eq!(
            default_split("create table a (id int);\ninsert into a values (1);\ngo\nselect 1\n"),
            [
                "create table a (id int)",
                "insert into a values (1)",
                "select 1"
            ]
        );
    }

    #[test]
    fn quotes_and_dollar_bodies_are_never_split() {
        let function = "create function f() returns int as $$ select 1; $$ language sql;";
        assert_eq!(
            default_split(function),
            ["create function f() returns int as $$ select 1; $$ language sql"]
        );
        assert_eq!(
            default_split("insert into t values ('a;b', 'it''s;');"),
            ["insert into t values ('a;b', 'it''s;')"]
        );
        assert_eq!(
            default_split("do $body$ begin perform 1; end $body$;"),
            ["do $body$ begin perform 1; end $body$"]
        );
    }

    #[test]
    fn comments_are_stripped_unless_asked_to_keep_them() {
        assert_eq!(
            default_split("-- note; with a semicolon\nselect 1; /* a; b */ select 2;"),
            ["select 1", "select 2"]
        );
        let keep = SqlSettings {
            strip_comments: false,
            ..SqlSettings::default()
        };
        assert_eq!(split("-- note\nselect 1;", &keep), ["-- note\nselect 1"]);
    }

    #[test]
    fn end_delimiter_and_no_splitting() {
        let custom = SqlSettings {
            end_delimiter: Some("GO".into()),
            ..SqlSettings::default()
        };
        assert_eq!(
            split("select 1; select 2 GO select 3", &custom),
            ["select 1; select 2", "select 3"]
        );
        assert_eq!(
            split(
                "create table GOODS (id int)\ngo\ninsert into GOODS values (1)\n",
                &custom
            ),
            [
                "create table GOODS (id int)",
                "insert into GOODS values (1)"
            ],
            "a word delimiter is a whole word, in any case"
        );
        let whole = SqlSettings {
            split_statements: false,
            ..SqlSettings::default()
        };
        assert_eq!(
            split("select 1; select 2;", &whole),
            ["select 1; select 2;"]
        );
    }
}
