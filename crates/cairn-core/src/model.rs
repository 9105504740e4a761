//! The views of registry state that the service hands out, the CLI prints (`--json`)
//! and the native API returns. Storage rows live in the registry crate, not here.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;

use crate::{FileEntry, Sha256Digest};

pub type Tags = BTreeMap<String, String>;
pub type Metrics = BTreeMap<String, f64>;
pub type Params = BTreeMap<String, String>;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Model {
    pub name: String,
    pub description: String,
    pub tags: Tags,
    /// Alias → version number.
    pub aliases: BTreeMap<String, u64>,
    /// Newest version that still exists.
    pub latest_version: Option<u64>,
    /// Versions that still exist.
    pub version_count: u64,
    pub created_by: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Version {
    pub model: String,
    pub version: u64,
    /// SHA-256 of the canonical manifest (see `Manifest::canonical_text`); `None` for
    /// an external version, whose bytes the registry does not hold.
    pub digest: Option<Sha256Digest>,
    /// Where an external version's bytes are (its source), never read nor verified by
    /// the registry; absent for a content-addressed version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_source: Option<String>,
    pub description: String,
    pub file_count: u64,
    /// Sum of the files' sizes, in bytes.
    pub size: u64,
    /// The manifest; left out of listings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub files: Option<Vec<FileEntry>>,
    /// Aliases currently pointing at this version.
    pub aliases: Vec<String>,
    pub metrics: Metrics,
    pub params: Params,
    pub tags: Tags,
    pub created_by: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

/// What moved an alias.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AliasAction {
    /// `alias set` or `promote`.
    Set,
    Rollback,
    /// `alias delete`.
    Delete,
    /// The version it pointed at was deleted.
    VersionDeleted,
}

impl AliasAction {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Set => "set",
            Self::Rollback => "rollback",
            Self::Delete => "delete",
            Self::VersionDeleted => "version_deleted",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            Self::Set,
            Self::Rollback,
            Self::Delete,
            Self::VersionDeleted,
        ]
        .into_iter()
        .find(|a| a.as_str() == s)
    }
}

/// One move of an alias. `from` is `None` on the first move, `to` is `None` when the
/// alias was removed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AliasMove {
    pub alias: String,
    pub from: Option<u64>,
    pub to: Option<u64>,
    pub action: AliasAction,
    pub actor: String,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum BlobProblem {
    /// The stored bytes no longer hash to their digest (or have the wrong size).
    Corrupt,
    Missing,
}

/// A file of a version, as named in a verification report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct FileRef {
    pub model: String,
    pub version: u64,
    pub path: String,
}

/// One bad blob and everything that holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct VerifyProblem {
    pub sha256: Sha256Digest,
    pub problem: BlobProblem,
    /// Version files holding it.
    pub files: Vec<FileRef>,
    /// Environment files of versions (lineage: `requirements.txt`…) holding it.
    #[serde(default)]
    pub environment: Vec<FileRef>,
    /// Run and logged-model artifacts holding it, by artifact path.
    #[serde(default)]
    pub artifacts: Vec<String>,
}

/// A metadata record that disagrees with what it describes, whatever the blobs hold:
/// a version whose manifest rows no longer hash to its digest (a row edited, added or
/// removed), or a row declaring a size its blob does not have.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RecordProblem {
    /// `NAME@N` for a version, `artifact PATH` for an artifact.
    pub record: String,
    pub reason: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct VerifyReport {
    /// Versions whose manifests were recomputed.
    pub versions: u64,
    /// External versions: their bytes are elsewhere, so they were not verified.
    #[serde(default)]
    pub external: u64,
    /// Distinct blobs re-hashed.
    pub blobs: u64,
    pub bytes: u64,
    /// Blobs missing or whose bytes no longer hash to their digest.
    pub problems: Vec<VerifyProblem>,
    /// Records that disagree with their content.
    #[serde(default)]
    pub records: Vec<RecordProblem>,
}

impl VerifyReport {
    pub fn ok(&self) -> bool {
        self.problems.is_empty() && self.records.is_empty()
    }
}

/// One entry of the audit log: who changed what, when, from what to what, chained to
/// the entry before it by its hash.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AuditEntry {
    /// How the entry is hashed (1: before authentication existed; 2: also its token).
    pub format: u32,
    /// 1, 2, 3… with no gap.
    pub seq: u64,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// Who made the change: the authenticated user when the server enforces
    /// authentication, otherwise the name the client declared.
    pub actor: String,
    /// The id of the API token the change was made with (never its secret).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// E.g. `version.create`, `alias.set`, `model.tag.delete`.
    pub action: String,
    /// The model concerned (empty when none).
    pub model: String,
    /// What changed: `NAME`, `NAME@N`, `NAME@ALIAS`…
    pub target: String,
    #[schema(value_type = Option<Object>)]
    pub before: Option<serde_json::Value>,
    #[schema(value_type = Option<Object>)]
    pub after: Option<serde_json::Value>,
    /// Hex SHA-256 of the previous entry (64 zeros before the first).
    pub prev_hash: String,
    /// Hex SHA-256 of this entry's content and `prev_hash`.
    pub hash: String,
}

/// A refused request, from the security log (`cairn audit denied`): never part of the
/// hash-chained audit log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Denial {
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// The authenticated user; absent when the request had no valid credentials.
    pub user: Option<String>,
    /// The id of the token it came with.
    pub token: Option<String>,
    pub method: String,
    pub path: String,
    /// 401 (not authenticated) or 403 (not allowed).
    pub status: u16,
    /// Why, as the caller was told.
    pub reason: String,
}

/// The newest entry of the audit log: export it, and a later `cairn audit verify
/// --head SEQ:HASH` proves nothing up to it changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AuditHead {
    pub seq: u64,
    pub hash: String,
}

/// What `cairn audit verify` found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AuditReport {
    /// Entries checked.
    pub entries: u64,
    pub head: AuditHead,
    /// The first entry that does not verify, if any.
    pub broken: Option<AuditBreak>,
}

impl AuditReport {
    pub fn ok(&self) -> bool {
        self.broken.is_none()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AuditBreak {
    pub seq: u64,
    pub reason: String,
}

/// What `cairn gc` collected (or, with `--dry-run`, would collect).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct GcReport {
    pub dry_run: bool,
    /// Blobs nothing references, deleted (or to delete).
    pub freed: Vec<Sha256Digest>,
    pub freed_bytes: u64,
    /// Unreferenced blobs younger than the grace period, kept: they may belong to a
    /// push that has not committed yet.
    pub kept_young: u64,
    /// Blobs stored in all, before collecting.
    pub stored: u64,
    /// Staged files of interrupted uploads older than the grace period, removed (or to
    /// remove).
    #[serde(default)]
    pub stale_uploads: u64,
}

/// What keeps a blob alive (`cairn gc --why`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct BlobUse {
    pub digest: Sha256Digest,
    pub stored: bool,
    /// Version files holding it.
    pub versions: Vec<FileRef>,
    /// Run or logged-model artifacts holding it.
    pub artifacts: Vec<String>,
    /// Multipart uploads in progress holding it as a part.
    pub uploads: Vec<String>,
    /// When a collection deleted it, if it did and it was not uploaded again.
    #[serde(with = "time::serde::rfc3339::option")]
    pub collected_at: Option<OffsetDateTime>,
}
