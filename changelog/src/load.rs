//! Reading a root changelog from the directory its FILENAMEs are relative to.

use std::collections::BTreeMap;
use std::path::Path;

use crate::formatted_sql;
use crate::model::{Changelog, ChangelogError};

/// Reads and parses `changelog` (a path relative to `root`, which becomes FILENAME), expanding
/// `${}` with `properties`. Every problem names the file and line.
pub fn load(root: &Path, changelog: &str, properties: &BTreeMap<String, String>) -> Result<Changelog, Vec<ChangelogError>> {
    let problem = |message: String, help: &str| vec![ChangelogError { file: changelog.to_string(), line: 1, message, help: Some(help.to_string()) }];
    if !changelog.ends_with(".sql") {
        return Err(problem(format!("{changelog} is not a formatted SQL changelog"), "Lockstep reads formatted SQL changelogs (.sql) so far; YAML, JSON and XML are coming"));
    }
    let source = std::fs::read_to_string(root.join(changelog)).map_err(|e| problem(format!("cannot read the changelog: {e}"), "check `changelog` and `root` of the schema in lockstep.yaml"))?;
    formatted_sql::parse(changelog, &source, properties)
}
