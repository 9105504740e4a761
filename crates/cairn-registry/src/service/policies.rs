//! Promotion policies and approvals. A policy names the rules a version must meet
//! before an alias of the models it governs may point at it (`core::policy`); this
//! module stores policies and approvals, and answers what a move would break. The
//! check itself runs in `service::aliases`, on the state read under the model's lock,
//! so that every door (CLI, native API, MLflow alias and stage calls) obeys it.

use cairn_core::access::{Actor, Need, Scope, authorize};
use cairn_core::auth::{ModelPattern, Role};
use cairn_core::policy::{Policy, PolicyRecord};
use cairn_core::{AliasName, ModelName, VersionRef};

use super::{REASON_MAX, Registry, check_actor, check_text, existing_number};
use crate::db::write::WriteTx;
use crate::store::{
    Evidence, FileList, alias_state, delete_policy, evidence_in, lock_existing_model,
    write_approval, write_policy,
};
use crate::{Error, Result};

impl Registry {
    /// Sets the policy of `alias` for the models `models` names (a name, or a pattern
    /// such as `*`): by an admin of that model, or of every model for a pattern.
    pub async fn set_policy(
        &self,
        actor: &Actor,
        models: &str,
        alias: &AliasName,
        policy: &Policy,
    ) -> Result<PolicyRecord> {
        let actor = check_actor(actor)?;
        authorize_policy(actor, models)?;
        policy.check()?;
        self.meta
            .with_retries(|| async {
                let mut tx = self.meta.write_tx().await?;
                let stored = write_policy(&mut tx, models, alias, policy, actor).await?;
                tx.commit().await?;
                Ok(stored)
            })
            .await
    }

    /// Deletes the policy; `false` when there was none.
    pub async fn delete_policy(
        &self,
        actor: &Actor,
        models: &str,
        alias: &AliasName,
    ) -> Result<bool> {
        let actor = check_actor(actor)?;
        authorize_policy(actor, models)?;
        self.meta
            .with_retries(|| async {
                let mut tx = self.meta.write_tx().await?;
                let deleted = delete_policy(&mut tx, models, alias, actor).await?;
                tx.commit().await?;
                Ok(deleted)
            })
            .await
    }

    /// Every policy.
    pub async fn policies(&self) -> Result<Vec<PolicyRecord>> {
        self.meta.policies().await
    }

    /// Records `actor`'s approval of `model@number` for `alias`. The version's author
    /// cannot approve it. `false` when the actor had approved it already.
    pub async fn approve(
        &self,
        actor: &Actor,
        model: &ModelName,
        number: u64,
        alias: &AliasName,
        reason: Option<&str>,
    ) -> Result<bool> {
        let actor = check_actor(actor)?;
        existing_number(model, number)?;
        if let Some(reason) = reason {
            check_text("reason", reason, REASON_MAX)?;
        }
        let version = self
            .meta
            .get_version(model, &VersionRef::Number(number), FileList::Omitted)
            .await?;
        if version.created_by == actor.name {
            return Err(Error::Conflict(format!(
                "{} registered {model}@{number}, and the author of a version cannot approve it",
                actor.name
            )));
        }
        self.meta
            .with_retries(|| async {
                let mut tx = self.meta.write_tx().await?;
                // Approvals are read by alias moves under this lock.
                let model_id = lock_existing_model(&mut tx, model).await?;
                let added =
                    write_approval(&mut tx, model, model_id, number, alias, actor, reason).await?;
                tx.commit().await?;
                Ok(added)
            })
            .await
    }

    /// What moving `alias` of `model` to version `number` would break now (a dry run):
    /// evaluated as a move would be, in a transaction holding the model's lock, which
    /// is then given up.
    pub async fn promotion_check(
        &self,
        model: &ModelName,
        alias: &AliasName,
        number: u64,
    ) -> Result<Vec<String>> {
        existing_number(model, number)?;
        self.meta
            .with_retries(|| async {
                let mut tx = self.meta.write_tx().await?;
                let state = alias_state(&mut tx, model, alias).await?;
                unmet_rules_in(&mut tx, model, state.model_id, alias, number, state.current).await
            })
            .await
    }
}

/// Every rule of every policy governing `alias` of the (locked) model that moving it
/// from `current` to version `number` would break. Empty: the move is allowed. Read
/// through `tx` itself: a second connection while the lock is held could wait for a
/// pool that other lock holders have emptied.
pub(crate) async fn unmet_rules_in(
    tx: &mut WriteTx,
    model: &ModelName,
    model_id: i64,
    alias: &AliasName,
    number: u64,
    current: Option<u64>,
) -> Result<Vec<String>> {
    let Some(evidence) = evidence_in(tx, model, model_id, alias, number, current).await? else {
        return Ok(Vec::new());
    };
    let Evidence {
        policies,
        candidate,
        current,
        approvers,
    } = evidence;
    let mut unmet: Vec<String> = Vec::new();
    for policy in &policies {
        for rule in policy.unmet(&candidate, current.as_ref(), &approvers) {
            if !unmet.contains(&rule) {
                unmet.push(rule);
            }
        }
    }
    Ok(unmet)
}

/// A policy of one model is set by its admins; a pattern's, by admins of every model.
fn authorize_policy(actor: &Actor, models: &str) -> Result<()> {
    if ModelPattern::is_pattern(models) {
        ModelPattern::new(models)?;
        authorize(actor, Need::new(Role::Admin, Scope::Registry))?;
    } else {
        ModelName::new(models)?;
        authorize(actor, Need::new(Role::Admin, Scope::Model(models)))?;
    }
    Ok(())
}
