//! Request extractors whose failures answer in the API's error format.

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// JSON bodies (manifests of many files) up to this size; blob bodies stream and have
/// no limit.
pub(crate) const JSON_BODY_LIMIT: usize = 256 * 1024 * 1024;

/// A body declared (`Content-Length`) larger than [`JSON_BODY_LIMIT`]: refused from its
/// headers, before a byte of it is read. Answers the declared length.
pub(crate) fn declared_too_large(req: &Request) -> Option<u64> {
    req.headers()
        .get(axum::http::header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse::<u64>()
        .ok()
        .filter(|n| *n > JSON_BODY_LIMIT as u64)
}

/// Why a body is refused as too large, in words.
pub(crate) fn too_large_message(declared: Option<u64>) -> String {
    match declared {
        Some(n) => format!("the request body is {n} bytes; the limit is {JSON_BODY_LIMIT}"),
        None => format!("the request body is larger than the limit of {JSON_BODY_LIMIT} bytes"),
    }
}

/// JSON body; malformed or mistyped JSON is a 400 `malformed_json`, a missing JSON
/// content type a 415.
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if let Some(declared) = declared_too_large(&req) {
            return Err(too_large(Some(declared)));
        }
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(value)) => Ok(Self(value)),
            // A body without a length that turned out too long.
            Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => Err(too_large(None)),
            Err(JsonRejection::MissingJsonContentType(e)) => Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                e.body_text(),
            )),
            // Well-formed JSON whose content breaks a rule (an unsafe path, a bad name).
            Err(JsonRejection::JsonDataError(e)) => Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_argument",
                e.body_text(),
            )),
            Err(e) => Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "malformed_json",
                e.body_text(),
            )),
        }
    }
}

/// A whole body as bytes (for bodies that may be empty), refused in the API's error
/// format when too large.
pub struct RawBody(pub axum::body::Bytes);

impl<S: Send + Sync> FromRequest<S> for RawBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if let Some(declared) = declared_too_large(&req) {
            return Err(too_large(Some(declared)));
        }
        axum::body::Bytes::from_request(req, state)
            .await
            .map(Self)
            .map_err(|e| match e.status() {
                StatusCode::PAYLOAD_TOO_LARGE => too_large(None),
                status => ApiError::new(status, "unreadable_body", e.body_text()),
            })
    }
}

pub(crate) fn too_large(declared: Option<u64>) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        too_large_message(declared),
    )
}
