//! Webhooks on both engines, delivered for real over HTTP to a receiver in the test:
//! every event once, signed, in order per model; a failing endpoint retried and then
//! caught up; a dead one given up after its window without blocking the queue; two
//! registries on one database delivering each event once; secrets stored encrypted.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode};
use cairn_core::ModelName;
use cairn_core::access::Actor;
use cairn_core::api::CreateModel;
use cairn_core::webhook::{DeliveryState, NewWebhook, Protocol};

use crate::test_support::{conformance, registry};
use crate::webhooks::{KeySource, SecretKey, WebhookConfig, send::signature};
use crate::{Error, Registry};

const SECRET: &str = "a-signing-secret-of-some-length";

#[derive(Clone, Default)]
struct Receiver {
    got: Arc<Mutex<Vec<(HeaderMap, String)>>>,
    failing: Arc<Mutex<bool>>,
}

impl Receiver {
    /// Serves on a loopback port; answers 503 while `failing`.
    async fn start(&self) -> String {
        let state = self.clone();
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |headers: HeaderMap, body: String| {
                let state = state.clone();
                async move {
                    if *state.failing.lock().unwrap() {
                        return StatusCode::SERVICE_UNAVAILABLE;
                    }
                    state.got.lock().unwrap().push((headers, body));
                    StatusCode::NO_CONTENT
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        url
    }

    fn bodies(&self) -> Vec<serde_json::Value> {
        let got = self.got.lock().unwrap();
        got.iter()
            .map(|(headers, body)| {
                let header = |name: &str| headers[name].to_str().unwrap().to_owned();
                let (id, at) = (header("webhook-id"), header("webhook-timestamp"));
                assert_eq!(
                    header("webhook-signature"),
                    signature(SECRET, &id, &at, body),
                    "a delivery's signature does not verify"
                );
                serde_json::from_str(body).unwrap()
            })
            .collect()
    }

    async fn wait_for(&self, count: usize) -> Vec<serde_json::Value> {
        for _ in 0..300 {
            if self.got.lock().unwrap().len() >= count {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // Anything more would be a repeat: give it a moment to show.
        tokio::time::sleep(Duration::from_millis(300)).await;
        self.bodies()
    }
}

fn config(dir: &std::path::Path, retry_for: Duration) -> WebhookConfig {
    WebhookConfig {
        key: KeySource::Given(SecretKey::load(None, dir).unwrap()),
        allow_private: true,
        retry_for,
    }
}

fn hook(url: &str, events: &[&str]) -> NewWebhook {
    NewWebhook {
        name: None,
        description: String::new(),
        url: url.to_owned(),
        protocol: Protocol::Cairn,
        events: events.iter().map(|e| e.to_string()).collect(),
        models: None,
        secret: Some(SECRET.to_owned()),
        active: true,
    }
}

async fn change(r: &Registry, model: &str, n: usize) {
    let actor = Actor::unrestricted("ada");
    let name = ModelName::new(model).unwrap();
    if r.get_model(&name).await.is_err() {
        let create = CreateModel {
            name: model.into(),
            description: String::new(),
            tags: Default::default(),
        };
        r.create_model(&actor, &create).await.unwrap();
    }
    r.set_description(&actor, &name, None, &format!("change {n}"))
        .await
        .unwrap();
}

/// Runs the delivery loop of `r` until the returned sender is dropped.
fn deliver(r: &Registry) -> tokio::sync::oneshot::Sender<()> {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let r = r.clone();
    tokio::spawn(async move {
        r.deliver_webhooks(async {
            let _ = stopped.await;
        })
        .await
    });
    stop
}

async fn every_event_once_signed_and_in_order_per_model() {
    let (dir, r) = registry().await;
    let r = r.with_webhooks(config(dir.path(), Duration::from_secs(3600)));
    let receiver = Receiver::default();
    let url = receiver.start().await;
    let admin = Actor::unrestricted("root");
    // Changes before the webhook are not its events.
    change(&r, "early", 0).await;
    r.create_webhook(&admin, &hook(&url, &["model.*"]))
        .await
        .unwrap();
    let _running = deliver(&r);
    for n in 0..30 {
        change(&r, ["fraud", "churn", "ltv"][n % 3], n).await;
    }
    // 3 creations + 30 descriptions.
    let got = receiver.wait_for(33).await;
    assert_eq!(got.len(), 33, "{got:#?}");
    let mut seqs: Vec<u64> = got.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    for model in ["fraud", "churn", "ltv"] {
        let of_model: Vec<u64> = got
            .iter()
            .filter(|e| e["model"] == model)
            .map(|e| e["seq"].as_u64().unwrap())
            .collect();
        assert!(of_model.is_sorted(), "{model}: {of_model:?}");
        assert_eq!(of_model.len(), 11);
    }
    seqs.sort();
    seqs.dedup();
    assert_eq!(seqs.len(), 33, "an event was delivered twice");
    assert!(got.iter().all(|e| e["schema"] == "cairn.event.v1"));
    assert!(got.iter().all(|e| e["model"] != "early"));

    // The endpoint fails: the delivery waits, then arrives once it answers again.
    *receiver.failing.lock().unwrap() = true;
    change(&r, "fraud", 99).await;
    let hooks = r.webhooks(&admin).await.unwrap();
    let id = &hooks[0].id;
    let mut failed_once = false;
    for _ in 0..100 {
        let pending = r
            .webhook_deliveries(&admin, id, Some(DeliveryState::Pending), 10)
            .await
            .unwrap();
        if pending
            .iter()
            .any(|d| d.attempts >= 1 && d.status_code == Some(503))
        {
            failed_once = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(failed_once, "the failed attempt was not recorded");
    *receiver.failing.lock().unwrap() = false;
    let got = receiver.wait_for(34).await;
    assert_eq!(got.len(), 34);
    assert_eq!(got[33]["after"]["description"], "change 99");
    let delivered = r
        .webhook_deliveries(&admin, id, Some(DeliveryState::Delivered), 100)
        .await
        .unwrap();
    assert_eq!(delivered.len(), 34);
    assert!(delivered.iter().all(|d| d.status_code == Some(204)));
}

async fn a_dead_endpoint_is_given_up_without_blocking_the_queue() {
    let (dir, r) = registry().await;
    let r = r.with_webhooks(config(dir.path(), Duration::from_millis(1500)));
    let admin = Actor::unrestricted("root");
    // A port nothing listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", closed.local_addr().unwrap());
    drop(closed);
    let hook = r.create_webhook(&admin, &hook(&url, &["*"])).await.unwrap();
    let _running = deliver(&r);
    change(&r, "fraud", 1).await;
    change(&r, "fraud", 2).await;
    let mut failed = Vec::new();
    for _ in 0..200 {
        failed = r
            .webhook_deliveries(&admin, &hook.id, Some(DeliveryState::Failed), 10)
            .await
            .unwrap();
        if failed.len() == 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The model's creation and two descriptions.
    assert_eq!(
        failed.len(),
        3,
        "every delivery ends failed, one after the other"
    );
    assert!(failed.iter().all(|d| d.error.is_some() && d.attempts >= 1));
    // A failed delivery can be queued again; a pending one cannot.
    let again = r.redeliver(&admin, &failed[0].id).await.unwrap();
    assert_eq!(again.state, DeliveryState::Pending);
    assert!(matches!(
        r.redeliver(&admin, &failed[0].id).await,
        Err(Error::Conflict(_))
    ));
}

async fn a_delivered_event_is_logged_once_and_can_be_sent_again() {
    let (dir, r) = registry().await;
    let r = r.with_webhooks(config(dir.path(), Duration::from_secs(3600)));
    let admin = Actor::unrestricted("root");
    let receiver = Receiver::default();
    let url = receiver.start().await;
    let hook = r.create_webhook(&admin, &hook(&url, &["*"])).await.unwrap();
    let _running = deliver(&r);
    for n in 0..6 {
        change(&r, if n % 2 == 0 { "fraud" } else { "churn" }, n).await;
    }
    assert_eq!(
        receiver.wait_for(8).await.len(),
        8,
        "2 creations, 6 descriptions"
    );
    let count = |table: &'static str| {
        let r = r.clone();
        async move {
            r.meta
                .read(&format!("SELECT COUNT(*) FROM {table}"))
                .scalar_one::<i64>()
                .await
                .unwrap()
        }
    };
    // First-attempt successes are kept a round to a row, not a row an event.
    assert_eq!(count("webhook_deliveries").await, 0);
    assert!((1..8).contains(&count("webhook_delivered").await));
    let log = r
        .webhook_deliveries(&admin, &hook.id, None, 100)
        .await
        .unwrap();
    assert_eq!(log.len(), 8);
    assert!(log.windows(2).all(|w| w[0].seq > w[1].seq), "newest first");
    assert!(log.iter().all(|d| d.state == DeliveryState::Delivered
        && d.attempts == 1
        && d.status_code == Some(204)
        && d.latency_ms.is_some()
        && d.done_at.is_some()
        && d.model.is_some()
        && !d.kind.is_empty()));
    let newest_two = r
        .webhook_deliveries(&admin, &hook.id, Some(DeliveryState::Delivered), 2)
        .await
        .unwrap();
    assert_eq!(
        newest_two.iter().map(|d| d.seq).collect::<Vec<_>>(),
        [log[0].seq, log[1].seq]
    );

    // Sent again: out of its round, queued, delivered under the same id, listed once.
    let chosen = &log[3];
    let again = r.redeliver(&admin, &chosen.id).await.unwrap();
    assert_eq!(
        (again.state, again.seq),
        (DeliveryState::Pending, chosen.seq)
    );
    assert_eq!(receiver.wait_for(9).await.len(), 9);
    let repeated = receiver.got.lock().unwrap()[8].0["webhook-id"].clone();
    assert_eq!(repeated.to_str().unwrap(), chosen.id);
    let mut log_after = Vec::new();
    for _ in 0..100 {
        log_after = r
            .webhook_deliveries(&admin, &hook.id, None, 100)
            .await
            .unwrap();
        if log_after
            .iter()
            .all(|d| d.state == DeliveryState::Delivered)
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        log_after.iter().map(|d| d.seq).collect::<Vec<_>>(),
        log.iter().map(|d| d.seq).collect::<Vec<_>>(),
        "every event listed once"
    );
    let resent = log_after.iter().find(|d| d.seq == chosen.seq).unwrap();
    assert_eq!(
        (resent.state, resent.attempts),
        (DeliveryState::Delivered, 2)
    );
    assert_eq!(
        (resent.kind.as_str(), &resent.model),
        (chosen.kind.as_str(), &chosen.model)
    );

    // Deleting the webhook deletes its log, both parts.
    r.delete_webhook(&admin, &hook.id).await.unwrap();
    assert_eq!(
        count("webhook_deliveries").await + count("webhook_delivered").await,
        0
    );
}

async fn two_registries_on_one_database_deliver_each_event_once() {
    let (dir, r) = registry().await;
    let r = r.with_webhooks(config(dir.path(), Duration::from_secs(3600)));
    let other = dir
        .open_again()
        .await
        .with_webhooks(config(dir.path(), Duration::from_secs(3600)));
    let receiver = Receiver::default();
    let url = receiver.start().await;
    r.create_webhook(&Actor::unrestricted("root"), &hook(&url, &["*"]))
        .await
        .unwrap();
    let (_one, _two) = (deliver(&r), deliver(&other));
    for n in 0..40 {
        change(
            if n % 2 == 0 { &r } else { &other },
            &format!("m{}", n % 8),
            n,
        )
        .await;
    }
    let got = receiver.wait_for(48).await;
    let mut ids: Vec<String> = receiver
        .got
        .lock()
        .unwrap()
        .iter()
        .map(|(h, _)| h["webhook-id"].to_str().unwrap().to_owned())
        .collect();
    assert_eq!(got.len(), 48, "8 creations and 40 descriptions");
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 48, "a delivery was sent twice");
}

async fn secrets_are_encrypted_and_webhooks_are_for_admins() {
    let (dir, r) = registry().await;
    let r = r.with_webhooks(config(dir.path(), Duration::from_secs(60)));
    let writer = Actor {
        name: "wes".into(),
        token: None,
        authority: cairn_core::access::Authority::Grants(vec![cairn_core::access::Grant {
            models: None,
            experiment: None,
            role: Some(cairn_core::auth::Role::Writer),
        }]),
    };
    let new = hook("http://127.0.0.1:9/hook", &["alias.*"]);
    assert!(matches!(
        r.create_webhook(&writer, &new).await,
        Err(Error::Forbidden(_))
    ));
    let admin = Actor::unrestricted("root");
    let created = r.create_webhook(&admin, &new).await.unwrap();
    assert!(created.signed);
    let stored = r.meta.webhook_row(&created.id).await.unwrap();
    assert!(!stored.secret.clone().unwrap().contains(SECRET));
    let log = r.audit_log(None, None).await.unwrap();
    let entry = log.iter().find(|e| e.action == "webhook.create").unwrap();
    assert!(!entry.after.as_ref().unwrap().to_string().contains(SECRET));

    // Without a secret, a URL the operator did not allow, an unknown event: refused.
    let mut unsigned = new.clone();
    unsigned.secret = None;
    assert!(r.create_webhook(&admin, &unsigned).await.is_err());
    let strict = r.clone().with_webhooks(WebhookConfig {
        allow_private: false,
        ..config(dir.path(), Duration::from_secs(60))
    });
    let refused = strict.create_webhook(&admin, &new).await.unwrap_err();
    assert!(refused.to_string().contains("scheme"), "{refused}");
    let mut loopback = new.clone();
    loopback.url = "https://127.0.0.1/hook".into();
    let refused = strict.create_webhook(&admin, &loopback).await.unwrap_err();
    assert!(refused.to_string().contains("non-public"), "{refused}");
    let mut unknown = new.clone();
    unknown.events = vec!["version.explode".into()];
    assert!(r.create_webhook(&admin, &unknown).await.is_err());

    // Updated and deleted, each audited.
    let update = cairn_core::webhook::WebhookUpdate {
        active: Some(false),
        ..Default::default()
    };
    assert!(
        !r.update_webhook(&admin, &created.id, &update)
            .await
            .unwrap()
            .active
    );
    r.delete_webhook(&admin, &created.id).await.unwrap();
    assert!(matches!(
        r.webhook(&admin, &created.id).await,
        Err(Error::NotFound(_))
    ));
    let actions: Vec<String> = r
        .audit_log(None, None)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.action)
        .collect();
    assert!(actions.contains(&"webhook.update".to_owned()));
    assert!(actions.contains(&"webhook.delete".to_owned()));
}

conformance!(
    every_event_once_signed_and_in_order_per_model,
    a_dead_endpoint_is_given_up_without_blocking_the_queue,
    a_delivered_event_is_logged_once_and_can_be_sent_again,
    two_registries_on_one_database_deliver_each_event_once,
    secrets_are_encrypted_and_webhooks_are_for_admins,
);
