//! `NAME@REF`: how users point at a version. REF is a version number, an alias, or
//! `latest` (the newest version that still exists).

use std::fmt;
use std::str::FromStr;

use crate::{AliasName, ModelName, ValidationError};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VersionRef {
    Number(u64),
    Alias(AliasName),
    Latest,
}

impl FromStr for VersionRef {
    type Err = ValidationError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s == "latest" {
            return Ok(Self::Latest);
        }
        if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
            return match s.parse::<u64>() {
                Ok(n) if n >= 1 && n <= i64::MAX as u64 => Ok(Self::Number(n)),
                _ => Err(ValidationError::Reference(
                    s.into(),
                    "version numbers go from 1 to 9223372036854775807",
                )),
            };
        }
        AliasName::new(s).map(Self::Alias).map_err(|_| {
            ValidationError::Reference(
                s.into(),
                "expected a version number, an alias or \"latest\"",
            )
        })
    }
}

impl fmt::Display for VersionRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Number(n) => write!(f, "{n}"),
            Self::Alias(a) => write!(f, "{a}"),
            Self::Latest => f.write_str("latest"),
        }
    }
}

/// `NAME@REF`; a bare `NAME` means `NAME@latest`. REF follows the last `@`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelVersionRef {
    pub model: ModelName,
    pub version: VersionRef,
}

impl FromStr for ModelVersionRef {
    type Err = ValidationError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        // A REF never holds '@'; a name may.
        let (name, reference) = match s.rsplit_once('@') {
            Some((name, reference)) => (name, reference.parse()?),
            None => (s, VersionRef::Latest),
        };
        Ok(Self {
            model: ModelName::new(name)?,
            version: reference,
        })
    }
}

impl fmt::Display for ModelVersionRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.model, self.version)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_refs() {
        let r: ModelVersionRef = "demo@3".parse().unwrap();
        assert_eq!(r.version, VersionRef::Number(3));
        let r: ModelVersionRef = "demo@production".parse().unwrap();
        assert_eq!(
            r.version,
            VersionRef::Alias(AliasName::new("production").unwrap())
        );
        let r: ModelVersionRef = "demo".parse().unwrap();
        assert_eq!(r.version, VersionRef::Latest);
        assert_eq!(r.to_string(), "demo@latest");
        // Names may hold spaces and '@'; the REF follows the last '@'.
        let r: ModelVersionRef = "Fraud Model v2@1".parse().unwrap();
        assert_eq!(
            (r.model.as_str(), r.version),
            ("Fraud Model v2", VersionRef::Number(1))
        );
        let r: ModelVersionRef = "team@fraud@latest".parse().unwrap();
        assert_eq!(
            (r.model.as_str(), r.version),
            ("team@fraud", VersionRef::Latest)
        );
        for bad in [
            "demo@0",
            "demo@",
            "demo@a.b",
            "@1",
            "bad/name@1",
            "demo@99999999999999999999",
        ] {
            assert!(bad.parse::<ModelVersionRef>().is_err(), "{bad}");
        }
    }
}
