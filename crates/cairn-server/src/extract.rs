//! Request extractors whose failures answer in the API's error format.

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use cairn_core::api::ACTOR_HEADER;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// JSON body; malformed or mistyped JSON is a 400 `malformed_json`, a missing JSON
/// content type a 415.
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(value)) => Ok(Self(value)),
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

/// Who makes a change: the `x-cairn-actor` header, self-declared until authentication
/// exists; `anonymous` when absent.
pub struct Actor(pub String);

impl<S: Send + Sync> FromRequestParts<S> for Actor {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        match parts.headers.get(ACTOR_HEADER) {
            None => Ok(Self("anonymous".into())),
            Some(value) => value.to_str().map(|s| Self(s.to_owned())).map_err(|_| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_argument",
                    format!("the {ACTOR_HEADER} header must be visible ASCII"),
                )
            }),
        }
    }
}
