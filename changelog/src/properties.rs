//! `${name}` expansion. Liquibase expands at parse time, before checksums are computed, and
//! leaves an undefined `${name}` as written.

use std::collections::BTreeMap;

pub fn expand(text: &str, properties: &BTreeMap<String, String>) -> String {
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
                match properties.get(name) {
                    Some(value) => out.push_str(value),
                    None => out.push_str(&rest[start..start + 3 + end]),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_names_expand_and_unknown_ones_stay() {
        let props = BTreeMap::from([("schema".to_string(), "app".to_string())]);
        assert_eq!(
            expand("create table ${schema}.t (${missing} int) ${", &props),
            "create table app.t (${missing} int) ${"
        );
    }
}
