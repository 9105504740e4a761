//! Tags and descriptions of models and versions, as stored: metadata a version may
//! change while its files never do. Each write records its audit entry in the caller's
//! transaction; whether a write is needed at all is the service's rule
//! (`service::metadata`).

use cairn_core::ModelName;
use cairn_core::access::Actor;
use serde_json::{Value, json};

use super::{lock_model, version_in};
use crate::audit::{Action, Change};
use crate::db::now_ms;
use crate::db::write::WriteTx;
use crate::key_values::{KeyValues, MODEL_TAGS, VERSION_TAGS};
use crate::{Error, Result};

/// A model (`number` `None`) or one of its versions, locked for a metadata write.
pub struct Described<'a> {
    model: &'a ModelName,
    number: Option<u64>,
    /// The row id of the model or version.
    id: i64,
}

impl<'a> Described<'a> {
    /// Locks `model` and finds the model or its version `number`.
    pub async fn lock(tx: &mut WriteTx, model: &'a ModelName, number: Option<u64>) -> Result<Self> {
        let model_id = lock_model(tx, model)
            .await?
            .ok_or_else(|| Error::ModelNotFound(model.to_string()))?;
        let id = match number {
            Some(n) => version_in(tx, model, model_id, n).await?,
            None => model_id,
        };
        Ok(Self { model, number, id })
    }

    fn tags(&self) -> KeyValues {
        if self.number.is_some() {
            VERSION_TAGS
        } else {
            MODEL_TAGS
        }
    }

    fn table(&self) -> &'static str {
        if self.number.is_some() {
            "versions"
        } else {
            "models"
        }
    }

    /// `NAME` or `NAME@N`, as the audit log names it.
    fn target(&self) -> String {
        match self.number {
            Some(n) => format!("{}@{n}", self.model),
            None => self.model.to_string(),
        }
    }

    pub async fn tag(&self, tx: &mut WriteTx, key: &str) -> Result<Option<String>> {
        let tags = self.tags();
        tx.query(&format!(
            "SELECT value FROM {} WHERE {} = $1 AND key = $2",
            tags.table(),
            tags.owner()
        ))
        .bind(self.id)
        .bind(key)
        .scalar_optional()
        .await
    }

    /// Sets (`Some`) or removes (`None`) tag `key`, which was `old`.
    pub async fn write_tag(
        &self,
        tx: &mut WriteTx,
        key: &str,
        old: Option<String>,
        value: Option<&str>,
        actor: &Actor,
    ) -> Result<()> {
        let tags = self.tags();
        let sql = match value {
            Some(_) => tags.upsert_sql(),
            None => format!(
                "DELETE FROM {} WHERE {} = $1 AND key = $2 AND $3 IS NULL",
                tags.table(),
                tags.owner()
            ),
        };
        tx.query(&sql)
            .bind(self.id)
            .bind(key)
            .bind(value)
            .execute()
            .await?;
        let action = Action::Tag {
            version: self.number.is_some(),
            set: value.is_some(),
        };
        let before = old.map(|v| json!({ "key": key, "value": v }));
        let after = value.map(|v| json!({ "key": key, "value": v }));
        self.audit(tx, action, actor, before, after).await
    }

    pub async fn description(&self, tx: &mut WriteTx) -> Result<String> {
        tx.query(&format!(
            "SELECT description FROM {} WHERE id = $1",
            self.table()
        ))
        .bind(self.id)
        .scalar_one()
        .await
    }

    /// Sets the description, which was `old`.
    pub async fn write_description(
        &self,
        tx: &mut WriteTx,
        old: &str,
        description: &str,
        actor: &Actor,
    ) -> Result<()> {
        tx.query(&format!(
            "UPDATE {} SET description = $2, updated_at = $3 WHERE id = $1",
            self.table()
        ))
        .bind(self.id)
        .bind(description)
        .bind(now_ms())
        .execute()
        .await?;
        let action = Action::Description {
            version: self.number.is_some(),
        };
        let before = Some(json!({ "description": old }));
        let after = Some(json!({ "description": description }));
        self.audit(tx, action, actor, before, after).await
    }

    async fn audit(
        &self,
        tx: &mut WriteTx,
        action: Action,
        actor: &Actor,
        before: Option<Value>,
        after: Option<Value>,
    ) -> Result<()> {
        Change::new(actor, action, self.model.as_str(), self.target())
            .before(before)
            .after(after)
            .append(tx)
            .await
    }
}
