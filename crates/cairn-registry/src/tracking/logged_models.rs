//! MLflow 3 logged models: create, read, finalize, tags, delete, search.

use std::collections::{BTreeMap, HashMap};

use cairn_core::search::{Comparison, EntityKind};
use cairn_core::tracking::{LoggedModel, LoggedModelMetric};

use super::matching::{DatasetFilter, has_metrics_in, logged_model_matches};
use super::rows::{LOGGED_MODEL_COLUMNS, LoggedModelRow};
use super::{
    ModelMetricValue, Tracking, check_key, generated_run_name, invalid, metric_from_db,
    metric_to_db, push_in, random_hex32,
};
use crate::db::now_ms;
use crate::db::sql::SqlBuilder;
use crate::key_values::{LOGGED_MODEL_PARAMS, LOGGED_MODEL_TAGS};
use crate::{Error, Missing, Result};

impl Tracking {
    // ---- logged models ----

    pub async fn create_logged_model(
        &self,
        experiment_id: i64,
        name: Option<&str>,
        source_run_id: Option<&str>,
        model_type: Option<&str>,
        tags: &BTreeMap<String, String>,
        params: &BTreeMap<String, String>,
    ) -> Result<LoggedModel> {
        // The source run is recorded as given, as MLflow records it: a logged model may
        // name a run of another tracking server.
        let exp = self.get_experiment(experiment_id).await?;
        let id = format!("m-{}", random_hex32());
        let name = name
            .filter(|n| !n.is_empty())
            .map_or_else(generated_run_name, str::to_owned);
        let artifact_uri = format!(
            "{}/models/{id}/artifacts",
            exp.artifact_location.trim_end_matches('/')
        );
        let now = now_ms();
        let mut tx = self.meta.write_tx().await?;
        // Created once: a lost commit's outcome is learned from this mark (`db::outcome`).
        tx.mark_commit().await?;
        tx.query(
            "INSERT INTO logged_models (id, experiment_id, name, artifact_uri, status, model_type, source_run_id, creation_time, last_updated_time)
             VALUES ($1, $2, $3, $4, 'LOGGED_MODEL_PENDING', $5, $6, $7, $7)",
        )
        .bind(&id)
        .bind(experiment_id)
        .bind(&name)
        .bind(&artifact_uri)
        .bind(model_type.unwrap_or(""))
        .bind(source_run_id)
        .bind(now)
        .execute()
        .await?;
        for (k, v) in tags {
            tx.query(&LOGGED_MODEL_TAGS.insert_sql())
                .bind(&id)
                .bind(k)
                .bind(v)
                .execute()
                .await?;
        }
        for (k, v) in params {
            tx.query(&LOGGED_MODEL_PARAMS.insert_sql())
                .bind(&id)
                .bind(k)
                .bind(v)
                .execute()
                .await?;
        }
        tx.commit().await?;
        self.get_logged_model(&id).await
    }

    pub async fn get_logged_model(&self, id: &str) -> Result<LoggedModel> {
        self.logged_models("id = $1", id.to_owned())
            .await?
            .pop()
            .ok_or_else(|| Error::NotFound(Missing::LoggedModel(id.to_owned())))
    }

    /// Active logged models matching `condition` (one `$1` bound to `value`), newest
    /// first, with their tags and params: three queries whatever their number.
    pub(super) async fn logged_models(
        &self,
        condition: &str,
        value: impl ToString,
    ) -> Result<Vec<LoggedModel>> {
        let value = value.to_string();
        let rows: Vec<LoggedModelRow> = self
            .meta
            .read(&format!(
                "SELECT {LOGGED_MODEL_COLUMNS} FROM logged_models
                 WHERE {condition} AND lifecycle_stage = 'active'
                 ORDER BY creation_time DESC, id ASC"
            ))
            .bind(value)
            .fetch_all()
            .await?;
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<&str> = rows.iter().map(|r| r.id.as_str()).collect();
        let mut by_model: [HashMap<String, BTreeMap<String, String>>; 2] = Default::default();
        for (i, table) in ["logged_model_tags", "logged_model_params"]
            .into_iter()
            .enumerate()
        {
            let mut q = SqlBuilder::new(
                self.meta.backend(),
                format!("SELECT model_id, key, value FROM {table} WHERE "),
            );
            push_in(&mut q, "model_id", &ids);
            let pairs: Vec<(String, String, String)> = self.meta.read_sql(q).fetch_all().await?;
            for (model, k, v) in pairs {
                by_model[i].entry(model).or_default().insert(k, v);
            }
        }
        let [mut tags, mut params] = by_model;
        let mut metrics = self.logged_model_metrics(&ids).await?;
        Ok(rows
            .into_iter()
            .map(|row| LoggedModel {
                tags: tags.remove(&row.id).unwrap_or_default(),
                params: params.remove(&row.id).unwrap_or_default(),
                metrics: metrics.remove(&row.id).unwrap_or_default(),
                id: row.id,
                experiment_id: row.experiment_id,
                name: row.name,
                artifact_uri: row.artifact_uri,
                status: row.status,
                model_type: row.model_type,
                source_run_id: row.source_run_id,
                creation_time: row.creation_time,
                last_updated_time: row.last_updated_time,
            })
            .collect())
    }

    pub async fn set_logged_model_status(&self, id: &str, status: &str) -> Result<LoggedModel> {
        if ![
            "LOGGED_MODEL_PENDING",
            "LOGGED_MODEL_READY",
            "LOGGED_MODEL_UPLOAD_FAILED",
        ]
        .contains(&status)
        {
            return Err(invalid(format!("Invalid logged model status: {status}")));
        }
        self.get_logged_model(id).await?;
        self.meta
            .write("UPDATE logged_models SET status = $2, last_updated_time = $3 WHERE id = $1")
            .bind(id)
            .bind(status)
            .bind(now_ms())
            .execute()
            .await?;
        self.get_logged_model(id).await
    }

    /// Sets tags of a logged model, all or none.
    pub async fn set_logged_model_tags(&self, id: &str, tags: &[(String, String)]) -> Result<()> {
        self.get_logged_model(id).await?;
        for (k, _) in tags {
            check_key(k)?;
        }
        let mut tx = self.meta.write_tx().await?;
        for (k, v) in tags {
            tx.query(&LOGGED_MODEL_TAGS.upsert_sql())
                .bind(id)
                .bind(k)
                .bind(v)
                .execute()
                .await?;
        }
        tx.commit().await
    }

    /// Every metric value of each of the logged models `ids`, in the order logged.
    async fn logged_model_metrics(
        &self,
        ids: &[&str],
    ) -> Result<HashMap<String, Vec<LoggedModelMetric>>> {
        let mut q = SqlBuilder::new(
            self.meta.backend(),
            "SELECT model_id, key, value, is_nan, timestamp, step, run_id, dataset_name, dataset_digest
             FROM logged_model_metrics WHERE ",
        );
        push_in(&mut q, "model_id", ids);
        type Row = (
            String,
            String,
            f64,
            i64,
            i64,
            i64,
            String,
            Option<String>,
            Option<String>,
        );
        let rows: Vec<Row> = self.meta.read_sql(q).fetch_all().await?;
        let mut out: HashMap<String, Vec<LoggedModelMetric>> = HashMap::new();
        for (model, key, value, is_nan, timestamp, step, run_id, name, digest) in rows {
            out.entry(model).or_default().push(LoggedModelMetric {
                key,
                value: metric_from_db(value, is_nan),
                timestamp,
                step,
                run_id,
                dataset: name.zip(digest),
            });
        }
        Ok(out)
    }

    /// Records metric values of logged model `model_id` measured by run `run_id` (active),
    /// all or none. The same key, time and step logged again by the run is kept once;
    /// with another value it is refused.
    pub async fn log_model_metrics(
        &self,
        run_id: &str,
        model_id: &str,
        metrics: &[ModelMetricValue],
    ) -> Result<()> {
        self.active_run(run_id).await?;
        self.get_logged_model(model_id).await?;
        let mut tx = self.meta.write_tx().await?;
        for ModelMetricValue { metric: m, dataset } in metrics {
            check_key(&m.key)?;
            let (value, is_nan) = metric_to_db(m.value);
            let (name, digest) = dataset.clone().unzip();
            let inserted = tx
                .query(
                    "INSERT INTO logged_model_metrics
                        (model_id, key, value, is_nan, timestamp, step, run_id, dataset_name, dataset_digest)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT DO NOTHING",
                )
                .bind(model_id)
                .bind(&m.key)
                .bind(value)
                .bind(is_nan)
                .bind(m.timestamp)
                .bind(m.step)
                .bind(run_id)
                .bind(&name)
                .bind(&digest)
                .execute()
                .await?;
            if inserted == 0 {
                let stored: (f64, i64) = tx
                    .query(
                        "SELECT value, is_nan FROM logged_model_metrics
                         WHERE model_id = $1 AND key = $2 AND timestamp = $3 AND step = $4 AND run_id = $5",
                    )
                    .bind(model_id)
                    .bind(&m.key)
                    .bind(m.timestamp)
                    .bind(m.step)
                    .bind(run_id)
                    .fetch_one()
                    .await?;
                if stored != (value, is_nan) {
                    return Err(invalid(format!(
                        "metric {:?} of logged model {model_id} at step {} and time {} was logged with another value",
                        m.key, m.step, m.timestamp
                    )));
                }
            }
        }
        tx.commit().await
    }

    /// Deletes tag `key` of a logged model; `NotFound` when it has no such tag.
    pub async fn delete_logged_model_tag(&self, id: &str, key: &str) -> Result<()> {
        self.get_logged_model(id).await?;
        let deleted = self
            .meta
            .write("DELETE FROM logged_model_tags WHERE model_id = $1 AND key = $2")
            .bind(id)
            .bind(key)
            .execute()
            .await?;
        match deleted {
            0 => Err(Error::NotFound(Missing::LoggedModelTag {
                model: id.to_owned(),
                key: key.to_owned(),
            })),
            _ => Ok(()),
        }
    }

    /// Logs params of a logged model, all in one transaction. Params never change: a
    /// key logged before (or twice here) is refused, and nothing is written.
    pub async fn log_logged_model_params(
        &self,
        id: &str,
        params: &[(String, String)],
    ) -> Result<()> {
        self.get_logged_model(id).await?;
        let mut seen = std::collections::BTreeSet::new();
        for (key, _) in params {
            check_key(key)?;
            if !seen.insert(key.as_str()) {
                return Err(Error::Refused(crate::Refusal::DuplicateParam(key.clone())));
            }
        }
        let mut tx = self.meta.write_tx().await?;
        for (key, value) in params {
            let inserted = tx
                .query(&format!(
                    "{} ON CONFLICT DO NOTHING",
                    LOGGED_MODEL_PARAMS.insert_sql()
                ))
                .bind(id)
                .bind(key)
                .bind(value)
                .execute()
                .await?;
            if inserted == 0 {
                return Err(invalid(format!(
                    "param {key:?} of logged model {id} is logged already; params never change"
                )));
            }
        }
        tx.commit().await
    }

    pub async fn delete_logged_model(&self, id: &str) -> Result<()> {
        self.get_logged_model(id).await?;
        self.meta
            .write("UPDATE logged_models SET lifecycle_stage = 'deleted' WHERE id = $1")
            .bind(id)
            .execute()
            .await?;
        Ok(())
    }

    /// Logged models of some experiments, newest first, filtered by name, status,
    /// source run, tags, params and metrics (values in `datasets` when any is named;
    /// without a metric comparison, `datasets` keeps the models with values in them).
    pub async fn search_logged_models(
        &self,
        experiment_ids: &[i64],
        filter: &[Comparison],
        datasets: &[DatasetFilter],
    ) -> Result<Vec<LoggedModel>> {
        let by_metric = filter.iter().any(|c| c.kind == EntityKind::Metric);
        let mut out = Vec::new();
        for exp in experiment_ids {
            let models = self
                .logged_models("experiment_id = CAST($1 AS INTEGER)", exp)
                .await?;
            out.extend(models.into_iter().filter(|m| {
                (by_metric || has_metrics_in(m, datasets))
                    && filter.iter().all(|c| logged_model_matches(m, c, datasets))
            }));
        }
        Ok(out)
    }
}
