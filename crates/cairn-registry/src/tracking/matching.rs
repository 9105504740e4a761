//! MLflow filters matched in memory, for the few experiments and logged models a
//! search reads.

use cairn_core::search::{Comparison, EntityKind, Op, Value};
use cairn_core::tracking::{Experiment, LoggedModel, LoggedModelMetric};

use super::invalid;
use crate::Result;

pub(super) fn like_matches(pattern: &str, text: &str, case_insensitive: bool) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = if case_insensitive {
        (
            pattern.to_lowercase().chars().collect(),
            text.to_lowercase().chars().collect(),
        )
    } else {
        (pattern.chars().collect(), text.chars().collect())
    };
    pub(super) fn go(p: &[char], t: &[char]) -> bool {
        match p.first() {
            None => t.is_empty(),
            Some('%') => (0..=t.len()).any(|i| go(&p[1..], &t[i..])),
            Some('_') => !t.is_empty() && go(&p[1..], &t[1..]),
            Some(c) => t.first() == Some(c) && go(&p[1..], &t[1..]),
        }
    }
    go(&p, &t)
}

/// Whether a string satisfies a string comparison (in-memory searches).
pub(super) fn string_matches(actual: Option<&str>, op: Op, value: &Value) -> bool {
    match (op, actual, value) {
        (Op::IsNull, a, _) => a.is_none(),
        (Op::IsNotNull, a, _) => a.is_some(),
        (_, None, _) => false,
        (Op::Eq, Some(a), Value::Str(v)) => a == v,
        (Op::Ne, Some(a), Value::Str(v)) => a != v,
        (Op::Like, Some(a), Value::Str(v)) => like_matches(v, a, false),
        (Op::ILike, Some(a), Value::Str(v)) => like_matches(v, a, true),
        (Op::In, Some(a), Value::List(items)) => items.iter().any(|i| i == a),
        (Op::NotIn, Some(a), Value::List(items)) => !items.iter().any(|i| i == a),
        _ => false,
    }
}

pub(super) fn experiment_matches(e: &Experiment, c: &Comparison) -> Result<bool> {
    Ok(match (c.kind, c.key.as_str()) {
        (EntityKind::Attribute, "name") => string_matches(Some(&e.name), c.op, &c.value),
        (EntityKind::Attribute, "experiment_id") => {
            string_matches(Some(&e.id.to_string()), c.op, &c.value)
        }
        (EntityKind::Attribute, key @ ("creation_time" | "last_update_time")) => {
            let actual = if key == "creation_time" {
                e.creation_time
            } else {
                e.last_update_time
            } as f64;
            let Value::Num(n) = c.value else {
                return Err(invalid(format!("Expected numeric value for {key}")));
            };
            compare_numbers(actual, c.op, n)
        }
        (EntityKind::Tag, key) => {
            string_matches(e.tags.get(key).map(String::as_str), c.op, &c.value)
        }
        _ => {
            return Err(invalid(format!(
                "Invalid attribute key '{}' specified.",
                c.key
            )));
        }
    })
}

pub(super) fn compare_numbers(actual: f64, op: Op, n: f64) -> bool {
    match op {
        Op::Eq => actual == n,
        Op::Ne => actual != n,
        Op::Lt => actual < n,
        Op::Le => actual <= n,
        Op::Gt => actual > n,
        Op::Ge => actual >= n,
        _ => false,
    }
}

/// A dataset a logged-model search restricts metrics to: a name, and a digest (a filter
/// without a digest matches no metric, as `mlflow server`'s does).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatasetFilter {
    pub name: String,
    pub digest: Option<String>,
}

impl DatasetFilter {
    fn admits(filters: &[DatasetFilter], metric: &LoggedModelMetric) -> bool {
        filters.is_empty()
            || filters.iter().any(|f| match (&metric.dataset, &f.digest) {
                (Some((name, digest)), Some(want)) => *name == f.name && digest == want,
                _ => false,
            })
    }
}

/// Whether a logged model has metric values in `datasets` (any, when none is named).
pub(super) fn has_metrics_in(m: &LoggedModel, datasets: &[DatasetFilter]) -> bool {
    datasets.is_empty() || m.metrics.iter().any(|v| DatasetFilter::admits(datasets, v))
}

/// The newest value of metric `key` (by time, then step; the first run breaks ties)
/// among those `counted`: what a search orders logged models by.
pub fn latest_metric(
    m: &LoggedModel,
    key: &str,
    counted: impl Fn(&LoggedModelMetric) -> bool,
) -> Option<f64> {
    m.metrics
        .iter()
        .filter(|v| v.key == key && counted(v))
        .max_by(|a, b| {
            (a.timestamp, a.step)
                .cmp(&(b.timestamp, b.step))
                .then_with(|| b.run_id.cmp(&a.run_id))
        })
        .map(|v| v.value)
}

pub(super) fn logged_model_matches(
    m: &LoggedModel,
    c: &Comparison,
    datasets: &[DatasetFilter],
) -> bool {
    match (c.kind, c.key.as_str()) {
        // Any value ever logged (in the datasets named) that satisfies it, as MLflow
        // matches metrics of logged models.
        (EntityKind::Metric, key) => match c.value {
            Value::Num(n) => m.metrics.iter().any(|v| {
                v.key == key
                    && DatasetFilter::admits(datasets, v)
                    && compare_numbers(v.value, c.op, n)
            }),
            _ => false,
        },
        (EntityKind::Attribute, "name") => string_matches(Some(&m.name), c.op, &c.value),
        (EntityKind::Attribute, "model_id") => string_matches(Some(&m.id), c.op, &c.value),
        (EntityKind::Attribute, "status") => string_matches(Some(&m.status), c.op, &c.value),
        (EntityKind::Attribute, "model_type") => {
            string_matches(Some(&m.model_type), c.op, &c.value)
        }
        (EntityKind::Attribute, "source_run_id") => {
            string_matches(m.source_run_id.as_deref(), c.op, &c.value)
        }
        (EntityKind::Tag, key) => {
            string_matches(m.tags.get(key).map(String::as_str), c.op, &c.value)
        }
        (EntityKind::Param, key) => {
            string_matches(m.params.get(key).map(String::as_str), c.op, &c.value)
        }
        _ => false,
    }
}
