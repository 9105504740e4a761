//! Experiment tracking: experiments, runs, params, metric histories, tags, dataset
//! inputs, logged models, and the artifact index (artifact path → blob). Artifacts are
//! stored in the same content-addressed blob store as model versions, so a model logged
//! through MLflow and then registered shares its bytes with the version.

use cairn_core::MetaKey;
use sqlx::AnyPool;

use crate::blobs::BlobStore;
use crate::db::MetadataStore;
use crate::db::sql::SqlBuilder;
use crate::metric_writer::MetricWriter;
use crate::{Error, Result};

mod artifacts;
mod experiments;
mod logged_models;
mod matching;
mod rows;
mod run_search;
mod runs;

pub use artifacts::{check_artifact_path, directory_children};
pub use matching::{DatasetFilter, latest_metric};
pub(crate) use runs::push_metric_values;

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

fn invalid(msg: impl Into<String>) -> Error {
    Error::InvalidArgument(msg.into())
}

/// A metric value to log for a logged model, with the dataset (name, digest) it was
/// measured on.
#[derive(Debug, Clone)]
pub struct ModelMetricValue {
    pub metric: MetricValue,
    pub dataset: Option<(String, String)>,
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

    /// The experiment a run, a logged model, or an experiment named so belongs to
    /// (what an authorization by experiment needs); `None` when there is none.
    pub async fn experiment_of(&self, thing: Owned<'_>) -> Result<Option<i64>> {
        let (sql, key) = match thing {
            Owned::Run(id) => ("SELECT experiment_id FROM runs WHERE id = $1", id),
            Owned::LoggedModel(id) => ("SELECT experiment_id FROM logged_models WHERE id = $1", id),
            Owned::ExperimentNamed(name) => ("SELECT id FROM experiments WHERE name = $1", name),
        };
        self.meta.read(sql).bind(key).scalar_optional().await
    }
}

/// Something that belongs to an experiment, as a request names it.
#[derive(Debug, Clone, Copy)]
pub enum Owned<'a> {
    Run(&'a str),
    LoggedModel(&'a str),
    ExperimentNamed(&'a str),
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
