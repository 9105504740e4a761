//! Idempotency keys on the engine layer (`idempotency_keys`). A keyed write first
//! claims its key in a transaction of its own; then its own transaction stores the
//! write's outcome under the key ([`Claim::complete`]) — only while the claim still
//! holds it — so a key is done exactly when its write committed, on either engine and
//! across servers. A claim that is never completed (the write failed, or its server
//! died) is given back ([`MetadataStore::release_key`]) or runs out at its lease, after
//! which a retry takes the key over; the write that lost its claim cannot complete
//! and rolls back.

use std::time::Duration;

use crate::db::write::WriteTx;
use crate::db::{MetadataStore, now_ms};
use crate::{Error, Result};

/// How long an uncompleted claim holds its key before a retry may take it over: a
/// write whose server died, or whose release was lost with the database, blocks its
/// key (answering 409) for at most this long.
pub(crate) const IN_FLIGHT_LEASE: Duration = Duration::from_secs(15);

/// The key a write holds while in flight.
#[derive(Debug, Clone)]
pub(crate) struct Claim {
    principal: String,
    key: String,
    /// This attempt's random token: what the completion checks it still holds.
    owner: String,
}

/// What claiming a key found.
#[derive(Debug)]
pub(crate) enum Claimed {
    /// The key is this request's now: do the write and complete the claim.
    New(Claim),
    /// The key's write committed before: its outcome, as stored.
    Done(String),
}

impl Claim {
    /// Stores `outcome` (JSON) under the key, inside the write's own transaction.
    /// Fails — and the write must roll back — if a retry has taken the key over.
    pub(crate) async fn complete(&self, tx: &mut WriteTx, outcome: &str) -> Result<()> {
        let stored = tx
            .query(
                "UPDATE idempotency_keys SET outcome = $1
                 WHERE principal = $2 AND key = $3 AND owner = $4 AND outcome IS NULL",
            )
            .bind(outcome)
            .bind(&self.principal)
            .bind(&self.key)
            .bind(&self.owner)
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
/// without a claim).
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
    /// Claims `key` of `principal` for a request whose fingerprint is `fingerprint`,
    /// to be remembered for `ttl` once done. Refuses a key used for another request
    /// ([`Error::KeyReused`]) or held by a request still in flight
    /// ([`Error::KeyInFlight`]).
    pub(crate) async fn claim_key(
        &self,
        principal: &str,
        key: &str,
        fingerprint: &str,
        ttl: Duration,
    ) -> Result<Claimed> {
        let owner = uuid::Uuid::new_v4().simple().to_string();
        let now = now_ms();
        let lease_until = now.saturating_add(IN_FLIGHT_LEASE.as_millis() as i64);
        let expires_at = now.saturating_add(ttl.as_millis().min(i64::MAX as u128) as i64);
        let mut tx = self.write_tx().await?;
        // An expired key is forgotten, whatever it did.
        tx.query(
            "DELETE FROM idempotency_keys WHERE principal = $1 AND key = $2 AND expires_at <= $3",
        )
        .bind(principal)
        .bind(key)
        .bind(now)
        .execute()
        .await?;
        let inserted = tx
            .query(
                "INSERT INTO idempotency_keys
                    (principal, key, fingerprint, owner, created_at, lease_until, expires_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)
                 ON CONFLICT (principal, key) DO NOTHING",
            )
            .bind(principal)
            .bind(key)
            .bind(fingerprint)
            .bind(&owner)
            .bind(now)
            .bind(lease_until)
            .bind(expires_at)
            .execute()
            .await?;
        let claim = Claim {
            principal: principal.to_owned(),
            key: key.to_owned(),
            owner,
        };
        if inserted == 1 {
            tx.commit().await?;
            return Ok(Claimed::New(claim));
        }
        let (stored_fingerprint, holder, outcome, held_until): (
            String,
            String,
            Option<String>,
            i64,
        ) = tx
            .query(
                "SELECT fingerprint, owner, outcome, lease_until FROM idempotency_keys
                 WHERE principal = $1 AND key = $2",
            )
            .bind(principal)
            .bind(key)
            .fetch_one()
            .await?;
        if stored_fingerprint != fingerprint {
            return Err(Error::KeyReused(key.to_owned()));
        }
        if let Some(outcome) = outcome {
            return Ok(Claimed::Done(outcome));
        }
        if held_until > now {
            return Err(Error::KeyInFlight(key.to_owned()));
        }
        // The holder's lease ran out: it died, or lost the database. Taken over here,
        // its write can no longer complete (`Claim::complete` checks the owner).
        let taken = tx
            .query(
                "UPDATE idempotency_keys SET owner = $1, lease_until = $2
                 WHERE principal = $3 AND key = $4 AND owner = $5 AND outcome IS NULL",
            )
            .bind(&claim.owner)
            .bind(lease_until)
            .bind(principal)
            .bind(key)
            .bind(&holder)
            .execute()
            .await?;
        if taken != 1 {
            return Err(Error::KeyInFlight(key.to_owned()));
        }
        tx.commit().await?;
        Ok(Claimed::New(claim))
    }

    /// Gives back a claim whose write did not complete, so that a retry need not wait
    /// for its lease. Nothing if the write committed after all (its key is done).
    pub(crate) async fn release_key(&self, claim: &Claim) -> Result<()> {
        self.write(
            "DELETE FROM idempotency_keys
             WHERE principal = $1 AND key = $2 AND owner = $3 AND outcome IS NULL",
        )
        .bind(&claim.principal)
        .bind(&claim.key)
        .bind(&claim.owner)
        .execute()
        .await
        .map(drop)
    }

    /// Forgets every key past its expiry; answers how many.
    pub(crate) async fn expire_keys(&self) -> Result<u64> {
        self.write("DELETE FROM idempotency_keys WHERE expires_at <= $1")
            .bind(now_ms())
            .execute()
            .await
    }
}
