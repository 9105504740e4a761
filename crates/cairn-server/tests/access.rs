//! Authentication and authorization through the real router, in-process: a server with
//! enforcement on, tokens made by the registry, both APIs.

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use base64::Engine;
use cairn_core::access::Actor;
use cairn_core::auth::{ModelPattern, Role};
use cairn_registry::{NewToken, Registry};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

struct App {
    _dir: tempfile::TempDir,
    registry: Registry,
    router: Router,
}

impl App {
    async fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let registry = Registry::open_local(dir.path()).await.unwrap();
        let options = cairn_server::ServerOptions {
            access: cairn_server::AccessOptions { enforce: true },
            ..Default::default()
        };
        Self {
            router: cairn_server::router(registry.clone(), &options),
            registry,
            _dir: dir,
        }
    }

    async fn token(&self, user: &str, role: Role, models: Option<&str>) -> String {
        let new = NewToken {
            user: user.into(),
            name: String::new(),
            role,
            models: models.map(|p| ModelPattern::new(p).unwrap()),
            lifetime: None,
        };
        let bootstrap = Actor::unrestricted("bootstrap");
        self.registry
            .create_token(&bootstrap, &new)
            .await
            .unwrap()
            .1
    }

    async fn call(
        &self,
        method: Method,
        uri: &str,
        auth: Option<String>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut builder = Request::builder()
            .method(method)
            .uri(uri)
            .header(header::HOST, "localhost");
        if let Some(auth) = auth {
            builder = builder.header(header::AUTHORIZATION, auth);
        }
        let body = match body {
            Some(v) => {
                builder = builder.header(header::CONTENT_TYPE, "application/json");
                Body::from(v.to_string())
            }
            None => Body::empty(),
        };
        let response = self
            .router
            .clone()
            .oneshot(builder.body(body).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        (status, value)
    }
}

fn bearer(token: &str) -> Option<String> {
    Some(format!("Bearer {token}"))
}

fn basic(user: &str, password: &str) -> Option<String> {
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    Some(format!("Basic {encoded}"))
}

#[tokio::test]
async fn every_request_but_health_needs_a_valid_token() {
    let app = App::new().await;
    for open in ["/healthz", "/readyz", "/health"] {
        let (status, _) = app.call(Method::GET, open, None, None).await;
        assert_eq!(status, StatusCode::OK, "{open}");
    }
    let (status, body) = app.call(Method::GET, "/api/v1/models", None, None).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("unauthenticated"))
    );
    let (status, body) = app
        .call(
            Method::GET,
            "/api/2.0/mlflow/registered-models/search",
            None,
            None,
        )
        .await;
    assert_eq!(
        (status, body["error_code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("UNAUTHENTICATED"))
    );
    let garbage = ["Bearer cairn_nope", "Basic !!", "Token x"];
    for auth in garbage {
        let (status, _) = app
            .call(Method::GET, "/api/v1/models", Some(auth.into()), None)
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{auth}");
    }
    // A valid token works as Bearer, and as Basic under its own user only.
    let token = app.token("rita", Role::Reader, None).await;
    for auth in [bearer(&token), basic("rita", &token)] {
        let (status, _) = app.call(Method::GET, "/api/v1/models", auth, None).await;
        assert_eq!(status, StatusCode::OK);
    }
    let (status, _) = app
        .call(
            Method::GET,
            "/api/v1/models",
            basic("mallory", &token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn roles_and_model_scopes_decide_and_the_log_names_the_user() {
    let app = App::new().await;
    let admin = app.token("ada", Role::Admin, None).await;
    let writer = app.token("wendy", Role::Writer, None).await;
    let reader = app.token("rita", Role::Reader, None).await;
    let fraud = app.token("fred", Role::Writer, Some("fraud-*")).await;
    let create = |name: &str| json!({ "name": name });

    // A reader cannot create; writers can, within their scope.
    let (status, body) = app
        .call(
            Method::POST,
            "/api/v1/models",
            bearer(&reader),
            Some(create("churn")),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("writer role on model \"churn\"")
    );
    for (token, name) in [(&writer, "churn"), (&fraud, "fraud-cards")] {
        let (status, _) = app
            .call(
                Method::POST,
                "/api/v1/models",
                bearer(token),
                Some(create(name)),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{name}");
    }
    let (status, _) = app
        .call(
            Method::POST,
            "/api/v1/models",
            bearer(&fraud),
            Some(create("churn-2")),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // A token limited to fraud-* neither reads churn nor sees it listed, through
    // either API.
    let (status, _) = app
        .call(Method::GET, "/api/v1/models/churn", bearer(&fraud), None)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, body) = app
        .call(
            Method::GET,
            "/api/2.0/mlflow/registered-models/get?name=churn",
            bearer(&fraud),
            None,
        )
        .await;
    assert_eq!(
        (status, body["error_code"].as_str()),
        (StatusCode::FORBIDDEN, Some("PERMISSION_DENIED"))
    );
    let (_, listed) = app
        .call(Method::GET, "/api/v1/models", bearer(&fraud), None)
        .await;
    let names: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["fraud-cards"]);
    for token in [&fraud, &admin] {
        let (_, found) = app
            .call(
                Method::GET,
                "/api/2.0/mlflow/registered-models/search",
                bearer(token),
                None,
            )
            .await;
        let count = found["registered_models"].as_array().map_or(0, Vec::len);
        assert_eq!(count, if token == &fraud { 1 } else { 2 });
    }
    // Registry-wide operations are for admins of everything.
    for token in [&writer, &fraud] {
        let (status, _) = app
            .call(
                Method::POST,
                "/api/v1/gc",
                bearer(token),
                Some(json!({"dry_run": true})),
            )
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN);
    }
    // Deleting is for admins; MLflow's delete needs MANAGE, which is admin.
    let (status, _) = app
        .call(
            Method::DELETE,
            "/api/2.0/mlflow/registered-models/delete",
            bearer(&writer),
            Some(create("churn")),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = app
        .call(Method::DELETE, "/api/v1/models/churn", bearer(&admin), None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);

    // The self-declared actor header is ignored: the log names the token's user.
    let log = app.registry.audit_log(None, None).await.unwrap();
    let created: Vec<(&str, &str)> = log
        .iter()
        .filter(|e| e.action == "model.create")
        .map(|e| (e.actor.as_str(), e.target.as_str()))
        .collect();
    assert_eq!(created, [("wendy", "churn"), ("fred", "fraud-cards")]);
    assert!(
        log.iter()
            .filter(|e| e.action.starts_with("model."))
            .all(|e| e.token.is_some())
    );
}

#[tokio::test]
async fn a_protected_alias_needs_an_admin_through_both_apis() {
    let app = App::new().await;
    let admin = app.token("ada", Role::Admin, None).await;
    let writer = app.token("wendy", Role::Writer, None).await;
    let (status, _) = app
        .call(
            Method::POST,
            "/api/2.0/mlflow/registered-models/create",
            bearer(&writer),
            Some(json!({"name": "m"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    for _ in 0..2 {
        let (status, body) = app
            .call(
                Method::POST,
                "/api/2.0/mlflow/model-versions/create",
                bearer(&writer),
                Some(json!({"name": "m", "source": "s3://bucket/model"})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    // Only admins protect.
    let protect = "/api/v1/models/m/protected-aliases/production";
    let (status, _) = app.call(Method::PUT, protect, bearer(&writer), None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = app.call(Method::PUT, protect, bearer(&admin), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);

    let set =
        |version: u64| json!({"name": "m", "alias": "production", "version": version.to_string()});
    let (status, body) = app
        .call(
            Method::POST,
            "/api/2.0/mlflow/registered-models/alias",
            bearer(&writer),
            Some(set(1)),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("admin role on model \"m\""),
        "{body}"
    );
    let (status, _) = app
        .call(
            Method::PUT,
            "/api/v1/models/m/aliases/production",
            bearer(&writer),
            Some(json!({"version": 1})),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = app
        .call(Method::POST, "/api/2.0/mlflow/model-versions/transition-stage", bearer(&writer),
              Some(json!({"name": "m", "version": "1", "stage": "Production", "archive_existing_versions": false})))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = app
        .call(
            Method::POST,
            "/api/2.0/mlflow/registered-models/alias",
            bearer(&admin),
            Some(set(2)),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    // Unprotected aliases stay the writer's.
    let (status, _) = app
        .call(
            Method::PUT,
            "/api/v1/models/m/aliases/staging",
            bearer(&writer),
            Some(json!({"version": 1})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, protected) = app
        .call(
            Method::GET,
            "/api/v1/models/m/protected-aliases",
            bearer(&writer),
            None,
        )
        .await;
    assert_eq!(protected, json!(["production"]));
}

#[tokio::test]
async fn tokens_are_managed_by_admins_and_revocation_takes_effect() {
    let app = App::new().await;
    let admin = app.token("ada", Role::Admin, None).await;
    let writer = app.token("wendy", Role::Writer, None).await;
    let request = json!({"user": "ci", "role": "writer", "models": "fraud-*", "name": "pipeline"});
    let (status, _) = app
        .call(
            Method::POST,
            "/api/v1/tokens",
            bearer(&writer),
            Some(request.clone()),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, created) = app
        .call(
            Method::POST,
            "/api/v1/tokens",
            bearer(&admin),
            Some(request),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let secret = created["secret"].as_str().unwrap().to_owned();
    let id = created["token"]["id"].as_str().unwrap().to_owned();
    let (_, listed) = app
        .call(Method::GET, "/api/v1/tokens", bearer(&admin), None)
        .await;
    assert!(!listed.to_string().contains(&secret));
    assert_eq!(listed.as_array().unwrap().len(), 3);

    let (status, _) = app
        .call(Method::GET, "/api/v1/models", bearer(&secret), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = app
        .call(
            Method::DELETE,
            &format!("/api/v1/tokens/{id}"),
            bearer(&admin),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    // Within the cache's lifetime at most.
    tokio::time::sleep(cairn_server::CACHE_TTL).await;
    let (status, _) = app
        .call(Method::GET, "/api/v1/models", bearer(&secret), None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}
