//! Reading a root changelog, and everything it includes, from the directory its FILENAMEs are
//! relative to.

use std::collections::BTreeMap;
use std::path::Path;

use foldhash::HashSet;

use crate::formatted_sql;
use crate::model::{Change, ChangeSet, Changelog, ChangelogError, Preconditions, Rollback};
use crate::properties::{Registry, Scope};
use crate::xml_changelog;
use crate::yaml_changelog::{self, Entry, IncludeScope};

/// Reads and parses `changelog` (a path relative to `root`, which becomes FILENAME) and its
/// includes, expanding `${}` with the `given` properties and those the files define for `scope`
/// (see [`crate::properties`]). Every problem names the file and line.
pub fn load(
    root: &Path,
    changelog: &str,
    given: &BTreeMap<String, String>,
    scope: &Scope,
) -> Result<Changelog, Vec<ChangelogError>> {
    let mut loader = Loader {
        root,
        properties: Registry::new(given, scope),
        changesets: vec![],
        preconditions: vec![],
        scopes: vec![],
        errors: vec![],
        chain: vec![],
    };
    loader.file(&normalize(changelog), changelog, 0, true);
    loader.changesets.shrink_to_fit();
    let mut seen = HashSet::default();
    for changeset in &loader.changesets {
        if !seen.insert((
            changeset.file.as_str(),
            changeset.id.as_str(),
            changeset.author.as_str(),
        )) {
            loader.errors.push(ChangelogError {
                file: changeset.file.clone(),
                line: changeset.line,
                message: format!("duplicate identifiers: changeset {} appears twice (is the file included twice?)", changeset.identifier()),
                help: Some("give each changeset its own id, and include each file once".into()),
            });
        }
    }
    if loader.errors.is_empty() {
        Ok(Changelog {
            path: changelog.to_string(),
            changesets: loader.changesets,
            preconditions: loader.preconditions,
        })
    } else {
        Err(loader.errors)
    }
}

struct Loader<'a> {
    root: &'a Path,
    properties: Registry,
    changesets: Vec<ChangeSet>,
    preconditions: Vec<(String, Preconditions)>,
    /// The scopes of the includes being read, outermost first.
    scopes: Vec<IncludeScope>,
    errors: Vec<ChangelogError>,
    /// The include chain, to refuse a file that includes itself.
    chain: Vec<String>,
}

const EXTENSIONS: &[&str] = &[".sql", ".yaml", ".yml", ".json", ".xml"];

impl Loader<'_> {
    fn problem(&mut self, file: &str, line: usize, message: String, help: &str) {
        self.errors.push(ChangelogError {
            file: file.to_string(),
            line,
            message,
            help: Some(help.to_string()),
        });
    }

    /// Loads `path` (normalised, relative to the root); `from`/`line` say who asked, for errors.
    /// A file that is not there is skipped unless `required`.
    fn file(&mut self, path: &str, from: &str, line: usize, required: bool) {
        if self.chain.iter().any(|p| p == path) {
            self.problem(
                from,
                line,
                format!(
                    "{path} includes itself (through {})",
                    self.chain.join(" → ")
                ),
                "remove the circular include",
            );
            return;
        }
        let bytes = match read_beneath(self.root, path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => return,
            Err(e) => return self.problem(from, line.max(1), format!("cannot read {path}: {e}"), "check the path; includes are relative to the schema's root unless relativeToChangelogFile: true"),
        };
        let source = match String::from_utf8(bytes) {
            Ok(source) => source,
            Err(e) => {
                let valid = &e.as_bytes()[..e.utf8_error().valid_up_to()];
                let line = valid.iter().filter(|b| **b == b'\n').count() + 1;
                let column =
                    valid.len() - valid.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1) + 1;
                return self.problem(
                    path,
                    line,
                    format!("this line is not valid UTF-8 (at byte {column} of the line)"),
                    "save the changelog as UTF-8",
                );
            }
        };
        self.chain.push(path.to_string());
        let mut properties = self.properties.for_file();
        if path.ends_with(".sql") {
            let parsed = formatted_sql::parse(path, &source, &mut properties);
            self.properties.absorb(properties);
            match parsed {
                Ok(changelog) => {
                    let mut changesets = changelog.changesets;
                    for changeset in &mut changesets {
                        self.prepare(changeset);
                    }
                    // The root file's changesets are taken as they are: no second copy of
                    // 100,000 of them while they move.
                    if self.changesets.is_empty() {
                        self.changesets = changesets;
                    } else {
                        self.changesets.append(&mut changesets);
                    }
                }
                Err(errors) => self.errors.extend(errors),
            }
        } else if EXTENSIONS.iter().any(|e| path.ends_with(e)) {
            let parsed = if path.ends_with(".xml") {
                xml_changelog::parse(path, &source, &mut properties)
            } else {
                yaml_changelog::parse(path, &source, &mut properties)
            };
            // What this file defines globally is visible in the files it includes, and after.
            self.properties.absorb(properties);
            match parsed {
                Ok(entries) => self.entries(path, entries),
                Err(errors) => self.errors.extend(errors),
            }
        } else {
            self.problem(
                from,
                line.max(1),
                format!("{path} is not a changelog Lockstep reads"),
                "use .sql (formatted SQL), .yaml, .yml, .json or .xml",
            );
        }
        self.chain.pop();
    }

    fn entries(&mut self, path: &str, entries: Vec<Entry>) {
        let resolve = |target: &str, relative: bool| resolve(path, target, relative);
        for entry in entries {
            match entry {
                Entry::Preconditions(preconditions) => {
                    self.preconditions.push((path.to_string(), preconditions))
                }
                Entry::ChangeSet(mut changeset) => {
                    self.prepare(&mut changeset);
                    self.changesets.push(*changeset);
                }
                Entry::Include {
                    file,
                    relative,
                    error_if_missing,
                    scope,
                    line,
                } => {
                    self.scopes.push(scope);
                    self.file(&resolve(&file, relative), path, line, error_if_missing);
                    self.scopes.pop();
                }
                Entry::IncludeAll {
                    path: target,
                    relative,
                    error_if_missing,
                    scope,
                    line,
                } => {
                    self.scopes.push(scope);
                    let base = resolve(&target, relative);
                    let mut found = vec![];
                    collect(self.root, base.trim_end_matches('/'), &mut found);
                    if found.is_empty() && error_if_missing {
                        self.problem(path, line, format!("includeAll found no changelogs in {base}"), "check `path` (relative to the schema's root unless relativeToChangelogFile: true)");
                    }
                    found.sort();
                    for file in found {
                        self.file(&file, path, line, true);
                    }
                    self.scopes.pop();
                }
            }
        }
    }
}

impl Loader<'_> {
    /// Readies a changeset read from a file: what its includes scope it to, and its SQL files.
    fn prepare(&mut self, changeset: &mut ChangeSet) {
        for scope in &self.scopes {
            changeset.inherited_contexts.extend(scope.context.clone());
            changeset.inherited_labels.extend(scope.labels.clone());
        }
        self.read_files(changeset);
        // Parsers push changes one by one; a changelog of 100,000 changesets keeps the slack.
        changeset.changes.shrink_to_fit();
        if let Rollback::Changes(changes) = &mut changeset.rollback {
            changes.shrink_to_fit();
        }
    }

    /// Reads the files of the changeset's `sqlFile`, `loadData` and `loadUpdateData` changes. A
    /// file that cannot be read refuses the changeset if it runs: Liquibase reads such files only
    /// for the changesets it runs.
    fn read_files(&mut self, changeset: &mut ChangeSet) {
        let mut problems = vec![];
        for change in &mut changeset.changes {
            let (path, outcome) = match change {
                Change::LoadData(load) => {
                    let outcome = read_text(self.root, &load.resolved);
                    if let Ok(Err(message)) = outcome.as_ref().map(|text| load.read(text)) {
                        problems.push(format!("{}:{}: {message}", changeset.file, changeset.line));
                        continue;
                    }
                    (load.resolved.clone(), outcome.map(drop))
                }
                Change::SqlFile(file) => {
                    let outcome = read_text(self.root, &file.resolved).map(|text| {
                        let properties = self.properties.for_file();
                        file.sql.sql = properties.expand(&text);
                        file.text = text;
                        let undefined = properties.take_undefined();
                        if !undefined.is_empty() {
                            problems.push(crate::properties::undefined_message(
                                &file.resolved,
                                1,
                                &undefined,
                            ));
                        }
                    });
                    (file.resolved.clone(), outcome)
                }
                _ => continue,
            };
            if let Err(message) = outcome {
                problems.push(format!("{}:{}: {} cannot be read: {message}\n  help: a file a change names is relative to the schema's root unless relativeToChangelogFile: true", changeset.file, changeset.line, path));
            }
        }
        changeset.unsupported.extend(problems);
    }
}

/// Reads `path` under `root`, refusing one that a symbolic link leads out of `root`: a schema
/// checked out from a repository is hostile. (In a DB step the preopened directory already
/// confines every path, and WASI has no canonical paths to compare.)
fn read_beneath(root: &Path, path: &str) -> std::io::Result<Vec<u8>> {
    let full = root.join(path);
    #[cfg(not(target_os = "wasi"))]
    if !full.canonicalize()?.starts_with(root.canonicalize()?) {
        return Err(std::io::Error::new(
            std::io::ErrorKind::PermissionDenied,
            "a symbolic link leads it outside the schema's root",
        ));
    }
    std::fs::read(full)
}

/// A file under `root`, as UTF-8 text.
fn read_text(root: &Path, path: &str) -> Result<String, String> {
    let bytes = read_beneath(root, path).map_err(|e| e.to_string())?;
    String::from_utf8(bytes).map_err(|_| "it is not UTF-8".to_string())
}

/// Changelog files under `dir` (relative to `root`), recursively.
fn collect(root: &Path, dir: &str, out: &mut Vec<String>) {
    let Ok(read) = std::fs::read_dir(root.join(dir)) else {
        return;
    };
    for entry in read.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let relative = if dir.is_empty() {
            name.clone()
        } else {
            format!("{dir}/{name}")
        };
        match entry.file_type() {
            Ok(t) if t.is_dir() => collect(root, &relative, out),
            Ok(_) if EXTENSIONS.iter().any(|e| name.ends_with(e)) => out.push(relative),
            _ => {}
        }
    }
}

/// A path a changelog `from` names (an include, a sqlFile, a CSV), relative to the schema's
/// root: relative to `from`'s directory when `relative_to_changelog` (relativeToChangelogFile).
pub(crate) fn resolve(from: &str, target: &str, relative_to_changelog: bool) -> String {
    match from.rsplit_once('/') {
        Some((dir, _)) if relative_to_changelog => normalize(&format!("{dir}/{target}")),
        _ => normalize(target),
    }
}

/// Liquibase's FILENAME normalisation: `\` → `/`, no leading `/` or `./`, `.` and `..` collapsed.
pub fn normalize(path: &str) -> String {
    let slashed = path.replace('\\', "/");
    let mut parts: Vec<&str> = vec![];
    for part in slashed.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            other => parts.push(other),
        }
    }
    parts.join("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, files: &[(&str, &str)]) {
        for (path, content) in files {
            let path = dir.join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, content).unwrap();
        }
    }

    fn cs(id: &str) -> String {
        format!(
            "  - changeSet:\n      id: {id}\n      author: a\n      changes: [{{empty: {{}}}}]\n"
        )
    }

    #[test]
    fn includes_resolve_and_filenames_stay_relative_to_the_root() {
        let dir = std::env::temp_dir().join(format!("lockstep-load-{}", std::process::id()));
        write(
            &dir,
            &[
                (
                    "db/master.yaml",
                    &format!(
                        "databaseChangeLog:\n{}  - include: {{file: parts/one.yaml, relativeToChangelogFile: true}}\n  - include: {{file: db/two.sql}}\n  - includeAll: {{path: all/, relativeToChangelogFile: true}}\n",
                        cs("m")
                    ),
                ),
                (
                    "db/parts/one.yaml",
                    &format!("databaseChangeLog:\n{}", cs("one")),
                ),
                (
                    "db/two.sql",
                    "--liquibase formatted sql\n--changeset a:two\nselect 2;\n",
                ),
                ("db/all/b.yaml", &format!("databaseChangeLog:\n{}", cs("b"))),
                (
                    "db/all/a/x.json",
                    r#"{"databaseChangeLog": [{"changeSet": {"id": "x", "author": "a", "changes": []}}]}"#,
                ),
                ("db/all/readme.txt", "not a changelog"),
            ],
        );
        let log = load(
            &dir,
            "./db/master.yaml",
            &BTreeMap::new(),
            &Scope::default(),
        )
        .unwrap_or_else(|e| panic!("{e:?}"));
        let names: Vec<String> = log.changesets.iter().map(ChangeSet::identifier).collect();
        assert_eq!(
            names,
            [
                "db/master.yaml::m::a",
                "db/parts/one.yaml::one::a",
                "db/two.sql::two::a",
                "db/all/a/x.json::x::a",
                "db/all/b.yaml::b::a"
            ]
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn circular_and_duplicate_includes_are_errors() {
        let dir =
            std::env::temp_dir().join(format!("lockstep-load-circular-{}", std::process::id()));
        write(
            &dir,
            &[
                (
                    "a.yaml",
                    "databaseChangeLog:\n  - include: {file: b.yaml}\n",
                ),
                (
                    "b.yaml",
                    "databaseChangeLog:\n  - include: {file: a.yaml}\n",
                ),
                (
                    "twice.yaml",
                    "databaseChangeLog:\n  - include: {file: one.yaml}\n  - include: {file: one.yaml}\n",
                ),
                ("one.yaml", &format!("databaseChangeLog:\n{}", cs("1"))),
            ],
        );
        let errors = load(&dir, "a.yaml", &BTreeMap::new(), &Scope::default()).unwrap_err();
        assert!(
            errors[0]
                .message
                .contains("a.yaml includes itself (through a.yaml → b.yaml)"),
            "{errors:?}"
        );
        let errors = load(&dir, "twice.yaml", &BTreeMap::new(), &Scope::default()).unwrap_err();
        assert!(
            errors[0]
                .message
                .contains("duplicate identifiers: changeset one.yaml::1::a appears twice"),
            "{errors:?}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_file_that_is_not_utf8_is_refused_at_the_line_that_is_not() {
        let dir = std::env::temp_dir().join(format!("lockstep-load-utf8-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("c.sql"),
            b"--liquibase formatted sql\n--changeset a:1\nselect 'caf\xe9';\n",
        )
        .unwrap();
        let errors = load(&dir, "c.sql", &BTreeMap::new(), &Scope::default()).unwrap_err();
        assert_eq!((errors[0].file.as_str(), errors[0].line), ("c.sql", 3));
        assert!(
            errors[0].message.contains("not valid UTF-8 (at byte 12"),
            "{errors:?}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn paths_normalise_like_liquibase() {
        assert_eq!(normalize("./db/../db/changelog.yaml"), "db/changelog.yaml");
        assert_eq!(normalize("/abs\\win/x.sql"), "abs/win/x.sql");
    }
}
