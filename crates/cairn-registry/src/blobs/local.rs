//! Local-directory specifics of the blob store: reading a blob in large chunks ahead of
//! the sender, and publishing a small blob with one rename.

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

/// Writes one verified blob into a local store: a staging file beside its final name,
/// then an atomic rename that refuses to replace (`RENAME_NOREPLACE`), falling back to
/// link + unlink where the filesystem lacks it. Same layout and visibility rules as the
/// `object_store` path (a blob is visible whole or not at all), but two directory
/// operations per blob instead of three, with no task hop per blob: what makes a push
/// of ten thousand small files cheap. Durability comes later, from `make_durable`.
pub(super) fn write_local_blob(
    root: &Path,
    digest: &Sha256Digest,
    bytes: &[u8],
) -> Result<(), Error> {
    use std::io::Write as _;

    let target = BlobKey::sha256(digest).local_path(root);
    if target.exists() {
        return Ok(());
    }
    let dir = target
        .parent()
        .expect("a blob's path has a shard directory");
    let staging = dir.join(format!("{STAGING_PREFIX}{}", uuid::Uuid::new_v4()));
    let mut file = match std::fs::File::create_new(&staging) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(dir)?;
            std::fs::File::create_new(&staging)?
        }
        Err(e) => return Err(e.into()),
    };
    let published = file
        .write_all(bytes)
        .and_then(|()| publish_no_replace(&staging, &target));
    if published.is_err() {
        let _ = std::fs::remove_file(&staging);
    }
    published.map_err(Error::from)
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
