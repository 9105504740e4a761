//! MLflow's search-filter language: `metrics.acc > 0.9 AND params.lr = '0.1' AND
//! tags.`team` LIKE 'vi%'` — comparisons joined by AND (no OR, no parentheses) — and
//! its `order_by` clauses (`metrics.acc DESC`). Parsing only; each store turns the
//! parsed filter into its own query.

use std::fmt;

/// What a comparison looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntityKind {
    Attribute,
    Metric,
    Param,
    Tag,
    Dataset,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Like,
    ILike,
    In,
    NotIn,
    IsNull,
    IsNotNull,
}

impl Op {
    pub fn sql(self) -> &'static str {
        match self {
            Self::Eq => "=",
            Self::Ne => "!=",
            Self::Lt => "<",
            Self::Le => "<=",
            Self::Gt => ">",
            Self::Ge => ">=",
            Self::Like => "LIKE",
            Self::ILike => "ILIKE",
            Self::In => "IN",
            Self::NotIn => "NOT IN",
            Self::IsNull => "IS NULL",
            Self::IsNotNull => "IS NOT NULL",
        }
    }

    pub fn is_numeric(self) -> bool {
        matches!(self, Self::Lt | Self::Le | Self::Gt | Self::Ge)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Str(String),
    Num(f64),
    List(Vec<String>),
    None,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    pub kind: EntityKind,
    pub key: String,
    pub op: Op,
    pub value: Value,
}

#[derive(Debug, Clone, PartialEq)]
pub struct OrderBy {
    pub kind: EntityKind,
    pub key: String,
    pub ascending: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchError(pub String);

impl fmt::Display for SearchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SearchError {}

fn err<T>(msg: impl Into<String>) -> Result<T, SearchError> {
    Err(SearchError(msg.into()))
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    /// Bare word (identifier, keyword, or dotted identifier).
    Word(String),
    /// Backticked: always an identifier part.
    Quoted(String),
    /// Single-quoted string.
    Str(String),
    /// Double-quoted: an identifier part after a `prefix.`, else a string.
    DoubleQuoted(String),
    Num(f64),
    Op(String),
    Comma,
    LParen,
    RParen,
}

/// A token as an error message names it: as it was written, or the end of the filter.
fn found(token: Option<&Token>) -> String {
    match token {
        None => "the end of the filter".into(),
        Some(Token::Word(w) | Token::Op(w)) => format!("'{w}'"),
        Some(Token::Quoted(q)) => format!("`{q}`"),
        Some(Token::Str(s)) => format!("the string '{s}'"),
        Some(Token::DoubleQuoted(s)) => format!("\"{s}\""),
        Some(Token::Num(n)) => format!("the number {n}"),
        Some(Token::Comma) => "','".into(),
        Some(Token::LParen) => "'('".into(),
        Some(Token::RParen) => "')'".into(),
    }
}

fn tokenize(input: &str) -> Result<Vec<Token>, SearchError> {
    let chars: Vec<char> = input.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            c if c.is_whitespace() => i += 1,
            '\'' | '"' | '`' => {
                let mut s = String::new();
                i += 1;
                loop {
                    match chars.get(i) {
                        None => return err(format!("unterminated quote in filter {input:?}")),
                        Some(&q) if q == c => {
                            // A doubled quote inside a string stands for itself.
                            if chars.get(i + 1) == Some(&c) {
                                s.push(c);
                                i += 2;
                                continue;
                            }
                            i += 1;
                            break;
                        }
                        Some(&ch) => {
                            s.push(ch);
                            i += 1;
                        }
                    }
                }
                tokens.push(match c {
                    '\'' => Token::Str(s),
                    '"' => Token::DoubleQuoted(s),
                    _ => Token::Quoted(s),
                });
            }
            '(' => {
                tokens.push(Token::LParen);
                i += 1;
            }
            ')' => {
                tokens.push(Token::RParen);
                i += 1;
            }
            ',' => {
                tokens.push(Token::Comma);
                i += 1;
            }
            '=' | '!' | '<' | '>' => {
                let two: String = chars[i..(i + 2).min(chars.len())].iter().collect();
                if ["!=", "<=", ">=", "<>", "=="].contains(&two.as_str()) {
                    tokens.push(Token::Op(if two == "<>" {
                        "!=".into()
                    } else if two == "==" {
                        "=".into()
                    } else {
                        two
                    }));
                    i += 2;
                } else if c == '!' {
                    return err(format!("unexpected '!' in filter {input:?}"));
                } else {
                    tokens.push(Token::Op(c.to_string()));
                    i += 1;
                }
            }
            c if c.is_ascii_digit()
                || ((c == '-' || c == '+' || c == '.')
                    && chars
                        .get(i + 1)
                        .is_some_and(|d| d.is_ascii_digit() || *d == '.')) =>
            {
                let start = i;
                i += 1;
                while i < chars.len()
                    && (chars[i].is_ascii_alphanumeric()
                        || chars[i] == '.'
                        || ((chars[i] == '-' || chars[i] == '+')
                            && matches!(chars[i - 1], 'e' | 'E')))
                {
                    i += 1;
                }
                let text: String = chars[start..i].iter().collect();
                match text.parse::<f64>() {
                    Ok(n) => tokens.push(Token::Num(n)),
                    Err(_) => tokens.push(Token::Word(text)),
                }
            }
            c if c.is_alphanumeric() || c == '_' => {
                let start = i;
                while i < chars.len()
                    && (chars[i].is_alphanumeric()
                        || matches!(chars[i], '_' | '.' | '-' | ':' | '/'))
                {
                    i += 1;
                }
                tokens.push(Token::Word(chars[start..i].iter().collect()));
            }
            _ => return err(format!("unexpected character {c:?} in filter {input:?}")),
        }
    }
    Ok(tokens)
}

fn kind_of(prefix: &str) -> Option<EntityKind> {
    Some(match prefix.to_ascii_lowercase().as_str() {
        "attribute" | "attributes" | "attr" | "run" => EntityKind::Attribute,
        "metric" | "metrics" => EntityKind::Metric,
        "param" | "params" | "parameter" | "parameters" => EntityKind::Param,
        "tag" | "tags" => EntityKind::Tag,
        "dataset" | "datasets" => EntityKind::Dataset,
        _ => return None,
    })
}

/// Reads an identifier: `key`, `prefix.key`, `prefix.`key``, `prefix."key"`, `` `key` ``.
fn identifier(tokens: &[Token], i: &mut usize) -> Result<(EntityKind, String), SearchError> {
    match tokens.get(*i) {
        Some(Token::Word(w)) => {
            *i += 1;
            if let Some((prefix, rest)) = w.split_once('.')
                && let Some(kind) = kind_of(prefix)
            {
                if rest.is_empty() {
                    // `tags.` followed by a quoted key.
                    return match tokens.get(*i) {
                        Some(Token::Quoted(k) | Token::DoubleQuoted(k)) => {
                            *i += 1;
                            Ok((kind, k.clone()))
                        }
                        _ => err(format!("expected a key after {w:?}")),
                    };
                }
                return Ok((kind, rest.to_owned()));
            }
            Ok((EntityKind::Attribute, w.clone()))
        }
        Some(Token::Quoted(k)) => {
            *i += 1;
            Ok((EntityKind::Attribute, k.clone()))
        }
        other => err(format!("expected an identifier, found {}", found(other))),
    }
}

fn keyword(tokens: &[Token], i: usize, word: &str) -> bool {
    matches!(tokens.get(i), Some(Token::Word(w)) if w.eq_ignore_ascii_case(word))
}

/// Text as an error message quotes it (`{:?}`): whole when short, else its first 200
/// characters and an ellipsis, so that an error never echoes a hostile megabyte back.
pub struct Excerpt<'a>(pub &'a str);

impl fmt::Debug for Excerpt<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const SHOWN: usize = 200;
        match self.0.char_indices().nth(SHOWN) {
            Some((end, _)) => write!(f, "{:?}…", &self.0[..end]),
            None => write!(f, "{:?}", self.0),
        }
    }
}

/// Most comparisons one filter may AND together. Each becomes a condition of one SQL
/// statement, whose expression depth the engines bound (SQLite: 1000); a person or a UI
/// writes a handful.
pub const FILTER_COMPARISONS_MAX: usize = 200;

/// Parses a filter string; empty means no filter.
pub fn parse_filter(filter: &str) -> Result<Vec<Comparison>, SearchError> {
    let tokens = tokenize(filter)?;
    let filter = Excerpt(filter);
    let mut out = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        if out.len() == FILTER_COMPARISONS_MAX {
            return err(format!(
                "a filter may AND together at most {FILTER_COMPARISONS_MAX} comparisons"
            ));
        }
        if !out.is_empty() {
            if keyword(&tokens, i, "AND") {
                i += 1;
            } else if keyword(&tokens, i, "OR") {
                return err(format!(
                    "Invalid clause(s) in filter string: 'OR' (only AND is supported): {filter:?}"
                ));
            } else {
                return err(format!(
                    "expected AND between comparisons in filter {filter:?}"
                ));
            }
        }
        let (kind, key) = identifier(&tokens, &mut i)?;
        let op = if keyword(&tokens, i, "IS") {
            if keyword(&tokens, i + 1, "NOT") && keyword(&tokens, i + 2, "NULL") {
                i += 3;
                Op::IsNotNull
            } else if keyword(&tokens, i + 1, "NULL") {
                i += 2;
                Op::IsNull
            } else {
                return err(format!("expected NULL or NOT NULL after IS in {filter:?}"));
            }
        } else if keyword(&tokens, i, "NOT") && keyword(&tokens, i + 1, "IN") {
            i += 2;
            Op::NotIn
        } else {
            let op = match tokens.get(i) {
                Some(Token::Op(o)) => match o.as_str() {
                    "=" => Op::Eq,
                    "!=" => Op::Ne,
                    "<" => Op::Lt,
                    "<=" => Op::Le,
                    ">" => Op::Gt,
                    ">=" => Op::Ge,
                    _ => return err(format!("unknown comparator {o:?}")),
                },
                Some(Token::Word(w)) if w.eq_ignore_ascii_case("LIKE") => Op::Like,
                Some(Token::Word(w)) if w.eq_ignore_ascii_case("ILIKE") => Op::ILike,
                Some(Token::Word(w)) if w.eq_ignore_ascii_case("IN") => Op::In,
                other => {
                    return err(format!(
                        "expected a comparator after {key:?}, found {}",
                        found(other)
                    ));
                }
            };
            i += 1;
            op
        };
        let value = match op {
            Op::IsNull | Op::IsNotNull => Value::None,
            Op::In | Op::NotIn => {
                if tokens.get(i) != Some(&Token::LParen) {
                    return err(format!(
                        "expected a parenthesized list after IN in {filter:?}"
                    ));
                }
                i += 1;
                let mut items = Vec::new();
                loop {
                    match tokens.get(i) {
                        Some(Token::Str(s) | Token::DoubleQuoted(s)) => items.push(s.clone()),
                        other => {
                            return err(format!(
                                "expected a quoted string in IN list, found {}",
                                found(other)
                            ));
                        }
                    }
                    i += 1;
                    match tokens.get(i) {
                        Some(Token::Comma) => i += 1,
                        Some(Token::RParen) => {
                            i += 1;
                            break;
                        }
                        other => {
                            return err(format!(
                                "expected ',' or ')' in IN list, found {}",
                                found(other)
                            ));
                        }
                    }
                }
                Value::List(items)
            }
            _ => {
                let v = match tokens.get(i) {
                    Some(Token::Str(s) | Token::DoubleQuoted(s)) => Value::Str(s.clone()),
                    Some(Token::Num(n)) => Value::Num(*n),
                    other => {
                        return err(format!(
                            "expected a value after {} in {filter:?}, found {}",
                            op.sql(),
                            found(other)
                        ));
                    }
                };
                i += 1;
                v
            }
        };
        out.push(Comparison {
            kind,
            key,
            op,
            value,
        });
    }
    Ok(out)
}

/// Parses one `order_by` clause: an identifier, then optional ASC or DESC.
pub fn parse_order_by(clause: &str) -> Result<OrderBy, SearchError> {
    let tokens = tokenize(clause)?;
    let mut i = 0;
    let (kind, key) = identifier(&tokens, &mut i)
        .map_err(|_| SearchError(format!("Invalid order_by clause {clause:?}")))?;
    let ascending = if keyword(&tokens, i, "DESC") {
        i += 1;
        false
    } else {
        if keyword(&tokens, i, "ASC") {
            i += 1;
        }
        true
    };
    if i != tokens.len() {
        return err(format!("Invalid order_by clause {clause:?}"));
    }
    Ok(OrderBy {
        kind,
        key,
        ascending,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmp(kind: EntityKind, key: &str, op: Op, value: Value) -> Comparison {
        Comparison {
            kind,
            key: key.into(),
            op,
            value,
        }
    }

    #[test]
    fn filters_have_a_bounded_number_of_comparisons() {
        let filter = |n: usize| vec!["metrics.a > 1"; n].join(" AND ");
        assert_eq!(
            parse_filter(&filter(FILTER_COMPARISONS_MAX)).unwrap().len(),
            FILTER_COMPARISONS_MAX
        );
        let refused = parse_filter(&filter(20_000)).unwrap_err().to_string();
        assert!(refused.contains("at most 200 comparisons"), "{refused}");
    }

    #[test]
    fn errors_name_the_token_as_it_was_written() {
        let message = |filter: &str| parse_filter(filter).unwrap_err().to_string();
        let doubled = message("metrics.acc >> 0.5");
        assert!(doubled.ends_with("found '>'"), "{doubled}");
        let unfinished = message("params.lr =");
        assert!(
            unfinished.ends_with("found the end of the filter"),
            "{unfinished}"
        );
        let list = message("tags.team IN ('a' 'b')");
        assert!(list.ends_with("found the string 'b'"), "{list}");
    }

    #[test]
    fn parses_the_common_forms() {
        let f = parse_filter(
            "metrics.acc > 0.9 AND params.lr = '0.01' and tags.`team name` LIKE 'vi%'",
        )
        .unwrap();
        assert_eq!(
            f,
            [
                cmp(EntityKind::Metric, "acc", Op::Gt, Value::Num(0.9)),
                cmp(EntityKind::Param, "lr", Op::Eq, Value::Str("0.01".into())),
                cmp(
                    EntityKind::Tag,
                    "team name",
                    Op::Like,
                    Value::Str("vi%".into())
                ),
            ]
        );
        let f = parse_filter("name = 'x' AND tag.\"mlflow.prompt.is_prompt\" != 'true'").unwrap();
        assert_eq!(
            f[1],
            cmp(
                EntityKind::Tag,
                "mlflow.prompt.is_prompt",
                Op::Ne,
                Value::Str("true".into())
            )
        );
        let f = parse_filter(
            "attributes.run_id IN ('a', 'b') AND params.x IS NULL AND metrics.m <= -1e-3",
        )
        .unwrap();
        assert_eq!(f[0].value, Value::List(vec!["a".into(), "b".into()]));
        assert_eq!(f[1].op, Op::IsNull);
        assert_eq!(f[2].value, Value::Num(-1e-3));
        assert_eq!(
            parse_filter("name ILIKE '%Forest%'").unwrap()[0].op,
            Op::ILike
        );
        assert_eq!(
            parse_filter("version_number >= 2").unwrap()[0].value,
            Value::Num(2.0)
        );
        assert_eq!(
            parse_filter("run_id NOT IN ('a')").unwrap()[0].op,
            Op::NotIn
        );
        assert_eq!(
            parse_filter("metrics.train.loss < 1").unwrap()[0].key,
            "train.loss"
        );
        assert!(parse_filter("").unwrap().is_empty());
    }

    #[test]
    fn refuses_what_mlflow_refuses() {
        for bad in [
            "a = 1 OR b = 2",
            "metrics.m >",
            "x LIKE",
            "(a = 1)",
            "a = 'open",
            "params.p IN 'x'",
        ] {
            assert!(parse_filter(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn order_by() {
        assert_eq!(
            parse_order_by("metrics.acc DESC").unwrap(),
            OrderBy {
                kind: EntityKind::Metric,
                key: "acc".into(),
                ascending: false
            }
        );
        assert!(parse_order_by("name").unwrap().ascending);
        assert!(parse_order_by("name sideways").is_err());
    }
}
