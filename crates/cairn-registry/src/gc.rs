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

use std::collections::HashMap;

use cairn_core::Sha256Digest;

use crate::db::sql::SqlBuilder;
use crate::db::write::WriteTx;
use crate::db::{Backend, MetadataStore, corrupt_row};
use crate::{Error, Result};

/// Digests per statement.
pub(crate) const CHUNK: usize = 1000;

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
            let hits: Vec<String> = self.read_sql(q).scalar_all().await?;
            out.extend(hits.iter().filter_map(|h| h.parse::<Sha256Digest>().ok()));
        }
        Ok(out)
    }

    /// How many collections have committed: read before writing blobs, to tell later
    /// whether a collection could have deleted what was written.
    pub(crate) async fn gc_epoch(&self) -> Result<i64> {
        self.read("SELECT runs FROM gc_state WHERE id = 1")
            .scalar_one()
            .await
    }

    /// Records that blobs written after collection `epoch` are stored again.
    pub(crate) async fn blobs_written(&self, digests: &[Sha256Digest], epoch: i64) -> Result<()> {
        let mut tx = self.write_tx().await?;
        claim_blobs(&mut tx, digests, Some(epoch)).await?;
        tx.commit().await
    }
}
