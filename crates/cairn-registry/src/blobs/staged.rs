//! A local file copied into a local store while it is hashed: the push of a large file
//! in embedded mode reads it once, hashes it once and writes it once, instead of hashing
//! it for the manifest and then reading and hashing it again on the way into the store.
//!
//! The copy is staged under `blobs/tmp/` and published under its digest (the same
//! no-replace rename as every local blob) only if the push needs it; a staged copy
//! nobody publishes is removed when dropped, and one left by a killed process is swept
//! with the other stale uploads. The digest is that of the bytes written to the copy,
//! so a source changing meanwhile cannot put bytes under a digest they do not have.
//! Where the filesystem shares extents (`FICLONE`: btrfs, XFS), the copy is a reflink
//! and only the hash reads the bytes, from the copy.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::sync_channel;

use cairn_core::{Sha256Digest, Sha256Hasher};

use super::BlobStore;
use super::key::{BlobKey, STAGING};
use super::local::{STAGING_PREFIX, publish_no_replace};
use crate::Error;

/// Bytes read, hashed and written at a time.
const CHUNK: u64 = 4 * 1024 * 1024;
/// Chunks between the reader (who hashes) and the writer: bounds memory to this many
/// chunks whatever the file's size.
const CHUNKS_IN_FLIGHT: usize = 3;

/// A file's bytes copied into a local store, hashed, not yet visible as a blob.
pub struct StagedBlob {
    copy: PathBuf,
    root: PathBuf,
    pub digest: Sha256Digest,
    pub size: u64,
}

impl Drop for StagedBlob {
    fn drop(&mut self) {
        // Gone already once published.
        let _ = std::fs::remove_file(&self.copy);
    }
}

impl BlobStore {
    /// Copies `source` into the store, hashing what is written; `on_bytes` hears of the
    /// progress. `None` when the store is not a local directory.
    pub async fn stage_copy(
        &self,
        source: &Path,
        on_bytes: Box<dyn Fn(u64) + Send + Sync>,
    ) -> Result<Option<StagedBlob>, Error> {
        let Some(root) = self.local_root.clone() else {
            return Ok(None);
        };
        let source = source.to_owned();
        tokio::task::spawn_blocking(move || stage(root, &source, &*on_bytes).map(Some))
            .await
            .map_err(|e| Error::Io(std::io::Error::other(e)))?
    }

    /// Makes a staged copy visible under its digest (a blob already stored under it is
    /// kept: same digest, same bytes).
    pub async fn publish_staged(&self, staged: StagedBlob) -> Result<(), Error> {
        tokio::task::spawn_blocking(move || {
            let target = BlobKey::sha256(&staged.digest).local_path(&staged.root);
            let dir = target
                .parent()
                .expect("a blob's path has a shard directory");
            std::fs::create_dir_all(dir)?;
            publish_no_replace(&staged.copy, &target)?;
            Ok(())
        })
        .await
        .map_err(|e| Error::Io(std::io::Error::other(e)))?
    }
}

/// The copy of `source` under `root`'s staging directory, and its digest.
fn stage(
    root: PathBuf,
    source: &Path,
    on_bytes: &(dyn Fn(u64) + Sync),
) -> Result<StagedBlob, Error> {
    let dir = root.join(STAGING);
    std::fs::create_dir_all(&dir)?;
    let copy = dir.join(format!("{STAGING_PREFIX}{}", uuid::Uuid::new_v4()));
    let mut out = std::fs::File::create_new(&copy)?;
    // From here on the copy is removed if anything fails.
    let mut staged = StagedBlob {
        copy,
        root,
        digest: Sha256Digest::of(b""),
        size: 0,
    };
    let input = std::fs::File::open(source)?;
    let (digest, size) = if rustix::fs::ioctl_ficlone(&out, &input).is_ok() {
        let copy = std::fs::File::open(&staged.copy)?;
        let size = copy.metadata()?.len();
        cairn_core::hash_reader(copy, size, on_bytes)?
    } else {
        copy_hashing(input, &mut out, on_bytes)?
    };
    staged.digest = digest;
    staged.size = size;
    Ok(staged)
}

/// Copies `input` to `out`: one thread reads and hashes each chunk, another writes the
/// chunks hashed, so hashing and writing overlap. Answers the digest and size of what
/// was written.
fn copy_hashing(
    mut input: std::fs::File,
    out: &mut std::fs::File,
    on_bytes: &(dyn Fn(u64) + Sync),
) -> std::io::Result<(Sha256Digest, u64)> {
    let (hashed, to_write) = sync_channel::<Vec<u8>>(CHUNKS_IN_FLIGHT);
    let (written, to_reuse) = sync_channel::<Vec<u8>>(CHUNKS_IN_FLIGHT);
    for _ in 0..CHUNKS_IN_FLIGHT {
        written
            .send(Vec::with_capacity(CHUNK as usize))
            .expect("the channel has room for every buffer");
    }
    std::thread::scope(|scope| {
        let writer = scope.spawn(move || -> std::io::Result<()> {
            for chunk in to_write {
                out.write_all(&chunk)?;
                on_bytes(chunk.len() as u64);
                // The reader may be done already.
                let _ = written.send(chunk);
            }
            Ok(())
        });
        let mut hasher = Sha256Hasher::new();
        let read = (|| -> std::io::Result<()> {
            // A writer that failed drops its end: the reader stops, and its error is
            // the writer's.
            while let Ok(mut chunk) = to_reuse.recv() {
                chunk.clear();
                (&mut input).take(CHUNK).read_to_end(&mut chunk)?;
                if chunk.is_empty() {
                    break;
                }
                hasher.update(&chunk);
                if hashed.send(chunk).is_err() {
                    break;
                }
            }
            Ok(())
        })();
        drop(hashed);
        writer
            .join()
            .map_err(|_| std::io::Error::other("the writer panicked"))??;
        read?;
        Ok(hasher.finish())
    })
}
