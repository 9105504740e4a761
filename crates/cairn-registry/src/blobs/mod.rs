//! The content-addressed blob store: every file's bytes, stored once under their SHA-256
//! at `blobs/sha256/<first 2 hex>/<64 hex>`, through `object_store`.
//!
//! Write protocol (invariant 2 of docs/DESIGN): bytes go to a staging object or file,
//! are hashed on the way, and become visible under their digest only if the hash
//! matches, with create-if-absent semantics ("already exists" is success: that is
//! deduplication). Individual writes are not fsynced; [`BlobStore::make_durable`] makes
//! the blobs a commit references durable in one go, and the registry calls it before any
//! metadata that references those blobs commits. That turns a push of 10,000 small
//! files into one filesystem sync instead of 10,000 sequential fsyncs.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use cairn_core::{Sha256Digest, Sha256Hasher, hash_reader};
use futures::stream::{BoxStream, StreamExt, TryStreamExt};
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::{
    GetResultPayload, ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, WriteMultipart,
};

use crate::Error;

mod key;
mod local;
mod location;
mod staged;
mod verified;

use key::{BlobKey, staging_key};

use local::{read_ahead, write_local_blob};
pub use location::BlobLocation;
use location::remote_store;
pub use staged::StagedBlob;

/// Blobs up to this size are hashed in memory and written in one put; larger ones are
/// streamed as a multipart upload with this part size.
const PART_SIZE: usize = 8 * 1024 * 1024;
/// Parts in flight per multipart upload: bounds memory to a few parts per upload.
const PARTS_IN_FLIGHT: usize = 2;
/// Read buffer for hashing and serving local blobs.
const READ_CHUNK: usize = 1024 * 1024;
/// Concurrent existence checks.
const HEAD_CONCURRENCY: usize = 32;

/// A blob being read: its size and its bytes.
pub struct BlobRead {
    pub size: u64,
    pub stream: BoxStream<'static, std::io::Result<Bytes>>,
}

/// A stored blob, as listed.
#[derive(Debug, Clone)]
pub struct StoredBlob {
    pub digest: Sha256Digest,
    pub size: u64,
    /// Last write, in ms since the Unix epoch.
    pub modified_ms: i64,
}

#[derive(Clone)]
pub struct BlobStore {
    store: Arc<dyn ObjectStore>,
    /// The local root, when blobs live on a local filesystem (for `syncfs`).
    local_root: Option<PathBuf>,
}

fn blob_key(digest: &Sha256Digest) -> ObjectPath {
    BlobKey::sha256(digest).object_path()
}

fn check_digest(expected: &Sha256Digest, bytes: &[u8]) -> Result<(), Error> {
    let actual = Sha256Digest::of(bytes);
    if actual != *expected {
        return Err(Error::DigestMismatch {
            expected: *expected,
            actual,
            size: bytes.len() as u64,
        });
    }
    Ok(())
}

impl BlobStore {
    pub fn open(location: &BlobLocation) -> Result<Self, Error> {
        match location {
            BlobLocation::Local(dir) => Self::local(dir),
            BlobLocation::Remote(url) => Ok(Self {
                store: remote_store(url)?,
                local_root: None,
            }),
        }
    }

    /// Fails when the store does not answer (a missing key is an answer).
    pub async fn ping(&self) -> Result<(), Error> {
        match self.store.head(&ObjectPath::from(key::PING)).await {
            Ok(_) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Blobs under `data_dir/blobs/`.
    pub fn local(data_dir: &Path) -> Result<Self, Error> {
        std::fs::create_dir_all(data_dir)?;
        let root = data_dir.canonicalize()?;
        let store = LocalFileSystem::new_with_prefix(&root)?;
        Ok(Self {
            store: Arc::new(store),
            local_root: Some(root),
        })
    }

    /// The stored size of a blob, `None` if it is not stored.
    pub async fn stored_size(&self, digest: &Sha256Digest) -> Result<Option<u64>, Error> {
        match self.store.head(&blob_key(digest)).await {
            Ok(meta) => Ok(Some(meta.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// The digests of `digests` that are not stored, in their original order.
    pub async fn missing(&self, digests: &[Sha256Digest]) -> Result<Vec<Sha256Digest>, Error> {
        let sizes = self.stored_sizes(digests).await?;
        Ok(digests
            .iter()
            .zip(sizes)
            .filter(|(_, size)| size.is_none())
            .map(|(d, _)| *d)
            .collect())
    }

    /// The stored size of each of `digests` (`None`: not stored), in their order.
    pub async fn stored_sizes(&self, digests: &[Sha256Digest]) -> Result<Vec<Option<u64>>, Error> {
        if self.local_root.is_some() {
            return self.stored_sizes_local(digests).await;
        }
        // Owned items and an owned clone keep the futures free of borrowed lifetimes,
        // which `Send` checks in axum handlers otherwise trip over.
        let store = self.clone();
        futures::stream::iter(digests.to_vec())
            .map(move |d| {
                let store = store.clone();
                async move { store.stored_size(&d).await }
            })
            .buffered(HEAD_CONCURRENCY)
            .try_collect()
            .await
    }

    /// On a local directory, one blocking task checks a whole batch of paths: ten
    /// thousand existence checks cost one `stat` each instead of a task hop each.
    async fn stored_sizes_local(
        &self,
        digests: &[Sha256Digest],
    ) -> Result<Vec<Option<u64>>, Error> {
        const BATCH: usize = 1024;
        let mut checks = Vec::new();
        for batch in digests.chunks(BATCH) {
            let paths: Vec<PathBuf> = batch
                .iter()
                .map(|d| self.local_path(d).expect("local store"))
                .collect();
            checks.push(tokio::task::spawn_blocking(move || {
                paths
                    .iter()
                    .map(|path| match std::fs::symlink_metadata(path) {
                        Ok(meta) if meta.is_file() => Ok(Some(meta.len())),
                        Ok(_) => Ok(None),
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                        Err(e) => Err(e),
                    })
                    .collect::<std::io::Result<Vec<_>>>()
            }));
        }
        let mut sizes = Vec::with_capacity(digests.len());
        for check in checks {
            sizes.extend(
                check
                    .await
                    .map_err(|e| Error::Io(std::io::Error::other(e)))??,
            );
        }
        Ok(sizes)
    }

    /// Stores many small blobs, each only if its bytes hash to its digest. On a local
    /// directory one blocking task writes the whole batch (see [`write_local_blob`]);
    /// elsewhere the blobs go up concurrently.
    pub async fn put_many(&self, blobs: Vec<(Sha256Digest, Bytes)>) -> Result<(), Error> {
        let Some(root) = self.local_root.clone() else {
            let store = self.clone();
            return futures::stream::iter(blobs)
                .map(move |(digest, bytes)| {
                    let store = store.clone();
                    async move { store.put_bytes(&digest, bytes).await }
                })
                .buffer_unordered(HEAD_CONCURRENCY)
                .try_collect()
                .await;
        };
        tokio::task::spawn_blocking(move || {
            for (expected, bytes) in blobs {
                check_digest(&expected, &bytes)?;
                write_local_blob(&root, &expected, &bytes)?;
            }
            Ok(())
        })
        .await
        .map_err(|e| Error::Io(std::io::Error::other(e)))?
    }

    /// Stores `bytes` under `expected` if they hash to it.
    pub async fn put_bytes(&self, expected: &Sha256Digest, bytes: Bytes) -> Result<(), Error> {
        check_digest(expected, &bytes)?;
        // Locally, create-if-absent. Object stores differ in conditional-put support; a
        // content-addressed key may simply be overwritten with the same bytes.
        let mode = match self.local_root {
            Some(_) => PutMode::Create,
            None => PutMode::Overwrite,
        };
        let opts = PutOptions {
            mode,
            ..Default::default()
        };
        match self
            .store
            .put_opts(&blob_key(expected), PutPayload::from(bytes), opts)
            .await
        {
            Ok(_) | Err(object_store::Error::AlreadyExists { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Streams a blob in, hashing as it goes; it becomes visible only if the stream ends
    /// cleanly and the bytes hash to `expected`. Memory stays within a few parts whatever
    /// the size. Returns the number of bytes received.
    pub async fn put_stream<E>(
        &self,
        expected: &Sha256Digest,
        stream: impl futures::Stream<Item = Result<Bytes, E>> + Unpin,
    ) -> Result<u64, Error>
    where
        E: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        Ok(self.ingest(Some(expected), stream).await?.1)
    }

    /// Streams in content whose digest the sender does not know (MLflow artifact
    /// uploads): it is stored under whatever it hashes to. Returns (digest, size).
    pub async fn put_stream_unknown<E>(
        &self,
        stream: impl futures::Stream<Item = Result<Bytes, E>> + Unpin,
    ) -> Result<(Sha256Digest, u64), Error>
    where
        E: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        self.ingest(None, stream).await
    }

    async fn ingest<E>(
        &self,
        expected: Option<&Sha256Digest>,
        mut stream: impl futures::Stream<Item = Result<Bytes, E>> + Unpin,
    ) -> Result<(Sha256Digest, u64), Error>
    where
        E: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let upload_failed = |e: E| Error::UploadInterrupted(e.into().to_string());

        // Small blobs, the common case, never touch a staging object. The first part is
        // held as the chunks received (a growing buffer would reserve up to twice it).
        let mut head: Vec<Bytes> = Vec::new();
        let mut head_len = 0;
        while head_len <= PART_SIZE {
            match stream.next().await {
                Some(chunk) => {
                    let chunk = chunk.map_err(upload_failed)?;
                    head_len += chunk.len();
                    head.push(chunk);
                }
                None => {
                    let mut whole = BytesMut::with_capacity(head_len);
                    for chunk in head {
                        whole.extend_from_slice(&chunk);
                    }
                    let whole = whole.freeze();
                    let digest = expected
                        .copied()
                        .unwrap_or_else(|| Sha256Digest::of(&whole));
                    self.put_bytes(&digest, whole).await?;
                    return Ok((digest, head_len as u64));
                }
            }
        }

        // Where the digest is known and the store is remote, the upload goes straight to
        // its final key: a multipart upload stays invisible until completed, and it is
        // completed only if the bytes hash right. Otherwise it is staged, then published.
        let direct = match expected {
            Some(expected) if self.local_root.is_none() => Some(blob_key(expected)),
            _ => None,
        };
        let staging = direct.clone().unwrap_or_else(staging_key);
        let upload = self.store.put_multipart(&staging).await?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, PART_SIZE);
        let mut hasher = Sha256Hasher::new();
        for chunk in head {
            hasher.update(&chunk);
            writer.put(chunk);
        }
        let received: Result<(), Error> = async {
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(upload_failed)?;
                hasher.update(&chunk);
                writer.wait_for_capacity(PARTS_IN_FLIGHT).await?;
                writer.put(chunk);
            }
            Ok(())
        }
        .await;
        if let Err(e) = received {
            let _ = writer.abort().await;
            return Err(e);
        }
        let (actual, size) = hasher.finish();
        if direct.is_some() {
            let expected = expected.expect("direct uploads know their digest");
            if *expected != actual {
                let _ = writer.abort().await;
                return Err(Error::DigestMismatch {
                    expected: *expected,
                    actual,
                    size,
                });
            }
            writer.finish().await.map_err(finish_failed)?;
            return Ok((actual, size));
        }
        writer.finish().await.map_err(finish_failed)?;

        let published = match expected {
            Some(expected) if *expected != actual => Err(Error::DigestMismatch {
                expected: *expected,
                actual,
                size,
            }),
            _ => match self.publish(&staging, &blob_key(&actual)).await {
                Ok(()) => return Ok((actual, size)),
                Err(e) => Err(e),
            },
        };
        let _ = self.store.delete(&staging).await;
        published
    }

    /// Moves a staged upload to its blob key. Locally the rename refuses to replace
    /// (an existing blob has the same bytes). Object stores have no portable
    /// rename-if-absent; the copy overwrites the key with identical bytes instead.
    async fn publish(&self, staging: &ObjectPath, key: &ObjectPath) -> Result<(), Error> {
        if self.local_root.is_some() {
            return match self.store.rename_if_not_exists(staging, key).await {
                Ok(()) | Err(object_store::Error::AlreadyExists { .. }) => Ok(()),
                Err(e) => Err(e.into()),
            };
        }
        if self.store.head(key).await.is_err() {
            self.store.copy(staging, key).await?;
        }
        self.store.delete(staging).await?;
        Ok(())
    }

    /// Every stored blob with its size and last write (garbage collection).
    pub async fn list(&self) -> Result<Vec<StoredBlob>, Error> {
        self.store
            .list(Some(&ObjectPath::from(key::BLOBS)))
            .try_filter_map(|meta| async move {
                // Staging files and anything else not named by its digest are skipped.
                Ok(BlobKey::digest_of(&meta.location).map(|digest| StoredBlob {
                    digest,
                    size: meta.size,
                    modified_ms: meta.last_modified.timestamp_millis(),
                }))
            })
            .try_collect()
            .await
            .map_err(Error::from)
    }

    /// Deletes blobs; one already gone is fine.
    pub async fn delete(&self, digests: &[Sha256Digest]) -> Result<(), Error> {
        let store = self.store.clone();
        futures::stream::iter(digests.to_vec())
            .map(move |d| {
                let store = store.clone();
                async move {
                    match store.delete(&blob_key(&d)).await {
                        Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
                        Err(e) => Err(Error::from(e)),
                    }
                }
            })
            .buffer_unordered(HEAD_CONCURRENCY)
            .try_collect::<()>()
            .await
    }

    /// Removes staged uploads older than `older_than` (with `dry_run`, only counts them):
    /// what a process killed in the middle of an upload left behind, never visible as a
    /// blob — multipart uploads under `blobs/tmp/`, and locally the `.staging-*` files
    /// of small blobs beside their final names. Only old ones: several servers may share
    /// one directory or bucket, and a younger file may be another's upload in progress.
    /// Incomplete multipart uploads on S3 are invisible objects the bucket's lifecycle
    /// rule expires. Returns how many there were.
    pub async fn remove_stale_uploads(
        &self,
        older_than: std::time::Duration,
        dry_run: bool,
    ) -> Result<usize, Error> {
        if let Some(root) = self.local_root.clone() {
            return tokio::task::spawn_blocking(move || {
                local::remove_stale_uploads(&root, older_than, dry_run)
            })
            .await
            .map_err(|e| Error::Io(std::io::Error::other(e)))?
            .map_err(Error::from);
        }
        let cutoff = unix_seconds_ago(older_than);
        let stale: Vec<ObjectPath> = self
            .store
            .list(Some(&ObjectPath::from(key::STAGING)))
            .try_filter_map(|meta| async move {
                Ok((meta.last_modified.timestamp() < cutoff).then_some(meta.location))
            })
            .try_collect()
            .await?;
        if !dry_run {
            for location in &stale {
                match self.store.delete(location).await {
                    Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
        Ok(stale.len())
    }

    /// Opens a blob for reading; `None` if it is not stored. The bytes are verified as
    /// they are read (see `verified`): a corrupt blob ends its stream with an error
    /// before the chunk that would complete it.
    pub async fn read(&self, digest: &Sha256Digest) -> Result<Option<BlobRead>, Error> {
        let got = match self.store.get(&blob_key(digest)).await {
            Ok(got) => got,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let size = got.meta.size;
        let stream = match got.payload {
            // The local backend's own stream yields 8 KiB chunks; read big ones instead.
            GetResultPayload::File(file, _) => read_ahead(file, size),
            GetResultPayload::Stream(s) => s.map_err(std::io::Error::other).boxed(),
        };
        if size > READ_CHUNK as u64 {
            return Ok(Some(BlobRead {
                size,
                stream: verified::verified(*digest, size, stream),
            }));
        }
        // A blob of one chunk is checked whole before anything is answered, so that a
        // corrupt one is refused with an error the client can read rather than a cut
        // connection (and an empty one has no last chunk to hold back).
        let bytes: BytesMut = stream.try_collect().await?;
        if Sha256Digest::of(&bytes) != *digest {
            tracing::error!(blob = %digest, "stored blob is corrupt; the read was refused");
            return Err(Error::CorruptBlob(*digest));
        }
        Ok(Some(BlobRead {
            size,
            stream: futures::stream::once(async move { Ok(bytes.freeze()) }).boxed(),
        }))
    }

    /// Re-hashes a stored blob: its actual digest and size, or `None` if it is missing.
    pub async fn rehash(
        &self,
        digest: &Sha256Digest,
    ) -> Result<Option<(Sha256Digest, u64)>, Error> {
        let got = match self.store.get(&blob_key(digest)).await {
            Ok(got) => got,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        match got.payload {
            GetResultPayload::File(file, _) => {
                let size = got.meta.size;
                let hashed = tokio::task::spawn_blocking(move || hash_reader(file, size, |_| {}))
                    .await
                    .map_err(|e| Error::Io(std::io::Error::other(e)))??;
                Ok(Some(hashed))
            }
            GetResultPayload::Stream(mut s) => {
                let mut hasher = Sha256Hasher::new();
                while let Some(chunk) = s.next().await {
                    hasher.update(&chunk?);
                }
                Ok(Some(hasher.finish()))
            }
        }
    }

    /// Fails with [`Error::MissingBlobs`] unless every one of `digests` is stored, makes
    /// them durable ([`Self::make_durable`]), and answers their stored sizes. On a local
    /// directory a few blobs take one blocking task for all of it: opening each to fsync
    /// it finds the missing ones and their sizes.
    pub async fn require_durable(&self, digests: &[Sha256Digest]) -> Result<Vec<u64>, Error> {
        let sizes = if self.local_root.is_some() && digests.len() <= FSYNC_EACH_MAX {
            self.make_durable(digests).await?
        } else {
            let sizes = self.stored_sizes(digests).await?;
            let missing: Vec<Sha256Digest> = digests
                .iter()
                .zip(&sizes)
                .filter(|(_, size)| size.is_none())
                .map(|(d, _)| *d)
                .collect();
            if !missing.is_empty() {
                return Err(Error::MissingBlobs(missing));
            }
            self.make_durable(digests).await?;
            sizes
        };
        Ok(sizes.into_iter().map(|s| s.unwrap_or_default()).collect())
    }

    /// Makes `digests` durable, whoever wrote them. Object stores are durable on success.
    /// On a local directory, a few blobs get an fsync each (file and directory entry),
    /// which costs next to nothing when they are durable already, and their sizes are
    /// answered (`None` elsewhere); many blobs get one `syncfs`, which flushes every file
    /// and directory entry of the filesystem together. A local blob found missing on the
    /// way fails with [`Error::MissingBlobs`].
    pub async fn make_durable(&self, digests: &[Sha256Digest]) -> Result<Vec<Option<u64>>, Error> {
        let Some(root) = self.local_root.clone() else {
            return Ok(vec![None; digests.len()]);
        };
        if digests.is_empty() {
            // A registration of blobs that are all referenced already (a run's
            // artifacts): no handoff to a blocking thread for nothing.
            return Ok(Vec::new());
        }
        let paths: Vec<(Sha256Digest, PathBuf)> = digests
            .iter()
            .map(|d| (*d, self.local_path(d).expect("local store")))
            .collect();
        let (sizes, gone) = tokio::task::spawn_blocking(move || {
            if paths.len() > FSYNC_EACH_MAX {
                let dir = std::fs::File::open(&root)?;
                rustix::fs::syncfs(&dir).map_err(std::io::Error::from)?;
                return Ok((vec![None; paths.len()], Vec::new()));
            }
            let mut dirs = std::collections::BTreeSet::new();
            // A blob deleted meanwhile (by a garbage collection) is reported, not an error.
            let mut gone = Vec::new();
            let mut sizes = Vec::with_capacity(paths.len());
            for (digest, path) in &paths {
                match std::fs::File::open(path) {
                    Ok(file) => {
                        file.sync_all()?;
                        sizes.push(Some(file.metadata()?.len()));
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                        gone.push(*digest);
                        sizes.push(None);
                        continue;
                    }
                    Err(e) => return Err(e),
                }
                if let Some(parent) = path.parent() {
                    dirs.insert(parent.to_path_buf());
                }
            }
            for dir in dirs {
                std::fs::File::open(dir)?.sync_all()?;
            }
            Ok::<_, std::io::Error>((sizes, gone))
        })
        .await
        .map_err(|e| Error::Io(std::io::Error::other(e)))??;
        if !gone.is_empty() {
            return Err(Error::MissingBlobs(gone));
        }
        Ok(sizes)
    }

    /// Where a blob lives on disk, for local stores (tests and operators).
    pub fn local_path(&self, digest: &Sha256Digest) -> Option<PathBuf> {
        let key = BlobKey::sha256(digest);
        self.local_root.as_ref().map(|root| key.local_path(root))
    }
}

/// Above this many blobs one filesystem-wide sync beats an fsync each.
const FSYNC_EACH_MAX: usize = 32;

/// The Unix time (seconds) `age` ago.
fn unix_seconds_ago(age: std::time::Duration) -> i64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    now.saturating_sub(age).as_secs() as i64
}

/// A multipart upload that failed to finish. `WriteMultipart::finish` answers the error
/// of its clean-up abort when that fails too: `NotFound` there means the upload was gone
/// already — the store stopped answering mid-way and the answers were lost — which is
/// the store's trouble, retried by clients, not an internal error. (Nothing partial is
/// left visible either way: an upload becomes an object only when completed, and it is
/// completed only once its bytes hashed right.)
fn finish_failed(e: object_store::Error) -> Error {
    match e {
        object_store::Error::NotFound { .. } => Error::BlobStoreLost(e.to_string()),
        e => e.into(),
    }
}
