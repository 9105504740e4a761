//! Models: create, read, list and search, rename, delete.

use std::collections::{BTreeMap, HashMap};

use cairn_core::access::{Actor, Need, Scope, authorize};
use cairn_core::auth::Role;
use cairn_core::search::{Comparison, OrderBy};
use cairn_core::{Model, ModelName};
use serde_json::json;

use super::lock_existing_model;
use super::rows::ModelRow;
use crate::audit::{Action, Change};
use crate::db::sql::SqlBuilder;
use crate::db::{MetadataStore, now_ms, time_of};
use crate::key_values::MODEL_TAGS;
use crate::search_sql::{push_model_condition, push_order_and_page};
use crate::{Error, Result};

impl MetadataStore {
    // ---- models ----

    pub(super) async fn model_row(&self, name: &ModelName) -> Result<ModelRow> {
        let mut q = SqlBuilder::new(
            self.backend(),
            "SELECT id, name, description, created_by, created_at, updated_at FROM models WHERE name = ",
        );
        q.push_bind(name.as_str());
        self.read_rows(q)
            .await?
            .pop()
            .ok_or_else(|| Error::ModelNotFound(name.to_string()))
    }

    /// Creates a model; `ModelExists` if the name is taken.
    /// Creates a model; `claim` is the idempotency key the request holds, completed in
    /// the same transaction.
    pub(crate) async fn create_model(
        &self,
        name: &ModelName,
        description: &str,
        tags: &BTreeMap<String, String>,
        actor: &Actor,
        claim: Option<&crate::idempotency::Claim>,
    ) -> Result<()> {
        let mut tx = self.write_tx().await?;
        let now = now_ms();
        let id: Option<i64> = tx
            .query(
                "INSERT INTO models (name, description, created_by, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $4) ON CONFLICT (name) DO NOTHING RETURNING id",
            )
            .bind(name.as_str())
            .bind(description)
            .bind(&actor.name)
            .bind(now)
            .scalar_optional()
            .await?;
        let id = id.ok_or_else(|| Error::ModelExists(name.to_string()))?;
        MODEL_TAGS.insert_all(&mut tx, id, tags).await?;
        Change::new(actor, Action::ModelCreate, name.as_str(), name.to_string())
            .after(json!({ "description": description, "tags": tags }))
            .append(&mut tx)
            .await?;
        crate::idempotency::complete(claim, &mut tx, &()).await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn list_models(&self) -> Result<Vec<Model>> {
        let rows = self.read("SELECT id, name, description, created_by, created_at, updated_at FROM models ORDER BY name",).fetch_all::<ModelRow>()
        .await?;
        self.models_from_rows(rows, None).await
    }

    /// One page of models in name order: at most `limit` named after `after`.
    pub async fn models_after(&self, after: &str, limit: u32) -> Result<Vec<Model>> {
        let rows = self
            .read(
                "SELECT id, name, description, created_by, created_at, updated_at FROM models
                 WHERE name > $1 ORDER BY name LIMIT $2",
            )
            .bind(after)
            .bind(i64::from(limit))
            .fetch_all::<ModelRow>()
            .await?;
        self.models_from_rows(rows, None).await
    }

    /// Models matching MLflow-style comparisons on `name` and `tags.KEY`, in `order`
    /// (then by name), from `offset`, at most `limit`: filtered, sorted and paged in SQL,
    /// so a search costs the page, not the registry.
    pub async fn search_models(
        &self,
        filter: &[Comparison],
        order: &[OrderBy],
        offset: usize,
        limit: usize,
    ) -> Result<Vec<Model>> {
        let mut q = SqlBuilder::new(
            self.backend(),
            "SELECT m.id, m.name, m.description, m.created_by, m.created_at, m.updated_at FROM models m WHERE 1 = 1",
        );
        for c in filter {
            q.push(" AND ");
            push_model_condition(&mut q, self.backend(), c)?;
        }
        push_order_and_page(
            &mut q,
            order,
            |key| match key {
                "name" => Some("m.name"),
                "timestamp" | "last_updated_timestamp" => Some("m.updated_at"),
                "creation_timestamp" => Some("m.created_at"),
                _ => None,
            },
            "m.name",
            offset,
            limit,
        )?;
        let rows: Vec<ModelRow> = self.read_sql(q).fetch_all().await?;
        let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
        self.models_from_rows(rows, Some(&ids)).await
    }

    /// `ModelNotFound` unless the model exists: one query.
    pub async fn model_exists(&self, name: &ModelName) -> Result<()> {
        self.model_row(name).await.map(|_| ())
    }

    pub async fn get_model(&self, name: &ModelName) -> Result<Model> {
        let row = self.model_row(name).await?;
        let id = row.id;
        let mut models = self.models_from_rows(vec![row], Some(&[id])).await?;
        Ok(models.remove(0))
    }

    /// Completes model rows with their tags, aliases and version counts: one query each,
    /// for the models `only` names or for all.
    pub(super) async fn models_from_rows(
        &self,
        rows: Vec<ModelRow>,
        only: Option<&[i64]>,
    ) -> Result<Vec<Model>> {
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let scoped = |sql: &str, column: &str| {
            let mut q = SqlBuilder::new(self.backend(), sql);
            if let Some(ids) = only {
                q.push(format!(" WHERE {column} IN ("));
                let mut list = q.separated(", ");
                for id in ids {
                    list.push_bind(*id);
                }
                list.push_unseparated(")");
            }
            q
        };
        let tags: Vec<(i64, String, String)> = self
            .read_sql(scoped(
                "SELECT t.model_id, t.key, t.value FROM model_tags t",
                "t.model_id",
            ))
            .fetch_all()
            .await?;
        let aliases: Vec<(i64, String, i64)> = self
            .read_sql(scoped(
                "SELECT a.model_id, a.alias, v.number FROM aliases a JOIN versions v ON v.id = a.version_id",
                "a.model_id",
            ))
            .fetch_all()
            .await?;
        let mut counts = scoped(
            "SELECT v.model_id, COUNT(*), MAX(v.number) FROM versions v",
            "v.model_id",
        );
        counts.push(" GROUP BY v.model_id");
        let counts: Vec<(i64, i64, i64)> = self.read_sql(counts).fetch_all().await?;

        let mut tags_by: HashMap<i64, BTreeMap<String, String>> = HashMap::new();
        for (id, k, v) in tags {
            tags_by.entry(id).or_default().insert(k, v);
        }
        let mut aliases_by: HashMap<i64, BTreeMap<String, u64>> = HashMap::new();
        for (id, alias, n) in aliases {
            aliases_by.entry(id).or_default().insert(alias, n as u64);
        }
        let counts_by: HashMap<i64, (i64, i64)> = counts
            .into_iter()
            .map(|(id, c, max)| (id, (c, max)))
            .collect();

        Ok(rows
            .into_iter()
            .map(|r| {
                let (count, latest) = counts_by.get(&r.id).copied().unwrap_or((0, 0));
                Model {
                    name: r.name,
                    description: r.description,
                    tags: tags_by.remove(&r.id).unwrap_or_default(),
                    aliases: aliases_by.remove(&r.id).unwrap_or_default(),
                    latest_version: (count > 0).then_some(latest as u64),
                    version_count: count as u64,
                    created_by: r.created_by,
                    created_at: time_of(r.created_at),
                    updated_at: time_of(r.updated_at),
                }
            })
            .collect())
    }

    pub async fn delete_model(&self, name: &ModelName, actor: &Actor) -> Result<()> {
        let mut tx = self.write_tx().await?;
        let versions: Vec<i64> = tx
            .query(
                "SELECT v.number FROM versions v JOIN models m ON m.id = v.model_id
             WHERE m.name = $1 ORDER BY v.number",
            )
            .bind(name.as_str())
            .scalar_all()
            .await?;
        // Aliases reference versions without cascading; drop them first.
        tx.query("DELETE FROM aliases WHERE model_id = (SELECT id FROM models WHERE name = $1)")
            .bind(name.as_str())
            .execute()
            .await?;
        let deleted = tx
            .query("DELETE FROM models WHERE name = $1")
            .bind(name.as_str())
            .execute()
            .await?;
        if deleted == 0 {
            return Err(Error::ModelNotFound(name.to_string()));
        }
        Change::new(actor, Action::ModelDelete, name.as_str(), name.to_string())
            .before(json!({ "versions": versions }))
            .append(&mut tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn rename_model(
        &self,
        model: &ModelName,
        new_name: &ModelName,
        actor: &Actor,
    ) -> Result<()> {
        let now = now_ms();
        let mut tx = self.write_tx().await?;
        let id = lock_existing_model(&mut tx, model).await?;
        // A new name may fall under other admins' grants: the protection of the model's
        // aliases must not change hands but by an admin of the model.
        let protected: Option<i64> = tx
            .query("SELECT 1 FROM protected_aliases WHERE model_id = $1 LIMIT 1")
            .bind(id)
            .scalar_optional()
            .await?;
        if protected.is_some() {
            for name in [model, new_name] {
                authorize(actor, Need::new(Role::Admin, Scope::Model(name.as_str())))?;
            }
        }
        let renamed = tx
            .query("UPDATE models SET name = $2, updated_at = $3 WHERE id = $1")
            .bind(id)
            .bind(new_name.as_str())
            .bind(now)
            .execute()
            .await;
        match renamed {
            Err(e) if e.is_unique_violation() => {
                return Err(Error::ModelExists(new_name.to_string()));
            }
            other => other?,
        };
        tx.query("UPDATE versions SET updated_at = $2 WHERE model_id = $1")
            .bind(id)
            .bind(now)
            .execute()
            .await?;
        Change::new(
            actor,
            Action::ModelRename,
            new_name.as_str(),
            model.to_string(),
        )
        .before(json!({ "name": model.as_str() }))
        .after(json!({ "name": new_name.as_str() }))
        .append(&mut tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }
}
