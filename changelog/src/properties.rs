//! Changelog properties and `${name}` expansion, as Liquibase 4.28 keeps them: given properties
//! (the instance's) first, then `property` definitions in the order files are read. A name keeps
//! its first value; a definition counts only when its `context`, `labels` and `dbms` admit the
//! run; a global definition (the default) is visible in every file read after it, a
//! `global: false` one only in its own file. Expansion happens at parse time, before checksums.
//!
//! Liquibase leaves an undefined `${name}` as written, and the database then fails on it after
//! earlier changesets committed. Lockstep records every undefined name so that the changeset using
//! it is refused before the first write.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};

use crate::filters;

/// What a run is for: it decides which scoped `property` definitions count.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scope {
    pub contexts: Vec<String>,
    pub label_filter: Option<String>,
    /// The database's `dbms` name (`postgresql`, `sqlite`, `mongodb`).
    pub dbms: String,
}

/// One `property` element.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Definition {
    pub name: String,
    pub value: String,
    pub context: Option<String>,
    pub labels: Option<String>,
    pub dbms: Option<String>,
    pub global: bool,
}

impl Definition {
    /// Liquibase's ChangeLogParameter.isValid: each filter applies only when both sides have one.
    fn admits(&self, scope: &Scope) -> bool {
        filters::context_matches(self.context.as_deref(), &scope.contexts)
            && filters::labels_match(scope.label_filter.as_deref(), self.labels.as_deref())
            && filters::dbms_matches(self.dbms.as_deref(), &scope.dbms)
    }
}

/// The global properties of a load, as they grow file by file.
#[derive(Debug, Clone)]
pub struct Registry {
    scope: Scope,
    globals: BTreeMap<String, String>,
}

impl Registry {
    pub fn new(given: &BTreeMap<String, String>, scope: &Scope) -> Self {
        Registry {
            scope: scope.clone(),
            globals: given.clone(),
        }
    }

    /// The properties a file starts with: every global one defined so far.
    pub fn for_file(&self) -> FileProperties {
        FileProperties {
            scope: self.scope.clone(),
            values: self.globals.clone(),
            new_globals: vec![],
            undefined: RefCell::default(),
        }
    }

    /// Takes in the global definitions `file` made, for the files read after it.
    pub fn absorb(&mut self, file: FileProperties) {
        for (name, value) in file.new_globals {
            self.globals.entry(name).or_insert(value);
        }
    }
}

/// The properties visible while one file is read, and the undefined names it used.
#[derive(Debug)]
pub struct FileProperties {
    scope: Scope,
    values: BTreeMap<String, String>,
    new_globals: Vec<(String, String)>,
    undefined: RefCell<BTreeSet<String>>,
}

impl FileProperties {
    /// Properties with nothing but `values`, for reading a file outside a load.
    pub fn only(values: &BTreeMap<String, String>) -> Self {
        Registry::new(values, &Scope::default()).for_file()
    }

    /// Keeps `definition` if it admits the run and its name has no value yet.
    pub fn define(&mut self, definition: Definition) {
        if !definition.admits(&self.scope) || self.values.contains_key(&definition.name) {
            return;
        }
        if definition.global {
            self.new_globals
                .push((definition.name.clone(), definition.value.clone()));
        }
        self.values.insert(definition.name, definition.value);
    }

    /// `text` with every defined `${name}` replaced; undefined ones stay and are remembered.
    pub fn expand(&self, text: &str) -> String {
        if !text.contains("${") {
            return text.to_string();
        }
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            match after.find('}') {
                Some(end) => {
                    let name = &after[..end];
                    match self.values.get(name) {
                        Some(value) => out.push_str(value),
                        None => {
                            self.undefined.borrow_mut().insert(name.to_string());
                            out.push_str(&rest[start..start + 3 + end]);
                        }
                    }
                    rest = &after[end + 1..];
                }
                None => {
                    out.push_str(&rest[start..]);
                    rest = "";
                }
            }
        }
        out.push_str(rest);
        out
    }

    /// The undefined names used since the last call, sorted.
    pub fn take_undefined(&self) -> Vec<String> {
        std::mem::take(&mut *self.undefined.borrow_mut())
            .into_iter()
            .collect()
    }
}

/// The refusal for a changeset that uses undefined properties.
pub fn undefined_message(file: &str, line: usize, names: &[String]) -> String {
    let list: Vec<String> = names.iter().map(|n| format!("${{{n}}}")).collect();
    format!(
        "{file}:{line}: this changeset uses {} but no property of that name is defined for this run\n  help: define it with `property` in this changelog or one that includes it (before the include), or under the instance's `substituteProperties` in lockstep.yaml; a property with `context`, `labels` or `dbms` counts only when they match the run",
        list.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn definition(name: &str, value: &str) -> Definition {
        Definition {
            name: name.into(),
            value: value.into(),
            context: None,
            labels: None,
            dbms: None,
            global: true,
        }
    }

    #[test]
    fn known_names_expand_and_unknown_ones_stay_and_are_remembered() {
        let props = FileProperties::only(&BTreeMap::from([("schema".into(), "app".into())]));
        assert_eq!(
            props.expand("create table ${schema}.t (${missing} int) ${"),
            "create table app.t (${missing} int) ${"
        );
        assert_eq!(props.take_undefined(), ["missing"]);
        assert!(props.take_undefined().is_empty());
    }

    #[test]
    fn given_values_and_first_definitions_win_and_scoped_ones_count_only_in_scope() {
        let scope = Scope {
            contexts: vec!["prod".into()],
            label_filter: None,
            dbms: "postgresql".into(),
        };
        let mut registry = Registry::new(&BTreeMap::from([("a".into(), "given".into())]), &scope);
        let mut file = registry.for_file();
        file.define(definition("a", "defined"));
        file.define(Definition {
            context: Some("test".into()),
            ..definition("b", "for test")
        });
        file.define(Definition {
            dbms: Some("sqlite".into()),
            ..definition("b", "for sqlite")
        });
        file.define(Definition {
            context: Some("prod".into()),
            ..definition("b", "for prod")
        });
        file.define(definition("b", "later"));
        file.define(Definition {
            global: false,
            ..definition("local", "here only")
        });
        assert_eq!(
            file.expand("${a} ${b} ${local}"),
            "given for prod here only"
        );
        registry.absorb(file);
        let next = registry.for_file();
        assert_eq!(next.expand("${b} ${local}"), "for prod ${local}");
    }
}
