//! The native API's access management, under `/api/v1/`: API tokens (for admins of the
//! whole registry) and protected aliases (for admins of the model). What each route
//! needs is in `access::rules`, like every other route's.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, get, put};
use axum::{Json, Router};
use cairn_core::api::{CreateToken, CreatedToken, ErrorBody, SetGrant, SetPassword};
use cairn_core::auth::{ModelPattern, TokenInfo, UserInfo};
use cairn_core::{AliasName, Denial, ModelName};
use cairn_registry::{GrantOn, NewToken, Registry};

use crate::access::Caller;
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiQuery};

type ApiResult<T> = Result<T, ApiError>;

pub fn routes() -> Router<Registry> {
    Router::new()
        .route("/tokens", get(list_tokens).post(create_token))
        .route("/tokens/{id}", delete(revoke_token))
        .route("/audit/denied", get(denials))
        .route("/users", get(list_users))
        .route("/users/{user}/password", put(set_password))
        .route("/users/{user}/grants", put(set_grant).delete(revoke_grant))
        .route("/models/{name}/protected-aliases", get(protected_aliases))
        .route(
            "/models/{name}/protected-aliases/{alias}",
            put(protect_alias).delete(unprotect_alias),
        )
}

#[utoipa::path(post, path = "/api/v1/tokens", tag = "access", request_body = CreateToken,
    responses((status = 201, body = CreatedToken), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn create_token(
    State(r): State<Registry>,
    Caller(actor): Caller,
    ApiJson(req): ApiJson<CreateToken>,
) -> ApiResult<(StatusCode, Json<CreatedToken>)> {
    let models = req.models.as_deref().map(ModelPattern::new).transpose()?;
    if req.expires_in_seconds.is_some_and(|s| s <= 0) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_argument",
            "expires_in_seconds must be at least 1",
        ));
    }
    let new = NewToken {
        user: req.user,
        name: req.name,
        role: req.role,
        models,
        lifetime: req.expires_in_seconds,
    };
    let (token, secret) = r.create_token(&actor, &new).await?;
    Ok((StatusCode::CREATED, Json(CreatedToken { token, secret })))
}

#[utoipa::path(get, path = "/api/v1/tokens", tag = "access",
    responses((status = 200, description = "Every token, never a secret", body = Vec<TokenInfo>)))]
pub async fn list_tokens(State(r): State<Registry>) -> ApiResult<Json<Vec<TokenInfo>>> {
    Ok(Json(r.list_tokens().await?))
}

#[utoipa::path(delete, path = "/api/v1/tokens/{id}", tag = "access",
    params(("id" = String, Path, description = "The token's id")),
    responses((status = 200, body = TokenInfo), (status = 400, body = ErrorBody)))]
pub async fn revoke_token(
    State(r): State<Registry>,
    Caller(actor): Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<TokenInfo>> {
    Ok(Json(r.revoke_token(&actor, &id).await?))
}

#[utoipa::path(get, path = "/api/v1/users", tag = "access",
    responses((status = 200, description = "Every user: password set or not, grants", body = Vec<UserInfo>)))]
pub async fn list_users(State(r): State<Registry>) -> ApiResult<Json<Vec<UserInfo>>> {
    Ok(Json(r.list_users().await?))
}

#[utoipa::path(put, path = "/api/v1/users/{user}/password", tag = "access", request_body = SetPassword,
    params(("user" = String, Path, description = "The user (created if new)")),
    responses((status = 204, description = "Set"), (status = 400, body = ErrorBody)))]
pub async fn set_password(
    State(r): State<Registry>,
    Caller(actor): Caller,
    Path(user): Path<String>,
    ApiJson(req): ApiJson<SetPassword>,
) -> ApiResult<StatusCode> {
    r.set_password(&actor, &user, &req.password).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A grant is on models or on an experiment, not both.
fn both(req: &SetGrant) -> ApiResult<()> {
    if req.models.is_some() && req.experiment.is_some() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_argument",
            "a grant is on models or on an experiment, not both",
        ));
    }
    Ok(())
}

fn pattern(models: Option<&str>) -> ApiResult<Option<ModelPattern>> {
    Ok(models.map(ModelPattern::new).transpose()?)
}

#[utoipa::path(put, path = "/api/v1/users/{user}/grants", tag = "access", request_body = SetGrant,
    params(("user" = String, Path, description = "The user (created if new)")),
    responses((status = 204, description = "Granted (or denied)"), (status = 400, body = ErrorBody)))]
pub async fn set_grant(
    State(r): State<Registry>,
    Caller(actor): Caller,
    Path(user): Path<String>,
    ApiJson(req): ApiJson<SetGrant>,
) -> ApiResult<StatusCode> {
    let models = pattern(req.models.as_deref())?;
    both(&req)?;
    r.grant(
        &actor,
        &user,
        GrantOn::of(models.as_ref(), req.experiment),
        req.role,
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(delete, path = "/api/v1/users/{user}/grants", tag = "access", request_body = SetGrant,
    params(("user" = String, Path, description = "The user")),
    responses((status = 204, description = "Removed"), (status = 404, body = ErrorBody)))]
pub async fn revoke_grant(
    State(r): State<Registry>,
    Caller(actor): Caller,
    Path(user): Path<String>,
    ApiJson(req): ApiJson<SetGrant>,
) -> ApiResult<StatusCode> {
    let models = pattern(req.models.as_deref())?;
    both(&req)?;
    if !r
        .revoke_grant(&actor, &user, GrantOn::of(models.as_ref(), req.experiment))
        .await?
    {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("{user:?} holds no grant on those models"),
        ));
    }
    Ok(StatusCode::NO_CONTENT)
}

/// `?limit=N`: how many of the newest refusals (default 100, at most 10,000).
#[derive(serde::Deserialize, utoipa::IntoParams)]
pub struct DenialsQuery {
    limit: Option<u32>,
}

#[utoipa::path(get, path = "/api/v1/audit/denied", tag = "access", params(DenialsQuery),
    responses((status = 200, description = "The newest refused writes, oldest first", body = Vec<Denial>)))]
pub async fn denials(
    State(r): State<Registry>,
    ApiQuery(q): ApiQuery<DenialsQuery>,
) -> ApiResult<Json<Vec<Denial>>> {
    let limit = q.limit.unwrap_or(100).min(10_000);
    Ok(Json(r.denials(limit).await?))
}

#[utoipa::path(get, path = "/api/v1/models/{name}/protected-aliases", tag = "access",
    params(("name" = String, Path, description = "Model name")),
    responses((status = 200, description = "The model's protected aliases", body = Vec<String>)))]
pub async fn protected_aliases(
    State(r): State<Registry>,
    Path(name): Path<String>,
) -> ApiResult<Json<Vec<String>>> {
    let model = ModelName::new(&name)?;
    // An unknown model is a 404, not an empty list.
    r.get_model(&model).await?;
    Ok(Json(r.protected_aliases(&model).await?))
}

#[utoipa::path(put, path = "/api/v1/models/{name}/protected-aliases/{alias}", tag = "access",
    params(("name" = String, Path, description = "Model name"), ("alias" = String, Path, description = "Alias")),
    responses((status = 204, description = "Protected: only admins of the model move it"), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn protect_alias(
    State(r): State<Registry>,
    Caller(actor): Caller,
    Path((name, alias)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    set_protection(&r, &actor, &name, &alias, true).await
}

#[utoipa::path(delete, path = "/api/v1/models/{name}/protected-aliases/{alias}", tag = "access",
    params(("name" = String, Path, description = "Model name"), ("alias" = String, Path, description = "Alias")),
    responses((status = 204, description = "No longer protected"), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn unprotect_alias(
    State(r): State<Registry>,
    Caller(actor): Caller,
    Path((name, alias)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    set_protection(&r, &actor, &name, &alias, false).await
}

async fn set_protection(
    r: &Registry,
    actor: &cairn_core::access::Actor,
    name: &str,
    alias: &str,
    protect: bool,
) -> ApiResult<StatusCode> {
    let (model, alias) = (ModelName::new(name)?, AliasName::new(alias)?);
    r.protect_alias(actor, &model, &alias, protect).await?;
    Ok(StatusCode::NO_CONTENT)
}
