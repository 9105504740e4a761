//! MLflow's error contract: `{"error_code", "message"}` with the status MLflow uses for
//! each code. Clients branch on the codes (`RESOURCE_DOES_NOT_EXIST` makes
//! `get_experiment_by_name` return None; `RESOURCE_ALREADY_EXISTS` lets `log_model` go on).

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use cairn_core::source::SourceProblem;
use cairn_registry::{Error, Missing, Refusal};
use serde_json::json;

#[derive(Debug)]
pub struct MlflowError {
    pub code: &'static str,
    pub message: String,
}

pub const RESOURCE_DOES_NOT_EXIST: &str = "RESOURCE_DOES_NOT_EXIST";
pub const INVALID_PARAMETER_VALUE: &str = "INVALID_PARAMETER_VALUE";
pub const RESOURCE_ALREADY_EXISTS: &str = "RESOURCE_ALREADY_EXISTS";
pub const INTERNAL_ERROR: &str = "INTERNAL_ERROR";
/// A route the server does not have: clients fall back to older endpoints on it.
pub const ENDPOINT_NOT_FOUND: &str = "ENDPOINT_NOT_FOUND";
/// A malformed request some of MLflow's UI endpoints refuse with this code (400).
pub const BAD_REQUEST: &str = "BAD_REQUEST";
/// A request body over the server's limit (MLflow names the code; its own server sets
/// no limit, so no status goes with it there: 413 is HTTP's).
pub const RESOURCE_LIMIT_EXCEEDED: &str = "RESOURCE_LIMIT_EXCEEDED";
/// The metadata store cannot be reached, or a commit's outcome could not be learned
/// (503): MLflow's clients retry it.
pub const TEMPORARILY_UNAVAILABLE: &str = "TEMPORARILY_UNAVAILABLE";
/// No valid credentials (401).
pub const UNAUTHENTICATED: &str = "UNAUTHENTICATED";
/// Valid credentials without the role the request needs (403).
pub const PERMISSION_DENIED: &str = "PERMISSION_DENIED";

impl MlflowError {
    pub fn invalid(message: impl Into<String>) -> Self {
        Self {
            code: INVALID_PARAMETER_VALUE,
            message: message.into(),
        }
    }

    pub fn too_large(message: impl Into<String>) -> Self {
        Self {
            code: RESOURCE_LIMIT_EXCEEDED,
            message: message.into(),
        }
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self {
            code: RESOURCE_DOES_NOT_EXIST,
            message: message.into(),
        }
    }

    fn status(&self) -> StatusCode {
        match self.code {
            RESOURCE_DOES_NOT_EXIST | ENDPOINT_NOT_FOUND => StatusCode::NOT_FOUND,
            INVALID_PARAMETER_VALUE | RESOURCE_ALREADY_EXISTS | BAD_REQUEST => {
                StatusCode::BAD_REQUEST
            }
            RESOURCE_LIMIT_EXCEEDED => StatusCode::PAYLOAD_TOO_LARGE,
            UNAUTHENTICATED => StatusCode::UNAUTHORIZED,
            PERMISSION_DENIED => StatusCode::FORBIDDEN,
            TEMPORARILY_UNAVAILABLE => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl From<Error> for MlflowError {
    fn from(e: Error) -> Self {
        let code = match &e {
            Error::ModelNotFound(_)
            | Error::VersionNotFound { .. }
            | Error::BlobNotFound(_)
            | Error::NotFound(_) => RESOURCE_DOES_NOT_EXIST,
            // MLflow answers an unknown alias with 400.
            Error::AliasNotFound { .. }
            | Error::Invalid(_)
            | Error::InvalidArgument(_)
            | Error::InvalidSource { .. }
            | Error::Refused(_)
            | Error::DigestMismatch { .. }
            | Error::SizeMismatch { .. }
            | Error::UploadInterrupted(_)
            | Error::MissingBlobs(_)
            | Error::Conflict(_)
            // MLflow's API carries no idempotency key: these never arise there.
            | Error::KeyInFlight(_)
            | Error::KeyReused(_)
            | Error::PolicyUnmet { .. } => INVALID_PARAMETER_VALUE,
            Error::ModelExists(_) | Error::AlreadyExists(_) => RESOURCE_ALREADY_EXISTS,
            Error::Forbidden(_) => PERMISSION_DENIED,
            Error::CorruptBlob(_) => {
                return Self {
                    code: INTERNAL_ERROR,
                    message: e.to_string(),
                };
            }
            e if e.is_database_unavailable()
                || e.is_blob_store_unavailable()
                || matches!(e, Error::CommitUnknown(_)) =>
            {
                tracing::warn!(error = %e, "MLflow request failed; a store is unavailable");
                return Self {
                    code: TEMPORARILY_UNAVAILABLE,
                    message: crate::error::unavailable_message(e),
                };
            }
            Error::CommitUnknown(_)
            | Error::Database(_)
            | Error::Sqlite(_)
            | Error::Migration(_)
            | Error::Storage(_)
            | Error::BlobStoreLost(_)
            | Error::Io(_) => {
                tracing::error!(error = %e, "MLflow request failed");
                return Self {
                    code: INTERNAL_ERROR,
                    message: "internal error; the server log has the details".into(),
                };
            }
        };
        let message = match &e {
            Error::NotFound(missing) => mlflow_words(missing),
            Error::InvalidSource { uri, problem } => source_words(uri, problem),
            Error::Refused(refusal) => refusal_words(refusal),
            Error::ModelNotFound(name) => format!("Registered Model with name={name} not found"),
            Error::VersionNotFound { model, reference } => {
                format!("Model Version (name={model}, version={reference}) not found")
            }
            Error::ModelExists(name) => format!("Registered Model (name={name}) already exists."),
            Error::AliasNotFound { alias, .. } => {
                format!("Registered model alias {alias} not found.")
            }
            _ => e.to_string(),
        };
        Self { code, message }
    }
}

/// What was not found, in `mlflow server`'s own words (its clients show them as is).
fn mlflow_words(missing: &Missing) -> String {
    match missing {
        Missing::Experiment(id) => format!("No Experiment with id={id} exists"),
        Missing::ExperimentNamed(name) => format!("Could not find experiment with name '{name}'"),
        Missing::Run(id) => format!("Run with id={id} not found"),
        Missing::RunTag { run, key } => format!("No tag with name: {key} in run with id {run}"),
        Missing::LoggedModel(id) => format!("Logged model with ID '{id}' not found."),
        Missing::LoggedModelTag { model, key } => format!(
            "No tag with key {} found for model with ID {}.",
            python_repr(key),
            python_repr(model)
        ),
        Missing::Upload(id) => format!("No multipart upload with id {id}"),
        Missing::User(name) => format!("User with username={name} not found"),
        Missing::Webhook(id) => format!("Webhook with ID {id} not found."),
        Missing::Policy(_) | Missing::WebhookDelivery(_) => missing.to_string(),
    }
}

/// A string as Python's `repr` writes it: in single quotes, or in double quotes when it
/// holds a single quote and no double one.
fn python_repr(s: &str) -> String {
    if s.contains('\'') && !s.contains('"') {
        return format!("\"{s}\"");
    }
    format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// A refused tracking write, in `mlflow server`'s words.
fn refusal_words(refusal: &Refusal) -> String {
    use cairn_registry::tracking::{BATCH_METRICS_MAX, BATCH_PARAMS_MAX, BATCH_TAGS_MAX};
    match refusal {
        Refusal::ExperimentDeleted { id, for_run: true } => {
            format!("The experiment {id} must be in the 'active' state. Current state is deleted.")
        }
        Refusal::ExperimentDeleted { id, for_run: false } => {
            format!("The experiment {id} must be in the 'active' state.")
        }
        Refusal::RunDeleted(id) => {
            format!("The run {id} must be in the 'active' state. Current state is deleted.")
        }
        Refusal::BatchTooLarge => format!(
            "A batch logging request can contain at most {BATCH_METRICS_MAX} metrics, {BATCH_PARAMS_MAX} params and {BATCH_TAGS_MAX} tags"
        ),
        Refusal::DuplicateParam(key) => {
            format!("Duplicate parameter keys have been submitted: {key}")
        }
        Refusal::ParamChanged { run, key, old, new } => format!(
            "Changing param values is not allowed. Param with key='{key}' was already logged with value='{old}' for run ID='{run}'. Attempted logging new value '{new}'."
        ),
    }
}

/// Why a version source was refused, worded as `mlflow server` words its refusals.
fn source_words(source: &str, problem: &SourceProblem) -> String {
    let why = match problem {
        SourceProblem::HostAddressed { scheme } => {
            return format!(
                "'source' cannot use the '{scheme}' scheme: the '{scheme}' scheme addresses a host other than the tracking server's configured artifact storage, so the server would connect to the host named in the URI."
            );
        }
        SourceProblem::LocalPath(owner) => {
            let field = owner.field();
            format!(
                "To use a local path as a model version source, the {field} request parameter has to be specified and the local path has to be contained within the artifact directory of the run specified by the {field}."
            )
        }
        SourceProblem::RelativeReference => "If supplying a source as an http, https, local file path, ftp, objectstore, or mlflow-artifacts uri, an absolute path must be provided without relative path references present. Please provide an absolute path.".to_owned(),
        SourceProblem::OtherRegistry => {
            "Registered model sources must use the active model registry.".to_owned()
        }
        SourceProblem::Malformed => {
            "The model_id request parameter must identify the resource that contains the source."
                .to_owned()
        }
        SourceProblem::OwnerMismatch(owner) => format!(
            "The {} request parameter must identify the resource that contains the source.",
            owner.field()
        ),
        SourceProblem::VersionOwnerMismatch => {
            "The run_id and model_id request parameters must match the referenced model version."
                .to_owned()
        }
    };
    format!("Invalid model version source: '{source}'. {why}")
}

impl From<cairn_core::ValidationError> for MlflowError {
    fn from(e: cairn_core::ValidationError) -> Self {
        Self::invalid(e.to_string())
    }
}

impl IntoResponse for MlflowError {
    fn into_response(self) -> Response {
        let status = self.status();
        let mut response = (
            status,
            Json(json!({"error_code": self.code, "message": self.message})),
        )
            .into_response();
        if status == StatusCode::SERVICE_UNAVAILABLE {
            crate::error::add_retry_after(&mut response);
        }
        response
    }
}

pub type MlflowResult<T> = Result<T, MlflowError>;
