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
//! on btrfs and XFS; else `copy_file_range`), and the hash reads the copy: where the
//! kernel copies the bytes itself, a chunk at a time, the hash follows one chunk
//! behind on another core, so the push takes the longer of the two instead of both.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::mpsc;

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
    let out = File::create_new(&copy)?;
    // From here on the copy is removed if anything fails.
    let mut staged = StagedBlob {
        copy,
        root,
        digest: Sha256Digest::of(b""),
        size: 0,
    };
    let input = File::open(source)?;
    let (digest, size) = if rustix::fs::ioctl_ficlone(&out, &input).is_ok() {
        // A reflink: the copy shares the source's extents and exists at once.
        drop(out);
        let copy = File::open(&staged.copy)?;
        let size = copy.metadata()?.len();
        cairn_core::hash_reader(copy, size, on_bytes)?
    } else {
        copy_while_hashing(input, out, &staged.copy, COPY_CHUNK, on_bytes)?
    };
    staged.digest = digest;
    staged.size = size;
    Ok(staged)
}

/// Bytes the kernel copies at a time while the hash follows: enough that the copy runs
/// at the kernel's pace, few enough that the hash starts early and ends soon after.
const COPY_CHUNK: u64 = 32 * 1024 * 1024;

/// Copies `input` into `out` (the new file at `copy`) on one thread, `chunk` bytes at a
/// time, while this one hashes what each chunk put in the copy. The kernel copies page cache
/// to page cache (`copy_file_range`, what `std::io::copy` uses between two files);
/// copying through a buffer of our own cost 5–8× the system time on virtual machines
/// that hand freed memory back to their host (docs/BENCHMARKS.md).
fn copy_while_hashing(
    input: File,
    out: File,
    copy: &Path,
    chunk: u64,
    on_bytes: &(dyn Fn(u64) + Sync),
) -> std::io::Result<(Sha256Digest, u64)> {
    let size_hint = input.metadata()?.len();
    let reader = File::open(copy)?;
    let (copied, progress) = mpsc::channel();
    std::thread::scope(|scope| {
        scope.spawn(move || {
            let mut total = 0u64;
            loop {
                let end = match std::io::copy(&mut (&input).take(chunk), &mut &out) {
                    // Whole: `copied`, dropped on return, tells the hash so.
                    Ok(0) => return,
                    Ok(n) => {
                        total += n;
                        Ok(total)
                    }
                    Err(e) => Err(e),
                };
                let failed = end.is_err();
                if copied.send(end).is_err() || failed {
                    return;
                }
            }
        });
        let behind = BehindCopy {
            copy: reader,
            read: 0,
            written: 0,
            progress,
        };
        cairn_core::hash_reader(behind, size_hint, on_bytes)
    })
}

/// The staged copy, read no further than the copying thread has written it.
struct BehindCopy {
    copy: File,
    /// Bytes read so far.
    read: u64,
    /// Bytes the copy is known to hold.
    written: u64,
    /// Each chunk's end as the copying thread writes it; closed once the copy is whole.
    progress: mpsc::Receiver<std::io::Result<u64>>,
}

impl Read for BehindCopy {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.read == self.written {
            match self.progress.recv() {
                Ok(Ok(end)) => self.written = end,
                Ok(Err(e)) => return Err(e),
                // The copy is whole: what goes under the digest is what was hashed.
                Err(mpsc::RecvError) if self.copy.metadata()?.len() == self.read => {
                    return Ok(0);
                }
                Err(mpsc::RecvError) => {
                    return Err(std::io::Error::other(
                        "the staged copy holds more bytes than were copied into it",
                    ));
                }
            }
        }
        let room = usize::try_from(self.written - self.read).unwrap_or(usize::MAX);
        let want = buf.len().min(room);
        let n = self.copy.read(&mut buf[..want])?;
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the staged copy holds fewer bytes than were copied into it",
            ));
        }
        self.read += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A copy of many chunks is the source byte for byte, and its digest is the
    /// source's, with the hash reading each chunk only once it is written.
    #[test]
    fn the_hash_follows_the_copy_chunk_by_chunk() {
        let dir = tempfile::tempdir().unwrap();
        let (source, copy) = (dir.path().join("source"), dir.path().join("copy"));
        let bytes: Vec<u8> = (0..1_000_003u32).map(|i| (i * 7 % 251) as u8).collect();
        std::fs::write(&source, &bytes).unwrap();
        let heard = std::sync::atomic::AtomicU64::new(0);
        let on_bytes = |n: u64| {
            heard.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
        };
        let out = File::create_new(&copy).unwrap();
        let got =
            copy_while_hashing(File::open(&source).unwrap(), out, &copy, 4096, &on_bytes).unwrap();
        assert_eq!(got, (Sha256Digest::of(&bytes), bytes.len() as u64));
        assert_eq!(std::fs::read(&copy).unwrap(), bytes);
        assert_eq!(heard.into_inner(), bytes.len() as u64);
    }

    /// What the copying thread reports wrong ends the hash with an error: its own
    /// failure, or a copy shorter or longer than it says it wrote.
    #[test]
    fn a_failed_or_short_copy_fails_the_hash() {
        let dir = tempfile::tempdir().unwrap();
        let copy = dir.path().join("copy");
        std::fs::write(&copy, b"0123456789").unwrap();
        let behind = |reports: Vec<std::io::Result<u64>>| {
            let (tx, rx) = mpsc::channel();
            for r in reports {
                tx.send(r).unwrap();
            }
            // The copying thread is done: no more reports.
            drop(tx);
            let reader = BehindCopy {
                copy: File::open(&copy).unwrap(),
                read: 0,
                written: 0,
                progress: rx,
            };
            cairn_core::hash_reader(reader, 10, |_| {})
        };
        let whole = behind(vec![Ok(4), Ok(10)]).unwrap();
        assert_eq!(whole, (Sha256Digest::of(b"0123456789"), 10));
        let failed = behind(vec![Ok(4), Err(std::io::Error::other("disk full"))]).unwrap_err();
        assert_eq!(failed.to_string(), "disk full");
        let short = behind(vec![Ok(4), Ok(12)]).unwrap_err();
        assert_eq!(short.kind(), std::io::ErrorKind::UnexpectedEof);
        let long = behind(vec![Ok(4), Ok(8)]).unwrap_err();
        assert!(long.to_string().contains("more bytes"), "{long}");
    }
}
