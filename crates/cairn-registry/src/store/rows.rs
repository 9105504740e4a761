//! The metadata store's rows, each decoded from either driver, and what they map to.

use std::collections::BTreeMap;

use cairn_core::access::Actor;
use cairn_core::api::NewVersion;
use cairn_core::model::AliasAction;
use cairn_core::{AliasMove, ModelName, Sha256Digest, Version};

use super::parse_digest;
use crate::Result;
use crate::db::sql::{Columns, Decode, DecodeError, decoded_row};
use crate::db::{corrupt_row, time_of};

pub(super) struct ModelRow {
    pub(super) id: i64,
    pub(super) name: String,
    pub(super) description: String,
    pub(super) created_by: String,
    pub(super) created_at: i64,
    pub(super) updated_at: i64,
}

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
    /// 1 for an external version (no files, `digest` '').
    pub(super) external: i64,
}

/// A version row with its model's name.
pub(super) struct NamedVersionRow {
    pub(super) name: String,
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
    ) -> Result<()> {
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
            "a" => self.aliases.push(key),
            _ => return Err(corrupt_row("version detail kind")),
        }
        Ok(())
    }
}

/// A version row with one of its details (all `None` for a version without any).
pub(super) struct VersionDetailRow {
    pub(super) version: VersionRow,
    pub(super) detail_kind: Option<String>,
    pub(super) detail_key: Option<String>,
    pub(super) detail_text: Option<String>,
    pub(super) detail_number: Option<f64>,
}

pub(super) fn version_from_row(model: String, r: VersionRow, d: VersionDetails) -> Result<Version> {
    // An external version's row holds no digest; any other must hold a valid one.
    let (digest, external_source) = match r.external {
        0 => (Some(parse_digest(&r.digest)?), None),
        1 if r.digest.is_empty() && r.file_count == 0 => (None, Some(r.source)),
        _ => return Err(corrupt_row("external version")),
    };
    Ok(Version {
        model,
        version: r.number as u64,
        digest,
        external_source,
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
     v.created_by, v.created_at, v.source, v.run_id, v.run_link, v.logged_model_id, v.stage, v.updated_at, v.external";

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
    /// `None` for an external version (whose manifest is empty).
    pub digest: Option<Sha256Digest>,
    pub new: &'a NewVersion,
    pub actor: &'a Actor,
    pub origin: &'a VersionOrigin,
    /// The idempotency key the registration holds, completed in its transaction.
    pub claim: Option<&'a crate::idempotency::Claim>,
    /// Whether a missing model is created (Cairn's own registrations) or refused
    /// (`ModelNotFound`: MLflow registers versions of existing models only).
    pub create_model: bool,
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

/// `id, name, description, created_by, created_at, updated_at` of `models`.
impl Decode for ModelRow {
    fn decode(c: &mut Columns<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            id: c.next()?,
            name: c.next()?,
            description: c.next()?,
            created_by: c.next()?,
            created_at: c.next()?,
            updated_at: c.next()?,
        })
    }
}
decoded_row!(ModelRow);

/// The columns of [`VERSION_COLUMNS`], in its order.
impl Decode for VersionRow {
    fn decode(c: &mut Columns<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            id: c.next()?,
            number: c.next()?,
            digest: c.next()?,
            description: c.next()?,
            file_count: c.next()?,
            size: c.next()?,
            created_by: c.next()?,
            created_at: c.next()?,
            source: c.next()?,
            run_id: c.next()?,
            run_link: c.next()?,
            logged_model_id: c.next()?,
            stage: c.next()?,
            updated_at: c.next()?,
            external: c.next()?,
        })
    }
}
decoded_row!(VersionRow);

/// `m.name, {VERSION_COLUMNS}`.
impl Decode for NamedVersionRow {
    fn decode(c: &mut Columns<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            name: c.next()?,
            version: VersionRow::decode(c)?,
        })
    }
}
decoded_row!(NamedVersionRow);

/// `{VERSION_COLUMNS}`, then the detail's kind, key, text and number.
impl Decode for VersionDetailRow {
    fn decode(c: &mut Columns<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            version: VersionRow::decode(c)?,
            detail_kind: c.next()?,
            detail_key: c.next()?,
            detail_text: c.next()?,
            detail_number: c.next()?,
        })
    }
}
decoded_row!(VersionDetailRow);

/// `alias, from_version, to_version, action, actor, at, reason` of `alias_moves`.
impl Decode for MoveRow {
    fn decode(c: &mut Columns<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            alias: c.next()?,
            from_version: c.next()?,
            to_version: c.next()?,
            action: c.next()?,
            actor: c.next()?,
            at: c.next()?,
            reason: c.next()?,
        })
    }
}
decoded_row!(MoveRow);
