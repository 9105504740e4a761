//! `/api/v1/` promotion policies, approvals and promotion checks. Who may set a policy
//! (an admin of its model, or of every model for a pattern) and what a move needs are
//! the registry's to decide; these handlers parse and answer.

use axum::extract::{Path, State};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use cairn_core::access::Scope;
use cairn_core::api::{Approve, Approved, ErrorBody, PromotionCheck};
use cairn_core::auth::Role;
use cairn_core::policy::{Policy, PolicyRecord};
use cairn_core::{AliasName, ModelName, VersionRef};
use cairn_registry::Registry;

use crate::access::Caller;
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiQuery};

type ApiResult<T> = Result<T, ApiError>;

pub fn routes() -> Router<Registry> {
    Router::new()
        .route("/policies", get(list_policies))
        .route(
            "/policies/{models}/{alias}",
            put(set_policy).delete(delete_policy),
        )
        .route(
            "/models/{name}/versions/{reference}/approvals",
            post(approve),
        )
        .route("/models/{name}/aliases/{alias}/check", get(check_promotion))
}

#[utoipa::path(get, path = "/api/v1/policies", tag = "policies",
    responses((status = 200, description = "Every policy the caller may see", body = Vec<PolicyRecord>)))]
pub async fn list_policies(
    State(r): State<Registry>,
    Caller(actor): Caller,
) -> ApiResult<Json<Vec<PolicyRecord>>> {
    let mut policies = r.policies().await?;
    // A policy of one model is that model's to read; a pattern's, everyone's.
    policies.retain(|p| !p.is_for_one_model() || actor.may(Role::Reader, Scope::Model(&p.models)));
    Ok(Json(policies))
}

#[utoipa::path(put, path = "/api/v1/policies/{models}/{alias}", tag = "policies", request_body = Policy,
    params(("models" = String, Path, description = "A model name, or a pattern of `*` and `?`"),
           ("alias" = String, Path, description = "Alias")),
    responses((status = 200, body = PolicyRecord), (status = 403, body = ErrorBody)))]
pub async fn set_policy(
    State(r): State<Registry>,
    Caller(actor): Caller,
    Path((models, alias)): Path<(String, String)>,
    ApiJson(policy): ApiJson<Policy>,
) -> ApiResult<Json<PolicyRecord>> {
    let alias = AliasName::new(&alias)?;
    Ok(Json(r.set_policy(&actor, &models, &alias, &policy).await?))
}

#[utoipa::path(delete, path = "/api/v1/policies/{models}/{alias}", tag = "policies",
    params(("models" = String, Path, description = "A model name or pattern"), ("alias" = String, Path, description = "Alias")),
    responses((status = 200, description = "Deleted"), (status = 404, body = ErrorBody)))]
pub async fn delete_policy(
    State(r): State<Registry>,
    Caller(actor): Caller,
    Path((models, alias)): Path<(String, String)>,
) -> ApiResult<Json<serde_json::Value>> {
    let alias = AliasName::new(&alias)?;
    if !r.delete_policy(&actor, &models, &alias).await? {
        return Err(
            cairn_registry::Error::NotFound(cairn_registry::Missing::Policy(format!(
                "{models}@{alias}"
            )))
            .into(),
        );
    }
    Ok(Json(serde_json::json!({})))
}

#[utoipa::path(post, path = "/api/v1/models/{name}/versions/{reference}/approvals", tag = "policies", request_body = Approve,
    params(("name" = String, Path, description = "Model name"), ("reference" = String, Path, description = "Version number")),
    responses((status = 200, body = Approved), (status = 409, description = "The caller is the version's author", body = ErrorBody)))]
pub async fn approve(
    State(r): State<Registry>,
    Caller(actor): Caller,
    Path((name, reference)): Path<(String, String)>,
    ApiJson(req): ApiJson<Approve>,
) -> ApiResult<Json<Approved>> {
    let model = ModelName::new(&name)?;
    let number = number_of(&model, &reference)?;
    let alias = AliasName::new(&req.alias)?;
    let recorded = r
        .approve(&actor, &model, number, &alias, req.reason.as_deref())
        .await?;
    Ok(Json(Approved { recorded }))
}

/// Parameters of a promotion check.
#[derive(serde::Deserialize, utoipa::IntoParams)]
pub struct CheckQuery {
    /// The version the alias would move to.
    version: u64,
}

#[utoipa::path(get, path = "/api/v1/models/{name}/aliases/{alias}/check", tag = "policies",
    params(("name" = String, Path, description = "Model name"), ("alias" = String, Path, description = "Alias"), CheckQuery),
    responses((status = 200, description = "Every rule the move would break (none: it may move)", body = PromotionCheck)))]
pub async fn check_promotion(
    State(r): State<Registry>,
    Path((name, alias)): Path<(String, String)>,
    ApiQuery(q): ApiQuery<CheckQuery>,
) -> ApiResult<Json<PromotionCheck>> {
    let model = ModelName::new(&name)?;
    let alias = AliasName::new(&alias)?;
    let unmet = r.promotion_check(&model, &alias, q.version).await?;
    Ok(Json(PromotionCheck { unmet }))
}

fn number_of(model: &ModelName, reference: &str) -> ApiResult<u64> {
    match reference.parse::<VersionRef>()? {
        VersionRef::Number(n) => Ok(n),
        _ => Err(cairn_core::ValidationError::Reference(
            format!("{model}@{reference}"),
            "approvals name a version number",
        )
        .into()),
    }
}
