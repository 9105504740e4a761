//! A local file copied into a local store and hashed there: the push of a large file in
//! embedded mode copies it once and hashes it once, instead of hashing it for the
//! manifest and then reading and hashing it again on the way into the store.
//!
//! The copy is staged under `blobs/tmp/` and published under its digest (the same
//! no-replace rename as every local blob) only if the push needs it; a staged copy
//! nobody publishes is removed when dropped, and one left by a killed process is swept
//! with the other stale uploads. The digest is that of the bytes written to the copy,
//! so a source changing meanwhile cannot put bytes under a digest they do not have.
//! The kernel makes the copy (a reflink where the filesystem shares extents, `FICLONE`
//! on btrfs and XFS; else `copy_file_range`), and the hash reads the copy.

use std::path::{Path, PathBuf};

use cairn_core::Sha256Digest;

use super::BlobStore;
use super::key::{BlobKey, STAGING};
use super::local::{STAGING_PREFIX, publish_no_replace};
use crate::Error;

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
    let mut input = std::fs::File::open(source)?;
    // The kernel copies: a reflink where the filesystem shares extents, else
    // `copy_file_range` (what `std::io::copy` uses between two files), page cache to
    // page cache. Copying through a buffer of our own cost 5–8× the system time on
    // virtual machines that hand freed memory back to their host (docs/BENCHMARKS.md).
    if rustix::fs::ioctl_ficlone(&out, &input).is_err() {
        std::io::copy(&mut input, &mut out)?;
    }
    drop(out);
    let copy = std::fs::File::open(&staged.copy)?;
    let size = copy.metadata()?.len();
    let (digest, size) = cairn_core::hash_reader(copy, size, on_bytes)?;
    staged.digest = digest;
    staged.size = size;
    Ok(staged)
}
