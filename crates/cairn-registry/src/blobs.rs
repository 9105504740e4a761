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

/// A local file as a stream of `READ_CHUNK`-sized chunks, each read on the blocking pool
/// straight into its own buffer while the one before is being sent: one copy out of the
/// page cache, one read ahead in flight, and no thread held while a slow client drains.
fn read_ahead(file: std::fs::File, size: u64) -> BoxStream<'static, std::io::Result<Bytes>> {
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
    let hex = digest.to_hex();
    ObjectPath::from(format!("blobs/sha256/{}/{hex}", &hex[..2]))
}

fn staging_key() -> ObjectPath {
    ObjectPath::from(format!("blobs/tmp/{}", uuid::Uuid::new_v4()))
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

/// Writes one verified blob into a local store: a staging file beside its final name,
/// then an atomic rename that refuses to replace (`RENAME_NOREPLACE`), falling back to
/// link + unlink where the filesystem lacks it. Same layout and visibility rules as the
/// `object_store` path (a blob is visible whole or not at all), but two directory
/// operations per blob instead of three, with no task hop per blob: what makes a push
/// of ten thousand small files cheap. Durability comes later, from `make_durable`.
fn write_local_blob(root: &Path, digest: &Sha256Digest, bytes: &[u8]) -> Result<(), Error> {
    use std::io::Write as _;

    let hex = digest.to_hex();
    let dir = root.join("blobs/sha256").join(&hex[..2]);
    let target = dir.join(&hex);
    if target.exists() {
        return Ok(());
    }
    let staging = dir.join(format!(".staging-{}", uuid::Uuid::new_v4()));
    let mut file = match std::fs::File::create_new(&staging) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(&dir)?;
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
fn publish_no_replace(staging: &Path, target: &Path) -> std::io::Result<()> {
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

/// Where blobs live: a local directory or an object-store bucket (with a key prefix).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlobLocation {
    Local(PathBuf),
    /// `s3://bucket/prefix`, `gs://bucket/prefix`, `az://container/prefix`.
    Remote(url::Url),
}

impl BlobLocation {
    /// A path or `file://PATH` is local; `s3://`, `gs://` and `az://` (also `abfs://`)
    /// are object stores configured from the standard environment of each cloud.
    pub fn parse(s: &str) -> Result<Self, Error> {
        if let Some(path) = s.strip_prefix("file://") {
            return Ok(Self::Local(PathBuf::from(path)));
        }
        if !s.contains("://") {
            return Ok(Self::Local(PathBuf::from(s)));
        }
        let url = url::Url::parse(s)
            .map_err(|e| Error::InvalidArgument(format!("invalid artifact store {s:?}: {e}")))?;
        match url.scheme() {
            "s3" | "s3a" | "gs" | "az" | "azure" | "abfs" | "abfss" => Ok(Self::Remote(url)),
            other => Err(Error::InvalidArgument(format!(
                "unsupported artifact store scheme {other:?}: use a path, s3://, gs:// or az://"
            ))),
        }
    }
}

impl std::fmt::Display for BlobLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Local(path) => write!(f, "{}", path.display()),
            Self::Remote(url) => write!(f, "{url}"),
        }
    }
}

/// An object store for `url`, configured from the environment the cloud's own tools
/// read (`AWS_ENDPOINT_URL`, `AWS_REGION`, `AWS_ACCESS_KEY_ID`…, `GOOGLE_*`, `AZURE_*`),
/// with keys under the URL's path.
fn remote_store(url: &url::Url) -> Result<Arc<dyn ObjectStore>, Error> {
    use object_store::aws::AmazonS3Builder;
    use object_store::azure::MicrosoftAzureBuilder;
    use object_store::gcp::GoogleCloudStorageBuilder;
    use object_store::prefix::PrefixStore;

    let store: Arc<dyn ObjectStore> = match url.scheme() {
        "s3" | "s3a" => {
            let mut builder = AmazonS3Builder::from_env().with_url(url.as_str());
            // S3-compatible servers on plain HTTP (MinIO, Ceph, test servers).
            if let Ok(endpoint) =
                std::env::var("AWS_ENDPOINT_URL").or_else(|_| std::env::var("AWS_ENDPOINT"))
            {
                builder = builder.with_endpoint(&endpoint);
                if endpoint.starts_with("http://") {
                    builder = builder.with_allow_http(true);
                }
            }
            Arc::new(builder.build()?)
        }
        "gs" => Arc::new(
            GoogleCloudStorageBuilder::from_env()
                .with_url(url.as_str())
                .build()?,
        ),
        _ => Arc::new(
            MicrosoftAzureBuilder::from_env()
                .with_url(url.as_str())
                .build()?,
        ),
    };
    let prefix = url.path().trim_matches('/');
    Ok(if prefix.is_empty() {
        store
    } else {
        Arc::new(PrefixStore::new(store, prefix))
    })
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
        match self.store.head(&ObjectPath::from("blobs/.ping")).await {
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

    pub async fn exists(&self, digest: &Sha256Digest) -> Result<bool, Error> {
        match self.store.head(&blob_key(digest)).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// The digests of `digests` that are not stored, in their original order.
    pub async fn missing(&self, digests: &[Sha256Digest]) -> Result<Vec<Sha256Digest>, Error> {
        if self.local_root.is_some() {
            return self.missing_local(digests).await;
        }
        // Owned items and an owned clone keep the futures free of borrowed lifetimes,
        // which `Send` checks in axum handlers otherwise trip over.
        let store = self.clone();
        let present: Vec<bool> = futures::stream::iter(digests.to_vec())
            .map(move |d| {
                let store = store.clone();
                async move { store.exists(&d).await }
            })
            .buffered(HEAD_CONCURRENCY)
            .try_collect()
            .await?;
        Ok(digests
            .iter()
            .zip(present)
            .filter(|(_, present)| !present)
            .map(|(d, _)| *d)
            .collect())
    }

    /// On a local directory, one blocking task checks a whole batch of paths: ten
    /// thousand existence checks cost one `stat` each instead of a task hop each.
    async fn missing_local(&self, digests: &[Sha256Digest]) -> Result<Vec<Sha256Digest>, Error> {
        const BATCH: usize = 1024;
        let mut checks = Vec::new();
        for batch in digests.chunks(BATCH) {
            let paths: Vec<(Sha256Digest, PathBuf)> = batch
                .iter()
                .map(|d| (*d, self.local_path(d).expect("local store")))
                .collect();
            checks.push(tokio::task::spawn_blocking(move || {
                let mut missing = Vec::new();
                for (digest, path) in paths {
                    match std::fs::metadata(&path) {
                        Ok(meta) if meta.is_file() => {}
                        Ok(_) => missing.push(digest),
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => missing.push(digest),
                        Err(e) => return Err(e),
                    }
                }
                Ok(missing)
            }));
        }
        let mut missing = Vec::new();
        for check in checks {
            missing.extend(
                check
                    .await
                    .map_err(|e| Error::Io(std::io::Error::other(e)))??,
            );
        }
        Ok(missing)
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

        // Small blobs, the common case, never touch a staging object.
        let mut head = BytesMut::new();
        while head.len() <= PART_SIZE {
            match stream.next().await {
                Some(chunk) => head.extend_from_slice(&chunk.map_err(upload_failed)?),
                None => {
                    let len = head.len() as u64;
                    let digest = expected.copied().unwrap_or_else(|| Sha256Digest::of(&head));
                    self.put_bytes(&digest, head.freeze()).await?;
                    return Ok((digest, len));
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
        hasher.update(&head);
        writer.put(head.freeze());
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
            writer.finish().await?;
            return Ok((actual, size));
        }
        writer.finish().await?;

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
            .list(Some(&ObjectPath::from("blobs/sha256")))
            .try_filter_map(|meta| async move {
                // Staging files and anything else not named by its digest are skipped.
                let digest = meta
                    .location
                    .filename()
                    .and_then(|name| name.parse::<Sha256Digest>().ok())
                    .filter(|d| meta.location == blob_key(d));
                Ok(digest.map(|digest| StoredBlob {
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

    /// Removes staged uploads older than `older_than`: what a process killed in the
    /// middle of an upload left under `blobs/tmp/` (never visible as a blob). Uploads in
    /// progress are younger than any sensible threshold. Incomplete multipart uploads
    /// on S3 are invisible objects the bucket's lifecycle rule expires. Returns how many
    /// were removed.
    pub async fn remove_stale_uploads(
        &self,
        older_than: std::time::Duration,
    ) -> Result<usize, Error> {
        if let Some(root) = self.local_root.clone() {
            // Listed with std: object_store hides its own in-progress multipart files.
            return tokio::task::spawn_blocking(move || {
                let dir = root.join("blobs/tmp");
                let entries = match std::fs::read_dir(&dir) {
                    Ok(entries) => entries,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
                    Err(e) => return Err(e),
                };
                let mut removed = 0;
                for entry in entries {
                    let entry = entry?;
                    let modified = entry.metadata()?.modified()?;
                    if modified.elapsed().is_ok_and(|age| age > older_than) {
                        std::fs::remove_file(entry.path())?;
                        removed += 1;
                    }
                }
                Ok(removed)
            })
            .await
            .map_err(|e| Error::Io(std::io::Error::other(e)))?
            .map_err(Error::from);
        }
        let cutoff = unix_seconds_ago(older_than);
        let stale: Vec<ObjectPath> = self
            .store
            .list(Some(&ObjectPath::from("blobs/tmp")))
            .try_filter_map(|meta| async move {
                Ok((meta.last_modified.timestamp() < cutoff).then_some(meta.location))
            })
            .try_collect()
            .await?;
        for location in &stale {
            self.store.delete(location).await?;
        }
        Ok(stale.len())
    }

    /// Opens a blob for reading; `None` if it is not stored.
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
        Ok(Some(BlobRead { size, stream }))
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

    /// Fails with [`Error::MissingBlobs`] unless every one of `digests` is stored, and
    /// makes them durable ([`Self::make_durable`]). On a local directory a few blobs
    /// take one blocking task for both: opening each to fsync it finds the missing ones.
    pub async fn require_durable(&self, digests: &[Sha256Digest]) -> Result<(), Error> {
        if self.local_root.is_some() && digests.len() <= FSYNC_EACH_MAX {
            return self.make_durable(digests).await;
        }
        let missing = self.missing(digests).await?;
        if !missing.is_empty() {
            return Err(Error::MissingBlobs(missing));
        }
        self.make_durable(digests).await
    }

    /// Makes `digests` durable, whoever wrote them. Object stores are durable on success.
    /// On a local directory, a few blobs get an fsync each (file and directory entry),
    /// which costs next to nothing when they are durable already; many blobs get one
    /// `syncfs`, which flushes every file and directory entry of the filesystem together.
    /// A local blob found missing on the way fails with [`Error::MissingBlobs`].
    pub async fn make_durable(&self, digests: &[Sha256Digest]) -> Result<(), Error> {
        let Some(root) = self.local_root.clone() else {
            return Ok(());
        };
        let paths: Vec<(Sha256Digest, PathBuf)> = digests
            .iter()
            .map(|d| (*d, self.local_path(d).expect("local store")))
            .collect();
        let gone = tokio::task::spawn_blocking(move || {
            if paths.len() > FSYNC_EACH_MAX {
                let dir = std::fs::File::open(&root)?;
                rustix::fs::syncfs(&dir).map_err(std::io::Error::from)?;
                return Ok(Vec::new());
            }
            let mut dirs = std::collections::BTreeSet::new();
            // A blob deleted meanwhile (by a garbage collection) is reported, not an error.
            let mut gone = Vec::new();
            for (digest, path) in &paths {
                match std::fs::File::open(path) {
                    Ok(file) => file.sync_all()?,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                        gone.push(*digest);
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
            Ok::<_, std::io::Error>(gone)
        })
        .await
        .map_err(|e| Error::Io(std::io::Error::other(e)))??;
        if !gone.is_empty() {
            return Err(Error::MissingBlobs(gone));
        }
        Ok(())
    }

    /// Where a blob lives on disk, for local stores (tests and operators).
    pub fn local_path(&self, digest: &Sha256Digest) -> Option<PathBuf> {
        let hex = digest.to_hex();
        self.local_root
            .as_ref()
            .map(|root| root.join("blobs/sha256").join(&hex[..2]).join(hex))
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
