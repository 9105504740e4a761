//! `cairn webhooks create|list|update|delete|test|deliveries|redeliver`: send the
//! registry's events to other systems (docs/WEBHOOKS.md). Deliveries are made by
//! `cairn server` — embedded-mode changes by the next server that runs on the registry.

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Result;
use cairn_core::webhook::{DeliveryState, NewWebhook, Protocol, WebhookUpdate};
use cairn_registry::DbLocation;
use cairn_registry::webhooks::{DEFAULT_RETRY_FOR, KeySource, WebhookConfig, secrets};

use crate::client::{Location, RegistryClient};
use crate::output::print_json;

#[derive(clap::Subcommand)]
pub enum WebhooksCommand {
    /// Register a webhook: the events after now, signed with the secret.
    Create {
        /// Where to POST each event (https; http and private addresses only when the
        /// server allows them).
        #[arg(long)]
        url: String,
        /// Event types (`alias.set`, `alias.*`, `version.create`, `*`…), repeatable or
        /// comma-separated.
        #[arg(long, required = true, num_args = 1.., value_delimiter = ',')]
        events: Vec<String>,
        /// The models whose events it gets: a name or a pattern (default `*`, which
        /// also takes the registry-wide events).
        #[arg(long, value_name = "PATTERN")]
        model: Option<String>,
        /// The signing secret (16 bytes or more), shared with the receiver.
        #[arg(long, env = "CAIRN_WEBHOOK_SECRET", hide_env_values = true)]
        secret: String,
        /// A name (default: the URL's host).
        #[arg(long)]
        name: Option<String>,
        #[arg(long, default_value = "")]
        description: String,
        /// Create it disabled.
        #[arg(long)]
        disabled: bool,
        #[arg(long)]
        json: bool,
    },
    /// Every webhook (never their secrets).
    List {
        #[arg(long)]
        json: bool,
    },
    /// Change a webhook: what is given is replaced.
    Update {
        id: String,
        #[arg(long)]
        url: Option<String>,
        #[arg(long, num_args = 1.., value_delimiter = ',')]
        events: Option<Vec<String>>,
        #[arg(long, value_name = "PATTERN")]
        model: Option<String>,
        #[arg(long)]
        secret: Option<String>,
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        description: Option<String>,
        #[arg(long, conflicts_with = "disable")]
        enable: bool,
        #[arg(long)]
        disable: bool,
        #[arg(long)]
        json: bool,
    },
    /// Delete a webhook and its deliveries.
    Delete { id: String },
    /// Send a signed `webhook.test` event now and show the answer (exit 1 if it failed).
    Test {
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// A webhook's deliveries, newest event first.
    Deliveries {
        id: String,
        /// Only these: pending, delivered or failed.
        #[arg(long, value_parser = parse_state)]
        state: Option<DeliveryState>,
        #[arg(long, default_value_t = 100)]
        limit: u32,
        #[arg(long)]
        json: bool,
    },
    /// Queue a delivered or failed delivery again, due now.
    Redeliver { delivery: String },
}

fn parse_state(s: &str) -> Result<DeliveryState, String> {
    DeliveryState::parse(s).ok_or_else(|| "expected pending, delivered or failed".to_owned())
}

pub async fn run(registry: &dyn RegistryClient, cmd: WebhooksCommand) -> Result<ExitCode> {
    match cmd {
        WebhooksCommand::Create {
            url,
            events,
            model,
            secret,
            name,
            description,
            disabled,
            json,
        } => {
            let new = NewWebhook {
                name,
                description,
                url,
                protocol: Protocol::Cairn,
                events,
                models: model,
                secret: Some(secret),
                active: !disabled,
            };
            let hook = registry.create_webhook(&new).await?;
            if json {
                print_json(&hook)?;
            } else {
                println!("{}", hook.id);
                eprintln!(
                    "webhook {} ({}) created: {} of {} to {}",
                    hook.id,
                    hook.name,
                    hook.events.join(","),
                    hook.models,
                    hook.url
                );
            }
        }
        WebhooksCommand::List { json } => {
            let hooks = registry.webhooks().await?;
            if json {
                print_json(&hooks)?;
            } else {
                for h in hooks {
                    println!(
                        "{}  {}  {}  {}  models={}  events={}  {}",
                        h.id,
                        h.name,
                        if h.active { "active" } else { "disabled" },
                        h.protocol.as_str(),
                        h.models,
                        h.events.join(","),
                        h.url
                    );
                }
            }
        }
        WebhooksCommand::Update {
            id,
            url,
            events,
            model,
            secret,
            name,
            description,
            enable,
            disable,
            json,
        } => {
            let update = WebhookUpdate {
                name,
                description,
                url,
                events,
                models: model,
                secret,
                active: if enable {
                    Some(true)
                } else if disable {
                    Some(false)
                } else {
                    None
                },
            };
            let hook = registry.update_webhook(&id, &update).await?;
            if json {
                print_json(&hook)?;
            } else {
                eprintln!("webhook {} updated", hook.id);
            }
        }
        WebhooksCommand::Delete { id } => {
            registry.delete_webhook(&id).await?;
            eprintln!("webhook {id} deleted");
        }
        WebhooksCommand::Test { id, json } => {
            let result = registry.test_webhook(&id).await?;
            if json {
                print_json(&result)?;
            } else {
                match (result.status_code, &result.error) {
                    (Some(status), _) => {
                        println!("HTTP {status} in {} ms", result.latency_ms)
                    }
                    (None, Some(error)) => println!("failed: {error}"),
                    (None, None) => println!("no answer"),
                }
            }
            if !result.success {
                return Ok(ExitCode::FAILURE);
            }
        }
        WebhooksCommand::Deliveries {
            id,
            state,
            limit,
            json,
        } => {
            let deliveries = registry.webhook_deliveries(&id, state, limit).await?;
            if json {
                print_json(&deliveries)?;
            } else {
                for d in deliveries {
                    let status = d.status_code.map_or("-".to_owned(), |s| s.to_string());
                    let latency = d.latency_ms.map_or("-".to_owned(), |l| format!("{l}ms"));
                    println!(
                        "{}  #{}  {}  {}  {}  attempts={}  status={}  {}{}",
                        d.id,
                        d.seq,
                        d.kind,
                        d.model.as_deref().unwrap_or("-"),
                        d.state.as_str(),
                        d.attempts,
                        status,
                        latency,
                        d.error.map(|e| format!("  {e}")).unwrap_or_default()
                    );
                }
            }
        }
        WebhooksCommand::Redeliver { delivery } => {
            let d = registry.redeliver(&delivery).await?;
            eprintln!("delivery {} of event #{} queued again", d.id, d.seq);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Whether `CAIRN_WEBHOOK_ALLOW_PRIVATE` is set to a true value.
pub fn allow_private_from_env() -> bool {
    std::env::var("CAIRN_WEBHOOK_ALLOW_PRIVATE")
        .is_ok_and(|v| matches!(v.to_ascii_lowercase().as_str(), "1" | "true" | "yes"))
}

/// How a process opening the registry at `db` treats webhooks: the secrets' key from
/// `CAIRN_WEBHOOK_SECRET_KEY`, else the key file in the data directory (`data`, else
/// the SQLite file's directory, else the default data directory); private addresses
/// when allowed; deliveries retried for `retry_for` (default a day).
pub fn config(
    db: &DbLocation,
    data: Option<&Path>,
    settings: Option<(bool, Duration)>,
) -> Result<WebhookConfig> {
    let dir = match (data, db) {
        (Some(dir), _) => dir.to_path_buf(),
        (None, DbLocation::Sqlite(file)) => file
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .map_or_else(|| Path::new(".").to_path_buf(), Path::to_path_buf),
        (None, _) => Location::default_data_dir()?,
    };
    let (allow_private, retry_for) =
        settings.unwrap_or_else(|| (allow_private_from_env(), DEFAULT_RETRY_FOR));
    Ok(WebhookConfig {
        key: KeySource::Load {
            env: std::env::var(secrets::KEY_VARIABLE).ok(),
            dir,
            loaded: Default::default(),
        },
        allow_private,
        retry_for,
    })
}
