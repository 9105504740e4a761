//! Webhooks: registry-wide subscriptions to events, delivered at least once, in order
//! per model, by whichever server runs (docs/WEBHOOKS.md).
//!
//! There is no second record of what happened: deliveries are made from the audit log
//! (each webhook reads it from its own cursor), so a change and its event commit
//! together and the write that caused an event does no more work for it. `dispatch`
//! is the loop that sends; `queue` its rows (cursors, leases, the delivery log with
//! the pending retries); `delivered` the compact record of first-attempt successes;
//! `send` one HTTP attempt; `store` the webhooks' rows and the log read back; `secrets`
//! keeps signing secrets encrypted.

use std::time::Duration;

use cairn_core::access::{Actor, Need, Scope, authorize};
use cairn_core::api::IdempotencyKey;
use cairn_core::auth::{ModelPattern, Role};
use cairn_core::event::{Event, SCHEMA};
use cairn_core::webhook::{
    self, Delivery, DeliveryState, NewWebhook, Protocol, TestResult, Webhook, WebhookUpdate,
};

use crate::db::now_ms;
use crate::idempotency::complete;
use crate::service::Registry;
use crate::service::idempotency::fingerprint;
use crate::{Error, Result};

mod delivered;
mod dispatch;
mod queue;
pub mod secrets;
pub mod send;
pub(crate) mod store;

pub use secrets::SecretKey;
use store::WebhookRow;

/// How the registry treats webhooks; set by the process that opens it.
#[derive(Debug, Clone)]
pub struct WebhookConfig {
    /// Encrypts and decrypts signing secrets; without it, webhooks with secrets can be
    /// neither created nor delivered.
    pub key: KeySource,
    /// Allow `http` URLs and non-public addresses (internal networks, tests).
    pub allow_private: bool,
    /// How long a delivery is retried before it is marked failed.
    pub retry_for: Duration,
}

/// Where the secrets' key comes from.
#[derive(Debug, Clone, Default)]
pub enum KeySource {
    #[default]
    Missing,
    Given(SecretKey),
    /// Loaded (or created) on first use by [`SecretKey::load`]: a process that never
    /// touches a webhook leaves no key file behind.
    Load {
        env: Option<String>,
        dir: std::path::PathBuf,
        loaded: std::sync::OnceLock<SecretKey>,
    },
}

impl KeySource {
    pub fn get(&self) -> Result<SecretKey> {
        match self {
            Self::Missing => Err(Error::Conflict(
                "no webhook secret key is configured on this registry".to_owned(),
            )),
            Self::Given(key) => Ok(key.clone()),
            Self::Load { env, dir, loaded } => {
                if let Some(key) = loaded.get() {
                    return Ok(key.clone());
                }
                let key = SecretKey::load(env.as_deref(), dir)?;
                Ok(loaded.get_or_init(|| key).clone())
            }
        }
    }
}

impl Default for WebhookConfig {
    fn default() -> Self {
        Self {
            key: KeySource::Missing,
            allow_private: false,
            retry_for: DEFAULT_RETRY_FOR,
        }
    }
}

pub const DEFAULT_RETRY_FOR: Duration = Duration::from_secs(24 * 60 * 60);

/// Most deliveries one listing answers.
pub const DELIVERIES_MAX: u32 = 1000;

impl Registry {
    /// Registers a webhook (registry admins only). It gets the events committed after it.
    pub async fn create_webhook(&self, actor: &Actor, new: &NewWebhook) -> Result<Webhook> {
        self.create_webhook_keyed(actor, new, None).await
    }

    /// [`Registry::create_webhook`] under a client's idempotency key (when there is
    /// one): the key sent again answers the webhook it created, not a second one. The
    /// request's fingerprint leaves the secret out (it is never stored in the clear).
    pub async fn create_webhook_keyed(
        &self,
        actor: &Actor,
        new: &NewWebhook,
        key: Option<&IdempotencyKey>,
    ) -> Result<Webhook> {
        let actor = admin(actor)?;
        let url = self.check_webhook_url(&new.url).await?;
        let name = match &new.name {
            Some(name) => name.clone(),
            None => webhook::default_name(&url),
        };
        webhook::check_name(&name)?;
        webhook::check_description(&new.description)?;
        webhook::check_events(new.protocol, &new.events)?;
        let models = new.models.clone().unwrap_or_else(|| "*".to_owned());
        ModelPattern::new(&models)?;
        let (secret, secret_key) = self.seal_secret(new.protocol, new.secret.as_deref())?;
        let now = now_ms();
        let row = WebhookRow {
            id: uuid::Uuid::new_v4().to_string(),
            name,
            description: new.description.clone(),
            url: new.url.clone(),
            protocol: new.protocol.as_str().to_owned(),
            events: serde_json::to_string(&new.events).expect("strings encode"),
            models,
            secret,
            secret_key,
            active: i64::from(new.active),
            cursor_seq: 0,
            created_by: actor.name.clone(),
            created_at: now,
            updated_at: now,
        };
        let request = || {
            let unsecret = NewWebhook {
                secret: None,
                ..new.clone()
            };
            fingerprint(&("create webhook", unsecret))
        };
        self.keyed(actor, key, request, |claim| {
            self.meta.with_retries(move || {
                let (claim, row) = (claim.clone(), row.clone());
                async move {
                    let mut tx = self.meta.write_tx().await?;
                    let created = store::insert_webhook(&mut tx, row, actor).await?.view()?;
                    complete(claim.as_ref(), &mut tx, &created).await?;
                    tx.commit().await?;
                    Ok(created)
                }
            })
        })
        .await
    }

    /// Changes what `update` gives; a new URL or secret is checked as on creation.
    pub async fn update_webhook(
        &self,
        actor: &Actor,
        id: &str,
        update: &WebhookUpdate,
    ) -> Result<Webhook> {
        let actor = admin(actor)?;
        if let Some(url) = &update.url {
            self.check_webhook_url(url).await?;
        }
        if let Some(name) = &update.name {
            webhook::check_name(name)?;
        }
        if let Some(description) = &update.description {
            webhook::check_description(description)?;
        }
        if let Some(models) = &update.models {
            ModelPattern::new(models)?;
        }
        let current = self.meta.webhook_row(id).await?;
        let protocol = current.view()?.protocol;
        if let Some(events) = &update.events {
            webhook::check_events(protocol, events)?;
        }
        let sealed = match &update.secret {
            Some(secret) => Some(self.seal_secret(protocol, Some(secret))?),
            None => None,
        };
        let updated = self
            .meta
            .with_retries(|| async {
                let mut tx = self.meta.write_tx().await?;
                let before = store::webhook_for_update(&mut tx, id).await?;
                let mut after = before.clone();
                if let Some(name) = &update.name {
                    after.name = name.clone();
                }
                if let Some(description) = &update.description {
                    after.description = description.clone();
                }
                if let Some(url) = &update.url {
                    after.url = url.clone();
                }
                if let Some(events) = &update.events {
                    after.events = serde_json::to_string(events).expect("strings encode");
                }
                if let Some(models) = &update.models {
                    after.models = models.clone();
                }
                if let Some((secret, key)) = &sealed {
                    after.secret = secret.clone();
                    after.secret_key = key.clone();
                }
                if let Some(active) = update.active {
                    after.active = i64::from(active);
                }
                after.updated_at = now_ms();
                store::update_webhook(&mut tx, &before, &after, actor).await?;
                tx.commit().await?;
                Ok(after)
            })
            .await?;
        updated.view()
    }

    /// Deletes the webhook and its deliveries.
    pub async fn delete_webhook(&self, actor: &Actor, id: &str) -> Result<()> {
        let actor = admin(actor)?;
        self.meta
            .with_retries(|| async {
                let mut tx = self.meta.write_tx().await?;
                let row = store::webhook_for_update(&mut tx, id).await?;
                store::delete_webhook(&mut tx, &row, actor).await?;
                tx.commit().await
            })
            .await
    }

    /// Every webhook, newest first.
    pub async fn webhooks(&self, actor: &Actor) -> Result<Vec<Webhook>> {
        admin(actor)?;
        self.meta
            .webhook_rows()
            .await?
            .iter()
            .map(WebhookRow::view)
            .collect()
    }

    pub async fn webhook(&self, actor: &Actor, id: &str) -> Result<Webhook> {
        admin(actor)?;
        self.meta.webhook_row(id).await?.view()
    }

    /// The webhook's deliveries (of one state, if given), newest event first.
    pub async fn webhook_deliveries(
        &self,
        actor: &Actor,
        id: &str,
        state: Option<DeliveryState>,
        limit: u32,
    ) -> Result<Vec<Delivery>> {
        admin(actor)?;
        self.meta.webhook_row(id).await?;
        self.meta
            .deliveries(id, state, limit.clamp(1, DELIVERIES_MAX))
            .await
    }

    /// Queues a delivered or failed delivery again, due now with a fresh retry window.
    pub async fn redeliver(&self, actor: &Actor, delivery: &str) -> Result<Delivery> {
        admin(actor)?;
        let current = self.meta.delivery(delivery).await?;
        if current.state == DeliveryState::Pending {
            return Err(Error::Conflict(format!(
                "delivery {delivery} is pending already (attempt {} is due {})",
                current.attempts + 1,
                current
                    .next_attempt_at
                    .map(|t| t.to_string())
                    .unwrap_or_default()
            )));
        }
        self.meta
            .with_retries(|| async {
                let mut tx = self.meta.write_tx().await?;
                queue::requeue(&mut tx, &current.webhook_id, current.seq as i64, now_ms()).await?;
                tx.commit().await
            })
            .await?;
        self.meta.delivery(delivery).await
    }

    /// Sends a test delivery now and reports what the endpoint answered; nothing is
    /// queued. An MLflow webhook gets MLflow's example payload of `mlflow_event` (else
    /// of its first event) and counts any status under 400 a success, as MLflow does;
    /// a Cairn webhook gets a `webhook.test` event and needs a 2xx.
    pub async fn test_webhook(
        &self,
        actor: &Actor,
        id: &str,
        mlflow_event: Option<&str>,
    ) -> Result<TestResult> {
        let actor = admin(actor)?;
        let row = self.meta.webhook_row(id).await?;
        let hook = row.view()?;
        let now = time::OffsetDateTime::now_utc();
        let body = match hook.protocol {
            Protocol::Cairn => serde_json::to_value(Event {
                schema: SCHEMA.to_owned(),
                seq: 0,
                kind: "webhook.test".to_owned(),
                at: now,
                actor: actor.name.clone(),
                model: None,
                target: hook.id.clone(),
                before: None,
                after: None,
                hash: String::new(),
            })
            .expect("an event encodes"),
            Protocol::Mlflow => {
                let name = mlflow_event
                    .map(str::to_owned)
                    .or_else(|| hook.events.first().cloned())
                    .unwrap_or_default();
                let data = webhook::mlflow_example(&name).ok_or_else(|| {
                    Error::InvalidArgument(format!("no MLflow webhook event {name:?}"))
                })?;
                let (entity, action) = name.split_once('.').unwrap_or_default();
                webhook::mlflow_envelope(entity, action, now, data)
            }
        };
        let secret = self.open_secret(row.secret.as_deref(), row.secret_key.as_deref())?;
        let sender = send::Sender::new(self.webhook_config.allow_private);
        let attempt = sender
            .send(
                &hook.url,
                hook.protocol,
                &format!("test-{}", uuid::Uuid::new_v4()),
                &body.to_string(),
                secret.as_deref(),
                "webhook.test",
            )
            .await;
        let success = match hook.protocol {
            Protocol::Cairn => attempt.succeeded(),
            Protocol::Mlflow => attempt.status_code.is_some_and(|s| s < 400),
        };
        Ok(TestResult {
            success,
            status_code: attempt.status_code,
            body: attempt.body,
            error: if success { None } else { attempt.error },
            latency_ms: attempt.latency_ms,
        })
    }

    async fn check_webhook_url(&self, text: &str) -> Result<url::Url> {
        let allow_private = self.webhook_config.allow_private;
        let url = webhook::check_url(text, allow_private)?;
        send::check_host_resolves(&url, allow_private)
            .await
            .map_err(cairn_core::ValidationError::Webhook)?;
        Ok(url)
    }

    /// A secret encrypted for storage, with its key's id. Cairn webhooks must have one.
    fn seal_secret(
        &self,
        protocol: Protocol,
        secret: Option<&str>,
    ) -> Result<(Option<String>, Option<String>)> {
        let secret = secret.filter(|s| !s.is_empty());
        match (protocol, secret) {
            (Protocol::Cairn, None) => {
                return Err(Error::InvalidArgument(
                    "a webhook needs a secret to sign its deliveries with (--secret)".to_owned(),
                ));
            }
            (Protocol::Cairn, Some(secret)) => webhook::check_secret(secret)?,
            (Protocol::Mlflow, Some(secret)) if secret.len() > 1024 => {
                webhook::check_secret(secret)?
            }
            _ => {}
        }
        let Some(secret) = secret else {
            return Ok((None, None));
        };
        let key = self.webhook_config.key.get()?;
        Ok((Some(key.encrypt(secret)), Some(key.id().to_owned())))
    }

    /// The webhook's secret in clear, if it has one.
    fn open_secret(&self, stored: Option<&str>, key_id: Option<&str>) -> Result<Option<String>> {
        let (Some(stored), Some(key_id)) = (stored, key_id) else {
            return Ok(None);
        };
        self.webhook_config
            .key
            .get()?
            .decrypt(stored, key_id)
            .map(Some)
    }
}

/// Webhooks see every event and send them elsewhere: registry admins only.
fn admin(actor: &Actor) -> Result<&Actor> {
    let actor = crate::service::check_actor(actor)?;
    authorize(actor, Need::new(Role::Admin, Scope::Registry))?;
    Ok(actor)
}
