//! Garbage collection of blobs: deleting a version or a model only drops metadata; the
//! blobs nothing references any more are reclaimed by [`Registry::collect_garbage`].
//!
//! Safe against concurrent writers by a fence and tombstones:
//! - a collection holds the `gc_state` row exclusively from deciding what is garbage
//!   until the blobs are deleted; every transaction that adds a reference to blobs
//!   (a version, an artifact, an upload part) first holds it shared
//!   ([`claim_blobs`]), so the two never interleave;
//! - what a collection deletes gets a tombstone; a reference to a tombstoned blob is
//!   refused (`MissingBlobs`: "upload it first"), and the registry reports the blob
//!   missing, so a push that raced a collection uploads it again, which clears the
//!   tombstone;
//! - blobs younger than the grace period are never collected: a push uploads its blobs
//!   before it commits the version that references them.
//!
//! A collection that frees anything leaves one audit entry (`blobs.collect`).

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use cairn_core::Sha256Digest;
use cairn_core::model::{BlobUse, FileRef, GcReport};

use crate::db::sql::SqlBuilder;
use crate::db::write::WriteTx;
use crate::db::{Backend, MetadataStore, corrupt_row, now_ms, time_of};
use crate::{Error, Registry, Result};

/// Digests per statement.
const CHUNK: usize = 1000;

/// Waits for a running collection and keeps the next one out until `tx` ends, then
/// checks that no blob in `digests` was collected. `written_after` is the collection
/// count ([`MetadataStore::gc_epoch`]) read before the caller wrote these blobs itself:
/// a collection counted in it had finished before the write, which recreated the bytes
/// (its tombstone is cleared); a later one may have deleted the fresh bytes.
pub(crate) async fn claim_blobs(
    tx: &mut WriteTx,
    digests: &[Sha256Digest],
    written_after: Option<i64>,
) -> Result<()> {
    // SQLite write transactions are exclusive already; PostgreSQL ones share the fence.
    if tx.backend == Backend::Postgres {
        tx.query("SELECT runs FROM gc_state WHERE id = 1 FOR SHARE")
            .execute()
            .await?;
    }
    let mut collected = Vec::new();
    for chunk in digests.chunks(CHUNK) {
        if let Some(epoch) = written_after {
            let mut q = SqlBuilder::new(tx.backend, "DELETE FROM blob_tombstones WHERE run <= ");
            q.push_bind(epoch).push(" AND sha256 IN (");
            let mut list = q.separated(", ");
            for d in chunk {
                list.push_bind(d.to_hex());
            }
            list.push_unseparated(")");
            tx.sql(q).execute().await?;
        }
        let mut q = SqlBuilder::new(
            tx.backend,
            "SELECT sha256 FROM blob_tombstones WHERE sha256 IN (",
        );
        let mut list = q.separated(", ");
        for d in chunk {
            list.push_bind(d.to_hex());
        }
        list.push_unseparated(")");
        let hits: Vec<String> = tx.sql(q).scalar_all().await?;
        collected.extend(hits.iter().filter_map(|h| h.parse::<Sha256Digest>().ok()));
    }
    if collected.is_empty() {
        return Ok(());
    }
    Err(match written_after {
        Some(_) => Error::UploadInterrupted(format!(
            "blob sha256:{} was garbage-collected while it was being uploaded; upload it again",
            collected[0]
        )),
        None => Error::MissingBlobs(collected),
    })
}

impl MetadataStore {
    /// The sizes recorded for those of `digests` a committed version or artifact
    /// references (one per table holding it). The others are unreferenced; the
    /// referenced ones are durable: every write that adds such a reference makes its
    /// blobs durable before it commits, and a collection never deletes a referenced blob
    /// (should the reference go and a collection take the blob meanwhile, the writer's
    /// [`claim_blobs`] finds its tombstone).
    pub(crate) async fn recorded_sizes(
        &self,
        digests: &[Sha256Digest],
    ) -> Result<HashMap<Sha256Digest, Vec<u64>>> {
        let mut recorded = HashMap::new();
        for chunk in digests.chunks(CHUNK) {
            // One index probe per digest and table: a blob may be referenced by
            // thousands of rows (every version of a model that never changed it).
            let mut q = SqlBuilder::new(
                self.backend(),
                "SELECT v.column1,
                   (SELECT f.size FROM version_files f WHERE f.sha256 = v.column1 LIMIT 1),
                   (SELECT e.size FROM version_environment e WHERE e.sha256 = v.column1 LIMIT 1),
                   (SELECT a.size FROM artifacts a WHERE a.sha256 = v.column1 LIMIT 1)
                 FROM (",
            );
            q.push_values(chunk, |mut row, d| {
                row.push_bind(d.to_hex());
            });
            q.push(") AS v");
            // The digest, then its size as recorded in each table (NULL: not there).
            type Recorded = (String, Option<i64>, Option<i64>, Option<i64>);
            let rows: Vec<Recorded> = self.read_rows(q).await?;
            for (hex, files, environment, artifacts) in rows {
                let sizes: Vec<u64> = [files, environment, artifacts]
                    .into_iter()
                    .flatten()
                    .map(|s| s as u64)
                    .collect();
                if !sizes.is_empty() {
                    let digest = hex.parse().map_err(|_| corrupt_row("blob digest"))?;
                    recorded.insert(digest, sizes);
                }
            }
        }
        Ok(recorded)
    }

    /// Which of `digests` a collection deleted (and nobody uploaded again since).
    pub(crate) async fn tombstoned(&self, digests: &[Sha256Digest]) -> Result<Vec<Sha256Digest>> {
        let mut out = Vec::new();
        for chunk in digests.chunks(CHUNK) {
            let mut q = SqlBuilder::new(
                self.backend(),
                "SELECT sha256 FROM blob_tombstones WHERE sha256 IN (",
            );
            let mut list = q.separated(", ");
            for d in chunk {
                list.push_bind(d.to_hex());
            }
            list.push_unseparated(")");
            let hits: Vec<String> = q.build_query_scalar().fetch_all(self.pool()).await?;
            out.extend(hits.iter().filter_map(|h| h.parse::<Sha256Digest>().ok()));
        }
        Ok(out)
    }

    /// How many collections have committed: read before writing blobs, to tell later
    /// whether a collection could have deleted what was written.
    pub(crate) async fn gc_epoch(&self) -> Result<i64> {
        Ok(sqlx::query_scalar("SELECT runs FROM gc_state WHERE id = 1")
            .fetch_one(self.pool())
            .await?)
    }

    /// Records that blobs written after collection `epoch` are stored again.
    pub(crate) async fn blobs_written(&self, digests: &[Sha256Digest], epoch: i64) -> Result<()> {
        let mut tx = self.write_tx().await?;
        claim_blobs(&mut tx, digests, Some(epoch)).await?;
        tx.commit().await
    }
}

impl Registry {
    /// Deletes every blob that no version file, artifact or upload part references and
    /// that is older than `grace`, and the staged files of interrupted uploads older
    /// than `grace`. With `dry_run`, only says what it would delete.
    pub async fn collect_garbage(
        &self,
        actor: &str,
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
        crate::audit::append(
            &mut tx,
            crate::audit::Change {
                actor,
                action: crate::audit::Action::BlobsCollect,
                model: "",
                target: "blobs".into(),
                before: None,
                after: Some(serde_json::json!({
                    "freed": report.freed.len(),
                    "bytes": report.freed_bytes,
                    "grace_seconds": grace.as_secs(),
                })),
            },
        )
        .await?;
        tx.commit().await?;
        Ok(report)
    }

    /// What keeps a blob alive, or why it is gone.
    pub async fn why_blob(&self, digest: &Sha256Digest) -> Result<BlobUse> {
        let hex = digest.to_hex();
        let pool = self.meta.pool();
        let versions: Vec<(String, i64, String)> = sqlx::query_as(
            "SELECT m.name, v.number, f.path FROM version_files f
             JOIN versions v ON v.id = f.version_id JOIN models m ON m.id = v.model_id
             WHERE f.sha256 = $1
             UNION ALL SELECT m.name, v.number, 'environment: ' || e.path FROM version_environment e
             JOIN versions v ON v.id = e.version_id JOIN models m ON m.id = v.model_id
             WHERE e.sha256 = $1 ORDER BY 1, 2, 3",
        )
        .bind(&hex)
        .fetch_all(pool)
        .await?;
        let artifacts: Vec<String> =
            sqlx::query_scalar("SELECT path FROM artifacts WHERE sha256 = $1 ORDER BY path")
                .bind(&hex)
                .fetch_all(pool)
                .await?;
        let uploads: Vec<String> = sqlx::query_scalar(
            "SELECT DISTINCT u.path FROM artifact_upload_parts p JOIN artifact_uploads u ON u.id = p.upload_id
             WHERE p.sha256 = $1 ORDER BY u.path",
        )
        .bind(&hex)
        .fetch_all(pool)
        .await?;
        let collected_at: Option<i64> =
            sqlx::query_scalar("SELECT at FROM blob_tombstones WHERE sha256 = $1")
                .bind(&hex)
                .fetch_optional(pool)
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
