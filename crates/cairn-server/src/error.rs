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
    if e.is_database_unavailable() || e.is_blob_store_unavailable() {
        return StatusCode::SERVICE_UNAVAILABLE;
    }
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
        | Error::KeyInFlight(_)
        | Error::PolicyUnmet { .. } => StatusCode::CONFLICT,
        Error::KeyReused(_) => StatusCode::UNPROCESSABLE_ENTITY,
        Error::CommitUnknown(_) => StatusCode::SERVICE_UNAVAILABLE,
        Error::CorruptBlob(_)
        | Error::Database(_)
        | Error::Sqlite(_)
        | Error::Migration(_)
        | Error::Storage(_)
        | Error::BlobStoreLost(_)
        | Error::Io(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// How many seconds a client is asked to wait before retrying a 503.
const RETRY_AFTER_SECONDS: u32 = 1;

/// `Retry-After` on an answer that asks the client to come back (503).
pub(crate) fn add_retry_after(response: &mut Response) {
    response.headers_mut().insert(
        axum::http::header::RETRY_AFTER,
        axum::http::HeaderValue::from(RETRY_AFTER_SECONDS),
    );
}

/// What a client is told when a store cannot be reached or a commit's outcome is
/// unknown: which, and what to do; the details go to the log.
pub(crate) fn unavailable_message(e: &Error) -> String {
    match e {
        Error::CommitUnknown(_) => {
            "the database connection was lost while this write committed, and \
             whether it did could not be learned; retrying with the same Idempotency-Key is safe, \
             retrying without one may apply it twice"
                .into()
        }
        e if e.is_blob_store_unavailable() => {
            "the blob store cannot be reached; retry later".into()
        }
        _ => "the metadata store cannot be reached; retry later".into(),
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        let status = status_of(&e);
        if status == StatusCode::SERVICE_UNAVAILABLE {
            tracing::warn!(error = %e, "request failed; a store is unavailable");
            return Self::new(status, e.code(), unavailable_message(&e));
        }
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
        let mut response = (self.status, Json(body)).into_response();
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            add_retry_after(&mut response);
        }
        response
    }
}
