//! One HTTP attempt of a webhook delivery: the body signed, the URL checked against
//! server-side request forgery on the addresses actually connected to.
//!
//! Every host name is resolved by [`PublicOnly`], which drops loopback, private,
//! link-local and other non-public addresses (unless the operator allows them) — the
//! check runs on the very addresses the connection uses, at each delivery, so a name
//! that resolves elsewhere later (DNS rebinding) gains nothing. IP literals, which are
//! not resolved, are checked by `check_url` before each attempt. Redirects are not
//! followed and proxies from the environment are not used: either would make the
//! checked peer another than the one that gets the request.
//!
//! Requests run on a runtime of their own whose threads only get CPU nobody else wants
//! (Linux's `SCHED_IDLE`): on a busy machine the writes that cause events come first
//! and deliveries use what is left, catching up when the load drops. (The database work of a delivery round
//! stays on the caller's runtime, so a slowed thread never holds the write lock.)

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use aws_lc_rs::hmac;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use cairn_core::webhook::{Protocol, check_url, is_public};

/// How long one attempt may take, connecting included.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How much of an answer's body is kept (for a test's report).
const BODY_KEPT: usize = 1024;

/// `v1,` + base64(HMAC-SHA256(secret, "{id}.{timestamp}.{body}")): MLflow's signature,
/// which is the Standard Webhooks scheme with the secret's bytes as the key.
pub fn signature(secret: &str, id: &str, timestamp: &str, body: &str) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
    let mut context = hmac::Context::with_key(&key);
    for part in [
        id.as_bytes(),
        b".",
        timestamp.as_bytes(),
        b".",
        body.as_bytes(),
    ] {
        context.update(part);
    }
    format!("v1,{}", STANDARD.encode(context.sign().as_ref()))
}

/// What an attempt got.
#[derive(Debug, Clone)]
pub struct Attempt {
    pub status_code: Option<u16>,
    pub error: Option<String>,
    pub latency_ms: u64,
    pub body: Option<String>,
}

impl Attempt {
    pub fn succeeded(&self) -> bool {
        self.error.is_none() && self.status_code.is_some_and(|s| (200..300).contains(&s))
    }
}

/// Sends webhook requests.
#[derive(Clone)]
pub struct Sender {
    client: reqwest::Client,
    allow_private: bool,
}

impl Sender {
    pub fn new(allow_private: bool) -> Self {
        let client = reqwest::Client::builder()
            .dns_resolver(PublicOnly { allow_private })
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(ATTEMPT_TIMEOUT)
            .user_agent(concat!("cairn-webhooks/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("the webhook client builds");
        Self {
            client,
            allow_private,
        }
    }

    /// Posts `body` to `url` as delivery `id` of `protocol`, signed with `secret`.
    pub async fn send(
        &self,
        url: &str,
        protocol: Protocol,
        id: &str,
        body: &str,
        secret: Option<&str>,
        event_type: &str,
    ) -> Attempt {
        let started = Instant::now();
        let elapsed = |started: Instant| started.elapsed().as_millis() as u64;
        if let Err(e) = check_url(url, self.allow_private) {
            return Attempt {
                status_code: None,
                error: Some(e.to_string()),
                latency_ms: 0,
                body: None,
            };
        }
        let timestamp = time::OffsetDateTime::now_utc().unix_timestamp().to_string();
        let (id_header, time_header, signature_header) = match protocol {
            Protocol::Cairn => ("webhook-id", "webhook-timestamp", "webhook-signature"),
            Protocol::Mlflow => (
                "X-MLflow-Delivery-Id",
                "X-MLflow-Timestamp",
                "X-MLflow-Signature",
            ),
        };
        let mut request = self
            .client
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(id_header, id)
            .header(time_header, &timestamp)
            .body(body.to_owned());
        if protocol == Protocol::Cairn {
            request = request.header("cairn-event-type", event_type);
        }
        if let Some(secret) = secret {
            request = request.header(signature_header, signature(secret, id, &timestamp, body));
        }
        let sent = background().spawn(async move {
            let response = request.send().await?;
            let status = response.status().as_u16();
            let mut kept = Vec::new();
            let mut stream = response;
            // Read a little of the answer, not all of whatever it sends.
            while kept.len() < BODY_KEPT {
                match stream.chunk().await {
                    Ok(Some(chunk)) => kept.extend_from_slice(&chunk),
                    _ => break,
                }
            }
            kept.truncate(BODY_KEPT);
            Ok::<_, reqwest::Error>((status, kept))
        });
        let sent = match sent.await {
            Ok(sent) => sent,
            Err(e) => {
                return Attempt {
                    status_code: None,
                    error: Some(format!("the delivery task failed: {e}")),
                    latency_ms: elapsed(started),
                    body: None,
                };
            }
        };
        match sent {
            Ok((status, kept)) => Attempt {
                status_code: Some(status),
                error: (!(200..300).contains(&status))
                    .then(|| format!("the endpoint answered HTTP {status}")),
                latency_ms: elapsed(started),
                body: Some(String::from_utf8_lossy(&kept).into_owned()),
            },
            Err(e) => Attempt {
                status_code: None,
                error: Some(describe(&e)),
                latency_ms: elapsed(started),
                body: None,
            },
        }
    }
}

/// The runtime webhook requests run on: two threads scheduled only when a CPU would
/// otherwise idle, made on first use and kept for the life of the process.
pub(crate) fn background() -> &'static tokio::runtime::Handle {
    static RUNTIME: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_name("cairn-webhooks")
                .on_thread_start(lowest_priority)
                .enable_all()
                .build()
                .expect("the webhook runtime starts")
        })
        .handle()
}

/// Puts the calling thread in `SCHED_IDLE` (Linux; it yields to any other thread at
/// once, unlike a nice value, which still takes slices from them), else at the lowest
/// nice value. Lowering one's own priority is always allowed; if it fails, deliveries
/// merely compete as equals.
fn lowest_priority() {
    use thread_priority::ThreadPriority;
    use thread_priority::unix::{
        NormalThreadSchedulePolicy, ThreadSchedulePolicy, set_thread_priority_and_policy,
        thread_native_id,
    };
    let idle = set_thread_priority_and_policy(
        thread_native_id(),
        ThreadPriority::Min,
        ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Idle),
    );
    if idle.is_err() {
        let _ = rustix::process::setpriority_process(Some(rustix::thread::gettid()), 19);
    }
}

/// An error's chain of causes in one line (reqwest's own message hides the cause:
/// "error sending request").
fn describe(e: &reqwest::Error) -> String {
    let mut text = if e.is_timeout() {
        format!("no answer within {}s", ATTEMPT_TIMEOUT.as_secs())
    } else {
        e.to_string()
    };
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// A resolver that answers only public addresses (or every address when allowed).
struct PublicOnly {
    allow_private: bool,
}

impl reqwest::dns::Resolve for PublicOnly {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let allow_private = self.allow_private;
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let usable: Vec<SocketAddr> = found
                .iter()
                .copied()
                .filter(|a| allow_private || is_public(a.ip()))
                .collect();
            if usable.is_empty() {
                let shown = found
                    .first()
                    .map(|a| a.ip().to_string())
                    .unwrap_or_default();
                return Err(format!(
                    "webhook host {host:?} resolves to {shown}, which is not a public address \
                     (cairn server --webhook-allow-private allows it)"
                )
                .into());
            }
            let addrs: reqwest::dns::Addrs = Box::new(usable.into_iter());
            Ok(addrs)
        })
    }
}

/// Resolves `host` now and fails if it has no public address: what creating or
/// changing a webhook checks (deliveries check again each time).
pub async fn check_host_resolves(url: &url::Url, allow_private: bool) -> Result<(), String> {
    if allow_private {
        return Ok(());
    }
    let Some(url::Host::Domain(host)) = url.host() else {
        return Ok(()); // literals are checked by `check_url`
    };
    let found = tokio::net::lookup_host((host, 0))
        .await
        .map_err(|e| format!("Cannot resolve Webhook URL hostname '{host}': {e}"))?;
    for addr in found {
        if !is_public(addr.ip()) {
            return Err(format!(
                "Webhook URL must not resolve to a non-public IP address. '{host}' resolves to {}.",
                addr.ip()
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A name that resolves to this machine is refused where it is resolved, at the
    /// attempt — not only when the webhook was made — unless private addresses are
    /// allowed; so is a private IP literal.
    #[tokio::test]
    async fn private_addresses_are_refused_at_each_attempt() {
        let strict = Sender::new(false);
        let body = "{}";
        let named = strict
            .send(
                "https://localhost:9/hook",
                Protocol::Cairn,
                "d1",
                body,
                None,
                "t",
            )
            .await;
        let error = named.error.unwrap();
        assert!(error.contains("not a public address"), "{error}");
        assert_eq!(named.status_code, None);
        let literal = strict
            .send(
                "https://169.254.169.254/latest",
                Protocol::Cairn,
                "d2",
                body,
                None,
                "t",
            )
            .await;
        assert!(literal.error.unwrap().contains("non-public"));
        // Allowed, it gets as far as the connection (refused: nothing listens there).
        let open = Sender::new(true)
            .send(
                "http://localhost:9/hook",
                Protocol::Cairn,
                "d3",
                body,
                None,
                "t",
            )
            .await;
        assert!(!open.error.unwrap().contains("public"));
    }

    /// A known answer, computed with Python's `hmac` as MLflow's receivers check it.
    #[test]
    fn signatures_follow_mlflow() {
        assert_eq!(
            signature("secret", "delivery-1", "1700000000", r#"{"a":1}"#),
            "v1,4Sc8/EYCY9ZTmGhUXeQTfQ4geJIivO5YbZDom/IvyaQ="
        );
    }
}
