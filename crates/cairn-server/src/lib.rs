//! Cairn's HTTP server: the native REST API (`/api/v1/`), its OpenAPI document, and the
//! health endpoints, over one [`Registry`]. The server keeps no state of its own.

mod access;
mod api_access;
mod api_diff;
mod api_policies;
mod api_v1;
mod api_webhooks;
mod browsers;
mod error;
mod events;
mod extract;
mod limits;
mod listen;
mod metrics;
mod mlflow;
mod openapi;
mod paging;
mod ui;
mod unread_body;

use std::net::SocketAddr;

use axum::extract::{DefaultBodyLimit, State};
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use cairn_registry::Registry;
use tokio::net::TcpListener;
use tower_http::trace::{DefaultMakeSpan, DefaultOnResponse, TraceLayer};
use tracing::Level;
use utoipa::OpenApi;

pub use access::{AccessOptions, CACHE_TTL};
pub use browsers::BrowserOptions;
pub use error::ApiError;
pub use limits::ServerLimits;
pub use listen::{TlsFiles, serve as serve_router};
pub use openapi::ApiDoc;

/// How a server behaves beyond its stores.
#[derive(Debug, Clone, Default)]
pub struct ServerOptions {
    pub access: AccessOptions,
    pub browsers: BrowserOptions,
    pub limits: ServerLimits,
    /// Serve HTTPS with this certificate and key.
    pub tls: Option<TlsFiles>,
}

impl ServerOptions {
    /// Whether the options hold together (patterns that parse, a known frame option):
    /// check before [`router`], which assumes they do.
    pub fn check(&self) -> Result<(), String> {
        browsers::Policy::new(&self.browsers).map(|_| ())
    }
}

/// The whole server. Panics on options [`ServerOptions::check`] refuses.
pub fn router(registry: Registry, options: &ServerOptions) -> Router {
    let gate = std::sync::Arc::new(access::Gate::new(registry.clone(), options.access.clone()));
    let policy = std::sync::Arc::new(
        browsers::Policy::new(&options.browsers).unwrap_or_else(|e| panic!("{e}")),
    );
    let limiter = limits::Limiter::new(&options.limits);
    let json_limit = options.limits.max_json_body;
    let metrics = std::sync::Arc::new(metrics::ServerMetrics::default());
    let exposition = metrics.clone();
    Router::new()
        .nest(
            "/api/v1",
            api_v1::routes()
                .merge(api_access::routes())
                .merge(api_policies::routes())
                .merge(api_webhooks::routes())
                .merge(api_diff::routes()),
        )
        .merge(mlflow::routes())
        .merge(ui::routes())
        .route("/api/v1/openapi.json", get(openapi_json))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route(
            "/metrics",
            get(move |State(r): State<Registry>| async move { metrics::render(&exposition, &r) }),
        )
        // Every route, before its handler: who is calling, and may they (the guard, the
        // outer layer); then the rate of their writes and the number of uploads.
        .route_layer(axum::middleware::from_fn_with_state(limiter, limits::limit))
        .route_layer(axum::middleware::from_fn_with_state(gate, access::guard))
        .fallback(not_found)
        // Outside the guard: refused requests are counted too, under their route.
        .layer(axum::middleware::from_fn_with_state(
            metrics,
            metrics::record,
        ))
        .layer(DefaultBodyLimit::max(json_limit))
        .layer(axum::Extension(extract::JsonLimit(json_limit)))
        .layer(tower_http::timeout::RequestBodyTimeoutLayer::new(
            options.limits.body_stall_timeout,
        ))
        .layer(axum::middleware::from_fn_with_state(
            policy.clone(),
            browsers::guard,
        ))
        .layer(policy.cors())
        .layer(
            // One INFO line per request: method, path, status, latency.
            TraceLayer::new_for_http()
                .make_span_with(DefaultMakeSpan::new().level(Level::INFO))
                .on_response(DefaultOnResponse::new().level(Level::INFO)),
        )
        // Outermost: a response that left its request's body unread goes out once the
        // connection can take the next request, or says it will close.
        .layer(tower::layer::layer_fn(unread_body::DrainUnreadBody))
        .with_state(registry)
}

async fn openapi_json() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

/// Ready when the metadata store answers.
async fn readyz(State(r): State<Registry>) -> Result<&'static str, ApiError> {
    r.check_ready().await.map_err(|e| {
        tracing::warn!(error = %e, "not ready");
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "not_ready",
            "the metadata store or the artifact store does not answer",
        )
    })?;
    Ok("ready")
}

async fn not_found(uri: Uri) -> Response {
    if mlflow::is_mlflow_path(uri.path()) {
        return mlflow::endpoint_not_found(uri.path());
    }
    ApiError::new(StatusCode::NOT_FOUND, "no_such_route", "no such endpoint").into_response()
}

/// Serves until `shutdown` completes, then finishes in-flight requests.
pub async fn serve(
    registry: Registry,
    options: &ServerOptions,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let addr: SocketAddr = listener.local_addr()?;
    tracing::info!(%addr, "serving");
    let tls = options.tls.as_ref().map(TlsFiles::load).transpose()?;
    // Long-polls end when shutdown starts, so draining does not wait out their waits.
    let (draining, drained) = tokio::sync::watch::channel(false);
    let shutdown = async move {
        shutdown.await;
        let _ = draining.send(true);
    };
    listen::serve(
        router(registry, options).layer(axum::Extension(listen::Draining(drained))),
        listener,
        &options.limits,
        tls,
        shutdown,
    )
    .await
}

/// Completes on SIGINT or SIGTERM. The handlers are installed when this is called, not
/// when it is first polled: call it before announcing the server, so a signal sent right
/// after the announcement shuts down gracefully instead of killing the process.
pub fn shutdown_signal() -> std::io::Result<impl Future<Output = ()> + Send + 'static> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut interrupt = signal(SignalKind::interrupt())?;
        let mut terminate = signal(SignalKind::terminate())?;
        Ok(async move {
            tokio::select! {
                _ = interrupt.recv() => {}
                _ = terminate.recv() => {}
            }
        })
    }
    #[cfg(not(unix))]
    {
        Ok(async {
            let _ = tokio::signal::ctrl_c().await;
        })
    }
}
