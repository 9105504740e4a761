//! Browsers cannot be turned against the server: a web page a user visits may send
//! requests to it (the user's browser can reach a server on localhost or the office
//! network), so the server checks what such a request cannot hide, as `mlflow server`
//! does with the same flags and defaults:
//! - the `Host` header must be one the server answers to (`--allowed-hosts`; by default
//!   loopback names and private network addresses), which defeats DNS rebinding;
//! - a state-changing API request (`POST`, `PUT`, `DELETE`, `PATCH`) with an `Origin`
//!   is refused unless the origin is local or allowed (`--cors-allowed-origins`);
//! - CORS answers name only those origins; every answer says `nosniff` and
//!   `X-Frame-Options` (`--x-frame-options`, `SAMEORIGIN` by default, `NONE` for none).
//!
//! A JSON content type, which a cross-site form cannot send without a preflight, is
//! required of MLflow and native request bodies by their extractors. Health checks are
//! exempt from the `Host` check so that load balancers can probe by address.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header::{HOST, ORIGIN};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use globset::{Glob, GlobMatcher};
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::error::ApiError;

/// What `mlflow server` answers to a foreign `Host`.
pub const INVALID_HOST: &str = "Invalid Host header - possible DNS rebinding attack detected";
/// What it answers to a cross-origin state change.
pub const CORS_BLOCKED: &str = "Cross-origin request blocked";

/// The browser-facing checks' settings (`cairn server` flags of MLflow's names).
#[derive(Debug, Clone)]
pub struct BrowserOptions {
    /// Host headers answered (globs, `*` for any); `None`: loopback names and private
    /// network addresses, with or without a port.
    pub allowed_hosts: Option<Vec<String>>,
    /// Origins besides the local ones that may make state-changing requests and read
    /// answers (globs; `*` for any, which also drops credentialed CORS).
    pub cors_allowed_origins: Vec<String>,
    /// `SAMEORIGIN`, `DENY`, or `NONE` for no header.
    pub x_frame_options: String,
}

impl Default for BrowserOptions {
    fn default() -> Self {
        Self {
            allowed_hosts: None,
            cors_allowed_origins: Vec::new(),
            x_frame_options: "SAMEORIGIN".into(),
        }
    }
}

/// The default allowed hosts, as `mlflow server`'s: `localhost` and loopback, private
/// network (RFC 1918) and unique-local IPv6 addresses, with or without a port. Unlike
/// its `10.*` glob, only address literals count: a name such as `10.evil.example`
/// (which an attacker's DNS may point at this machine) does not.
fn default_host(host: &str) -> bool {
    let name = match host.rsplit_once(':') {
        // `[v6]:port`, `v4:port`, `name:port`; a bare IPv6 address has many colons.
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) && !name.ends_with(':') => {
            if name.contains(':') && !name.starts_with('[') {
                host
            } else {
                name
            }
        }
        _ => host,
    };
    if name.eq_ignore_ascii_case("localhost") {
        return true;
    }
    match name
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<std::net::IpAddr>()
    {
        Ok(std::net::IpAddr::V4(ip)) => ip.is_loopback() || ip.is_private() || ip.is_unspecified(),
        Ok(std::net::IpAddr::V6(ip)) => {
            ip.is_loopback() || ip.is_unspecified() || (ip.segments()[0] & 0xfe00) == 0xfc00
        }
        Err(_) => false,
    }
}

/// A list of fnmatch-style patterns (`*`, `?`, `[...]`), as MLflow matches them.
struct Patterns {
    any: bool,
    exact: Vec<String>,
    globs: Vec<GlobMatcher>,
}

impl Patterns {
    fn new(patterns: &[String]) -> Result<Self, String> {
        let mut out = Self {
            any: false,
            exact: Vec::new(),
            globs: Vec::new(),
        };
        for p in patterns {
            if p == "*" {
                out.any = true;
            } else if p.contains(['*', '?', '[']) {
                let glob = Glob::new(p).map_err(|e| format!("pattern {p:?}: {e}"))?;
                out.globs.push(glob.compile_matcher());
            } else {
                out.exact.push(p.clone());
            }
        }
        Ok(out)
    }

    fn matches(&self, value: &str) -> bool {
        self.any
            || self.exact.iter().any(|e| e == value)
            || self.globs.iter().any(|g| g.is_match(value))
    }
}

/// The checks, compiled once.
pub(crate) struct Policy {
    /// `None`: the default hosts.
    hosts: Option<Patterns>,
    origins: Patterns,
    frame: Option<HeaderValue>,
}

impl Policy {
    pub fn new(options: &BrowserOptions) -> Result<Self, String> {
        let frame = options.x_frame_options.to_ascii_uppercase();
        let frame = match frame.as_str() {
            "NONE" => None,
            "SAMEORIGIN" | "DENY" => Some(HeaderValue::from_str(&frame).expect("ASCII")),
            other => {
                return Err(format!(
                    "--x-frame-options {other}: SAMEORIGIN, DENY or NONE"
                ));
            }
        };
        Ok(Self {
            hosts: options
                .allowed_hosts
                .as_deref()
                .map(Patterns::new)
                .transpose()?,
            origins: Patterns::new(&options.cors_allowed_origins)?,
            frame,
        })
    }

    /// The CORS layer: local origins and the allowed ones (any, without credentials,
    /// for `*`).
    pub fn cors(self: &Arc<Self>) -> CorsLayer {
        let methods = [
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::DELETE,
            Method::OPTIONS,
            Method::PATCH,
        ];
        let layer = CorsLayer::new().allow_methods(methods).allow_headers([
            axum::http::header::AUTHORIZATION,
            axum::http::header::CONTENT_TYPE,
            HeaderName::from_static("x-cairn-actor"),
        ]);
        if self.origins.any {
            return layer.allow_origin(AllowOrigin::any());
        }
        let policy = self.clone();
        layer
            .allow_credentials(true)
            .allow_origin(AllowOrigin::predicate(move |origin, _| {
                origin.to_str().is_ok_and(|o| policy.origin_allowed(o))
            }))
    }

    fn host_allowed(&self, host: &str) -> bool {
        match &self.hosts {
            Some(patterns) => patterns.matches(host),
            None => default_host(host),
        }
    }

    fn origin_allowed(&self, origin: &str) -> bool {
        is_local_origin(origin) || self.origins.matches(origin)
    }
}

/// Whether `origin` is a page served from this machine (as MLflow counts it).
fn is_local_origin(origin: &str) -> bool {
    url::Url::parse(origin).is_ok_and(|u| {
        matches!(
            u.host_str(),
            Some("localhost" | "127.0.0.1" | "[::1]" | "::1")
        )
    })
}

fn is_api(path: &str) -> bool {
    path.starts_with("/api/") || path.starts_with("/ajax-api/")
}

fn is_health(path: &str) -> bool {
    matches!(path, "/health" | "/healthz" | "/readyz" | "/version")
}

fn refuse(path: &str, message: &'static str) -> Response {
    if crate::mlflow::is_mlflow_path(path) {
        return crate::mlflow::MlflowError {
            code: crate::mlflow::PERMISSION_DENIED,
            message: message.to_owned(),
        }
        .into_response();
    }
    ApiError::new(StatusCode::FORBIDDEN, "forbidden", message).into_response()
}

/// The middleware (outside routing: unknown routes are checked too).
pub(crate) async fn guard(
    State(policy): State<Arc<Policy>>,
    request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path();
    if !is_health(path) {
        let host = request.headers().get(HOST).and_then(|h| h.to_str().ok());
        // HTTP/2 carries the host in the URI's authority.
        let host = host.or_else(|| request.uri().authority().map(|a| a.as_str()));
        if !host.is_some_and(|h| policy.host_allowed(h)) {
            tracing::warn!(host = ?host, "refused a request with a foreign Host header");
            return refuse(path, INVALID_HOST);
        }
    }
    let changes_state = matches!(
        *request.method(),
        Method::POST | Method::PUT | Method::DELETE | Method::PATCH
    );
    if changes_state && is_api(path) && !policy.origins.any {
        let origin = request.headers().get(ORIGIN).and_then(|o| o.to_str().ok());
        if let Some(origin) = origin
            && !policy.origin_allowed(origin)
        {
            tracing::warn!(%origin, "refused a cross-origin state change");
            return refuse(path, CORS_BLOCKED);
        }
    }
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(
        HeaderName::from_static("x-content-type-options"),
        HeaderValue::from_static("nosniff"),
    );
    if let Some(frame) = &policy.frame {
        headers.insert(HeaderName::from_static("x-frame-options"), frame.clone());
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_and_origins_match_as_mlflow_matches_them() {
        let policy = Policy::new(&BrowserOptions::default()).unwrap();
        for ok in [
            "localhost",
            "127.0.0.1:5000",
            "[::1]:80",
            "::1",
            "10.1.2.3:5000",
            "172.20.0.1",
            "192.168.1.1:8080",
            "[fd00::1]:5000",
            "0.0.0.0:5000",
        ] {
            assert!(policy.host_allowed(ok), "{ok}");
        }
        for foreign in [
            "evil.example",
            "172.32.0.1",
            "8.8.8.8:5000",
            "localhost.evil.example",
            "10.evil.example",
            "192.168.1.1.evil.example:80",
            "[2001:db8::1]:80",
            "",
        ] {
            assert!(!policy.host_allowed(foreign), "{foreign}");
        }
        assert!(policy.origin_allowed("http://localhost:3000"));
        assert!(!policy.origin_allowed("https://evil.example"));
        let configured = BrowserOptions {
            allowed_hosts: Some(vec!["registry.example.com".into(), "*.internal".into()]),
            cors_allowed_origins: vec!["https://*.example.com".into()],
            x_frame_options: "none".into(),
        };
        let policy = Policy::new(&configured).unwrap();
        assert!(policy.host_allowed("registry.example.com") && policy.host_allowed("a.internal"));
        assert!(!policy.host_allowed("localhost"));
        assert!(policy.origin_allowed("https://ui.example.com"));
        assert!(policy.frame.is_none());
        let bad = BrowserOptions {
            x_frame_options: "ALLOW-FROM x".into(),
            ..BrowserOptions::default()
        };
        assert!(Policy::new(&bad).is_err());
    }
}
