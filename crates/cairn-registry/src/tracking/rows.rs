//! Tracking rows, each decoded from either driver, and the queries that complete a
//! page of runs with their details.

use std::collections::BTreeMap;

use rusqlite::Connection;

use cairn_core::tracking::{DatasetInput, Lifecycle, Metric, Run, RunInfo, RunStatus};

use super::metric_from_db;
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

/// A run with no details yet.
fn bare_run(info: RunInfo) -> Run {
    Run {
        info,
        metrics: Vec::new(),
        params: BTreeMap::new(),
        tags: BTreeMap::new(),
        inputs: Vec::new(),
        model_inputs: Vec::new(),
        outputs: Vec::new(),
    }
}

/// A dataset input as stored: inputs recorded before tags were kept have their context
/// alone.
fn dataset_input(
    (name, digest, source_type, source, schema, profile, context, tags): InputRow,
) -> DatasetInput {
    let tags = match tags {
        Some(json) => serde_json::from_str(&json).unwrap_or_default(),
        None => context
            .map(|c| BTreeMap::from([(DatasetInput::CONTEXT_TAG.to_owned(), c)]))
            .unwrap_or_default(),
    };
    DatasetInput {
        name,
        digest,
        source_type,
        source,
        schema,
        profile,
        tags,
    }
}

/// A model the run produced (at `step`) or, without a step, used.
fn add_model(run: &mut Run, model: String, step: Option<i64>) {
    match step {
        Some(step) => run.outputs.push((model, step)),
        None => run.model_inputs.push(model),
    }
}

/// One run's JSON array of details (NULL: none).
fn json_array<T: serde::de::DeserializeOwned>(
    run: &str,
    json: Option<String>,
) -> crate::Result<Vec<T>> {
    match json {
        None => Ok(Vec::new()),
        Some(json) => serde_json::from_str(&json)
            .map_err(|e| undecodable(format!("details of run {run}: {e}"))),
    }
}

impl RunPageRow {
    /// The run with the details its JSON columns hold (PostgreSQL, [`RUN_DETAIL_JSON`]).
    pub(super) fn into_run(self) -> crate::Result<Run> {
        let id = self.run.id.clone();
        let mut run = bare_run(self.run.into_info());
        for (key, value, is_nan, timestamp, step) in
            json_array::<(String, String, i64, i64, i64)>(&id, self.metrics)?
        {
            let value: f64 = value
                .parse()
                .map_err(|_| undecodable(format!("metric {key} of run {id}: {value:?}")))?;
            run.metrics.push(Metric {
                key,
                value: metric_from_db(value, is_nan),
                timestamp,
                step,
            });
        }
        run.params
            .extend(json_array::<(String, String)>(&id, self.params)?);
        run.tags
            .extend(json_array::<(String, String)>(&id, self.tags)?);
        let inputs = json_array::<InputRow>(&id, self.inputs)?;
        run.inputs.extend(inputs.into_iter().map(dataset_input));
        for (model, step) in json_array::<(String, Option<i64>)>(&id, self.outputs)? {
            add_model(&mut run, model, step);
        }
        Ok(run)
    }
}

/// A row of `run_inputs`: name, digest, source type, source, schema, profile, context,
/// tags (JSON).
type InputRow = (
    String,
    String,
    String,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
);

/// The runs of `infos` with their details, read on `conn` (SQLite, on the snapshot the
/// runs came from): five statements over the details' `(run_id, …)` keys, each row
/// decoded in place into its run, which the row names by its place on the page — no
/// run id read or looked up per row.
pub(super) fn sqlite_runs(conn: &Connection, infos: Vec<RunInfo>) -> rusqlite::Result<Vec<Run>> {
    let q = {
        let ids: Vec<&str> = infos.iter().map(|i| i.id.as_str()).collect();
        RunDetailQueries::new(&ids)
    };
    let mut runs: Vec<Run> = infos.into_iter().map(bare_run).collect();
    each_row(conn, &q.metrics, &mut runs, |run, row| {
        run.metrics.push(Metric {
            key: row.get(1)?,
            value: metric_from_db(row.get(2)?, row.get(3)?),
            timestamp: row.get(4)?,
            step: row.get(5)?,
        });
        Ok(())
    })?;
    // In key order, as PostgreSQL's page lists them (`RUN_DETAIL_JSON`): the rows come
    // so already, through the primary key, but no statement promises it.
    for run in runs.iter_mut() {
        run.metrics.sort_by(|a, b| a.key.cmp(&b.key));
    }
    each_row(conn, &q.params, &mut runs, |run, row| {
        run.params.insert(row.get(1)?, row.get(2)?);
        Ok(())
    })?;
    each_row(conn, &q.tags, &mut runs, |run, row| {
        run.tags.insert(row.get(1)?, row.get(2)?);
        Ok(())
    })?;
    each_row(conn, &q.inputs, &mut runs, |run, row| {
        run.inputs.push(dataset_input((
            row.get(1)?,
            row.get(2)?,
            row.get(3)?,
            row.get(4)?,
            row.get(5)?,
            row.get(6)?,
            row.get(7)?,
            row.get(8)?,
        )));
        Ok(())
    })?;
    each_row(conn, &q.outputs, &mut runs, |run, row| {
        add_model(run, row.get(1)?, row.get(2)?);
        Ok(())
    })?;
    Ok(runs)
}

/// Runs `q`, a statement of [`RunDetailQueries`], and hands each row to `add` with the
/// run of `runs` its first column names by place.
fn each_row(
    conn: &Connection,
    q: &SqlBuilder,
    runs: &mut [Run],
    mut add: impl FnMut(&mut Run, &rusqlite::Row<'_>) -> rusqlite::Result<()>,
) -> rusqlite::Result<()> {
    let (sql, values) = q.sqlite_statement();
    let mut statement = conn.prepare_cached(sql)?;
    let mut rows = statement.query(rusqlite::params_from_iter(values))?;
    while let Some(row) = rows.next()? {
        let place: i64 = row.get(0)?;
        let run = usize::try_from(place)
            .ok()
            .and_then(|at| runs.get_mut(at))
            .ok_or_else(|| {
                rusqlite::Error::FromSqlConversionFailure(
                    0,
                    rusqlite::types::Type::Integer,
                    format!("a detail row of page place {place}, outside the page").into(),
                )
            })?;
        add(run, row)?;
    }
    Ok(())
}

/// The statements that fetch the details of a set of runs (SQLite). The page's run
/// ids go in as one JSON array, walked by `json_each` and joined to each table's
/// primary key: one bound value and one statement text whatever the page's length, and
/// no temporary index of the ids, which an `IN (…)` list of them builds per statement.
/// Each row starts with its run's place in the array (`json_each`'s `key`), which is its
/// place on the page; each run's rows come together, in page order.
struct RunDetailQueries {
    metrics: SqlBuilder,
    params: SqlBuilder,
    tags: SqlBuilder,
    inputs: SqlBuilder,
    outputs: SqlBuilder,
}

impl RunDetailQueries {
    fn new(ids: &[&str]) -> Self {
        let ids = serde_json::to_string(ids).expect("strings serialize");
        let of_the_page = |q: &mut SqlBuilder, table: &str| {
            q.push(" FROM json_each(");
            q.push_bind(ids.clone());
            q.push(format!(") p CROSS JOIN {table} d ON d.run_id = p.value"));
        };
        let select = |columns: &str, table: &str| {
            let mut q = SqlBuilder::new(Backend::Sqlite, format!("SELECT p.key, {columns}"));
            of_the_page(&mut q, table);
            q
        };
        Self {
            metrics: select(
                "d.key, d.value, d.is_nan, d.timestamp, d.step",
                "run_latest_metrics",
            ),
            params: select("d.key, d.value", "run_params"),
            tags: select("d.key, d.value", "run_tags"),
            inputs: select(
                "d.name, d.digest, d.source_type, d.source, d.schema, d.profile, d.context, d.tags",
                "run_inputs",
            ),
            // Models the runs produced (with a step) and used (without), in one trip.
            outputs: {
                let mut q = select("d.model_id, d.step", "run_outputs");
                q.push(" UNION ALL SELECT p.key, d.model_id, NULL");
                of_the_page(&mut q, "run_model_inputs");
                q
            },
        }
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
