//! Runs: create, read with their details, update, params,
//! tags, metric histories (batches through the metric writer), dataset inputs, outputs.

use std::collections::BTreeMap;

use cairn_core::lineage::{CodeRef, DataRef, LineageInput};
use cairn_core::tracking::{DatasetInput, Lifecycle, Metric, Run, RunInfo, RunStatus};

use super::rows::{RUN_COLUMNS, RunPageRow, RunRow, run_page_columns, sqlite_runs};
use super::{
    BATCH_METRICS_MAX, BATCH_PARAMS_MAX, BATCH_TAGS_MAX, MetricValue, PARAM_VALUE_MAX,
    TAG_VALUE_MAX, Tracking, check_key, generated_run_name, invalid, metric_from_db, metric_to_db,
    random_hex32, truncate,
};
use crate::db::sql::SqlBuilder;
use crate::db::sqlite_reads::{self, ReadSize};
use crate::key_values::{RUN_PARAMS, RUN_TAGS};
use crate::metric_writer::Outcome;
use crate::{Error, Missing, Refusal, Result, metric_writer};

impl Tracking {
    // ---- runs ----

    pub async fn create_run(
        &self,
        experiment_id: i64,
        user_id: &str,
        start_time: i64,
        run_name: Option<&str>,
        tags: &BTreeMap<String, String>,
    ) -> Result<Run> {
        let exp = self.get_experiment(experiment_id).await?;
        if exp.lifecycle != Lifecycle::Active {
            return Err(Error::Refused(Refusal::ExperimentDeleted {
                id: experiment_id,
                for_run: true,
            }));
        }
        for key in tags.keys() {
            check_key(key)?;
        }
        let id = random_hex32();
        let name = run_name
            .filter(|n| !n.is_empty())
            .map(str::to_owned)
            .or_else(|| tags.get("mlflow.runName").cloned())
            .unwrap_or_else(generated_run_name);
        let artifact_uri = format!(
            "{}/{id}/artifacts",
            exp.artifact_location.trim_end_matches('/')
        );
        let mut tx = self.meta.write_tx().await?;
        // Created once: a lost commit's outcome is learned from this mark (`db::outcome`).
        tx.mark_commit().await?;
        tx.query(
            "INSERT INTO runs (id, experiment_id, name, user_id, status, start_time, artifact_uri)
             VALUES ($1, $2, $3, $4, 'RUNNING', $5, $6)",
        )
        .bind(&id)
        .bind(experiment_id)
        .bind(&name)
        .bind(user_id)
        .bind(start_time)
        .bind(&artifact_uri)
        .execute()
        .await?;
        let mut tags = tags.clone();
        tags.insert("mlflow.runName".into(), name);
        for (k, v) in &tags {
            tx.query(&RUN_TAGS.insert_sql())
                .bind(&id)
                .bind(k)
                .bind(truncate(v, TAG_VALUE_MAX))
                .execute()
                .await?;
        }
        tx.commit().await?;
        self.get_run(&id).await
    }

    /// A run's info alone (no metrics, params or tags): one query.
    pub async fn run_info(&self, id: &str) -> Result<RunInfo> {
        let mut q = SqlBuilder::new(
            self.meta.backend(),
            format!("SELECT {RUN_COLUMNS} FROM runs r WHERE r.id = "),
        );
        q.push_bind(id);
        self.meta
            .read_rows::<RunRow>(q)
            .await?
            .pop()
            .map(RunRow::into_info)
            .ok_or_else(|| Error::NotFound(Missing::Run(id.to_owned())))
    }

    pub(super) async fn active_run(&self, id: &str) -> Result<RunInfo> {
        let info = self.run_info(id).await?;
        if info.lifecycle != Lifecycle::Active {
            return Err(Error::Refused(Refusal::RunDeleted(id.to_owned())));
        }
        Ok(info)
    }

    /// The lineage a version registered from run `id` takes from it: the run, the git
    /// state MLflow tags it with (`mlflow.source.git.*`) and the datasets logged as its
    /// inputs. One query.
    pub async fn run_lineage(&self, id: &str) -> Result<LineageInput> {
        let mut q = SqlBuilder::new(
            self.meta.backend(),
            "SELECT 't', key, value FROM run_tags WHERE run_id = ",
        );
        q.push_bind(id).push(
            " AND key IN ('mlflow.source.git.commit', 'mlflow.source.git.branch', 'mlflow.source.git.repoURL')
             UNION ALL SELECT 'd', name, digest FROM run_inputs WHERE run_id = ",
        );
        q.push_bind(id);
        let rows: Vec<(String, String, String)> = self.meta.read_rows(q).await?;
        let mut git = BTreeMap::new();
        let mut data = Vec::new();
        for (kind, a, b) in rows {
            if kind == "t" {
                git.insert(a, b);
            } else {
                data.push(DataRef {
                    kind: "mlflow".into(),
                    path: a,
                    digest: b,
                    size: None,
                    files: None,
                });
            }
        }
        data.sort_by(|x, y| (&x.path, &x.digest).cmp(&(&y.path, &y.digest)));
        let tag = |key: &str| git.get(key).filter(|v| !v.is_empty()).cloned();
        Ok(LineageInput {
            run_id: Some(id.to_owned()),
            code: tag("mlflow.source.git.commit").map(|commit| CodeRef {
                commit,
                branch: tag("mlflow.source.git.branch"),
                remote: tag("mlflow.source.git.repoURL"),
                // MLflow does not record whether the work tree had changes.
                dirty: false,
            }),
            data,
            parents: Vec::new(),
            environment: Vec::new(),
        })
    }

    pub async fn get_run(&self, id: &str) -> Result<Run> {
        let mut q = SqlBuilder::new(
            self.meta.backend(),
            format!(
                "SELECT {} FROM runs r WHERE r.id = ",
                run_page_columns(self.meta.backend())
            ),
        );
        q.push_bind(id);
        self.runs_with_details(q, ReadSize::of_runs(1))
            .await?
            .pop()
            .ok_or_else(|| Error::NotFound(Missing::Run(id.to_owned())))
    }

    /// The runs `runs` selects (its columns: [`run_page_columns`]), each with its
    /// metrics, params, tags, inputs and outputs; `size`: how much the query reads. On
    /// SQLite, six statements on one snapshot (see `sqlite_reads`); on PostgreSQL, one.
    pub(super) async fn runs_with_details(
        &self,
        mut runs: SqlBuilder,
        size: ReadSize,
    ) -> Result<Vec<Run>> {
        if let Some(reads) = self.meta.sqlite_reads() {
            return reads
                .read(size, move |conn| {
                    let infos: Vec<RunInfo> = sqlite_reads::rows::<RunRow>(conn, &runs)?
                        .into_iter()
                        .map(RunRow::into_info)
                        .collect();
                    if infos.is_empty() {
                        return Ok(Vec::new());
                    }
                    sqlite_runs(conn, infos)
                })
                .await;
        }
        // PostgreSQL: the runs and their details in one statement (`run_page_columns`).
        let page: Vec<RunPageRow> = runs.build_query_as().fetch_all(self.pool()).await?;
        page.into_iter().map(RunPageRow::into_run).collect()
    }

    pub async fn update_run(
        &self,
        id: &str,
        status: Option<RunStatus>,
        end_time: Option<i64>,
        run_name: Option<&str>,
    ) -> Result<RunInfo> {
        self.active_run(id).await?;
        let mut tx = self.meta.write_tx().await?;
        if let Some(status) = status {
            tx.query("UPDATE runs SET status = $2 WHERE id = $1")
                .bind(id)
                .bind(status.as_str())
                .execute()
                .await?;
        }
        if let Some(end) = end_time {
            tx.query("UPDATE runs SET end_time = $2 WHERE id = $1")
                .bind(id)
                .bind(end)
                .execute()
                .await?;
        }
        if let Some(name) = run_name.filter(|n| !n.is_empty()) {
            tx.query("UPDATE runs SET name = $2 WHERE id = $1")
                .bind(id)
                .bind(name)
                .execute()
                .await?;
            tx.query(&RUN_TAGS.upsert_sql())
                .bind(id)
                .bind("mlflow.runName")
                .bind(name)
                .execute()
                .await?;
        }
        tx.commit().await?;
        self.run_info(id).await
    }

    pub async fn set_run_lifecycle(&self, id: &str, lifecycle: Lifecycle) -> Result<()> {
        self.run_info(id).await?;
        self.meta
            .write("UPDATE runs SET lifecycle_stage = $2 WHERE id = $1")
            .bind(id)
            .bind(lifecycle.as_str())
            .execute()
            .await?;
        Ok(())
    }

    /// Logs metrics, params and tags in one transaction. A param may be logged again
    /// only with the same value.
    pub async fn log_batch(
        &self,
        run_id: &str,
        metrics: &[MetricValue],
        params: &[(String, String)],
        tags: &[(String, String)],
    ) -> Result<()> {
        if metrics.len() > BATCH_METRICS_MAX
            || params.len() > BATCH_PARAMS_MAX
            || tags.len() > BATCH_TAGS_MAX
        {
            return Err(Error::Refused(Refusal::BatchTooLarge));
        }
        for m in metrics {
            check_key(&m.key)?;
        }
        let mut seen = BTreeMap::new();
        for (k, v) in params {
            check_key(k)?;
            if let Some(previous) = seen.insert(k.as_str(), v.as_str())
                && previous != v
            {
                return Err(Error::Refused(Refusal::DuplicateParam(k.clone())));
            }
        }
        for (k, _) in tags {
            check_key(k)?;
        }
        if params.is_empty() && tags.is_empty() {
            return self.log_metrics(run_id, metrics).await;
        }
        self.active_run(run_id).await?;
        let mut tx = self.meta.write_tx().await?;
        for (k, v) in params {
            let v = truncate(v, PARAM_VALUE_MAX);
            let existing: Option<String> = tx
                .query("SELECT value FROM run_params WHERE run_id = $1 AND key = $2")
                .bind(run_id)
                .bind(k)
                .scalar_optional()
                .await?;
            match existing {
                Some(old) if old != v => {
                    return Err(Error::Refused(Refusal::ParamChanged {
                        run: run_id.to_owned(),
                        key: k.clone(),
                        old,
                        new: v.to_string(),
                    }));
                }
                Some(_) => {}
                None => {
                    tx.query(&RUN_PARAMS.insert_sql())
                        .bind(run_id)
                        .bind(k)
                        .bind(v)
                        .execute()
                        .await?;
                }
            }
        }
        for (k, v) in tags {
            tx.query(&RUN_TAGS.upsert_sql())
                .bind(run_id)
                .bind(k)
                .bind(truncate(v, TAG_VALUE_MAX))
                .execute()
                .await?;
            if k == "mlflow.runName" {
                tx.query("UPDATE runs SET name = $2 WHERE id = $1")
                    .bind(run_id)
                    .bind(v)
                    .execute()
                    .await?;
            }
        }
        let rows: Vec<(&str, &MetricValue)> = metrics.iter().map(|m| (run_id, m)).collect();
        for chunk in rows.chunks(500) {
            let mut q = SqlBuilder::new(
                tx.backend,
                "INSERT INTO run_metrics (run_id, key, value, is_nan, timestamp, step) ",
            );
            push_metric_values(&mut q, chunk);
            q.push(" ON CONFLICT DO NOTHING");
            tx.sql(q).execute().await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Metrics only, the hot path of training loops: one INSERT that checks the run is
    /// active and (through a trigger) keeps the newest value per key, atomically.
    pub(super) async fn log_metrics(&self, run_id: &str, metrics: &[MetricValue]) -> Result<()> {
        if metrics.is_empty() {
            self.active_run(run_id).await?;
            return Ok(());
        }
        match self.metrics.write(run_id, metrics).await {
            Outcome::Written => Ok(()),
            Outcome::CheckRun => {
                self.active_run(run_id).await?;
                Ok(())
            }
            Outcome::WriteAlone => self.write_metrics_alone(run_id, metrics).await,
        }
    }

    /// A request's metrics in a statement of their own.
    pub(super) async fn write_metrics_alone(
        &self,
        run_id: &str,
        metrics: &[MetricValue],
    ) -> Result<()> {
        let rows: Vec<(&str, &MetricValue)> = metrics.iter().map(|m| (run_id, m)).collect();
        if metric_writer::insert_if_active(&self.meta, &rows).await? == 0 {
            // Say why: no such run, or a deleted one.
            self.active_run(run_id).await?;
        }
        Ok(())
    }

    pub async fn delete_run_tag(&self, run_id: &str, key: &str) -> Result<()> {
        self.active_run(run_id).await?;
        let deleted = self
            .meta
            .write("DELETE FROM run_tags WHERE run_id = $1 AND key = $2")
            .bind(run_id)
            .bind(key)
            .execute()
            .await?;
        if deleted == 0 {
            return Err(Error::NotFound(Missing::RunTag {
                run: run_id.to_owned(),
                key: key.to_owned(),
            }));
        }
        Ok(())
    }

    /// Records the datasets and logged models a run used, all or none. A dataset the
    /// run used already keeps what was recorded first (its tags included), as MLflow
    /// keeps it.
    pub async fn log_inputs(
        &self,
        run_id: &str,
        inputs: &[DatasetInput],
        models: &[String],
    ) -> Result<()> {
        self.active_run(run_id).await?;
        let mut tx = self.meta.write_tx().await?;
        for d in inputs {
            let tags = serde_json::to_string(&d.tags).map_err(|e| invalid(e.to_string()))?;
            tx.query(
                "INSERT INTO run_inputs (run_id, name, digest, source_type, source, schema, profile, context, tags)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
                 ON CONFLICT (run_id, name, digest) DO NOTHING",
            )
            .bind(run_id)
            .bind(&d.name)
            .bind(&d.digest)
            .bind(&d.source_type)
            .bind(&d.source)
            .bind(&d.schema)
            .bind(&d.profile)
            .bind(d.context())
            .bind(&tags)
            .execute()
            .await?;
        }
        for model_id in models {
            tx.query(
                "INSERT INTO run_model_inputs (run_id, model_id) VALUES ($1, $2)
                 ON CONFLICT (run_id, model_id) DO NOTHING",
            )
            .bind(run_id)
            .bind(model_id)
            .execute()
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Records the models a run output, all or none.
    pub async fn log_outputs(&self, run_id: &str, models: &[(String, i64)]) -> Result<()> {
        self.active_run(run_id).await?;
        for (model_id, _) in models {
            self.get_logged_model(model_id).await?;
        }
        let mut tx = self.meta.write_tx().await?;
        for (model_id, step) in models {
            tx.query(
                "INSERT INTO run_outputs (run_id, model_id, step) VALUES ($1, $2, $3)
                 ON CONFLICT (run_id, model_id) DO UPDATE SET step = excluded.step",
            )
            .bind(run_id)
            .bind(model_id)
            .bind(step)
            .execute()
            .await?;
        }
        tx.commit().await
    }

    /// Every logged value of one metric, in (timestamp, step, value) order.
    pub async fn metric_history(&self, run_id: &str, key: &str) -> Result<Vec<Metric>> {
        self.run_info(run_id).await?;
        let rows: Vec<(f64, i64, i64, i64)> = self
            .meta
            .read(
                "SELECT value, is_nan, timestamp, step FROM run_metrics WHERE run_id = $1 AND key = $2
                 ORDER BY timestamp, step, value",
            )
            .bind(run_id)
            .bind(key)
            .fetch_all()
            .await?;
        Ok(rows
            .into_iter()
            .map(|row| stored_metric(key, row))
            .collect())
    }

    /// The values of metric `key` of run `run_id` (none for a run that does not exist),
    /// within `steps` (inclusive) when given, ordered by step, then timestamp and value:
    /// what a chart of it samples.
    pub async fn metric_values_by_step(
        &self,
        run_id: &str,
        key: &str,
        steps: Option<(i64, i64)>,
    ) -> Result<Vec<Metric>> {
        let (first, last) = steps.unwrap_or((i64::MIN, i64::MAX));
        let rows: Vec<(f64, i64, i64, i64)> = self
            .meta
            .read(
                "SELECT value, is_nan, timestamp, step FROM run_metrics
                 WHERE run_id = $1 AND key = $2 AND step >= $3 AND step <= $4
                 ORDER BY step, timestamp, value, is_nan",
            )
            .bind(run_id)
            .bind(key)
            .bind(first)
            .bind(last)
            .fetch_all()
            .await?;
        Ok(rows
            .into_iter()
            .map(|row| stored_metric(key, row))
            .collect())
    }

    /// The values of metric `key` of every run of `run_ids` (runs that do not exist have
    /// none), by run, then timestamp, step and value; at most `limit` in all.
    pub async fn metric_values_of_runs(
        &self,
        run_ids: &[String],
        key: &str,
        limit: usize,
    ) -> Result<Vec<(String, Metric)>> {
        if run_ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut q = SqlBuilder::new(
            self.meta.backend(),
            "SELECT run_id, value, is_nan, timestamp, step FROM run_metrics WHERE key = ",
        );
        q.push_bind(key.to_owned()).push(" AND run_id IN (");
        let mut list = q.separated(", ");
        for id in run_ids {
            list.push_bind(id.clone());
        }
        list.push_unseparated(") ORDER BY run_id, timestamp, step, value");
        q.push_limit(limit as u64, 0);
        let rows: Vec<(String, f64, i64, i64, i64)> = self.meta.read_sql(q).fetch_all().await?;
        Ok(rows
            .into_iter()
            .map(|(run, value, is_nan, timestamp, step)| {
                (run, stored_metric(key, (value, is_nan, timestamp, step)))
            })
            .collect())
    }
}

/// `VALUES (…), (…)` of `run_metrics` rows (run_id, key, value, is_nan, timestamp, step):
/// one per (run id, metric), in (run, key) order and each key's newest value first.
pub(crate) fn push_metric_values(q: &mut SqlBuilder, rows: &[(&str, &MetricValue)]) {
    // The latest-value trigger fires per row: with a key's newest value first it
    // rewrites that key's latest row once per statement, and the older values after it
    // only look it up (the trigger's WHERE refuses them). In key order, consecutive
    // inserts also land on the same history page.
    let mut rows = rows.to_vec();
    rows.sort_unstable_by(|(run_a, a), (run_b, b)| {
        (run_a, &a.key)
            .cmp(&(run_b, &b.key))
            .then_with(|| (b.step, b.timestamp).cmp(&(a.step, a.timestamp)))
    });
    q.push_values(rows, |mut row, (run_id, m)| {
        let (value, is_nan) = metric_to_db(m.value);
        row.push_bind(run_id.to_owned())
            .push_bind(m.key.clone())
            .push_bind(value)
            .push_bind(is_nan)
            .push_bind(m.timestamp)
            .push_bind(m.step);
    });
}

/// A value of metric `key` as stored: `(value, is_nan, timestamp, step)`.
fn stored_metric(key: &str, (value, is_nan, timestamp, step): (f64, i64, i64, i64)) -> Metric {
    Metric {
        key: key.to_owned(),
        value: metric_from_db(value, is_nan),
        timestamp,
        step,
    }
}
