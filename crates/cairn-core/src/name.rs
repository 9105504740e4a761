//! Validated names. The rules are in the README ("Names"); every refusal says which
//! rule was broken.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::ValidationError;

/// Longest model name, in characters (MLflow's registry column holds 256).
pub const MODEL_NAME_MAX: usize = 256;
/// Longest alias, in bytes.
pub const ALIAS_MAX: usize = 64;
/// Longest tag, metric or param key, in bytes.
pub const KEY_MAX: usize = 250;

/// A model name, as MLflow's registry allows them: 1–256 characters, not blank, without
/// `/` or `:`, not `.` and not starting with `..` (a name never reads as a path that
/// leaves its place), and — Cairn's addition — without control characters. Spaces,
/// `@` and any other Unicode are fine: `Fraud Model v2` is a name. In `NAME@REF` the
/// REF follows the *last* `@` (a REF never holds one), so `team@fraud@1` is version 1
/// of `team@fraud`; a name holding `@` needs its REF spelled out (`team@fraud@latest`).
/// URLs carry names percent-encoded.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ModelName(String);

/// An alias: a letter, then letters, digits, `_` and `-`, at most 64 bytes, not `latest`.
/// Letters and digits are Unicode's (`staging-ü` is an alias), as MLflow's `\w` allows.
/// Starting with a letter keeps `NAME@REF` unambiguous: a REF of digits is always a
/// version number.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AliasName(String);

/// A key of a tag, metric or param: 1–250 bytes of `[A-Za-z0-9_.\-/ ]`, the same set
/// MLflow accepts, so keys logged through either API are interchangeable.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MetaKey(String);

impl ModelName {
    pub fn new(s: &str) -> Result<Self, ValidationError> {
        let err = |why| ValidationError::ModelName(s.to_owned(), why);
        if s.trim().is_empty() {
            return Err(err("must not be empty or blank"));
        }
        if s.chars().count() > MODEL_NAME_MAX {
            return Err(err("longer than 256 characters"));
        }
        if s.contains(['/', ':']) {
            return Err(err("names cannot contain '/' or ':'"));
        }
        if s == "." || s.starts_with("..") {
            return Err(err("names must not be '.' or start with '..'"));
        }
        if s.chars().any(char::is_control) {
            return Err(err("names cannot contain control characters"));
        }
        Ok(Self(s.to_owned()))
    }
}

impl AliasName {
    pub fn new(s: &str) -> Result<Self, ValidationError> {
        let err = |why| ValidationError::Alias(s.to_owned(), why);
        let first = s.chars().next().ok_or_else(|| err("must not be empty"))?;
        if s.len() > ALIAS_MAX {
            return Err(err("longer than 64 bytes"));
        }
        if !first.is_alphabetic() {
            return Err(err("must start with a letter"));
        }
        if !s
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '_' | '-'))
        {
            return Err(err("only letters, digits, '_' and '-' are allowed"));
        }
        if s.eq_ignore_ascii_case("latest") {
            return Err(err("\"latest\" always means the newest version"));
        }
        Ok(Self(s.to_owned()))
    }
}

impl MetaKey {
    pub fn new(s: &str) -> Result<Self, ValidationError> {
        let err = |why| ValidationError::Key(s.to_owned(), why);
        if s.is_empty() {
            return Err(err("must not be empty"));
        }
        if s.len() > KEY_MAX {
            return Err(err("longer than 250 bytes"));
        }
        if !s
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-' | b'/' | b' '))
        {
            return Err(err(
                "only letters, digits, '_', '.', '-', '/' and spaces are allowed",
            ));
        }
        Ok(Self(s.to_owned()))
    }
}

macro_rules! string_newtype {
    ($t:ty) => {
        impl $t {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
        impl fmt::Debug for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(&self.0, f)
            }
        }
        impl FromStr for $t {
            type Err = ValidationError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::new(s)
            }
        }
        impl AsRef<str> for $t {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
        impl Serialize for $t {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(&self.0)
            }
        }
        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let s = String::deserialize(deserializer)?;
                Self::new(&s).map_err(serde::de::Error::custom)
            }
        }
    };
}

string_newtype!(ModelName);
string_newtype!(AliasName);
string_newtype!(MetaKey);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_names() {
        for ok in [
            "demo",
            "a",
            "Fraud-Detector_v2.1",
            "Fraud Model v2",
            "-x",
            ".hidden",
            "ünï",
            "team@fraud",
            "50% off",
            &"ü".repeat(256),
            "9lives",
        ] {
            assert!(ModelName::new(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "   ",
            "a/b",
            "s3:model",
            ".",
            "..",
            "..x",
            "tab\there",
            "nul\0",
            &"x".repeat(257),
        ] {
            assert!(ModelName::new(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn aliases() {
        for ok in [
            "production",
            "champion",
            "stage-2",
            "A_b",
            "ü",
            "prüfung-2",
            "本番",
        ] {
            assert!(AliasName::new(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "1",
            "2x",
            "latest",
            "LATEST",
            "a.b",
            "a b",
            "٣x",
            "a\u{200b}",
            &"a".repeat(65),
            &"ü".repeat(33),
        ] {
            assert!(AliasName::new(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn keys() {
        assert!(MetaKey::new("train/loss 1.x-y_z").is_ok());
        assert!(MetaKey::new("").is_err());
        assert!(MetaKey::new("a=b").is_err());
        assert!(MetaKey::new(&"k".repeat(251)).is_err());
    }

    #[test]
    fn deserialization_validates() {
        assert!(serde_json::from_str::<ModelName>("\"ok\"").is_ok());
        let err = serde_json::from_str::<ModelName>("\"no/way\"").unwrap_err();
        assert!(err.to_string().contains("invalid model name"));
    }
}
