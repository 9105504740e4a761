//! Embedded mode: the CLI runs the registry service in-process on the local stores.

use std::path::Path;

use anyhow::{Context, Result};
use async_trait::async_trait;
use cairn_core::ModelVersionRef;
use cairn_core::access::Actor;
use cairn_core::api::{CreateToken, CreatedToken, NewVersion, SetGrant};
use cairn_core::auth::{ModelPattern, TokenInfo, UserInfo};
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
use std::collections::HashMap;

use cairn_registry::{
    AliasTarget, BlobLocation, DbLocation, DbOptions, FileList, GrantOn, NewToken, Registry,
    StagedBlob,
};
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};

use super::{BlobSource, Download, LineageQuery, RegistryClient};

/// Files up to this size are uploaded from memory in one write.
const SMALL_FILE: u64 = 8 * 1024 * 1024;
const READ_CHUNK: usize = 1024 * 1024;
/// Small files per read/write batch.
const BATCH_FILES: usize = 256;

pub struct Embedded {
    registry: Registry,
    /// Whoever can open the data directory or database may do everything there.
    actor: Actor,
    /// Copies made by `hash_and_stage`, by digest, until `upload_blobs` publishes the
    /// missing ones and drops the rest.
    staged: std::sync::Mutex<HashMap<Sha256Digest, StagedBlob>>,
}

impl Embedded {
    pub async fn open(db: &DbLocation, blobs: &BlobLocation, actor: String) -> Result<Self> {
        let registry = Registry::open(db, blobs, &DbOptions::default())
            .await
            .with_context(|| format!("opening the registry at {db} (artifacts: {blobs})"))?
            .with_webhooks(crate::commands::webhooks::config(db, None, None)?);
        Ok(Self {
            registry,
            actor: Actor::unrestricted(actor),
            staged: Default::default(),
        })
    }
}

#[async_trait]
impl RegistryClient for Embedded {
    async fn list_models(&self) -> Result<Vec<Model>> {
        Ok(self.registry.list_models().await?)
    }

    async fn get_model(&self, model: &ModelName) -> Result<Model> {
        Ok(self.registry.get_model(model).await?)
    }

    async fn delete_model(&self, model: &ModelName) -> Result<()> {
        Ok(self.registry.delete_model(&self.actor, model).await?)
    }

    async fn list_versions(&self, model: &ModelName, limit: Option<usize>) -> Result<Vec<Version>> {
        Ok(match limit {
            None => self.registry.list_versions(model).await?,
            Some(limit) => {
                let limit = u32::try_from(limit).unwrap_or(u32::MAX);
                self.registry.versions_page(model, 0, limit).await?
            }
        })
    }

    async fn get_version(&self, model: &ModelName, reference: &VersionRef) -> Result<Version> {
        Ok(self
            .registry
            .get_version(model, reference, FileList::Included)
            .await?)
    }

    async fn create_version(&self, model: &ModelName, new: &NewVersion) -> Result<Version> {
        Ok(self
            .registry
            .register_version(&self.actor, model, new, &Default::default())
            .await?)
    }

    async fn delete_version(&self, model: &ModelName, number: u64) -> Result<()> {
        Ok(self
            .registry
            .delete_version(&self.actor, model, number)
            .await?)
    }

    async fn move_alias(
        &self,
        model: &ModelName,
        alias: &AliasName,
        number: u64,
        reason: Option<&str>,
    ) -> Result<Option<AliasMove>> {
        Ok(self
            .registry
            .move_alias(
                &self.actor,
                model,
                alias,
                AliasTarget::Version(number),
                reason,
            )
            .await?)
    }

    async fn delete_alias(
        &self,
        model: &ModelName,
        alias: &AliasName,
        reason: Option<&str>,
    ) -> Result<Option<AliasMove>> {
        Ok(self
            .registry
            .move_alias(&self.actor, model, alias, AliasTarget::Remove, reason)
            .await?)
    }

    async fn rollback_alias(
        &self,
        model: &ModelName,
        alias: &AliasName,
        reason: Option<&str>,
    ) -> Result<Option<AliasMove>> {
        Ok(self
            .registry
            .move_alias(
                &self.actor,
                model,
                alias,
                AliasTarget::PreviousVersion,
                reason,
            )
            .await?)
    }

    async fn alias_history(&self, model: &ModelName, alias: &AliasName) -> Result<Vec<AliasMove>> {
        Ok(self.registry.alias_history(model, alias).await?)
    }

    async fn denials(&self, limit: u32) -> Result<Vec<Denial>> {
        Ok(self.registry.denials(limit).await?)
    }

    async fn protect_alias(
        &self,
        model: &ModelName,
        alias: &AliasName,
        protect: bool,
    ) -> Result<()> {
        self.registry
            .protect_alias(&self.actor, model, alias, protect)
            .await?;
        Ok(())
    }

    async fn set_policy(&self, models: &str, alias: &AliasName, policy: &Policy) -> Result<()> {
        self.registry
            .set_policy(&self.actor, models, alias, policy)
            .await?;
        Ok(())
    }

    async fn delete_policy(&self, models: &str, alias: &AliasName) -> Result<()> {
        if !self
            .registry
            .delete_policy(&self.actor, models, alias)
            .await?
        {
            anyhow::bail!("no promotion policy for {models}@{alias}");
        }
        Ok(())
    }

    async fn policies(&self) -> Result<Vec<PolicyRecord>> {
        Ok(self.registry.policies().await?)
    }

    async fn create_webhook(&self, new: &NewWebhook) -> Result<Webhook> {
        Ok(self.registry.create_webhook(&self.actor, new).await?)
    }

    async fn webhooks(&self) -> Result<Vec<Webhook>> {
        Ok(self.registry.webhooks(&self.actor).await?)
    }

    async fn update_webhook(&self, id: &str, update: &WebhookUpdate) -> Result<Webhook> {
        Ok(self
            .registry
            .update_webhook(&self.actor, id, update)
            .await?)
    }

    async fn delete_webhook(&self, id: &str) -> Result<()> {
        Ok(self.registry.delete_webhook(&self.actor, id).await?)
    }

    async fn test_webhook(&self, id: &str) -> Result<TestResult> {
        Ok(self.registry.test_webhook(&self.actor, id, None).await?)
    }

    async fn webhook_deliveries(
        &self,
        id: &str,
        state: Option<DeliveryState>,
        limit: u32,
    ) -> Result<Vec<Delivery>> {
        Ok(self
            .registry
            .webhook_deliveries(&self.actor, id, state, limit)
            .await?)
    }

    async fn redeliver(&self, delivery: &str) -> Result<Delivery> {
        Ok(self.registry.redeliver(&self.actor, delivery).await?)
    }

    async fn approve(
        &self,
        model: &ModelName,
        number: u64,
        alias: &AliasName,
        reason: Option<&str>,
    ) -> Result<bool> {
        Ok(self
            .registry
            .approve(&self.actor, model, number, alias, reason)
            .await?)
    }

    async fn promotion_check(
        &self,
        model: &ModelName,
        alias: &AliasName,
        number: u64,
    ) -> Result<Vec<String>> {
        Ok(self.registry.promotion_check(model, alias, number).await?)
    }

    async fn protected_aliases(&self, model: &ModelName) -> Result<Vec<String>> {
        self.registry.get_model(model).await?;
        Ok(self.registry.protected_aliases(model).await?)
    }

    async fn create_token(&self, request: &CreateToken) -> Result<CreatedToken> {
        let models = request
            .models
            .as_deref()
            .map(ModelPattern::new)
            .transpose()?;
        let new = NewToken {
            user: request.user.clone(),
            name: request.name.clone(),
            role: request.role,
            models,
            lifetime: request.expires_in_seconds,
        };
        let (token, secret) = self.registry.create_token(&self.actor, &new).await?;
        Ok(CreatedToken { token, secret })
    }

    async fn list_tokens(&self) -> Result<Vec<TokenInfo>> {
        Ok(self.registry.list_tokens().await?)
    }

    async fn revoke_token(&self, id: &str) -> Result<TokenInfo> {
        Ok(self.registry.revoke_token(&self.actor, id).await?)
    }

    async fn list_users(&self) -> Result<Vec<UserInfo>> {
        Ok(self.registry.list_users().await?)
    }

    async fn set_password(&self, user: &str, password: &str) -> Result<()> {
        Ok(self
            .registry
            .set_password(&self.actor, user, password)
            .await?)
    }

    async fn set_grant(&self, user: &str, grant: &SetGrant) -> Result<()> {
        let models = grant.models.as_deref().map(ModelPattern::new).transpose()?;
        Ok(self
            .registry
            .grant(
                &self.actor,
                user,
                GrantOn::of(models.as_ref(), grant.experiment),
                grant.role,
            )
            .await?)
    }

    async fn revoke_grant(&self, user: &str, grant: &SetGrant) -> Result<()> {
        let models = grant.models.as_deref().map(ModelPattern::new).transpose()?;
        if !self
            .registry
            .revoke_grant(
                &self.actor,
                user,
                GrantOn::of(models.as_ref(), grant.experiment),
            )
            .await?
        {
            anyhow::bail!("{user:?} holds no grant on those models");
        }
        Ok(())
    }

    async fn verify_version(
        &self,
        model: &ModelName,
        reference: &VersionRef,
    ) -> Result<VerifyReport> {
        Ok(self.registry.verify_version(model, reference).await?)
    }

    async fn audit_log(&self, model: Option<&str>, since: Option<&str>) -> Result<Vec<AuditEntry>> {
        let since_ms = match since {
            Some(text) => {
                let at = time::OffsetDateTime::parse(
                    text,
                    &time::format_description::well_known::Rfc3339,
                )
                .with_context(|| {
                    format!("--since: expected an RFC 3339 time such as 2026-01-31T12:00:00Z, got {text:?}")
                })?;
                Some((at.unix_timestamp_nanos() / 1_000_000) as i64)
            }
            None => None,
        };
        Ok(self.registry.audit_log(model, since_ms).await?)
    }

    async fn diff(&self, a: &ModelVersionRef, b: &ModelVersionRef) -> Result<VersionDiff> {
        Ok(self.registry.diff(a, b).await?)
    }

    async fn lineage(&self, model: &ModelName, reference: &VersionRef) -> Result<Lineage> {
        Ok(self.registry.lineage(model, reference).await?)
    }

    async fn versions_from(&self, query: &LineageQuery) -> Result<Vec<ParentRef>> {
        Ok(match query {
            LineageQuery::Data(d) => self.registry.versions_with_input(d).await?,
            LineageQuery::Commit(c) => self.registry.versions_with_commit(c).await?,
            LineageQuery::Parent(p) => self.registry.descendants(p).await?,
        })
    }

    async fn collect_garbage(&self, grace: std::time::Duration, dry_run: bool) -> Result<GcReport> {
        Ok(self
            .registry
            .collect_garbage(&self.actor, grace, dry_run)
            .await?)
    }

    async fn why_blob(&self, digest: &Sha256Digest) -> Result<BlobUse> {
        Ok(self.registry.why_blob(digest).await?)
    }

    async fn audit_head(&self) -> Result<AuditHead> {
        Ok(self.registry.audit_head().await?)
    }

    async fn events(
        &self,
        after: Option<u64>,
        model: Option<&ModelName>,
        follow: bool,
    ) -> Result<BoxStream<'static, Result<Event>>> {
        let after = match after {
            Some(after) => after,
            None => self.registry.audit_head().await?.seq,
        };
        Ok(self
            .registry
            .events(after, model.map(ToString::to_string), follow)
            .map_err(anyhow::Error::from)
            .boxed())
    }

    async fn wait_for_change(
        &self,
        _model: &ModelName,
        after: Option<u64>,
        wait: std::time::Duration,
    ) -> Result<u64> {
        let head = match after {
            Some(after) => self.registry.wait_for_change(after, wait).await?,
            None => self.registry.audit_head().await?,
        };
        Ok(head.seq)
    }

    async fn verify_audit(&self, exported: Option<&AuditHead>) -> Result<AuditReport> {
        Ok(self.registry.verify_audit(exported).await?)
    }

    async fn verify_all(&self) -> Result<VerifyReport> {
        Ok(self.registry.verify_all().await?)
    }

    async fn hash_and_stage(
        &self,
        file: &Path,
        on_bytes: Box<dyn Fn(u64) + Send + Sync>,
    ) -> Result<Option<(Sha256Digest, u64)>> {
        let Some(staged) = self.registry.stage_blob_copy(file, on_bytes).await? else {
            return Ok(None);
        };
        let answer = (staged.digest, staged.size);
        self.staged
            .lock()
            .expect("no panics hold the lock")
            .insert(staged.digest, staged);
        Ok(Some(answer))
    }

    async fn missing_blobs(&self, digests: &[Sha256Digest]) -> Result<Vec<Sha256Digest>> {
        Ok(self.registry.missing_blobs(digests).await?)
    }

    async fn upload_blob(
        &self,
        digest: &Sha256Digest,
        file: &Path,
        size: u64,
        on_bytes: &(dyn Fn(u64) + Send + Sync),
    ) -> Result<()> {
        let staged = self
            .staged
            .lock()
            .expect("no panics hold the lock")
            .remove(digest);
        if let Some(staged) = staged {
            self.registry.put_staged_blob(staged).await?;
            on_bytes(size);
        } else if size <= SMALL_FILE {
            let bytes = tokio::fs::read(file).await?;
            on_bytes(bytes.len() as u64);
            self.registry.put_blob_bytes(digest, bytes.into()).await?;
        } else {
            let f = tokio::fs::File::open(file).await?;
            let stream =
                tokio_util::io::ReaderStream::with_capacity(f, READ_CHUNK).inspect(|chunk| {
                    if let Ok(chunk) = chunk {
                        on_bytes(chunk.len() as u64);
                    }
                });
            self.registry.put_blob_stream(digest, stream).await?;
        }
        Ok(())
    }

    /// Small files go in batches: one blocking task reads a batch, one writes it.
    async fn upload_blobs(
        &self,
        blobs: &[BlobSource],
        on_bytes: &(dyn Fn(u64) + Send + Sync),
    ) -> Result<()> {
        let (small, large): (Vec<_>, Vec<_>) = blobs.iter().partition(|b| b.size <= SMALL_FILE);
        let parallelism = std::thread::available_parallelism().map_or(2, |n| n.get());
        let batches: Vec<Vec<BlobSource>> = small
            .chunks(BATCH_FILES)
            .map(|batch| batch.iter().map(|b| (*b).clone()).collect())
            .collect();
        futures::stream::iter(batches.into_iter().map(|jobs| async move {
            let read = tokio::task::spawn_blocking(move || {
                jobs.into_iter()
                    .map(|b| {
                        let bytes = std::fs::read(&b.path)
                            .with_context(|| format!("reading {}", b.path.display()))?;
                        Ok((b.digest, bytes::Bytes::from(bytes)))
                    })
                    .collect::<Result<Vec<_>>>()
            })
            .await??;
            let bytes: u64 = read.iter().map(|(_, b)| b.len() as u64).sum();
            self.registry
                .put_blob_batch(read)
                .await
                .context("a file changed while it was being pushed")?;
            on_bytes(bytes);
            Ok::<_, anyhow::Error>(())
        }))
        .buffer_unordered(parallelism)
        .try_collect::<()>()
        .await?;
        for b in large {
            self.upload_blob(&b.digest, &b.path, b.size, on_bytes)
                .await
                .with_context(|| format!("uploading {}", b.path.display()))?;
        }
        // Copies of files the registry held already.
        self.staged.lock().expect("no panics hold the lock").clear();
        Ok(())
    }

    async fn download_blob(&self, digest: &Sha256Digest) -> Result<Download> {
        let blob = self.registry.read_blob(digest).await?;
        Ok(Download {
            stream: blob.stream,
        })
    }
}
