//! What one client can take from the server, bounded: connections and their idle time
//! (see `listen`), the size of JSON bodies, the time a body may stall, how many streamed
//! uploads run at once (the rest wait their turn, holding no buffer), and how many
//! writes a second one token may make.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use cairn_core::access::{Actor, Authority};
use tokio::sync::Semaphore;

use crate::error::ApiError;

/// The limits, each with a default sized for one machine of a few cores.
#[derive(Debug, Clone)]
pub struct ServerLimits {
    /// Open connections at most; past it new ones wait in the kernel's backlog.
    pub max_connections: usize,
    /// Time to send a request's head, and the longest a connection may sit idle between
    /// requests: slow or idle clients are closed, so a fresh one always gets in.
    pub header_timeout: Duration,
    /// The largest request head (request line and headers), in bytes.
    pub max_header_bytes: usize,
    /// The largest JSON body (blob uploads stream and have no limit).
    pub max_json_body: usize,
    /// The longest a request body may go without sending a byte.
    pub body_stall_timeout: Duration,
    /// Streamed uploads running at once (each buffers up to one 8 MiB part).
    pub max_uploads: usize,
    /// How long an upload waits for its turn before it is refused with 503.
    pub upload_queue_timeout: Duration,
    /// Writes a second per token (with a burst of twice that); 0: no limit. Applies with
    /// authentication only: without it, there is no one to count against.
    pub writes_per_second: u32,
}

impl Default for ServerLimits {
    fn default() -> Self {
        Self {
            max_connections: 8192,
            header_timeout: Duration::from_secs(10),
            max_header_bytes: 64 * 1024,
            max_json_body: crate::extract::DEFAULT_JSON_LIMIT,
            body_stall_timeout: Duration::from_secs(60),
            max_uploads: 8,
            upload_queue_timeout: Duration::from_secs(30),
            writes_per_second: 1000,
        }
    }
}

/// The routes whose bodies stream to the blob store.
fn is_upload(method: &Method, route: &str) -> bool {
    match *method {
        Method::PUT => {
            route == "/api/v1/blobs/sha256/{digest}"
                || route.ends_with("-artifacts/artifacts/{*path}")
                || route.ends_with("/mpu/part/{upload_id}/{part}")
        }
        Method::POST => route.ends_with("/upload-artifact"),
        _ => false,
    }
}

/// The limiter's shared state.
pub(crate) struct Limiter {
    limits: ServerLimits,
    uploads: Semaphore,
    /// Per token: (allowance left, when it was last counted).
    writes: Mutex<HashMap<String, (f64, Instant)>>,
}

impl Limiter {
    pub fn new(limits: &ServerLimits) -> Arc<Self> {
        Arc::new(Self {
            uploads: Semaphore::new(limits.max_uploads.max(1)),
            limits: limits.clone(),
            writes: Mutex::default(),
        })
    }

    /// Whether `who` (a token, or a user logged in by password) may write now;
    /// otherwise the seconds until it may.
    fn take_write(&self, who: &str) -> Result<(), u64> {
        let rate = f64::from(self.limits.writes_per_second);
        if rate == 0.0 {
            return Ok(());
        }
        let burst = rate * 2.0;
        let mut writes = self.writes.lock().unwrap_or_else(|e| e.into_inner());
        if writes.len() > 100_000 {
            // Only ever as many entries as tokens in use; forget the full ones.
            writes.retain(|_, (left, _)| *left < burst);
        }
        let (left, at) = writes
            .entry(who.to_owned())
            .or_insert((burst, Instant::now()));
        *left = (*left + at.elapsed().as_secs_f64() * rate).min(burst);
        *at = Instant::now();
        if *left >= 1.0 {
            *left -= 1.0;
            Ok(())
        } else {
            Err(((1.0 - *left) / rate).ceil() as u64)
        }
    }
}

/// Whom a write counts against: its token, or for a password login its user; nobody
/// without authentication.
fn counted_as(actor: &Actor) -> Option<String> {
    match (&actor.token, &actor.authority) {
        (Some(token), _) => Some(format!("token:{token}")),
        (None, Authority::Grants(_)) => Some(format!("user:{}", actor.name)),
        (None, Authority::Unrestricted) => None,
    }
}

fn busy(code: &'static str, message: String, status: StatusCode, retry_after: u64) -> Response {
    let mut response = ApiError::new(status, code, message).into_response();
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(retry_after.max(1)));
    response
}

/// The middleware of every route (inside the access guard, which names the actor).
pub(crate) async fn limit(
    State(limiter): State<Arc<Limiter>>,
    request: Request,
    next: Next,
) -> Response {
    let method = request.method().clone();
    let writes = !matches!(method, Method::GET | Method::HEAD | Method::OPTIONS);
    if writes
        && let Some(who) = request.extensions().get::<Actor>().and_then(counted_as)
        && let Err(wait) = limiter.take_write(&who)
    {
        return busy(
            "rate_limited",
            format!(
                "this token makes writes faster than {} a second; retry in {wait} s",
                limiter.limits.writes_per_second
            ),
            StatusCode::TOO_MANY_REQUESTS,
            wait,
        );
    }
    let upload = request
        .extensions()
        .get::<MatchedPath>()
        .is_some_and(|route| is_upload(&method, route.as_str()));
    if !upload {
        return next.run(request).await;
    }
    let wait = limiter.limits.upload_queue_timeout;
    let permit = match tokio::time::timeout(wait, limiter.uploads.acquire()).await {
        Ok(Ok(permit)) => permit,
        _ => {
            return busy(
                "too_many_uploads",
                format!(
                    "{} uploads are in progress; retry later",
                    limiter.limits.max_uploads
                ),
                StatusCode::SERVICE_UNAVAILABLE,
                5,
            );
        }
    };
    let response = next.run(request).await;
    drop(permit);
    response
}
