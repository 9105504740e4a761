//! Reads a page at a time, for the web UI and the paginated listings of the API: sorted
//! pages of versions, pages of models, the alias timeline, pages of the audit log and
//! the chain's status.

use bytes::Bytes;
use cairn_core::{AliasMove, AuditEntry, AuditReport, Model, ModelName, Version};

use super::Registry;
use crate::audit::AuditFilter;
use crate::store::VersionSort;
use crate::{Error, Result};

impl Registry {
    /// A page of `model`'s versions in `sort` order, without manifests.
    pub async fn versions_sorted(
        &self,
        model: &ModelName,
        sort: &VersionSort,
        descending: bool,
        offset: u64,
        limit: u32,
    ) -> Result<Vec<Version>> {
        self.meta
            .versions_sorted(model, sort, descending, offset, limit)
            .await
    }

    /// The metric keys of `model`'s newest `recent` versions.
    pub async fn recent_metric_keys(&self, model: &ModelName, recent: u32) -> Result<Vec<String>> {
        self.meta.recent_metric_keys(model, recent).await
    }

    /// The newest `limit` alias moves of `model`, newest first.
    pub async fn alias_timeline(&self, model: &ModelName, limit: u32) -> Result<Vec<AliasMove>> {
        self.meta.alias_timeline(model, limit).await
    }

    /// One page of models in name order, after `after`.
    pub async fn models_page(&self, after: &str, limit: u32) -> Result<Vec<Model>> {
        self.meta.models_after(after, limit).await
    }

    /// One page of the audit log, oldest first: entries after number `after`,
    /// optionally of one model and from a time (ms) on.
    pub async fn audit_entries(
        &self,
        after: u64,
        model: Option<&str>,
        since_ms: Option<i64>,
        limit: u32,
    ) -> Result<Vec<AuditEntry>> {
        self.meta
            .audit_after_since(after, model, since_ms, limit)
            .await
    }

    /// A page of the audit log, newest first.
    pub async fn audit_page(
        &self,
        filter: &AuditFilter,
        before: Option<u64>,
        limit: u32,
    ) -> Result<Vec<AuditEntry>> {
        self.meta.audit_page(filter, before, limit).await
    }

    /// The whole chain verified, recomputed only when the log has grown since the last
    /// time (the answer is kept per audit head, like every registry read).
    pub async fn audit_status(&self) -> Result<AuditReport> {
        let encoded: Bytes = self
            .cached_read("browse:audit-verify".to_owned(), async {
                let report = self.meta.verify_audit(None).await?;
                serde_json::to_vec(&report)
                    .map(Bytes::from)
                    .map_err(|e| Error::Io(e.into()))
            })
            .await?;
        serde_json::from_slice(&encoded).map_err(|e| Error::Io(e.into()))
    }
}
