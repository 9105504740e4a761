//! Request and response bodies of the native REST API (`/api/v1/`) that are not plain
//! views from [`crate::model`]. Shared by the server and the CLI's remote client.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::model::{Metrics, Params, Tags};
use crate::{Manifest, Sha256Digest};

/// `POST /api/v1/models`
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateModel {
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub tags: Tags,
}

/// `POST /api/v1/models/{name}/versions`: registers a version whose blobs are already
/// stored. Creates the model if it does not exist.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewVersion {
    /// Every file: relative path, size, SHA-256. Paths must not escape the version.
    #[schema(value_type = Vec<crate::FileEntry>)]
    pub files: Manifest,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub tags: Tags,
    #[serde(default)]
    pub metrics: Metrics,
    #[serde(default)]
    pub params: Params,
    /// Run, code, data, parents and environment it came from.
    #[serde(default)]
    pub lineage: crate::lineage::LineageInput,
}

/// `POST /api/v1/blobs/missing`
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MissingBlobsRequest {
    pub digests: Vec<Sha256Digest>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct MissingBlobsResponse {
    pub missing: Vec<Sha256Digest>,
}

/// `PUT /api/v1/models/{name}/aliases/{alias}`
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MoveAlias {
    pub version: u64,
    #[serde(default)]
    pub reason: Option<String>,
}

/// `POST /api/v1/models/{name}/aliases/{alias}/rollback` and alias deletion.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Reason {
    #[serde(default)]
    pub reason: Option<String>,
}

/// Answer to an alias move: the move recorded, or `null` when the alias already
/// pointed there and nothing changed.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AliasMoveResponse {
    #[serde(rename = "move")]
    pub recorded: Option<crate::AliasMove>,
}

/// `PUT /api/v1/blobs/sha256/{digest}`
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct BlobStored {
    pub sha256: Sha256Digest,
    pub size: u64,
}

/// Every error of the native API: a stable machine-readable `code` and a message for
/// people.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    pub code: String,
    pub message: String,
}

/// Header carrying who makes a change. Until authentication lands, the actor is
/// declared by the client (the CLI sends the OS user name).
pub const ACTOR_HEADER: &str = "x-cairn-actor";

/// Header carrying a client's idempotency key for a write (a registration, an alias
/// move): the same key sent again answers what the first request did, never a second
/// change.
pub const IDEMPOTENCY_KEY_HEADER: &str = "idempotency-key";

/// A client's idempotency key: 1 to [`IdempotencyKey::MAX`] visible ASCII characters
/// (the CLI sends a random UUID per write).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    pub const MAX: usize = 255;

    pub fn new(key: &str) -> Result<Self, crate::ValidationError> {
        let invalid =
            |why| crate::ValidationError::Value(crate::api::IDEMPOTENCY_KEY_HEADER.into(), why);
        if key.is_empty() || key.len() > Self::MAX {
            return Err(invalid("an idempotency key has 1 to 255 characters"));
        }
        if !key.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(invalid(
                "an idempotency key is visible ASCII, without spaces",
            ));
        }
        Ok(Self(key.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// `POST /api/v1/tokens`: a token for `user` (created if new).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateToken {
    pub user: String,
    pub role: crate::auth::Role,
    /// A model-name pattern the token is limited to; every model when absent.
    #[serde(default)]
    pub models: Option<String>,
    /// Seconds until it expires; never when absent.
    #[serde(default)]
    pub expires_in_seconds: Option<i64>,
    #[serde(default)]
    pub name: String,
}

/// The answer to `POST /api/v1/tokens`: the only time the secret is ever shown.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CreatedToken {
    pub token: crate::auth::TokenInfo,
    pub secret: String,
}

/// `PUT /api/v1/users/{user}/password`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetPassword {
    pub password: String,
}

/// `PUT /api/v1/users/{user}/grants`: `role` on `models`, or on `experiment`, or (both
/// absent) on everything; no `role`: an explicit deny. `DELETE` with the same `models` or
/// `experiment` removes it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetGrant {
    #[serde(default)]
    pub models: Option<String>,
    #[serde(default)]
    pub experiment: Option<i64>,
    #[serde(default)]
    pub role: Option<crate::auth::Role>,
}

/// `POST /api/v1/models/{name}/versions/{n}/approvals`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Approve {
    /// The alias the version is approved for.
    pub alias: String,
    #[serde(default)]
    pub reason: Option<String>,
}

/// Whether an approval was recorded (`false`: the caller had approved it already).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Approved {
    pub recorded: bool,
}

/// What a promotion would break: every unmet rule of the alias's policies (empty: none).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PromotionCheck {
    pub unmet: Vec<String>,
}
