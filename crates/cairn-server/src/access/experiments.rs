//! Which experiments a tracking request acts on, for callers whose grants are per
//! experiment (a caller with a role on every model never gets here: no lookup, no
//! parsing). MLflow names them directly (`experiment_id`, `experiment_ids`), through a
//! run (`run_id`, `run_uuid`, `run_ids`), a logged model (`{model_id}`), an experiment's
//! name, or an artifact path (`EXPERIMENT/RUN/artifacts/…`). A request that names none
//! needs a role on every model, as before.

use axum::body::Body;
use axum::extract::{FromRequest, Request};
use axum::http::Method;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use cairn_registry::Registry;
use cairn_registry::tracking::Owned;
use serde_json::Value;

use super::path_param;
use crate::mlflow::{Fields, query_map};

/// What a tracking request acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Named {
    /// These experiments (every one must allow the request).
    Experiments(Vec<i64>),
    /// A listing of experiments, filtered entry by entry.
    AnyExperiment,
    /// Nothing the guard can tell: a role on every model is needed.
    Nothing,
}

fn ids(value: &Value) -> Vec<String> {
    match value {
        Value::Array(items) => items.iter().flat_map(ids).collect(),
        Value::String(s) => vec![s.clone()],
        Value::Number(n) => vec![n.to_string()],
        _ => Vec::new(),
    }
}

/// The experiments `request` (on `route`) acts on. Request bodies are read only where
/// MLflow sends JSON fields, and handed on parsed, as for model names.
pub async fn experiments_named(
    registry: &Registry,
    route: &str,
    request: Request,
) -> Result<(Request, Named), Response> {
    let (mut parts, body) = request.into_parts();
    // Artifact paths start with the experiment's id.
    if route.contains("-artifacts/artifacts") {
        let path = path_param(&mut parts, "path")
            .await
            .or_else(|| query_field(&parts, "path"));
        let experiment = path
            .as_deref()
            .and_then(|p| p.trim_start_matches('/').split('/').next())
            .and_then(|id| id.parse().ok());
        let named = experiment.map_or(Named::Nothing, |id| Named::Experiments(vec![id]));
        return Ok((Request::from_parts(parts, body), named));
    }
    if let Some(model) = path_param(&mut parts, "model_id").await {
        let named = resolve(registry, &[], &[], Some(&model), None).await;
        return Ok((Request::from_parts(parts, body), named));
    }
    // The web UI names experiments and runs in its paths.
    let path_experiment: Vec<String> = path_param(&mut parts, "experiment_id")
        .await
        .into_iter()
        .collect();
    let path_run: Vec<String> = path_param(&mut parts, "run_id").await.into_iter().collect();
    let streamed = route.ends_with("/upload-artifact") || route.contains("/mpu/");
    let (request, fields) = if parts.method == Method::GET || streamed {
        let fields = query_fields(&parts);
        (Request::from_parts(parts, body), fields)
    } else {
        let probe = Request::from_parts(parts.clone(), body);
        match Fields::from_request(probe, &()).await {
            Ok(parsed) => {
                let map = parsed.map.clone();
                let mut request = Request::from_parts(parts, Body::empty());
                request.extensions_mut().insert(parsed);
                (request, map)
            }
            Err(e) => return Err(e.into_response()),
        }
    };
    let get = |field: &str| fields.get(field).map(ids).unwrap_or_default();
    let experiments: Vec<String> =
        [get("experiment_id"), get("experiment_ids"), path_experiment].concat();
    let runs: Vec<String> = [get("run_id"), get("run_uuid"), get("run_ids"), path_run].concat();
    let name = route
        .ends_with("/experiments/get-by-name")
        .then(|| get("experiment_name").pop())
        .flatten();
    // A listing of experiments (MLflow's search, the UI's list) is filtered entry by
    // entry.
    let listing = route.ends_with("/experiments/search") || route == "/experiments";
    if listing && experiments.is_empty() {
        return Ok((request, Named::AnyExperiment));
    }
    let named = resolve(registry, &experiments, &runs, None, name.as_deref()).await;
    Ok((request, named))
}

/// The experiment ids named directly and through runs, a logged model or a name. Any
/// id that does not parse or resolve makes the request name `Nothing` it can be allowed
/// by: an experiment grant never lets a caller probe what it does not hold.
async fn resolve(
    registry: &Registry,
    experiments: &[String],
    runs: &[String],
    logged_model: Option<&str>,
    name: Option<&str>,
) -> Named {
    let mut found = Vec::new();
    for id in experiments {
        match id.trim().parse() {
            Ok(id) => found.push(id),
            Err(_) => return Named::Nothing,
        }
    }
    let owned = runs
        .iter()
        .map(|r| Owned::Run(r))
        .chain(logged_model.map(Owned::LoggedModel))
        .chain(name.map(Owned::ExperimentNamed));
    for thing in owned {
        match registry.tracking().experiment_of(thing).await {
            Ok(Some(id)) => found.push(id),
            _ => return Named::Nothing,
        }
    }
    if found.is_empty() {
        Named::Nothing
    } else {
        Named::Experiments(found)
    }
}

fn query_fields(parts: &Parts) -> serde_json::Map<String, Value> {
    query_map(parts.uri.query())
}

fn query_field(parts: &Parts, field: &str) -> Option<String> {
    query_fields(parts).get(field).and_then(|v| ids(v).pop())
}
