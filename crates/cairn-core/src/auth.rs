//! Who may do what: roles, the model-name patterns a grant is scoped to, and the API
//! tokens that carry them. A token's secret is `cairn_<id>_<64 hex digits>`: the visible
//! `cairn_` prefix makes a leaked one recognisable, the id finds its record, and only a
//! SHA-256 of the whole secret is stored.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::ValidationError;

/// What a grant allows, each role allowing all the ones before it.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Read models, versions, files and the audit log.
    Reader,
    /// Also push versions, set tags and descriptions, move unprotected aliases.
    Writer,
    /// Also delete, move protected aliases, manage tokens, run gc.
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Reader => "reader",
            Self::Writer => "writer",
            Self::Admin => "admin",
        }
    }
}

impl FromStr for Role {
    type Err = ValidationError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [Self::Reader, Self::Writer, Self::Admin]
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| {
                ValidationError::Value(s.to_owned(), "a role is reader, writer or admin")
            })
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The model names a grant covers: a glob where `*` is any run of characters and `?`
/// one character; `\*`, `\?` and `\\` match those characters themselves (a model may
/// be named `a*b`). Nothing else is special: `[`, `{` match themselves.
#[derive(Clone)]
pub struct ModelPattern {
    text: String,
    matcher: globset::GlobMatcher,
}

impl ModelPattern {
    pub fn new(text: &str) -> Result<Self, ValidationError> {
        let invalid = |why| ValidationError::Value(text.to_owned(), why);
        if text.is_empty() {
            return Err(invalid("a model pattern must not be empty"));
        }
        // Only `*` and `?` are wildcards: every other glob metacharacter is escaped.
        let mut glob = String::with_capacity(text.len());
        let mut chars = text.chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some(escaped @ ('*' | '?' | '\\')) => {
                        glob.push('\\');
                        glob.push(escaped);
                    }
                    _ => return Err(invalid("a '\\' escapes only '*', '?' or '\\'")),
                },
                '*' | '?' => glob.push(c),
                '[' | ']' | '{' | '}' | '!' | ',' => {
                    glob.push('\\');
                    glob.push(c);
                }
                other => glob.push(other),
            }
        }
        let matcher = globset::GlobBuilder::new(&glob)
            .literal_separator(false)
            .backslash_escape(true)
            .build()
            .map_err(|_| invalid("not a model pattern"))?
            .compile_matcher();
        Ok(Self {
            text: text.to_owned(),
            matcher,
        })
    }

    /// Whether `text` is a pattern (holds a wildcard or an escape) rather than one
    /// model's name.
    pub fn is_pattern(text: &str) -> bool {
        text.contains(['*', '?', '\\'])
    }

    /// The pattern that matches model `name` alone (its `*`, `?` and `\` escaped).
    pub fn exactly(name: &str) -> Result<Self, ValidationError> {
        let mut escaped = String::with_capacity(name.len());
        for c in name.chars() {
            if matches!(c, '*' | '?' | '\\') {
                escaped.push('\\');
            }
            escaped.push(c);
        }
        Self::new(&escaped)
    }

    pub fn matches(&self, model: &str) -> bool {
        self.matcher.is_match(model)
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl FromStr for ModelPattern {
    type Err = ValidationError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

impl fmt::Debug for ModelPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ModelPattern({:?})", self.text)
    }
}

impl PartialEq for ModelPattern {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

/// An API token as listed: never its secret.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TokenInfo {
    pub id: String,
    pub user: String,
    pub name: String,
    pub role: Role,
    /// The model names it is limited to (all when absent).
    pub models: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub expires_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub revoked_at: Option<OffsetDateTime>,
}

/// A user as listed: whether it has a password, and its own grants (never a hash).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct UserInfo {
    pub name: String,
    pub has_password: bool,
    pub grants: Vec<UserGrant>,
}

/// One grant of a user: `role` on the models `models` matches, or on experiment
/// `experiment`, or (both absent) on everything; no role: an explicit deny, which binds
/// the user's tokens too.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct UserGrant {
    pub models: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub experiment: Option<i64>,
    pub role: Option<Role>,
}

/// The prefix of every token secret.
pub const TOKEN_PREFIX: &str = "cairn_";

/// Splits a secret into its id and checks its shape (not its validity).
pub fn token_id(secret: &str) -> Option<&str> {
    let rest = secret.strip_prefix(TOKEN_PREFIX)?;
    let (id, random) = rest.split_once('_')?;
    let well_formed = id.len() == 12
        && id.bytes().all(|b| b.is_ascii_hexdigit())
        && random.len() == 64
        && random.bytes().all(|b| b.is_ascii_hexdigit());
    well_formed.then_some(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_are_globs_of_star_and_question_mark_only() {
        let p = |s| ModelPattern::new(s).unwrap();
        assert!(p("fraud-*").matches("fraud-detector"));
        assert!(p("fraud-*").matches("fraud-"));
        assert!(!p("fraud-*").matches("churn"));
        assert!(p("v?").matches("v2") && !p("v?").matches("v22"));
        assert!(p("*").matches("Fraud Model v2"));
        // Escaped wildcards match themselves; other glob syntax is literal.
        assert!(p(r"a\*b").matches("a*b") && !p(r"a\*b").matches("axb"));
        assert!(p("[x]").matches("[x]") && !p("[x]").matches("x"));
        assert!(p("{a,b}").matches("{a,b}") && !p("{a,b}").matches("a"));
        assert!(ModelPattern::new(r"a\b").is_err());
        let exact = ModelPattern::exactly(r"a*b?\").unwrap();
        assert!(exact.matches(r"a*b?\") && !exact.matches(r"axbc\"));
        assert!(ModelPattern::new("").is_err());
    }

    #[test]
    fn roles_order_and_parse() {
        assert!(Role::Reader < Role::Writer && Role::Writer < Role::Admin);
        assert_eq!("writer".parse::<Role>().unwrap(), Role::Writer);
        assert!("root".parse::<Role>().is_err());
    }

    #[test]
    fn token_shapes() {
        let secret = format!("cairn_{}_{}", "a".repeat(12), "0".repeat(64));
        assert_eq!(token_id(&secret), Some("aaaaaaaaaaaa"));
        assert_eq!(token_id("cairn_short_00"), None);
        assert_eq!(token_id(&secret.replace("cairn_", "other_")), None);
    }
}
