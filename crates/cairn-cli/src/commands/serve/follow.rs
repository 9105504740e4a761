//! Following a reference: resolve it, fetch and verify the version, load it, swap it
//! in — then wait for the registry to change and do it again when the reference
//! points elsewhere.
//!
//! Changes are learnt by waiting on the registry's audit head (`wait_for_change`): in
//! embedded mode one shared read of a one-row table five times a second, in remote
//! mode a long-poll the server answers as soon as any server of the registry commits
//! a change. Nothing polls in a hot loop.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use cairn_core::{ModelVersionRef, Version};
use cairn_serve::deployment::{Deployment, Loaded, Route};
use cairn_serve::model::OnnxModel;
use cairn_serve::runtime::Runtime;
use cairn_serve::servable;

use super::cache::BlobCache;
use super::moves;
use crate::client::RegistryClient;
use crate::commands::pull::verified_manifest;

/// How long one wait for a change lasts before it is renewed.
const WAIT: Duration = Duration::from_secs(25);
/// A version that failed to load is tried again after this, if still pointed at (a
/// download may fail for a moment; a corrupt file will fail again, but rarely).
const RETRY_FAILED: Duration = Duration::from_secs(30);
/// After an error reaching the registry, the next attempt waits this long.
const REGISTRY_BACKOFF: Duration = Duration::from_secs(1);

/// What every follower of a serving process shares.
pub struct Loader<'a> {
    pub registry: &'a dyn RegistryClient,
    pub cache: &'a BlobCache,
    pub runtime: &'a Runtime,
    pub deployment: &'a Arc<Deployment>,
    /// onnxruntime sessions per loaded version.
    pub sessions: usize,
}

pub struct Follower<'a> {
    loader: &'a Loader<'a>,
    reference: ModelVersionRef,
    candidate: bool,
    /// The audit head's number when the reference was last resolved.
    seen: Option<u64>,
    /// The version (number, digest) that failed last, and when.
    failed: Option<((u64, String), Instant)>,
}

impl<'a> Follower<'a> {
    pub fn new(loader: &'a Loader<'a>, reference: ModelVersionRef, candidate: bool) -> Self {
        Self {
            loader,
            reference,
            candidate,
            seen: None,
            failed: None,
        }
    }

    pub fn is_candidate(&self) -> bool {
        self.candidate
    }

    /// Whether the reference can move (an alias, `latest`).
    pub fn follows(&self) -> bool {
        moves(&self.reference.version)
    }

    fn route(&self) -> &'a Route {
        let deployment: &'a Deployment = self.loader.deployment;
        match (&deployment.split, self.candidate) {
            (Some((route, _)), true) => route,
            _ => &deployment.primary,
        }
    }

    /// The first load: the reference resolved and its version served, or the error.
    pub async fn start(&mut self) -> Result<()> {
        self.seen = Some(
            self.loader
                .registry
                .wait_for_change(&self.reference.model, None, WAIT)
                .await?,
        );
        let version = self.resolve().await?;
        let loaded = self.load_and_install(&version).await;
        if let Err(e) = &loaded {
            self.record_failure(&version, e);
        }
        loaded
    }

    /// `version` failed to fetch, verify or load: /health and /metrics say so, and it is
    /// not tried again before [`RETRY_FAILED`].
    fn record_failure(&mut self, version: &Version, error: &anyhow::Error) {
        self.loader.deployment.failed(
            self.route(),
            format!("{}@{}", version.model, version.version),
            format!("{error:#}"),
        );
        self.failed = Some(((version.version, digest_text(version)), Instant::now()));
    }

    /// Follows the reference until the process ends.
    pub async fn follow(&mut self) {
        loop {
            let head = match self
                .loader
                .registry
                .wait_for_change(&self.reference.model, self.seen, WAIT)
                .await
            {
                Ok(head) => head,
                Err(e) => {
                    tracing::warn!(reference = %self.reference, error = %format!("{e:#}"), "waiting for registry changes failed; trying again");
                    tokio::time::sleep(REGISTRY_BACKOFF).await;
                    continue;
                }
            };
            let changed = Some(head) != self.seen;
            let retry = self
                .failed
                .as_ref()
                .is_some_and(|(_, at)| at.elapsed() >= RETRY_FAILED);
            if !changed && !retry {
                continue;
            }
            match self.resolve().await {
                Ok(version) => {
                    self.seen = Some(head);
                    self.switch_to(&version).await;
                }
                Err(e) => {
                    // A deleted alias, a registry out of reach: what serves keeps
                    // serving, and /health says why it may be stale.
                    self.loader.deployment.failed(
                        self.route(),
                        self.reference.to_string(),
                        format!("{e:#}"),
                    );
                    tokio::time::sleep(REGISTRY_BACKOFF).await;
                }
            }
        }
    }

    async fn resolve(&self) -> Result<Version> {
        self.loader
            .registry
            .get_version(&self.reference.model, &self.reference.version)
            .await
            .with_context(|| format!("resolving {}", self.reference))
    }

    /// Serves `version` unless it serves already, or failed a moment ago.
    async fn switch_to(&mut self, version: &Version) {
        let key = (version.version, digest_text(version));
        let route = self.route();
        if route
            .current()
            .is_some_and(|l| (l.number, l.digest.clone()) == key)
        {
            // Back on what serves (a rollback past a version that failed): the failure
            // is no longer the reference's state.
            self.loader.deployment.clear_failure(route);
            self.failed = None;
            return;
        }
        if let Some((failed, at)) = &self.failed
            && *failed == key
            && at.elapsed() < RETRY_FAILED
        {
            return;
        }
        if let Err(e) = self.load_and_install(version).await {
            self.record_failure(version, &e);
        }
    }

    /// Fetches, verifies and loads `version` beside what serves now, then swaps it in.
    async fn load_and_install(&mut self, version: &Version) -> Result<()> {
        let started = Instant::now();
        let label = format!("{}@{}", version.model, version.version);
        let (digest, manifest) = verified_manifest(version, "it is not served")?;
        let assembled = self
            .loader
            .cache
            .assemble(self.loader.registry, &manifest)
            .await
            .with_context(|| format!("fetching {label}"))?;
        let files: Vec<String> = manifest.files().iter().map(|f| f.path.clone()).collect();
        let found = servable::find(&assembled.dir, &files)
            .map_err(|e| anyhow::anyhow!("{label} cannot be served: {e}"))?;
        let (runtime, sessions) = (self.loader.runtime.clone(), self.loader.sessions);
        let path = servable::onnx_path(&assembled.dir, &found);
        let shown = format!("{label}: {}", found.onnx);
        // onnxruntime reads and optimizes the graph: seconds of CPU for a large model,
        // kept off the threads answering requests.
        let model =
            tokio::task::spawn_blocking(move || OnnxModel::load(&runtime, &path, &shown, sessions))
                .await
                .context("the loading task failed")??;
        let downloaded = assembled.downloaded;
        drop(assembled);
        tracing::info!(version = %label, downloaded_bytes = downloaded, "loaded");
        self.loader.deployment.install(
            self.route(),
            Loaded {
                model_name: version.model.to_string(),
                number: version.version,
                digest: digest.prefixed(),
                model,
                signature: found.signature,
                load_time: started.elapsed(),
            },
        );
        self.failed = None;
        Ok(())
    }
}

fn digest_text(version: &Version) -> String {
    version.digest.map(|d| d.prefixed()).unwrap_or_default()
}
