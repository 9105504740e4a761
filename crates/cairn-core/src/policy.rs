//! Promotion policies: the rules a version must meet before an alias may point at it,
//! and their evaluation — a pure function of the version, the version the alias holds
//! now, and the approvals recorded, so that every door (CLI, native API, MLflow alias
//! and stage calls) refuses with the same list of unmet rules.

use std::fmt;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;

use crate::ValidationError;
use crate::auth::ModelPattern;
use crate::model::{Metrics, Tags};

/// The rules of one policy. Every rule must hold; an empty policy holds always.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Policy {
    /// Tags the version must carry with exactly these values.
    #[serde(default)]
    pub require_tags: Vec<TagRule>,
    /// Metrics the version must have, compared with a bound: `auc>=0.9`.
    #[serde(default)]
    pub require_metrics: Vec<MetricRule>,
    /// Metrics that must be at least as good as the version the alias holds now's
    /// (`auc`: higher is better; `rmse:lower`: lower is better).
    #[serde(default)]
    pub not_worse: Vec<NotWorse>,
    /// Approvals the version needs for this alias, from distinct actors other than its
    /// author.
    #[serde(default)]
    pub approvals: u32,
    /// Glob patterns each of which some file of the version must match.
    #[serde(default)]
    pub require_files: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TagRule {
    pub key: String,
    pub value: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub enum Comparison {
    #[serde(rename = ">=")]
    AtLeast,
    #[serde(rename = ">")]
    Above,
    #[serde(rename = "<=")]
    AtMost,
    #[serde(rename = "<")]
    Below,
    #[serde(rename = "==")]
    Equal,
}

impl Comparison {
    const ALL: [(&'static str, Self); 5] = [
        (">=", Self::AtLeast),
        ("<=", Self::AtMost),
        ("==", Self::Equal),
        (">", Self::Above),
        ("<", Self::Below),
    ];

    fn holds(self, value: f64, bound: f64) -> bool {
        match self {
            Self::AtLeast => value >= bound,
            Self::Above => value > bound,
            Self::AtMost => value <= bound,
            Self::Below => value < bound,
            Self::Equal => value == bound,
        }
    }

    fn symbol(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(_, c)| *c == self)
            .map_or("?", |(s, _)| s)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct MetricRule {
    pub key: String,
    #[serde(rename = "op")]
    pub comparison: Comparison,
    pub value: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct NotWorse {
    pub key: String,
    /// Lower values are better (a loss, an error).
    #[serde(default)]
    pub lower_is_better: bool,
}

impl std::str::FromStr for TagRule {
    type Err = ValidationError;

    /// `KEY=VALUE`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (key, value) = s
            .split_once('=')
            .ok_or_else(|| ValidationError::Value(s.to_owned(), "expected KEY=VALUE"))?;
        Ok(Self {
            key: key.trim().to_owned(),
            value: value.to_owned(),
        })
    }
}

impl std::str::FromStr for MetricRule {
    type Err = ValidationError;

    /// `auc>=0.9`, `loss<0.2`, `f1==1`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let invalid =
            || ValidationError::Value(s.to_owned(), "expected METRIC>=NUMBER (or >, <=, <, ==)");
        let (at, symbol, comparison) = Comparison::ALL
            .iter()
            .filter_map(|(symbol, c)| s.find(symbol).map(|at| (at, *symbol, *c)))
            .min_by_key(|(at, symbol, _)| (*at, std::cmp::Reverse(symbol.len())))
            .ok_or_else(invalid)?;
        let key = s[..at].trim();
        let value: f64 = s[at + symbol.len()..]
            .trim()
            .parse()
            .map_err(|_| invalid())?;
        if key.is_empty() || !value.is_finite() {
            return Err(invalid());
        }
        Ok(Self {
            key: key.to_owned(),
            comparison,
            value,
        })
    }
}

impl std::str::FromStr for NotWorse {
    type Err = ValidationError;

    /// `auc` (higher is better) or `rmse:lower`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (key, lower) = match s.split_once(':') {
            Some((key, "lower")) => (key, true),
            Some((key, "higher")) => (key, false),
            Some(_) => {
                return Err(ValidationError::Value(
                    s.to_owned(),
                    "expected METRIC, METRIC:higher or METRIC:lower",
                ));
            }
            None => (s, false),
        };
        if key.trim().is_empty() {
            return Err(ValidationError::Value(
                s.to_owned(),
                "a metric name is needed",
            ));
        }
        Ok(Self {
            key: key.trim().to_owned(),
            lower_is_better: lower,
        })
    }
}

impl fmt::Display for MetricRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}{}", self.key, self.comparison.symbol(), self.value)
    }
}

/// What a policy is evaluated on: a version's author, tags, metrics and file paths.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct VersionFacts {
    pub model: String,
    pub version: u64,
    pub created_by: String,
    pub tags: Tags,
    pub metrics: Metrics,
    pub files: Vec<String>,
}

/// A policy as stored: the models (a pattern) and the alias it governs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PolicyRecord {
    /// A model name, or a pattern of `*` and `?` (`*`: every model).
    pub models: String,
    pub alias: String,
    pub policy: Policy,
    pub set_by: String,
    #[serde(with = "time::serde::rfc3339")]
    pub set_at: OffsetDateTime,
}

impl PolicyRecord {
    /// Whether this policy governs `model` (its name or pattern matches it).
    pub fn governs(&self, model: &str) -> bool {
        ModelPattern::new(&self.models).is_ok_and(|m| m.matches(model))
    }

    /// Whether it is one model's, not a pattern's.
    pub fn is_for_one_model(&self) -> bool {
        !ModelPattern::is_pattern(&self.models)
    }
}

impl Policy {
    /// Checks the policy's own values (patterns that compile).
    pub fn check(&self) -> Result<(), ValidationError> {
        for pattern in &self.require_files {
            globset::Glob::new(pattern)
                .map_err(|_| ValidationError::Value(pattern.clone(), "not a file pattern"))?;
        }
        for tag in &self.require_tags {
            if tag.key.is_empty() {
                return Err(ValidationError::Value(
                    String::new(),
                    "a required tag needs a key",
                ));
            }
        }
        Ok(())
    }

    /// Every rule `candidate` does not meet, in words, for moving an alias from
    /// `current` (the version it holds now, if any) to it, with the approvals of
    /// `approvers`. Empty: it may move.
    pub fn unmet(
        &self,
        candidate: &VersionFacts,
        current: Option<&VersionFacts>,
        approvers: &[String],
    ) -> Vec<String> {
        let mut unmet = Vec::new();
        for TagRule { key, value } in &self.require_tags {
            match candidate.tags.get(key) {
                Some(v) if v == value => {}
                Some(v) => unmet.push(format!("tag {key} must be {value:?} (it is {v:?})")),
                None => unmet.push(format!("tag {key}={value} is missing")),
            }
        }
        for rule in &self.require_metrics {
            match candidate.metrics.get(&rule.key) {
                Some(v) if rule.comparison.holds(*v, rule.value) => {}
                Some(v) => unmet.push(format!("metric {rule} is not met ({} is {v})", rule.key)),
                None => unmet.push(format!(
                    "metric {rule} is not met ({} is missing)",
                    rule.key
                )),
            }
        }
        for NotWorse {
            key,
            lower_is_better,
        } in &self.not_worse
        {
            let Some(now) = current else { continue };
            let (Some(new), Some(old)) = (candidate.metrics.get(key), now.metrics.get(key)) else {
                if !candidate.metrics.contains_key(key) {
                    unmet.push(format!(
                        "metric {key} is missing, so it cannot be compared with {}@{}",
                        now.model, now.version
                    ));
                }
                continue;
            };
            let worse = if *lower_is_better {
                new > old
            } else {
                new < old
            };
            if worse {
                unmet.push(format!(
                    "metric {key} is worse than {}@{}'s ({new} against {old})",
                    now.model, now.version
                ));
            }
        }
        if self.approvals > 0 {
            let mut approvers: Vec<&str> = approvers
                .iter()
                .filter(|a| **a != candidate.created_by)
                .map(String::as_str)
                .collect();
            approvers.sort_unstable();
            approvers.dedup();
            if (approvers.len() as u32) < self.approvals {
                unmet.push(format!(
                    "{} approval(s) needed from someone other than its author, {} given",
                    self.approvals,
                    approvers.len()
                ));
            }
        }
        if !self.require_files.is_empty() {
            for pattern in &self.require_files {
                let matcher = globset::Glob::new(pattern).map(|g| g.compile_matcher());
                if !matcher.is_ok_and(|m| candidate.files.iter().any(|f| m.is_match(f))) {
                    unmet.push(format!("no file matches {pattern}"));
                }
            }
        }
        unmet
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn version(author: &str) -> VersionFacts {
        VersionFacts {
            model: "fraud".into(),
            version: 2,
            created_by: author.into(),
            tags: [("team".to_owned(), "risk".to_owned())].into(),
            metrics: [("auc".to_owned(), 0.85), ("rmse".to_owned(), 0.3)].into(),
            files: vec!["model.onnx".into()],
        }
    }

    #[test]
    fn rules_parse() {
        let m: MetricRule = "auc>=0.9".parse().unwrap();
        assert_eq!(
            (m.key.as_str(), m.comparison, m.value),
            ("auc", Comparison::AtLeast, 0.9)
        );
        let m: MetricRule = "loss<0.2".parse().unwrap();
        assert_eq!(m.comparison, Comparison::Below);
        assert!("auc".parse::<MetricRule>().is_err());
        assert!("auc>=x".parse::<MetricRule>().is_err());
        assert!("rmse:lower".parse::<NotWorse>().unwrap().lower_is_better);
        assert!("rmse:sideways".parse::<NotWorse>().is_err());
    }

    #[test]
    fn every_unmet_rule_is_listed_and_the_author_does_not_count() {
        let policy = Policy {
            require_tags: vec!["validated=true".parse().unwrap()],
            require_metrics: vec!["auc>=0.9".parse().unwrap()],
            approvals: 2,
            ..Policy::default()
        };
        let unmet = policy.unmet(&version("ada"), None, &["ada".into(), "bob".into()]);
        assert_eq!(unmet.len(), 3, "{unmet:?}");
        assert!(unmet[2].contains("1 given"), "{unmet:?}");
    }

    #[test]
    fn not_worse_compares_with_the_current_version() {
        let policy = Policy {
            not_worse: vec!["auc".parse().unwrap(), "rmse:lower".parse().unwrap()],
            ..Policy::default()
        };
        let mut current = version("bob");
        current.metrics.insert("auc".into(), 0.8);
        current.metrics.insert("rmse".into(), 0.2);
        let unmet = policy.unmet(&version("ada"), Some(&current), &[]);
        assert_eq!(unmet.len(), 1, "{unmet:?}");
        assert!(unmet[0].contains("rmse is worse"), "{unmet:?}");
        assert!(policy.unmet(&version("ada"), None, &[]).is_empty());
    }
}
