//! Tracking rows, each decoded from either driver, and the queries that complete a
//! page of runs with their details.

use std::collections::{BTreeMap, HashMap};

use cairn_core::tracking::{DatasetInput, Lifecycle, Metric, Run, RunInfo, RunStatus};

use super::{metric_from_db, push_in};
use crate::db::Backend;
use crate::db::sql::{Columns, Decode, DecodeError, SqlBuilder, decoded_row};

pub(super) struct ExperimentRow {
    pub(super) id: i64,
    pub(super) name: String,
    pub(super) artifact_location: String,
    pub(super) lifecycle_stage: String,
    pub(super) creation_time: i64,
    pub(super) last_update_time: i64,
}

pub(super) struct RunRow {
    pub(super) id: String,
    pub(super) experiment_id: i64,
    pub(super) name: String,
    pub(super) user_id: String,
    pub(super) status: String,
    pub(super) start_time: i64,
    pub(super) end_time: Option<i64>,
    pub(super) lifecycle_stage: String,
    pub(super) artifact_uri: String,
}

pub(super) struct LoggedModelRow {
    pub(super) id: String,
    pub(super) experiment_id: i64,
    pub(super) name: String,
    pub(super) artifact_uri: String,
    pub(super) status: String,
    pub(super) model_type: String,
    pub(super) source_run_id: Option<String>,
    pub(super) creation_time: i64,
    pub(super) last_updated_time: i64,
}

pub(super) const RUN_COLUMNS: &str = "r.id, r.experiment_id, r.name, r.user_id, r.status, r.start_time, r.end_time, r.lifecycle_stage, r.artifact_uri";

/// The columns of [`RUN_COLUMNS`], in its order.
impl Decode for RunRow {
    fn decode(c: &mut Columns<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            id: c.next()?,
            experiment_id: c.next()?,
            name: c.next()?,
            user_id: c.next()?,
            status: c.next()?,
            start_time: c.next()?,
            end_time: c.next()?,
            lifecycle_stage: c.next()?,
            artifact_uri: c.next()?,
        })
    }
}
decoded_row!(RunRow);

/// Every column of [`ExperimentRow`], for queries over `experiments`.
pub(super) const EXPERIMENT_COLUMNS: &str =
    "id, name, artifact_location, lifecycle_stage, creation_time, last_update_time";

/// The columns of [`EXPERIMENT_COLUMNS`], in its order.
impl Decode for ExperimentRow {
    fn decode(c: &mut Columns<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            id: c.next()?,
            name: c.next()?,
            artifact_location: c.next()?,
            lifecycle_stage: c.next()?,
            creation_time: c.next()?,
            last_update_time: c.next()?,
        })
    }
}
decoded_row!(ExperimentRow);

/// Every column of [`LoggedModelRow`], for queries over `logged_models`.
pub(super) const LOGGED_MODEL_COLUMNS: &str = "id, experiment_id, name, artifact_uri, status, \
     model_type, source_run_id, creation_time, last_updated_time";

/// The columns of [`LOGGED_MODEL_COLUMNS`], in its order.
impl Decode for LoggedModelRow {
    fn decode(c: &mut Columns<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            id: c.next()?,
            experiment_id: c.next()?,
            name: c.next()?,
            artifact_uri: c.next()?,
            status: c.next()?,
            model_type: c.next()?,
            source_run_id: c.next()?,
            creation_time: c.next()?,
            last_updated_time: c.next()?,
        })
    }
}
decoded_row!(LoggedModelRow);

/// Each run's details as JSON arrays (or NULL for none), for PostgreSQL to select
/// beside [`RUN_COLUMNS`]: a page of runs and all their details in one round trip.
/// PostgreSQL evaluates these per row it returns (after ORDER BY and LIMIT), each
/// through its table's `(run_id, …)` primary key. Metric values travel as text, which
/// PostgreSQL writes exactly (shortest round-trip digits, `Infinity`, `NaN`).
const RUN_DETAIL_JSON: &str = "\
    (SELECT json_agg(json_build_array(key, value::text, is_nan, timestamp, step) ORDER BY key)::text \
       FROM run_latest_metrics WHERE run_id = r.id), \
    (SELECT json_agg(json_build_array(key, value))::text FROM run_params WHERE run_id = r.id), \
    (SELECT json_agg(json_build_array(key, value))::text FROM run_tags WHERE run_id = r.id), \
    (SELECT json_agg(json_build_array(name, digest, source_type, source, schema, profile, context, tags))::text \
       FROM run_inputs WHERE run_id = r.id), \
    (SELECT json_agg(json_build_array(model_id, step))::text FROM \
       (SELECT model_id, step FROM run_outputs WHERE run_id = r.id \
        UNION ALL SELECT model_id, NULL FROM run_model_inputs WHERE run_id = r.id) o)";

/// What a query for runs with their details selects: [`RUN_COLUMNS`] and, on
/// PostgreSQL, [`RUN_DETAIL_JSON`] (decoded by [`RunPageRow`]). On SQLite the details
/// come from [`RunDetailQueries`], on the same snapshot, with no round trips to save.
pub(super) fn run_page_columns(backend: Backend) -> String {
    match backend {
        Backend::Sqlite => RUN_COLUMNS.to_owned(),
        Backend::Postgres => format!("{RUN_COLUMNS}, {RUN_DETAIL_JSON}"),
    }
}

/// A run and its details as [`run_page_columns`] selects them on PostgreSQL.
pub(super) struct RunPageRow {
    run: RunRow,
    metrics: Option<String>,
    params: Option<String>,
    tags: Option<String>,
    inputs: Option<String>,
    outputs: Option<String>,
}

impl Decode for RunPageRow {
    fn decode(c: &mut Columns<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            run: RunRow::decode(c)?,
            metrics: c.next()?,
            params: c.next()?,
            tags: c.next()?,
            inputs: c.next()?,
            outputs: c.next()?,
        })
    }
}
decoded_row!(RunPageRow);

/// A value the database sent that does not decode.
fn undecodable(what: String) -> crate::Error {
    crate::Error::Database(sqlx::Error::Decode(what.into()))
}

/// One run's JSON array of details, each element with the run id put in front (the
/// shape of the rows of [`RunDetailQueries`]).
fn json_rows<T, R>(
    run: &str,
    json: Option<String>,
    with_run: impl Fn(String, T) -> R,
) -> crate::Result<Vec<R>>
where
    T: serde::de::DeserializeOwned,
{
    let Some(json) = json else {
        return Ok(Vec::new());
    };
    let rows: Vec<T> = serde_json::from_str(&json)
        .map_err(|e| undecodable(format!("details of run {run}: {e}")))?;
    Ok(rows
        .into_iter()
        .map(|row| with_run(run.to_owned(), row))
        .collect())
}

impl RunDetails {
    /// The details of the runs of `page`, and the runs.
    pub(super) fn from_page(page: Vec<RunPageRow>) -> crate::Result<(Self, Vec<RunInfo>)> {
        let mut details = RunDetails {
            metrics: Vec::new(),
            params: Vec::new(),
            tags: Vec::new(),
            inputs: Vec::new(),
            outputs: Vec::new(),
        };
        let mut infos = Vec::with_capacity(page.len());
        for row in page {
            let run = row.run.id.clone();
            for (run, (key, value, is_nan, timestamp, step)) in
                json_rows::<(String, String, i64, i64, i64), _>(&run, row.metrics, |r, m| (r, m))?
            {
                let value: f64 = value
                    .parse()
                    .map_err(|_| undecodable(format!("metric {key} of run {run}: {value:?}")))?;
                details
                    .metrics
                    .push((run, key, value, is_nan, timestamp, step));
            }
            let pair = |r, (k, v): (String, String)| (r, k, v);
            details.params.extend(json_rows(&run, row.params, pair)?);
            details.tags.extend(json_rows(&run, row.tags, pair)?);
            details.inputs.extend(json_rows(
                &run,
                row.inputs,
                |r, (name, digest, source_type, source, schema, profile, context, tags)| {
                    (
                        r,
                        name,
                        digest,
                        source_type,
                        source,
                        schema,
                        profile,
                        context,
                        tags,
                    )
                },
            )?);
            details
                .outputs
                .extend(json_rows(&run, row.outputs, |r, (model, step)| {
                    (r, model, step)
                })?);
            infos.push(row.run.into_info());
        }
        Ok((details, infos))
    }
}

/// The statements that fetch the details of a set of runs.
pub(super) struct RunDetailQueries {
    pub(super) metrics: SqlBuilder,
    pub(super) params: SqlBuilder,
    pub(super) tags: SqlBuilder,
    pub(super) inputs: SqlBuilder,
    pub(super) outputs: SqlBuilder,
}

impl RunDetailQueries {
    pub(super) fn new(backend: Backend, ids: &[&str]) -> Self {
        let select = |sql: &str, order: &str| {
            let mut q = SqlBuilder::new(backend, sql);
            push_in(&mut q, "run_id", ids);
            q.push(order);
            q
        };
        Self {
            // In the order of the table's key: no sort, each run's metrics by key.
            metrics: select(
                "SELECT run_id, key, value, is_nan, timestamp, step FROM run_latest_metrics WHERE ",
                " ORDER BY run_id, key",
            ),
            params: select("SELECT run_id, key, value FROM run_params WHERE ", ""),
            tags: select("SELECT run_id, key, value FROM run_tags WHERE ", ""),
            inputs: select(
                "SELECT run_id, name, digest, source_type, source, schema, profile, context, tags FROM run_inputs WHERE ",
                "",
            ),
            // Models the runs produced (with a step) and used (without), in one trip.
            outputs: {
                let mut q = select(
                    "SELECT run_id, model_id, step FROM run_outputs WHERE ",
                    " UNION ALL SELECT run_id, model_id, NULL FROM run_model_inputs WHERE ",
                );
                push_in(&mut q, "run_id", ids);
                q
            },
        }
    }
}

pub(super) type InputRow = (
    String,
    String,
    String,
    String,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
);

/// The rows [`RunDetailQueries`] return.
pub(super) struct RunDetails {
    pub(super) metrics: Vec<(String, String, f64, i64, i64, i64)>,
    pub(super) params: Vec<(String, String, String)>,
    pub(super) tags: Vec<(String, String, String)>,
    pub(super) inputs: Vec<InputRow>,
    /// Models produced (`Some(step)`) and used (`None`).
    pub(super) outputs: Vec<(String, String, Option<i64>)>,
}

impl RunDetails {
    pub(super) fn attach_to(self, infos: Vec<RunInfo>) -> Vec<Run> {
        let mut metrics: HashMap<String, Vec<Metric>> = HashMap::new();
        for (run, key, value, is_nan, timestamp, step) in self.metrics {
            metrics.entry(run).or_default().push(Metric {
                key,
                value: metric_from_db(value, is_nan),
                timestamp,
                step,
            });
        }
        let key_values = |rows: Vec<(String, String, String)>| {
            let mut by_run: HashMap<String, BTreeMap<String, String>> = HashMap::new();
            for (run, k, v) in rows {
                by_run.entry(run).or_default().insert(k, v);
            }
            by_run
        };
        let mut params = key_values(self.params);
        let mut tags = key_values(self.tags);
        let mut inputs: HashMap<String, Vec<DatasetInput>> = HashMap::new();
        for (run, name, digest, source_type, source, schema, profile, context, tags) in self.inputs
        {
            // Inputs recorded before tags were kept have their context alone.
            let tags = match tags {
                Some(json) => serde_json::from_str(&json).unwrap_or_default(),
                None => context
                    .map(|c| BTreeMap::from([(DatasetInput::CONTEXT_TAG.to_owned(), c)]))
                    .unwrap_or_default(),
            };
            inputs.entry(run).or_default().push(DatasetInput {
                name,
                digest,
                source_type,
                source,
                schema,
                profile,
                tags,
            });
        }
        let mut outputs: HashMap<String, Vec<(String, i64)>> = HashMap::new();
        let mut model_inputs: HashMap<String, Vec<String>> = HashMap::new();
        for (run, model, step) in self.outputs {
            match step {
                Some(step) => outputs.entry(run).or_default().push((model, step)),
                None => model_inputs.entry(run).or_default().push(model),
            }
        }
        infos
            .into_iter()
            .map(|info| Run {
                metrics: metrics.remove(&info.id).unwrap_or_default(),
                params: params.remove(&info.id).unwrap_or_default(),
                tags: tags.remove(&info.id).unwrap_or_default(),
                inputs: inputs.remove(&info.id).unwrap_or_default(),
                model_inputs: model_inputs.remove(&info.id).unwrap_or_default(),
                outputs: outputs.remove(&info.id).unwrap_or_default(),
                info,
            })
            .collect()
    }
}

impl RunRow {
    pub(super) fn into_info(self) -> RunInfo {
        RunInfo {
            id: self.id,
            experiment_id: self.experiment_id,
            name: self.name,
            user_id: self.user_id,
            status: RunStatus::parse(&self.status).unwrap_or(RunStatus::Running),
            start_time: self.start_time,
            end_time: self.end_time,
            lifecycle: Lifecycle::parse(&self.lifecycle_stage).unwrap_or(Lifecycle::Active),
            artifact_uri: self.artifact_uri,
        }
    }
}
