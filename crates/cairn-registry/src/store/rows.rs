//! The metadata store's rows, each decoded from either driver, and what they map to.

use std::collections::BTreeMap;

use cairn_core::api::NewVersion;
use cairn_core::model::AliasAction;
use cairn_core::{AliasMove, ModelName, Sha256Digest, Version};

use super::parse_digest;
use crate::Result;
use crate::db::{corrupt_row, time_of};

#[derive(sqlx::FromRow)]
pub(super) struct ModelRow {
    pub(super) id: i64,
    pub(super) name: String,
    pub(super) description: String,
    pub(super) created_by: String,
    pub(super) created_at: i64,
    pub(super) updated_at: i64,
}

impl TryFrom<&rusqlite::Row<'_>> for ModelRow {
    type Error = rusqlite::Error;

    /// A row of `id, name, description, created_by, created_at, updated_at`.
    fn try_from(row: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            id: row.get(0)?,
            name: row.get(1)?,
            description: row.get(2)?,
            created_by: row.get(3)?,
            created_at: row.get(4)?,
            updated_at: row.get(5)?,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct VersionRow {
    pub(super) id: i64,
    pub(super) number: i64,
    pub(super) digest: String,
    pub(super) description: String,
    pub(super) file_count: i64,
    pub(super) size: i64,
    pub(super) created_by: String,
    pub(super) created_at: i64,
    pub(super) source: String,
    pub(super) run_id: String,
    pub(super) run_link: String,
    pub(super) logged_model_id: Option<String>,
    pub(super) stage: String,
    pub(super) updated_at: i64,
}

impl TryFrom<&rusqlite::Row<'_>> for VersionRow {
    type Error = rusqlite::Error;

    /// A row of [`VERSION_COLUMNS`], from its first column on.
    fn try_from(row: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            id: row.get(0)?,
            number: row.get(1)?,
            digest: row.get(2)?,
            description: row.get(3)?,
            file_count: row.get(4)?,
            size: row.get(5)?,
            created_by: row.get(6)?,
            created_at: row.get(7)?,
            source: row.get(8)?,
            run_id: row.get(9)?,
            run_link: row.get(10)?,
            logged_model_id: row.get(11)?,
            stage: row.get(12)?,
            updated_at: row.get(13)?,
        })
    }
}

/// A version row with its model's name.
#[derive(sqlx::FromRow)]
pub(super) struct NamedVersionRow {
    pub(super) name: String,
    #[sqlx(flatten)]
    pub(super) version: VersionRow,
}

/// One tag ('t'), param ('p'), metric ('m') or alias ('a') of a version: version id,
/// kind, key, text value, number value.
pub(super) type DetailRow = (i64, String, String, Option<String>, Option<f64>);

/// What completes a version row: its tags, params, metrics and aliases.
#[derive(Default)]
pub(super) struct VersionDetails {
    pub(super) tags: BTreeMap<String, String>,
    pub(super) params: BTreeMap<String, String>,
    pub(super) metrics: BTreeMap<String, f64>,
    pub(super) aliases: Vec<String>,
}

impl VersionDetails {
    /// Adds one detail row: `kind` 't' (tag), 'p' (param), 'm' (metric) or 'a' (alias).
    pub(super) fn add(
        &mut self,
        kind: &str,
        key: String,
        text: Option<String>,
        number: Option<f64>,
    ) {
        match kind {
            "t" => {
                self.tags.insert(key, text.unwrap_or_default());
            }
            "p" => {
                self.params.insert(key, text.unwrap_or_default());
            }
            "m" => {
                self.metrics.insert(key, number.unwrap_or(f64::NAN));
            }
            _ => self.aliases.push(key),
        }
    }
}

/// A version row with one of its details (all `None` for a version without any).
#[derive(sqlx::FromRow)]
pub(super) struct VersionDetailRow {
    #[sqlx(flatten)]
    pub(super) version: VersionRow,
    pub(super) detail_kind: Option<String>,
    pub(super) detail_key: Option<String>,
    pub(super) detail_text: Option<String>,
    pub(super) detail_number: Option<f64>,
}

impl TryFrom<&rusqlite::Row<'_>> for VersionDetailRow {
    type Error = rusqlite::Error;

    /// A row of [`VERSION_COLUMNS`] then kind, key, text and number.
    fn try_from(row: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            version: VersionRow::try_from(row)?,
            detail_kind: row.get(14)?,
            detail_key: row.get(15)?,
            detail_text: row.get(16)?,
            detail_number: row.get(17)?,
        })
    }
}

pub(super) fn version_from_row(model: String, r: VersionRow, d: VersionDetails) -> Result<Version> {
    Ok(Version {
        model,
        version: r.number as u64,
        digest: parse_digest(&r.digest)?,
        description: r.description,
        file_count: r.file_count as u64,
        size: r.size as u64,
        files: None,
        aliases: d.aliases,
        metrics: d.metrics,
        params: d.params,
        tags: d.tags,
        created_by: r.created_by,
        created_at: time_of(r.created_at),
    })
}

/// Every column of [`VersionRow`], for queries over `versions v`.
pub(super) const VERSION_COLUMNS: &str = "v.id, v.number, v.digest, v.description, v.file_count, v.size, \
     v.created_by, v.created_at, v.source, v.run_id, v.run_link, v.logged_model_id, v.stage, v.updated_at";

impl VersionRow {
    pub(super) fn extras(&self) -> VersionExtras {
        VersionExtras {
            origin: VersionOrigin {
                source: self.source.clone(),
                run_id: self.run_id.clone(),
                run_link: self.run_link.clone(),
                logged_model_id: self.logged_model_id.clone(),
            },
            stage: self.stage.clone(),
            updated_at: self.updated_at,
        }
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct MoveRow {
    pub(super) alias: String,
    pub(super) from_version: Option<i64>,
    pub(super) to_version: Option<i64>,
    pub(super) action: String,
    pub(super) actor: String,
    pub(super) at: i64,
    pub(super) reason: Option<String>,
}

impl MoveRow {
    pub(super) fn into_move(self) -> Result<AliasMove> {
        Ok(AliasMove {
            alias: self.alias,
            from: self.from_version.map(|n| n as u64),
            to: self.to_version.map(|n| n as u64),
            action: AliasAction::parse(&self.action).ok_or_else(|| corrupt_row("alias action"))?,
            actor: self.actor,
            at: time_of(self.at),
            reason: self.reason,
        })
    }
}

/// A version to insert, validated by the service.
pub(crate) struct VersionInsert<'a> {
    pub model: &'a ModelName,
    pub digest: Sha256Digest,
    pub new: &'a NewVersion,
    pub actor: &'a str,
    pub origin: &'a VersionOrigin,
}

/// Where a version came from, as MLflow records it: the artifact URI it was registered
/// from, the run that produced it, and the MLflow 3 logged model.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VersionOrigin {
    pub source: String,
    pub run_id: String,
    pub run_link: String,
    pub logged_model_id: Option<String>,
}

/// The MLflow-only state of a version: its origin, legacy stage and update time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionExtras {
    pub origin: VersionOrigin,
    pub stage: String,
    pub updated_at: i64,
}
