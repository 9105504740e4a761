//! The registry service: the one place that validates input, enforces the domain rules
//! and orders writes between the blob store and the metadata store. The native REST
//! API, the CLI's embedded mode (and later the MLflow adapter) all call this.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use cairn_core::access::Actor;
use cairn_core::api::{CreateModel, IdempotencyKey, NewVersion};
use cairn_core::{
    MetaKey, Model, ModelName, Sha256Digest, ValidationError, VerifyReport, Version, VersionRef,
};

use crate::blobs::{BlobLocation, BlobRead, BlobStore, StagedBlob};
use crate::db::{DbLocation, DbOptions, MetadataStore, time_of};
use crate::head_reads::HeadReads;
use crate::read_cache::{self, ReadCache};
use crate::store::{FileList, VersionExtras, VersionInsert, VersionOrigin};
use crate::tracking::Tracking;
use crate::{Error, Result};

pub mod aliases;
mod browse;
pub mod changes;
pub mod copy;
mod denials;
mod diff;
mod gc;
pub mod idempotency;
mod lineage;
mod metadata;
mod policies;
pub mod sources;
pub mod tokens;
pub mod users;
mod verify;

/// Longest description, in bytes.
const DESCRIPTION_MAX: usize = 64 * 1024;
/// Longest tag or param value, in bytes.
const VALUE_MAX: usize = 8 * 1024;
/// Longest alias-move reason, in bytes.
const REASON_MAX: usize = 4 * 1024;
/// Longest actor name, in bytes.
const ACTOR_MAX: usize = 256;

/// The registry: every request holds a clone, so a clone is one reference count on
/// the parts all clones share.
#[derive(Clone)]
pub struct Registry(Arc<Parts>);

/// What a [`Registry`] is made of.
#[derive(Clone)]
pub struct Parts {
    pub(crate) meta: MetadataStore,
    pub(crate) blobs: BlobStore,
    tracking: Tracking,
    pub(crate) read_cache: Arc<ReadCache>,
    head_reads: HeadReads,
    changes: changes::SharedChangeWatch,
    pub(crate) webhook_config: Arc<crate::webhooks::WebhookConfig>,
    /// How long an idempotency key is remembered once its write is done.
    key_ttl: std::time::Duration,
}

impl std::ops::Deref for Registry {
    type Target = Parts;

    fn deref(&self) -> &Parts {
        &self.0
    }
}

impl Registry {
    /// The embedded default: `cairn.db` (SQLite) and `blobs/` under `data_dir`.
    pub async fn open_local(data_dir: &Path) -> Result<Self> {
        Self::open_sqlite(&data_dir.join("cairn.db"), data_dir).await
    }

    /// SQLite metadata in `database`, blobs under `data_dir/blobs/`.
    pub async fn open_sqlite(database: &Path, data_dir: &Path) -> Result<Self> {
        Self::open(
            &DbLocation::Sqlite(database.to_path_buf()),
            &BlobLocation::Local(data_dir.to_path_buf()),
            &DbOptions::default(),
        )
        .await
    }

    /// Metadata in `db` (SQLite or PostgreSQL), blobs in `blobs` (a directory or a
    /// bucket).
    pub async fn open(db: &DbLocation, blobs: &BlobLocation, options: &DbOptions) -> Result<Self> {
        if let DbLocation::Sqlite(database) = db
            && let Some(parent) = database.parent().filter(|p| !p.as_os_str().is_empty())
        {
            std::fs::create_dir_all(parent)?;
        }
        let meta = MetadataStore::open(db, options).await?;
        let blobs = BlobStore::open(blobs)?;
        let tracking = Tracking::new(meta.clone(), blobs.clone());
        Ok(Self(Arc::new(Parts {
            meta,
            blobs,
            tracking,
            read_cache: Arc::new(ReadCache::new(read_cache::DEFAULT_BUDGET)),
            head_reads: HeadReads::new(),
            changes: Default::default(),
            webhook_config: Default::default(),
            key_ttl: idempotency::DEFAULT_KEY_TTL,
        })))
    }

    /// The registry with `config` for its webhooks: their secrets' key, whether private
    /// addresses may be called, how long deliveries are retried.
    pub fn with_webhooks(mut self, config: crate::webhooks::WebhookConfig) -> Self {
        Arc::make_mut(&mut self.0).webhook_config = Arc::new(config);
        self
    }

    /// The registry remembering idempotency keys for `ttl` once their write is done.
    pub fn with_key_ttl(mut self, ttl: std::time::Duration) -> Self {
        Arc::make_mut(&mut self.0).key_ttl = ttl;
        self
    }

    pub fn blobs(&self) -> &BlobStore {
        &self.blobs
    }

    /// Experiments, runs, logged models and artifacts.
    pub fn tracking(&self) -> &Tracking {
        &self.tracking
    }

    /// The metadata store's connections, for metrics.
    pub fn pool_stats(&self) -> crate::db::PoolStats {
        self.meta.pool_stats()
    }

    /// Fails when the metadata store or the blob store does not answer.
    pub async fn check_ready(&self) -> Result<()> {
        self.meta.ping().await?;
        self.blobs.ping().await
    }

    /// Brings the planner's statistics of the searched tables up to date where they
    /// changed (PostgreSQL; see `db::statistics`); answers the tables analyzed.
    pub async fn refresh_statistics(&self) -> Result<Vec<String>> {
        self.meta.refresh_statistics().await
    }

    // ---- models ----

    pub async fn create_model(&self, actor: &Actor, req: &CreateModel) -> Result<Model> {
        self.create_model_keyed(actor, req, None).await
    }

    /// [`Registry::create_model`] under a client's idempotency key (when there is one):
    /// the key sent again answers the model it created rather than `model_exists`.
    pub async fn create_model_keyed(
        &self,
        actor: &Actor,
        req: &CreateModel,
        key: Option<&IdempotencyKey>,
    ) -> Result<Model> {
        let name = ModelName::new(&req.name)?;
        check_text("description", &req.description, DESCRIPTION_MAX)?;
        check_key_values(&req.tags)?;
        let actor = check_actor(actor)?;
        let request = || idempotency::fingerprint(&("create model", req));
        let name_ref = &name;
        self.keyed(actor, key, request, |claim| async move {
            self.meta
                .create_model(name_ref, &req.description, &req.tags, actor, claim.as_ref())
                .await
        })
        .await?;
        self.meta.get_model(&name).await
    }

    /// Models matching MLflow-style comparisons on `name` and `tags.KEY`, one page.
    pub async fn search_models(
        &self,
        filter: &[cairn_core::search::Comparison],
        order: &[cairn_core::search::OrderBy],
        offset: usize,
        limit: usize,
    ) -> Result<Vec<Model>> {
        self.meta.search_models(filter, order, offset, limit).await
    }

    /// The encoded answer to a read of registry state only (models, versions, their
    /// tags, aliases and stages — never runs or experiments), identified by `key`:
    /// served from memory while the registry is unchanged, else `compute`d and kept.
    /// One query for the audit head replaces the read and its encoding: most worth it
    /// for large answers (searches) and for reads of several tables (a version with
    /// its tags and aliases); see `read_cache`.
    pub async fn cached_read<E, F>(&self, key: String, compute: F) -> std::result::Result<Bytes, E>
    where
        E: From<Error>,
        F: Future<Output = std::result::Result<Bytes, E>>,
    {
        let head = self.head_reads.fresh(&self.meta).await?;
        if let Some(answer) = self.read_cache.get(&head, &key) {
            return Ok(answer);
        }
        // One computation per key at a time; whoever waited looks again first.
        let slot = self.read_cache.computing(&key);
        let _computing = slot.lock().await;
        if let Some(answer) = self.read_cache.get(&head, &key) {
            return Ok(answer);
        }
        let answer = compute.await?;
        self.read_cache.put(&head, key, answer.clone());
        Ok(answer)
    }

    /// Versions matching MLflow-style comparisons, one page, with their MLflow state.
    pub async fn search_versions(
        &self,
        filter: &[cairn_core::search::Comparison],
        order: &[cairn_core::search::OrderBy],
        offset: usize,
        limit: usize,
    ) -> Result<Vec<(Version, VersionExtras)>> {
        self.meta
            .search_versions(filter, order, offset, limit)
            .await
    }

    /// For each named model, its newest version in each MLflow stage, oldest first.
    pub async fn latest_versions_per_stage(
        &self,
        models: &[&str],
    ) -> Result<std::collections::HashMap<String, Vec<(Version, VersionExtras)>>> {
        self.meta.latest_versions_per_stage(models).await
    }

    pub async fn list_models(&self) -> Result<Vec<Model>> {
        self.meta.list_models().await
    }

    /// `ModelNotFound` unless the model exists; cheaper than [`Registry::get_model`].
    pub async fn model_exists(&self, name: &ModelName) -> Result<()> {
        self.meta.model_exists(name).await
    }

    pub async fn get_model(&self, name: &ModelName) -> Result<Model> {
        self.meta.get_model(name).await
    }

    /// Deletes a model with all its versions and aliases. Blobs stay until garbage
    /// collection, since other versions may share them.
    pub async fn delete_model(&self, actor: &Actor, name: &ModelName) -> Result<()> {
        self.meta.delete_model(name, check_actor(actor)?).await
    }

    // ---- versions ----

    /// Registers a new version of `model` (created if needed) from blobs already in the
    /// store, recording where it came from (`origin`; MLflow's source, run and logged
    /// model). The blobs are made durable before the metadata commits. The answer is the
    /// version as registered, without its manifest (which the caller just sent).
    pub async fn register_version(
        &self,
        actor: &Actor,
        model: &ModelName,
        new: &NewVersion,
        origin: &VersionOrigin,
    ) -> Result<Version> {
        let (version, _) = self
            .register(actor, model, new, origin, Registration::Cairn { key: None })
            .await?;
        Ok(version)
    }

    /// [`Registry::register_version`] under a client's idempotency key: the key sent
    /// again with the same request answers the version it registered (same number,
    /// same digest), however the first answer was lost.
    pub async fn register_version_keyed(
        &self,
        actor: &Actor,
        model: &ModelName,
        new: &NewVersion,
        key: &IdempotencyKey,
    ) -> Result<Version> {
        let origin = VersionOrigin::default();
        let (version, _) = self
            .register(
                actor,
                model,
                new,
                &origin,
                Registration::Cairn { key: Some(key) },
            )
            .await?;
        Ok(version)
    }

    /// Registers a version: content-addressed by `new.files`, or (an external
    /// [`Registration::Mlflow`]) one whose bytes live at `origin.source`, which the
    /// registry neither holds nor verifies (its manifest is empty and it has no digest).
    async fn register(
        &self,
        actor: &Actor,
        model: &ModelName,
        new: &NewVersion,
        origin: &VersionOrigin,
        how: Registration<'_>,
    ) -> Result<(Version, VersionExtras)> {
        let (external, create_model, key) = match how {
            Registration::Cairn { key } => (false, true, key),
            Registration::Mlflow { external } => (external, false, None),
        };
        let actor = check_actor(actor)?;
        if external && !new.files.files().is_empty() {
            return Err(Error::InvalidArgument(
                "an external version has no files".into(),
            ));
        }
        check_text("description", &new.description, DESCRIPTION_MAX)?;
        check_key_values(&new.tags)?;
        check_key_values(&new.params)?;
        for (key, value) in &new.metrics {
            MetaKey::new(key)?;
            if !value.is_finite() {
                return Err(
                    ValidationError::Value(key.clone(), "metrics must be finite numbers").into(),
                );
            }
        }

        // The run a registration names is the version's run, as MLflow records it.
        let named_run;
        let origin = match &new.lineage.run_id {
            Some(run) if origin.run_id.is_empty() => {
                named_run = VersionOrigin {
                    run_id: run.clone(),
                    ..origin.clone()
                };
                &named_run
            }
            _ => origin,
        };
        let digest = (!external).then(|| new.files.digest());
        let request = || {
            idempotency::fingerprint(&(
                "register",
                model.as_str(),
                new,
                [&origin.source, &origin.run_id, &origin.run_link],
                &origin.logged_model_id,
                external,
            ))
        };
        let (number, created_at): (u64, i64) = self
            .keyed(actor, key, request, |claim| async move {
                self.check_parents(&new.lineage.parents).await?;
                self.check_declared_sizes(new).await?;
                self.meta
                    .insert_version(VersionInsert {
                        model,
                        digest,
                        new,
                        actor,
                        origin,
                        claim: claim.as_ref(),
                        create_model,
                    })
                    .await
            })
            .await?;
        // What was just committed, as committed: no read back (a new version has no
        // alias yet, and its stage is MLflow's first).
        let extras = VersionExtras {
            origin: origin.clone(),
            stage: "None".to_owned(),
            updated_at: created_at,
        };
        let version = Version {
            model: model.to_string(),
            version: number,
            digest,
            external_source: external.then(|| origin.source.clone()),
            description: new.description.clone(),
            file_count: new.files.files().len() as u64,
            size: new.files.total_size(),
            files: None,
            aliases: Vec::new(),
            metrics: new.metrics.clone(),
            params: new.params.clone(),
            tags: new.tags.clone(),
            created_by: actor.name.clone(),
            created_at: time_of(created_at),
        };
        Ok((version, extras))
    }

    /// Fails unless every blob a registration names is stored with the size it
    /// declares (files and environment files), and makes them durable. Blobs a
    /// committed version or artifact references are durable already (a run's
    /// artifacts, registered as a model version, usually are), and their sizes were
    /// checked when first referenced: a declared size that agrees with the recorded
    /// one stands for the check; only the others go to the blob store.
    async fn check_declared_sizes(&self, new: &NewVersion) -> Result<()> {
        let declared: Vec<(&str, Sha256Digest, u64)> = new
            .files
            .files()
            .iter()
            .map(|f| (f.path.as_str(), f.sha256, f.size))
            .chain(
                new.lineage
                    .environment
                    .iter()
                    .map(|e| (e.path.as_str(), e.sha256, e.size)),
            )
            .collect();
        let mut digests: Vec<Sha256Digest> = declared.iter().map(|(_, d, _)| *d).collect();
        digests.sort_unstable();
        digests.dedup();
        let recorded = self.meta.recorded_sizes(&digests).await?;
        let unreferenced: Vec<Sha256Digest> = digests
            .iter()
            .filter(|d| !recorded.contains_key(d))
            .copied()
            .collect();
        let sizes = self.blobs.require_durable(&unreferenced).await?;
        let mut stored: HashMap<Sha256Digest, u64> = unreferenced.into_iter().zip(sizes).collect();

        let disagreeing: Vec<Sha256Digest> = declared
            .iter()
            .filter(|(_, digest, size)| match recorded.get(digest) {
                Some(sizes) => sizes.iter().any(|s| s != size),
                None => false,
            })
            .map(|(_, digest, _)| *digest)
            .collect();
        if !disagreeing.is_empty() {
            let sizes = self.blobs.stored_sizes(&disagreeing).await?;
            for (digest, size) in disagreeing.iter().zip(sizes) {
                stored.insert(*digest, size.ok_or(Error::MissingBlobs(vec![*digest]))?);
            }
        }
        for (path, digest, size) in declared {
            if let Some(&stored) = stored.get(&digest)
                && stored != size
            {
                return Err(Error::SizeMismatch {
                    path: path.to_owned(),
                    digest,
                    declared: size,
                    stored,
                });
            }
        }
        Ok(())
    }

    /// The versions registered from each of the logged models `ids` (model name and
    /// number), oldest first.
    pub async fn versions_from_logged_models(
        &self,
        ids: &[&str],
    ) -> Result<HashMap<String, Vec<(String, u64)>>> {
        self.meta.versions_from_logged_models(ids).await
    }

    pub async fn list_versions(&self, model: &ModelName) -> Result<Vec<Version>> {
        self.meta.list_versions(model).await
    }

    /// One page of a model's versions: up to `limit` numbered after `after`, oldest
    /// first, without manifests.
    pub async fn versions_page(
        &self,
        model: &ModelName,
        after: u64,
        limit: u32,
    ) -> Result<Vec<Version>> {
        self.meta.versions_after(model, after, limit).await
    }

    /// A version, with its manifest (`files`) when `files` says so; without, it is
    /// one read less.
    pub async fn get_version(
        &self,
        model: &ModelName,
        reference: &VersionRef,
        files: FileList,
    ) -> Result<Version> {
        self.meta.get_version(model, reference, files).await
    }

    pub async fn delete_version(
        &self,
        actor: &Actor,
        model: &ModelName,
        number: u64,
    ) -> Result<()> {
        existing_number(model, number)?;
        self.meta
            .delete_version(model, number, check_actor(actor)?)
            .await
    }

    /// A version without its manifest, with its MLflow-only state (origin, stage).
    pub async fn get_version_with_origin(
        &self,
        model: &ModelName,
        reference: &VersionRef,
    ) -> Result<(Version, VersionExtras)> {
        self.meta.get_version_with_origin(model, reference).await
    }

    /// Every version of a model (without manifests) with its MLflow-only state.
    pub async fn list_versions_with_origin(
        &self,
        model: &ModelName,
    ) -> Result<Vec<(Version, VersionExtras)>> {
        self.meta.list_versions_with_origin(model).await
    }

    pub async fn rename_model(
        &self,
        actor: &Actor,
        model: &ModelName,
        new_name: &ModelName,
    ) -> Result<Model> {
        self.meta
            .rename_model(model, new_name, check_actor(actor)?)
            .await?;
        self.meta.get_model(new_name).await
    }

    /// MLflow's legacy stages: None, Staging, Production, Archived.
    pub async fn set_stage(
        &self,
        actor: &Actor,
        model: &ModelName,
        number: u64,
        stage: &str,
        archive_others: bool,
    ) -> Result<()> {
        existing_number(model, number)?;
        // A stage is the legacy form of an alias: a transition into stage `Production`
        // is a promotion to alias `production`, and meets its policies. (Checked
        // before the write, not under its lock: a tag removed in between can slip
        // through this legacy door, never through alias moves.)
        if matches!(stage, "Staging" | "Production")
            && let Ok(alias) = cairn_core::AliasName::new(&stage.to_ascii_lowercase())
        {
            let unmet = self.promotion_check(model, &alias, number).await?;
            if !unmet.is_empty() {
                return Err(Error::PolicyUnmet {
                    target: format!("moving {model}@{number} to stage {stage}"),
                    unmet,
                });
            }
        }
        self.meta
            .set_stage(model, number, stage, archive_others, check_actor(actor)?)
            .await
    }

    // ---- audit log ----

    /// Audit entries in order, optionally of one model and from a time (ms) on.
    pub async fn audit_log(
        &self,
        model: Option<&str>,
        since_ms: Option<i64>,
    ) -> Result<Vec<cairn_core::AuditEntry>> {
        self.meta.audit_log(model, since_ms).await
    }

    pub async fn audit_head(&self) -> Result<cairn_core::AuditHead> {
        self.meta.audit_head().await
    }

    /// Recomputes the audit chain (and checks an exported head, if given).
    pub async fn verify_audit(
        &self,
        exported: Option<&cairn_core::AuditHead>,
    ) -> Result<cairn_core::AuditReport> {
        self.meta.verify_audit(exported).await
    }

    // ---- aliases ----

    // ---- blobs ----

    /// The digests the registry does not hold: not stored, or collected by `gc` (whose
    /// tombstone a new upload clears).
    pub async fn missing_blobs(&self, digests: &[Sha256Digest]) -> Result<Vec<Sha256Digest>> {
        let mut missing = self.blobs.missing(digests).await?;
        let collected = self.meta.tombstoned(digests).await?;
        if !collected.is_empty() {
            missing.extend(collected);
            missing.sort_unstable();
            missing.dedup();
        }
        Ok(missing)
    }

    pub async fn put_blob_bytes(&self, digest: &Sha256Digest, bytes: Bytes) -> Result<()> {
        let epoch = self.meta.gc_epoch().await?;
        self.blobs.put_bytes(digest, bytes).await?;
        self.uploaded(&[*digest], epoch).await
    }

    /// Stores a batch of small blobs, each checked against its digest.
    pub async fn put_blob_batch(&self, blobs: Vec<(Sha256Digest, Bytes)>) -> Result<()> {
        let epoch = self.meta.gc_epoch().await?;
        let digests: Vec<Sha256Digest> = blobs.iter().map(|(d, _)| *d).collect();
        self.blobs.put_many(blobs).await?;
        self.uploaded(&digests, epoch).await
    }

    /// After blobs were written (after collection `epoch`): clears the tombstones of
    /// those a collection had deleted before, so they can be referenced again. Only a
    /// blob with a tombstone costs a write; registration checks tombstones regardless.
    async fn uploaded(&self, digests: &[Sha256Digest], epoch: i64) -> Result<()> {
        let collected = self.meta.tombstoned(digests).await?;
        if collected.is_empty() {
            return Ok(());
        }
        self.meta.blobs_written(&collected, epoch).await
    }

    pub async fn put_blob_stream<E>(
        &self,
        digest: &Sha256Digest,
        stream: impl futures::Stream<Item = std::result::Result<Bytes, E>> + Unpin,
    ) -> Result<u64>
    where
        E: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let epoch = self.meta.gc_epoch().await?;
        let size = self.blobs.put_stream(digest, stream).await?;
        self.uploaded(&[*digest], epoch).await?;
        Ok(size)
    }

    /// Copies a local file into a local blob store and hashes the copy, not yet visible
    /// (see `blobs::staged`); `None` when blobs are not kept in a local directory.
    pub async fn stage_blob_copy(
        &self,
        source: &Path,
        on_bytes: Box<dyn Fn(u64) + Send + Sync>,
    ) -> Result<Option<StagedBlob>> {
        self.blobs.stage_copy(source, on_bytes).await
    }

    /// Stores a staged copy under its digest.
    pub async fn put_staged_blob(&self, staged: StagedBlob) -> Result<()> {
        let epoch = self.meta.gc_epoch().await?;
        let digest = staged.digest;
        self.blobs.publish_staged(staged).await?;
        self.uploaded(&[digest], epoch).await
    }

    pub async fn read_blob(&self, digest: &Sha256Digest) -> Result<BlobRead> {
        self.blobs
            .read(digest)
            .await?
            .ok_or(Error::BlobNotFound(*digest))
    }

    // ---- verification ----

    /// Recomputes one version's digest from its manifest rows and re-hashes its blobs
    /// (see `verify`).
    pub async fn verify_version(
        &self,
        model: &ModelName,
        reference: &VersionRef,
    ) -> Result<VerifyReport> {
        let number = self
            .meta
            .get_version(model, reference, FileList::Omitted)
            .await?
            .version;
        let id = verify::version_id(&self.meta, model, number).await?;
        verify::verify(&self.meta, &self.blobs, verify::Scope::Version(id)).await
    }

    /// [`Registry::verify_version`] for every version, and every blob any row
    /// references (run artifacts and uploads in progress included).
    pub async fn verify_all(&self) -> Result<VerifyReport> {
        verify::verify(&self.meta, &self.blobs, verify::Scope::All).await
    }
}

/// A version number that can exist: the stores keep numbers as 64-bit signed integers,
/// so a larger one names no version (and must not wrap on its way to SQL).
fn existing_number(model: &ModelName, number: u64) -> Result<()> {
    if number == 0 || number > i64::MAX as u64 {
        return Err(Error::VersionNotFound {
            model: model.to_string(),
            reference: number.to_string(),
        });
    }
    Ok(())
}

pub(crate) fn check_actor(actor: &Actor) -> Result<&Actor> {
    check_user_name(&actor.name)?;
    Ok(actor)
}

/// A user's or actor's name: 1–256 bytes, no control characters.
fn check_user_name(name: &str) -> Result<()> {
    if name.is_empty() || name.len() > ACTOR_MAX || name.chars().any(char::is_control) {
        return Err(Error::InvalidArgument(format!(
            "invalid actor {name:?}: 1-{ACTOR_MAX} bytes without control characters"
        )));
    }
    Ok(())
}

fn check_text(what: &str, text: &str, max: usize) -> Result<()> {
    if text.len() > max {
        return Err(Error::InvalidArgument(format!(
            "{what} is {} bytes long; the limit is {max}",
            text.len()
        )));
    }
    Ok(())
}

fn check_key_values(values: &BTreeMap<String, String>) -> Result<()> {
    for (key, value) in values {
        MetaKey::new(key)?;
        check_text(&format!("value of {key:?}"), value, VALUE_MAX)?;
    }
    Ok(())
}

/// Whose registration it is, which decides what a missing model means.
pub(crate) enum Registration<'k> {
    /// Cairn's own (a push): a missing model is created; an idempotency key, if the
    /// client sent one, answers a repeat.
    Cairn { key: Option<&'k IdempotencyKey> },
    /// MLflow's, from a source: the model must exist (`ModelNotFound` otherwise, told
    /// by the registration's own statement); `external` when the registry holds no
    /// files at the source.
    Mlflow { external: bool },
}
