//! Pages of the native API's listings: at most [`PAGE_MAX`] entries each, in a stable
//! order, with `Link: <…>; rel="next"` (RFC 8288) to the next page while there may be
//! one. Clients follow the link rather than guess: a page filtered for its caller can
//! be short and still have a next.

use axum::Json;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use serde::Serialize;

/// The largest page of a listing, and the size of a page unless asked for less.
pub const PAGE_MAX: u32 = 1000;

/// The page size asked for, within 1..=[`PAGE_MAX`].
pub fn limit(asked: Option<u32>) -> u32 {
    asked.unwrap_or(PAGE_MAX).clamp(1, PAGE_MAX)
}

/// A query value, percent-encoded for a link.
pub fn encode(value: &str) -> String {
    utf8_percent_encode(value, NON_ALPHANUMERIC).to_string()
}

/// `body` as JSON, linked to `next` (a path and query under `/api/v1`) when given.
pub fn page<T: Serialize>(body: T, next: Option<String>) -> Response {
    let mut response = Json(body).into_response();
    if let Some(next) = next
        && let Ok(value) = HeaderValue::from_str(&format!("</api/v1{next}>; rel=\"next\""))
    {
        response.headers_mut().insert(header::LINK, value);
    }
    response
}
