//! Reads made for browsing (the web UI): a model's versions a page at a time in any
//! order a person sorts by, and the timeline of every alias move of a model. Each is one
//! indexed query plus the page's details, whatever the model's size.

use cairn_core::{AliasMove, ModelName, Version};

use super::rows::{MoveRow, VERSION_COLUMNS, VersionRow};
use crate::Result;
use crate::db::MetadataStore;
use crate::db::sql::SqlBuilder;

/// The order of a page of versions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VersionSort {
    /// By number, which is the order of registration.
    Number,
    /// By a version metric's value; versions without it come last, newest first.
    Metric(String),
}

impl MetadataStore {
    /// `limit` of `model`'s versions from `offset`, sorted by `sort` (descending when
    /// `descending`), without manifests.
    pub async fn versions_sorted(
        &self,
        model: &ModelName,
        sort: &VersionSort,
        descending: bool,
        offset: u64,
        limit: u32,
    ) -> Result<Vec<Version>> {
        let model_id = self.model_row(model).await?.id;
        let key = match sort {
            VersionSort::Metric(key) => key,
            VersionSort::Number => {
                // The (model_id, number) index gives the order: a page is read alone.
                let direction = if descending { "DESC" } else { "ASC" };
                let rows: Vec<VersionRow> = self
                    .read(&format!(
                        "SELECT {VERSION_COLUMNS} FROM versions v WHERE v.model_id = $1
                         ORDER BY v.number {direction} LIMIT $2 OFFSET $3"
                    ))
                    .bind(model_id)
                    .bind(i64::from(limit))
                    .bind(i64::try_from(offset).unwrap_or(i64::MAX))
                    .fetch_all()
                    .await?;
                return self.versions_from_rows(model, model_id, rows).await;
            }
        };
        let ids = self
            .ids_by_metric(model_id, key, descending, offset, limit)
            .await?;
        self.versions_by_ids(model, model_id, &ids).await
    }

    /// The ids of a page of `model_id`'s versions sorted by metric `key`: those with it
    /// in value order from the `(model_id, key, value, version_id)` index (a walk, not a
    /// sort), then those without it, newest first.
    async fn ids_by_metric(
        &self,
        model_id: i64,
        key: &str,
        descending: bool,
        offset: u64,
        limit: u32,
    ) -> Result<Vec<i64>> {
        let direction = if descending { "DESC" } else { "ASC" };
        let (with_metric,): (i64,) = self
            .read("SELECT COUNT(*) FROM version_metrics WHERE model_id = $1 AND key = $2")
            .bind(model_id)
            .bind(key)
            .fetch_one()
            .await?;
        let with_metric = u64::try_from(with_metric).unwrap_or(0);
        let mut ids: Vec<i64> = Vec::new();
        if offset < with_metric {
            let rows: Vec<(i64,)> = self
                .read(&format!(
                    "SELECT version_id FROM version_metrics WHERE model_id = $1 AND key = $2
                     ORDER BY value {direction}, version_id {direction} LIMIT $3 OFFSET $4"
                ))
                .bind(model_id)
                .bind(key)
                .bind(i64::from(limit))
                .bind(i64::try_from(offset).unwrap_or(i64::MAX))
                .fetch_all()
                .await?;
            ids.extend(rows.into_iter().map(|(id,)| id));
        }
        let missing = usize::try_from(limit).unwrap_or(usize::MAX) - ids.len();
        if missing > 0 {
            let rows: Vec<(i64,)> = self
                .read(
                    "SELECT v.id FROM versions v WHERE v.model_id = $1 AND NOT EXISTS
                     (SELECT 1 FROM version_metrics vm WHERE vm.version_id = v.id AND vm.key = $2)
                     ORDER BY v.number DESC LIMIT $3 OFFSET $4",
                )
                .bind(model_id)
                .bind(key)
                .bind(i64::try_from(missing).unwrap_or(i64::MAX))
                .bind(i64::try_from(offset.saturating_sub(with_metric)).unwrap_or(i64::MAX))
                .fetch_all()
                .await?;
            ids.extend(rows.into_iter().map(|(id,)| id));
        }
        Ok(ids)
    }

    /// `model_id`'s versions with these ids, in the order of `ids`.
    async fn versions_by_ids(
        &self,
        model: &ModelName,
        model_id: i64,
        ids: &[i64],
    ) -> Result<Vec<Version>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut q = SqlBuilder::new(
            self.backend(),
            format!("SELECT {VERSION_COLUMNS} FROM versions v WHERE v.model_id = "),
        );
        q.push_bind(model_id).push(" AND v.id IN (");
        for (i, id) in ids.iter().enumerate() {
            if i > 0 {
                q.push(", ");
            }
            q.push_bind(*id);
        }
        q.push(")");
        let mut rows: Vec<VersionRow> = self.read_sql(q).fetch_all().await?;
        rows.sort_by_key(|r| ids.iter().position(|id| *id == r.id));
        self.versions_from_rows(model, model_id, rows).await
    }

    /// The metric keys of `model`'s newest `recent` versions, sorted: what a person may
    /// sort the model's versions by (an older key can still be asked for by name).
    pub async fn recent_metric_keys(&self, model: &ModelName, recent: u32) -> Result<Vec<String>> {
        let model_id = self.model_row(model).await?.id;
        let keys: Vec<(String,)> = self
            .read(
                "SELECT DISTINCT vm.key FROM version_metrics vm WHERE vm.version_id IN
                 (SELECT v.id FROM versions v WHERE v.model_id = $1 ORDER BY v.number DESC LIMIT $2)
                 ORDER BY vm.key",
            )
            .bind(model_id)
            .bind(i64::from(recent))
            .fetch_all()
            .await?;
        Ok(keys.into_iter().map(|(k,)| k).collect())
    }

    /// The newest `limit` moves of every alias of `model`, newest first (those of
    /// aliases deleted since included).
    pub async fn alias_timeline(&self, model: &ModelName, limit: u32) -> Result<Vec<AliasMove>> {
        let model_id = self.model_row(model).await?.id;
        let rows = self
            .read(
                "SELECT alias, from_version, to_version, action, actor, at, reason FROM alias_moves
                 WHERE model_id = $1 ORDER BY id DESC LIMIT $2",
            )
            .bind(model_id)
            .bind(i64::from(limit))
            .fetch_all::<MoveRow>()
            .await?;
        rows.into_iter().map(MoveRow::into_move).collect()
    }
}
