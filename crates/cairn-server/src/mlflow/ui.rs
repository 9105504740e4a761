//! Endpoints `mlflow server` serves for its web UI (under `/ajax-api/2.0/mlflow` only,
//! except the logged-model listing): chart data over many runs, the datasets of
//! experiments, small uploads from the browser, and logged models' files.

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use axum::http::HeaderMap;
use axum::response::Response;
use cairn_core::source::artifact_path;
use cairn_registry::Registry;
use futures::stream;
use serde_json::{Value, json};

use super::artifacts::{listing, serve_blob};
use super::error::{BAD_REQUEST, MlflowError, MlflowResult};
use super::request::{Fields, form_urlencoded_pairs};

/// The largest file the UI may upload in one request (MLflow's limit).
const UPLOAD_MAX: usize = 10 * 1024 * 1024;

/// A path a client names under an artifact root: refused as MLflow refuses it.
fn safe_path(path: &str) -> MlflowResult<&str> {
    let decoded_dots = path.split('/').any(|part| part == "..");
    if decoded_dots || path.starts_with('/') || path.contains(['#', '\0', '\\']) {
        return Err(MlflowError::invalid("Invalid path"));
    }
    Ok(path.trim_matches('/'))
}

/// `POST upload-artifact?run_uuid=…&path=…`: the UI's upload of one small file into a
/// run's artifacts (the body is the file).
pub async fn upload_artifact(
    State(r): State<Registry>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: axum::body::Body,
) -> MlflowResult<Json<Value>> {
    let pairs = form_urlencoded_pairs(&query.unwrap_or_default());
    let param = |name: &str| {
        pairs
            .iter()
            .find(|(k, v)| k == name && !v.is_empty())
            .map(|(_, v)| v.clone())
    };
    let run_id =
        param("run_uuid").ok_or_else(|| MlflowError::invalid("Request must specify run_uuid."))?;
    let path = param("path").ok_or_else(|| MlflowError::invalid("Request must specify path."))?;
    let path = safe_path(&path)?.to_owned();
    let too_large = || MlflowError::invalid("Artifact size is too large. Max size is 10MB.");
    let declared = headers
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<usize>().ok());
    if declared.is_some_and(|n| n > UPLOAD_MAX) {
        return Err(too_large());
    }
    // Read at most one byte past the limit: a body that does not say its size is cut
    // off there, not buffered whole.
    let body = axum::body::to_bytes(body, UPLOAD_MAX)
        .await
        .map_err(|_| too_large())?;
    if body.is_empty() {
        return Err(MlflowError::invalid("Request must specify data."));
    }
    let run = r.tracking().run_info(&run_id).await?;
    let root = artifact_path(&run.artifact_uri).unwrap_or_default();
    let chunks = stream::iter([Ok::<_, std::io::Error>(body)]);
    r.tracking()
        .put_artifact(&format!("{root}/{path}"), chunks)
        .await?;
    Ok(Json(json!({})))
}

/// `POST experiments/search-datasets`: the datasets the runs of some experiments used,
/// with the context they were used in.
pub async fn search_datasets(State(r): State<Registry>, f: Fields) -> MlflowResult<Json<Value>> {
    let ids = f.str_list("experiment_ids")?;
    if ids.is_empty() {
        return Err(MlflowError::invalid(
            "SearchDatasets request must specify at least one experiment_id.",
        ));
    }
    if ids.len() > 20 {
        return Err(MlflowError::invalid(format!(
            "SearchDatasets request cannot specify more than 20 experiment_ids. Received {} experiment_ids.",
            ids.len()
        )));
    }
    let ids = ids
        .iter()
        .map(|id| {
            id.parse::<i64>().map_err(|_| {
                MlflowError::invalid(format!(
                    "Invalid experiment ID '{id}'. Experiment ID must be a valid integer."
                ))
            })
        })
        .collect::<MlflowResult<Vec<i64>>>()?;
    let summaries: Vec<Value> = r
        .tracking()
        .dataset_summaries(&ids)
        .await?
        .into_iter()
        .map(|d| {
            let mut v = json!({"experiment_id": d.experiment_id.to_string(), "name": d.name, "digest": d.digest});
            if let Some(context) = d.context.filter(|c| !c.is_empty()) {
                v["context"] = json!(context);
            }
            v
        })
        .collect();
    Ok(Json(match summaries.is_empty() {
        true => json!({}),
        false => json!({ "dataset_summaries": summaries }),
    }))
}

/// The artifact root of a logged model, as a path in the artifact store.
async fn logged_model_root(r: &Registry, id: &str) -> MlflowResult<(String, String)> {
    let m = r.tracking().get_logged_model(id).await?;
    let root = artifact_path(&m.artifact_uri).unwrap_or_default();
    Ok((m.artifact_uri, root))
}

/// `GET logged-models/{id}/artifacts/directories?artifact_directory_path=…`.
pub async fn list_logged_model_artifacts(
    State(r): State<Registry>,
    Path(id): Path<String>,
    f: Fields,
) -> MlflowResult<Json<Value>> {
    let sub = match f.opt_str("artifact_directory_path")? {
        Some(p) => safe_path(&p)?.to_owned(),
        None => String::new(),
    };
    let (uri, root) = logged_model_root(&r, &id).await?;
    let dir = match sub.is_empty() {
        true => root,
        false => format!("{root}/{sub}"),
    };
    let entries = r.tracking().list_artifacts(&dir).await?;
    let mut out = listing(entries, Some(&sub));
    out["root_uri"] = json!(uri);
    Ok(Json(out))
}

/// `GET logged-models/{id}/artifacts/files?artifact_file_path=…`: one file of a
/// logged model, for the UI's viewer.
pub async fn get_logged_model_artifact(
    State(r): State<Registry>,
    Path(id): Path<String>,
    f: Fields,
) -> MlflowResult<Response> {
    let Some(file) = f.opt_str("artifact_file_path")?.filter(|s| !s.is_empty()) else {
        return Err(MlflowError {
            code: BAD_REQUEST,
            message: "Request must include the \"artifact_file_path\" query parameter.".into(),
        });
    };
    let file = safe_path(&file)?.to_owned();
    let (_, root) = logged_model_root(&r, &id).await?;
    let path = format!("{root}/{file}");
    match r.tracking().artifact_blob(&path).await? {
        Some((digest, _)) => serve_blob(&r, &digest, &path).await,
        None => Err(MlflowError::not_found(format!(
            "No such artifact: '{path}'"
        ))),
    }
}
