//! What every route needs, in one table: the role, and where the model it acts on is
//! named. The guard looks each request up here by its method and matched route; a route
//! missing from the table is refused (and a test walks the router to prove none is).
//!
//! MLflow's permissions map onto the roles: READ and USE are reader, EDIT is writer,
//! MANAGE (which deletes) is admin.

use axum::http::Method;
use cairn_core::auth::Role;

/// Where a request names what it acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum On {
    /// Nothing: answered without credentials (health, the API's description).
    Public,
    /// The registry as a whole (gc, verify everything, the audit log, tokens).
    Registry,
    /// MLflow experiments, runs, their artifacts and logged models: a role on every
    /// model, or on the experiments the request names (`access::experiments`).
    Tracking,
    /// Some model: a listing, filtered entry by entry afterwards, or a blob upload.
    AnyModel,
    /// The model named by the route's `{name}`.
    PathModel,
    /// The models named by these fields of the native API's JSON body.
    BodyModel(&'static [&'static str]),
    /// The models named by these MLflow request fields (query or JSON body).
    MlflowModel(&'static [&'static str]),
    /// The blob of the route's `{digest}`: readable by whoever may read a model
    /// holding it.
    Blob,
    /// Any authenticated caller (who am I).
    Caller,
    /// The user named by this MLflow request field: the caller itself, or else the
    /// rule's role on the registry.
    SelfOrAdmin(&'static str),
}

/// A route's need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    pub role: Role,
    pub on: On,
}

const fn rule(role: Role, on: On) -> Option<Rule> {
    Some(Rule { role, on })
}

use On::*;
use Role::{Admin, Reader, Writer};

const NAME: &[&str] = &["name"];

/// The prefixes the MLflow API is served under; the rule of a route is the same under
/// each.
pub const MLFLOW_PREFIXES: [&str; 4] = [
    "/api/2.0/mlflow",
    "/ajax-api/2.0/mlflow",
    "/api/3.0/mlflow",
    "/ajax-api/3.0/mlflow",
];

/// The rule of the route `route` (as matched, with its `{params}`) for `method`.
/// `None`: the route has no rule, and is refused.
pub fn rule_for(method: &Method, route: &str) -> Option<Rule> {
    if let Some(rest) = route.strip_prefix("/api/v1") {
        return native(method, rest);
    }
    for prefix in [
        "/api/2.0/mlflow-artifacts",
        "/ajax-api/2.0/mlflow-artifacts",
    ] {
        if route.starts_with(prefix) {
            return tracking(method);
        }
    }
    for prefix in MLFLOW_PREFIXES {
        if let Some(rest) = route.strip_prefix(prefix) {
            return mlflow(method, rest);
        }
    }
    match route {
        "/healthz" | "/readyz" | "/health" => rule(Reader, Public),
        // The web UI: each page needs what the API call it shows needs.
        "/ui/assets/{file}" => rule(Reader, Public),
        // Listings filtered entry by entry; compare checks each version's model.
        "/" | "/compare" => rule(Reader, AnyModel),
        "/models/{name}"
        | "/models/{name}/versions/{reference}"
        | "/models/{name}/versions/{reference}/files/{*path}" => rule(Reader, PathModel),
        "/audit" => rule(Reader, Registry),
        "/experiments"
        | "/experiments/{experiment_id}"
        | "/runs/{run_id}"
        | "/runs/{run_id}/metric-history"
        | "/runs/{run_id}/artifacts/{*path}" => rule(Reader, Tracking),
        // Request counts per route and the connection pool: the whole server's state.
        "/metrics" => rule(Reader, Registry),
        "/get-artifact" => rule(Reader, Tracking),
        "/model-versions/get-artifact" => rule(Reader, MlflowModel(NAME)),
        _ => None,
    }
}

/// By method: reads need reader, writes writer, deletes admin (MLflow's MANAGE).
fn by_method(method: &Method, on: On) -> Option<Rule> {
    match *method {
        Method::GET | Method::HEAD => rule(Reader, on),
        Method::DELETE => rule(Admin, on),
        _ => rule(Writer, on),
    }
}

fn tracking(method: &Method) -> Option<Rule> {
    by_method(method, Tracking)
}

fn native(method: &Method, route: &str) -> Option<Rule> {
    let m = method.clone();
    match (m, route) {
        (_, "/openapi.json") => rule(Reader, Public),
        (Method::GET, "/models") => rule(Reader, AnyModel),
        (Method::POST, "/models") => rule(Writer, BodyModel(NAME)),
        (
            _,
            "/models/{name}"
            | "/models/{name}/versions"
            | "/models/{name}/versions/{reference}"
            | "/models/{name}/aliases/{alias}/history"
            | "/models/{name}/versions/{reference}/lineage",
        ) => by_method(method, PathModel),
        // Verifying a version reads it.
        (Method::POST, "/models/{name}/versions/{reference}/verify") => rule(Reader, PathModel),
        // Moving an alias is a write; a protected one also needs an admin of the model,
        // which the registry checks under the model's lock.
        (_, "/models/{name}/aliases/{alias}" | "/models/{name}/aliases/{alias}/rollback") => {
            rule(Writer, PathModel)
        }
        (Method::GET, "/models/{name}/protected-aliases") => rule(Reader, PathModel),
        // Policies: listed entry by entry; set and deleted by admins of their models,
        // which the registry checks (a pattern's by admins of every model).
        (Method::GET, "/policies") => rule(Reader, AnyModel),
        (_, "/policies/{models}/{alias}") => rule(Writer, AnyModel),
        (Method::POST, "/models/{name}/versions/{reference}/approvals") => rule(Writer, PathModel),
        (Method::GET, "/models/{name}/aliases/{alias}/check") => rule(Reader, PathModel),
        // A comparison names its two models in its query; the handler checks both.
        (Method::GET, "/diff") => rule(Reader, AnyModel),
        // Events are filtered entry by entry (and a model asked for is checked).
        (Method::GET, "/events") => rule(Reader, AnyModel),
        // Following a model's changes (cairn serve) reads it.
        (Method::GET, "/models/{name}/changes") => rule(Reader, PathModel),
        (_, "/models/{name}/protected-aliases/{alias}") => rule(Admin, PathModel),
        (Method::GET, "/audit" | "/audit/head" | "/lineage/versions") => rule(Reader, Registry),
        (Method::GET, "/blobs/sha256/{digest}/why") => rule(Reader, Registry),
        (_, "/verify" | "/audit/verify" | "/gc" | "/audit/denied") => rule(Admin, Registry),
        (_, "/tokens" | "/tokens/{id}") => rule(Admin, Registry),
        // Webhooks see every model's events and call out of the network.
        (
            _,
            "/webhooks"
            | "/webhooks/{id}"
            | "/webhooks/{id}/test"
            | "/webhooks/{id}/deliveries"
            | "/webhook-deliveries/{id}/redeliver",
        ) => rule(Admin, Registry),
        (_, "/users" | "/users/{user}/password" | "/users/{user}/grants") => rule(Admin, Registry),
        (Method::POST, "/blobs/missing") => rule(Writer, AnyModel),
        (Method::PUT, "/blobs/sha256/{digest}") => rule(Writer, AnyModel),
        (Method::GET, "/blobs/sha256/{digest}") => rule(Reader, Blob),
        _ => None,
    }
}

fn mlflow(method: &Method, route: &str) -> Option<Rule> {
    if let Some(users) = route.strip_prefix("/users/") {
        return match users {
            "current" => rule(Reader, Caller),
            "get" | "update-password" | "permissions/get" => rule(Admin, SelfOrAdmin("username")),
            _ => rule(Admin, Registry),
        };
    }
    // Webhooks see every model's events and call out of the network: registry admins.
    if route == "/webhooks" || route.starts_with("/webhooks/") {
        return rule(Admin, Registry);
    }
    let Some(registry_route) = route
        .strip_prefix("/registered-models/")
        .map(|r| ("registered-models", r))
        .or_else(|| {
            route
                .strip_prefix("/model-versions/")
                .map(|r| ("model-versions", r))
        })
    else {
        // Experiments, runs, metrics, artifacts, logged models, server info.
        return match route {
            "/experiments/search"
            | "/experiments/get"
            | "/experiments/get-by-name"
            | "/runs/search"
            | "/runs/get"
            | "/logged-models/search"
            | "/experiments/search-datasets"
            | "/server-info" => rule(Reader, Tracking),
            "/experiments/delete" | "/experiments/restore" | "/runs/delete" | "/runs/restore" => {
                rule(Admin, Tracking)
            }
            // Deleting a tag is an edit.
            "/logged-models/{model_id}/tags/{key}" => rule(Writer, Tracking),
            // An experiment's permissions are managed by its admins (MANAGE).
            r if r.starts_with("/experiments/permissions/") => rule(Admin, Tracking),
            _ => tracking(method),
        };
    };
    match registry_route {
        // MLflow 2's permissions of a model are managed by its admins (MANAGE).
        ("registered-models", r) if r.starts_with("permissions/") => rule(Admin, MlflowModel(NAME)),
        // Listings: each entry is then shown only to those who may read its model.
        (_, "search") => rule(Reader, AnyModel),
        ("registered-models", "rename") => rule(Writer, MlflowModel(&["name", "new_name"])),
        ("registered-models", "get-latest-versions") => rule(Reader, MlflowModel(NAME)),
        ("model-versions", "get-download-uri") => rule(Reader, MlflowModel(NAME)),
        ("registered-models" | "model-versions", "delete") => rule(Admin, MlflowModel(NAME)),
        // Tag deletes and alias deletes are edits (MLflow's EDIT), not deletions of the
        // model; a protected alias also needs an admin, checked by the registry.
        _ if *method == Method::DELETE => rule(Writer, MlflowModel(NAME)),
        _ => by_method(method, MlflowModel(NAME)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_route_has_the_same_rule_under_every_mlflow_prefix() {
        for prefix in MLFLOW_PREFIXES {
            let r = |m: Method, p: &str| rule_for(&m, &format!("{prefix}{p}"));
            assert_eq!(
                r(Method::DELETE, "/registered-models/delete"),
                rule(Admin, MlflowModel(NAME))
            );
            assert_eq!(r(Method::POST, "/runs/log-batch"), rule(Writer, Tracking));
            assert_eq!(
                r(Method::POST, "/registered-models/alias"),
                rule(Writer, MlflowModel(NAME))
            );
        }
        assert_eq!(rule_for(&Method::GET, "/nowhere"), None);
        assert_eq!(rule_for(&Method::GET, "/api/v1/nowhere"), None);
    }
}
