//! Experiment tracking: experiments, runs, params, metric histories, tags, dataset
//! inputs, logged models, and the artifact index (artifact path → blob). Artifacts are
//! stored in the same content-addressed blob store as model versions, so a model logged
//! through MLflow and then registered shares its bytes with the version.

use std::collections::{BTreeMap, HashMap};

use bytes::Bytes;
use cairn_core::lineage::{CodeRef, DataRef, LineageInput};
use cairn_core::search::{Comparison, EntityKind, Op, OrderBy, Value};
use cairn_core::tracking::{
    ArtifactEntry, DatasetInput, Experiment, Lifecycle, LoggedModel, Metric, Run, RunInfo,
    RunStatus,
};
use cairn_core::{MetaKey, Sha256Digest};
use sqlx::AnyPool;

use crate::sql::SqlBuilder;
use crate::sqlite_reads;

use crate::blobs::{BlobRead, BlobStore};
use crate::gc::claim_blobs;
use crate::metric_writer::{self, MetricWriter, Outcome};
use crate::store::{Backend, MetadataStore, now_ms};
use crate::write::WriteTx;
use crate::{Error, Result};

/// Longest param value kept; longer values are cut, as MLflow does.
pub const PARAM_VALUE_MAX: usize = 6000;
/// Longest tag value kept.
pub const TAG_VALUE_MAX: usize = 8000;
/// Most params, metrics and tags in one batch.
pub const BATCH_PARAMS_MAX: usize = 100;
pub const BATCH_METRICS_MAX: usize = 1000;
pub const BATCH_TAGS_MAX: usize = 100;

/// Which lifecycle stages a search returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ViewType {
    ActiveOnly,
    DeletedOnly,
    All,
}

impl ViewType {
    fn sql(self, column: &str) -> String {
        match self {
            Self::ActiveOnly => format!("{column} = 'active'"),
            Self::DeletedOnly => format!("{column} = 'deleted'"),
            Self::All => "1 = 1".into(),
        }
    }
}

#[derive(Clone)]
pub struct Tracking {
    meta: MetadataStore,
    blobs: BlobStore,
    metrics: MetricWriter,
}

#[derive(sqlx::FromRow)]
struct ExperimentRow {
    id: i64,
    name: String,
    artifact_location: String,
    lifecycle_stage: String,
    creation_time: i64,
    last_update_time: i64,
}

#[derive(sqlx::FromRow)]
struct RunRow {
    id: String,
    experiment_id: i64,
    name: String,
    user_id: String,
    status: String,
    start_time: i64,
    end_time: Option<i64>,
    lifecycle_stage: String,
    artifact_uri: String,
}

#[derive(sqlx::FromRow)]
struct LoggedModelRow {
    id: String,
    experiment_id: i64,
    name: String,
    artifact_uri: String,
    status: String,
    model_type: String,
    source_run_id: Option<String>,
    creation_time: i64,
    last_updated_time: i64,
}

const RUN_COLUMNS: &str = "r.id, r.experiment_id, r.name, r.user_id, r.status, r.start_time, r.end_time, r.lifecycle_stage, r.artifact_uri";

fn not_found(what: String) -> Error {
    Error::NotFound(what)
}

fn invalid(msg: impl Into<String>) -> Error {
    Error::InvalidArgument(msg.into())
}

/// The statements that fetch the details of a set of runs.
struct RunDetailQueries {
    metrics: SqlBuilder,
    params: SqlBuilder,
    tags: SqlBuilder,
    inputs: SqlBuilder,
    outputs: SqlBuilder,
}

impl RunDetailQueries {
    fn new(backend: Backend, ids: &[&str]) -> Self {
        let select = |sql: &str, order: &str| {
            let mut q = SqlBuilder::new(backend, sql);
            push_in(&mut q, "run_id", ids);
            q.push(order);
            q
        };
        Self {
            metrics: select(
                "SELECT run_id, key, value, is_nan, timestamp, step FROM run_latest_metrics WHERE ",
                " ORDER BY key",
            ),
            params: select("SELECT run_id, key, value FROM run_params WHERE ", ""),
            tags: select("SELECT run_id, key, value FROM run_tags WHERE ", ""),
            inputs: select(
                "SELECT run_id, name, digest, source_type, source, schema, profile, context FROM run_inputs WHERE ",
                "",
            ),
            outputs: select("SELECT run_id, model_id, step FROM run_outputs WHERE ", ""),
        }
    }
}

type InputRow = (
    String,
    String,
    String,
    String,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
);

/// The rows [`RunDetailQueries`] return.
struct RunDetails {
    metrics: Vec<(String, String, f64, i64, i64, i64)>,
    params: Vec<(String, String, String)>,
    tags: Vec<(String, String, String)>,
    inputs: Vec<InputRow>,
    outputs: Vec<(String, String, i64)>,
}

impl RunDetails {
    fn attach_to(self, infos: Vec<RunInfo>) -> Vec<Run> {
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
        for (run, name, digest, source_type, source, schema, profile, context) in self.inputs {
            inputs.entry(run).or_default().push(DatasetInput {
                name,
                digest,
                source_type,
                source,
                schema,
                profile,
                context,
            });
        }
        let mut outputs: HashMap<String, Vec<(String, i64)>> = HashMap::new();
        for (run, model, step) in self.outputs {
            outputs.entry(run).or_default().push((model, step));
        }
        infos
            .into_iter()
            .map(|info| Run {
                metrics: metrics.remove(&info.id).unwrap_or_default(),
                params: params.remove(&info.id).unwrap_or_default(),
                tags: tags.remove(&info.id).unwrap_or_default(),
                inputs: inputs.remove(&info.id).unwrap_or_default(),
                outputs: outputs.remove(&info.id).unwrap_or_default(),
                info,
            })
            .collect()
    }
}

impl TryFrom<&rusqlite::Row<'_>> for RunRow {
    type Error = rusqlite::Error;

    /// A row of [`RUN_COLUMNS`], in their order.
    fn try_from(row: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            id: row.get(0)?,
            experiment_id: row.get(1)?,
            name: row.get(2)?,
            user_id: row.get(3)?,
            status: row.get(4)?,
            start_time: row.get(5)?,
            end_time: row.get(6)?,
            lifecycle_stage: row.get(7)?,
            artifact_uri: row.get(8)?,
        })
    }
}

impl RunRow {
    fn into_info(self) -> RunInfo {
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

/// A metric value to log.
#[derive(Debug, Clone)]
pub struct MetricValue {
    pub key: String,
    pub value: f64,
    pub timestamp: i64,
    pub step: i64,
}

fn random_hex32() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// A readable name for a run nobody named, like MLflow's.
fn generated_run_name() -> String {
    const ADJECTIVES: [&str; 16] = [
        "amber", "brave", "calm", "deft", "eager", "fleet", "gentle", "hardy", "keen", "lucid",
        "merry", "nimble", "quiet", "rapid", "steady", "vivid",
    ];
    const NOUNS: [&str; 16] = [
        "otter", "heron", "lynx", "finch", "marten", "ibex", "crane", "wren", "bison", "gecko",
        "koala", "raven", "panda", "tapir", "yak", "zebu",
    ];
    let bytes = uuid::Uuid::new_v4().into_bytes();
    format!(
        "{}-{}-{}",
        ADJECTIVES[usize::from(bytes[0]) % 16],
        NOUNS[usize::from(bytes[1]) % 16],
        u16::from_le_bytes([bytes[2], bytes[3]]) % 1000
    )
}

fn check_key(key: &str) -> Result<()> {
    MetaKey::new(key)?;
    Ok(())
}

fn truncate(value: &str, max: usize) -> &str {
    if value.len() <= max {
        return value;
    }
    let mut end = max;
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    &value[..end]
}

/// Stored form of a metric value and its `is_nan` flag (an integer on every engine):
/// SQLite cannot store NaN in a REAL column.
fn metric_to_db(value: f64) -> (f64, i64) {
    if value.is_nan() { (0.0, 1) } else { (value, 0) }
}

fn metric_from_db(value: f64, is_nan: i64) -> f64 {
    if is_nan != 0 { f64::NAN } else { value }
}

impl Tracking {
    /// Needs a Tokio runtime: it starts the metric writer task.
    pub(crate) fn new(meta: MetadataStore, blobs: BlobStore) -> Self {
        let metrics = MetricWriter::start(meta.clone());
        Self {
            meta,
            blobs,
            metrics,
        }
    }

    fn pool(&self) -> &AnyPool {
        self.meta.pool()
    }

    // ---- experiments ----

    pub async fn create_experiment(
        &self,
        name: &str,
        artifact_location: Option<&str>,
        tags: &BTreeMap<String, String>,
    ) -> Result<i64> {
        if name.is_empty() || name.len() > 500 {
            return Err(invalid("experiment names are 1-500 characters long"));
        }
        for key in tags.keys() {
            check_key(key)?;
        }
        let mut tx = self.meta.write_tx().await?;
        let now = now_ms();
        let id: Option<i64> = tx
            .query(
                "INSERT INTO experiments (name, artifact_location, creation_time, last_update_time)
             VALUES ($1, '', $2, $2) ON CONFLICT (name) DO NOTHING RETURNING id",
            )
            .bind(name)
            .bind(now)
            .scalar_optional()
            .await?;
        let id =
            id.ok_or_else(|| Error::AlreadyExists(format!("Experiment '{name}' already exists.")))?;
        let location = artifact_location
            .filter(|l| !l.is_empty())
            .map_or_else(|| format!("mlflow-artifacts:/{id}"), str::to_owned);
        tx.query("UPDATE experiments SET artifact_location = $2 WHERE id = $1")
            .bind(id)
            .bind(&location)
            .execute()
            .await?;
        for (k, v) in tags {
            tx.query("INSERT INTO experiment_tags (experiment_id, key, value) VALUES ($1, $2, $3)")
                .bind(id)
                .bind(k)
                .bind(truncate(v, TAG_VALUE_MAX))
                .execute()
                .await?;
        }
        tx.commit().await?;
        Ok(id)
    }

    async fn experiment_from_row(&self, r: ExperimentRow) -> Result<Experiment> {
        Ok(self.experiments_from_rows(vec![r]).await?.remove(0))
    }

    /// Experiment rows with their tags, read in one query for all of them.
    async fn experiments_from_rows(&self, rows: Vec<ExperimentRow>) -> Result<Vec<Experiment>> {
        let mut q = SqlBuilder::new(
            self.meta.backend(),
            "SELECT experiment_id, key, value FROM experiment_tags WHERE experiment_id IN (",
        );
        let mut sep = q.separated(", ");
        for r in &rows {
            sep.push_bind(r.id);
        }
        q.push(")");
        let tags: Vec<(i64, String, String)> = if rows.is_empty() {
            Vec::new()
        } else {
            q.build_query_as().fetch_all(self.pool()).await?
        };
        let mut tags_by: HashMap<i64, BTreeMap<String, String>> = HashMap::new();
        for (id, k, v) in tags {
            tags_by.entry(id).or_default().insert(k, v);
        }
        Ok(rows
            .into_iter()
            .map(|r| Experiment {
                tags: tags_by.remove(&r.id).unwrap_or_default(),
                id: r.id,
                name: r.name,
                artifact_location: r.artifact_location,
                lifecycle: Lifecycle::parse(&r.lifecycle_stage).unwrap_or(Lifecycle::Active),
                creation_time: r.creation_time,
                last_update_time: r.last_update_time,
            })
            .collect())
    }

    pub async fn get_experiment(&self, id: i64) -> Result<Experiment> {
        let row = sqlx::query_as::<_, ExperimentRow>("SELECT * FROM experiments WHERE id = $1")
            .bind(id)
            .fetch_optional(self.pool())
            .await?
            .ok_or_else(|| not_found(format!("No Experiment with id={id} exists")))?;
        self.experiment_from_row(row).await
    }

    pub async fn get_experiment_by_name(&self, name: &str) -> Result<Experiment> {
        let row = sqlx::query_as::<_, ExperimentRow>("SELECT * FROM experiments WHERE name = $1")
            .bind(name)
            .fetch_optional(self.pool())
            .await?
            .ok_or_else(|| not_found(format!("Could not find experiment with name '{name}'")))?;
        self.experiment_from_row(row).await
    }

    /// Experiments matching `filter` (name and tags), newest first unless ordered.
    pub async fn search_experiments(
        &self,
        view: ViewType,
        filter: &[Comparison],
        order_by: &[OrderBy],
    ) -> Result<Vec<Experiment>> {
        let rows = sqlx::query_as::<_, ExperimentRow>(sqlx::AssertSqlSafe(format!(
            "SELECT * FROM experiments WHERE {} ORDER BY creation_time DESC, id ASC",
            view.sql("lifecycle_stage")
        )))
        .fetch_all(self.pool())
        .await?;
        let mut out = Vec::new();
        for e in self.experiments_from_rows(rows).await? {
            if filter
                .iter()
                .map(|c| experiment_matches(&e, c))
                .collect::<Result<Vec<_>>>()?
                .into_iter()
                .all(|m| m)
            {
                out.push(e);
            }
        }
        for o in order_by.iter().rev() {
            let key = o.key.as_str();
            let cmp = |a: &Experiment, b: &Experiment| match key {
                "name" => a.name.cmp(&b.name),
                "experiment_id" => a.id.cmp(&b.id),
                "creation_time" => a.creation_time.cmp(&b.creation_time),
                "last_update_time" => a.last_update_time.cmp(&b.last_update_time),
                _ => std::cmp::Ordering::Equal,
            };
            if !["name", "experiment_id", "creation_time", "last_update_time"].contains(&key) {
                return Err(invalid(format!("Invalid order_by entity: {key}")));
            }
            out.sort_by(|a, b| if o.ascending { cmp(a, b) } else { cmp(b, a) });
        }
        Ok(out)
    }

    pub async fn rename_experiment(&self, id: i64, new_name: &str) -> Result<()> {
        if new_name.is_empty() || new_name.len() > 500 {
            return Err(invalid("experiment names are 1-500 characters long"));
        }
        self.get_experiment(id).await?;
        let result = self
            .meta
            .write("UPDATE experiments SET name = $2, last_update_time = $3 WHERE id = $1")
            .bind(id)
            .bind(new_name)
            .bind(now_ms())
            .execute()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) if e.is_unique_violation() => Err(Error::AlreadyExists(format!(
                "Experiment '{new_name}' already exists."
            ))),
            Err(e) => Err(e),
        }
    }

    pub async fn set_experiment_lifecycle(&self, id: i64, lifecycle: Lifecycle) -> Result<()> {
        self.get_experiment(id).await?;
        if id == 0 && lifecycle == Lifecycle::Deleted {
            return Err(invalid("Cannot delete the default experiment '0'."));
        }
        let mut tx = self.meta.write_tx().await?;
        let now = now_ms();
        tx.query(
            "UPDATE experiments SET lifecycle_stage = $2, last_update_time = $3 WHERE id = $1",
        )
        .bind(id)
        .bind(lifecycle.as_str())
        .bind(now)
        .execute()
        .await?;
        tx.query("UPDATE runs SET lifecycle_stage = $2 WHERE experiment_id = $1")
            .bind(id)
            .bind(lifecycle.as_str())
            .execute()
            .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn set_experiment_tag(&self, id: i64, key: &str, value: &str) -> Result<()> {
        check_key(key)?;
        let exp = self.get_experiment(id).await?;
        if exp.lifecycle == Lifecycle::Deleted {
            return Err(invalid(format!(
                "The experiment {id} must be in the 'active' state."
            )));
        }
        self.meta
            .write(
                "INSERT INTO experiment_tags (experiment_id, key, value) VALUES ($1, $2, $3)
             ON CONFLICT (experiment_id, key) DO UPDATE SET value = excluded.value",
            )
            .bind(id)
            .bind(key)
            .bind(truncate(value, TAG_VALUE_MAX))
            .execute()
            .await?;
        Ok(())
    }

    pub async fn delete_experiment_tag(&self, id: i64, key: &str) -> Result<()> {
        self.get_experiment(id).await?;
        self.meta
            .write("DELETE FROM experiment_tags WHERE experiment_id = $1 AND key = $2")
            .bind(id)
            .bind(key)
            .execute()
            .await?;
        Ok(())
    }

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
            return Err(invalid(format!(
                "The experiment {experiment_id} must be in the 'active' state. Current state is deleted."
            )));
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
            tx.query("INSERT INTO run_tags (run_id, key, value) VALUES ($1, $2, $3)")
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
            .ok_or_else(|| not_found(format!("Run with id={id} not found")))
    }

    async fn active_run(&self, id: &str) -> Result<RunInfo> {
        let info = self.run_info(id).await?;
        if info.lifecycle != Lifecycle::Active {
            return Err(invalid(format!(
                "The run {id} must be in the 'active' state. Current state is deleted."
            )));
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
            format!("SELECT {RUN_COLUMNS} FROM runs r WHERE r.id = "),
        );
        q.push_bind(id);
        self.runs_with_details(q)
            .await?
            .pop()
            .ok_or_else(|| not_found(format!("Run with id={id} not found")))
    }

    /// The runs `runs` selects (its columns: [`RUN_COLUMNS`]), each with its metrics,
    /// params, tags, inputs and outputs: six statements. On SQLite they run in one
    /// blocking call on one snapshot (see `sqlite_reads`); on PostgreSQL one after the
    /// other.
    async fn runs_with_details(&self, mut runs: SqlBuilder) -> Result<Vec<Run>> {
        let backend = self.meta.backend();
        if let Some(reads) = self.meta.sqlite_reads() {
            return reads
                .read(move |conn| {
                    let infos: Vec<RunInfo> = sqlite_reads::rows::<RunRow>(conn, &runs)?
                        .into_iter()
                        .map(RunRow::into_info)
                        .collect();
                    if infos.is_empty() {
                        return Ok(Vec::new());
                    }
                    let ids: Vec<&str> = infos.iter().map(|i| i.id.as_str()).collect();
                    let q = RunDetailQueries::new(backend, &ids);
                    let details = RunDetails {
                        metrics: sqlite_reads::rows(conn, &q.metrics)?,
                        params: sqlite_reads::rows(conn, &q.params)?,
                        tags: sqlite_reads::rows(conn, &q.tags)?,
                        inputs: sqlite_reads::rows(conn, &q.inputs)?,
                        outputs: sqlite_reads::rows(conn, &q.outputs)?,
                    };
                    Ok(details.attach_to(infos))
                })
                .await;
        }
        let infos: Vec<RunInfo> = runs
            .build_query_as::<RunRow>()
            .fetch_all(self.pool())
            .await?
            .into_iter()
            .map(RunRow::into_info)
            .collect();
        if infos.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<&str> = infos.iter().map(|i| i.id.as_str()).collect();
        let mut q = RunDetailQueries::new(backend, &ids);
        let details = RunDetails {
            metrics: q.metrics.build_query_as().fetch_all(self.pool()).await?,
            params: q.params.build_query_as().fetch_all(self.pool()).await?,
            tags: q.tags.build_query_as().fetch_all(self.pool()).await?,
            inputs: q.inputs.build_query_as().fetch_all(self.pool()).await?,
            outputs: q.outputs.build_query_as().fetch_all(self.pool()).await?,
        };
        Ok(details.attach_to(infos))
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
            tx.query(
                "INSERT INTO run_tags (run_id, key, value) VALUES ($1, 'mlflow.runName', $2)
                 ON CONFLICT (run_id, key) DO UPDATE SET value = excluded.value",
            )
            .bind(id)
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
            return Err(invalid(format!(
                "A batch logging request can contain at most {BATCH_METRICS_MAX} metrics, {BATCH_PARAMS_MAX} params and {BATCH_TAGS_MAX} tags"
            )));
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
                return Err(invalid(format!(
                    "Duplicate parameter keys have been submitted: {k}"
                )));
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
                    return Err(invalid(format!(
                        "Changing param values is not allowed. Param with key='{k}' was already logged with value='{old}' for run ID='{run_id}'. Attempted logging new value '{v}'."
                    )));
                }
                Some(_) => {}
                None => {
                    tx.query("INSERT INTO run_params (run_id, key, value) VALUES ($1, $2, $3)")
                        .bind(run_id)
                        .bind(k)
                        .bind(v)
                        .execute()
                        .await?;
                }
            }
        }
        for (k, v) in tags {
            tx.query(
                "INSERT INTO run_tags (run_id, key, value) VALUES ($1, $2, $3)
                 ON CONFLICT (run_id, key) DO UPDATE SET value = excluded.value",
            )
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
    async fn log_metrics(&self, run_id: &str, metrics: &[MetricValue]) -> Result<()> {
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
    async fn write_metrics_alone(&self, run_id: &str, metrics: &[MetricValue]) -> Result<()> {
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
            return Err(not_found(format!(
                "No tag with name: {key} in run with id {run_id}"
            )));
        }
        Ok(())
    }

    pub async fn log_inputs(&self, run_id: &str, inputs: &[DatasetInput]) -> Result<()> {
        self.active_run(run_id).await?;
        let mut tx = self.meta.write_tx().await?;
        for d in inputs {
            tx.query(
                "INSERT INTO run_inputs (run_id, name, digest, source_type, source, schema, profile, context)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
                 ON CONFLICT (run_id, name, digest) DO UPDATE SET context = excluded.context",
            )
            .bind(run_id)
            .bind(&d.name)
            .bind(&d.digest)
            .bind(&d.source_type)
            .bind(&d.source)
            .bind(&d.schema)
            .bind(&d.profile)
            .bind(&d.context)
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
        let rows: Vec<(f64, i64, i64, i64)> = sqlx::query_as(
            "SELECT value, is_nan, timestamp, step FROM run_metrics WHERE run_id = $1 AND key = $2
             ORDER BY timestamp, step, value",
        )
        .bind(run_id)
        .bind(key)
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .into_iter()
            .map(|(value, is_nan, timestamp, step)| Metric {
                key: key.to_owned(),
                value: metric_from_db(value, is_nan),
                timestamp,
                step,
            })
            .collect())
    }

    /// Runs of `experiment_ids` matching `filter`, ordered; `limit` + 1 rows from
    /// `offset` so the caller can tell whether another page exists.
    pub async fn search_runs(
        &self,
        experiment_ids: &[i64],
        filter: &[Comparison],
        view: ViewType,
        order_by: &[OrderBy],
        offset: usize,
        limit: usize,
    ) -> Result<Vec<Run>> {
        if experiment_ids.is_empty() {
            return Ok(Vec::new());
        }
        let backend = self.meta.backend();
        let mut q = SqlBuilder::new(backend, format!("SELECT {RUN_COLUMNS} FROM "));
        // A selective metric, param or tag comparison drives the query: the runs it
        // matches are found through its (key, value) index and only they are sorted,
        // instead of walking every run of the experiments in start-time order.
        let driver = filter.iter().find(|c| {
            matches!(
                c.kind,
                EntityKind::Metric | EntityKind::Param | EntityKind::Tag
            ) && matches!(
                c.op,
                Op::Eq | Op::Lt | Op::Le | Op::Gt | Op::Ge | Op::Like | Op::ILike | Op::In
            )
        });
        match driver {
            Some(c) => {
                q.push("(");
                push_matching_runs(&mut q, backend, c)?;
                // SQLite keeps the order of a CROSS JOIN: the matches drive. PostgreSQL
                // plans joins itself (and has no CROSS JOIN … ON).
                q.push(match backend {
                    Backend::Sqlite => ") d CROSS JOIN runs r ON r.id = d.run_id",
                    Backend::Postgres => ") d JOIN runs r ON r.id = d.run_id",
                });
            }
            None => {
                q.push("runs r");
            }
        }
        // One LEFT JOIN per ordering key that is not a column.
        for (i, o) in order_by.iter().enumerate() {
            let (table, value) = match o.kind {
                EntityKind::Metric => ("run_latest_metrics", "value"),
                EntityKind::Param => ("run_params", "value"),
                EntityKind::Tag => ("run_tags", "value"),
                EntityKind::Attribute => {
                    run_attribute_column(&o.key).ok_or_else(|| {
                        invalid(format!("Invalid order_by key: attribute.{}", o.key))
                    })?;
                    continue;
                }
                EntityKind::Dataset => return Err(invalid("Invalid order_by entity: dataset")),
            };
            q.push(format!(
                " LEFT JOIN (SELECT run_id, {value} AS v FROM {table} WHERE key = "
            ));
            q.push_bind(o.key.clone());
            q.push(format!(") o{i} ON o{i}.run_id = r.id"));
        }
        q.push(" WHERE r.experiment_id IN (");
        let mut sep = q.separated(", ");
        for id in experiment_ids {
            sep.push_bind(*id);
        }
        q.push(") AND ").push(view.sql("r.lifecycle_stage"));
        // The driving comparison already holds for every joined run: testing it again
        // would build its whole set of matches a second time.
        for c in filter
            .iter()
            .filter(|c| !driver.is_some_and(|d| std::ptr::eq(*c, d)))
        {
            q.push(" AND ");
            push_run_condition(&mut q, backend, c)?;
        }
        q.push(" ORDER BY ");
        let mut has_start_time = false;
        for (i, o) in order_by.iter().enumerate() {
            let expr = match o.kind {
                EntityKind::Attribute => {
                    let col = run_attribute_column(&o.key).expect("checked above");
                    has_start_time |= col == "r.start_time";
                    col.to_owned()
                }
                _ => format!("o{i}.v"),
            };
            // NULLs last whatever the direction, as MLflow does.
            q.push(format!(
                "({expr} IS NULL), {expr} {}, ",
                if o.ascending { "ASC" } else { "DESC" }
            ));
        }
        if !has_start_time {
            q.push("r.start_time DESC, ");
        }
        q.push("r.id ASC")
            .push_limit(limit as u64 + 1, offset as u64);
        self.runs_with_details(q).await
    }

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
        let exp = self.get_experiment(experiment_id).await?;
        if let Some(run) = source_run_id {
            self.run_info(run).await?;
        }
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
            tx.query("INSERT INTO logged_model_tags (model_id, key, value) VALUES ($1, $2, $3)")
                .bind(&id)
                .bind(k)
                .bind(v)
                .execute()
                .await?;
        }
        for (k, v) in params {
            tx.query("INSERT INTO logged_model_params (model_id, key, value) VALUES ($1, $2, $3)")
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
            .ok_or_else(|| not_found(format!("Logged model with ID '{id}' not found.")))
    }

    /// Active logged models matching `condition` (one `$1` bound to `value`), newest
    /// first, with their tags and params: three queries whatever their number.
    async fn logged_models(
        &self,
        condition: &str,
        value: impl ToString,
    ) -> Result<Vec<LoggedModel>> {
        let value = value.to_string();
        let rows = sqlx::query_as::<_, LoggedModelRow>(sqlx::AssertSqlSafe(format!(
            "SELECT id, experiment_id, name, artifact_uri, status, model_type, source_run_id, creation_time, last_updated_time
             FROM logged_models WHERE {condition} AND lifecycle_stage = 'active'
             ORDER BY creation_time DESC, id ASC"
        )))
        .bind(value)
        .fetch_all(self.pool())
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
            let pairs: Vec<(String, String, String)> =
                q.build_query_as().fetch_all(self.pool()).await?;
            for (model, k, v) in pairs {
                by_model[i].entry(model).or_default().insert(k, v);
            }
        }
        let [mut tags, mut params] = by_model;
        Ok(rows
            .into_iter()
            .map(|row| LoggedModel {
                tags: tags.remove(&row.id).unwrap_or_default(),
                params: params.remove(&row.id).unwrap_or_default(),
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
            tx.query(
                "INSERT INTO logged_model_tags (model_id, key, value) VALUES ($1, $2, $3)
                 ON CONFLICT (model_id, key) DO UPDATE SET value = excluded.value",
            )
            .bind(id)
            .bind(k)
            .bind(v)
            .execute()
            .await?;
        }
        tx.commit().await
    }

    pub async fn delete_logged_model_tag(&self, id: &str, key: &str) -> Result<()> {
        self.get_logged_model(id).await?;
        self.meta
            .write("DELETE FROM logged_model_tags WHERE model_id = $1 AND key = $2")
            .bind(id)
            .bind(key)
            .execute()
            .await?;
        Ok(())
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
    /// source run, tags and params.
    pub async fn search_logged_models(
        &self,
        experiment_ids: &[i64],
        filter: &[Comparison],
    ) -> Result<Vec<LoggedModel>> {
        let mut out = Vec::new();
        for exp in experiment_ids {
            let models = self
                .logged_models("experiment_id = CAST($1 AS INTEGER)", exp)
                .await?;
            out.extend(
                models
                    .into_iter()
                    .filter(|m| filter.iter().all(|c| logged_model_matches(m, c))),
            );
        }
        Ok(out)
    }

    // ---- artifacts ----

    /// Stores an artifact at `path` (relative to the artifact root), replacing any
    /// earlier content.
    pub async fn put_artifact<E>(
        &self,
        path: &str,
        stream: impl futures::Stream<Item = std::result::Result<Bytes, E>> + Unpin,
    ) -> Result<()>
    where
        E: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        check_artifact_file_path(path)?;
        let epoch = self.meta.gc_epoch().await?;
        let (digest, size) = self.blobs.put_stream_unknown(stream).await?;
        // The artifact row may be read back by a version registration: durable first.
        self.blobs.make_durable(&[digest]).await?;
        let mut tx = self.meta.write_tx().await?;
        claim_blobs(&mut tx, &[digest], Some(epoch)).await?;
        upsert_artifact(&mut tx, path, &digest, size).await?;
        tx.commit().await
    }

    /// Starts a multipart upload of the artifact at `path`; returns its id.
    pub async fn create_upload(&self, path: &str) -> Result<String> {
        check_artifact_file_path(path)?;
        let id = random_hex32();
        self.meta
            .write("INSERT INTO artifact_uploads (id, path, created_at) VALUES ($1, $2, $3)")
            .bind(&id)
            .bind(path)
            .bind(now_ms())
            .execute()
            .await?;
        Ok(id)
    }

    async fn upload_path(&self, upload_id: &str) -> Result<String> {
        sqlx::query_scalar("SELECT path FROM artifact_uploads WHERE id = $1")
            .bind(upload_id)
            .fetch_optional(self.pool())
            .await?
            .ok_or_else(|| not_found(format!("No multipart upload with id {upload_id}")))
    }

    /// Stores one part (a blob of its own); returns its digest, the part's ETag.
    pub async fn put_upload_part<E>(
        &self,
        upload_id: &str,
        part_number: i64,
        stream: impl futures::Stream<Item = std::result::Result<Bytes, E>> + Unpin,
    ) -> Result<Sha256Digest>
    where
        E: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        self.upload_path(upload_id).await?;
        if part_number < 1 {
            return Err(invalid("part numbers start at 1"));
        }
        let epoch = self.meta.gc_epoch().await?;
        let (digest, size) = self.blobs.put_stream_unknown(stream).await?;
        let mut tx = self.meta.write_tx().await?;
        claim_blobs(&mut tx, &[digest], Some(epoch)).await?;
        tx.query(
            "INSERT INTO artifact_upload_parts (upload_id, part_number, sha256, size) VALUES ($1, $2, $3, $4)
             ON CONFLICT (upload_id, part_number) DO UPDATE SET sha256 = excluded.sha256, size = excluded.size",
        )
        .bind(upload_id)
        .bind(part_number)
        .bind(digest.to_hex())
        .bind(size as i64)
        .execute()
        .await?;
        tx.commit().await?;
        Ok(digest)
    }

    /// Concatenates the listed parts, in order, into the artifact. Each part's ETag must
    /// be the digest the part upload answered.
    pub async fn complete_upload(&self, upload_id: &str, parts: &[(i64, String)]) -> Result<()> {
        let path = self.upload_path(upload_id).await?;
        let stored: HashMap<i64, String> = sqlx::query_as::<_, (i64, String)>(
            "SELECT part_number, sha256 FROM artifact_upload_parts WHERE upload_id = $1",
        )
        .bind(upload_id)
        .fetch_all(self.pool())
        .await?
        .into_iter()
        .collect();
        let mut digests = Vec::new();
        let mut sorted = parts.to_vec();
        sorted.sort_by_key(|(n, _)| *n);
        for (n, etag) in &sorted {
            let digest = stored.get(n).ok_or_else(|| {
                invalid(format!("part {n} of upload {upload_id} was not uploaded"))
            })?;
            let etag = etag.trim_matches('"');
            if !etag.is_empty() && etag != digest {
                return Err(invalid(format!(
                    "part {n}: ETag {etag} does not match the uploaded part"
                )));
            }
            digests.push(
                digest
                    .parse::<Sha256Digest>()
                    .map_err(|_| invalid("corrupt part digest"))?,
            );
        }
        if digests.is_empty() {
            return Err(invalid("a multipart upload needs at least one part"));
        }
        // Feed the parts, one after another, into one new blob.
        let (tx, rx) =
            futures::channel::mpsc::channel::<std::result::Result<Bytes, std::io::Error>>(4);
        let blobs = self.blobs.clone();
        let feeder = tokio::spawn(async move {
            use futures::{SinkExt, StreamExt};
            let mut tx = tx;
            for d in digests {
                let mut part = match blobs.read(&d).await {
                    Ok(Some(read)) => read.stream,
                    Ok(None) => {
                        let _ = tx
                            .send(Err(std::io::Error::other(format!(
                                "part blob {d} is missing"
                            ))))
                            .await;
                        return;
                    }
                    Err(e) => {
                        let _ = tx.send(Err(std::io::Error::other(e.to_string()))).await;
                        return;
                    }
                };
                while let Some(chunk) = part.next().await {
                    let failed = chunk.is_err();
                    if tx.send(chunk).await.is_err() || failed {
                        return;
                    }
                }
            }
        });
        let epoch = self.meta.gc_epoch().await?;
        let stored = self.blobs.put_stream_unknown(rx).await;
        let _ = feeder.await;
        let (digest, size) = stored?;
        self.blobs.make_durable(&[digest]).await?;
        let mut tx = self.meta.write_tx().await?;
        claim_blobs(&mut tx, &[digest], Some(epoch)).await?;
        upsert_artifact(&mut tx, &path, &digest, size).await?;
        tx.query("DELETE FROM artifact_uploads WHERE id = $1")
            .bind(upload_id)
            .execute()
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Forgets an upload; its part blobs are left to garbage collection.
    pub async fn abort_upload(&self, upload_id: &str) -> Result<()> {
        self.upload_path(upload_id).await?;
        self.meta
            .write("DELETE FROM artifact_uploads WHERE id = $1")
            .bind(upload_id)
            .execute()
            .await?;
        Ok(())
    }

    /// The blob of the artifact at `path`; `None` if no file is there.
    pub async fn artifact_blob(&self, path: &str) -> Result<Option<(Sha256Digest, u64)>> {
        check_artifact_path(path)?;
        let row: Option<(String, i64)> =
            sqlx::query_as("SELECT sha256, size FROM artifacts WHERE path = $1")
                .bind(path)
                .fetch_optional(self.pool())
                .await?;
        row.map(|(d, size)| {
            Ok((
                d.parse().map_err(|_| invalid("corrupt digest"))?,
                size as u64,
            ))
        })
        .transpose()
    }

    pub async fn read_blob(&self, digest: &Sha256Digest) -> Result<BlobRead> {
        self.blobs
            .read(digest)
            .await?
            .ok_or(Error::BlobNotFound(*digest))
    }

    /// Every file under directory `prefix`, with paths relative to it.
    pub async fn artifact_files(&self, prefix: &str) -> Result<Vec<(String, Sha256Digest, u64)>> {
        let dir = format!("{}/", prefix.trim_end_matches('/'));
        let mut q = SqlBuilder::new(
            self.meta.backend(),
            "SELECT path, sha256, size FROM artifacts WHERE path > ",
        );
        q.push_bind(dir.clone()).push(" AND path < ");
        q.push_bind(format!("{}0", prefix.trim_end_matches('/')));
        q.push(" ORDER BY path");
        let rows: Vec<(String, String, i64)> = self.meta.read_rows(q).await?;
        rows.into_iter()
            .map(|(path, d, size)| {
                Ok((
                    path[dir.len()..].to_owned(),
                    d.parse().map_err(|_| invalid("corrupt digest"))?,
                    size as u64,
                ))
            })
            .collect()
    }

    /// The direct children of directory `dir` ("" for the root).
    pub async fn list_artifacts(&self, dir: &str) -> Result<Vec<ArtifactEntry>> {
        if !dir.is_empty() {
            check_artifact_path(dir)?;
        }
        let files: Vec<(String, u64)> = if dir.is_empty() {
            let rows: Vec<(String, i64)> =
                sqlx::query_as("SELECT path, size FROM artifacts ORDER BY path")
                    .fetch_all(self.pool())
                    .await?;
            rows.into_iter().map(|(p, s)| (p, s as u64)).collect()
        } else {
            // Paths relative to `dir`.
            self.artifact_files(dir)
                .await?
                .into_iter()
                .map(|(p, _, s)| (p, s))
                .collect()
        };
        Ok(directory_children(files, ""))
    }

    /// Deletes the file at `path`, or everything under it if it is a directory.
    pub async fn delete_artifacts(&self, path: &str) -> Result<()> {
        check_artifact_path(path)?;
        let trimmed = path.trim_end_matches('/');
        self.meta
            .write("DELETE FROM artifacts WHERE path = $1 OR (path > $2 AND path < $3)")
            .bind(trimmed)
            .bind(format!("{trimmed}/"))
            .bind(format!("{trimmed}0"))
            .execute()
            .await?;
        Ok(())
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

/// Points the artifact `path` at a blob.
async fn upsert_artifact(
    tx: &mut WriteTx,
    path: &str,
    digest: &Sha256Digest,
    size: u64,
) -> Result<()> {
    tx.query(
        "INSERT INTO artifacts (path, sha256, size, created_at) VALUES ($1, $2, $3, $4)
         ON CONFLICT (path) DO UPDATE SET sha256 = excluded.sha256, size = excluded.size, created_at = excluded.created_at",
    )
    .bind(path)
    .bind(digest.to_hex())
    .bind(size as i64)
    .bind(now_ms())
    .execute()
    .await?;
    Ok(())
}

/// The direct children of directory `dir` ("" for the root) among files given by their
/// paths (relative to the same root) and sizes.
pub fn directory_children(
    files: impl IntoIterator<Item = (String, u64)>,
    dir: &str,
) -> Vec<ArtifactEntry> {
    let prefix = if dir.is_empty() {
        String::new()
    } else {
        format!("{}/", dir.trim_end_matches('/'))
    };
    let mut entries: BTreeMap<String, ArtifactEntry> = BTreeMap::new();
    for (path, size) in files {
        let Some(rest) = path.strip_prefix(&prefix) else {
            continue;
        };
        match rest.split_once('/') {
            Some((child, _)) => {
                entries.entry(child.to_owned()).or_insert(ArtifactEntry {
                    name: child.to_owned(),
                    is_dir: true,
                    size: None,
                });
            }
            None => {
                entries.insert(
                    rest.to_owned(),
                    ArtifactEntry {
                        name: rest.to_owned(),
                        is_dir: false,
                        size: Some(size),
                    },
                );
            }
        }
    }
    entries.into_values().collect()
}

/// `column IN ($1, $2, …)` with every id bound.
pub(crate) fn push_in(q: &mut SqlBuilder, column: &str, ids: &[&str]) {
    q.push(column).push(" IN (");
    let mut sep = q.separated(", ");
    for id in ids {
        sep.push_bind(*id);
    }
    sep.push_unseparated(")");
}

/// An artifact path: relative, no `..`, no empty segments, no backslashes.
pub fn check_artifact_path(path: &str) -> Result<()> {
    let trimmed = path.trim_end_matches('/');
    if trimmed.is_empty()
        || trimmed.starts_with('/')
        || trimmed.contains('\\')
        || trimmed.contains('\0')
        || trimmed
            .split('/')
            .any(|s| s.is_empty() || s == "." || s == "..")
    {
        return Err(invalid(format!("Invalid path: {path}")));
    }
    Ok(())
}

/// The path of an artifact file to write: [`check_artifact_path`], naming a file (a
/// trailing `/` names a directory, which no file can be stored as).
fn check_artifact_file_path(path: &str) -> Result<()> {
    check_artifact_path(path)?;
    if path.ends_with('/') {
        return Err(invalid(format!(
            "Artifact path must include a filename (cannot end with '/'): {path}"
        )));
    }
    Ok(())
}

fn run_attribute_column(key: &str) -> Option<&'static str> {
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
fn like_to_glob(pattern: &str) -> String {
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
fn push_matching_runs(q: &mut SqlBuilder, backend: Backend, c: &Comparison) -> Result<()> {
    match c.kind {
        EntityKind::Metric => {
            let Value::Num(n) = c.value else {
                return Err(invalid(format!(
                    "Expected numeric value type for metric '{}'",
                    c.key
                )));
            };
            if !matches!(c.op, Op::Eq | Op::Ne | Op::Lt | Op::Le | Op::Gt | Op::Ge) {
                return Err(invalid(format!(
                    "Invalid comparator '{}' for metric",
                    c.op.sql()
                )));
            }
            q.push("SELECT run_id FROM run_latest_metrics WHERE is_nan = 0 AND key = ")
                .push_bind(c.key.clone())
                .push(format!(" AND value {} ", c.op.sql()))
                .push_bind(n);
        }
        EntityKind::Param | EntityKind::Tag => {
            let table = if c.kind == EntityKind::Param {
                "run_params"
            } else {
                "run_tags"
            };
            q.push(format!("SELECT run_id FROM {table} WHERE key = "))
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
fn push_run_condition(q: &mut SqlBuilder, backend: Backend, c: &Comparison) -> Result<()> {
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
                let Value::Num(n) = c.value else {
                    return Err(invalid(format!(
                        "Expected numeric value for attribute '{}'",
                        c.key
                    )));
                };
                if !matches!(c.op, Op::Eq | Op::Ne | Op::Lt | Op::Le | Op::Gt | Op::Ge) {
                    return Err(invalid(format!(
                        "Invalid comparator '{}' for attribute",
                        c.op.sql()
                    )));
                }
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

fn like_matches(pattern: &str, text: &str, case_insensitive: bool) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = if case_insensitive {
        (
            pattern.to_lowercase().chars().collect(),
            text.to_lowercase().chars().collect(),
        )
    } else {
        (pattern.chars().collect(), text.chars().collect())
    };
    fn go(p: &[char], t: &[char]) -> bool {
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
fn string_matches(actual: Option<&str>, op: Op, value: &Value) -> bool {
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

fn experiment_matches(e: &Experiment, c: &Comparison) -> Result<bool> {
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

fn compare_numbers(actual: f64, op: Op, n: f64) -> bool {
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

fn logged_model_matches(m: &LoggedModel, c: &Comparison) -> bool {
    match (c.kind, c.key.as_str()) {
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
