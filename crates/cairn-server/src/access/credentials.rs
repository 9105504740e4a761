//! Credentials as clients send them, and who they speak for. The native API and the CLI
//! send `Authorization: Bearer TOKEN`; the `mlflow` client sends the same from
//! `MLFLOW_TRACKING_TOKEN`, or `Authorization: Basic` from `MLFLOW_TRACKING_USERNAME` /
//! `MLFLOW_TRACKING_PASSWORD`, the password being one of that user's tokens or the
//! user's password (argon2id: memory-hard, so at most [`PASSWORD_CHECKS`] run at once).
//!
//! A verified credential is remembered for at most [`CACHE_TTL`], keyed by a SHA-256 of
//! the secret (never the secret itself): a revoked or expired token stops working within
//! that time on every server, without a database read or a memory-hard hash on every
//! request.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use base64::Engine;
use cairn_core::Sha256Digest;
use cairn_core::access::Actor;
use cairn_core::auth::token_id;
use cairn_registry::Registry;

/// How long a verified (or refused) credential is trusted without asking the database.
pub const CACHE_TTL: Duration = Duration::from_secs(1);

/// Password checks running at once (each takes argon2's 19 MiB for a few milliseconds);
/// more wait their turn.
const PASSWORD_CHECKS: usize = 2;

/// Most credentials remembered at once; past it the cache starts over (a flood of
/// random secrets must not grow memory).
const CACHE_MAX: usize = 10_000;

/// What a request presents.
#[derive(Debug, PartialEq, Eq)]
pub enum Credential {
    /// A token, from `Bearer`.
    Token(String),
    /// A user name and a password (a token of that user), from `Basic`.
    Password { user: String, password: String },
}

/// Why a request is not authenticated.
#[derive(Debug, PartialEq, Eq)]
pub enum Unauthenticated {
    /// No `Authorization` header.
    Missing,
    /// A header of another scheme, or not decodable.
    Malformed,
    /// Credentials that name no valid token (unknown, revoked, expired, or another
    /// user's).
    Invalid,
}

impl Unauthenticated {
    /// What the caller is told.
    pub fn message(&self) -> &'static str {
        match self {
            Self::Missing => {
                "authentication required: send a token as 'Authorization: Bearer TOKEN' \
                 (CAIRN_TOKEN for the CLI, MLFLOW_TRACKING_TOKEN for mlflow)"
            }
            Self::Malformed => {
                "unreadable credentials: send 'Authorization: Bearer TOKEN', or Basic with \
                 a user name and its password or one of its tokens"
            }
            Self::Invalid => "the token is unknown, revoked or expired, or the password is wrong",
        }
    }
}

/// Reads the `Authorization` header.
pub fn credential(headers: &HeaderMap) -> Result<Credential, Unauthenticated> {
    let value = headers
        .get(AUTHORIZATION)
        .ok_or(Unauthenticated::Missing)?
        .to_str()
        .map_err(|_| Unauthenticated::Malformed)?;
    let (scheme, rest) = value.split_once(' ').ok_or(Unauthenticated::Malformed)?;
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("bearer") {
        return Ok(Credential::Token(rest.to_owned()));
    }
    if scheme.eq_ignore_ascii_case("basic") {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(rest)
            .map_err(|_| Unauthenticated::Malformed)?;
        let text = String::from_utf8(decoded).map_err(|_| Unauthenticated::Malformed)?;
        let (user, password) = text.split_once(':').ok_or(Unauthenticated::Malformed)?;
        return Ok(Credential::Password {
            user: user.to_owned(),
            password: password.to_owned(),
        });
    }
    Err(Unauthenticated::Malformed)
}

/// Verified credentials, each for at most [`CACHE_TTL`].
pub struct CredentialCache {
    entries: Mutex<HashMap<Sha256Digest, (Instant, Option<Actor>)>>,
    password_checks: tokio::sync::Semaphore,
}

impl Default for CredentialCache {
    fn default() -> Self {
        Self {
            entries: Mutex::default(),
            password_checks: tokio::sync::Semaphore::new(PASSWORD_CHECKS),
        }
    }
}

impl CredentialCache {
    /// Who `credential` speaks for, from the cache or the registry.
    pub async fn actor(
        &self,
        registry: &Registry,
        credential: &Credential,
    ) -> Result<Actor, Unauthenticated> {
        let key = match credential {
            Credential::Token(secret) => Sha256Digest::of(secret.as_bytes()),
            Credential::Password { user, password } => {
                Sha256Digest::of(format!("{}\0{user}\0{password}", user.len()).as_bytes())
            }
        };
        if let Some(known) = self.lookup(&key) {
            return known.ok_or(Unauthenticated::Invalid);
        }
        let found = match credential {
            Credential::Token(secret) => registry.authenticate(secret).await,
            // A token as the password: it must be the user's own.
            Credential::Password { user, password } if token_id(password).is_some() => registry
                .authenticate(password)
                .await
                .map(|actor| actor.filter(|a| a.name == *user)),
            Credential::Password { user, password } => {
                let _turn = self.password_checks.acquire().await;
                registry.authenticate_password(user, password).await
            }
        }
        .map_err(|e| {
            // The database did not answer: refuse, and remember nothing.
            tracing::warn!(error = %e, "could not verify a credential");
            Unauthenticated::Invalid
        })?;
        self.remember(key, found.clone());
        found.ok_or(Unauthenticated::Invalid)
    }

    fn lookup(&self, key: &Sha256Digest) -> Option<Option<Actor>> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let (at, actor) = entries.get(key)?;
        (at.elapsed() < CACHE_TTL).then(|| actor.clone())
    }

    fn remember(&self, key: Sha256Digest, actor: Option<Actor>) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= CACHE_MAX {
            entries.retain(|_, (at, _)| at.elapsed() < CACHE_TTL);
            if entries.len() >= CACHE_MAX {
                entries.clear();
            }
        }
        entries.insert(key, (Instant::now(), actor));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn with(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(AUTHORIZATION, HeaderValue::from_str(value).unwrap());
        h
    }

    #[test]
    fn reads_bearer_and_basic_and_refuses_the_rest() {
        assert_eq!(credential(&HeaderMap::new()), Err(Unauthenticated::Missing));
        assert_eq!(
            credential(&with("Bearer cairn_x")),
            Ok(Credential::Token("cairn_x".into()))
        );
        // "alice:pa:ss": the password may hold a colon, the user may not.
        assert_eq!(
            credential(&with("Basic YWxpY2U6cGE6c3M=")),
            Ok(Credential::Password {
                user: "alice".into(),
                password: "pa:ss".into()
            })
        );
        for bad in ["Basic !!!", "Basic YWxpY2U=", "Digest x", "Bearer"] {
            assert_eq!(
                credential(&with(bad)),
                Err(Unauthenticated::Malformed),
                "{bad}"
            );
        }
    }
}
