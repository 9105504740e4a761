//! The UI's files, embedded in the binary: Cairn's stylesheet and chart script, and the
//! vendored uPlot (`assets/vendor/README.md`). Their URLs carry the build's version, so
//! browsers may keep them for a year and still never run a stale one.

use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

const FILES: &[(&str, &str, &[u8])] = &[
    (
        "cairn.css",
        "text/css; charset=utf-8",
        include_bytes!("../../assets/cairn.css"),
    ),
    (
        "cairn.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../assets/cairn.js"),
    ),
    (
        "uPlot.min.css",
        "text/css; charset=utf-8",
        include_bytes!("../../assets/vendor/uPlot.min.css"),
    ),
    (
        "uPlot.iife.min.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../assets/vendor/uPlot.iife.min.js"),
    ),
];

/// The URL of an embedded file.
pub fn url(file: &str) -> String {
    format!("/ui/assets/{file}?v={}", env!("CARGO_PKG_VERSION"))
}

pub async fn serve(Path(file): Path<String>) -> Response {
    match FILES.iter().find(|(name, _, _)| *name == file) {
        Some((_, content_type, bytes)) => (
            [
                (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
                (
                    header::CACHE_CONTROL,
                    HeaderValue::from_static("public, max-age=31536000, immutable"),
                ),
            ],
            *bytes,
        )
            .into_response(),
        None => super::error_page(
            StatusCode::NOT_FOUND,
            &format!("the UI has no file {file:?}"),
        ),
    }
}
