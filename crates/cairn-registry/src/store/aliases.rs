//! Aliases and their history: every move recorded with the alias, in one transaction,
//! and rollback to where an alias pointed before its last move.

use cairn_core::model::AliasAction;
use cairn_core::{AliasMove, AliasName, ModelName};
use serde_json::json;

use super::lock_model;
use super::rows::MoveRow;
use crate::audit::{Action, Change};
use crate::db::write::WriteTx;
use crate::db::{MetadataStore, now_ms, time_of};
use crate::{Error, Result, audit};

impl MetadataStore {
    // ---- aliases ----

    /// Points `alias` at `target` (or removes it when `None`) and records the move, in
    /// one transaction. Returns `None` when the alias already points there.
    pub async fn move_alias(
        &self,
        model: &ModelName,
        alias: &AliasName,
        target: AliasTarget,
        action: AliasAction,
        actor: &str,
        reason: Option<&str>,
    ) -> Result<Option<AliasMove>> {
        self.with_retries(|| self.move_alias_once(model, alias, target, action, actor, reason))
            .await
    }

    pub(super) async fn move_alias_once(
        &self,
        model: &ModelName,
        alias: &AliasName,
        target: AliasTarget,
        action: AliasAction,
        actor: &str,
        reason: Option<&str>,
    ) -> Result<Option<AliasMove>> {
        let mut tx = self.write_tx().await?;
        let model_id = lock_model(&mut tx, model)
            .await?
            .ok_or_else(|| Error::ModelNotFound(model.to_string()))?;
        let current: Option<i64> = tx
            .query(
                "SELECT v.number FROM aliases a JOIN versions v ON v.id = a.version_id
             WHERE a.model_id = $1 AND a.alias = $2",
            )
            .bind(model_id)
            .bind(alias.as_str())
            .scalar_optional()
            .await?;

        let to = match target {
            AliasTarget::Version(n) => Some(n as i64),
            AliasTarget::Remove => {
                if current.is_none() {
                    return Err(Error::AliasNotFound {
                        model: model.to_string(),
                        alias: alias.to_string(),
                    });
                }
                None
            }
            AliasTarget::PreviousVersion => {
                let last: Option<(Option<i64>,)> = tx
                    .query(
                        "SELECT from_version FROM alias_moves WHERE model_id = $1 AND alias = $2
                     ORDER BY id DESC LIMIT 1",
                    )
                    .bind(model_id)
                    .bind(alias.as_str())
                    .fetch_optional()
                    .await?;
                match last {
                    None => {
                        return Err(Error::AliasNotFound {
                            model: model.to_string(),
                            alias: alias.to_string(),
                        });
                    }
                    Some((None,)) => {
                        return Err(Error::Conflict(format!(
                            "alias {alias:?} of model {model:?} has no earlier version to roll back to"
                        )));
                    }
                    Some((Some(previous),)) => Some(previous),
                }
            }
        };
        if to == current {
            return Ok(None);
        }

        let now = now_ms();
        match to {
            Some(number) => {
                let version_id: i64 = tx
                    .query("SELECT id FROM versions WHERE model_id = $1 AND number = $2")
                    .bind(model_id)
                    .bind(number)
                    .scalar_optional()
                    .await?
                    .ok_or_else(|| match target {
                        AliasTarget::PreviousVersion => Error::Conflict(format!(
                            "alias {alias:?} pointed at {model}@{number} before, which was deleted"
                        )),
                        _ => Error::VersionNotFound(format!("{model}@{number}")),
                    })?;
                tx.query(
                    "INSERT INTO aliases (model_id, alias, version_id) VALUES ($1, $2, $3)
                     ON CONFLICT (model_id, alias) DO UPDATE SET version_id = excluded.version_id",
                )
                .bind(model_id)
                .bind(alias.as_str())
                .bind(version_id)
                .execute()
                .await?;
            }
            None => {
                tx.query("DELETE FROM aliases WHERE model_id = $1 AND alias = $2")
                    .bind(model_id)
                    .bind(alias.as_str())
                    .execute()
                    .await?;
            }
        }
        record_move(
            &mut tx,
            model_id,
            alias.as_str(),
            current,
            to,
            action,
            actor,
            now,
            reason,
        )
        .await?;
        audit::append(
            &mut tx,
            Change {
                actor,
                action: Action::Alias(action),
                model: model.as_str(),
                target: format!("{model}@{alias}"),
                before: current.map(|n| json!({ "version": n })),
                after: to.map(|n| json!({ "version": n, "reason": reason })),
            },
        )
        .await?;
        tx.commit().await?;
        Ok(Some(AliasMove {
            alias: alias.to_string(),
            from: current.map(|n| n as u64),
            to: to.map(|n| n as u64),
            action,
            actor: actor.to_owned(),
            at: time_of(now),
            reason: reason.map(str::to_owned),
        }))
    }

    /// Every move of an alias, oldest first. `AliasNotFound` if it never existed.
    pub async fn alias_history(
        &self,
        model: &ModelName,
        alias: &AliasName,
    ) -> Result<Vec<AliasMove>> {
        let model_id = self.model_row(model).await?.id;
        let rows = self
            .read(
                "SELECT alias, from_version, to_version, action, actor, at, reason FROM alias_moves
             WHERE model_id = $1 AND alias = $2 ORDER BY id",
            )
            .bind(model_id)
            .bind(alias.as_str())
            .fetch_all::<MoveRow>()
            .await?;
        if rows.is_empty() {
            return Err(Error::AliasNotFound {
                model: model.to_string(),
                alias: alias.to_string(),
            });
        }
        rows.into_iter().map(MoveRow::into_move).collect()
    }
}

/// Where an alias move goes.
#[derive(Debug, Clone, Copy)]
pub enum AliasTarget {
    Version(u64),
    /// Where the alias pointed before its last move (rollback).
    PreviousVersion,
    Remove,
}

#[allow(clippy::too_many_arguments)]
pub(super) async fn record_move(
    tx: &mut WriteTx,
    model_id: i64,
    alias: &str,
    from: Option<i64>,
    to: Option<i64>,
    action: AliasAction,
    actor: &str,
    at: i64,
    reason: Option<&str>,
) -> Result<()> {
    tx.query(
        "INSERT INTO alias_moves (model_id, alias, from_version, to_version, action, actor, at, reason)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(model_id)
    .bind(alias)
    .bind(from)
    .bind(to)
    .bind(action.as_str())
    .bind(actor)
    .bind(at)
    .bind(reason)
    .execute()
    .await?;
    Ok(())
}
