//! Liquibase checksums, versions 9 (the default since 4.22) and 8.
//!
//! A checksum is `N:<32 lowercase hex MD5>`. A changeset's checksum is the MD5 of each change's
//! checksum text followed by `:`, after line-ending and Unicode normalisation; only the changes
//! count (not id, author, attributes, preconditions, comments or rollback).

use std::borrow::Cow;
use std::fmt::{self, Write};

use md5::{Digest, Md5};
use unicode_normalization::UnicodeNormalization;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ChecksumVersion {
    V8,
    V9,
}

impl ChecksumVersion {
    fn number(self) -> u8 {
        match self {
            ChecksumVersion::V8 => 8,
            ChecksumVersion::V9 => 9,
        }
    }
}

/// A stored or computed checksum. Versions other than 8 and 9 are kept as read, so a stored
/// legacy value can be reported, but Lockstep computes only 8 and 9.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CheckSum {
    pub version: u8,
    /// The MD5 digest; stored and shown as 32 lowercase hex digits.
    pub digest: [u8; 16],
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a Liquibase checksum (expected N:<32 hex digits>)")]
pub struct InvalidCheckSum(pub String);

impl CheckSum {
    fn of(version: ChecksumVersion, bytes: &[u8]) -> Self {
        Self::finish(version, Md5::new_with_prefix(bytes))
    }

    fn finish(version: ChecksumVersion, md5: Md5) -> Self {
        CheckSum {
            version: version.number(),
            digest: md5.finalize().into(),
        }
    }

    /// Parses a stored value; one without a `N:` prefix is version 1, as in Liquibase.
    pub fn parse(text: &str) -> Result<CheckSum, InvalidCheckSum> {
        let (version, hex) = match text.split_once(':') {
            Some((v, h)) => (v.parse().map_err(|_| InvalidCheckSum(text.into()))?, h),
            None => (1, text),
        };
        let invalid = || InvalidCheckSum(text.into());
        if hex.len() != 32 {
            return Err(invalid());
        }
        let mut digest = [0u8; 16];
        for (byte, pair) in digest.iter_mut().zip(hex.as_bytes().chunks_exact(2)) {
            let digit = |c: u8| char::from(c).to_digit(16).ok_or_else(invalid);
            *byte = (digit(pair[0])? << 4 | digit(pair[1])?) as u8;
        }
        Ok(CheckSum { version, digest })
    }

    /// The version this checksum was computed with, if Lockstep can compute it too.
    pub fn computable_version(&self) -> Option<ChecksumVersion> {
        match self.version {
            8 => Some(ChecksumVersion::V8),
            9 => Some(ChecksumVersion::V9),
            _ => None,
        }
    }
}

impl fmt::Display for CheckSum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut hex = [0u8; 32];
        for (pair, byte) in hex.chunks_exact_mut(2).zip(self.digest) {
            pair[0] = DIGITS[usize::from(byte >> 4)];
            pair[1] = DIGITS[usize::from(byte & 0xf)];
        }
        write!(f, "{}:", self.version)?;
        f.write_str(std::str::from_utf8(&hex).expect("hex digits are ASCII"))
    }
}

/// Line endings to LF, U+FFFD removed, NFC — applied to every text Liquibase hashes.
/// ASCII without CR is already all three, and is most of what changelogs hold: it is borrowed.
fn normalize(text: &str) -> Cow<'_, str> {
    if text.is_ascii() && !text.contains('\r') {
        return Cow::Borrowed(text);
    }
    Cow::Owned(
        text.replace("\r\n", "\n")
            .replace('\r', "\n")
            .replace('\u{FFFD}', "")
            .nfc()
            .collect(),
    )
}

/// The checksum of a `sql` change or a formatted-SQL body.
///
/// V9 deletes every space, tab, CR and LF byte and hashes the rest. V8 prefixes
/// `endDelimiter:splitStatements:stripComments:` and collapses whitespace runs to one space.
pub fn sql(version: ChecksumVersion, text: &str, settings: &SqlSettings) -> CheckSum {
    match version {
        ChecksumVersion::V9 => {
            let mut md5 = Md5::new();
            for piece in normalize(text).split([' ', '\t', '\r', '\n']) {
                md5.update(piece.as_bytes());
            }
            CheckSum::finish(version, md5)
        }
        ChecksumVersion::V8 => {
            let collapsed = normalize(text)
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ");
            let header = format!(
                "{}:{}:{}:",
                settings.end_delimiter.as_deref().unwrap_or("null"),
                settings.split_statements,
                settings.strip_comments
            );
            CheckSum::of(version, format!("{header}{collapsed}").as_bytes())
        }
    }
}

/// What V8 puts in the header of a SQL checksum.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqlSettings {
    pub end_delimiter: Option<String>,
    pub split_statements: bool,
    pub strip_comments: bool,
}

impl Default for SqlSettings {
    fn default() -> Self {
        SqlSettings {
            end_delimiter: None,
            split_statements: true,
            strip_comments: true,
        }
    }
}

/// A Mongo change's checksum: its string fields concatenated (a missing one as `null`), with
/// every space, tab, CR and LF removed. V8 hashes the same text unstripped.
pub fn mongo(version: ChecksumVersion, fields: &[Option<&str>]) -> CheckSum {
    let joined: String = fields.iter().map(|f| f.unwrap_or("null")).collect();
    match version {
        ChecksumVersion::V9 => sql(version, &joined, &SqlSettings::default()),
        ChecksumVersion::V8 => CheckSum::of(version, normalize(&joined).as_bytes()),
    }
}

/// A node of Liquibase's `StringChangeLogSerializer` text, which structured changes hash.
#[derive(Debug, Clone, PartialEq)]
pub enum Serialized {
    /// Written `field="value"`.
    Scalar(String),
    /// Written `field=[` … `]`, elements separated by `,\n`.
    List(Vec<Serialized>),
    /// A nested object: its fields, each written on its own line(s), sorted as whole lines.
    /// Inside a list (or as a nested field) it is written without a field name.
    Object(Vec<(String, Serialized)>),
}

/// The checksum of a structured change (`createTable`, `addColumn`, …): the MD5 of its
/// serializer text, `name:[` then its fields sorted as whole lines, indented four spaces a level.
pub fn structured(
    version: ChecksumVersion,
    change_name: &str,
    fields: &[(String, Serialized)],
) -> CheckSum {
    let text = format!("{change_name}:[\n{}\n]", object_body(fields, 1));
    CheckSum::of(version, normalize(&text).as_bytes())
}

fn object_body(fields: &[(String, Serialized)], depth: usize) -> String {
    let mut lines: Vec<String> = fields
        .iter()
        .map(|(name, value)| field(name, value, depth))
        .collect();
    lines.sort();
    lines.join("\n")
}

fn field(name: &str, value: &Serialized, depth: usize) -> String {
    let indent = "    ".repeat(depth);
    match value {
        Serialized::Scalar(text) => format!("{indent}{name}=\"{text}\""),
        Serialized::List(items) => format!(
            "{indent}{name}=[\n{}\n{indent}]",
            list_body(items, depth + 1)
        ),
        Serialized::Object(fields) => {
            format!("{indent}[\n{}\n{indent}]", object_body(fields, depth + 1))
        }
    }
}

fn list_body(items: &[Serialized], depth: usize) -> String {
    let indent = "    ".repeat(depth);
    items
        .iter()
        .map(|item| match item {
            Serialized::Scalar(text) => format!("{indent}\"{text}\""),
            Serialized::List(inner) => {
                format!("{indent}[\n{}\n{indent}]", list_body(inner, depth + 1))
            }
            Serialized::Object(fields) => {
                format!("{indent}[\n{}\n{indent}]", object_body(fields, depth + 1))
            }
        })
        .collect::<Vec<_>>()
        .join(",\n")
}

/// The checksum of a text, normalised like every text Liquibase hashes.
pub fn text(version: ChecksumVersion, text: &str) -> CheckSum {
    CheckSum::of(version, normalize(text).as_bytes())
}

/// A changeset's checksum from its changes' checksums (all of one version). With no changes it
/// is the MD5 of nothing: `9:d41d8cd98f00b204e9800998ecf8427e`.
pub fn changeset(version: ChecksumVersion, changes: &[CheckSum]) -> CheckSum {
    let mut text = String::with_capacity(changes.len() * 36);
    for change in changes {
        // Writing to a String cannot fail.
        let _ = write!(text, "{change}:");
    }
    CheckSum::of(version, normalize(&text).as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ChecksumVersion::{V8, V9};

    fn sql9(text: &str) -> CheckSum {
        sql(V9, text, &SqlSettings::default())
    }

    /// Golden vectors from liquibase-changelogs.md §4, verified against Liquibase 4.28.0.
    #[test]
    fn formatted_sql_changesets_match_liquibase() {
        let create = changeset(
            V9,
            &[sql9("create table t1 (id int primary key, name text);")],
        );
        assert_eq!(create.to_string(), "9:71e9465eb9023b52374c5c6ee43c39e0");
        let alter = "alter table t1 add column x int;";
        assert_eq!(
            changeset(V9, &[sql9(alter)]).to_string(),
            "9:661738456b595edcd9f303ca0bc59b50"
        );
        let alter8 = sql(V8, alter, &SqlSettings::default());
        assert_eq!(
            changeset(V8, &[alter8]).to_string(),
            "8:ef379d7efb5971401937506695f21c22"
        );
    }

    #[test]
    fn a_yaml_sql_change_matches_liquibase() {
        let change = sql9("insert into person(id,name) values (1,'x')");
        assert_eq!(change.to_string(), "9:83f87cfeae8d7cc52041e917e9c76d48");
        assert_eq!(
            changeset(V9, &[change]).to_string(),
            "9:14a5dbbef2f55fbd6efeaa8be6c6b53d"
        );
    }

    #[test]
    fn a_create_table_change_matches_liquibase() {
        let scalar = |s: &str| Serialized::Scalar(s.to_string());
        let column = |name: &str, ty: &str, constraints: Option<Vec<(String, Serialized)>>| {
            let mut fields = vec![
                ("name".to_string(), scalar(name)),
                ("type".to_string(), scalar(ty)),
            ];
            if let Some(c) = constraints {
                fields.push(("constraints".to_string(), Serialized::Object(c)));
            }
            Serialized::Object(fields)
        };
        let id = column(
            "id",
            "int",
            Some(vec![
                ("primaryKey".into(), scalar("true")),
                ("nullable".into(), scalar("false")),
            ]),
        );
        let name = column("name", "varchar(50)", None);
        let fields = vec![
            ("tableName".to_string(), scalar("person")),
            ("columns".to_string(), Serialized::List(vec![id, name])),
        ];
        let change = structured(V9, "createTable", &fields);
        assert_eq!(change.to_string(), "9:857e96ee29abba5e0630248942cd5a47");
        assert_eq!(
            changeset(V9, &[change]).to_string(),
            "9:3d828f93c7594c31e5da979cbc268032"
        );
    }

    #[test]
    fn mongo_insert_one_matches_liquibase_mongodb() {
        let results = mongo(
            V9,
            &[
                Some("results"),
                Some("{ info: \"notExistsAnyDocumentInCollection1\" }"),
                None,
            ],
        );
        assert_eq!(
            changeset(V9, &[results]).to_string(),
            "9:af9b299cda217428f9d082b71472c7c2"
        );
        let one = mongo(V9, &[Some("collection1"), Some("{ id: 1 }"), None]);
        assert_eq!(
            changeset(V9, &[one]).to_string(),
            "9:dea86a555a8faa2df648fc3d5b0a26ab"
        );
    }

    #[test]
    fn an_empty_changeset_is_the_md5_of_nothing() {
        assert_eq!(
            changeset(V9, &[]).to_string(),
            "9:d41d8cd98f00b204e9800998ecf8427e"
        );
    }

    #[test]
    fn whitespace_and_line_endings_do_not_change_a_v9_sql_checksum_but_comments_do() {
        let base = sql9("create table t (id int);");
        assert_eq!(sql9("create table t (\r\n  id int\r\n);"), base);
        assert_ne!(sql9("-- note\ncreate table t (id int);"), base);
        assert_ne!(sql9("CREATE table t (id int);"), base);
    }

    #[test]
    fn text_is_hashed_in_nfc_with_lf_line_endings_and_without_replacement_characters() {
        let composed = sql9("insert into t values ('caf\u{e9}');");
        assert_eq!(sql9("insert into t values ('cafe\u{301}');"), composed);
        assert_eq!(
            sql9("insert into t values ('caf\u{e9}\u{FFFD}');"),
            composed
        );
        let v8 = |text: &str| sql(V8, text, &SqlSettings::default());
        assert_eq!(v8("select 1;\r\nselect 2;"), v8("select 1;\nselect 2;"));
        assert_eq!(text(V9, "a\r\nb\rc"), text(V9, "a\nb\nc"));
    }

    #[test]
    fn stored_values_parse_with_their_version() {
        assert_eq!(
            CheckSum::parse("9:71E9465EB9023B52374C5C6EE43C39E0")
                .unwrap()
                .to_string(),
            "9:71e9465eb9023b52374c5c6ee43c39e0"
        );
        assert_eq!(
            CheckSum::parse("71e9465eb9023b52374c5c6ee43c39e0")
                .unwrap()
                .version,
            1
        );
        assert_eq!(
            CheckSum::parse("8:ef379d7efb5971401937506695f21c22")
                .unwrap()
                .computable_version(),
            Some(V8)
        );
        assert!(CheckSum::parse("9:xyz").is_err());
    }
}
