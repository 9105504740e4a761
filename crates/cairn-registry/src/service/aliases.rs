//! Alias moves: `alias set` / `promote`, `rollback`, `alias delete`. The rules of a
//! move — where a rollback goes, which moves change nothing — are decided here, on the
//! alias's state read under the model's lock, and the move is written in that same
//! transaction: two concurrent moves of one alias never both see the old state.
//!
//! A protected alias is moved only by an admin of its model: checked here, on the state
//! read under the lock, so that every door (CLI, native API, MLflow alias calls) obeys
//! it and a protection that lands first is never missed.

use cairn_core::access::{Actor, Need, Scope, authorize};
use cairn_core::api::IdempotencyKey;
use cairn_core::auth::Role;
use cairn_core::model::AliasAction;
use cairn_core::{AliasMove, AliasName, ModelName};

use super::idempotency::fingerprint;
use super::policies::unmet_rules_in;
use super::{REASON_MAX, Registry, check_actor, check_text, existing_number};
use crate::idempotency::complete;
use crate::store::{
    AliasState, AliasWrite, alias_state, lock_existing_model, write_alias_move, write_protection,
};
use crate::{Error, Result};

/// Where an alias move goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AliasTarget {
    /// To version `n` (`alias set`, `promote`).
    Version(u64),
    /// Back to where the alias pointed before its last move (`rollback`).
    PreviousVersion,
    /// Nowhere: the alias is removed (`alias delete`).
    Remove,
}

impl AliasTarget {
    /// How the move is recorded in the alias's history.
    fn action(self) -> AliasAction {
        match self {
            Self::Version(_) => AliasAction::Set,
            Self::PreviousVersion => AliasAction::Rollback,
            Self::Remove => AliasAction::Delete,
        }
    }
}

impl Registry {
    /// Moves `alias` to `target`, recording the move with `reason`. `None` when the
    /// move changes nothing (the alias is there already): nothing is recorded.
    pub async fn move_alias(
        &self,
        actor: &Actor,
        model: &ModelName,
        alias: &AliasName,
        target: AliasTarget,
        reason: Option<&str>,
    ) -> Result<Option<AliasMove>> {
        self.move_alias_keyed(actor, model, alias, target, reason, None)
            .await
    }

    /// [`Registry::move_alias`] under a client's idempotency key (when there is one):
    /// the key sent again answers the move it made — a rollback repeated does not roll
    /// back twice.
    pub async fn move_alias_keyed(
        &self,
        actor: &Actor,
        model: &ModelName,
        alias: &AliasName,
        target: AliasTarget,
        reason: Option<&str>,
        key: Option<&IdempotencyKey>,
    ) -> Result<Option<AliasMove>> {
        let actor = check_actor(actor)?;
        if let AliasTarget::Version(number) = target {
            existing_number(model, number)?;
        }
        if let Some(reason) = reason {
            check_text("reason", reason, REASON_MAX)?;
        }
        let action = target.action();
        let request = || {
            let target = match target {
                AliasTarget::Version(n) => n.to_string(),
                AliasTarget::PreviousVersion => "rollback".to_owned(),
                AliasTarget::Remove => "remove".to_owned(),
            };
            fingerprint(&("move alias", model.as_str(), alias.as_str(), target, reason))
        };
        self.keyed(actor, key, request, |claim| {
            self.meta.with_retries(move || {
                let claim = claim.clone();
                async move {
                    let mut tx = self.meta.write_tx().await?;
                    let state = alias_state(&mut tx, model, alias).await?;
                    let Some(to) = destination(&state, target, model, alias)? else {
                        return Ok(None);
                    };
                    if state.protected {
                        authorize(actor, Need::new(Role::Admin, Scope::Model(model.as_str())))?;
                    }
                    // A promotion meets the alias's policies; a rollback (to where the
                    // alias was before) is the escape hatch and skips them. Read in this
                    // transaction, under the model's lock: tags and approvals of its
                    // versions cannot change until this move commits or gives up.
                    if let (AliasTarget::Version(number), Some(to)) = (target, to) {
                        let unmet = unmet_rules_in(
                            &mut tx,
                            model,
                            state.model_id,
                            alias,
                            to,
                            state.current,
                        )
                        .await?;
                        if !unmet.is_empty() {
                            return Err(Error::PolicyUnmet {
                                target: format!("moving {model}@{alias} to {number}"),
                                unmet,
                            });
                        }
                    }
                    let write = AliasWrite {
                        model,
                        alias,
                        from: state.current,
                        to,
                        action,
                        actor,
                        reason,
                    };
                    let moved = write_alias_move(&mut tx, state.model_id, &write)
                        .await
                        .map_err(|e| match (e, target, to) {
                            (
                                Error::VersionNotFound { .. },
                                AliasTarget::PreviousVersion,
                                Some(n),
                            ) => Error::Conflict(format!(
                                "alias {alias:?} pointed at {model}@{n} before, which was deleted"
                            )),
                            (e, ..) => e,
                        })?;
                    let moved = Some(moved);
                    complete(claim.as_ref(), &mut tx, &moved).await?;
                    tx.commit().await?;
                    Ok(moved)
                }
            })
        })
        .await
    }

    /// Protects `alias` of `model` (or, with `protect` false, lifts its protection): from
    /// then on only admins of the model move, roll back or delete it. The alias need not
    /// point anywhere yet. `false` when it already was as asked.
    pub async fn protect_alias(
        &self,
        actor: &Actor,
        model: &ModelName,
        alias: &AliasName,
        protect: bool,
    ) -> Result<bool> {
        let actor = check_actor(actor)?;
        authorize(actor, Need::new(Role::Admin, Scope::Model(model.as_str())))?;
        self.meta
            .with_retries(|| async {
                let mut tx = self.meta.write_tx().await?;
                let model_id = lock_existing_model(&mut tx, model).await?;
                let changed =
                    write_protection(&mut tx, model_id, model, alias, protect, actor).await?;
                tx.commit().await?;
                Ok(changed)
            })
            .await
    }

    /// The protected aliases of `model`, by name.
    pub async fn protected_aliases(&self, model: &ModelName) -> Result<Vec<String>> {
        self.meta
            .read(
                "SELECT p.alias FROM protected_aliases p JOIN models m ON m.id = p.model_id
                 WHERE m.name = $1 ORDER BY p.alias",
            )
            .bind(model.as_str())
            .scalar_all()
            .await
    }

    /// Every move of an alias, oldest first. `AliasNotFound` if it never existed.
    pub async fn alias_history(
        &self,
        model: &ModelName,
        alias: &AliasName,
    ) -> Result<Vec<AliasMove>> {
        self.meta.alias_history(model, alias).await
    }
}

/// Where a move takes the alias: `Some(Some(n))` to version `n`, `Some(None)` nowhere
/// (removed), `None` when the move changes nothing (the alias is there already).
fn destination(
    state: &AliasState,
    target: AliasTarget,
    model: &ModelName,
    alias: &AliasName,
) -> Result<Option<Option<u64>>> {
    let not_found = || Error::AliasNotFound {
        model: model.to_string(),
        alias: alias.to_string(),
    };
    let to = match target {
        AliasTarget::Version(n) => Some(n),
        AliasTarget::Remove if state.current.is_none() => return Err(not_found()),
        AliasTarget::Remove => None,
        AliasTarget::PreviousVersion => match state.last_from {
            None => return Err(not_found()),
            Some(None) => {
                return Err(Error::Conflict(format!(
                    "alias {alias:?} of model {model:?} has no earlier version to roll back to"
                )));
            }
            Some(Some(previous)) => Some(previous),
        },
    };
    Ok((to != state.current).then_some(to))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(current: Option<u64>, last_from: Option<Option<u64>>) -> AliasState {
        AliasState {
            model_id: 1,
            protected: false,
            current,
            last_from,
        }
    }

    #[test]
    fn a_move_goes_where_the_rules_say() {
        let (m, a) = (
            ModelName::new("m").unwrap(),
            AliasName::new("prod").unwrap(),
        );
        let dest = |s: &AliasState, t| destination(s, t, &m, &a);
        // Setting where it is already changes nothing; elsewhere moves it.
        let at_2 = state(Some(2), Some(Some(1)));
        assert_eq!(dest(&at_2, AliasTarget::Version(2)).unwrap(), None);
        assert_eq!(dest(&at_2, AliasTarget::Version(3)).unwrap(), Some(Some(3)));
        // A rollback goes where the last move came from.
        assert_eq!(
            dest(&at_2, AliasTarget::PreviousVersion).unwrap(),
            Some(Some(1))
        );
        // ... and is a conflict when the alias pointed nowhere before.
        let first = state(Some(2), Some(None));
        assert!(matches!(
            dest(&first, AliasTarget::PreviousVersion),
            Err(Error::Conflict(_))
        ));
        // An alias that never existed has nothing to roll back or remove.
        let never = state(None, None);
        for t in [AliasTarget::PreviousVersion, AliasTarget::Remove] {
            assert!(matches!(dest(&never, t), Err(Error::AliasNotFound { .. })));
        }
        assert_eq!(dest(&at_2, AliasTarget::Remove).unwrap(), Some(None));
        // A removed alias rolled back returns to where it was.
        let removed = state(None, Some(Some(2)));
        assert_eq!(
            dest(&removed, AliasTarget::PreviousVersion).unwrap(),
            Some(Some(2))
        );
    }
}
