//! MLflow filters and order-by of registered models and versions, compiled to SQL.

use cairn_core::search::{Comparison, EntityKind, Op, OrderBy};

use crate::db::Backend;
use crate::db::sql::SqlBuilder;
use crate::{Error, Result};

/// One MLflow registered-model filter comparison as SQL over `models m`.
pub(super) fn push_model_condition(
    q: &mut SqlBuilder,
    backend: Backend,
    c: &Comparison,
) -> Result<()> {
    match (c.kind, c.key.as_str()) {
        (EntityKind::Attribute, "name") => match c.op {
            Op::IsNull => q.push("1 = 0"),
            Op::IsNotNull => q.push("1 = 1"),
            _ => {
                crate::tracking::push_string_comparison(
                    q, backend, "m.name", c.op, &c.value, "name",
                )?;
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
pub(super) fn push_version_condition(
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
                crate::tracking::push_string_comparison(
                    q, backend, column, c.op, &c.value, &c.key,
                )?;
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
pub(super) fn push_order_and_page(
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
pub(super) fn push_tag_condition(
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
        crate::tracking::push_string_comparison(q, backend, "t.value", op, &c.value, key)?;
    }
    q.push(")");
    Ok(())
}
