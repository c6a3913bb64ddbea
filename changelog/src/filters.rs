//! Context and label expressions (`prod and !test`, `a, b`, `(x or y) and not z`), matched the way
//! Liquibase's ExpressionMatcher does: case-insensitive; `,` means `or`.

/// Whether a changeset's `context` expression admits the run's contexts. With no runtime
/// contexts every changeset matches, except one whose expression names an `@`-prefixed context.
pub fn context_matches(expression: Option<&str>, runtime: &[String]) -> bool {
    let Some(expression) = expression.map(str::trim).filter(|e| !e.is_empty()) else {
        return true;
    };
    if runtime.is_empty() {
        return !expression.contains('@');
    }
    let runtime: Vec<String> = runtime
        .iter()
        .map(|c| c.trim().trim_start_matches('@').to_lowercase())
        .collect();
    evaluate(expression, &|token| {
        runtime
            .iter()
            .any(|r| r == &token.trim_start_matches('@').to_lowercase())
    })
}

/// Whether a run's label filter admits a changeset's labels. No filter admits everything, and
/// (as in Liquibase) a changeset without labels runs whatever the filter.
pub fn labels_match(filter: Option<&str>, labels: Option<&str>) -> bool {
    let Some(filter) = filter.map(str::trim).filter(|f| !f.is_empty()) else {
        return true;
    };
    let labels: Vec<String> = labels
        .unwrap_or_default()
        .split(',')
        .map(|l| l.trim().to_lowercase())
        .filter(|l| !l.is_empty())
        .collect();
    if labels.is_empty() {
        return true;
    }
    evaluate(filter, &|token| labels.contains(&token.to_lowercase()))
}

/// Whether a `dbms` attribute (`postgresql`, `!h2`, `postgresql, sqlite`) admits `dbms`.
pub fn dbms_matches(attribute: Option<&str>, dbms: &str) -> bool {
    let Some(attribute) = attribute
        .map(str::trim)
        .filter(|a| !a.is_empty() && *a != "all")
    else {
        return true;
    };
    let entries: Vec<&str> = attribute.split(',').map(str::trim).collect();
    if entries.iter().any(|e| {
        e.strip_prefix('!')
            .is_some_and(|n| n.eq_ignore_ascii_case(dbms))
    }) {
        return false;
    }
    let positive: Vec<&&str> = entries.iter().filter(|e| !e.starts_with('!')).collect();
    positive.is_empty()
        || positive
            .iter()
            .any(|e| e.eq_ignore_ascii_case(dbms) || e.eq_ignore_ascii_case("all"))
}

/// Evaluates `and`/`or`/`,`/`!`/`not`/parentheses over tokens, asking `holds` for each token.
fn evaluate(expression: &str, holds: &dyn Fn(&str) -> bool) -> bool {
    let tokens = tokenize(expression);
    let mut parser = Parser {
        tokens: &tokens,
        at: 0,
        holds,
    };
    parser.or()
}

fn tokenize(text: &str) -> Vec<String> {
    let mut tokens = vec![];
    let mut word = String::new();
    for c in text.chars() {
        match c {
            '(' | ')' | ',' | '!' => {
                if !word.is_empty() {
                    tokens.push(std::mem::take(&mut word));
                }
                tokens.push(c.to_string());
            }
            c if c.is_whitespace() => {
                if !word.is_empty() {
                    tokens.push(std::mem::take(&mut word));
                }
            }
            c => word.push(c),
        }
    }
    if !word.is_empty() {
        tokens.push(word);
    }
    tokens
}

struct Parser<'t> {
    tokens: &'t [String],
    at: usize,
    holds: &'t dyn Fn(&str) -> bool,
}

impl Parser<'_> {
    fn peek(&self) -> Option<String> {
        self.tokens.get(self.at).map(|t| t.to_lowercase())
    }

    fn or(&mut self) -> bool {
        let mut value = self.and();
        while matches!(self.peek().as_deref(), Some("or" | ",")) {
            self.at += 1;
            value |= self.and();
        }
        value
    }

    fn and(&mut self) -> bool {
        let mut value = self.not();
        while self.peek().as_deref() == Some("and") {
            self.at += 1;
            value &= self.not();
        }
        value
    }

    fn not(&mut self) -> bool {
        if matches!(self.peek().as_deref(), Some("!" | "not")) {
            self.at += 1;
            return !self.not();
        }
        self.atom()
    }

    fn atom(&mut self) -> bool {
        let Some(token) = self.tokens.get(self.at) else {
            return true;
        };
        self.at += 1;
        if token == "(" {
            let value = self.or();
            if self.peek().as_deref() == Some(")") {
                self.at += 1;
            }
            return value;
        }
        (self.holds)(token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn contexts_follow_liquibase() {
        assert!(context_matches(None, &ctx(&["prod"])));
        assert!(
            context_matches(Some("prod"), &[]),
            "no runtime contexts: everything runs"
        );
        assert!(
            !context_matches(Some("@prod"), &[]),
            "except @-prefixed ones"
        );
        assert!(context_matches(Some("prod and !test"), &ctx(&["PROD"])));
        assert!(!context_matches(
            Some("prod and !test"),
            &ctx(&["prod", "test"])
        ));
        assert!(context_matches(Some("dev, test"), &ctx(&["test"])));
        assert!(context_matches(
            Some("(dev or test) and not eu"),
            &ctx(&["dev"])
        ));
        assert!(!context_matches(Some("qa"), &ctx(&["prod"])));
    }

    #[test]
    fn labels_are_filtered_by_the_run() {
        assert!(labels_match(None, Some("a")));
        assert!(labels_match(Some("a or b"), Some("b,c")));
        assert!(!labels_match(Some("a and b"), Some("b,c")));
        assert!(
            labels_match(Some("a"), None),
            "a changeset without labels always runs"
        );
    }

    #[test]
    fn dbms_lists_and_negations() {
        assert!(dbms_matches(None, "postgresql"));
        assert!(dbms_matches(Some("postgresql, sqlite"), "sqlite"));
        assert!(!dbms_matches(Some("oracle"), "postgresql"));
        assert!(!dbms_matches(Some("!postgresql"), "postgresql"));
        assert!(dbms_matches(Some("!h2"), "postgresql"));
    }
}
