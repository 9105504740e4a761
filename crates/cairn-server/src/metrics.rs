//! `/metrics` of `cairn server`, in Prometheus' text format: requests and latency per
//! route (the route's template, never the raw path: names in paths would make a
//! series per model and version), server errors, and the metadata store's connections.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use cairn_registry::Registry;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};

type Labels = Vec<(&'static str, String)>;

pub struct ServerMetrics {
    registry: prometheus_client::registry::Registry,
    requests: Family<Labels, Counter>,
    errors: Family<Labels, Counter>,
    latency: Family<Labels, Histogram, fn() -> Histogram>,
    pool_open: Gauge<i64, std::sync::atomic::AtomicI64>,
    pool_idle: Gauge<i64, std::sync::atomic::AtomicI64>,
}

fn latency_histogram() -> Histogram {
    // 100 µs to ~26 s.
    Histogram::new(exponential_buckets(0.000_1, 2.0, 19))
}

impl Default for ServerMetrics {
    fn default() -> Self {
        let mut registry = prometheus_client::registry::Registry::with_prefix("cairn_server");
        let requests = Family::default();
        let errors = Family::default();
        let latency = Family::<Labels, Histogram, fn() -> Histogram>::new_with_constructor(
            latency_histogram as fn() -> Histogram,
        );
        let pool_open = Gauge::default();
        let pool_idle = Gauge::default();
        registry.register(
            "requests",
            "Requests answered, by route, method and status",
            requests.clone(),
        );
        registry.register(
            "errors",
            "Requests answered with a server error (5xx), by route and method",
            errors.clone(),
        );
        registry.register(
            "request_duration_seconds",
            "Time to answer a request, by route and method",
            latency.clone(),
        );
        registry.register(
            "db_connections_open",
            "Metadata store connections open (PostgreSQL: the pool; SQLite: the readers)",
            pool_open.clone(),
        );
        registry.register(
            "db_connections_idle",
            "Metadata store connections open and idle",
            pool_idle.clone(),
        );
        Self {
            registry,
            requests,
            errors,
            latency,
            pool_open,
            pool_idle,
        }
    }
}

/// Counts every request the router answers, under its route's template.
pub async fn record(
    State(metrics): State<Arc<ServerMetrics>>,
    request: Request,
    next: Next,
) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = request.method().as_str().to_owned();
    let started = Instant::now();
    let response = next.run(request).await;
    let status = response.status();
    let labels = vec![("route", route), ("method", method)];
    metrics
        .latency
        .get_or_create(&labels)
        .observe(started.elapsed().as_secs_f64());
    if status.is_server_error() {
        metrics.errors.get_or_create(&labels).inc();
    }
    let mut labels = labels;
    labels.push(("status", status.as_u16().to_string()));
    metrics.requests.get_or_create(&labels).inc();
    response
}

/// The exposition, with the connection pool read now.
pub fn render(metrics: &ServerMetrics, registry: &Registry) -> Response {
    let pool = registry.pool_stats();
    metrics.pool_open.set(i64::from(pool.open));
    metrics.pool_idle.set(i64::from(pool.idle));
    let mut text = String::new();
    encode(&mut text, &metrics.registry).expect("writing to a String cannot fail");
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    )
        .into_response()
}
