//! `GET /api/v1/diff?a=NAME@REF&b=NAME@REF`: what differs between two versions, the
//! same value `cairn diff --json` prints (docs/DIFF.md).

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use cairn_core::ModelVersionRef;
use cairn_core::access::{Need, Scope, authorize};
use cairn_core::api::ErrorBody;
use cairn_core::auth::Role;
use cairn_core::diff::VersionDiff;
use cairn_registry::Registry;

use crate::access::Caller;
use crate::error::ApiError;
use crate::extract::ApiQuery;

pub fn routes() -> Router<Registry> {
    Router::new().route("/diff", get(diff))
}

/// The two versions compared.
#[derive(serde::Deserialize, utoipa::IntoParams)]
pub struct DiffQuery {
    /// `NAME@REF` (a number, an alias or `latest`).
    a: String,
    /// `NAME@REF`; of the same model or another.
    b: String,
}

#[utoipa::path(get, path = "/api/v1/diff", tag = "versions", params(DiffQuery),
    responses((status = 200, body = VersionDiff),
              (status = 403, description = "The caller may not read one of the models", body = ErrorBody),
              (status = 404, body = ErrorBody)))]
pub async fn diff(
    State(r): State<Registry>,
    Caller(actor): Caller,
    ApiQuery(q): ApiQuery<DiffQuery>,
) -> Result<Json<VersionDiff>, ApiError> {
    let a: ModelVersionRef = q.a.parse()?;
    let b: ModelVersionRef = q.b.parse()?;
    // The route is open to readers of any model; the caller must read both.
    for side in [&a, &b] {
        authorize(
            &actor,
            Need::new(Role::Reader, Scope::Model(side.model.as_str())),
        )
        .map_err(cairn_registry::Error::from)?;
    }
    Ok(Json(r.diff(&a, &b).await?))
}
