//! Idempotency keys on the engine layer (`idempotency_keys`). A keyed write stores its
//! key with its outcome in its own transaction ([`Claim::complete`]), under the unique
//! (principal, key): the key is there exactly when the write committed, on either engine
//! and across servers. Two writes racing with one key cannot both commit — on
//! PostgreSQL the second's insert waits for the first's transaction, then finds the key
//! taken; SQLite runs one write at a time — and the loser rolls back and answers the
//! winner's outcome. Nothing is written before the write's transaction, so a request
//! that died leaves its key free for its retry at once.

use std::time::Duration;

use crate::db::write::WriteTx;
use crate::db::{MetadataStore, now_ms};
use crate::{Error, Result};

/// The key a write stores with its outcome.
#[derive(Debug, Clone)]
pub(crate) struct Claim {
    principal: String,
    key: String,
    fingerprint: String,
    /// How long the key is remembered once stored.
    ttl: Duration,
}

impl Claim {
    pub(crate) fn new(principal: &str, key: &str, fingerprint: String, ttl: Duration) -> Self {
        Self {
            principal: principal.to_owned(),
            key: key.to_owned(),
            fingerprint,
            ttl,
        }
    }

    /// Stores the key with `outcome` (JSON) inside the write's own transaction. Fails
    /// with [`Error::KeyInFlight`] — and the write must roll back — when another
    /// request with this key committed first (an expired key is replaced).
    pub(crate) async fn complete(&self, tx: &mut WriteTx, outcome: &str) -> Result<()> {
        let now = now_ms();
        let expires_at = now.saturating_add(self.ttl.as_millis().min(i64::MAX as u128) as i64);
        let stored = tx
            .query(
                "INSERT INTO idempotency_keys (principal, key, fingerprint, outcome, created_at, expires_at)
                 VALUES ($1, $2, $3, $4, $5, $6)
                 ON CONFLICT (principal, key) DO UPDATE
                    SET fingerprint = excluded.fingerprint, outcome = excluded.outcome,
                        created_at = excluded.created_at, expires_at = excluded.expires_at
                    WHERE idempotency_keys.expires_at <= excluded.created_at",
            )
            .bind(&self.principal)
            .bind(&self.key)
            .bind(&self.fingerprint)
            .bind(outcome)
            .bind(now)
            .bind(expires_at)
            .execute()
            .await?;
        if stored == 1 {
            Ok(())
        } else {
            Err(Error::KeyInFlight(self.key.clone()))
        }
    }
}

/// Stores `outcome` under `claim` in `tx`, the write's own transaction (nothing
/// without a claim). Call it last before committing.
pub(crate) async fn complete<T: serde::Serialize>(
    claim: Option<&Claim>,
    tx: &mut WriteTx,
    outcome: &T,
) -> Result<()> {
    match claim {
        Some(claim) => {
            let outcome = serde_json::to_string(outcome).expect("an outcome encodes as JSON");
            claim.complete(tx, &outcome).await
        }
        None => Ok(()),
    }
}

impl MetadataStore {
    /// The stored outcome of `key` of `principal`, if its write committed and the key
    /// has not expired; [`Error::KeyReused`] if it was stored for another request than
    /// the one `fingerprint` describes.
    pub(crate) async fn key_outcome(
        &self,
        principal: &str,
        key: &str,
        fingerprint: &str,
    ) -> Result<Option<String>> {
        let stored: Option<(String, String)> = self
            .read(
                "SELECT fingerprint, outcome FROM idempotency_keys
                 WHERE principal = $1 AND key = $2 AND expires_at > $3",
            )
            .bind(principal)
            .bind(key)
            .bind(now_ms())
            .fetch_optional()
            .await?;
        match stored {
            Some((stored, _)) if stored != fingerprint => Err(Error::KeyReused(key.to_owned())),
            Some((_, outcome)) => Ok(Some(outcome)),
            None => Ok(None),
        }
    }

    /// Forgets every key past its expiry; answers how many.
    pub(crate) async fn expire_keys(&self) -> Result<u64> {
        self.write("DELETE FROM idempotency_keys WHERE expires_at <= $1")
            .bind(now_ms())
            .execute()
            .await
    }
}
