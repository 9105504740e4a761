//! Request extractors whose failures answer in the API's error format.

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// JSON bodies (manifests of many files) up to this size by default
/// (`--max-json-body`); blob bodies stream and have no limit.
pub const DEFAULT_JSON_LIMIT: usize = 32 * 1024 * 1024;

/// The JSON body limit of this server, as a request extension (set by the router).
#[derive(Debug, Clone, Copy)]
pub(crate) struct JsonLimit(pub usize);

/// The JSON body limit that applies to `req`.
pub(crate) fn json_limit(req: &Request) -> usize {
    req.extensions()
        .get::<JsonLimit>()
        .map_or(DEFAULT_JSON_LIMIT, |l| l.0)
}

/// A body declared (`Content-Length`) larger than the JSON limit: refused from its
/// headers, before a byte of it is read. Answers the declared length.
pub(crate) fn declared_too_large(req: &Request) -> Option<u64> {
    let limit = json_limit(req) as u64;
    req.headers()
        .get(axum::http::header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse::<u64>()
        .ok()
        .filter(|n| *n > limit)
}

/// Why a body is refused as too large, in words.
pub(crate) fn too_large_message(limit: usize, declared: Option<u64>) -> String {
    match declared {
        Some(n) => format!("the request body is {n} bytes; the limit is {limit}"),
        None => format!("the request body is larger than the limit of {limit} bytes"),
    }
}

/// JSON body; malformed or mistyped JSON is a 400 `malformed_json`, a missing JSON
/// content type a 415.
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let limit = json_limit(&req);
        if let Some(declared) = declared_too_large(&req) {
            return Err(too_large(limit, Some(declared)));
        }
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(value)) => Ok(Self(value)),
            // A body without a length that turned out too long.
            Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => Err(too_large(limit, None)),
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

/// Query parameters; a value that does not parse (a number that is not one) is a 400
/// `invalid_argument` in the API's error format.
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> axum::extract::FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(value)| Self(value))
            .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid_argument", e.body_text()))
    }
}

/// A whole body as bytes (for bodies that may be empty), refused in the API's error
/// format when too large.
pub struct RawBody(pub axum::body::Bytes);

impl<S: Send + Sync> FromRequest<S> for RawBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let limit = json_limit(&req);
        if let Some(declared) = declared_too_large(&req) {
            return Err(too_large(limit, Some(declared)));
        }
        axum::body::Bytes::from_request(req, state)
            .await
            .map(Self)
            .map_err(|e| match e.status() {
                StatusCode::PAYLOAD_TOO_LARGE => too_large(limit, None),
                status => ApiError::new(status, "unreadable_body", e.body_text()),
            })
    }
}

pub(crate) fn too_large(limit: usize, declared: Option<u64>) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        too_large_message(limit, declared),
    )
}

/// The request's `Idempotency-Key` header, if it has one; a malformed key is refused
/// (400) rather than ignored, so that a client never believes itself protected when
/// it is not.
pub struct IdemKey(pub Option<cairn_core::api::IdempotencyKey>);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for IdemKey {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _state: &S,
    ) -> Result<Self, Self::Rejection> {
        use cairn_core::api::{IDEMPOTENCY_KEY_HEADER, IdempotencyKey};
        let Some(value) = parts.headers.get(IDEMPOTENCY_KEY_HEADER) else {
            return Ok(Self(None));
        };
        let key = value
            .to_str()
            .map_err(|_| {
                cairn_core::ValidationError::Value(
                    IDEMPOTENCY_KEY_HEADER.into(),
                    "an idempotency key is visible ASCII, without spaces",
                )
            })
            .and_then(IdempotencyKey::new)?;
        Ok(Self(Some(key)))
    }
}
