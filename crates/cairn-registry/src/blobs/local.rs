//! Local-directory specifics of the blob store: reading a blob in large chunks ahead of
//! the sender, and publishing a small blob with one directory entry.

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use cairn_core::Sha256Digest;
use futures::StreamExt;
use futures::stream::BoxStream;

use super::READ_CHUNK;
use super::key::{BLOBS, BlobKey, STAGING};
use crate::Error;

/// How the staging file of a small blob's write begins (beside its final name).
pub(super) const STAGING_PREFIX: &str = ".staging-";

/// A local file as a stream of `READ_CHUNK`-sized chunks, each read on the blocking pool
/// straight into its own buffer while the one before is being sent: one copy out of the
/// page cache, one read ahead in flight, and no thread held while a slow client drains.
pub(super) fn read_ahead(
    file: std::fs::File,
    size: u64,
) -> BoxStream<'static, std::io::Result<Bytes>> {
    let file = Arc::new(file);
    let first = (size > 0).then(|| read_chunk(file.clone(), 0, size));
    futures::stream::unfold((first, 0), move |(pending, offset)| {
        let file = file.clone();
        async move {
            let chunk = pending?.await.map_err(std::io::Error::other).flatten();
            let next_offset = offset + READ_CHUNK as u64;
            // Reads are sequential (the next starts when this one is done): the file's
            // own position is the offset.
            let next =
                (chunk.is_ok() && next_offset < size).then(|| read_chunk(file, next_offset, size));
            Some((chunk, (next, next_offset)))
        }
    })
    .boxed()
}

/// Reads the chunk at `offset` (the file's current position) on the blocking pool.
fn read_chunk(
    file: Arc<std::fs::File>,
    offset: u64,
    size: u64,
) -> tokio::task::JoinHandle<std::io::Result<Bytes>> {
    tokio::task::spawn_blocking(move || {
        use std::io::Read as _;
        let len = (size - offset).min(READ_CHUNK as u64);
        // Reading into spare capacity: no zeroing of the buffer first.
        let mut buf = Vec::with_capacity(len as usize);
        (&*file).take(len).read_to_end(&mut buf)?;
        if buf.len() as u64 != len {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        Ok(Bytes::from(buf))
    })
}

/// Writes one verified blob into a local store, visible whole under its digest or not at
/// all, never replacing a blob that is there. On Linux the bytes go into an unnamed file
/// of the blob's directory (`O_TMPFILE`), linked in under its name once written: one
/// directory entry per blob, and nothing left behind by a crash. Elsewhere, or where the
/// filesystem or a missing `/proc` refuses that, a staging file beside the final name
/// and an atomic rename that refuses to replace ([`publish_no_replace`]). Same layout and
/// visibility rules as the `object_store` path, with no task hop per blob: what makes a
/// push of ten thousand small files cheap. Durability comes later, from `make_durable`.
pub(super) fn write_local_blob(
    root: &Path,
    digest: &Sha256Digest,
    bytes: &[u8],
) -> Result<(), Error> {
    let target = BlobKey::sha256(digest).local_path(root);
    let dir = target
        .parent()
        .expect("a blob's path has a shard directory");
    let linked = match link_unnamed(dir, &target, bytes) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(dir)?;
            link_unnamed(dir, &target, bytes)?
        }
        other => other?,
    };
    if !linked {
        write_staged(dir, &target, bytes)?;
    }
    Ok(())
}

/// Writes `bytes` into an unnamed file in `dir` and links it in as `target` (Linux);
/// an existing `target` is kept (same digest, same bytes). `Ok(false)` where this way is
/// not available, for the caller to fall back; `NotFound` if `dir` does not exist.
#[cfg(target_os = "linux")]
fn link_unnamed(dir: &Path, target: &Path, bytes: &[u8]) -> std::io::Result<bool> {
    use rustix::fs::{AtFlags, CWD, Mode, OFlags};
    use rustix::io::Errno;
    use std::io::Write as _;
    use std::os::fd::AsRawFd as _;

    let flags = OFlags::TMPFILE | OFlags::WRONLY | OFlags::CLOEXEC;
    let fd = match rustix::fs::open(dir, flags, Mode::from_raw_mode(0o666)) {
        Ok(fd) => fd,
        // The filesystem has no unnamed files (or the kernel predates them).
        Err(Errno::OPNOTSUPP | Errno::ISDIR | Errno::INVAL) => return Ok(false),
        Err(e) => return Err(e.into()),
    };
    let mut file = std::fs::File::from(fd);
    file.write_all(bytes)?;
    // Linking a descriptor by its /proc path needs no privilege (AT_EMPTY_PATH would).
    let by_fd = format!("/proc/self/fd/{}", file.as_raw_fd());
    match rustix::fs::linkat(CWD, by_fd.as_str(), CWD, target, AtFlags::SYMLINK_FOLLOW) {
        Ok(()) | Err(Errno::EXIST) => Ok(true),
        // No /proc here, or the filesystem refuses links: the unnamed file goes with
        // its descriptor.
        Err(Errno::NOENT | Errno::PERM | Errno::ACCESS | Errno::OPNOTSUPP | Errno::MLINK) => {
            Ok(false)
        }
        Err(e) => Err(e.into()),
    }
}

#[cfg(not(target_os = "linux"))]
fn link_unnamed(_dir: &Path, _target: &Path, _bytes: &[u8]) -> std::io::Result<bool> {
    Ok(false)
}

/// Writes `bytes` into a staging file in `dir` (made if missing) and moves it to
/// `target` unless that exists; the staging file never outlives a failure.
fn write_staged(dir: &Path, target: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;

    if target.exists() {
        return Ok(());
    }
    let staging = dir.join(format!("{STAGING_PREFIX}{}", uuid::Uuid::new_v4()));
    let mut file = match std::fs::File::create_new(&staging) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(dir)?;
            std::fs::File::create_new(&staging)?
        }
        Err(e) => return Err(e),
    };
    let published = file
        .write_all(bytes)
        .and_then(|()| publish_no_replace(&staging, target));
    if published.is_err() {
        let _ = std::fs::remove_file(&staging);
    }
    published
}

/// Moves `staging` to `target` unless `target` exists; an existing target is success
/// (same digest, same bytes).
pub(super) fn publish_no_replace(staging: &Path, target: &Path) -> std::io::Result<()> {
    use rustix::fs::{CWD, RenameFlags, renameat_with};

    match renameat_with(CWD, staging, CWD, target, RenameFlags::NOREPLACE) {
        Ok(()) => Ok(()),
        Err(rustix::io::Errno::EXIST) => std::fs::remove_file(staging),
        Err(rustix::io::Errno::INVAL | rustix::io::Errno::NOSYS) => {
            let linked = match std::fs::hard_link(staging, target) {
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
                other => other,
            };
            std::fs::remove_file(staging)?;
            linked
        }
        Err(e) => Err(e.into()),
    }
}

/// Staged files of interrupted uploads older than `older_than` under `root`: every file
/// of `blobs/tmp/` (object_store's multipart files included, which its own listing
/// hides) and the `.staging-*` files of [`write_local_blob`]. Removed unless `dry_run`;
/// answers how many there were.
pub(super) fn remove_stale_uploads(
    root: &Path,
    older_than: std::time::Duration,
    dry_run: bool,
) -> std::io::Result<usize> {
    let mut stale = Vec::new();
    let mut scan = |dir: &Path, staged: &dyn Fn(&str) -> bool| -> std::io::Result<()> {
        let entries = match std::fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        for entry in entries {
            let entry = entry?;
            if !entry.file_name().to_str().is_some_and(staged) {
                continue;
            }
            let meta = match entry.metadata() {
                Ok(meta) => meta,
                // Published or removed by its writer meanwhile.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            if meta.is_file() && meta.modified()?.elapsed().is_ok_and(|age| age > older_than) {
                stale.push(entry.path());
            }
        }
        Ok(())
    };
    scan(&root.join(STAGING), &|_| true)?;
    let shards = match std::fs::read_dir(root.join(BLOBS)) {
        Ok(shards) => shards.collect::<std::io::Result<Vec<_>>>()?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(e),
    };
    for shard in shards {
        scan(&shard.path(), &|name| name.starts_with(STAGING_PREFIX))?;
    }
    if !dry_run {
        for path in &stale {
            match std::fs::remove_file(path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(stale.len())
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::MetadataExt as _;

    use super::*;

    /// The names in the shard directory of `digest`'s blob under `root`.
    fn shard_entries(root: &Path, digest: &Sha256Digest) -> Vec<String> {
        let target = BlobKey::sha256(digest).local_path(root);
        let mut names: Vec<String> = std::fs::read_dir(target.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    /// Writes `bytes` twice under their digest with `write`, the second time with other
    /// bytes standing in for a concurrent writer's: the first file stays, alone.
    fn writes_once_and_never_replaces(write: impl Fn(&Path, &Path, &[u8]) -> bool) {
        let root = tempfile::tempdir().unwrap();
        let bytes = b"weights".as_slice();
        let digest = Sha256Digest::of(bytes);
        let target = BlobKey::sha256(&digest).local_path(root.path());
        let dir = target.parent().unwrap();
        std::fs::create_dir_all(dir).unwrap();

        assert!(write(dir, &target, bytes));
        assert_eq!(std::fs::read(&target).unwrap(), bytes);
        let first = std::fs::metadata(&target).unwrap().ino();

        assert!(write(dir, &target, b"other bytes"));
        assert_eq!(
            std::fs::read(&target).unwrap(),
            bytes,
            "a blob was replaced"
        );
        assert_eq!(std::fs::metadata(&target).unwrap().ino(), first);
        assert_eq!(shard_entries(root.path(), &digest), [digest.to_hex()]);
    }

    #[test]
    fn the_staging_fallback_publishes_once_and_never_replaces() {
        writes_once_and_never_replaces(|dir, target, bytes| {
            write_staged(dir, target, bytes).unwrap();
            true
        });
    }

    /// The way every local write takes on Linux filesystems with unnamed files (ext4,
    /// XFS, Btrfs, tmpfs): the test fails where the store's directory refuses them.
    #[cfg(target_os = "linux")]
    #[test]
    fn an_unnamed_file_is_linked_in_once_and_never_replaces() {
        writes_once_and_never_replaces(|dir, target, bytes| {
            link_unnamed(dir, target, bytes).unwrap()
        });
    }

    /// Where unnamed files are refused (or not Linux), the first blob of a shard makes
    /// its directory too.
    #[test]
    fn the_staging_fallback_makes_its_shard_directory() {
        let root = tempfile::tempdir().unwrap();
        let bytes = b"first of its shard".as_slice();
        let digest = Sha256Digest::of(bytes);
        let target = BlobKey::sha256(&digest).local_path(root.path());
        write_staged(target.parent().unwrap(), &target, bytes).unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), bytes);
        assert_eq!(shard_entries(root.path(), &digest), [digest.to_hex()]);
    }

    #[test]
    fn a_blob_write_makes_its_shard_directory_and_leaves_only_the_blob() {
        let root = tempfile::tempdir().unwrap();
        let bytes = b"a small model file".as_slice();
        let digest = Sha256Digest::of(bytes);
        write_local_blob(root.path(), &digest, bytes).unwrap();
        write_local_blob(root.path(), &digest, bytes).unwrap();
        let target = BlobKey::sha256(&digest).local_path(root.path());
        assert_eq!(std::fs::read(target).unwrap(), bytes);
        assert_eq!(shard_entries(root.path(), &digest), [digest.to_hex()]);
    }
}
