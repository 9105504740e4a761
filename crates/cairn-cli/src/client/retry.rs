//! How the CLI rides out a registry that is briefly away — a server restarting, a
//! database failing over, a connection cut: requests are retried with exponential
//! backoff and jitter, by default for about a minute in all, saying so on stderr.
//!
//! Only what cannot be done twice by a retry is retried. A request that never reached
//! the server (no connection), or that the server refused before changing anything
//! (503 `database_unavailable` or `blob_store_unavailable`), is retried whatever it
//! is. A request cut off on the way, or answered 503 otherwise, may have taken effect:
//! it is retried only if doing it again changes nothing more — reads,
//! content-addressed uploads, `PUT`s, and writes that carry an idempotency key (every
//! push and alias move), whose repeat answers the first's result.

use std::hash::{BuildHasher, Hasher};
use std::time::{Duration, Instant};

use cairn_core::backoff::Backoff;
use reqwest::StatusCode;

/// Pauses between retries: from a quarter second, doubling, up to 8 s.
const PAUSES: Backoff = Backoff {
    first: Duration::from_millis(250),
    max: Duration::from_secs(8),
};

/// How long a request is retried in all, by default.
pub const DEFAULT_BUDGET: Duration = Duration::from_secs(60);

/// The `--retries` / `--no-retry` choice.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// At most this many retries (`None`: as many as fit in the budget).
    pub max_retries: Option<u32>,
    /// No retry starts after this long since the first attempt.
    pub budget: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_retries: None,
            budget: DEFAULT_BUDGET,
        }
    }
}

impl RetryPolicy {
    /// `--retries N` (at most N, within the budget) or `--no-retry`.
    pub fn from_flags(retries: Option<u32>, no_retry: bool) -> Self {
        Self {
            max_retries: if no_retry { Some(0) } else { retries },
            budget: DEFAULT_BUDGET,
        }
    }

    /// A fresh count of retries for one request.
    pub fn start(self) -> Retries {
        Retries {
            policy: self,
            started: Instant::now(),
            done: 0,
        }
    }
}

/// The retries of one request so far.
pub struct Retries {
    policy: RetryPolicy,
    started: Instant,
    done: u32,
}

impl Retries {
    /// Waits before the next attempt, saying why on stderr; `false` when no retry is
    /// left (the caller reports the last failure).
    pub async fn pause(&mut self, why: &str) -> bool {
        if self.policy.max_retries.is_some_and(|max| self.done >= max) {
            return false;
        }
        let pause = pause_before(self.done);
        if self.started.elapsed() + pause > self.policy.budget {
            return false;
        }
        self.done += 1;
        eprintln!(
            "cairn: {why}; retrying in {:.1}s (retry {})",
            pause.as_secs_f64(),
            self.done
        );
        tokio::time::sleep(pause).await;
        true
    }
}

/// The pause before retry `done + 1` ([`PAUSES`], with jitter: many clients failing
/// together do not come back together).
fn pause_before(done: u32) -> Duration {
    // A fresh randomly keyed hasher per call: randomness enough for jitter.
    let mut hasher = std::hash::RandomState::new().build_hasher();
    hasher.write_u32(done);
    PAUSES.delay(done, hasher.finish() as u32)
}

/// Whether doing a request twice changes no more than doing it once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Repeat {
    Harmless,
    /// It may take effect twice: retried only when it surely did not take effect.
    Unsafe,
}

/// Whether a request may be repeated: reads and `PUT`s (uploads by digest, alias moves,
/// policies), the question of which blobs are missing, and anything carrying an
/// idempotency key.
pub fn repeat_of(request: &reqwest::Request) -> Repeat {
    let method = request.method();
    let keyed = request
        .headers()
        .contains_key(cairn_core::api::IDEMPOTENCY_KEY_HEADER);
    let harmless = keyed
        || matches!(
            *method,
            reqwest::Method::GET | reqwest::Method::HEAD | reqwest::Method::PUT
        )
        || (method == reqwest::Method::POST && request.url().path().ends_with("/blobs/missing"));
    if harmless {
        Repeat::Harmless
    } else {
        Repeat::Unsafe
    }
}

/// Whether a request that failed without an answer is retried.
pub fn retry_failure(e: &reqwest::Error, repeat: Repeat) -> bool {
    // No connection: the server never saw the request.
    e.is_connect()
        || (repeat == Repeat::Harmless && (e.is_timeout() || e.is_request() || e.is_body()))
}

/// Whether an error answer (`status`, with the error body's `code`) is retried.
pub fn retry_answer(status: StatusCode, code: Option<&str>, repeat: Repeat) -> bool {
    match (status, code) {
        // Refused before anything changed: a store was not reached.
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Some("database_unavailable" | "blob_store_unavailable"),
        ) => true,
        // A key a concurrent attempt of this very request stored as this one ran.
        (StatusCode::CONFLICT, Some("idempotency_key_in_flight")) => repeat == Repeat::Harmless,
        // A commit whose outcome is unknown, a proxy without its server: the request
        // may have taken effect.
        (
            StatusCode::SERVICE_UNAVAILABLE | StatusCode::BAD_GATEWAY | StatusCode::GATEWAY_TIMEOUT,
            _,
        ) => repeat == Repeat::Harmless,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pauses_are_jittered() {
        // Jitter: not every client waits the same.
        let pauses: std::collections::HashSet<_> = (0..20).map(|_| pause_before(3)).collect();
        assert!(pauses.len() > 1);
    }

    #[test]
    fn only_what_cannot_happen_twice_is_retried() {
        use Repeat::*;
        let unavailable = StatusCode::SERVICE_UNAVAILABLE;
        assert!(retry_answer(
            unavailable,
            Some("database_unavailable"),
            Unsafe
        ));
        assert!(!retry_answer(unavailable, Some("commit_unknown"), Unsafe));
        assert!(retry_answer(unavailable, Some("commit_unknown"), Harmless));
        assert!(!retry_answer(
            StatusCode::CONFLICT,
            Some("idempotency_key_in_flight"),
            Unsafe
        ));
        assert!(retry_answer(
            StatusCode::CONFLICT,
            Some("idempotency_key_in_flight"),
            Harmless
        ));
        assert!(!retry_answer(
            StatusCode::CONFLICT,
            Some("conflict"),
            Harmless
        ));
        assert!(!retry_answer(
            StatusCode::INTERNAL_SERVER_ERROR,
            Some("internal"),
            Harmless
        ));
        assert!(!retry_answer(
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("idempotency_key_reused"),
            Harmless
        ));
    }

    #[test]
    fn writes_with_a_key_reads_and_puts_are_harmless_to_repeat() {
        let client = reqwest::Client::new();
        let request = |method, path: &str, key: bool| {
            let mut r = client.request(method, format!("http://registry{path}"));
            if key {
                r = r.header(cairn_core::api::IDEMPOTENCY_KEY_HEADER, "k");
            }
            repeat_of(&r.build().unwrap())
        };
        use reqwest::Method;
        assert_eq!(
            request(Method::GET, "/api/v1/models", false),
            Repeat::Harmless
        );
        assert_eq!(
            request(Method::PUT, "/api/v1/blobs/sha256/ab", false),
            Repeat::Harmless
        );
        assert_eq!(
            request(Method::POST, "/api/v1/blobs/missing", false),
            Repeat::Harmless
        );
        assert_eq!(
            request(Method::POST, "/api/v1/models/m/versions", true),
            Repeat::Harmless
        );
        assert_eq!(
            request(Method::POST, "/api/v1/models/m/versions", false),
            Repeat::Unsafe
        );
        assert_eq!(
            request(Method::DELETE, "/api/v1/models/m", false),
            Repeat::Unsafe
        );
    }
}
