//! The native REST API, `/api/v1/`: thin handlers that parse, call the registry
//! service and map errors. Every route is listed in the OpenAPI document.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use cairn_core::access::Scope;
use cairn_core::api::{
    AliasMoveResponse, BlobStored, CreateModel, ErrorBody, MissingBlobsRequest,
    MissingBlobsResponse, MoveAlias, NewVersion, Reason,
};
use cairn_core::auth::Role;
use cairn_core::lineage::{Lineage, ParentRef};
use cairn_core::model::{BlobUse, GcReport};
use cairn_core::{
    AliasMove, AliasName, AuditEntry, AuditHead, AuditReport, Model, ModelName, Sha256Digest,
    ValidationError, VerifyReport, Version, VersionRef,
};
use cairn_registry::{AliasTarget, FileList, Registry, VersionOrigin};
use futures::TryStreamExt;

use crate::access::Caller;
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiQuery, IdemKey, RawBody};
use crate::listen::Draining;
use crate::paging;

type ApiResult<T> = Result<T, ApiError>;

/// The idempotency key a write may carry, documented for the OpenAPI document (read by
/// `extract::IdemKey`).
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)]
pub(crate) struct IdempotencyHeader {
    /// A key of the client's choosing (1–255 visible ASCII characters; the CLI sends a
    /// random UUID per write). The same key with the same request answers what the
    /// first did — the same version, the same move — and changes nothing (a repeat
    /// racing the first waits for whichever commits first); with another request, 422.
    /// Keys are remembered for a day (`cairn server --idempotency-ttl`).
    #[into_params(rename = "Idempotency-Key")]
    idempotency_key: Option<String>,
}

pub fn routes() -> Router<Registry> {
    Router::new()
        .route("/models", get(list_models).post(create_model))
        .route("/models/{name}", get(get_model).delete(delete_model))
        .route(
            "/models/{name}/versions",
            get(list_versions).post(create_version),
        )
        .route(
            "/models/{name}/versions/{reference}",
            get(get_version).delete(delete_version),
        )
        .route(
            "/models/{name}/versions/{reference}/verify",
            post(verify_version),
        )
        .route(
            "/models/{name}/aliases/{alias}",
            put(move_alias).delete(delete_alias),
        )
        .route(
            "/models/{name}/aliases/{alias}/rollback",
            post(rollback_alias),
        )
        .route("/models/{name}/aliases/{alias}/history", get(alias_history))
        .route("/models/{name}/changes", get(wait_for_change))
        .route("/events", get(crate::events::stream))
        .route("/verify", post(verify_all))
        .route("/audit", get(audit_log))
        .route("/audit/head", get(audit_head))
        .route("/audit/verify", post(verify_audit))
        .route("/gc", post(collect_garbage))
        .route(
            "/models/{name}/versions/{reference}/lineage",
            get(version_lineage),
        )
        .route("/lineage/versions", get(versions_from))
        .route("/blobs/sha256/{digest}/why", get(why_blob))
        .route("/blobs/missing", post(missing_blobs))
        .route("/blobs/sha256/{digest}", put(put_blob).get(get_blob))
}

fn model_name(name: &str) -> ApiResult<ModelName> {
    Ok(ModelName::new(name)?)
}

fn alias_name(alias: &str) -> ApiResult<AliasName> {
    Ok(AliasName::new(alias)?)
}

fn version_number(model: &ModelName, reference: &str) -> ApiResult<u64> {
    match reference.parse::<VersionRef>()? {
        VersionRef::Number(n) => Ok(n),
        _ => Err(ValidationError::Reference(
            format!("{model}@{reference}"),
            "deleting needs a version number, not an alias or \"latest\"",
        )
        .into()),
    }
}

/// One page of the models.
#[derive(serde::Deserialize, utoipa::IntoParams)]
pub struct ModelsPage {
    /// Models named after this one, in name order (default: from the first).
    after: Option<String>,
    /// At most this many (default and maximum 1000).
    limit: Option<u32>,
}

#[utoipa::path(get, path = "/api/v1/models", tag = "models", params(ModelsPage),
    responses((status = 200, description = "One page of the models the caller may read, by name; while more may follow, a `Link: <…>; rel=\"next\"` header names the next page (a page can be short and still have one)", body = Vec<Model>)))]
pub async fn list_models(
    State(r): State<Registry>,
    Caller(actor): Caller,
    ApiQuery(page): ApiQuery<ModelsPage>,
) -> ApiResult<axum::response::Response> {
    let limit = paging::limit(page.limit);
    let mut models = r
        .models_page(page.after.as_deref().unwrap_or_default(), limit)
        .await?;
    let next = (models.len() == limit as usize)
        .then(|| models.last())
        .flatten()
        .map(|m| format!("/models?after={}&limit={limit}", paging::encode(&m.name)));
    models.retain(|m| actor.may(Role::Reader, Scope::Model(&m.name)));
    Ok(paging::page(models, next))
}

#[utoipa::path(post, path = "/api/v1/models", tag = "models", request_body = CreateModel, params(IdempotencyHeader),
    responses((status = 201, body = Model), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn create_model(
    State(r): State<Registry>,
    Caller(actor): Caller,
    IdemKey(key): IdemKey,
    ApiJson(req): ApiJson<CreateModel>,
) -> ApiResult<(StatusCode, Json<Model>)> {
    Ok((
        StatusCode::CREATED,
        Json(r.create_model_keyed(&actor, &req, key.as_ref()).await?),
    ))
}

#[utoipa::path(get, path = "/api/v1/models/{name}", tag = "models",
    params(("name" = String, Path, description = "Model name")),
    responses((status = 200, body = Model), (status = 404, body = ErrorBody)))]
pub async fn get_model(
    State(r): State<Registry>,
    Path(name): Path<String>,
) -> ApiResult<Json<Model>> {
    Ok(Json(r.get_model(&model_name(&name)?).await?))
}

#[utoipa::path(delete, path = "/api/v1/models/{name}", tag = "models",
    params(("name" = String, Path, description = "Model name")),
    responses((status = 204, description = "Deleted with its versions and aliases"), (status = 404, body = ErrorBody)))]
pub async fn delete_model(
    State(r): State<Registry>,
    Caller(actor): Caller,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    r.delete_model(&actor, &model_name(&name)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// One page of a listing of versions.
#[derive(serde::Deserialize, utoipa::IntoParams)]
pub struct VersionsPage {
    /// Versions numbered after this one (default 0: from the first).
    after: Option<u64>,
    /// At most this many (default and maximum 1000).
    limit: Option<u32>,
}

#[utoipa::path(get, path = "/api/v1/models/{name}/versions", tag = "versions",
    params(("name" = String, Path, description = "Model name"), VersionsPage),
    responses((status = 200, description = "One page of versions, oldest first, without manifests; a full page carries a `Link: <…>; rel=\"next\"` header to the next", body = Vec<Version>), (status = 404, body = ErrorBody)))]
pub async fn list_versions(
    State(r): State<Registry>,
    Path(name): Path<String>,
    ApiQuery(page): ApiQuery<VersionsPage>,
) -> ApiResult<axum::response::Response> {
    let model = model_name(&name)?;
    let limit = paging::limit(page.limit);
    let versions = r
        .versions_page(&model, page.after.unwrap_or(0), limit)
        .await?;
    let next = (versions.len() == limit as usize)
        .then(|| versions.last())
        .flatten()
        .map(|v| {
            let model = paging::encode(model.as_str());
            format!("/models/{model}/versions?after={}&limit={limit}", v.version)
        });
    Ok(paging::page(versions, next))
}

#[utoipa::path(post, path = "/api/v1/models/{name}/versions", tag = "versions", request_body = NewVersion,
    params(("name" = String, Path, description = "Model name; created if it does not exist"), IdempotencyHeader),
    responses((status = 201, body = Version), (status = 400, description = "Invalid manifest or metadata, or blobs not uploaded", body = ErrorBody),
              (status = 422, description = "The idempotency key was used for another request", body = ErrorBody),
              (status = 503, description = "The metadata store cannot be reached (`Retry-After`)", body = ErrorBody)))]
pub async fn create_version(
    State(r): State<Registry>,
    Caller(actor): Caller,
    Path(name): Path<String>,
    IdemKey(key): IdemKey,
    ApiJson(new): ApiJson<NewVersion>,
) -> ApiResult<(StatusCode, Json<Version>)> {
    let model = model_name(&name)?;
    let version = match &key {
        Some(key) => r.register_version_keyed(&actor, &model, &new, key).await?,
        None => {
            r.register_version(&actor, &model, &new, &VersionOrigin::default())
                .await?
        }
    };
    Ok((StatusCode::CREATED, Json(version)))
}

#[utoipa::path(get, path = "/api/v1/models/{name}/versions/{reference}", tag = "versions",
    params(("name" = String, Path, description = "Model name"),
           ("reference" = String, Path, description = "Version number, alias or `latest`")),
    responses((status = 200, description = "The version with its manifest", body = Version), (status = 404, body = ErrorBody)))]
pub async fn get_version(
    State(r): State<Registry>,
    Path((name, reference)): Path<(String, String)>,
) -> ApiResult<Response> {
    let model = model_name(&name)?;
    let parsed: VersionRef = reference.parse()?;
    // What `cairn pull` and model servers resolve at every load: answered from memory
    // while the registry is unchanged (`Registry::cached_read`).
    let body = r
        .cached_read(format!("v1 version {model}@{reference}"), async {
            let version = r.get_version(&model, &parsed, FileList::Included).await?;
            Ok::<_, ApiError>(axum::body::Bytes::from(
                serde_json::to_vec(&version).expect("a version encodes as JSON"),
            ))
        })
        .await?;
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

#[utoipa::path(delete, path = "/api/v1/models/{name}/versions/{reference}", tag = "versions",
    params(("name" = String, Path, description = "Model name"),
           ("reference" = String, Path, description = "Version number")),
    responses((status = 204, description = "Deleted; aliases pointing at it are removed"), (status = 404, body = ErrorBody)))]
pub async fn delete_version(
    State(r): State<Registry>,
    Caller(actor): Caller,
    Path((name, reference)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let model = model_name(&name)?;
    let number = version_number(&model, &reference)?;
    r.delete_version(&actor, &model, number).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/api/v1/models/{name}/versions/{reference}/verify", tag = "verify",
    params(("name" = String, Path, description = "Model name"),
           ("reference" = String, Path, description = "Version number, alias or `latest`")),
    responses((status = 200, description = "Every blob of the version re-hashed; `problems` empty when intact", body = VerifyReport)))]
pub async fn verify_version(
    State(r): State<Registry>,
    Path((name, reference)): Path<(String, String)>,
) -> ApiResult<Json<VerifyReport>> {
    let reference: VersionRef = reference.parse()?;
    Ok(Json(
        r.verify_version(&model_name(&name)?, &reference).await?,
    ))
}

#[utoipa::path(get, path = "/api/v1/models/{name}/versions/{reference}/lineage", tag = "lineage",
    params(("name" = String, Path), ("reference" = String, Path, description = "number, alias or `latest`")),
    responses((status = 200, description = "Run, code, data, parents (with their own lineage), environment, children", body = Lineage)))]
pub async fn version_lineage(
    State(r): State<Registry>,
    Path((name, reference)): Path<(String, String)>,
) -> ApiResult<Json<Lineage>> {
    let reference: VersionRef = reference.parse()?;
    Ok(Json(r.lineage(&model_name(&name)?, &reference).await?))
}

/// Which versions came from something: exactly one of the three.
#[derive(serde::Deserialize, utoipa::IntoParams)]
pub struct LineageQuery {
    /// An input's digest: `sha256:<hex>` (a dataset), `md5:<hex>` (DVC), or bare hex.
    data: Option<String>,
    /// A commit id, or a prefix of at least 4 hex digits.
    commit: Option<String>,
    /// NAME@N: every version derived from it, directly or not.
    parent: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/lineage/versions", tag = "lineage", params(LineageQuery),
    responses((status = 200, description = "The versions, by model and number", body = Vec<ParentRef>)))]
pub async fn versions_from(
    State(r): State<Registry>,
    ApiQuery(q): ApiQuery<LineageQuery>,
) -> ApiResult<Json<Vec<ParentRef>>> {
    let found = match (&q.data, &q.commit, &q.parent) {
        (Some(d), None, None) => r.versions_with_input(d).await?,
        (None, Some(c), None) => r.versions_with_commit(c).await?,
        (None, None, Some(p)) => {
            let p: cairn_core::ModelVersionRef = p.parse()?;
            let VersionRef::Number(version) = p.version else {
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_argument",
                    "parent: name the version by number (NAME@N)",
                ));
            };
            r.descendants(&ParentRef {
                model: p.model.to_string(),
                version,
            })
            .await?
        }
        _ => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_argument",
                "give exactly one of data, commit or parent",
            ));
        }
    };
    Ok(Json(found))
}

/// Body of `POST /api/v1/gc`.
#[derive(serde::Deserialize, utoipa::ToSchema)]
pub struct CollectGarbage {
    /// Only report what would be freed.
    #[serde(default)]
    dry_run: bool,
    /// Unreferenced blobs younger than this are kept (default one day): they may belong
    /// to a push that has not registered its version yet.
    #[serde(default = "default_grace_seconds")]
    grace_seconds: u64,
}

fn default_grace_seconds() -> u64 {
    24 * 60 * 60
}

#[utoipa::path(post, path = "/api/v1/gc", tag = "gc", request_body = CollectGarbage,
    responses((status = 200, description = "What was (or would be) freed", body = GcReport)))]
pub async fn collect_garbage(
    State(r): State<Registry>,
    Caller(actor): Caller,
    ApiJson(req): ApiJson<CollectGarbage>,
) -> ApiResult<Json<GcReport>> {
    Ok(Json(
        r.collect_garbage(
            &actor,
            std::time::Duration::from_secs(req.grace_seconds),
            req.dry_run,
        )
        .await?,
    ))
}

#[utoipa::path(get, path = "/api/v1/blobs/sha256/{digest}/why", tag = "gc",
    params(("digest" = String, Path, description = "64 hex digits")),
    responses((status = 200, description = "What keeps the blob alive", body = BlobUse)))]
pub async fn why_blob(
    State(r): State<Registry>,
    Path(digest): Path<String>,
) -> ApiResult<Json<BlobUse>> {
    let digest: Sha256Digest = digest.parse()?;
    Ok(Json(r.why_blob(&digest).await?))
}

/// Parameters of `GET /api/v1/models/{name}/changes`.
#[derive(serde::Deserialize, utoipa::IntoParams)]
pub struct ChangesQuery {
    /// The audit head's sequence number the caller knows; without it the head is
    /// answered at once.
    after: Option<u64>,
    /// Seconds to wait for a change (default 30, at most 60).
    wait: Option<u64>,
}

/// A long-poll for processes following a model (`cairn serve`): answers the audit head
/// as soon as its sequence number passes `after` — any change of the registry, made
/// through any server — or when `wait` passes, unchanged.
#[utoipa::path(get, path = "/api/v1/models/{name}/changes", tag = "models", params(
        ("name" = String, Path, description = "Model name"), ChangesQuery),
    responses((status = 200, description = "The audit head: changed, or unchanged after the wait", body = AuditHead)))]
pub async fn wait_for_change(
    State(r): State<Registry>,
    draining: Option<axum::Extension<Draining>>,
    Path(name): Path<String>,
    ApiQuery(q): ApiQuery<ChangesQuery>,
) -> ApiResult<Json<AuditHead>> {
    let model = model_name(&name)?;
    // A follower of a model that does not exist learns so now, not after the wait.
    r.get_model(&model).await?;
    let Some(after) = q.after else {
        return Ok(Json(r.audit_head().await?));
    };
    let wait = std::time::Duration::from_secs(q.wait.unwrap_or(30));
    let draining = draining.map(|d| d.0);
    tokio::select! {
        head = r.wait_for_change(after, wait) => Ok(Json(head?)),
        () = Draining::started(draining.as_ref()) => Ok(Json(r.audit_head().await?)),
    }
}

/// Filters and page of `GET /api/v1/audit`.
#[derive(serde::Deserialize, utoipa::IntoParams)]
pub struct AuditQuery {
    /// Only entries about this model.
    model: Option<String>,
    /// Only entries at or after this time (RFC 3339).
    since: Option<String>,
    /// Entries numbered after this one (default 0: from the first).
    after: Option<u64>,
    /// At most this many (default and maximum 1000).
    limit: Option<u32>,
}

#[utoipa::path(get, path = "/api/v1/audit", tag = "audit", params(AuditQuery),
    responses((status = 200, description = "One page of audit entries, oldest first; a full page carries a `Link: <…>; rel=\"next\"` header to the next", body = Vec<AuditEntry>)))]
pub async fn audit_log(
    State(r): State<Registry>,
    ApiQuery(q): ApiQuery<AuditQuery>,
) -> ApiResult<axum::response::Response> {
    let since = match &q.since {
        Some(text) => {
            let at = time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
                .map_err(|_| {
                    ApiError::new(
                        StatusCode::BAD_REQUEST,
                        "invalid_argument",
                        format!("since: expected an RFC 3339 time such as 2026-01-31T12:00:00Z, got {text:?}"),
                    )
                })?;
            Some((at.unix_timestamp_nanos() / 1_000_000) as i64)
        }
        None => None,
    };
    let limit = paging::limit(q.limit);
    let entries = r
        .audit_entries(q.after.unwrap_or(0), q.model.as_deref(), since, limit)
        .await?;
    let next = (entries.len() == limit as usize)
        .then(|| entries.last())
        .flatten()
        .map(|e| {
            let mut next = format!("/audit?after={}&limit={limit}", e.seq);
            for (name, value) in [("model", &q.model), ("since", &q.since)] {
                if let Some(value) = value {
                    next.push_str(&format!("&{name}={}", paging::encode(value)));
                }
            }
            next
        });
    Ok(paging::page(entries, next))
}

#[utoipa::path(get, path = "/api/v1/audit/head", tag = "audit",
    responses((status = 200, description = "The newest entry's number and hash", body = AuditHead)))]
pub async fn audit_head(State(r): State<Registry>) -> ApiResult<Json<AuditHead>> {
    Ok(Json(r.audit_head().await?))
}

/// Body of `POST /api/v1/audit/verify`.
#[derive(serde::Deserialize, utoipa::ToSchema, Default)]
pub struct VerifyAudit {
    /// A head exported earlier: the entry at its number must still have its hash.
    head: Option<AuditHead>,
}

#[utoipa::path(post, path = "/api/v1/audit/verify", tag = "audit", request_body = VerifyAudit,
    responses((status = 200, description = "The chain recomputed; `broken` names the first entry that does not verify", body = AuditReport)))]
pub async fn verify_audit(
    State(r): State<Registry>,
    RawBody(body): RawBody,
) -> ApiResult<Json<AuditReport>> {
    // The body is optional: no body verifies the chain alone.
    let request: VerifyAudit = if body.iter().all(u8::is_ascii_whitespace) {
        VerifyAudit::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "malformed_json",
                format!("invalid request body: {e}"),
            )
        })?
    };
    Ok(Json(r.verify_audit(request.head.as_ref()).await?))
}

#[utoipa::path(post, path = "/api/v1/verify", tag = "verify",
    responses((status = 200, description = "Every blob of every version re-hashed", body = VerifyReport)))]
pub async fn verify_all(State(r): State<Registry>) -> ApiResult<Json<VerifyReport>> {
    Ok(Json(r.verify_all().await?))
}

#[utoipa::path(put, path = "/api/v1/models/{name}/aliases/{alias}", tag = "aliases", request_body = MoveAlias,
    params(("name" = String, Path, description = "Model name"), ("alias" = String, Path, description = "Alias"), IdempotencyHeader),
    responses((status = 200, body = AliasMoveResponse), (status = 404, body = ErrorBody)))]
pub async fn move_alias(
    State(r): State<Registry>,
    Caller(actor): Caller,
    Path((name, alias)): Path<(String, String)>,
    IdemKey(key): IdemKey,
    ApiJson(req): ApiJson<MoveAlias>,
) -> ApiResult<Json<AliasMoveResponse>> {
    let recorded = r
        .move_alias_keyed(
            &actor,
            &model_name(&name)?,
            &alias_name(&alias)?,
            AliasTarget::Version(req.version),
            req.reason.as_deref(),
            key.as_ref(),
        )
        .await?;
    Ok(Json(AliasMoveResponse { recorded }))
}

#[utoipa::path(delete, path = "/api/v1/models/{name}/aliases/{alias}", tag = "aliases",
    params(("name" = String, Path, description = "Model name"), ("alias" = String, Path, description = "Alias"),
           ("reason" = Option<String>, Query, description = "Why, for the alias history"), IdempotencyHeader),
    responses((status = 200, body = AliasMoveResponse), (status = 404, body = ErrorBody)))]
pub async fn delete_alias(
    State(r): State<Registry>,
    Caller(actor): Caller,
    Path((name, alias)): Path<(String, String)>,
    IdemKey(key): IdemKey,
    ApiQuery(reason): ApiQuery<Reason>,
) -> ApiResult<Json<AliasMoveResponse>> {
    let recorded = r
        .move_alias_keyed(
            &actor,
            &model_name(&name)?,
            &alias_name(&alias)?,
            AliasTarget::Remove,
            reason.reason.as_deref(),
            key.as_ref(),
        )
        .await?;
    Ok(Json(AliasMoveResponse { recorded }))
}

#[utoipa::path(post, path = "/api/v1/models/{name}/aliases/{alias}/rollback", tag = "aliases", request_body = Reason,
    params(("name" = String, Path, description = "Model name"), ("alias" = String, Path, description = "Alias"), IdempotencyHeader),
    responses((status = 200, description = "The alias is back where it pointed before its last move", body = AliasMoveResponse),
              (status = 404, body = ErrorBody), (status = 409, description = "No earlier version", body = ErrorBody)))]
pub async fn rollback_alias(
    State(r): State<Registry>,
    Caller(actor): Caller,
    Path((name, alias)): Path<(String, String)>,
    IdemKey(key): IdemKey,
    ApiJson(req): ApiJson<Reason>,
) -> ApiResult<Json<AliasMoveResponse>> {
    let recorded = r
        .move_alias_keyed(
            &actor,
            &model_name(&name)?,
            &alias_name(&alias)?,
            AliasTarget::PreviousVersion,
            req.reason.as_deref(),
            key.as_ref(),
        )
        .await?;
    Ok(Json(AliasMoveResponse { recorded }))
}

#[utoipa::path(get, path = "/api/v1/models/{name}/aliases/{alias}/history", tag = "aliases",
    params(("name" = String, Path, description = "Model name"), ("alias" = String, Path, description = "Alias")),
    responses((status = 200, description = "Every move, oldest first", body = Vec<AliasMove>), (status = 404, body = ErrorBody)))]
pub async fn alias_history(
    State(r): State<Registry>,
    Path((name, alias)): Path<(String, String)>,
) -> ApiResult<Json<Vec<AliasMove>>> {
    Ok(Json(
        r.alias_history(&model_name(&name)?, &alias_name(&alias)?)
            .await?,
    ))
}

#[utoipa::path(post, path = "/api/v1/blobs/missing", tag = "blobs", request_body = MissingBlobsRequest,
    responses((status = 200, description = "The digests the server does not hold", body = MissingBlobsResponse)))]
pub async fn missing_blobs(
    State(r): State<Registry>,
    ApiJson(req): ApiJson<MissingBlobsRequest>,
) -> ApiResult<Json<MissingBlobsResponse>> {
    Ok(Json(MissingBlobsResponse {
        missing: r.missing_blobs(&req.digests).await?,
    }))
}

#[utoipa::path(put, path = "/api/v1/blobs/sha256/{digest}", tag = "blobs",
    request_body(content = Vec<u8>, content_type = "application/octet-stream"),
    params(("digest" = String, Path, description = "SHA-256 of the body")),
    responses((status = 201, body = BlobStored),
              (status = 400, description = "The body does not hash to the digest, or was cut short; nothing is stored", body = ErrorBody)))]
pub async fn put_blob(
    State(r): State<Registry>,
    Path(digest): Path<String>,
    body: Body,
) -> ApiResult<(StatusCode, Json<BlobStored>)> {
    let digest: Sha256Digest = digest.parse()?;
    let size = r.put_blob_stream(&digest, body.into_data_stream()).await?;
    Ok((
        StatusCode::CREATED,
        Json(BlobStored {
            sha256: digest,
            size,
        }),
    ))
}

#[utoipa::path(get, path = "/api/v1/blobs/sha256/{digest}", tag = "blobs",
    params(("digest" = String, Path, description = "SHA-256 of the blob")),
    responses((status = 200, content_type = "application/octet-stream", body = Vec<u8>), (status = 404, body = ErrorBody)))]
pub async fn get_blob(
    State(r): State<Registry>,
    Path(digest): Path<String>,
) -> ApiResult<Response> {
    let digest: Sha256Digest = digest.parse()?;
    let blob = r.read_blob(&digest).await?;
    let headers = [
        (header::CONTENT_TYPE, "application/octet-stream".to_owned()),
        (header::CONTENT_LENGTH, blob.size.to_string()),
        (header::ETAG, format!("\"{digest}\"")),
    ];
    let stream = blob.stream.map_err(axum::Error::new);
    Ok((headers, Body::from_stream(stream)).into_response())
}
