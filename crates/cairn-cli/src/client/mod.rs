//! The CLI's one view of a registry, in two modes that behave identically:
//! [`embedded::Embedded`] opens the stores itself, [`remote::Remote`] speaks the native
//! REST API of a `cairn server`. Commands only ever see `dyn RegistryClient`.

pub mod embedded;
pub mod remote;
pub mod retry;
mod sse;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use async_trait::async_trait;
use bytes::Bytes;
use cairn_core::ModelVersionRef;
use cairn_core::api::{CreateToken, CreatedToken, NewVersion, SetGrant};
use cairn_core::auth::{TokenInfo, UserInfo};
use cairn_core::diff::VersionDiff;
use cairn_core::event::Event;
use cairn_core::lineage::{Lineage, ParentRef};
use cairn_core::model::{BlobUse, GcReport};
use cairn_core::policy::{Policy, PolicyRecord};
use cairn_core::webhook::{
    Delivery, DeliveryState, NewWebhook, TestResult, Webhook, WebhookUpdate,
};
use cairn_core::{
    AliasMove, AliasName, AuditEntry, AuditHead, AuditReport, Denial, Model, ModelName,
    Sha256Digest, VerifyReport, Version, VersionRef,
};
use cairn_registry::{BlobLocation, DbLocation};
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
pub use retry::RetryPolicy;

/// A blob being downloaded.
pub struct Download {
    pub stream: BoxStream<'static, std::io::Result<Bytes>>,
}

#[async_trait]
pub trait RegistryClient: Send + Sync {
    async fn list_models(&self) -> Result<Vec<Model>>;
    async fn get_model(&self, model: &ModelName) -> Result<Model>;
    async fn delete_model(&self, model: &ModelName) -> Result<()>;

    /// A model's versions, oldest first: every one, or the first `limit` (a server
    /// answers in pages; they are followed).
    async fn list_versions(&self, model: &ModelName, limit: Option<usize>) -> Result<Vec<Version>>;
    async fn get_version(&self, model: &ModelName, reference: &VersionRef) -> Result<Version>;
    async fn create_version(&self, model: &ModelName, new: &NewVersion) -> Result<Version>;
    async fn delete_version(&self, model: &ModelName, number: u64) -> Result<()>;

    async fn move_alias(
        &self,
        model: &ModelName,
        alias: &AliasName,
        number: u64,
        reason: Option<&str>,
    ) -> Result<Option<AliasMove>>;
    async fn delete_alias(
        &self,
        model: &ModelName,
        alias: &AliasName,
        reason: Option<&str>,
    ) -> Result<Option<AliasMove>>;
    async fn rollback_alias(
        &self,
        model: &ModelName,
        alias: &AliasName,
        reason: Option<&str>,
    ) -> Result<Option<AliasMove>>;
    async fn alias_history(&self, model: &ModelName, alias: &AliasName) -> Result<Vec<AliasMove>>;
    /// Protects an alias (or lifts its protection); `false` when it already was so.
    async fn protect_alias(
        &self,
        model: &ModelName,
        alias: &AliasName,
        protect: bool,
    ) -> Result<()>;
    async fn protected_aliases(&self, model: &ModelName) -> Result<Vec<String>>;

    /// Promotion policies: set (or replace) the policy of `alias` for `models` (a name
    /// or a pattern), delete it, list them.
    async fn set_policy(&self, models: &str, alias: &AliasName, policy: &Policy) -> Result<()>;
    async fn delete_policy(&self, models: &str, alias: &AliasName) -> Result<()>;
    async fn policies(&self) -> Result<Vec<PolicyRecord>>;
    /// Approves `model@number` for `alias`; `false` when already approved by the caller.
    async fn approve(
        &self,
        model: &ModelName,
        number: u64,
        alias: &AliasName,
        reason: Option<&str>,
    ) -> Result<bool>;
    /// Every rule moving `alias` to `model@number` would break (empty: none).
    async fn promotion_check(
        &self,
        model: &ModelName,
        alias: &AliasName,
        number: u64,
    ) -> Result<Vec<String>>;

    /// Webhooks: create, list, change, delete, test; a webhook's deliveries; queue a
    /// delivery again.
    async fn create_webhook(&self, new: &NewWebhook) -> Result<Webhook>;
    async fn webhooks(&self) -> Result<Vec<Webhook>>;
    async fn update_webhook(&self, id: &str, update: &WebhookUpdate) -> Result<Webhook>;
    async fn delete_webhook(&self, id: &str) -> Result<()>;
    async fn test_webhook(&self, id: &str) -> Result<TestResult>;
    async fn webhook_deliveries(
        &self,
        id: &str,
        state: Option<DeliveryState>,
        limit: u32,
    ) -> Result<Vec<Delivery>>;
    async fn redeliver(&self, delivery: &str) -> Result<Delivery>;

    /// API tokens: create (answering the secret), list (never a secret), revoke.
    async fn create_token(&self, request: &CreateToken) -> Result<CreatedToken>;
    async fn list_tokens(&self) -> Result<Vec<TokenInfo>>;
    async fn revoke_token(&self, id: &str) -> Result<TokenInfo>;

    /// Users: list; set a password; grant (or, without a role, deny); remove a grant.
    async fn list_users(&self) -> Result<Vec<UserInfo>>;
    async fn set_password(&self, user: &str, password: &str) -> Result<()>;
    async fn set_grant(&self, user: &str, grant: &SetGrant) -> Result<()>;
    async fn revoke_grant(&self, user: &str, grant: &SetGrant) -> Result<()>;

    async fn verify_version(
        &self,
        model: &ModelName,
        reference: &VersionRef,
    ) -> Result<VerifyReport>;
    async fn verify_all(&self) -> Result<VerifyReport>;

    /// Audit entries, oldest first; `since` is an RFC 3339 time.
    async fn audit_log(&self, model: Option<&str>, since: Option<&str>) -> Result<Vec<AuditEntry>>;
    async fn audit_head(&self) -> Result<AuditHead>;
    /// Waits until the registry changes (its audit head's number passes `after`)
    /// or `wait` passes; answers the head's number then. Without `after`, at once.
    /// `model` is the model the caller follows: a remote server checks the caller may
    /// read it.
    async fn wait_for_change(
        &self,
        model: &ModelName,
        after: Option<u64>,
        wait: std::time::Duration,
    ) -> Result<u64>;
    async fn verify_audit(&self, exported: Option<&AuditHead>) -> Result<AuditReport>;
    /// Registry events after number `after` (of `model`, if given), in order: those
    /// there are now, then — with `follow` — each new one as it commits.
    async fn events(
        &self,
        after: Option<u64>,
        model: Option<&ModelName>,
        follow: bool,
    ) -> Result<BoxStream<'static, Result<Event>>>;
    /// The newest `limit` refused writes (the security log), oldest first.
    async fn denials(&self, limit: u32) -> Result<Vec<Denial>>;

    /// A version's lineage, with its ancestors' and its direct descendants.
    async fn lineage(&self, model: &ModelName, reference: &VersionRef) -> Result<Lineage>;
    /// What differs from `a` to `b`.
    async fn diff(&self, a: &ModelVersionRef, b: &ModelVersionRef) -> Result<VersionDiff>;
    /// Versions that came from an input digest, a commit, or (transitively) a parent.
    async fn versions_from(&self, query: &LineageQuery) -> Result<Vec<ParentRef>>;

    /// Deletes unreferenced blobs older than `grace` (or only reports them).
    async fn collect_garbage(&self, grace: std::time::Duration, dry_run: bool) -> Result<GcReport>;
    /// What keeps a blob alive.
    async fn why_blob(&self, digest: &Sha256Digest) -> Result<BlobUse>;

    /// Hashes a large file being pushed. A client that keeps blobs in a directory on
    /// this machine copies the file into it and hashes the copy (one copy, one hash),
    /// and `upload_blobs` then publishes that copy instead of reading the file again. `None`: nothing staged, the caller hashes the file itself.
    async fn hash_and_stage(
        &self,
        _file: &Path,
        _on_bytes: Box<dyn Fn(u64) + Send + Sync>,
    ) -> Result<Option<(Sha256Digest, u64)>> {
        Ok(None)
    }

    /// The digests the registry does not hold yet.
    async fn missing_blobs(&self, digests: &[Sha256Digest]) -> Result<Vec<Sha256Digest>>;
    /// Uploads a file's bytes as the blob `digest`; `on_bytes` is told of every chunk sent.
    async fn upload_blob(
        &self,
        digest: &Sha256Digest,
        file: &Path,
        size: u64,
        on_bytes: &(dyn Fn(u64) + Send + Sync),
    ) -> Result<()>;
    /// Uploads many files as blobs; `on_bytes` is told of progress. By default, one
    /// `upload_blob` per file, a few at a time.
    async fn upload_blobs(
        &self,
        blobs: &[BlobSource],
        on_bytes: &(dyn Fn(u64) + Send + Sync),
    ) -> Result<()> {
        // Indices, not references, keep the futures free of higher-ranked lifetimes.
        futures::stream::iter(0..blobs.len())
            .map(|i| async move {
                let b = &blobs[i];
                self.upload_blob(&b.digest, &b.path, b.size, on_bytes)
                    .await
                    .with_context(|| format!("uploading {}", b.path.display()))
            })
            .buffer_unordered(UPLOAD_CONCURRENCY)
            .try_collect::<()>()
            .await
    }
    async fn download_blob(&self, digest: &Sha256Digest) -> Result<Download>;
}

/// What a reverse lineage query asks for.
pub enum LineageQuery {
    Data(String),
    Commit(String),
    Parent(ParentRef),
}

/// Concurrent uploads of the default `upload_blobs`.
const UPLOAD_CONCURRENCY: usize = 8;

/// A local file to upload as the blob `digest`.
#[derive(Debug, Clone)]
pub struct BlobSource {
    pub digest: Sha256Digest,
    pub path: PathBuf,
    pub size: u64,
}

/// Where the registry is: stores the CLI opens itself (embedded), or a server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// Metadata (SQLite file or PostgreSQL) and blobs (directory or bucket).
    Embedded {
        db: DbLocation,
        blobs: BlobLocation,
    },
    Remote(String),
}

impl Location {
    /// `http(s)://host:port` → remote; `sqlite://PATH` (a `.db` file, or a data
    /// directory) or a plain path → embedded on SQLite; `postgres://…` → embedded on
    /// PostgreSQL, with blobs at `artifacts` (required then: `--artifacts` or
    /// `CAIRN_ARTIFACTS`). `artifacts` also overrides where an embedded SQLite registry
    /// keeps its blobs.
    pub fn parse(spec: &str, artifacts: Option<&str>) -> Result<Self> {
        if spec.starts_with("http://") || spec.starts_with("https://") {
            return Ok(Self::Remote(spec.trim_end_matches('/').to_owned()));
        }
        let blobs = artifacts.map(BlobLocation::parse).transpose()?;
        if spec.starts_with("postgres://") || spec.starts_with("postgresql://") {
            let blobs = blobs.context(
                "a PostgreSQL registry needs its artifact store: pass --artifacts (or set CAIRN_ARTIFACTS)",
            )?;
            return Ok(Self::Embedded {
                db: DbLocation::parse(spec)?,
                blobs,
            });
        }
        if let Some(path) = spec.strip_prefix("sqlite://") {
            let path = PathBuf::from(path);
            if path.extension().is_some_and(|e| e == "db" || e == "sqlite") {
                let data_dir = path
                    .parent()
                    .filter(|p| !p.as_os_str().is_empty())
                    .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
                return Ok(Self::Embedded {
                    db: DbLocation::Sqlite(path),
                    blobs: blobs.unwrap_or(BlobLocation::Local(data_dir)),
                });
            }
            return Ok(Self::data_dir(path, blobs));
        }
        if spec.contains("://") {
            anyhow::bail!(
                "unsupported registry {spec:?}: use a directory, sqlite://PATH, postgres://… or http(s)://HOST:PORT"
            );
        }
        Ok(Self::data_dir(PathBuf::from(spec), blobs))
    }

    /// The embedded default layout: `DIR/cairn.db` and blobs under `DIR/blobs/` (unless
    /// `blobs` says otherwise).
    pub fn data_dir(dir: PathBuf, blobs: Option<BlobLocation>) -> Self {
        Self::Embedded {
            db: DbLocation::Sqlite(dir.join("cairn.db")),
            blobs: blobs.unwrap_or(BlobLocation::Local(dir)),
        }
    }

    /// `CAIRN_HOME`, else the platform data directory (`~/.local/share/cairn` on Linux).
    pub fn default_data_dir() -> Result<PathBuf> {
        if let Some(home) = std::env::var_os("CAIRN_HOME").filter(|h| !h.is_empty()) {
            return Ok(PathBuf::from(home));
        }
        dirs::data_dir()
            .map(|d| d.join("cairn"))
            .context("no data directory on this platform: set CAIRN_HOME or pass --registry")
    }

    /// A client of this registry; a server's requests are retried as `retry` says.
    pub async fn connect(&self, retry: RetryPolicy) -> Result<Box<dyn RegistryClient>> {
        Ok(match self {
            Self::Embedded { db, blobs } => {
                Box::new(embedded::Embedded::open(db, blobs, actor()).await?)
            }
            Self::Remote(url) => Box::new(remote::Remote::new(url, actor(), token()?, retry)?),
        })
    }
}

/// The token sent to a server: `CAIRN_TOKEN`, else the file `cairn/token` in the user's
/// configuration directory (e.g. `~/.config/cairn/token`), which must be readable by its
/// owner only (mode 0600): a token anyone on the machine can read is refused.
pub fn token() -> Result<Option<String>> {
    if let Some(token) = std::env::var("CAIRN_TOKEN").ok().filter(|t| !t.is_empty()) {
        return Ok(Some(token));
    }
    let Some(path) = dirs::config_dir().map(|d| d.join("cairn").join("token")) else {
        return Ok(None);
    };
    let Ok(metadata) = std::fs::metadata(&path) else {
        return Ok(None);
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = metadata.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            anyhow::bail!(
                "{} is readable by others (mode {mode:o}): run chmod 600 on it",
                path.display()
            );
        }
    }
    #[cfg(not(unix))]
    let _ = metadata;
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("reading the token in {}", path.display()))?;
    Ok(Some(text.trim().to_owned()).filter(|t| !t.is_empty()))
}

/// Who the CLI acts as: `CAIRN_ACTOR`, else the OS user.
pub fn actor() -> String {
    ["CAIRN_ACTOR", "USER", "LOGNAME", "USERNAME"]
        .iter()
        .find_map(|var| std::env::var(var).ok().filter(|v| !v.is_empty()))
        .unwrap_or_else(|| "unknown".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_locations() {
        assert_eq!(
            Location::parse("http://127.0.0.1:5000/", None).unwrap(),
            Location::Remote("http://127.0.0.1:5000".into())
        );
        assert_eq!(
            Location::parse("/var/cairn", None).unwrap(),
            Location::data_dir("/var/cairn".into(), None)
        );
        assert_eq!(
            Location::parse("sqlite:///srv/reg/meta.db", None).unwrap(),
            Location::Embedded {
                db: DbLocation::Sqlite("/srv/reg/meta.db".into()),
                blobs: BlobLocation::Local("/srv/reg".into()),
            }
        );
        assert_eq!(
            Location::parse("sqlite://reg", None).unwrap(),
            Location::data_dir("reg".into(), None)
        );
        assert_eq!(
            Location::parse("postgres://u@db/cairn", Some("s3://bucket/models")).unwrap(),
            Location::Embedded {
                db: DbLocation::Postgres("postgres://u@db/cairn".into()),
                blobs: BlobLocation::Remote("s3://bucket/models".parse().unwrap()),
            }
        );
        assert!(Location::parse("postgres://u@db/cairn", None).is_err());
        assert!(Location::parse("ftp://x", None).is_err());
    }
}
