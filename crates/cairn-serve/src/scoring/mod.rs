//! MLflow's scoring protocol: a request body parsed (`request`), checked against the
//! model and its signature and turned into tensors (`feed`), run, and the outputs
//! shaped as `mlflow models serve` answers (`answer`).

mod answer;
mod feed;
mod request;

pub use feed::Style;
pub use request::Payload;

use crate::deployment::Loaded;
use crate::model::ModelError;
use crate::signature::Signature;

/// Why a request was not scored. Every variant but `Internal` is the client's to fix.
#[derive(Debug, thiserror::Error)]
pub enum ScoringError {
    /// The body cannot be read as a request (JSON, CSV, the protocol's fields).
    #[error("{0}")]
    BadRequest(String),
    /// The request does not fit the model: a column, an input, a type, a shape.
    #[error("{0}")]
    Schema(String),
    /// onnxruntime refused the input.
    #[error("{0}")]
    Model(String),
    #[error("the body is over the limit of {0} bytes")]
    TooLarge(usize),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("{0}")]
    Internal(String),
}

/// Scores one request body on `loaded`; answers the JSON body.
pub fn score(
    loaded: &Loaded,
    content_type: Option<&str>,
    body: &[u8],
) -> Result<Vec<u8>, ScoringError> {
    // A model whose signature names columns takes `inputs` as an object of columns.
    let named_columns = matches!(
        &loaded.signature,
        Some(signature @ Signature::Columns(_)) if signature.column_names().is_some()
    );
    let payload = request::parse(content_type, body, named_columns)?;
    let prepared = feed::prepare(payload, &loaded.model, loaded.signature.as_ref())?;
    let outputs = loaded.model.run(prepared.feeds).map_err(|e| match e {
        ModelError::Run(message) => ScoringError::Model(message),
        other => ScoringError::Internal(other.to_string()),
    })?;
    serde_json::to_vec(&answer::answer(outputs, prepared.style))
        .map_err(|e| ScoringError::Internal(e.to_string()))
}
