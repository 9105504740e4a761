//! Users beyond their tokens: a password (for MLflow's Basic auth, stored as an argon2id
//! hash) and grants of their own (what a password login may do; their explicit denies
//! also bind the user's tokens). Every change is audited; no hash ever reaches the log.

use std::collections::HashMap;

use cairn_core::access::{Actor, Authority, Grant};
use cairn_core::auth::{ModelPattern, Role, UserGrant, UserInfo};
use serde_json::json;

use super::{Registry, check_actor, check_user_name};
use crate::audit::{Action, Change};
use crate::db::write::WriteTx;
use crate::db::{corrupt_row, now_ms};
use crate::{Error, Result};

/// `name, password_hash` of `principals`.
type UserRow = (String, Option<String>);
/// `principal, resource, role` of `grants`.
type GrantRow = (String, String, Option<String>);

/// Shortest and longest password accepted, in bytes.
const PASSWORD_MIN: usize = 8;
const PASSWORD_MAX: usize = 1024;

/// What a grant is on, as `grants.resource` keeps it: `''` everything (every model, the
/// registry, every experiment), `models:PATTERN`, `experiment:ID`.
#[derive(Debug, Clone, Copy)]
pub enum GrantOn<'a> {
    Everything,
    Models(&'a ModelPattern),
    Experiment(i64),
}

impl<'a> GrantOn<'a> {
    /// On the models `models` matches, else on `experiment`, else on everything.
    pub fn of(models: Option<&'a ModelPattern>, experiment: Option<i64>) -> Self {
        match (models, experiment) {
            (Some(pattern), _) => Self::Models(pattern),
            (None, Some(id)) => Self::Experiment(id),
            (None, None) => Self::Everything,
        }
    }

    fn key(self) -> String {
        match self {
            Self::Everything => String::new(),
            Self::Models(pattern) => format!("models:{}", pattern.as_str()),
            Self::Experiment(id) => format!("experiment:{id}"),
        }
    }
}

/// A stored resource key read back: (models pattern, experiment).
fn parse_resource(key: &str) -> Result<(Option<String>, Option<i64>)> {
    if key.is_empty() {
        return Ok((None, None));
    }
    if let Some(pattern) = key.strip_prefix("models:") {
        return Ok((Some(pattern.to_owned()), None));
    }
    key.strip_prefix("experiment:")
        .and_then(|id| id.parse().ok())
        .map(|id| (None, Some(id)))
        .ok_or_else(|| corrupt_row("grant resource"))
}

async fn ensure_user(tx: &mut WriteTx, user: &str) -> Result<()> {
    tx.query(
        "INSERT INTO principals (name, kind, created_at) VALUES ($1, 'user', $2)
         ON CONFLICT (name) DO NOTHING",
    )
    .bind(user)
    .bind(now_ms())
    .execute()
    .await?;
    Ok(())
}

fn hash_password(password: &str) -> Result<String> {
    use argon2::password_hash::{PasswordHasher, SaltString};
    use aws_lc_rs::rand::{SecureRandom, SystemRandom};
    let mut random = [0u8; 16];
    SystemRandom::new()
        .fill(&mut random)
        .map_err(|_| Error::InvalidArgument("no randomness available".into()))?;
    let salt = SaltString::encode_b64(&random)
        .map_err(|e| Error::InvalidArgument(format!("cannot salt that password: {e}")))?;
    argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| Error::InvalidArgument(format!("cannot hash that password: {e}")))
}

fn parse_role(role: Option<&str>) -> Result<Option<Role>> {
    role.map(str::parse::<Role>)
        .transpose()
        .map_err(|_| corrupt_row("grant role"))
}

fn grant_of(resource: &str, role: Option<&str>) -> Result<Grant> {
    let (models, experiment) = parse_resource(resource)?;
    Ok(Grant {
        models: models
            .map(|p| ModelPattern::new(&p).map_err(|_| corrupt_row("grant models")))
            .transpose()?,
        experiment,
        role: parse_role(role)?,
    })
}

impl Registry {
    /// Sets `user`'s password (creating the user if new).
    pub async fn set_password(&self, actor: &Actor, user: &str, password: &str) -> Result<()> {
        let actor = check_actor(actor)?;
        check_user_name(user)?;
        if !(PASSWORD_MIN..=PASSWORD_MAX).contains(&password.len()) {
            return Err(Error::InvalidArgument(format!(
                "a password is {PASSWORD_MIN} to {PASSWORD_MAX} bytes long"
            )));
        }
        let password = password.to_owned();
        // Memory-hard on purpose: off the async threads.
        let hash = tokio::task::spawn_blocking(move || hash_password(&password))
            .await
            .map_err(|e| Error::InvalidArgument(format!("hashing failed: {e}")))??;
        let mut tx = self.meta.write_tx().await?;
        ensure_user(&mut tx, user).await?;
        tx.query("UPDATE principals SET password_hash = $2 WHERE name = $1")
            .bind(user)
            .bind(&hash)
            .execute()
            .await?;
        Change::new(actor, Action::UserPassword, "", format!("user:{user}"))
            .append(&mut tx)
            .await?;
        tx.commit().await
    }

    /// Creates `user` with a password; `AlreadyExists` when the name is taken (by a
    /// user or a token's owner).
    pub async fn create_user(&self, actor: &Actor, user: &str, password: &str) -> Result<()> {
        check_user_name(user)?;
        let taken: Option<i64> = self
            .meta
            .read("SELECT 1 FROM principals WHERE name = $1")
            .bind(user)
            .scalar_optional()
            .await?;
        if taken.is_some() {
            return Err(Error::AlreadyExists(format!(
                "User '{user}' already exists."
            )));
        }
        self.set_password(actor, user, password).await
    }

    /// Deletes `user`: its password, grants and tokens (which stop working at once).
    /// `NotFound`-like `InvalidArgument` when there is no such user.
    pub async fn delete_user(&self, actor: &Actor, user: &str) -> Result<()> {
        let actor = check_actor(actor)?;
        let mut tx = self.meta.write_tx().await?;
        tx.query("DELETE FROM grants WHERE principal = $1")
            .bind(user)
            .execute()
            .await?;
        tx.query("DELETE FROM tokens WHERE principal = $1")
            .bind(user)
            .execute()
            .await?;
        let deleted = tx
            .query("DELETE FROM principals WHERE name = $1")
            .bind(user)
            .execute()
            .await?;
        if deleted == 0 {
            return Err(Error::NotFound(crate::Missing::User(user.to_owned())));
        }
        Change::new(actor, Action::UserDelete, "", format!("user:{user}"))
            .append(&mut tx)
            .await?;
        tx.commit().await
    }

    /// Grants `user` `role` on `on`, or with `role` `None` explicitly denies it,
    /// replacing what was granted there before.
    pub async fn grant(
        &self,
        actor: &Actor,
        user: &str,
        on: GrantOn<'_>,
        role: Option<Role>,
    ) -> Result<()> {
        let actor = check_actor(actor)?;
        check_user_name(user)?;
        let resource = on.key();
        let mut tx = self.meta.write_tx().await?;
        ensure_user(&mut tx, user).await?;
        tx.query(
            "INSERT INTO grants (principal, resource, role) VALUES ($1, $2, $3)
             ON CONFLICT (principal, resource) DO UPDATE SET role = excluded.role",
        )
        .bind(user)
        .bind(&resource)
        .bind(role.map(Role::as_str))
        .execute()
        .await?;
        Change::new(actor, Action::UserGrant, "", format!("user:{user}"))
            .after(json!({ "on": resource, "role": role.map(Role::as_str) }))
            .append(&mut tx)
            .await?;
        tx.commit().await
    }

    /// Removes `user`'s grant (or deny) on `on`. `false` when there was none.
    pub async fn revoke_grant(&self, actor: &Actor, user: &str, on: GrantOn<'_>) -> Result<bool> {
        let actor = check_actor(actor)?;
        let resource = on.key();
        let mut tx = self.meta.write_tx().await?;
        let removed = tx
            .query("DELETE FROM grants WHERE principal = $1 AND resource = $2")
            .bind(user)
            .bind(&resource)
            .execute()
            .await?;
        if removed == 0 {
            return Ok(false);
        }
        Change::new(actor, Action::UserRevoke, "", format!("user:{user}"))
            .before(json!({ "on": resource }))
            .append(&mut tx)
            .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Every user with a password or a grant, or a token, by name.
    pub async fn list_users(&self) -> Result<Vec<UserInfo>> {
        self.users(None).await
    }

    /// User `name`, if there is one.
    pub async fn user(&self, name: &str) -> Result<Option<UserInfo>> {
        Ok(self.users(Some(name)).await?.pop())
    }

    /// Every user, or only `only`, with their grants.
    async fn users(&self, only: Option<&str>) -> Result<Vec<UserInfo>> {
        let (users, grants): (Vec<UserRow>, Vec<GrantRow>) =
            match only {
                Some(name) => (
                    self.meta
                        .read("SELECT name, password_hash FROM principals WHERE name = $1")
                        .bind(name)
                        .fetch_all()
                        .await?,
                    self.meta
                        .read("SELECT principal, resource, role FROM grants WHERE principal = $1 ORDER BY resource")
                        .bind(name)
                        .fetch_all()
                        .await?,
                ),
                None => (
                    self.meta
                        .read("SELECT name, password_hash FROM principals ORDER BY name")
                        .fetch_all()
                        .await?,
                    self.meta
                        .read("SELECT principal, resource, role FROM grants ORDER BY principal, resource")
                        .fetch_all()
                        .await?,
                ),
            };
        let mut by_user: HashMap<String, Vec<UserGrant>> = HashMap::new();
        for (user, resource, role) in grants {
            let (models, experiment) = parse_resource(&resource)?;
            by_user.entry(user).or_default().push(UserGrant {
                models,
                experiment,
                role: parse_role(role.as_deref())?,
            });
        }
        Ok(users
            .into_iter()
            .map(|(name, hash)| UserInfo {
                grants: by_user.remove(&name).unwrap_or_default(),
                name,
                has_password: hash.is_some(),
            })
            .collect())
    }

    /// `user`'s own grants (with its explicit denies).
    pub async fn user_grants(&self, user: &str) -> Result<Vec<Grant>> {
        let rows: Vec<(String, Option<String>)> = self
            .meta
            .read("SELECT resource, role FROM grants WHERE principal = $1")
            .bind(user)
            .fetch_all()
            .await?;
        rows.iter()
            .map(|(resource, role)| grant_of(resource, role.as_deref()))
            .collect()
    }

    /// Who `user` and `password` speak for; `None` when the user has no password or
    /// another one. The argon2 check runs off the async threads.
    pub async fn authenticate_password(&self, user: &str, password: &str) -> Result<Option<Actor>> {
        let hash: Option<Option<String>> = self
            .meta
            .read("SELECT password_hash FROM principals WHERE name = $1")
            .bind(user)
            .scalar_optional()
            .await?;
        let Some(Some(hash)) = hash else {
            return Ok(None);
        };
        let password = password.to_owned();
        let valid = tokio::task::spawn_blocking(move || {
            use argon2::password_hash::{PasswordHash, PasswordVerifier};
            PasswordHash::new(&hash).is_ok_and(|parsed| {
                argon2::Argon2::default()
                    .verify_password(password.as_bytes(), &parsed)
                    .is_ok()
            })
        })
        .await
        .unwrap_or(false);
        if !valid {
            return Ok(None);
        }
        Ok(Some(Actor {
            name: user.to_owned(),
            token: None,
            authority: Authority::Grants(self.user_grants(user).await?),
        }))
    }
}
