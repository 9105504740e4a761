//! Tags and descriptions of models and versions: metadata a version may change while
//! its files never do. Writing what is already there changes nothing and records
//! nothing — every registry write is in the audit log, whose head names the
//! registry's state (cached reads rely on it) — so the value is compared under the
//! model's lock, in the transaction that would write it.

use cairn_core::access::Actor;
use cairn_core::{MetaKey, ModelName};

use super::{DESCRIPTION_MAX, Registry, VALUE_MAX, check_actor, check_text, existing_number};
use crate::Result;
use crate::store::Described;

impl Registry {
    /// Sets or (with `None`) removes a tag of a model or, with `number`, of a version.
    pub async fn set_tag(
        &self,
        actor: &Actor,
        model: &ModelName,
        number: Option<u64>,
        key: &str,
        value: Option<&str>,
    ) -> Result<()> {
        MetaKey::new(key)?;
        if let Some(v) = value {
            check_text(&format!("value of {key:?}"), v, VALUE_MAX)?;
        }
        if let Some(number) = number {
            existing_number(model, number)?;
        }
        let actor = check_actor(actor)?;
        self.meta
            .with_retries(|| async {
                let mut tx = self.meta.write_tx().await?;
                let target = Described::lock(&mut tx, model, number).await?;
                let old = target.tag(&mut tx, key).await?;
                if old.as_deref() == value {
                    return Ok(());
                }
                target.write_tag(&mut tx, key, old, value, actor).await?;
                tx.commit().await
            })
            .await
    }

    /// Sets the description of a model or, with `number`, of a version.
    pub async fn set_description(
        &self,
        actor: &Actor,
        model: &ModelName,
        number: Option<u64>,
        description: &str,
    ) -> Result<()> {
        check_text("description", description, DESCRIPTION_MAX)?;
        if let Some(number) = number {
            existing_number(model, number)?;
        }
        let actor = check_actor(actor)?;
        self.meta
            .with_retries(|| async {
                let mut tx = self.meta.write_tx().await?;
                let target = Described::lock(&mut tx, model, number).await?;
                let old = target.description(&mut tx).await?;
                if old == description {
                    return Ok(());
                }
                target
                    .write_description(&mut tx, &old, description, actor)
                    .await?;
                tx.commit().await
            })
            .await
    }
}
