//! The registry's aggregates on the engine layer (`db`): models, versions with their
//! manifests, aliases and their history, tags and descriptions, and the MLflow filters
//! over them. Rows are private types mapped to `cairn_core` views here.
//!
//! Writes that read before they write lock what they read: on SQLite every write
//! transaction starts with `BEGIN IMMEDIATE` (the database's single write lock, taken up
//! front, so writers queue instead of failing on a lock upgrade); on PostgreSQL they take
//! the model row's lock first ([`lock_model`]), so version numbers and alias moves stay
//! serial per model across any number of servers.

use std::str::FromStr;

use cairn_core::{ModelName, Sha256Digest};

use crate::db::corrupt_row;
use crate::db::write::WriteTx;
use crate::{Error, Result};

mod aliases;
mod browse;
mod models;
mod policies;
mod rows;
mod tags;
mod versions;

pub(crate) use aliases::{AliasState, AliasWrite, alias_state, write_alias_move, write_protection};
pub(crate) use policies::{Evidence, delete_policy, evidence_in, write_approval, write_policy};
pub(crate) use rows::VersionInsert;
pub use rows::{VersionExtras, VersionOrigin};
pub(crate) use tags::Described;

pub use browse::VersionSort;
pub use versions::FileList;

fn parse_digest(s: &str) -> Result<Sha256Digest> {
    Sha256Digest::from_str(s).map_err(|_| corrupt_row("digest"))
}

/// Locks the model's row until the transaction ends and returns its id (`None` if
/// there is no such model). An UPDATE takes the row lock on every engine (SQLite has no
/// `FOR UPDATE`; its `BEGIN IMMEDIATE` already serializes writers): concurrent writers
/// to one model — on any server — queue here, so what they read next is current.
pub(crate) async fn lock_model(tx: &mut WriteTx, name: &ModelName) -> Result<Option<i64>> {
    tx.query("UPDATE models SET next_version = next_version WHERE name = $1 RETURNING id")
        .bind(name.as_str())
        .scalar_optional()
        .await
}

/// [`lock_model`] for a model that must exist: its id, or `ModelNotFound`.
pub(crate) async fn lock_existing_model(tx: &mut WriteTx, name: &ModelName) -> Result<i64> {
    lock_model(tx, name)
        .await?
        .ok_or_else(|| Error::ModelNotFound(name.to_string()))
}

/// Marks the model changed at `now` (MLflow shows it as the model's last update).
async fn touch_model(tx: &mut WriteTx, model_id: i64, now: i64) -> Result<()> {
    tx.query("UPDATE models SET updated_at = $2 WHERE id = $1")
        .bind(model_id)
        .bind(now)
        .execute()
        .await?;
    Ok(())
}

/// The id of version `number` of the (locked) model `model_id`.
pub(super) async fn version_in(
    tx: &mut WriteTx,
    model: &ModelName,
    model_id: i64,
    number: u64,
) -> Result<i64> {
    tx.query("SELECT id FROM versions WHERE model_id = $1 AND number = $2")
        .bind(model_id)
        .bind(number as i64)
        .scalar_optional()
        .await?
        .ok_or_else(|| Error::VersionNotFound {
            model: model.to_string(),
            reference: number.to_string(),
        })
}
