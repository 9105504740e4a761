//! Experiment tracking: experiments, runs with params, metrics and tags, logged models.
//! The same concepts as MLflow's, which is how most teams already track training; the
//! MLflow API is one view of them, Cairn's own API (later) another.

use std::collections::BTreeMap;

/// Lifecycle of experiments, runs and logged models: deleted ones can be restored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lifecycle {
    Active,
    Deleted,
}

impl Lifecycle {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Deleted => "deleted",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "active" => Some(Self::Active),
            "deleted" => Some(Self::Deleted),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Experiment {
    pub id: i64,
    pub name: String,
    pub artifact_location: String,
    pub lifecycle: Lifecycle,
    pub creation_time: i64,
    pub last_update_time: i64,
    pub tags: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunStatus {
    Running,
    Scheduled,
    Finished,
    Failed,
    Killed,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "RUNNING",
            Self::Scheduled => "SCHEDULED",
            Self::Finished => "FINISHED",
            Self::Failed => "FAILED",
            Self::Killed => "KILLED",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            Self::Running,
            Self::Scheduled,
            Self::Finished,
            Self::Failed,
            Self::Killed,
        ]
        .into_iter()
        .find(|st| st.as_str() == s)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct RunInfo {
    pub id: String,
    pub experiment_id: i64,
    pub name: String,
    pub user_id: String,
    pub status: RunStatus,
    pub start_time: i64,
    pub end_time: Option<i64>,
    pub lifecycle: Lifecycle,
    pub artifact_uri: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Metric {
    pub key: String,
    pub value: f64,
    pub timestamp: i64,
    pub step: i64,
}

/// A dataset some run of an experiment used, and the context it was used in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatasetSummary {
    pub experiment_id: i64,
    pub name: String,
    pub digest: String,
    pub context: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DatasetInput {
    pub name: String,
    pub digest: String,
    pub source_type: String,
    pub source: String,
    pub schema: Option<String>,
    pub profile: Option<String>,
    /// The input's tags (`mlflow.data.context`: train, eval…).
    pub tags: BTreeMap<String, String>,
}

impl DatasetInput {
    /// The tag naming what the dataset was used for (train, eval…).
    pub const CONTEXT_TAG: &str = "mlflow.data.context";

    pub fn context(&self) -> Option<&str> {
        self.tags.get(Self::CONTEXT_TAG).map(String::as_str)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Run {
    pub info: RunInfo,
    /// Latest value per key.
    pub metrics: Vec<Metric>,
    pub params: BTreeMap<String, String>,
    pub tags: BTreeMap<String, String>,
    pub inputs: Vec<DatasetInput>,
    /// Logged models this run used.
    pub model_inputs: Vec<String>,
    /// Logged models this run produced: (model id, step).
    pub outputs: Vec<(String, i64)>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct LoggedModel {
    pub id: String,
    pub experiment_id: i64,
    pub name: String,
    pub artifact_uri: String,
    pub status: String,
    pub model_type: String,
    pub source_run_id: Option<String>,
    pub creation_time: i64,
    pub last_updated_time: i64,
    pub tags: BTreeMap<String, String>,
    pub params: BTreeMap<String, String>,
    /// Every metric value logged for it, in the order logged.
    pub metrics: Vec<LoggedModelMetric>,
}

/// A metric value logged for a logged model (by a run, for a dataset when named).
#[derive(Debug, Clone, PartialEq)]
pub struct LoggedModelMetric {
    pub key: String,
    pub value: f64,
    pub timestamp: i64,
    pub step: i64,
    pub run_id: String,
    /// The dataset it was measured on: name and digest.
    pub dataset: Option<(String, String)>,
}

/// One entry of an artifact directory listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArtifactEntry {
    /// Name relative to the listed directory.
    pub name: String,
    pub is_dir: bool,
    /// Files only.
    pub size: Option<u64>,
}
