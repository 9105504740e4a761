//! The artifact index (artifact path → blob): uploads, multipart uploads, listings as a
//! tree, deletes; artifact path rules.

use std::collections::{BTreeMap, HashMap};

use bytes::Bytes;
use cairn_core::Sha256Digest;
use cairn_core::tracking::ArtifactEntry;

use super::{Tracking, invalid, random_hex32};
use crate::blobs::BlobRead;
use crate::db::now_ms;
use crate::db::sql::SqlBuilder;
use crate::db::write::WriteTx;
use crate::gc::claim_blobs;
use crate::{Error, Missing, Result};

impl Tracking {
    // ---- artifacts ----

    /// Stores an artifact at `path` (relative to the artifact root), replacing any
    /// earlier content.
    pub async fn put_artifact<E>(
        &self,
        path: &str,
        stream: impl futures::Stream<Item = std::result::Result<Bytes, E>> + Unpin,
    ) -> Result<()>
    where
        E: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        check_artifact_file_path(path)?;
        let epoch = self.meta.gc_epoch().await?;
        let (digest, size) = self.blobs.put_stream_unknown(stream).await?;
        // The artifact row may be read back by a version registration: durable first.
        self.blobs.make_durable(&[digest]).await?;
        let mut tx = self.meta.write_tx().await?;
        claim_blobs(&mut tx, &[digest], Some(epoch)).await?;
        upsert_artifact(&mut tx, path, &digest, size).await?;
        tx.commit().await
    }

    /// Starts a multipart upload of the artifact at `path`; returns its id.
    pub async fn create_upload(&self, path: &str) -> Result<String> {
        check_artifact_file_path(path)?;
        let id = random_hex32();
        self.meta
            .write("INSERT INTO artifact_uploads (id, path, created_at) VALUES ($1, $2, $3)")
            .bind(&id)
            .bind(path)
            .bind(now_ms())
            .execute()
            .await?;
        Ok(id)
    }

    pub(super) async fn upload_path(&self, upload_id: &str) -> Result<String> {
        self.meta
            .read("SELECT path FROM artifact_uploads WHERE id = $1")
            .bind(upload_id)
            .scalar_optional()
            .await?
            .ok_or_else(|| Error::NotFound(Missing::Upload(upload_id.to_owned())))
    }

    /// Stores one part (a blob of its own); returns its digest, the part's ETag.
    pub async fn put_upload_part<E>(
        &self,
        upload_id: &str,
        part_number: i64,
        stream: impl futures::Stream<Item = std::result::Result<Bytes, E>> + Unpin,
    ) -> Result<Sha256Digest>
    where
        E: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        self.upload_path(upload_id).await?;
        if part_number < 1 {
            return Err(invalid("part numbers start at 1"));
        }
        let epoch = self.meta.gc_epoch().await?;
        let (digest, size) = self.blobs.put_stream_unknown(stream).await?;
        let mut tx = self.meta.write_tx().await?;
        claim_blobs(&mut tx, &[digest], Some(epoch)).await?;
        tx.query(
            "INSERT INTO artifact_upload_parts (upload_id, part_number, sha256, size) VALUES ($1, $2, $3, $4)
             ON CONFLICT (upload_id, part_number) DO UPDATE SET sha256 = excluded.sha256, size = excluded.size",
        )
        .bind(upload_id)
        .bind(part_number)
        .bind(digest.to_hex())
        .bind(size as i64)
        .execute()
        .await?;
        tx.commit().await?;
        Ok(digest)
    }

    /// Concatenates the listed parts, in order, into the artifact. Each part's ETag must
    /// be the digest the part upload answered.
    pub async fn complete_upload(&self, upload_id: &str, parts: &[(i64, String)]) -> Result<()> {
        let path = self.upload_path(upload_id).await?;
        let stored: HashMap<i64, String> = self
            .meta
            .read("SELECT part_number, sha256 FROM artifact_upload_parts WHERE upload_id = $1")
            .bind(upload_id)
            .fetch_all::<(i64, String)>()
            .await?
            .into_iter()
            .collect();
        let mut digests = Vec::new();
        let mut sorted = parts.to_vec();
        sorted.sort_by_key(|(n, _)| *n);
        for (n, etag) in &sorted {
            let digest = stored.get(n).ok_or_else(|| {
                invalid(format!("part {n} of upload {upload_id} was not uploaded"))
            })?;
            let etag = etag.trim_matches('"');
            if !etag.is_empty() && etag != digest {
                return Err(invalid(format!(
                    "part {n}: ETag {etag} does not match the uploaded part"
                )));
            }
            digests.push(
                digest
                    .parse::<Sha256Digest>()
                    .map_err(|_| invalid("corrupt part digest"))?,
            );
        }
        if digests.is_empty() {
            return Err(invalid("a multipart upload needs at least one part"));
        }
        // Feed the parts, one after another, into one new blob.
        let (tx, rx) =
            futures::channel::mpsc::channel::<std::result::Result<Bytes, std::io::Error>>(4);
        let blobs = self.blobs.clone();
        let feeder = tokio::spawn(async move {
            use futures::{SinkExt, StreamExt};
            let mut tx = tx;
            for d in digests {
                let mut part = match blobs.read(&d).await {
                    Ok(Some(read)) => read.stream,
                    Ok(None) => {
                        let _ = tx
                            .send(Err(std::io::Error::other(format!(
                                "part blob {d} is missing"
                            ))))
                            .await;
                        return;
                    }
                    Err(e) => {
                        let _ = tx.send(Err(std::io::Error::other(e.to_string()))).await;
                        return;
                    }
                };
                while let Some(chunk) = part.next().await {
                    let failed = chunk.is_err();
                    if tx.send(chunk).await.is_err() || failed {
                        return;
                    }
                }
            }
        });
        let epoch = self.meta.gc_epoch().await?;
        let stored = self.blobs.put_stream_unknown(rx).await;
        let _ = feeder.await;
        let (digest, size) = stored?;
        self.blobs.make_durable(&[digest]).await?;
        let mut tx = self.meta.write_tx().await?;
        claim_blobs(&mut tx, &[digest], Some(epoch)).await?;
        upsert_artifact(&mut tx, &path, &digest, size).await?;
        tx.query("DELETE FROM artifact_uploads WHERE id = $1")
            .bind(upload_id)
            .execute()
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Forgets an upload; its part blobs are left to garbage collection.
    pub async fn abort_upload(&self, upload_id: &str) -> Result<()> {
        self.upload_path(upload_id).await?;
        self.meta
            .write("DELETE FROM artifact_uploads WHERE id = $1")
            .bind(upload_id)
            .execute()
            .await?;
        Ok(())
    }

    /// The blob of the artifact at `path`; `None` if no file is there.
    pub async fn artifact_blob(&self, path: &str) -> Result<Option<(Sha256Digest, u64)>> {
        check_artifact_path(path)?;
        let row: Option<(String, i64)> = self
            .meta
            .read("SELECT sha256, size FROM artifacts WHERE path = $1")
            .bind(path)
            .fetch_optional()
            .await?;
        row.map(|(d, size)| {
            Ok((
                d.parse().map_err(|_| invalid("corrupt digest"))?,
                size as u64,
            ))
        })
        .transpose()
    }

    pub async fn read_blob(&self, digest: &Sha256Digest) -> Result<BlobRead> {
        self.blobs
            .read(digest)
            .await?
            .ok_or(Error::BlobNotFound(*digest))
    }

    /// Every file under directory `prefix`, with paths relative to it.
    pub async fn artifact_files(&self, prefix: &str) -> Result<Vec<(String, Sha256Digest, u64)>> {
        let dir = format!("{}/", prefix.trim_end_matches('/'));
        let mut q = SqlBuilder::new(
            self.meta.backend(),
            "SELECT path, sha256, size FROM artifacts WHERE path > ",
        );
        q.push_bind(dir.clone()).push(" AND path < ");
        q.push_bind(format!("{}0", prefix.trim_end_matches('/')));
        q.push(" ORDER BY path");
        let rows: Vec<(String, String, i64)> = self.meta.read_rows(q).await?;
        rows.into_iter()
            .map(|(path, d, size)| {
                Ok((
                    path[dir.len()..].to_owned(),
                    d.parse().map_err(|_| invalid("corrupt digest"))?,
                    size as u64,
                ))
            })
            .collect()
    }

    /// The direct children of directory `dir` ("" for the root).
    pub async fn list_artifacts(&self, dir: &str) -> Result<Vec<ArtifactEntry>> {
        if !dir.is_empty() {
            check_artifact_path(dir)?;
        }
        let files: Vec<(String, u64)> = if dir.is_empty() {
            let rows: Vec<(String, i64)> = self
                .meta
                .read("SELECT path, size FROM artifacts ORDER BY path")
                .fetch_all()
                .await?;
            rows.into_iter().map(|(p, s)| (p, s as u64)).collect()
        } else {
            // Paths relative to `dir`.
            self.artifact_files(dir)
                .await?
                .into_iter()
                .map(|(p, _, s)| (p, s))
                .collect()
        };
        Ok(directory_children(files, ""))
    }

    /// Deletes the file at `path`, or everything under it if it is a directory.
    pub async fn delete_artifacts(&self, path: &str) -> Result<()> {
        check_artifact_path(path)?;
        let trimmed = path.trim_end_matches('/');
        self.meta
            .write("DELETE FROM artifacts WHERE path = $1 OR (path > $2 AND path < $3)")
            .bind(trimmed)
            .bind(format!("{trimmed}/"))
            .bind(format!("{trimmed}0"))
            .execute()
            .await?;
        Ok(())
    }
}

/// Points the artifact `path` at a blob.
pub(super) async fn upsert_artifact(
    tx: &mut WriteTx,
    path: &str,
    digest: &Sha256Digest,
    size: u64,
) -> Result<()> {
    tx.query(
        "INSERT INTO artifacts (path, sha256, size, created_at) VALUES ($1, $2, $3, $4)
         ON CONFLICT (path) DO UPDATE SET sha256 = excluded.sha256, size = excluded.size, created_at = excluded.created_at",
    )
    .bind(path)
    .bind(digest.to_hex())
    .bind(size as i64)
    .bind(now_ms())
    .execute()
    .await?;
    Ok(())
}

/// The direct children of directory `dir` ("" for the root) among files given by their
/// paths (relative to the same root) and sizes.
pub fn directory_children(
    files: impl IntoIterator<Item = (String, u64)>,
    dir: &str,
) -> Vec<ArtifactEntry> {
    let prefix = if dir.is_empty() {
        String::new()
    } else {
        format!("{}/", dir.trim_end_matches('/'))
    };
    let mut entries: BTreeMap<String, ArtifactEntry> = BTreeMap::new();
    for (path, size) in files {
        let Some(rest) = path.strip_prefix(&prefix) else {
            continue;
        };
        match rest.split_once('/') {
            Some((child, _)) => {
                entries.entry(child.to_owned()).or_insert(ArtifactEntry {
                    name: child.to_owned(),
                    is_dir: true,
                    size: None,
                });
            }
            None => {
                entries.insert(
                    rest.to_owned(),
                    ArtifactEntry {
                        name: rest.to_owned(),
                        is_dir: false,
                        size: Some(size),
                    },
                );
            }
        }
    }
    entries.into_values().collect()
}

/// An artifact path: relative, no `..`, no empty segments, no backslashes.
pub fn check_artifact_path(path: &str) -> Result<()> {
    let trimmed = path.trim_end_matches('/');
    if trimmed.is_empty()
        || trimmed.starts_with('/')
        || trimmed.contains('\\')
        || trimmed.contains('\0')
        || trimmed
            .split('/')
            .any(|s| s.is_empty() || s == "." || s == "..")
    {
        return Err(invalid(format!("Invalid path: {path}")));
    }
    Ok(())
}

/// The path of an artifact file to write: [`check_artifact_path`], naming a file (a
/// trailing `/` names a directory, which no file can be stored as).
pub(super) fn check_artifact_file_path(path: &str) -> Result<()> {
    check_artifact_path(path)?;
    if path.ends_with('/') {
        return Err(invalid(format!(
            "Artifact path must include a filename (cannot end with '/'): {path}"
        )));
    }
    Ok(())
}
