//! The serving process's local, content-addressed cache of blobs.
//!
//! `DIR/blobs/sha256/ab/abcd…` holds each blob once, whatever versions share it, so
//! switching between two versions downloads only the files that differ. A version is
//! assembled for loading in a fresh directory of hard links (`DIR/versions/…`), which
//! is removed once the model is loaded: onnxruntime reads everything at load.
//!
//! Nothing in the cache is trusted: a blob is re-hashed each time a version uses it
//! (a corrupt or altered one is dropped and downloaded again), and a download is
//! hashed on the way in and kept only when it matches.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use cairn_core::{FileEntry, Manifest, Sha256Digest, hash_reader};

use crate::client::RegistryClient;
use crate::commands::pull::download_verified;

pub struct BlobCache {
    root: PathBuf,
}

/// A version's files, linked into a directory of their own.
pub struct Assembled {
    pub dir: PathBuf,
    /// Bytes downloaded for this version (the rest came from the cache).
    pub downloaded: u64,
}

impl Drop for Assembled {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl BlobCache {
    /// The cache at `root` (made if missing).
    pub fn open(root: &Path) -> Result<Self> {
        for dir in ["blobs/sha256", "tmp", "versions"] {
            std::fs::create_dir_all(root.join(dir))
                .with_context(|| format!("creating the serving cache in {}", root.display()))?;
        }
        Ok(Self {
            root: root.to_path_buf(),
        })
    }

    /// The default place: `$XDG_CACHE_HOME/cairn/serve` (~/.cache/cairn/serve).
    pub fn default_root() -> PathBuf {
        dirs::cache_dir()
            .unwrap_or_else(std::env::temp_dir)
            .join("cairn")
            .join("serve")
    }

    fn blob_path(&self, digest: &Sha256Digest) -> PathBuf {
        let hex = digest.to_string();
        self.root.join("blobs/sha256").join(&hex[..2]).join(hex)
    }

    /// Every file of `manifest` (already checked against the version's digest) in a
    /// new directory, verified; blobs the cache lacks are downloaded from `registry`.
    pub async fn assemble(
        &self,
        registry: &dyn RegistryClient,
        manifest: &Manifest,
    ) -> Result<Assembled> {
        let dir = self
            .root
            .join("versions")
            .join(uuid::Uuid::new_v4().to_string());
        std::fs::create_dir(&dir)?;
        let mut assembled = Assembled { dir, downloaded: 0 };
        for entry in manifest.files() {
            assembled.downloaded += self.ensure(registry, entry).await?;
            let target = assembled.dir.join(&entry.path);
            if let Some(parent) = target.parent() {
                std::fs::create_dir_all(parent)?;
            }
            let blob = self.blob_path(&entry.sha256);
            // A hard link shares the verified bytes; a cache on another filesystem than
            // its versions directory cannot link, and copies.
            if std::fs::hard_link(&blob, &target).is_err() {
                std::fs::copy(&blob, &target)
                    .with_context(|| format!("{}: copying it from the cache", entry.path))?;
            }
        }
        Ok(assembled)
    }

    /// Makes sure the cache holds `entry`'s blob, verified now; answers the bytes
    /// downloaded for it.
    async fn ensure(&self, registry: &dyn RegistryClient, entry: &FileEntry) -> Result<u64> {
        let path = self.blob_path(&entry.sha256);
        if let Ok(file) = std::fs::File::open(&path) {
            let (digest, size) = hash_reader(file, entry.size, |_| {})?;
            if digest == entry.sha256 && size == entry.size {
                return Ok(0);
            }
            tracing::warn!(path = %path.display(), "a cached blob does not match its digest; downloading it again");
            std::fs::remove_file(&path)?;
        }
        let staging = self.root.join("tmp").join(uuid::Uuid::new_v4().to_string());
        let file = tokio::fs::File::create(&staging).await?;
        let fetched = download_verified(registry, entry, file, &|_| {}).await;
        if let Err(e) = fetched {
            let _ = std::fs::remove_file(&staging);
            return Err(e);
        }
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::rename(&staging, &path)?;
        if std::fs::metadata(&path)?.len() != entry.size {
            bail!(
                "{}: the cached blob changed while it was stored",
                entry.path
            );
        }
        Ok(entry.size)
    }
}
