//! Who may do what, for every request, before any handler runs: the guard finds the
//! route's [`rules::Rule`], authenticates the caller (when the server enforces
//! authentication), resolves the model the request acts on, and asks
//! [`cairn_core::access::authorize`] — the one function that decides. Handlers receive
//! the authorized [`Actor`] through [`Caller`] and never decide on their own (listings
//! only drop the entries their caller may not read, asking the same function).

mod credentials;
mod denials;
mod experiments;
pub(crate) mod rules;

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{FromRequest, FromRequestParts, MatchedPath, RawPathParams, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use cairn_core::Sha256Digest;
use cairn_core::access::{Actor, Denied, Need, Scope, authorize};
use cairn_core::api::ACTOR_HEADER;
use cairn_registry::Registry;
use serde_json::Value;

use crate::error::ApiError;
use crate::extract::{declared_too_large, json_limit, too_large};
use crate::mlflow::{self, Fields, MlflowError};
pub use credentials::CACHE_TTL;
use credentials::{CredentialCache, Unauthenticated, credential};
use denials::{DenialLog, denial};
use experiments::{Named, experiments_named};
use rules::{On, Rule};

/// How the server admits requests.
#[derive(Debug, Clone, Default)]
pub struct AccessOptions {
    /// Every request but the health checks needs a valid token (`cairn server --auth`).
    /// Without it, every caller may do everything, and changes are recorded under the
    /// name the client declares.
    pub enforce: bool,
}

/// The guard's state: the registry to authenticate against, and what it verified. Shared
/// behind one `Arc`: axum clones a middleware's state for every request.
pub(crate) struct Gate {
    registry: Registry,
    options: AccessOptions,
    cache: Arc<CredentialCache>,
    denials: DenialLog,
}

impl Gate {
    pub fn new(registry: Registry, options: AccessOptions) -> Self {
        Self {
            denials: DenialLog::start(registry.clone()),
            registry,
            options,
            cache: Arc::default(),
        }
    }

    /// Records a refused write in the security log (refused reads are not recorded).
    fn refused(&self, request: &Request, actor: Option<&Actor>, status: StatusCode, why: &str) {
        self.record(request.method(), request.uri().path(), actor, status, why);
    }

    fn record(
        &self,
        method: &Method,
        path: &str,
        actor: Option<&Actor>,
        status: StatusCode,
        why: &str,
    ) {
        if matches!(*method, Method::GET | Method::HEAD) {
            return;
        }
        self.denials.record(denial(
            actor.map(|a| a.name.as_str()),
            actor.and_then(|a| a.token.as_deref()),
            method.as_str(),
            path,
            status.as_u16(),
            why,
        ));
    }

    /// A write the guard let through and the registry refused (a protected alias moved
    /// by a non-admin) goes to the security log too, with the registry's words.
    async fn refused_by_registry(
        &self,
        method: &Method,
        path: &str,
        actor: &Actor,
        response: Response,
    ) -> Response {
        let (parts, body) = response.into_parts();
        let bytes = axum::body::to_bytes(body, 64 * 1024)
            .await
            .unwrap_or_default();
        let why = serde_json::from_slice::<Value>(&bytes)
            .ok()
            .and_then(|v| v.get("message")?.as_str().map(str::to_owned))
            .unwrap_or_else(|| "refused by the registry".to_owned());
        self.record(method, path, Some(actor), parts.status, &why);
        Response::from_parts(parts, Body::from(bytes))
    }
}

/// The API a route belongs to: its errors are worded in that API's format.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Api {
    Native,
    Mlflow,
    /// The web UI: refusals are pages.
    Ui,
}

impl Api {
    fn of(route: &str) -> Self {
        if route.starts_with("/api/v1") || route.starts_with("/healthz") {
            Self::Native
        } else if crate::ui::is_ui_route(route) {
            Self::Ui
        } else {
            Self::Mlflow
        }
    }

    /// The name changes are recorded under when authentication is off and the client
    /// names nobody.
    fn default_actor(self) -> &'static str {
        match self {
            Self::Native | Self::Ui => "anonymous",
            Self::Mlflow => "mlflow",
        }
    }

    fn unauthenticated(self, why: &Unauthenticated) -> Response {
        let message = why.message();
        let mut response = match self {
            Self::Native => {
                ApiError::new(StatusCode::UNAUTHORIZED, "unauthenticated", message).into_response()
            }
            Self::Mlflow => MlflowError {
                code: mlflow::UNAUTHENTICATED,
                message: message.to_owned(),
            }
            .into_response(),
            Self::Ui => crate::ui::error_page(
                StatusCode::UNAUTHORIZED,
                &format!(
                    "{message}: sign in with your user name and password, or a token as the password"
                ),
            ),
        };
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"cairn\", Basic realm=\"cairn\""),
        );
        response
    }

    fn forbidden(self, denied: &Denied) -> Response {
        match self {
            Self::Native => ApiError::new(StatusCode::FORBIDDEN, "forbidden", denied.to_string())
                .into_response(),
            Self::Mlflow => MlflowError {
                code: mlflow::PERMISSION_DENIED,
                message: denied.to_string(),
            }
            .into_response(),
            Self::Ui => crate::ui::error_page(StatusCode::FORBIDDEN, &denied.to_string()),
        }
    }
}

/// The authorized caller of a request, as the guard admitted it.
pub struct Caller(pub Actor);

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        match parts.extensions.get::<Actor>() {
            Some(actor) => Ok(Self(actor.clone())),
            // Only a route the guard does not cover gets here: refuse rather than act
            // for nobody.
            None => Err(ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "internal error: the request was not authorized",
            )),
        }
    }
}

/// The middleware every route is wrapped in (`Router::route_layer`).
pub(crate) async fn guard(State(gate): State<Arc<Gate>>, request: Request, next: Next) -> Response {
    // The template shares its string with the router: no copy.
    let route = match request.extensions().get::<MatchedPath>() {
        Some(route) => route.clone(),
        None => return no_rule(request.uri().path()),
    };
    let route = route.as_str();
    let api = Api::of(route);
    let Some(rule) = rules::rule_for(request.method(), route) else {
        return no_rule(route);
    };
    if rule.on == On::Public {
        return next.run(request).await;
    }
    let actor = if gate.options.enforce {
        let found = match credential(request.headers()) {
            Ok(credential) => gate.cache.actor(&gate.registry, &credential).await,
            Err(why) => Err(why),
        };
        match found {
            Ok(actor) => actor,
            Err(why) => {
                gate.refused(&request, None, StatusCode::UNAUTHORIZED, why.message());
                return api.unauthenticated(&why);
            }
        }
    } else {
        match declared_actor(&request, api) {
            Ok(actor) => actor,
            Err(response) => return response,
        }
    };
    let (request, models) = match models_named(rule, request).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    // Grants per experiment: only for callers without a role on all of tracking.
    let (mut request, experiments) =
        if rule.on == On::Tracking && !actor.may(rule.role, Scope::Tracking) {
            match experiments_named(&gate.registry, route, request).await {
                Ok(found) => found,
                Err(response) => return response,
            }
        } else {
            (request, Named::Nothing)
        };
    let named = (&models, &experiments);
    if let Err(denied) = admit(&gate, &actor, rule, request.uri().path(), named).await {
        tracing::info!(user = %actor.name, token = ?actor.token, %route, %denied, "refused");
        gate.refused(
            &request,
            Some(&actor),
            StatusCode::FORBIDDEN,
            &denied.to_string(),
        );
        return api.forbidden(&denied);
    }
    // What a write the registry refuses is recorded under (reads are not recorded).
    let write = (!matches!(*request.method(), Method::GET | Method::HEAD)).then(|| {
        let (method, path) = (request.method().clone(), request.uri().path().to_owned());
        (method, path, actor.clone())
    });
    request.extensions_mut().insert(actor);
    let response = next.run(request).await;
    if let Some((method, path, who)) = write
        && response.status() == StatusCode::FORBIDDEN
    {
        return gate
            .refused_by_registry(&method, &path, &who, response)
            .await;
    }
    response
}

fn no_rule(route: &str) -> Response {
    tracing::error!(%route, "a route without an authorization rule was refused");
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
        "internal error: this route has no authorization rule",
    )
    .into_response()
}

/// Without authentication: the name the client declares, allowed everything.
#[allow(clippy::result_large_err)]
fn declared_actor(request: &Request, api: Api) -> Result<Actor, Response> {
    match request.headers().get(ACTOR_HEADER) {
        None => Ok(Actor::unrestricted(api.default_actor())),
        Some(value) => match value.to_str() {
            Ok(name) => Ok(Actor::unrestricted(name)),
            Err(_) => Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_argument",
                format!("the {ACTOR_HEADER} header must be visible ASCII"),
            )
            .into_response()),
        },
    }
}

/// The model names a request acts on, per its rule: `None` when the request does not
/// say (a missing or unreadable field), which then needs the role on every model.
/// Bodies read here are handed on to the handler (MLflow's fields already parsed).
async fn models_named(
    rule: Rule,
    request: Request,
) -> Result<(Request, Option<Vec<String>>), Response> {
    match rule.on {
        On::PathModel => {
            let (mut parts, body) = request.into_parts();
            let name = path_param(&mut parts, "name").await;
            Ok((Request::from_parts(parts, body), name.map(|n| vec![n])))
        }
        On::BodyModel(fields) => {
            let limit = json_limit(&request);
            if let Some(declared) = declared_too_large(&request) {
                return Err(too_large(limit, Some(declared)).into_response());
            }
            let (parts, body) = request.into_parts();
            let bytes = axum::body::to_bytes(body, limit)
                .await
                .map_err(|_| too_large(limit, None).into_response())?;
            let names = serde_json::from_slice::<Value>(&bytes)
                .ok()
                .and_then(|v| string_fields(v.as_object()?, fields));
            Ok((Request::from_parts(parts, Body::from(bytes)), names))
        }
        On::MlflowModel(_) | On::SelfOrAdmin(_) => {
            let fields: &[&str] = match &rule.on {
                On::MlflowModel(fields) => fields,
                On::SelfOrAdmin(field) => std::slice::from_ref(field),
                _ => unreachable!("matched above"),
            };
            let (parts, body) = request.into_parts();
            // A GET's fields are in its head: no copy of the request to parse them.
            let parsed = match Fields::of_get(&parts.method, &parts.uri) {
                Some(fields) => Ok(fields),
                None => Fields::from_request(Request::from_parts(parts.clone(), body), &()).await,
            };
            match parsed {
                Ok(parsed) => {
                    let names = string_fields(&parsed.map, fields);
                    let mut request = Request::from_parts(parts, Body::empty());
                    request.extensions_mut().insert(parsed);
                    Ok((request, names))
                }
                // A request the handler would refuse anyway: refused the same way (after
                // authentication), changing and showing nothing.
                Err(e) => Err(e.into_response()),
            }
        }
        _ => Ok((request, Some(Vec::new()))),
    }
}

async fn path_param(parts: &mut Parts, name: &str) -> Option<String> {
    let params = RawPathParams::from_request_parts(parts, &()).await.ok()?;
    params
        .iter()
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.to_owned())
}

/// The string values of `fields` in `map`; `None` unless every one is a string.
fn string_fields(map: &serde_json::Map<String, Value>, fields: &[&str]) -> Option<Vec<String>> {
    fields
        .iter()
        .map(|f| map.get(*f).and_then(Value::as_str).map(str::to_owned))
        .collect()
}

/// Whether `actor` may make `request`, which acts on `models`.
async fn admit(
    gate: &Gate,
    actor: &Actor,
    rule: Rule,
    path: &str,
    (models, experiments): (&Option<Vec<String>>, &Named),
) -> Result<(), Denied> {
    let need = |scope| authorize(actor, Need::new(rule.role, scope));
    match (rule.on, models) {
        (On::Public | On::Caller, _) => Ok(()),
        (On::SelfOrAdmin(_), Some(names)) if names.iter().all(|n| *n == actor.name) => Ok(()),
        (On::SelfOrAdmin(_), _) => need(Scope::Registry),
        (On::Registry, _) => need(Scope::Registry),
        (On::Tracking, _) => {
            let everything = need(Scope::Tracking);
            match experiments {
                _ if everything.is_ok() => everything,
                Named::Experiments(ids) => {
                    ids.iter().try_for_each(|id| need(Scope::Experiment(*id)))
                }
                Named::AnyExperiment => need(Scope::AnyExperiment),
                Named::Nothing => everything,
            }
        }
        (On::AnyModel, _) => need(Scope::AnyModel),
        (On::PathModel | On::BodyModel(_) | On::MlflowModel(_), Some(names)) => {
            names.iter().try_for_each(|name| need(Scope::Model(name)))
        }
        // The request names no model the guard can read: only a role on every model
        // covers it (the handler then refuses the request as malformed).
        (On::PathModel | On::BodyModel(_) | On::MlflowModel(_), None) => need(Scope::Registry),
        (On::Blob, _) => {
            let everything = need(Scope::Registry);
            if everything.is_ok() {
                return everything;
            }
            match blob_readable(gate, actor, path).await {
                true => Ok(()),
                false => everything,
            }
        }
    }
}

/// Whether a version of a model `actor` may read holds the blob the request names.
async fn blob_readable(gate: &Gate, actor: &Actor, path: &str) -> bool {
    let digest = path
        .rsplit('/')
        .next()
        .and_then(|hex| hex.parse::<Sha256Digest>().ok());
    let Some(digest) = digest else {
        return false;
    };
    match gate.registry.why_blob(&digest).await {
        Ok(uses) => uses
            .versions
            .iter()
            .any(|file| actor.may(cairn_core::auth::Role::Reader, Scope::Model(&file.model))),
        Err(_) => false,
    }
}
