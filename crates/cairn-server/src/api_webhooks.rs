//! `/api/v1/webhooks`: register, change, test and delete webhooks, list their
//! deliveries, queue one again. Registry admins only (the registry checks too).

use axum::extract::{Path, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use cairn_core::api::ErrorBody;
use cairn_core::webhook::{
    Delivery, DeliveryState, NewWebhook, TestResult, Webhook, WebhookUpdate,
};
use cairn_registry::Registry;

use crate::access::Caller;
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiQuery};

type ApiResult<T> = Result<T, ApiError>;

pub fn routes() -> Router<Registry> {
    Router::new()
        .route("/webhooks", get(list_webhooks).post(create_webhook))
        .route(
            "/webhooks/{id}",
            get(get_webhook)
                .patch(update_webhook)
                .delete(delete_webhook),
        )
        .route("/webhooks/{id}/test", post(test_webhook))
        .route("/webhooks/{id}/deliveries", get(list_deliveries))
        .route("/webhook-deliveries/{id}/redeliver", post(redeliver))
}

#[utoipa::path(get, path = "/api/v1/webhooks", tag = "webhooks",
    responses((status = 200, description = "Every webhook, newest first (never their secrets)", body = Vec<Webhook>)))]
pub async fn list_webhooks(
    State(r): State<Registry>,
    Caller(actor): Caller,
) -> ApiResult<Json<Vec<Webhook>>> {
    Ok(Json(r.webhooks(&actor).await?))
}

#[utoipa::path(post, path = "/api/v1/webhooks", tag = "webhooks", request_body = NewWebhook,
    params(crate::api_v1::IdempotencyHeader),
    responses((status = 200, body = Webhook), (status = 400, description = "A URL, event or secret refused", body = ErrorBody)))]
pub async fn create_webhook(
    State(r): State<Registry>,
    Caller(actor): Caller,
    crate::extract::IdemKey(key): crate::extract::IdemKey,
    ApiJson(new): ApiJson<NewWebhook>,
) -> ApiResult<Json<Webhook>> {
    Ok(Json(
        r.create_webhook_keyed(&actor, &new, key.as_ref()).await?,
    ))
}

#[utoipa::path(get, path = "/api/v1/webhooks/{id}", tag = "webhooks",
    params(("id" = String, Path, description = "Webhook id")),
    responses((status = 200, body = Webhook), (status = 404, body = ErrorBody)))]
pub async fn get_webhook(
    State(r): State<Registry>,
    Caller(actor): Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Webhook>> {
    Ok(Json(r.webhook(&actor, &id).await?))
}

#[utoipa::path(patch, path = "/api/v1/webhooks/{id}", tag = "webhooks", request_body = WebhookUpdate,
    params(("id" = String, Path, description = "Webhook id")),
    responses((status = 200, body = Webhook), (status = 404, body = ErrorBody)))]
pub async fn update_webhook(
    State(r): State<Registry>,
    Caller(actor): Caller,
    Path(id): Path<String>,
    ApiJson(update): ApiJson<WebhookUpdate>,
) -> ApiResult<Json<Webhook>> {
    Ok(Json(r.update_webhook(&actor, &id, &update).await?))
}

#[utoipa::path(delete, path = "/api/v1/webhooks/{id}", tag = "webhooks",
    params(("id" = String, Path, description = "Webhook id")),
    responses((status = 200, description = "Deleted, with its deliveries"), (status = 404, body = ErrorBody)))]
pub async fn delete_webhook(
    State(r): State<Registry>,
    Caller(actor): Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<serde_json::Value>> {
    r.delete_webhook(&actor, &id).await?;
    Ok(Json(serde_json::json!({})))
}

#[utoipa::path(post, path = "/api/v1/webhooks/{id}/test", tag = "webhooks",
    params(("id" = String, Path, description = "Webhook id")),
    responses((status = 200, description = "What the endpoint answered a signed `webhook.test` event", body = TestResult)))]
pub async fn test_webhook(
    State(r): State<Registry>,
    Caller(actor): Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<TestResult>> {
    Ok(Json(r.test_webhook(&actor, &id, None).await?))
}

/// Which deliveries to list.
#[derive(serde::Deserialize, utoipa::IntoParams)]
pub struct DeliveriesQuery {
    /// `pending`, `delivered` or `failed`; every state when absent.
    state: Option<DeliveryState>,
    /// At most this many, newest event first (default 100, at most 1000).
    limit: Option<u32>,
}

#[utoipa::path(get, path = "/api/v1/webhooks/{id}/deliveries", tag = "webhooks",
    params(("id" = String, Path, description = "Webhook id"), DeliveriesQuery),
    responses((status = 200, body = Vec<Delivery>), (status = 404, body = ErrorBody)))]
pub async fn list_deliveries(
    State(r): State<Registry>,
    Caller(actor): Caller,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<DeliveriesQuery>,
) -> ApiResult<Json<Vec<Delivery>>> {
    let limit = q.limit.unwrap_or(100);
    Ok(Json(
        r.webhook_deliveries(&actor, &id, q.state, limit).await?,
    ))
}

#[utoipa::path(post, path = "/api/v1/webhook-deliveries/{id}/redeliver", tag = "webhooks",
    params(("id" = String, Path, description = "Delivery id")),
    responses((status = 200, description = "Queued again, due now", body = Delivery),
              (status = 409, description = "It is pending already", body = ErrorBody)))]
pub async fn redeliver(
    State(r): State<Registry>,
    Caller(actor): Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Delivery>> {
    Ok(Json(r.redeliver(&actor, &id).await?))
}
