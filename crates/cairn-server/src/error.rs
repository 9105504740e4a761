//! How errors leave the server: `{"code", "message"}` with one exhaustive mapping from
//! registry errors to HTTP statuses. Client errors carry the registry's message;
//! internal errors are logged here and answered with a generic message.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use cairn_core::ValidationError;
use cairn_core::api::ErrorBody;
use cairn_registry::Error;

#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }
}

pub(crate) fn status_of(e: &Error) -> StatusCode {
    match e {
        Error::Invalid(_)
        | Error::InvalidArgument(_)
        | Error::InvalidSource { .. }
        | Error::Refused(_)
        | Error::DigestMismatch { .. }
        | Error::SizeMismatch { .. }
        | Error::UploadInterrupted(_)
        | Error::MissingBlobs(_) => StatusCode::BAD_REQUEST,
        Error::ModelNotFound(_)
        | Error::VersionNotFound { .. }
        | Error::AliasNotFound { .. }
        | Error::BlobNotFound(_)
        | Error::NotFound(_) => StatusCode::NOT_FOUND,
        Error::Forbidden(_) => StatusCode::FORBIDDEN,
        Error::ModelExists(_)
        | Error::AlreadyExists(_)
        | Error::Conflict(_)
        | Error::PolicyUnmet { .. } => StatusCode::CONFLICT,
        Error::CorruptBlob(_)
        | Error::Database(_)
        | Error::Sqlite(_)
        | Error::Migration(_)
        | Error::Storage(_)
        | Error::Io(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        let status = status_of(&e);
        // A damaged blob is the server's fault, and worth saying so as it is.
        if status.is_server_error() && !matches!(e, Error::CorruptBlob(_)) {
            tracing::error!(error = %e, "request failed");
            return Self::new(
                status,
                e.code(),
                "internal error; the server log has the details",
            );
        }
        Self::new(status, e.code(), e.to_string())
    }
}

impl From<ValidationError> for ApiError {
    fn from(e: ValidationError) -> Self {
        Error::from(e).into()
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            code: self.code.to_owned(),
            message: self.message,
        };
        (self.status, Json(body)).into_response()
    }
}
