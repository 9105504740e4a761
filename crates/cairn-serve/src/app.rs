//! The serving process's HTTP routes: MLflow's scoring protocol (`POST /invocations`,
//! `GET /ping`, `/health`, `/version`) and `/metrics`.

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;

use crate::deployment::{Deployment, Loaded};
use crate::scoring::{self, ScoringError};

/// A body over this is refused (413) before it is parsed.
pub const DEFAULT_MAX_BODY: usize = 32 * 1024 * 1024;

/// The header naming the version (`NAME@N`) that answered.
pub const VERSION_HEADER: &str = "x-cairn-model-version";
/// The header carrying that version's digest.
pub const DIGEST_HEADER: &str = "x-cairn-model-digest";

#[derive(Clone)]
struct AppState {
    deployment: Arc<Deployment>,
    max_body: usize,
}

pub fn router(deployment: Arc<Deployment>, max_body: usize) -> Router {
    Router::new()
        .route("/invocations", post(invocations))
        .route("/ping", get(ping))
        .route("/health", get(health))
        .route("/version", get(version))
        .route("/metrics", get(metrics))
        .with_state(AppState {
            deployment,
            max_body,
        })
}

async fn invocations(State(state): State<AppState>, request: Request) -> Response {
    let started = Instant::now();
    let Some(loaded) = state.deployment.pick() else {
        let response = error(
            StatusCode::SERVICE_UNAVAILABLE,
            "MODEL_NOT_LOADED",
            "no version is loaded yet; see /health".to_owned(),
        );
        state
            .deployment
            .metrics
            .request("none", 503, started.elapsed());
        return response;
    };
    let response = match score(&state, &loaded, request).await {
        Ok(answer) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            answer,
        )
            .into_response(),
        Err(e) => e.into_response(),
    };
    let mut response = response;
    stamp(response.headers_mut(), &loaded);
    state.deployment.metrics.request(
        &loaded.label(),
        response.status().as_u16(),
        started.elapsed(),
    );
    response
}

/// Reads the body (within the limit) and scores it on a blocking thread: parsing a
/// large body and running the model are CPU work the async workers must not wait on.
async fn score(
    state: &AppState,
    loaded: &Arc<Loaded>,
    request: Request,
) -> Result<Vec<u8>, ScoringError> {
    let content_type = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = to_bytes(request.into_body(), state.max_body)
        .await
        .map_err(|_| ScoringError::TooLarge(state.max_body))?;
    let loaded = Arc::clone(loaded);
    tokio::task::spawn_blocking(move || scoring::score(&loaded, content_type.as_deref(), &body))
        .await
        .map_err(|e| ScoringError::Internal(format!("the scoring task failed: {e}")))?
}

fn stamp(headers: &mut HeaderMap, loaded: &Loaded) {
    if let Ok(v) = HeaderValue::from_str(&loaded.label()) {
        headers.insert(VERSION_HEADER, v);
    }
    if let Ok(v) = HeaderValue::from_str(&loaded.digest) {
        headers.insert(DIGEST_HEADER, v);
    }
}

fn error(status: StatusCode, code: &str, message: String) -> Response {
    (
        status,
        axum::Json(json!({"error_code": code, "message": message})),
    )
        .into_response()
}

impl IntoResponse for ScoringError {
    fn into_response(self) -> Response {
        let (status, code) = match &self {
            Self::TooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "REQUEST_LIMIT_EXCEEDED"),
            Self::UnsupportedMediaType(_) => (StatusCode::UNSUPPORTED_MEDIA_TYPE, "BAD_REQUEST"),
            Self::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL_ERROR"),
            // MLflow's codes: a request that does not fit the model's signature is an
            // invalid parameter value; anything else wrong with it a bad request.
            Self::Schema(_) => (StatusCode::BAD_REQUEST, "INVALID_PARAMETER_VALUE"),
            Self::BadRequest(_) | Self::Model(_) => (StatusCode::BAD_REQUEST, "BAD_REQUEST"),
        };
        error(status, code, self.to_string())
    }
}

/// MLflow's liveness answer: 200 with a newline once a model is loaded.
async fn ping(State(state): State<AppState>) -> Response {
    match state.deployment.primary.current() {
        Some(loaded) => {
            let mut response = (StatusCode::OK, "\n").into_response();
            stamp(response.headers_mut(), &loaded);
            response
        }
        None => (StatusCode::SERVICE_UNAVAILABLE, "\n").into_response(),
    }
}

/// What each followed reference serves, and the last failure to swap one in.
async fn health(State(state): State<AppState>) -> Response {
    let routes: Vec<_> = state
        .deployment
        .routes()
        .map(|route| {
            let current = route.current();
            json!({
                "reference": route.reference,
                "serving": current.as_ref().map(|l| json!({
                    "version": l.label(),
                    "digest": l.digest,
                    "load_seconds": l.load_time.as_secs_f64(),
                })),
                "failure": route.failure(),
            })
        })
        .collect();
    let serving = state.deployment.primary.current().is_some();
    let failing = state.deployment.routes().any(|r| r.failure().is_some());
    let status = match (serving, failing) {
        (false, _) => "unavailable",
        (true, true) => "degraded",
        (true, false) => "ok",
    };
    let code = if serving {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        code,
        axum::Json(json!({"status": status, "routes": routes})),
    )
        .into_response()
}

async fn version() -> Response {
    (StatusCode::OK, env!("CARGO_PKG_VERSION")).into_response()
}

async fn metrics(State(state): State<AppState>) -> Response {
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        Body::from(state.deployment.metrics.render()),
    )
        .into_response()
}
