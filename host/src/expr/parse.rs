//! Parser for the inside of `<+ >`: a small JEXL subset.
//!
//! Precedence, lowest first: `?:`, `||`, `&&`, `== != =~`, `< > <= >=`, `+`, `!`, postfix
//! (`.name`, `["key"]`, `[0]`, `.method(args)`).

use serde_json::Value;

use super::Reason;

#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    Literal(Value),
    /// A dotted name such as `pipeline.variables.env`, looked up as a whole.
    Path(Vec<String>),
    Not(Box<Expr>),
    Binary(BinaryOp, Box<Expr>, Box<Expr>),
    Ternary(Box<Expr>, Box<Expr>, Box<Expr>),
    Call(Box<Expr>, String, Vec<Expr>),
    Index(Box<Expr>, Box<Expr>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinaryOp {
    Or,
    And,
    Eq,
    Ne,
    Matches,
    Lt,
    Gt,
    Le,
    Ge,
    Add,
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Ident(String),
    Str(String),
    Num(f64),
    Op(&'static str),
}

pub fn parse(source: &str) -> Result<Expr, Reason> {
    let tokens = lex(source)?;
    let mut parser = Parser { tokens, at: 0 };
    let expr = parser.ternary()?;
    match parser.tokens.get(parser.at) {
        None => Ok(expr),
        Some(t) => Err(Reason::Syntax(format!(
            "unexpected {} in `{source}`",
            describe(t)
        ))),
    }
}

fn describe(token: &Token) -> String {
    match token {
        Token::Ident(s) => format!("`{s}`"),
        Token::Str(s) => format!("\"{s}\""),
        Token::Num(n) => format!("{n}"),
        Token::Op(o) => format!("`{o}`"),
    }
}

const OPERATORS: &[&str] = &[
    "==", "!=", "=~", "<=", ">=", "&&", "||", "<", ">", "!", "?", ":", "(", ")", "[", "]", ".",
    ",", "+",
];

fn lex(source: &str) -> Result<Vec<Token>, Reason> {
    let chars: Vec<char> = source.chars().collect();
    let mut tokens = vec![];
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '"' || c == '\'' {
            let mut text = String::new();
            i += 1;
            loop {
                match chars.get(i) {
                    None => {
                        return Err(Reason::Syntax(format!(
                            "a string starting with {c} is never closed"
                        )));
                    }
                    Some('\\') if chars.get(i + 1).is_some() => {
                        text.push(chars[i + 1]);
                        i += 2;
                    }
                    Some(&q) if q == c => break,
                    Some(&other) => {
                        text.push(other);
                        i += 1;
                    }
                }
            }
            i += 1;
            tokens.push(Token::Str(text));
        } else if c.is_ascii_digit() {
            let start = i;
            while i < chars.len()
                && (chars[i].is_ascii_digit()
                    || (chars[i] == '.' && chars.get(i + 1).is_some_and(char::is_ascii_digit)))
            {
                i += 1;
            }
            let text: String = chars[start..i].iter().collect();
            // A number directly followed by letters is a name segment such as `build_0` parts.
            if i < chars.len() && (chars[i].is_alphabetic() || chars[i] == '_') {
                while i < chars.len()
                    && (chars[i].is_alphanumeric() || chars[i] == '_' || chars[i] == '-')
                {
                    i += 1;
                }
                tokens.push(Token::Ident(chars[start..i].iter().collect()));
            } else {
                tokens
                    .push(Token::Num(text.parse().map_err(|_| {
                        Reason::Syntax(format!("`{text}` is not a number"))
                    })?));
            }
        } else if c.is_alphabetic() || c == '_' || c == '$' {
            let start = i;
            while i < chars.len()
                && (chars[i].is_alphanumeric()
                    || chars[i] == '_'
                    || chars[i] == '$'
                    || chars[i] == '-')
            {
                i += 1;
            }
            tokens.push(Token::Ident(chars[start..i].iter().collect()));
        } else {
            let rest: String = chars[i..chars.len().min(i + 2)].iter().collect();
            let op = OPERATORS
                .iter()
                .find(|op| rest.starts_with(**op))
                .ok_or_else(|| Reason::Syntax(format!("unexpected character `{c}`")))?;
            i += op.chars().count();
            tokens.push(Token::Op(op));
        }
    }
    if tokens.is_empty() {
        return Err(Reason::Syntax("the expression is empty".into()));
    }
    Ok(tokens)
}

struct Parser {
    tokens: Vec<Token>,
    at: usize,
}

impl Parser {
    fn peek_op(&self, op: &str) -> bool {
        matches!(self.tokens.get(self.at), Some(Token::Op(o)) if *o == op)
    }

    fn eat_op(&mut self, op: &str) -> bool {
        let found = self.peek_op(op);
        if found {
            self.at += 1;
        }
        found
    }

    fn expect_op(&mut self, op: &str) -> Result<(), Reason> {
        if self.eat_op(op) {
            return Ok(());
        }
        match self.tokens.get(self.at) {
            Some(t) => Err(Reason::Syntax(format!(
                "expected `{op}`, found {}",
                describe(t)
            ))),
            None => Err(Reason::Syntax(format!("expected `{op}` at the end"))),
        }
    }

    fn ternary(&mut self) -> Result<Expr, Reason> {
        let cond = self.binary(0)?;
        if !self.eat_op("?") {
            return Ok(cond);
        }
        let yes = self.ternary()?;
        self.expect_op(":")?;
        let no = self.ternary()?;
        Ok(Expr::Ternary(Box::new(cond), Box::new(yes), Box::new(no)))
    }

    fn binary(&mut self, level: usize) -> Result<Expr, Reason> {
        const LEVELS: &[&[(&str, BinaryOp)]] = &[
            &[("||", BinaryOp::Or)],
            &[("&&", BinaryOp::And)],
            &[
                ("==", BinaryOp::Eq),
                ("!=", BinaryOp::Ne),
                ("=~", BinaryOp::Matches),
            ],
            &[
                ("<=", BinaryOp::Le),
                (">=", BinaryOp::Ge),
                ("<", BinaryOp::Lt),
                (">", BinaryOp::Gt),
            ],
            &[("+", BinaryOp::Add)],
        ];
        if level == LEVELS.len() {
            return self.unary();
        }
        let mut left = self.binary(level + 1)?;
        'outer: loop {
            for (text, op) in LEVELS[level] {
                if self.eat_op(text) {
                    let right = self.binary(level + 1)?;
                    left = Expr::Binary(*op, Box::new(left), Box::new(right));
                    continue 'outer;
                }
            }
            return Ok(left);
        }
    }

    fn unary(&mut self) -> Result<Expr, Reason> {
        if self.eat_op("!") {
            return Ok(Expr::Not(Box::new(self.unary()?)));
        }
        self.postfix()
    }

    fn postfix(&mut self) -> Result<Expr, Reason> {
        let mut expr = self.primary()?;
        loop {
            if self.eat_op(".") {
                let name = match self.tokens.get(self.at) {
                    Some(Token::Ident(name)) => name.clone(),
                    Some(Token::Num(n)) => format!("{n}"),
                    other => {
                        return Err(Reason::Syntax(format!(
                            "expected a name after `.`, found {}",
                            other.map_or("the end".to_string(), describe)
                        )));
                    }
                };
                self.at += 1;
                if self.eat_op("(") {
                    let args = self.arguments()?;
                    expr = Expr::Call(Box::new(expr), name, args);
                } else if let Expr::Path(path) = &mut expr {
                    path.push(name);
                } else {
                    return Err(Reason::Syntax(format!(
                        "`.{name}` can only follow a name or a call"
                    )));
                }
            } else if self.eat_op("[") {
                let index = self.ternary()?;
                self.expect_op("]")?;
                expr = match (expr, index) {
                    (Expr::Path(mut path), Expr::Literal(Value::String(key))) => {
                        path.push(key);
                        Expr::Path(path)
                    }
                    (expr, index) => Expr::Index(Box::new(expr), Box::new(index)),
                };
            } else {
                return Ok(expr);
            }
        }
    }

    fn arguments(&mut self) -> Result<Vec<Expr>, Reason> {
        let mut args = vec![];
        if self.eat_op(")") {
            return Ok(args);
        }
        loop {
            args.push(self.ternary()?);
            if self.eat_op(")") {
                return Ok(args);
            }
            self.expect_op(",")?;
        }
    }

    fn primary(&mut self) -> Result<Expr, Reason> {
        let token = self
            .tokens
            .get(self.at)
            .cloned()
            .ok_or_else(|| Reason::Syntax("the expression ends too early".into()))?;
        self.at += 1;
        Ok(match token {
            Token::Str(s) => Expr::Literal(Value::String(s)),
            Token::Num(n) => Expr::Literal(if n.fract() == 0.0 {
                Value::from(n as i64)
            } else {
                Value::from(n)
            }),
            Token::Ident(name) => match name.as_str() {
                "true" => Expr::Literal(Value::Bool(true)),
                "false" => Expr::Literal(Value::Bool(false)),
                "null" => Expr::Literal(Value::Null),
                _ => Expr::Path(vec![name]),
            },
            Token::Op("(") => {
                let inner = self.ternary()?;
                self.expect_op(")")?;
                inner
            }
            Token::Op(op) => return Err(Reason::Syntax(format!("unexpected `{op}`"))),
        })
    }
}
