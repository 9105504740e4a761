//! Keyed writes. A write that carries a client's idempotency key stores the key with
//! its outcome in its own transaction (`crate::idempotency`); a request repeating the
//! key answers that outcome instead of writing again — the same version number, the
//! same alias move — however the first answer was lost (a connection cut, a server
//! killed, a database restarted mid-commit). A repeat that arrives while the first is
//! still running runs too, and the first of them to commit wins: the other rolls back
//! and answers the winner's outcome. A key is bound to its principal and to a
//! fingerprint of its request: the same key for another request is refused.

use std::future::Future;
use std::time::Duration;

use cairn_core::Sha256Digest;
use cairn_core::access::Actor;
use cairn_core::api::IdempotencyKey;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::Registry;
use crate::idempotency::Claim;
use crate::{Error, Result};

/// How long a key is remembered by default once its write is done.
pub const DEFAULT_KEY_TTL: Duration = Duration::from_secs(24 * 60 * 60);

impl Registry {
    /// Runs `write` under `key` (when there is one): `write` receives the claim and
    /// must store its outcome with [`crate::idempotency::complete`] in its own
    /// transaction. A key done before answers its stored outcome without running
    /// `write`; `fingerprint` describes the request, whose key must not be reused for
    /// another.
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
        let fingerprint = fingerprint();
        let done = || {
            self.meta
                .key_outcome(&actor.name, key.as_str(), &fingerprint)
        };
        if let Some(outcome) = done().await? {
            return decode(&outcome);
        }
        let claim = Claim::new(&actor.name, key.as_str(), fingerprint.clone(), self.key_ttl);
        match write(Some(claim)).await {
            // A request with this key committed while this one ran: its outcome.
            Err(Error::KeyInFlight(_)) => match done().await? {
                Some(outcome) => decode(&outcome),
                None => Err(Error::KeyInFlight(key.as_str().to_owned())),
            },
            result => result,
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

/// A stored outcome, as the write answered it.
fn decode<T: DeserializeOwned>(outcome: &str) -> Result<T> {
    serde_json::from_str(outcome)
        .map_err(|_| crate::db::corrupt_row("outcome of an idempotency key"))
}
