//! The JSON that liquibase-mongodb changelogs hold: MongoDB shell syntax, as the Java driver's
//! `Document.parse` reads it, turned into canonical Extended JSON that any driver accepts.
//!
//! Beyond strict JSON it reads unquoted and single-quoted keys and strings, trailing commas,
//! `//` and `/* */` comments, and the shell's constructors: `ObjectId("…")`, `ISODate("…")`,
//! `new Date("…")`, `NumberInt(…)`, `NumberLong(…)`, `NumberDecimal("…")` and `Timestamp(t, i)`.

use serde_json::{Map, Value, json};

/// Parses `text`; an error says where it stopped and why.
pub fn parse(text: &str) -> Result<Value, String> {
    let mut reader = Reader {
        chars: text.chars().collect(),
        at: 0,
    };
    let value = reader.value()?;
    reader.skip_blank();
    if reader.at < reader.chars.len() {
        return Err(reader.error("unexpected text after the value"));
    }
    Ok(value)
}

/// Parses `text`, which must be an object (a document).
pub fn parse_document(text: &str) -> Result<Map<String, Value>, String> {
    match parse(text)? {
        Value::Object(map) => Ok(map),
        _ => Err("expected a document such as { name: 1 }".into()),
    }
}

struct Reader {
    chars: Vec<char>,
    at: usize,
}

impl Reader {
    fn error(&self, what: &str) -> String {
        let line = self.chars[..self.at.min(self.chars.len())]
            .iter()
            .filter(|c| **c == '\n')
            .count()
            + 1;
        format!("{what} (line {line} of the JSON)")
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.at).copied()
    }

    fn skip_blank(&mut self) {
        loop {
            match (self.peek(), self.chars.get(self.at + 1)) {
                (Some(c), _) if c.is_whitespace() => self.at += 1,
                (Some('/'), Some('/')) => {
                    while self.peek().is_some_and(|c| c != '\n') {
                        self.at += 1;
                    }
                }
                (Some('/'), Some('*')) => {
                    self.at += 2;
                    while self.at < self.chars.len()
                        && !(self.chars[self.at] == '*'
                            && self.chars.get(self.at + 1) == Some(&'/'))
                    {
                        self.at += 1;
                    }
                    self.at += 2;
                }
                _ => return,
            }
        }
    }

    fn expect(&mut self, wanted: char) -> Result<(), String> {
        self.skip_blank();
        if self.peek() == Some(wanted) {
            self.at += 1;
            Ok(())
        } else {
            Err(self.error(&format!("expected `{wanted}`")))
        }
    }

    fn value(&mut self) -> Result<Value, String> {
        self.skip_blank();
        match self.peek() {
            None => Err(self.error("expected a value")),
            Some('{') => self.object(),
            Some('[') => self.array(),
            Some(quote @ ('"' | '\'')) => self.string(quote).map(Value::String),
            Some(c) if c == '-' || c == '+' || c == '.' || c.is_ascii_digit() => self.number(),
            Some(_) => {
                let word = self.word();
                match word.as_str() {
                    "true" => Ok(Value::Bool(true)),
                    "false" => Ok(Value::Bool(false)),
                    "null" | "undefined" => Ok(Value::Null),
                    "new" => {
                        let constructor = {
                            self.skip_blank();
                            self.word()
                        };
                        self.constructor(&constructor)
                    }
                    "" => Err(self.error("expected a value")),
                    other => self.constructor(other),
                }
            }
        }
    }

    fn word(&mut self) -> String {
        let start = self.at;
        while self
            .peek()
            .is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '$')
        {
            self.at += 1;
        }
        self.chars[start..self.at].iter().collect()
    }

    fn object(&mut self) -> Result<Value, String> {
        self.expect('{')?;
        let mut map = Map::new();
        loop {
            self.skip_blank();
            match self.peek() {
                Some('}') => {
                    self.at += 1;
                    return Ok(Value::Object(map));
                }
                Some(quote @ ('"' | '\'')) => {
                    let key = self.string(quote)?;
                    self.field(&mut map, key)?;
                }
                _ => {
                    let key = self.word();
                    if key.is_empty() {
                        return Err(self.error("expected a field name or `}`"));
                    }
                    self.field(&mut map, key)?;
                }
            }
        }
    }

    fn field(&mut self, map: &mut Map<String, Value>, key: String) -> Result<(), String> {
        self.expect(':')?;
        let value = self.value()?;
        map.insert(key, value);
        self.skip_blank();
        match self.peek() {
            Some(',') => {
                self.at += 1;
                Ok(())
            }
            Some('}') => Ok(()),
            _ => Err(self.error("expected `,` or `}`")),
        }
    }

    fn array(&mut self) -> Result<Value, String> {
        self.expect('[')?;
        let mut items = vec![];
        loop {
            self.skip_blank();
            if self.peek() == Some(']') {
                self.at += 1;
                return Ok(Value::Array(items));
            }
            items.push(self.value()?);
            self.skip_blank();
            match self.peek() {
                Some(',') => self.at += 1,
                Some(']') => {}
                _ => return Err(self.error("expected `,` or `]`")),
            }
        }
    }

    fn string(&mut self, quote: char) -> Result<String, String> {
        self.at += 1;
        let mut out = String::new();
        loop {
            let Some(c) = self.peek() else {
                return Err(self.error("a string is not closed"));
            };
            self.at += 1;
            match c {
                c if c == quote => return Ok(out),
                '\\' => {
                    let Some(escaped) = self.peek() else {
                        return Err(self.error("a string is not closed"));
                    };
                    self.at += 1;
                    out.push(match escaped {
                        'n' => '\n',
                        't' => '\t',
                        'r' => '\r',
                        'b' => '\u{8}',
                        'f' => '\u{c}',
                        'u' => {
                            let hex: String = self
                                .chars
                                .get(self.at..self.at + 4)
                                .map(|h| h.iter().collect())
                                .unwrap_or_default();
                            self.at += 4;
                            u32::from_str_radix(&hex, 16)
                                .ok()
                                .and_then(char::from_u32)
                                .ok_or_else(|| self.error("a \\u escape needs four hex digits"))?
                        }
                        other => other,
                    });
                }
                c => out.push(c),
            }
        }
    }

    fn number(&mut self) -> Result<Value, String> {
        let start = self.at;
        while self
            .peek()
            .is_some_and(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '+' | '.'))
        {
            self.at += 1;
        }
        let text: String = self.chars[start..self.at].iter().collect();
        if let Ok(integer) = text.parse::<i64>() {
            return Ok(if i32::try_from(integer).is_ok() {
                json!(integer)
            } else {
                json!({ "$numberLong": integer.to_string() })
            });
        }
        match text.parse::<f64>() {
            Ok(float) if float.is_finite() => Ok(json!(float)),
            _ => Err(self.error(&format!("`{text}` is not a number"))),
        }
    }

    /// The arguments of a shell constructor: strings or numbers, as text.
    fn arguments(&mut self) -> Result<Vec<String>, String> {
        self.expect('(')?;
        let mut arguments = vec![];
        loop {
            self.skip_blank();
            match self.peek() {
                Some(')') => {
                    self.at += 1;
                    return Ok(arguments);
                }
                Some(quote @ ('"' | '\'')) => arguments.push(self.string(quote)?),
                _ => arguments.push(match self.number()? {
                    Value::Object(long) => {
                        long["$numberLong"].as_str().unwrap_or_default().to_string()
                    }
                    number => number.to_string(),
                }),
            }
            self.skip_blank();
            if self.peek() == Some(',') {
                self.at += 1;
            }
        }
    }

    fn constructor(&mut self, name: &str) -> Result<Value, String> {
        let arguments = self
            .arguments()
            .map_err(|e| format!("{e} — `{name}` is not a JSON value; quote strings"))?;
        let first = || arguments.first().cloned().unwrap_or_default();
        Ok(match name {
            "ObjectId" => json!({ "$oid": first() }),
            "ISODate" | "Date" => match first().parse::<i64>() {
                Ok(millis) => json!({ "$date": { "$numberLong": millis.to_string() } }),
                Err(_) => json!({ "$date": first() }),
            },
            "NumberInt" => json!({ "$numberInt": first() }),
            "NumberLong" => json!({ "$numberLong": first() }),
            "NumberDecimal" => json!({ "$numberDecimal": first() }),
            "Timestamp" => {
                let number = |i: usize| {
                    arguments
                        .get(i)
                        .and_then(|a| a.parse::<u32>().ok())
                        .unwrap_or(0)
                };
                json!({ "$timestamp": { "t": number(0), "i": number(1) } })
            }
            other => {
                return Err(self.error(&format!(
                    "`{other}(…)` is not a value Lockstep can read; use Extended JSON"
                )));
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_shell_syntax_as_canonical_extended_json() {
        let value = parse("{ id: 1, 'name': 'x', big: 12345678901, when: ISODate(\"2024-01-01T00:00:00Z\"), _id: ObjectId('65a000000000000000000001'), n: NumberLong(5), list: [1, 2,], /* note */ ok: true // end\n }").unwrap();
        assert_eq!(
            value,
            json!({"id": 1, "name": "x", "big": {"$numberLong": "12345678901"}, "when": {"$date": "2024-01-01T00:00:00Z"}, "_id": {"$oid": "65a000000000000000000001"}, "n": {"$numberLong": "5"}, "list": [1, 2], "ok": true})
        );
    }

    #[test]
    fn strict_json_and_extended_json_pass_through() {
        let text = r#"{"a": {"$date": {"$numberLong": "0"}}, "b": [1.5, null, "s\"q"]}"#;
        assert_eq!(
            parse(text).unwrap(),
            serde_json::from_str::<Value>(text).unwrap()
        );
    }

    #[test]
    fn errors_say_where() {
        assert_eq!(
            parse("{ a: 1,\n b: }").unwrap_err(),
            "expected a value (line 2 of the JSON)"
        );
        assert!(
            parse("{ a: 1 } x")
                .unwrap_err()
                .starts_with("unexpected text")
        );
        assert!(parse_document("[1]").is_err());
    }
}
