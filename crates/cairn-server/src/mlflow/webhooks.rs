//! MLflow 3's webhook API (`/mlflow/webhooks…`) on Cairn's webhooks: the same queue,
//! retries and signatures as `cairn webhooks`, with MLflow's event names, payloads and
//! `X-MLflow-*` headers. MLflow's webhooks cover every model; their events are
//! `{"entity": "MODEL_VERSION", "action": "CREATED"}` pairs, stored as
//! `model_version.created`.

use axum::Json;
use axum::extract::{Path, State};
use cairn_core::webhook::{MLFLOW_EVENTS, NewWebhook, Protocol, Webhook, WebhookUpdate};
use cairn_registry::Registry;
use serde_json::{Value, json};

use super::error::{MlflowError, MlflowResult};
use super::paging;
use super::request::Fields;
use super::schema::{Check::*, Schema};
use crate::access::Caller;

type Reply = MlflowResult<Json<Value>>;

const CREATE: Schema = &[
    ("name", &[Str, Required]),
    ("url", &[Str, Required]),
    ("events", &[Array, Required]),
    ("description", &[Str]),
    ("secret", &[Str]),
    ("status", &[Str]),
];
const LIST: Schema = &[("max_results", &[IntLike]), ("page_token", &[Str])];
const UPDATE: Schema = &[
    ("name", &[Str]),
    ("description", &[Str]),
    ("url", &[Str]),
    ("events", &[Array]),
    ("secret", &[Str]),
    ("status", &[Str]),
];

/// MLflow's entities and actions (proto enum names, by number).
const ENTITIES: &[&str] = &[
    "ENTITY_UNSPECIFIED",
    "REGISTERED_MODEL",
    "MODEL_VERSION",
    "MODEL_VERSION_TAG",
    "MODEL_VERSION_ALIAS",
    "PROMPT",
    "PROMPT_VERSION",
    "PROMPT_TAG",
    "PROMPT_VERSION_TAG",
    "PROMPT_ALIAS",
    "BUDGET_POLICY",
];
const ACTIONS: &[&str] = &[
    "ACTION_UNSPECIFIED",
    "CREATED",
    "UPDATED",
    "DELETED",
    "SET",
    "EXCEEDED",
];

pub async fn create_webhook(State(r): State<Registry>, Caller(actor): Caller, f: Fields) -> Reply {
    f.check(CREATE)?;
    let events = events(&f)?.unwrap_or_default();
    if events.is_empty() {
        return Err(MlflowError::invalid(
            "Webhook events must be a non-empty list of WebhookEvent objects: [].",
        ));
    }
    let new = NewWebhook {
        name: Some(f.str("name")?),
        description: f.opt_str("description")?.unwrap_or_default(),
        url: f.str("url")?,
        protocol: Protocol::Mlflow,
        events,
        models: None,
        secret: f.opt_str("secret")?.filter(|s| !s.is_empty()),
        active: status(&f)?.unwrap_or(true),
    };
    let hook = r.create_webhook(&actor, &new).await?;
    Ok(Json(json!({ "webhook": webhook(&hook) })))
}

pub async fn list_webhooks(State(r): State<Registry>, Caller(actor): Caller, f: Fields) -> Reply {
    f.check(LIST)?;
    let limit = f.opt_i64("max_results")?.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(MlflowError::invalid(
            "max_results must be between 1 and 1000.",
        ));
    }
    let offset = paging::offset(&f)?;
    let all = r.webhooks(&actor).await?;
    let listed: Vec<Value> = all
        .iter()
        .filter(|w| w.protocol == Protocol::Mlflow)
        .skip(offset)
        .take(limit as usize + 1)
        .map(webhook)
        .collect();
    let (listed, token) = paging::page(listed, offset, limit as usize);
    Ok(Json(paging::reply("webhooks", listed, token)))
}

pub async fn get_webhook(
    State(r): State<Registry>,
    Caller(actor): Caller,
    Path(id): Path<String>,
) -> Reply {
    let hook = mlflow_webhook(&r, &actor, &id).await?;
    Ok(Json(json!({ "webhook": webhook(&hook) })))
}

pub async fn update_webhook(
    State(r): State<Registry>,
    Caller(actor): Caller,
    Path(id): Path<String>,
    f: Fields,
) -> Reply {
    f.check(UPDATE)?;
    mlflow_webhook(&r, &actor, &id).await?;
    // MLflow ignores empty strings for name and URL, and an empty event list.
    let update = WebhookUpdate {
        name: f.opt_str("name")?.filter(|s| !s.is_empty()),
        description: f.opt_str("description")?,
        url: f.opt_str("url")?.filter(|s| !s.is_empty()),
        events: events(&f)?.filter(|e| !e.is_empty()),
        models: None,
        secret: f.opt_str("secret")?,
        active: status(&f)?,
    };
    let hook = r.update_webhook(&actor, &id, &update).await?;
    Ok(Json(json!({ "webhook": webhook(&hook) })))
}

pub async fn delete_webhook(
    State(r): State<Registry>,
    Caller(actor): Caller,
    Path(id): Path<String>,
) -> Reply {
    mlflow_webhook(&r, &actor, &id).await?;
    r.delete_webhook(&actor, &id).await?;
    Ok(Json(json!({})))
}

pub async fn test_webhook(
    State(r): State<Registry>,
    Caller(actor): Caller,
    Path(id): Path<String>,
    f: Fields,
) -> Reply {
    mlflow_webhook(&r, &actor, &id).await?;
    let event = match f.get("event") {
        Some(value) => Some(event_name(value)?),
        None => None,
    };
    let result = r.test_webhook(&actor, &id, event.as_deref()).await?;
    let mut answer = json!({ "success": result.success });
    if let Some(status) = result.status_code {
        answer["response_status"] = json!(status);
        answer["response_body"] = json!(result.body.unwrap_or_default());
    }
    if let Some(error) = result.error.filter(|_| result.status_code.is_none()) {
        answer["error_message"] = json!(format!("Failed to test webhook: {error}"));
    }
    Ok(Json(json!({ "result": answer })))
}

/// The webhook `id` if it is one of MLflow's (a Cairn webhook is not shown here).
async fn mlflow_webhook(
    r: &Registry,
    actor: &cairn_core::access::Actor,
    id: &str,
) -> MlflowResult<Webhook> {
    match r.webhook(actor, id).await {
        Ok(hook) if hook.protocol == Protocol::Mlflow => Ok(hook),
        Ok(_) | Err(cairn_registry::Error::NotFound(_)) => Err(MlflowError::not_found(format!(
            "Webhook with ID {id} not found."
        ))),
        Err(e) => Err(e.into()),
    }
}

/// A webhook as MLflow's proto JSON shows it.
fn webhook(hook: &Webhook) -> Value {
    let mut out = json!({
        "webhook_id": hook.id,
        "name": hook.name,
        "url": hook.url,
        "events": hook.events.iter().map(|e| {
            let (entity, action) = e.split_once('.').unwrap_or_default();
            json!({ "entity": entity.to_uppercase(), "action": action.to_uppercase() })
        }).collect::<Vec<_>>(),
        "status": if hook.active { "ACTIVE" } else { "DISABLED" },
        "creation_timestamp": (hook.created_at.unix_timestamp_nanos() / 1_000_000) as i64,
        "last_updated_timestamp": (hook.updated_at.unix_timestamp_nanos() / 1_000_000) as i64,
    });
    if !hook.description.is_empty() {
        out["description"] = json!(hook.description);
    }
    out
}

/// `events`, as `entity.action` names (`None` when not given).
fn events(f: &Fields) -> MlflowResult<Option<Vec<String>>> {
    let Some(value) = f.get("events") else {
        return Ok(None);
    };
    let items = match value {
        Value::Array(items) => items.clone(),
        other => vec![other.clone()],
    };
    let names = items
        .iter()
        .map(event_name)
        .collect::<MlflowResult<Vec<_>>>()?;
    Ok(Some(names))
}

/// One `{"entity", "action"}` as `entity.action`, checked as MLflow checks it.
fn event_name(value: &Value) -> MlflowResult<String> {
    let part = |field: &str, names: &[&str]| -> MlflowResult<String> {
        let given = value.get(field).unwrap_or(&Value::Null);
        let name = match given {
            Value::String(s) => names.iter().find(|n| n.eq_ignore_ascii_case(s)).copied(),
            Value::Number(n) => n.as_u64().and_then(|i| names.get(i as usize)).copied(),
            _ => names.first().copied(),
        };
        name.map(str::to_lowercase).ok_or_else(|| {
            MlflowError::invalid(format!("Invalid value {given} for parameter '{field}'"))
        })
    };
    let entity = part("entity", ENTITIES)?;
    let action = part("action", ACTIONS)?;
    let name = format!("{entity}.{action}");
    if MLFLOW_EVENTS.iter().any(|(_, n)| *n == name) {
        return Ok(name);
    }
    let valid: Vec<String> = MLFLOW_EVENTS
        .iter()
        .filter_map(|(_, n)| n.strip_prefix(&format!("{entity}.")))
        .map(|a| format!("'{a}'"))
        .collect();
    Err(MlflowError::invalid(format!(
        "Invalid action '{action}' for entity '{entity}'. Valid actions are: [{}]",
        valid.join(", ")
    )))
}

/// `status` as whether the webhook is active.
fn status(f: &Fields) -> MlflowResult<Option<bool>> {
    match f.get("status") {
        None => Ok(None),
        Some(Value::String(s)) if s == "ACTIVE" => Ok(Some(true)),
        Some(Value::String(s)) if s == "DISABLED" => Ok(Some(false)),
        Some(Value::Number(n)) if n.as_u64() == Some(1) => Ok(Some(true)),
        Some(Value::Number(n)) if n.as_u64() == Some(2) => Ok(Some(false)),
        Some(other) => Err(MlflowError::invalid(format!(
            "Invalid value {other} for parameter 'status'"
        ))),
    }
}
