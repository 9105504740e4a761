//! Garbage collection as the service runs it: the collection itself under the
//! fence (`gc::claim_blobs`), and what keeps a blob alive.

use std::collections::HashSet;
use std::time::Duration;

use cairn_core::Sha256Digest;
use cairn_core::access::Actor;
use cairn_core::model::{BlobUse, FileRef, GcReport};

use crate::audit::{Action, Change};
use crate::db::sql::SqlBuilder;
use crate::db::{now_ms, time_of};
use crate::gc::CHUNK;
use crate::{Registry, Result};

impl Registry {
    /// Deletes every blob that no version file, artifact or upload part references and
    /// that is older than `grace`, and the staged files of interrupted uploads older
    /// than `grace`. With `dry_run`, only says what it would delete.
    pub async fn collect_garbage(
        &self,
        actor: &Actor,
        grace: Duration,
        dry_run: bool,
    ) -> Result<GcReport> {
        // Listing the store can take long: it happens before the fence. A blob written
        // after the listing is not a candidate; one written before is judged below.
        let stored = self.blobs.list().await?;
        // Any grace, however long, is a time before now (never a wrapped one).
        let grace_ms = i64::try_from(grace.as_millis()).unwrap_or(i64::MAX);
        let cutoff = now_ms().saturating_sub(grace_ms);
        // Staged files are no blob and no row names them: their age alone decides.
        let stale_uploads = self.blobs.remove_stale_uploads(grace, dry_run).await? as u64;

        let mut tx = self.meta.write_tx().await?;
        let run: i64 = tx
            .query("UPDATE gc_state SET runs = runs + 1 WHERE id = 1 RETURNING runs")
            .scalar_one()
            .await?;
        let referenced: HashSet<String> = tx
            .query(
                "SELECT sha256 FROM version_files UNION SELECT sha256 FROM version_environment
             UNION SELECT sha256 FROM artifacts UNION SELECT sha256 FROM artifact_upload_parts",
            )
            .scalar_all()
            .await?
            .into_iter()
            .collect();
        let mut report = GcReport {
            dry_run,
            freed: Vec::new(),
            freed_bytes: 0,
            kept_young: 0,
            stored: stored.len() as u64,
            stale_uploads,
        };
        for blob in &stored {
            if referenced.contains(&blob.digest.to_hex()) {
                continue;
            }
            if blob.modified_ms > cutoff {
                report.kept_young += 1;
                continue;
            }
            report.freed.push(blob.digest);
            report.freed_bytes += blob.size;
        }
        report.freed.sort_unstable();
        if dry_run || report.freed.is_empty() {
            return Ok(report);
        }
        let now = now_ms();
        for chunk in report.freed.chunks(CHUNK) {
            let mut q =
                SqlBuilder::new(tx.backend, "INSERT INTO blob_tombstones (sha256, at, run) ");
            q.push_values(chunk, |mut row, d| {
                row.push_bind(d.to_hex()).push_bind(now).push_bind(run);
            });
            q.push(" ON CONFLICT (sha256) DO UPDATE SET at = excluded.at, run = excluded.run");
            tx.sql(q).execute().await?;
        }
        // Deleted while the fence is held: no writer can reference them meanwhile, and
        // the tombstones commit only once the bytes are gone.
        self.blobs.delete(&report.freed).await?;
        let collected = serde_json::json!({
            "freed": report.freed.len(),
            "bytes": report.freed_bytes,
            "grace_seconds": grace.as_secs(),
        });
        Change::new(actor, Action::BlobsCollect, "", "blobs")
            .after(collected)
            .append(&mut tx)
            .await?;
        tx.commit().await?;
        Ok(report)
    }

    /// What keeps a blob alive, or why it is gone.
    pub async fn why_blob(&self, digest: &Sha256Digest) -> Result<BlobUse> {
        let hex = digest.to_hex();
        let versions: Vec<(String, i64, String)> = self
            .meta
            .read(
                "SELECT m.name, v.number, f.path FROM version_files f
             JOIN versions v ON v.id = f.version_id JOIN models m ON m.id = v.model_id
             WHERE f.sha256 = $1
             UNION ALL SELECT m.name, v.number, 'environment: ' || e.path FROM version_environment e
             JOIN versions v ON v.id = e.version_id JOIN models m ON m.id = v.model_id
             WHERE e.sha256 = $1 ORDER BY 1, 2, 3",
            )
            .bind(&hex)
            .fetch_all()
            .await?;
        let artifacts: Vec<String> = self
            .meta
            .read("SELECT path FROM artifacts WHERE sha256 = $1 ORDER BY path")
            .bind(&hex)
            .scalar_all()
            .await?;
        let uploads: Vec<String> = self.meta.read(
            "SELECT DISTINCT u.path FROM artifact_upload_parts p JOIN artifact_uploads u ON u.id = p.upload_id
             WHERE p.sha256 = $1 ORDER BY u.path",
        )
        .bind(&hex)
        .scalar_all()
        .await?;
        let collected_at: Option<i64> = self
            .meta
            .read("SELECT at FROM blob_tombstones WHERE sha256 = $1")
            .bind(&hex)
            .scalar_optional()
            .await?;
        Ok(BlobUse {
            digest: *digest,
            stored: self.blobs.stored_size(digest).await?.is_some(),
            versions: versions
                .into_iter()
                .map(|(model, version, path)| FileRef {
                    model,
                    version: version as u64,
                    path,
                })
                .collect(),
            artifacts,
            uploads,
            collected_at: collected_at.map(time_of),
        })
    }
}
