//! Webhooks: which events go where, in which shape. Two protocols share one queue:
//! - `cairn`: the body is the `cairn.event.v1` event itself, signed with the Standard
//!   Webhooks headers (`webhook-id`, `webhook-timestamp`, `webhook-signature`);
//! - `mlflow`: MLflow 3's payloads (`{"entity", "action", "timestamp", "data"}`) and
//!   its headers (`X-MLflow-Delivery-Id`, `X-MLflow-Timestamp`, `X-MLflow-Signature`),
//!   for webhooks created through MLflow's REST API.
//!
//! Both sign the same way: `v1,` + base64(HMAC-SHA256(secret, "{id}.{timestamp}.{body}")).
//! What leaves the registry is decided here from the event alone, so every attempt of
//! a delivery sends the same body.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use time::OffsetDateTime;
use utoipa::ToSchema;

use crate::ValidationError;
use crate::auth::ModelPattern;
use crate::event::{Event, is_event_type};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Cairn,
    Mlflow,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Cairn => "cairn",
            Self::Mlflow => "mlflow",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "cairn" => Some(Self::Cairn),
            "mlflow" => Some(Self::Mlflow),
            _ => None,
        }
    }
}

/// A webhook as the API shows it: never its secret.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Webhook {
    pub id: String,
    pub name: String,
    pub description: String,
    pub url: String,
    pub protocol: Protocol,
    /// Event types (`alias.set`, `alias.*`, `*`) or, for `mlflow`, `entity.action`.
    pub events: Vec<String>,
    /// The models whose events it gets: a name or a pattern (`*`: every model, and the
    /// registry-wide events).
    pub models: String,
    pub active: bool,
    /// Whether deliveries are signed.
    pub signed: bool,
    pub created_by: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

impl Webhook {
    /// Whether `event` goes to this webhook (active or not).
    pub fn wants(&self, event: &Event) -> bool {
        self.filter().wants(event)
    }

    /// What this webhook takes, its model pattern compiled once: for a batch of events.
    pub fn filter(&self) -> EventFilter<'_> {
        EventFilter {
            hook: self,
            models: ModelPattern::new(&self.models).ok(),
        }
    }
}

/// [`Webhook::wants`] with the webhook's pattern compiled (`None`: it does not compile,
/// and no model's event goes to it).
pub struct EventFilter<'a> {
    hook: &'a Webhook,
    models: Option<ModelPattern>,
}

impl EventFilter<'_> {
    /// Whether `event` goes to the webhook.
    pub fn wants(&self, event: &Event) -> bool {
        let model_matches = match &event.model {
            Some(model) => self.models.as_ref().is_some_and(|p| p.matches(model)),
            None => self.hook.models == "*",
        };
        model_matches
            && match self.hook.protocol {
                Protocol::Cairn => event.is_of(&self.hook.events),
                Protocol::Mlflow => mlflow_event(&event.kind)
                    .is_some_and(|name| self.hook.events.iter().any(|e| e == name)),
            }
    }
}

/// A new webhook.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct NewWebhook {
    /// Default: the URL's host.
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub description: String,
    pub url: String,
    #[serde(default = "cairn_protocol")]
    pub protocol: Protocol,
    pub events: Vec<String>,
    /// Default `*`.
    #[serde(default)]
    pub models: Option<String>,
    /// The signing secret (required for `cairn` webhooks).
    #[serde(default)]
    pub secret: Option<String>,
    #[serde(default = "yes")]
    pub active: bool,
}

fn cairn_protocol() -> Protocol {
    Protocol::Cairn
}

fn yes() -> bool {
    true
}

/// A change to a webhook: what is given is replaced.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct WebhookUpdate {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub events: Option<Vec<String>>,
    #[serde(default)]
    pub models: Option<String>,
    #[serde(default)]
    pub secret: Option<String>,
    #[serde(default)]
    pub active: Option<bool>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryState {
    /// Waiting for its first attempt or its next retry.
    Pending,
    /// Answered 2xx.
    Delivered,
    /// Retried for as long as allowed without success; `redeliver` queues it again.
    Failed,
}

impl DeliveryState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Delivered => "delivered",
            Self::Failed => "failed",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "pending" => Some(Self::Pending),
            "delivered" => Some(Self::Delivered),
            "failed" => Some(Self::Failed),
            _ => None,
        }
    }
}

/// One event sent (or to send) to one webhook, with its last attempt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Delivery {
    /// Sent as the delivery id header: the same on every attempt, so a receiver can
    /// drop a repeat.
    pub id: String,
    pub webhook_id: String,
    /// The event's number.
    pub seq: u64,
    /// The event's type.
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    pub state: DeliveryState,
    pub attempts: u32,
    /// The last attempt's HTTP status, if it got one.
    pub status_code: Option<u16>,
    /// The last attempt's failure, if it failed.
    pub error: Option<String>,
    pub latency_ms: Option<u64>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// When the next attempt is due (pending deliveries).
    #[serde(with = "time::serde::rfc3339::option")]
    pub next_attempt_at: Option<OffsetDateTime>,
    /// When it was delivered or given up.
    #[serde(with = "time::serde::rfc3339::option")]
    pub done_at: Option<OffsetDateTime>,
}

/// What a test send answered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TestResult {
    pub success: bool,
    pub status_code: Option<u16>,
    pub body: Option<String>,
    pub error: Option<String>,
    pub latency_ms: u64,
}

/// Longest webhook name (MLflow's limit).
const NAME_MAX: usize = 63;
/// Longest URL.
const URL_MAX: usize = 2048;
/// Longest description.
const DESCRIPTION_MAX: usize = 4096;
/// Shortest and longest secret.
const SECRET_MIN: usize = 16;
const SECRET_MAX: usize = 1024;

fn invalid(message: String) -> ValidationError {
    ValidationError::Webhook(message)
}

/// MLflow's rule: 1–63 letters, digits, `.`, `_`, `-`, starting and ending with a
/// letter or digit.
pub fn check_name(name: &str) -> Result<(), ValidationError> {
    let edge_ok = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    let ok = (1..=NAME_MAX).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        && edge_ok(name.chars().next())
        && edge_ok(name.chars().last());
    if ok {
        Ok(())
    } else {
        Err(invalid(format!(
            "Webhook name '{name}' is invalid. It must start and end with a letter or digit, \
             be less than 63 characters long, and contain only letters, digits, dots (.), \
             underscores (_), and hyphens (-)."
        )))
    }
}

/// A name for a webhook created without one: its URL's host, made a valid name.
pub fn default_name(url: &url::Url) -> String {
    let host = url.host_str().unwrap_or("webhook");
    let cleaned: String = host
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .take(NAME_MAX)
        .collect();
    let trimmed = cleaned.trim_matches(|c: char| !c.is_ascii_alphanumeric());
    if trimmed.is_empty() {
        "webhook".to_owned()
    } else {
        trimmed.to_owned()
    }
}

/// Checks a URL's form: `https` (or `http` when `allow_private`), a host, no user
/// information, and an IP literal only if it is public (or `allow_private`). Host
/// names are checked where they are resolved, at each delivery.
pub fn check_url(text: &str, allow_private: bool) -> Result<url::Url, ValidationError> {
    if text.trim().is_empty() {
        return Err(invalid(format!(
            "Webhook URL cannot be empty or just whitespace: '{text}'"
        )));
    }
    if text.len() > URL_MAX {
        return Err(invalid(format!(
            "Webhook URL is longer than {URL_MAX} bytes"
        )));
    }
    let url =
        url::Url::parse(text).map_err(|e| invalid(format!("Invalid webhook URL {text:?}: {e}")))?;
    let allowed: &[&str] = if allow_private {
        &["http", "https"]
    } else {
        &["https"]
    };
    if !allowed.contains(&url.scheme()) {
        return Err(invalid(format!(
            "Invalid webhook URL scheme: '{}'. Allowed schemes are: {}.",
            url.scheme(),
            allowed.join(", ")
        )));
    }
    let Some(host) = url.host() else {
        return Err(invalid(format!(
            "Webhook URL must include a hostname: {text:?}"
        )));
    };
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid(
            "Webhook URL must not hold credentials: sign deliveries with a secret".to_owned(),
        ));
    }
    let literal = match host {
        url::Host::Ipv4(ip) => Some(IpAddr::V4(ip)),
        url::Host::Ipv6(ip) => Some(IpAddr::V6(ip)),
        url::Host::Domain(_) => None,
    };
    if let Some(ip) = literal
        && !allow_private
        && !is_public(ip)
    {
        return Err(invalid(format!(
            "Webhook URL must not resolve to a non-public IP address. '{}' resolves to {ip}.",
            url.host_str().unwrap_or_default()
        )));
    }
    Ok(url)
}

/// Checks the events a webhook asks for, by protocol.
pub fn check_events(protocol: Protocol, events: &[String]) -> Result<(), ValidationError> {
    if events.is_empty() {
        return Err(invalid(
            "Webhook events must be a non-empty list".to_owned(),
        ));
    }
    for event in events {
        let known = match protocol {
            Protocol::Cairn => {
                event == "*"
                    || event.strip_suffix(".*").map_or_else(
                        || is_event_type(event),
                        |prefix| {
                            crate::event::TYPES
                                .iter()
                                .any(|t| t.starts_with(&format!("{prefix}.")))
                        },
                    )
            }
            Protocol::Mlflow => MLFLOW_EVENTS.iter().any(|(_, name)| name == event),
        };
        if !known {
            return Err(invalid(format!(
                "unknown webhook event {event:?}: see docs/WEBHOOKS.md for the event names"
            )));
        }
    }
    Ok(())
}

pub fn check_description(description: &str) -> Result<(), ValidationError> {
    if description.len() > DESCRIPTION_MAX {
        return Err(invalid(format!(
            "Webhook description is longer than {DESCRIPTION_MAX} bytes"
        )));
    }
    Ok(())
}

pub fn check_secret(secret: &str) -> Result<(), ValidationError> {
    if !(SECRET_MIN..=SECRET_MAX).contains(&secret.len()) {
        return Err(invalid(format!(
            "a webhook secret is {SECRET_MIN} to {SECRET_MAX} bytes long"
        )));
    }
    Ok(())
}

/// The Cairn event types MLflow 3 has webhook events for, and their MLflow names. An
/// alias rolled back is an alias created as far as MLflow's vocabulary goes.
pub const MLFLOW_EVENTS: &[(&str, &str)] = &[
    ("model.create", "registered_model.created"),
    ("version.create", "model_version.created"),
    ("version.tag.set", "model_version_tag.set"),
    ("version.tag.delete", "model_version_tag.deleted"),
    ("alias.set", "model_version_alias.created"),
    ("alias.rollback", "model_version_alias.created"),
    ("alias.delete", "model_version_alias.deleted"),
];

/// The MLflow `entity.action` of a Cairn event type, if MLflow has one.
pub fn mlflow_event(kind: &str) -> Option<&'static str> {
    MLFLOW_EVENTS
        .iter()
        .find(|(k, _)| *k == kind)
        .map(|(_, name)| *name)
}

/// The body delivered for `event` by `protocol`: `None` when the protocol has no such
/// event.
pub fn payload(protocol: Protocol, event: &Event) -> Option<Value> {
    match protocol {
        Protocol::Cairn => Some(serde_json::to_value(event).expect("an event encodes")),
        Protocol::Mlflow => {
            let name = mlflow_event(&event.kind)?;
            let (entity, action) = name.split_once('.').expect("entity.action");
            Some(mlflow_envelope(
                entity,
                action,
                event.at,
                mlflow_data(event)?,
            ))
        }
    }
}

/// MLflow's envelope around a payload.
pub fn mlflow_envelope(entity: &str, action: &str, at: OffsetDateTime, data: Value) -> Value {
    let timestamp = at
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    json!({ "entity": entity, "action": action, "timestamp": timestamp, "data": data })
}

/// MLflow's example payload for an `entity.action`, which its `test_webhook` sends.
pub fn mlflow_example(name: &str) -> Option<Value> {
    let example = match name {
        "registered_model.created" => json!({
            "name": "example_model", "tags": {"example_key": "example_value"},
            "description": "An example registered model"}),
        "model_version.created" => json!({
            "name": "example_model", "version": "1", "source": "models:/123",
            "run_id": "abcd1234abcd5678", "tags": {"example_key": "example_value"},
            "description": "An example model version"}),
        "model_version_tag.set" => json!({
            "name": "example_model", "version": "1", "key": "example_key",
            "value": "example_value"}),
        "model_version_tag.deleted" => json!({
            "name": "example_model", "version": "1", "key": "example_key"}),
        "model_version_alias.created" => json!({
            "name": "example_model", "alias": "example_alias", "version": "1"}),
        "model_version_alias.deleted" => json!({
            "name": "example_model", "alias": "example_alias"}),
        _ => return None,
    };
    Some(example)
}

/// MLflow's `data` for an event, from what its audit entry recorded.
fn mlflow_data(event: &Event) -> Option<Value> {
    let model = event.model.clone()?;
    let after = event.after.clone().unwrap_or(Value::Null);
    let before = event.before.clone().unwrap_or(Value::Null);
    // `NAME@N` and `NAME@N#key` targets: the version is what follows the last '@'.
    let version = || {
        let rest = event.target.strip_prefix(&model)?.strip_prefix('@')?;
        Some(rest.split('#').next()?.to_owned())
    };
    let text = |v: &Value| v.as_str().map(str::to_owned);
    let data = match event.kind.as_str() {
        "model.create" => json!({
            "name": model,
            "tags": after.get("tags").cloned().unwrap_or_else(|| json!({})),
            "description": after.get("description").and_then(text).filter(|d| !d.is_empty()),
        }),
        "version.create" => json!({
            "name": model,
            "version": version()?,
            "source": after.get("source").and_then(text).unwrap_or_default(),
            "run_id": after.get("run_id").and_then(text).filter(|r| !r.is_empty()),
            "tags": after.get("tags").cloned().unwrap_or_else(|| json!({})),
            "description": after.get("description").and_then(text).filter(|d| !d.is_empty()),
        }),
        "version.tag.set" => json!({
            "name": model,
            "version": version()?,
            "key": after.get("key")?,
            "value": after.get("value")?,
        }),
        "version.tag.delete" => json!({
            "name": model,
            "version": version()?,
            "key": before.get("key")?,
        }),
        "alias.set" | "alias.rollback" => json!({
            "name": model,
            "alias": event.target.strip_prefix(&model)?.strip_prefix('@')?,
            "version": after.get("version")?.to_string(),
        }),
        "alias.delete" => json!({
            "name": model,
            "alias": event.target.strip_prefix(&model)?.strip_prefix('@')?,
        }),
        _ => return None,
    };
    Some(data)
}

/// Whether a webhook may be sent to `ip`: not loopback, private, link-local, shared,
/// reserved, documentation, multicast or unspecified — also when wrapped in an IPv6
/// transition address (IPv4-mapped, 6to4, NAT64), as MLflow checks.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => match embedded_v4(v6) {
            Some(v4) => is_public_v4(v4),
            None => is_public_v6(v6),
        },
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0
        || (a == 100 && (64..128).contains(&b)) // shared address space (CGNAT)
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 198 && (18..20).contains(&b)) // benchmarking
        || a >= 240) // reserved
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let first = ip.segments()[0];
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_multicast()
        || (first & 0xfe00) == 0xfc00 // unique local
        || (first & 0xffc0) == 0xfe80 // link-local
        || (first & 0xffc0) == 0xfec0 // site-local (deprecated)
        || (first == 0x2001 && ip.segments()[1] == 0x0db8) // documentation
        || (first == 0x2001 && ip.segments()[1] < 0x0200) // IETF protocol assignments
        || (first == 0x0100 && ip.segments()[1..4] == [0, 0, 0])) // discard-only
}

/// The IPv4 address an IPv6 transition address carries.
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = ip.segments();
    if let Some(v4) = ip.to_ipv4_mapped() {
        return Some(v4);
    }
    let v4 = |hi: u16, lo: u16| Ipv4Addr::from(((hi as u32) << 16) | lo as u32);
    match s {
        [0x2002, hi, lo, ..] => Some(v4(hi, lo)), // 6to4
        [0x64, 0xff9b, 0, 0, 0, 0, hi, lo] => Some(v4(hi, lo)), // NAT64
        [0, 0, 0, 0, 0, 0, hi, lo] if hi != 0 => Some(v4(hi, lo)), // IPv4-compatible
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn private_loopback_and_wrapped_addresses_are_not_public() {
        for text in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "::1",
            "::",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::a00:1",
            "2002:c0a8:101::",
            "2001:db8::1",
        ] {
            assert!(!is_public(ip(text)), "{text} counted public");
        }
        for text in [
            "1.1.1.1",
            "93.184.216.34",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
        ] {
            assert!(is_public(ip(text)), "{text} counted private");
        }
    }

    #[test]
    fn urls_need_https_and_a_public_literal_unless_private_is_allowed() {
        assert!(check_url("https://hooks.example.com/x", false).is_ok());
        assert!(check_url("http://hooks.example.com/x", false).is_err());
        assert!(check_url("http://127.0.0.1:9/x", true).is_ok());
        assert!(check_url("https://127.0.0.1/x", false).is_err());
        assert!(check_url("https://[::ffff:10.0.0.1]/x", false).is_err());
        assert!(check_url("https://user:pw@example.com/", false).is_err());
        assert!(check_url("file:///etc/passwd", true).is_err());
        assert!(check_url("  ", true).is_err());
    }

    #[test]
    fn names_follow_mlflow() {
        assert!(check_name("ci-hook_1.a").is_ok());
        for bad in ["", "-a", "a-", "a b", &"x".repeat(64)] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
        let url = url::Url::parse("https://hooks.example.com:8443/x").unwrap();
        assert_eq!(default_name(&url), "hooks.example.com");
    }

    fn event(kind: &str, model: Option<&str>, target: &str, after: Value) -> Event {
        Event {
            schema: crate::event::SCHEMA.into(),
            seq: 7,
            kind: kind.into(),
            at: OffsetDateTime::UNIX_EPOCH,
            actor: "ada".into(),
            model: model.map(str::to_owned),
            target: target.into(),
            before: None,
            after: Some(after),
            hash: String::new(),
        }
    }

    #[test]
    fn mlflow_payloads_follow_its_shapes() {
        let moved = event(
            "alias.set",
            Some("fraud"),
            "fraud@champion",
            json!({"version": 3, "reason": null}),
        );
        let body = payload(Protocol::Mlflow, &moved).unwrap();
        assert_eq!(body["entity"], "model_version_alias");
        assert_eq!(body["action"], "created");
        assert_eq!(
            body["data"],
            json!({"name": "fraud", "alias": "champion", "version": "3"})
        );
        let tagged = event(
            "version.tag.set",
            Some("a@b"),
            "a@b@2#k",
            json!({"key": "k", "value": "v"}),
        );
        assert_eq!(
            payload(Protocol::Mlflow, &tagged).unwrap()["data"],
            json!({"name": "a@b", "version": "2", "key": "k", "value": "v"})
        );
        // A Cairn-only event has no MLflow payload; the native one is the event.
        let policy = event("policy.set", Some("fraud"), "fraud@production", json!({}));
        assert!(payload(Protocol::Mlflow, &policy).is_none());
        assert_eq!(
            payload(Protocol::Cairn, &policy).unwrap()["type"],
            "policy.set"
        );
    }

    #[test]
    fn a_webhook_wants_its_models_and_events() {
        let hook = |protocol, events: &[&str], models: &str| Webhook {
            id: "w".into(),
            name: "w".into(),
            description: String::new(),
            url: "https://example.com".into(),
            protocol,
            events: events.iter().map(|e| e.to_string()).collect(),
            models: models.into(),
            active: true,
            signed: true,
            created_by: "ada".into(),
            created_at: OffsetDateTime::UNIX_EPOCH,
            updated_at: OffsetDateTime::UNIX_EPOCH,
        };
        let moved = event("alias.set", Some("fraud"), "fraud@p", json!({"version": 1}));
        let token = event("token.create", None, "t1", json!({}));
        assert!(hook(Protocol::Cairn, &["alias.*"], "fr*").wants(&moved));
        assert!(!hook(Protocol::Cairn, &["alias.*"], "churn").wants(&moved));
        assert!(!hook(Protocol::Cairn, &["version.create"], "*").wants(&moved));
        assert!(hook(Protocol::Cairn, &["*"], "*").wants(&token));
        assert!(!hook(Protocol::Cairn, &["*"], "fraud").wants(&token));
        assert!(hook(Protocol::Mlflow, &["model_version_alias.created"], "*").wants(&moved));
        assert!(!hook(Protocol::Mlflow, &["model_version.created"], "*").wants(&moved));
        assert!(
            check_events(
                Protocol::Cairn,
                &["alias.*".into(), "version.create".into()]
            )
            .is_ok()
        );
        assert!(check_events(Protocol::Cairn, &["nonsense".into()]).is_err());
        assert!(check_events(Protocol::Mlflow, &["model_version.created".into()]).is_ok());
        assert!(check_events(Protocol::Mlflow, &["alias.set".into()]).is_err());
    }
}
