//! MLflow filters and order-by compiled to SQL, for every entity searched in SQL:
//! registered models, model versions (over `models m` / `versions v`) and runs (`runs r`),
//! with the string comparisons they share. Values are always bound, never spliced.

use cairn_core::search::{Comparison, EntityKind, Op, OrderBy, Value};

use crate::db::Backend;
use crate::db::sql::SqlBuilder;
use crate::{Error, Result};

fn invalid(msg: impl Into<String>) -> Error {
    Error::InvalidArgument(msg.into())
}

// ---- registered models and versions ----

/// One MLflow registered-model filter comparison as SQL over `models m`.
pub(crate) fn push_model_condition(
    q: &mut SqlBuilder,
    backend: Backend,
    c: &Comparison,
) -> Result<()> {
    match (c.kind, c.key.as_str()) {
        (EntityKind::Attribute, "name") => match c.op {
            Op::IsNull => q.push("1 = 0"),
            Op::IsNotNull => q.push("1 = 1"),
            _ => {
                push_string_comparison(q, backend, "m.name", c.op, &c.value, "name")?;
                q
            }
        },
        (EntityKind::Tag, key) => {
            push_tag_condition(q, backend, "model_tags t WHERE t.model_id = m.id", key, c)?;
            q
        }
        _ => {
            return Err(Error::InvalidArgument(format!(
                "Invalid attribute key '{}' specified. Valid keys are '{{'name'}}'",
                c.key
            )));
        }
    };
    Ok(())
}

/// One MLflow model-version filter comparison as SQL over `versions v JOIN models m`.
pub(crate) fn push_version_condition(
    q: &mut SqlBuilder,
    backend: Backend,
    c: &Comparison,
) -> Result<()> {
    use cairn_core::search::Value;
    let string_column = match (c.kind, c.key.as_str()) {
        (EntityKind::Attribute, "name") => Some("m.name"),
        (EntityKind::Attribute, "run_id") => Some("v.run_id"),
        (EntityKind::Attribute, "source_path") => Some("v.source"),
        _ => None,
    };
    if let Some(column) = string_column {
        match c.op {
            Op::IsNull => q.push("1 = 0"),
            Op::IsNotNull => q.push("1 = 1"),
            _ => {
                push_string_comparison(q, backend, column, c.op, &c.value, &c.key)?;
                q
            }
        };
        return Ok(());
    }
    match (c.kind, c.key.as_str()) {
        (EntityKind::Attribute, "version_number") => {
            let number = match &c.value {
                Value::Num(n) => Some(*n),
                Value::Str(s) => s.parse::<f64>().ok(),
                _ => None,
            };
            match (number, c.op) {
                (Some(n), Op::Eq | Op::Ne | Op::Lt | Op::Le | Op::Gt | Op::Ge) => {
                    q.push(format!("v.number {} ", c.op.sql())).push_bind(n);
                }
                // As MLflow: a version number compared with a non-number matches nothing.
                _ => {
                    q.push("1 = 0");
                }
            }
        }
        (EntityKind::Tag, key) => {
            push_tag_condition(
                q,
                backend,
                "version_tags t WHERE t.version_id = v.id",
                key,
                c,
            )?;
        }
        _ => {
            return Err(Error::InvalidArgument(format!(
                "Invalid attribute key '{}' specified. Valid keys are '{{'name', 'run_id', 'source_path', 'version_number'}}'",
                c.key
            )));
        }
    }
    Ok(())
}

/// ` ORDER BY <clauses>, <tiebreak> LIMIT … OFFSET …` for a search: each clause's key
/// mapped to its column by `column_of` (unknown keys are refused).
pub(crate) fn push_order_and_page(
    q: &mut SqlBuilder,
    order: &[OrderBy],
    column_of: impl Fn(&str) -> Option<&'static str>,
    tiebreak: &str,
    offset: usize,
    limit: usize,
) -> Result<()> {
    q.push(" ORDER BY ");
    for o in order {
        let column = column_of(&o.key).ok_or_else(|| {
            Error::InvalidArgument(format!("Invalid order by key '{}' specified.", o.key))
        })?;
        q.push(format!(
            "{column} {}, ",
            if o.ascending { "ASC" } else { "DESC" }
        ));
    }
    q.push(tiebreak).push_limit(limit as u64, offset as u64);
    Ok(())
}

/// A `tags.KEY` comparison as an EXISTS over `tags` (the tag table joined to its owner,
/// `… t WHERE t.owner = outer.id`). A model or version without the tag matches no
/// comparison but IS NULL — except `!= 'true'` on `mlflow.prompt.is_prompt`, which
/// clients add to every search to hide prompts: it keeps everything not a prompt.
pub(crate) fn push_tag_condition(
    q: &mut SqlBuilder,
    backend: Backend,
    tags: &str,
    key: &str,
    c: &Comparison,
) -> Result<()> {
    let (exists, op) = match c.op {
        Op::Ne if key == "mlflow.prompt.is_prompt" => ("NOT EXISTS", Some(Op::Eq)),
        Op::IsNull => ("NOT EXISTS", None),
        Op::IsNotNull => ("EXISTS", None),
        op => ("EXISTS", Some(op)),
    };
    q.push(format!("{exists} (SELECT 1 FROM {tags} AND t.key = "))
        .push_bind(key.to_owned());
    if let Some(op) = op {
        q.push(" AND ");
        push_string_comparison(q, backend, "t.value", op, &c.value, key)?;
    }
    q.push(")");
    Ok(())
}

// ---- runs, and the comparisons every entity shares ----

pub(crate) fn run_attribute_column(key: &str) -> Option<&'static str> {
    Some(match key {
        "run_id" | "run_uuid" => "r.id",
        "run_name" | "run name" | "Run name" | "Run Name" => "r.name",
        "status" => "r.status",
        "user_id" => "r.user_id",
        "artifact_uri" => "r.artifact_uri",
        "start_time" | "created" | "Created" => "r.start_time",
        "end_time" => "r.end_time",
        "experiment_id" => "r.experiment_id",
        _ => return None,
    })
}

pub(crate) fn push_string_comparison(
    q: &mut SqlBuilder,
    backend: Backend,
    column: &str,
    op: Op,
    value: &Value,
    what: &str,
) -> Result<()> {
    let text = |v: &Value| match v {
        Value::Str(s) => Ok(s.clone()),
        _ => Err(invalid(format!(
            "Expected a quoted string value for {what}"
        ))),
    };
    match op {
        Op::Eq | Op::Ne => {
            q.push(format!("{column} {} ", op.sql()))
                .push_bind(text(value)?);
        }
        // MLflow's LIKE is case-sensitive: PostgreSQL's LIKE is, SQLite's is not (GLOB is).
        Op::Like => match backend {
            Backend::Sqlite => {
                q.push(format!("{column} GLOB "))
                    .push_bind(like_to_glob(&text(value)?));
            }
            Backend::Postgres => {
                q.push(format!("{column} LIKE "))
                    .push_bind(text(value)?)
                    .push(" ESCAPE '\\'");
            }
        },
        Op::ILike => {
            q.push(format!("lower({column}) LIKE lower("))
                .push_bind(text(value)?)
                .push(") ESCAPE '\\'");
        }
        Op::In | Op::NotIn => {
            let Value::List(items) = value else {
                return Err(invalid(format!("Expected a list for {what}")));
            };
            q.push(format!("{column} {} (", op.sql()));
            let mut sep = q.separated(", ");
            for item in items {
                sep.push_bind(item.clone());
            }
            q.push(")");
        }
        _ => {
            return Err(invalid(format!(
                "Invalid comparator '{}' for {what}",
                op.sql()
            )));
        }
    }
    Ok(())
}

/// SQL LIKE (case-sensitive, `%` and `_`) as a GLOB pattern.
pub(crate) fn like_to_glob(pattern: &str) -> String {
    let mut out = String::new();
    for c in pattern.chars() {
        match c {
            '%' => out.push('*'),
            '_' => out.push('?'),
            '*' | '?' | '[' | ']' => {
                out.push('[');
                out.push(c);
                out.push(']');
            }
            c => out.push(c),
        }
    }
    out
}

/// `SELECT run_id FROM … WHERE …`: the runs a metric, param or tag comparison (other
/// than IS NULL / IS NOT NULL) matches, found through the (key, value) indexes.
/// The number a numeric comparison (of a metric, a time) compares with; other values
/// and operators are refused, in the words MLflow uses for each `entity`.
fn numeric_operand(c: &Comparison, expected: &str, entity: &str) -> Result<f64> {
    let Value::Num(n) = c.value else {
        return Err(invalid(format!(
            "Expected {expected} for {entity} '{}'",
            c.key
        )));
    };
    if !matches!(c.op, Op::Eq | Op::Ne | Op::Lt | Op::Le | Op::Gt | Op::Ge) {
        return Err(invalid(format!(
            "Invalid comparator '{}' for {entity}",
            c.op.sql()
        )));
    }
    Ok(n)
}

/// The ids of the runs comparison `c` (on a metric, param or tag) matches, found
/// through the by-key index of its table: (key, value), or for metrics (key, is_nan,
/// value), one range either way, holding the run ids.
pub(crate) fn push_matching_runs(
    q: &mut SqlBuilder,
    backend: Backend,
    c: &Comparison,
) -> Result<()> {
    push_matches(q, backend, c, "SELECT run_id FROM ", "")
}

/// Rows of the runs comparison `c` (on a metric, param or tag) matches, for counting
/// them: read off the by-key index alone, as [`push_matching_runs`] finds them.
pub(crate) fn push_match_rows(q: &mut SqlBuilder, backend: Backend, c: &Comparison) -> Result<()> {
    push_matches(q, backend, c, "SELECT 1 FROM ", "")
}

/// Whether run `r` matches comparison `c` (on a metric, param or tag): one look-up by
/// the run's key in its table, for plans that test runs one by one.
pub(crate) fn push_run_matches(q: &mut SqlBuilder, backend: Backend, c: &Comparison) -> Result<()> {
    q.push("EXISTS (");
    push_matches(q, backend, c, "SELECT 1 FROM ", "run_id = r.id AND ")?;
    q.push(")");
    Ok(())
}

/// `{select}{table} WHERE {correlation}<the comparison>`. NaN metric values (stored
/// with a placeholder value) match no comparison.
fn push_matches(
    q: &mut SqlBuilder,
    backend: Backend,
    c: &Comparison,
    select: &str,
    correlation: &str,
) -> Result<()> {
    match c.kind {
        EntityKind::Metric => {
            let n = numeric_operand(c, "numeric value type", "metric")?;
            // In the order of the index `run_latest_metrics_by_key`.
            q.push(format!(
                "{select}run_latest_metrics WHERE {correlation}key = "
            ))
            .push_bind(c.key.clone())
            .push(format!(" AND is_nan = 0 AND value {} ", c.op.sql()))
            .push_bind(n);
        }
        EntityKind::Param | EntityKind::Tag => {
            let table = if c.kind == EntityKind::Param {
                "run_params"
            } else {
                "run_tags"
            };
            q.push(format!("{select}{table} WHERE {correlation}key = "))
                .push_bind(c.key.clone())
                .push(" AND ");
            push_string_comparison(q, backend, "value", c.op, &c.value, &c.key)?;
        }
        _ => unreachable!("only metric, param and tag comparisons select runs by key"),
    }
    Ok(())
}

/// One filter comparison as a condition on `r`. Metric, param, tag and dataset tests are
/// uncorrelated `r.id IN (…)` subqueries: SQLite evaluates each once, through the
/// (key, value) indexes, instead of once per run.
pub(crate) fn push_run_condition(
    q: &mut SqlBuilder,
    backend: Backend,
    c: &Comparison,
) -> Result<()> {
    match c.kind {
        EntityKind::Metric => {
            q.push("r.id IN (");
            push_matching_runs(q, backend, c)?;
            q.push(")");
        }
        EntityKind::Param | EntityKind::Tag => {
            let table = if c.kind == EntityKind::Param {
                "run_params"
            } else {
                "run_tags"
            };
            match c.op {
                Op::IsNull | Op::IsNotNull => {
                    q.push(if c.op == Op::IsNull {
                        "r.id NOT IN"
                    } else {
                        "r.id IN"
                    })
                    .push(format!(" (SELECT run_id FROM {table} WHERE key = "))
                    .push_bind(c.key.clone())
                    .push(")");
                }
                _ => {
                    q.push("r.id IN (");
                    push_matching_runs(q, backend, c)?;
                    q.push(")");
                }
            }
        }
        EntityKind::Attribute => {
            let column = run_attribute_column(&c.key)
                .ok_or_else(|| invalid(format!("Invalid attribute key '{}' specified.", c.key)))?;
            if matches!(column, "r.start_time" | "r.end_time") {
                let n = numeric_operand(c, "numeric value", "attribute")?;
                q.push(format!("{column} {} ", c.op.sql()))
                    .push_bind(n as i64);
            } else {
                push_string_comparison(q, backend, column, c.op, &c.value, &c.key)?;
            }
        }
        EntityKind::Dataset => {
            let column = match c.key.as_str() {
                "name" => "name",
                "digest" => "digest",
                "context" => "context",
                _ => return Err(invalid(format!("Invalid dataset key '{}'", c.key))),
            };
            q.push("r.id IN (SELECT run_id FROM run_inputs WHERE ");
            push_string_comparison(q, backend, column, c.op, &c.value, &c.key)?;
            q.push(")");
        }
    }
    Ok(())
}
