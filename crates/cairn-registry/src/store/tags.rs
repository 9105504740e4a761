//! Tags and descriptions of models and versions: metadata a version may change while
//! its files never do. Writing what is already there changes nothing and records nothing.

use cairn_core::ModelName;
use serde_json::json;

use super::{lock_model, version_in};
use crate::audit::{Action, Change};
use crate::db::{MetadataStore, now_ms};
use crate::key_values::{MODEL_TAGS, VERSION_TAGS};
use crate::{Error, Result, audit};

impl MetadataStore {
    /// Sets (`Some`) or removes (`None`) a tag of a model (`number` `None`) or version.
    /// Writing what is already there changes nothing and records nothing.
    pub async fn set_tag(
        &self,
        model: &ModelName,
        number: Option<u64>,
        key: &str,
        value: Option<&str>,
        actor: &str,
    ) -> Result<()> {
        let mut tx = self.write_tx().await?;
        let model_id = lock_model(&mut tx, model)
            .await?
            .ok_or_else(|| Error::ModelNotFound(model.to_string()))?;
        let (tags, owner, target) = match number {
            Some(n) => (
                VERSION_TAGS,
                version_in(&mut tx, model, model_id, n).await?,
                format!("{model}@{n}"),
            ),
            None => (MODEL_TAGS, model_id, model.to_string()),
        };
        let (table, owner_column) = (tags.table(), tags.owner());
        let old: Option<String> = tx
            .query(&format!(
                "SELECT value FROM {table} WHERE {owner_column} = $1 AND key = $2"
            ))
            .bind(owner)
            .bind(key)
            .scalar_optional()
            .await?;
        if old.as_deref() == value {
            return Ok(());
        }
        let sql = match value {
            Some(_) => tags.upsert_sql(),
            None => {
                format!("DELETE FROM {table} WHERE {owner_column} = $1 AND key = $2 AND $3 IS NULL")
            }
        };
        tx.query(&sql)
            .bind(owner)
            .bind(key)
            .bind(value)
            .execute()
            .await?;
        audit::append(
            &mut tx,
            Change {
                actor,
                action: Action::Tag {
                    version: number.is_some(),
                    set: value.is_some(),
                },
                model: model.as_str(),
                target,
                before: old.map(|v| json!({ "key": key, "value": v })),
                after: value.map(|v| json!({ "key": key, "value": v })),
            },
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Sets the description of a model (`number` `None`) or version.
    pub async fn set_description(
        &self,
        model: &ModelName,
        number: Option<u64>,
        description: &str,
        actor: &str,
    ) -> Result<()> {
        let now = now_ms();
        let mut tx = self.write_tx().await?;
        let model_id = lock_model(&mut tx, model)
            .await?
            .ok_or_else(|| Error::ModelNotFound(model.to_string()))?;
        let (table, id, target) = match number {
            Some(n) => (
                "versions",
                version_in(&mut tx, model, model_id, n).await?,
                format!("{model}@{n}"),
            ),
            None => ("models", model_id, model.to_string()),
        };
        let old: String = tx
            .query(&format!("SELECT description FROM {table} WHERE id = $1"))
            .bind(id)
            .scalar_one()
            .await?;
        // No change, no write: every registry write is in the audit log, whose head
        // names the registry's state (cached reads rely on it).
        if old == description {
            return Ok(());
        }
        tx.query(&format!(
            "UPDATE {table} SET description = $2, updated_at = $3 WHERE id = $1"
        ))
        .bind(id)
        .bind(description)
        .bind(now)
        .execute()
        .await?;
        audit::append(
            &mut tx,
            Change {
                actor,
                action: Action::Description {
                    version: number.is_some(),
                },
                model: model.as_str(),
                target,
                before: Some(json!({ "description": old })),
                after: Some(json!({ "description": description })),
            },
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }
}
