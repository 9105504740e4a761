//! Aliases and their history, as stored: where an alias points and where it pointed
//! before, a move written with its history row and audit entry in the caller's
//! transaction. Which move to make (rollback targets, moves that change nothing) is
//! the service's rule (`service::aliases`).

use cairn_core::access::Actor;
use cairn_core::model::AliasAction;
use cairn_core::{AliasMove, AliasName, ModelName};
use serde_json::json;

use super::rows::MoveRow;
use super::{lock_model, version_in};
use crate::audit::{Action, Change};
use crate::db::write::WriteTx;
use crate::db::{MetadataStore, now_ms, time_of};
use crate::{Error, Result};

/// An alias as a move finds it, read under the model's lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AliasState {
    pub model_id: i64,
    /// The version it points at now.
    pub current: Option<u64>,
    /// Where its last move came from: `None` if it never moved, `Some(None)` if the
    /// last move was its first (it pointed nowhere before).
    pub last_from: Option<Option<u64>>,
    /// Whether only the model's admins may move it.
    pub protected: bool,
}

/// Locks `model` and reads `alias`'s state. `ModelNotFound` when there is no model.
pub async fn alias_state(
    tx: &mut WriteTx,
    model: &ModelName,
    alias: &AliasName,
) -> Result<AliasState> {
    let model_id = lock_model(tx, model)
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
    let last: Option<(Option<i64>,)> = tx
        .query(
            "SELECT from_version FROM alias_moves WHERE model_id = $1 AND alias = $2
             ORDER BY id DESC LIMIT 1",
        )
        .bind(model_id)
        .bind(alias.as_str())
        .fetch_optional()
        .await?;
    let protected = is_protected(tx, model_id, alias.as_str()).await?;
    Ok(AliasState {
        model_id,
        protected,
        current: current.map(|n| n as u64),
        last_from: last.map(|(from,)| from.map(|n| n as u64)),
    })
}

/// Whether alias `alias` of model `model_id` is protected.
pub async fn is_protected(tx: &mut WriteTx, model_id: i64, alias: &str) -> Result<bool> {
    let found: Option<i64> = tx
        .query("SELECT 1 FROM protected_aliases WHERE model_id = $1 AND alias = $2")
        .bind(model_id)
        .bind(alias)
        .scalar_optional()
        .await?;
    Ok(found.is_some())
}

/// Protects (`protect`) or unprotects alias `alias` of model `model_id` in `tx`, with its
/// audit entry. `false` when it already was as asked (nothing is written).
pub async fn write_protection(
    tx: &mut WriteTx,
    model_id: i64,
    model: &ModelName,
    alias: &AliasName,
    protect: bool,
    actor: &Actor,
) -> Result<bool> {
    let changed = if protect {
        tx.query(
            "INSERT INTO protected_aliases (model_id, alias, protected_by, protected_at)
             VALUES ($1, $2, $3, $4) ON CONFLICT (model_id, alias) DO NOTHING",
        )
        .bind(model_id)
        .bind(alias.as_str())
        .bind(&actor.name)
        .bind(now_ms())
        .execute()
        .await?
    } else {
        tx.query("DELETE FROM protected_aliases WHERE model_id = $1 AND alias = $2")
            .bind(model_id)
            .bind(alias.as_str())
            .execute()
            .await?
    };
    if changed == 0 {
        return Ok(false);
    }
    let action = if protect {
        Action::AliasProtect
    } else {
        Action::AliasUnprotect
    };
    Change::new(actor, action, model.as_str(), format!("{model}@{alias}"))
        .before(json!({ "protected": !protect }))
        .after(json!({ "protected": protect }))
        .append(tx)
        .await?;
    Ok(true)
}

/// One alias move to write.
pub struct AliasWrite<'a> {
    pub model: &'a ModelName,
    pub alias: &'a AliasName,
    pub from: Option<u64>,
    /// `None` removes the alias.
    pub to: Option<u64>,
    pub action: AliasAction,
    pub actor: &'a Actor,
    pub reason: Option<&'a str>,
}

/// Points the alias at `to` (or removes it), records the move in its history and the
/// audit log, in `tx`. `VersionNotFound` when version `to` does not exist.
pub async fn write_alias_move(
    tx: &mut WriteTx,
    model_id: i64,
    m: &AliasWrite<'_>,
) -> Result<AliasMove> {
    let (model, alias) = (m.model, m.alias.as_str());
    match m.to {
        Some(number) => {
            let version_id = version_in(tx, model, model_id, number).await?;
            tx.query(
                "INSERT INTO aliases (model_id, alias, version_id) VALUES ($1, $2, $3)
                 ON CONFLICT (model_id, alias) DO UPDATE SET version_id = excluded.version_id",
            )
            .bind(model_id)
            .bind(alias)
            .bind(version_id)
            .execute()
            .await?;
        }
        None => {
            tx.query("DELETE FROM aliases WHERE model_id = $1 AND alias = $2")
                .bind(model_id)
                .bind(alias)
                .execute()
                .await?;
        }
    }
    let now = now_ms();
    let (from, to) = (m.from.map(|n| n as i64), m.to.map(|n| n as i64));
    record_move(
        tx, model_id, alias, from, to, m.action, m.actor, now, m.reason,
    )
    .await?;
    Change::new(
        m.actor,
        Action::Alias(m.action),
        model.as_str(),
        format!("{model}@{alias}"),
    )
    .before(from.map(|n| json!({ "version": n })))
    .after(to.map(|n| json!({ "version": n, "reason": m.reason })))
    .append(tx)
    .await?;
    Ok(AliasMove {
        alias: alias.to_owned(),
        from: m.from,
        to: m.to,
        action: m.action,
        actor: m.actor.name.clone(),
        at: time_of(now),
        reason: m.reason.map(str::to_owned),
    })
}

impl MetadataStore {
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

#[allow(clippy::too_many_arguments)]
pub(super) async fn record_move(
    tx: &mut WriteTx,
    model_id: i64,
    alias: &str,
    from: Option<i64>,
    to: Option<i64>,
    action: AliasAction,
    actor: &Actor,
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
    .bind(&actor.name)
    .bind(at)
    .bind(reason)
    .execute()
    .await?;
    Ok(())
}
