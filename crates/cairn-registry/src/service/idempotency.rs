//! Keyed writes. A write that carries a client's idempotency key claims it first
//! (`crate::idempotency`); its transaction stores its outcome under the key; a request
//! repeating the key answers that outcome instead of writing again — the same version
//! number, the same alias move — however the first answer was lost (a connection cut,
//! a server killed, a database restarted mid-commit). A key is bound to its principal
//! and to a fingerprint of its request: the same key for another request is refused.

use std::future::Future;
use std::time::Duration;

use cairn_core::Sha256Digest;
use cairn_core::access::Actor;
use cairn_core::api::IdempotencyKey;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::Registry;
use crate::Result;
use crate::db::MetadataStore;
use crate::idempotency::{Claim, Claimed};

/// How long a key is remembered by default once its write is done.
pub const DEFAULT_KEY_TTL: Duration = Duration::from_secs(24 * 60 * 60);

impl Registry {
    /// Runs `write` under `key` (when there is one): `write` receives the claim and
    /// must store its outcome with [`crate::idempotency::complete`] in its own
    /// transaction. A key done
    /// before answers its stored outcome without running `write`; `fingerprint`
    /// describes the request, whose key must not be reused for another.
    pub(crate) async fn keyed<T, F, Fut>(
        &self,
        actor: &Actor,
        key: Option<&IdempotencyKey>,
        fingerprint: impl FnOnce() -> String,
        write: F,
    ) -> Result<T>
    where
        T: DeserializeOwned,
        F: FnOnce(Option<Claim>) -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let Some(key) = key else {
            return write(None).await;
        };
        let claimed = self
            .meta
            .claim_key(&actor.name, key.as_str(), &fingerprint(), self.key_ttl)
            .await?;
        match claimed {
            Claimed::Done(outcome) => serde_json::from_str(&outcome)
                .map_err(|_| crate::db::corrupt_row("outcome of an idempotency key")),
            Claimed::New(claim) => {
                let mut release = ReleaseUnlessDone {
                    meta: self.meta.clone(),
                    claim: Some(claim.clone()),
                };
                let result = write(Some(claim)).await;
                if result.is_ok() {
                    release.claim = None;
                }
                result
            }
        }
    }

    /// Forgets the idempotency keys past their time, and the marks of commits over a
    /// day old (`db::outcome`); answers how many keys.
    pub async fn expire_idempotency_keys(&self) -> Result<u64> {
        self.meta.forget_commit_marks().await?;
        self.meta.expire_keys().await
    }
}

/// A request's fingerprint: the SHA-256 of its operation and its content, as JSON.
pub(crate) fn fingerprint(request: &impl Serialize) -> String {
    let bytes = serde_json::to_vec(request).expect("a request encodes as JSON");
    Sha256Digest::of(&bytes).to_hex()
}

/// Gives a claim back when its write failed or was abandoned (a client gone, its
/// future dropped), so that a retry finds the key free rather than waiting for the
/// lease. A write that committed after all keeps its key: the release only removes a
/// claim without an outcome.
struct ReleaseUnlessDone {
    meta: MetadataStore,
    claim: Option<Claim>,
}

impl Drop for ReleaseUnlessDone {
    fn drop(&mut self) {
        let Some(claim) = self.claim.take() else {
            return;
        };
        let meta = self.meta.clone();
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                if let Err(e) = meta.release_key(&claim).await {
                    tracing::warn!(error = %e, "an idempotency key could not be given back; it frees at its lease");
                }
            });
        }
    }
}
