//! The MLflow REST API as an adapter over Cairn's registry and tracking services: the
//! real `mlflow` client (2.x and 3.x) works against `cairn server` unchanged. MLflow's
//! quirks (string ids, query-string GETs, `{error_code, message}`, its statuses and
//! page tokens) live in this module only.

mod artifacts;
mod convert;
mod error;
mod logged_models;
mod paging;
mod registry;
mod request;
mod schema;
mod tracking;
mod ui;
mod users;
mod webhooks;

use axum::Router;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, patch, post};
use cairn_registry::Registry;

pub(crate) use error::{MlflowError, PERMISSION_DENIED, UNAUTHENTICATED};
pub(crate) use request::{Fields, query_map};

/// The endpoints under `/api/2.0/mlflow` (also served under `/ajax-api/2.0/mlflow` and
/// `/api/3.0/mlflow`).
fn api() -> Router<Registry> {
    use logged_models as lm;
    use registry as reg;
    use tracking as t;
    Router::new()
        .route("/experiments/create", post(t::create_experiment))
        .route("/experiments/get", get(t::get_experiment))
        .route("/experiments/get-by-name", get(t::get_experiment_by_name))
        .route(
            "/experiments/search",
            post(t::search_experiments).get(t::search_experiments),
        )
        .route("/experiments/update", post(t::update_experiment))
        .route("/experiments/delete", post(t::delete_experiment))
        .route("/experiments/restore", post(t::restore_experiment))
        .route(
            "/experiments/set-experiment-tag",
            post(t::set_experiment_tag),
        )
        .route(
            "/experiments/delete-experiment-tag",
            post(t::delete_experiment_tag),
        )
        .route("/runs/create", post(t::create_run))
        .route("/runs/get", get(t::get_run))
        .route("/runs/update", post(t::update_run))
        .route("/runs/delete", post(t::delete_run))
        .route("/runs/restore", post(t::restore_run))
        .route("/runs/log-metric", post(t::log_metric))
        .route("/runs/log-parameter", post(t::log_param))
        .route("/runs/set-tag", post(t::set_tag))
        .route("/runs/delete-tag", post(t::delete_tag))
        .route("/runs/log-batch", post(t::log_batch))
        .route("/runs/log-inputs", post(t::log_inputs))
        .route("/runs/outputs", post(t::log_outputs))
        .route("/runs/log-model", post(t::log_model))
        .route("/runs/search", post(t::search_runs))
        .route("/metrics/get-history", get(t::metric_history))
        .route(
            "/metrics/get-history-bulk-interval",
            get(t::metric_history_bulk_interval),
        )
        .route("/artifacts/list", get(artifacts::list_run_artifacts))
        .route("/logged-models", post(lm::create_logged_model))
        .route("/logged-models/search", post(lm::search_logged_models))
        .route(
            "/logged-models/{model_id}",
            get(lm::get_logged_model)
                .patch(lm::finalize_logged_model)
                .delete(lm::delete_logged_model),
        )
        .route(
            "/logged-models/{model_id}/tags",
            patch(lm::set_logged_model_tags),
        )
        .route(
            "/logged-models/{model_id}/params",
            post(lm::log_logged_model_params),
        )
        .route(
            "/logged-models/{model_id}/artifacts/directories",
            get(ui::list_logged_model_artifacts),
        )
        .route(
            "/logged-models/{model_id}/tags/{key}",
            delete(lm::delete_logged_model_tag),
        )
        .route(
            "/registered-models/create",
            post(reg::create_registered_model),
        )
        .route("/registered-models/get", get(reg::get_registered_model))
        .route(
            "/registered-models/update",
            patch(reg::update_registered_model),
        )
        .route(
            "/registered-models/rename",
            post(reg::rename_registered_model),
        )
        .route(
            "/registered-models/delete",
            delete(reg::delete_registered_model),
        )
        .route(
            "/registered-models/search",
            get(reg::search_registered_models),
        )
        .route(
            "/registered-models/set-tag",
            post(reg::set_registered_model_tag),
        )
        .route(
            "/registered-models/delete-tag",
            delete(reg::delete_registered_model_tag),
        )
        .route(
            "/registered-models/alias",
            post(reg::set_alias)
                .delete(reg::delete_alias)
                .get(reg::get_by_alias),
        )
        .route(
            "/registered-models/get-latest-versions",
            post(reg::get_latest_versions).get(reg::get_latest_versions),
        )
        .route("/model-versions/create", post(reg::create_model_version))
        .route("/model-versions/get", get(reg::get_model_version))
        .route("/model-versions/update", patch(reg::update_model_version))
        .route("/model-versions/delete", delete(reg::delete_model_version))
        .route("/model-versions/search", get(reg::search_model_versions))
        .route("/model-versions/set-tag", post(reg::set_model_version_tag))
        .route(
            "/model-versions/delete-tag",
            delete(reg::delete_model_version_tag),
        )
        .route(
            "/model-versions/transition-stage",
            post(reg::transition_stage),
        )
        .route(
            "/model-versions/get-download-uri",
            get(reg::get_download_uri),
        )
        .route("/users/create", post(users::create_user))
        .route("/users/get", get(users::get_user))
        .route("/users/current", get(users::current_user))
        .route("/users/list", get(users::list_users))
        .route("/users/update-password", patch(users::update_password))
        .route("/users/update-admin", patch(users::update_admin))
        .route("/users/delete", delete(users::delete_user))
        .route(
            "/registered-models/permissions/create",
            post(users::set_model_permission),
        )
        .route(
            "/registered-models/permissions/get",
            get(users::get_model_permission),
        )
        .route(
            "/registered-models/permissions/update",
            patch(users::set_model_permission),
        )
        .route(
            "/registered-models/permissions/delete",
            delete(users::delete_model_permission),
        )
        .route(
            "/experiments/permissions/create",
            post(users::set_experiment_permission),
        )
        .route(
            "/experiments/permissions/get",
            get(users::get_experiment_permission),
        )
        .route(
            "/experiments/permissions/update",
            patch(users::set_experiment_permission),
        )
        .route(
            "/experiments/permissions/delete",
            delete(users::delete_experiment_permission),
        )
        .route(
            "/webhooks",
            post(webhooks::create_webhook).get(webhooks::list_webhooks),
        )
        .route(
            "/webhooks/{webhook_id}",
            get(webhooks::get_webhook)
                .patch(webhooks::update_webhook)
                .delete(webhooks::delete_webhook),
        )
        .route("/webhooks/{webhook_id}/test", post(webhooks::test_webhook))
}

/// MLflow 3's per-user permissions (under the `/3.0` prefixes only).
fn permissions() -> Router<Registry> {
    Router::new()
        .route("/users/permissions/grant", post(users::grant_permission))
        .route("/users/permissions/revoke", post(users::revoke_permission))
        .route("/users/permissions/get", get(users::get_permission))
}

fn artifact_api() -> Router<Registry> {
    Router::new()
        .route("/mpu/create/{*path}", post(artifacts::create_multipart))
        .route("/mpu/complete/{*path}", post(artifacts::complete_multipart))
        .route("/mpu/abort/{*path}", post(artifacts::abort_multipart))
        .route(
            "/mpu/part/{upload_id}/{part}",
            axum::routing::put(artifacts::upload_part),
        )
        .route("/artifacts", get(artifacts::list))
        .route(
            "/artifacts/{*path}",
            get(artifacts::download)
                .put(artifacts::upload)
                .delete(artifacts::delete),
        )
}

/// What `mlflow server` serves for its UI under `/ajax-api/2.0/mlflow` only.
fn ui_only() -> Router<Registry> {
    Router::new()
        .route(
            "/metrics/get-history-bulk",
            get(tracking::metric_history_bulk),
        )
        .route("/experiments/search-datasets", post(ui::search_datasets))
        .route("/upload-artifact", post(ui::upload_artifact))
        .route(
            "/logged-models/{model_id}/artifacts/files",
            get(ui::get_logged_model_artifact),
        )
}

/// Whether `path` is under one of the MLflow API's prefixes.
pub fn is_mlflow_path(path: &str) -> bool {
    [
        "/api/2.0/mlflow",
        "/ajax-api/2.0/mlflow",
        "/api/3.0/mlflow",
        "/ajax-api/3.0/mlflow",
    ]
    .iter()
    .any(|prefix| path.starts_with(prefix))
}

/// An unknown route under the MLflow prefixes, answered as MLflow's clients expect:
/// `ENDPOINT_NOT_FOUND` (on which they fall back to older endpoints).
pub fn endpoint_not_found(path: &str) -> Response {
    error::MlflowError {
        code: error::ENDPOINT_NOT_FOUND,
        message: format!("No endpoint {path} on this server"),
    }
    .into_response()
}

pub fn routes() -> Router<Registry> {
    let v3 = api()
        .route("/server-info", get(tracking::server_info))
        .merge(permissions());
    Router::new()
        // The UI's file viewers, at the server's root as `mlflow server` serves them.
        .route("/get-artifact", get(artifacts::get_run_artifact))
        .route(
            "/model-versions/get-artifact",
            get(artifacts::get_version_artifact),
        )
        .nest("/api/2.0/mlflow", api())
        .nest("/ajax-api/2.0/mlflow", api().merge(ui_only()))
        .nest("/api/3.0/mlflow", v3.clone())
        .nest("/ajax-api/3.0/mlflow", v3)
        .nest("/api/2.0/mlflow-artifacts", artifact_api())
        .nest("/ajax-api/2.0/mlflow-artifacts", artifact_api())
        .route("/health", get(|| async { "OK" }))
}
