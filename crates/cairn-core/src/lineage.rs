//! Lineage: where a version came from — the run that produced it, the code (git commit,
//! branch, remote, dirty flag), the data it was trained on (dataset digests, DVC-tracked
//! inputs, MLflow datasets), the versions it derives from, and its environment files.
//! Recorded once, at registration, and queried both ways (what made this version; which
//! versions came from this data, commit or parent).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::Sha256Digest;

/// What a registration says about a version's origins.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct LineageInput {
    /// The run (Cairn or MLflow run id) that produced it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<CodeRef>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub data: Vec<DataRef>,
    /// Versions it derives from (fine-tuned from, distilled from…).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parents: Vec<ParentRef>,
    /// Requirements, conda or lock files, stored as blobs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub environment: Vec<EnvFile>,
}

impl LineageInput {
    pub fn is_empty(&self) -> bool {
        self == &Self::default()
    }
}

/// The code a version was built from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CodeRef {
    /// Full commit id.
    pub commit: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote: Option<String>,
    /// Uncommitted changes to tracked files at registration.
    #[serde(default)]
    pub dirty: bool,
}

/// One input dataset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DataRef {
    /// `dataset` (hashed by Cairn: the SHA-256 of its manifest, as for a version),
    /// `dvc` (an output tracked by DVC: its md5) or `mlflow` (an MLflow dataset input).
    pub kind: String,
    /// Where it was, as given (a path, a DVC output, an MLflow dataset's name).
    pub path: String,
    /// `sha256:<hex>`, `md5:<hex>`, or the digest MLflow recorded.
    pub digest: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub files: Option<u64>,
}

/// A version by model name and number.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
pub struct ParentRef {
    pub model: String,
    pub version: u64,
}

impl std::fmt::Display for ParentRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}@{}", self.model, self.version)
    }
}

/// An environment file (requirements.txt, conda.yaml, a lock file), stored as a blob.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct EnvFile {
    pub path: String,
    pub sha256: Sha256Digest,
    pub size: u64,
}

/// A version's lineage as the registry answers it: what it records, its ancestors (each
/// with its own lineage) and its direct descendants.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Lineage {
    pub model: String,
    pub version: u64,
    pub digest: Sha256Digest,
    #[serde(flatten)]
    pub recorded: LineageInput,
    /// The parents' lineages, in the order of `recorded.parents`; a parent deleted since
    /// is listed in `recorded.parents` but has no entry here.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schema(no_recursion)]
    pub ancestors: Vec<Lineage>,
    /// Versions that name this one as a parent.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub children: Vec<ParentRef>,
}
