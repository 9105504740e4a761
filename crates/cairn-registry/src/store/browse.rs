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
        let direction = if descending { "DESC" } else { "ASC" };
        let mut q = SqlBuilder::new(
            self.backend(),
            format!("SELECT {VERSION_COLUMNS} FROM versions v"),
        );
        match sort {
            VersionSort::Number => {
                q.push(" WHERE v.model_id = ").push_bind(model_id);
                q.push(format!(" ORDER BY v.number {direction}"));
            }
            VersionSort::Metric(key) => {
                q.push(" LEFT JOIN version_metrics vm ON vm.version_id = v.id AND vm.key = ")
                    .push_bind(key.clone());
                q.push(" WHERE v.model_id = ").push_bind(model_id);
                // Versions without the metric last in either direction (both engines
                // sort NULL differently by default).
                q.push(format!(
                    " ORDER BY CASE WHEN vm.value IS NULL THEN 1 ELSE 0 END, vm.value {direction}, v.number DESC"
                ));
            }
        }
        q.push(" LIMIT ").push_bind(i64::from(limit));
        q.push(" OFFSET ")
            .push_bind(i64::try_from(offset).unwrap_or(i64::MAX));
        let rows: Vec<VersionRow> = self.read_sql(q).fetch_all().await?;
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
