//! The OpenAPI document of the native API, served at `/api/v1/openapi.json`.

use utoipa::OpenApi;

use crate::{api_access, api_v1};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Cairn native API",
        description = "Versioned, content-addressed model registry. Errors are `{\"code\", \"message\"}` with a 4xx/5xx status. A server started with `--auth` needs `Authorization: Bearer TOKEN` on every request but `/healthz` and `/readyz` (401 without, 403 without the role the request needs); without `--auth`, mutating requests may name their actor in the `x-cairn-actor` header."
    ),
    paths(
        api_v1::list_models,
        api_v1::create_model,
        api_v1::get_model,
        api_v1::delete_model,
        api_v1::list_versions,
        api_v1::create_version,
        api_v1::get_version,
        api_v1::delete_version,
        api_v1::verify_version,
        api_v1::verify_all,
        api_v1::audit_log,
        api_v1::audit_head,
        api_v1::verify_audit,
        api_v1::collect_garbage,
        api_v1::why_blob,
        api_v1::version_lineage,
        api_v1::versions_from,
        api_v1::move_alias,
        api_v1::delete_alias,
        api_v1::rollback_alias,
        api_v1::alias_history,
        api_v1::wait_for_change,
        crate::events::stream,
        crate::api_policies::list_policies,
        crate::api_policies::set_policy,
        crate::api_policies::delete_policy,
        crate::api_policies::approve,
        crate::api_policies::check_promotion,
        crate::api_diff::diff,
        crate::api_webhooks::list_webhooks,
        crate::api_webhooks::create_webhook,
        crate::api_webhooks::get_webhook,
        crate::api_webhooks::update_webhook,
        crate::api_webhooks::delete_webhook,
        crate::api_webhooks::test_webhook,
        crate::api_webhooks::list_deliveries,
        crate::api_webhooks::redeliver,
        api_v1::missing_blobs,
        api_v1::put_blob,
        api_v1::get_blob,
        api_access::create_token,
        api_access::list_tokens,
        api_access::revoke_token,
        api_access::denials,
        api_access::list_users,
        api_access::set_password,
        api_access::set_grant,
        api_access::revoke_grant,
        api_access::protected_aliases,
        api_access::protect_alias,
        api_access::unprotect_alias,
    )
)]
pub struct ApiDoc;
