//! The web UI: pages rendered on the server (maud) from the registry service, the same
//! calls the APIs make, behind the same guard. Every page is a plain URL (its state in
//! the path and query string), so any view can be shared; the only script draws charts
//! (uPlot, vendored in `assets/vendor`). Errors are pages too ([`UiError`]).
//!
//! One module per page family: `models` (the list and a model's page), `version`,
//! `compare`, `audit`, `tracking` (experiments, runs, metric charts); `layout` holds
//! the frame and the formatting every page shares; `assets` the embedded files.

mod assets;
mod audit;
mod compare;
mod layout;
mod models;
mod tracking;
mod version;

use axum::Router;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use cairn_core::access::Actor;
use cairn_core::auth::Role;
use cairn_registry::Registry;

pub use layout::error_page;

pub fn routes() -> Router<Registry> {
    Router::new()
        .route("/", get(models::list))
        .route("/models/{name}", get(models::model))
        .route("/models/{name}/versions/{reference}", get(version::page))
        .route(
            "/models/{name}/versions/{reference}/files/{*path}",
            get(version::download),
        )
        .route("/compare", get(compare::page))
        .route("/audit", get(audit::page))
        .route("/experiments", get(tracking::experiments))
        .route("/experiments/{experiment_id}", get(tracking::experiment))
        .route("/runs/{run_id}", get(tracking::run))
        .route(
            "/runs/{run_id}/metric-history",
            get(tracking::metric_history),
        )
        .route("/runs/{run_id}/artifacts/{*path}", get(tracking::artifact))
        .route("/ui/assets/{file}", get(assets::serve))
        .layer(axum::middleware::map_response(security_headers))
}

/// Pages run only the UI's own script and styles, are never framed, and are not
/// sniffed into another type.
async fn security_headers(mut response: Response) -> Response {
    use axum::http::{HeaderValue, header};
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; \
             form-action 'self'; frame-ancestors 'none'",
        ),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

/// Whether a matched route is one of the UI's: its refusals are pages, not JSON.
pub fn is_ui_route(route: &str) -> bool {
    route == "/"
        || [
            "/models/",
            "/compare",
            "/audit",
            "/experiments",
            "/runs/",
            "/ui/",
        ]
        .iter()
        .any(|prefix| route.starts_with(prefix))
}

/// A page that could not be shown: its status and what went wrong, in words.
#[derive(Debug)]
pub struct UiError {
    pub status: StatusCode,
    pub message: String,
}

impl UiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }
}

impl From<cairn_registry::Error> for UiError {
    fn from(e: cairn_registry::Error) -> Self {
        let status = crate::error::status_of(&e);
        if status == StatusCode::SERVICE_UNAVAILABLE {
            return Self::new(status, crate::error::unavailable_message(&e));
        }
        if status.is_server_error() {
            tracing::error!(error = %e, "page failed");
            return Self::new(status, "internal error; the server log has the details");
        }
        Self::new(status, e.to_string())
    }
}

impl From<cairn_core::ValidationError> for UiError {
    fn from(e: cairn_core::ValidationError) -> Self {
        cairn_registry::Error::from(e).into()
    }
}

impl IntoResponse for UiError {
    fn into_response(self) -> Response {
        error_page(self.status, &self.message)
    }
}

pub type UiResult<T> = Result<T, UiError>;

/// A query string's pairs, decoded; repeated names kept (compare takes several `v`).
pub(crate) struct Query(Vec<(String, String)>);

impl Query {
    pub fn parse(raw: Option<&str>) -> Self {
        Self(
            url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }

    /// The last non-empty value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(k, v)| k == name && !v.trim().is_empty())
            .map(|(_, v)| v.trim())
    }

    pub fn all(&self, name: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(k, v)| k == name && !v.trim().is_empty())
            .map(|(_, v)| v.trim())
            .collect()
    }

    /// A page number (1-based) from `page`, refused when it is not one.
    pub fn page(&self) -> UiResult<u64> {
        match self.get("page") {
            None => Ok(1),
            Some(p) => p
                .parse::<u64>()
                .ok()
                .filter(|p| (1..=1_000_000).contains(p))
                .ok_or_else(|| UiError::bad_request(format!("page {p:?} is not a page number"))),
        }
    }
}

/// A stored file as a download: streamed (read back through the blob store's hash
/// check), named by the last part of `path`.
fn attachment(blob: cairn_registry::blobs::BlobRead, path: &str) -> Response {
    use axum::http::{HeaderValue, header};
    use futures::TryStreamExt;
    let filename = path.rsplit('/').next().unwrap_or(path);
    let disposition = format!("attachment; filename*=UTF-8''{}", layout::segment(filename));
    let mut response =
        axum::body::Body::from_stream(blob.stream.map_err(axum::Error::new)).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(blob.size));
    // Percent-encoded: always a valid header value.
    if let Ok(value) = HeaderValue::try_from(disposition) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    response
}

/// Whether `actor` may read `model` (listings keep only those).
fn may_read(actor: &Actor, model: &str) -> bool {
    actor.may(Role::Reader, cairn_core::access::Scope::Model(model))
}
