//! Identities and API tokens: create (making the user if needed), list (never the
//! secret), revoke, and authenticate a secret. Creating and revoking are changes like
//! any other: recorded in the audit log in their own transaction.

use aws_lc_rs::constant_time::verify_slices_are_equal;
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use cairn_core::Sha256Digest;
use cairn_core::access::{Actor, Authority, Grant};
use cairn_core::auth::{ModelPattern, Role, TOKEN_PREFIX, TokenInfo, token_id};
use serde_json::json;

use super::{Registry, check_actor, check_user_name};
use crate::audit::{Action, Change};
use crate::db::sql::{Columns, Decode, DecodeError, decoded_row};
use crate::db::{corrupt_row, now_ms, time_of};
use crate::{Error, Result};

/// A token to create.
#[derive(Debug, Clone)]
pub struct NewToken {
    pub user: String,
    pub name: String,
    pub role: Role,
    pub models: Option<ModelPattern>,
    /// Seconds from now; `None`: it does not expire.
    pub lifetime: Option<i64>,
}

/// `id, principal, name, role, models, created_at, expires_at, revoked_at, secret_sha256`.
struct TokenRow {
    id: String,
    user: String,
    name: String,
    role: String,
    models: Option<String>,
    created_at: i64,
    expires_at: Option<i64>,
    revoked_at: Option<i64>,
    secret_sha256: String,
}

const TOKEN_COLUMNS: &str =
    "id, principal, name, role, models, created_at, expires_at, revoked_at, secret_sha256";

impl Decode for TokenRow {
    fn decode(c: &mut Columns<'_>) -> std::result::Result<Self, DecodeError> {
        Ok(Self {
            id: c.next()?,
            user: c.next()?,
            name: c.next()?,
            role: c.next()?,
            models: c.next()?,
            created_at: c.next()?,
            expires_at: c.next()?,
            revoked_at: c.next()?,
            secret_sha256: c.next()?,
        })
    }
}
decoded_row!(TokenRow);

impl TokenRow {
    fn info(&self) -> Result<TokenInfo> {
        Ok(TokenInfo {
            id: self.id.clone(),
            user: self.user.clone(),
            name: self.name.clone(),
            role: self.role.parse().map_err(|_| corrupt_row("token role"))?,
            models: self.models.clone(),
            created_at: time_of(self.created_at),
            expires_at: self.expires_at.map(time_of),
            revoked_at: self.revoked_at.map(time_of),
        })
    }
}

fn sha256_hex(secret: &str) -> String {
    Sha256Digest::of(secret.as_bytes()).to_hex()
}

impl Registry {
    /// Creates a token for `new.user` (creating the user if it does not exist) and
    /// answers it with its secret — the only time the secret is ever seen.
    pub async fn create_token(&self, actor: &Actor, new: &NewToken) -> Result<(TokenInfo, String)> {
        let actor = check_actor(actor)?;
        check_user_name(&new.user)?;
        if new.name.len() > 256 {
            return Err(Error::InvalidArgument(
                "a token name is at most 256 bytes".into(),
            ));
        }
        let random = SystemRandom::new();
        let mut bytes = [0u8; 38];
        random
            .fill(&mut bytes)
            .map_err(|_| Error::InvalidArgument("no randomness available".into()))?;
        let id = hex::encode(&bytes[..6]);
        let secret = format!("{TOKEN_PREFIX}{id}_{}", hex::encode(&bytes[6..]));
        let now = now_ms();
        let expires_at = match new.lifetime {
            Some(seconds) => Some(
                seconds
                    .checked_mul(1000)
                    .and_then(|ms| now.checked_add(ms))
                    .ok_or_else(|| Error::InvalidArgument("that lifetime is too long".into()))?,
            ),
            None => None,
        };
        let models = new.models.as_ref().map(|p| p.as_str().to_owned());
        let mut tx = self.meta.write_tx().await?;
        tx.query(
            "INSERT INTO principals (name, kind, created_at) VALUES ($1, 'user', $2)
             ON CONFLICT (name) DO NOTHING",
        )
        .bind(&new.user)
        .bind(now)
        .execute()
        .await?;
        tx.query(
            "INSERT INTO tokens (id, principal, name, role, models, secret_sha256, created_at, expires_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&id)
        .bind(&new.user)
        .bind(&new.name)
        .bind(new.role.as_str())
        .bind(&models)
        .bind(sha256_hex(&secret))
        .bind(now)
        .bind(expires_at)
        .execute()
        .await?;
        Change::new(actor, Action::TokenCreate, "", format!("token:{id}"))
            .after(json!({
                "user": new.user, "name": new.name, "role": new.role.as_str(),
                "models": models, "expires_at": expires_at,
            }))
            .append(&mut tx)
            .await?;
        tx.commit().await?;
        let info = TokenInfo {
            id,
            user: new.user.clone(),
            name: new.name.clone(),
            role: new.role,
            models,
            created_at: time_of(now),
            expires_at: expires_at.map(time_of),
            revoked_at: None,
        };
        Ok((info, secret))
    }

    /// Every token, oldest first, without secrets.
    pub async fn list_tokens(&self) -> Result<Vec<TokenInfo>> {
        let rows: Vec<TokenRow> = self
            .meta
            .read(&format!(
                "SELECT {TOKEN_COLUMNS} FROM tokens ORDER BY created_at, id"
            ))
            .fetch_all()
            .await?;
        rows.iter().map(TokenRow::info).collect()
    }

    /// Revokes token `id`: it authenticates nothing from then on. Revoking a revoked
    /// token changes nothing.
    pub async fn revoke_token(&self, actor: &Actor, id: &str) -> Result<TokenInfo> {
        let actor = check_actor(actor)?;
        let now = now_ms();
        let mut tx = self.meta.write_tx().await?;
        let revoked = tx
            .query("UPDATE tokens SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL")
            .bind(id)
            .bind(now)
            .execute()
            .await?;
        if revoked == 1 {
            Change::new(actor, Action::TokenRevoke, "", format!("token:{id}"))
                .append(&mut tx)
                .await?;
            tx.commit().await?;
        }
        self.token(id)
            .await?
            .ok_or_else(|| Error::InvalidArgument(format!("no token {id:?}")))?
            .info()
    }

    /// The record of token `id`.
    async fn token(&self, id: &str) -> Result<Option<TokenRow>> {
        self.meta
            .read(&format!("SELECT {TOKEN_COLUMNS} FROM tokens WHERE id = $1"))
            .bind(id)
            .fetch_optional()
            .await
    }

    /// Who `secret` speaks for, with what the token grants; `None` for a secret that is
    /// malformed, unknown, revoked or expired. The stored hash is compared in constant
    /// time.
    pub async fn authenticate(&self, secret: &str) -> Result<Option<Actor>> {
        let Some(id) = token_id(secret) else {
            return Ok(None);
        };
        let Some(row) = self.token(id).await? else {
            return Ok(None);
        };
        let hash = sha256_hex(secret);
        let valid = verify_slices_are_equal(hash.as_bytes(), row.secret_sha256.as_bytes()).is_ok()
            && row.revoked_at.is_none()
            && row.expires_at.is_none_or(|at| at > now_ms());
        if !valid {
            return Ok(None);
        }
        let info = row.info()?;
        let models = match &info.models {
            Some(p) => Some(ModelPattern::new(p).map_err(|_| corrupt_row("token models"))?),
            None => None,
        };
        // The token's grant, bound by its user's explicit denies.
        let mut grants = vec![Grant {
            models,
            experiment: None,
            role: Some(info.role),
        }];
        let user_grants = self.user_grants(&info.user).await?;
        grants.extend(user_grants.into_iter().filter(|g| g.role.is_none()));
        Ok(Some(Actor {
            name: info.user,
            token: Some(info.id),
            authority: Authority::Grants(grants),
        }))
    }
}
