//! Where things live in a blob store, known here only: a blob under its digest at
//! `blobs/sha256/<first 2 hex>/<64 hex>` (the shards keep directories small on local
//! disks), staged uploads under `blobs/tmp/`.

use std::path::{Path, PathBuf};

use cairn_core::Sha256Digest;
use object_store::path::Path as ObjectPath;

/// The prefix every blob is stored under.
pub(super) const BLOBS: &str = "blobs/sha256";
/// The prefix of staged uploads (never a blob).
pub(super) const STAGING: &str = "blobs/tmp";
/// A key asked for to learn whether the store answers (it need not exist).
pub(super) const PING: &str = "blobs/.ping";

/// The key of one blob.
pub(super) struct BlobKey(String);

impl BlobKey {
    pub fn sha256(digest: &Sha256Digest) -> Self {
        let hex = digest.to_hex();
        Self(format!("{BLOBS}/{}/{hex}", &hex[..2]))
    }

    /// The digest an object-store location holds, if it is a blob's key (not a staging
    /// file or anything else).
    pub fn digest_of(location: &ObjectPath) -> Option<Sha256Digest> {
        let digest = location.filename()?.parse::<Sha256Digest>().ok()?;
        (location.as_ref() == Self::sha256(&digest).0).then_some(digest)
    }

    pub fn object_path(&self) -> ObjectPath {
        ObjectPath::from(self.0.as_str())
    }

    /// The blob's file under a local store's root.
    pub fn local_path(&self, root: &Path) -> PathBuf {
        root.join(&self.0)
    }
}

/// A fresh key for a staged upload.
pub(super) fn staging_key() -> ObjectPath {
    ObjectPath::from(format!("{STAGING}/{}", uuid::Uuid::new_v4()))
}
