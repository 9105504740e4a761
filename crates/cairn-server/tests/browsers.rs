//! A web page cannot turn a user's browser against the server: cross-site state changes
//! (form or `text/plain` posts, JSON with a foreign `Origin`) and DNS-rebound requests
//! (a foreign `Host`) change nothing; CORS answers name only allowed origins.

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use cairn_registry::Registry;
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

async fn app(options: cairn_server::BrowserOptions) -> (tempfile::TempDir, Registry, Router) {
    let dir = tempfile::tempdir().unwrap();
    let registry = Registry::open_local(dir.path()).await.unwrap();
    let options = cairn_server::ServerOptions {
        browsers: options,
        ..Default::default()
    };
    let router = cairn_server::router(registry.clone(), &options);
    (dir, registry, router)
}

async fn send(
    router: &Router,
    method: Method,
    uri: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (StatusCode, HeaderMap, Value) {
    let mut builder = Request::builder().method(method).uri(uri);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let response = router
        .clone()
        .oneshot(builder.body(Body::from(body.to_owned())).unwrap())
        .await
        .unwrap();
    let (status, headers) = (response.status(), response.headers().clone());
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        headers,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

const CREATE_MLFLOW: &str = "/api/2.0/mlflow/registered-models/create";

#[tokio::test]
async fn cross_site_posts_and_foreign_hosts_change_nothing() {
    let (_dir, registry, router) = app(Default::default()).await;
    let body = r#"{"name": "planted"}"#;
    let attempts: [(&str, Vec<(&str, &str)>); 5] = [
        // What a form on evil.example can send without a preflight.
        (
            CREATE_MLFLOW,
            vec![
                ("host", "localhost:5000"),
                ("origin", "https://evil.example"),
                ("content-type", "text/plain"),
            ],
        ),
        (
            "/api/v1/models",
            vec![
                ("host", "localhost:5000"),
                ("origin", "https://evil.example"),
                ("content-type", "text/plain"),
            ],
        ),
        // JSON, as a page could send after a preflight the server would not allow.
        (
            CREATE_MLFLOW,
            vec![
                ("host", "localhost:5000"),
                ("origin", "https://evil.example"),
                ("content-type", "application/json"),
            ],
        ),
        // DNS rebinding: evil.example resolved to this machine; the page is same-origin.
        (
            CREATE_MLFLOW,
            vec![
                ("host", "evil.example:5000"),
                ("content-type", "application/json"),
            ],
        ),
        (
            "/api/v1/models",
            vec![
                ("host", "10.evil.example"),
                ("content-type", "application/json"),
            ],
        ),
    ];
    for (uri, headers) in &attempts {
        let (status, _, answer) = send(&router, Method::POST, uri, headers, body).await;
        assert!(status.is_client_error(), "{uri} {headers:?}: {status}");
        assert!(answer.get("message").is_some(), "{answer}");
    }
    assert!(registry.list_models().await.unwrap().is_empty());
    assert_eq!(registry.audit_head().await.unwrap().seq, 0);

    // A foreign Host is refused for reads too, but health checks answer any Host.
    let (status, _, answer) = send(
        &router,
        Method::GET,
        "/api/v1/models",
        &[("host", "evil.example")],
        "",
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(
        answer["message"]
            .as_str()
            .unwrap()
            .contains("DNS rebinding")
    );
    let (status, ..) = send(
        &router,
        Method::GET,
        "/healthz",
        &[("host", "203.0.113.7")],
        "",
    )
    .await;
    assert_eq!(status, StatusCode::OK);

    // A page of this machine may; so may the server's own clients (no Origin).
    for origin in [Some("http://localhost:3000"), None] {
        let mut headers = vec![
            ("host", "127.0.0.1:5000"),
            ("content-type", "application/json"),
        ];
        headers.extend(origin.map(|o| ("origin", o)));
        let name = format!(r#"{{"name": "ok-{}"}}"#, origin.is_some());
        let (status, headers, _) =
            send(&router, Method::POST, CREATE_MLFLOW, &headers, &name).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(headers["x-frame-options"], "SAMEORIGIN");
        assert_eq!(headers["x-content-type-options"], "nosniff");
    }
    assert_eq!(registry.list_models().await.unwrap().len(), 2);
}

#[tokio::test]
async fn configured_hosts_and_origins_are_served_and_cors_names_only_them() {
    let (_dir, registry, router) = app(cairn_server::BrowserOptions {
        allowed_hosts: Some(vec!["registry.example.com".into()]),
        cors_allowed_origins: vec!["https://ui.example.com".into()],
        x_frame_options: "DENY".into(),
    })
    .await;
    let (status, headers, _) = send(
        &router,
        Method::POST,
        CREATE_MLFLOW,
        &[
            ("host", "registry.example.com"),
            ("origin", "https://ui.example.com"),
            ("content-type", "application/json"),
        ],
        r#"{"name": "from-ui"}"#,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        headers["access-control-allow-origin"],
        "https://ui.example.com"
    );
    assert_eq!(headers["x-frame-options"], "DENY");
    // Configured hosts replace the defaults.
    let (status, ..) = send(
        &router,
        Method::GET,
        "/api/v1/models",
        &[("host", "localhost")],
        "",
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // A preflight from another origin is not granted.
    let preflight = [
        ("host", "registry.example.com"),
        ("origin", "https://evil.example"),
        ("access-control-request-method", "POST"),
    ];
    let (_, headers, _) = send(&router, Method::OPTIONS, CREATE_MLFLOW, &preflight, "").await;
    assert!(
        !headers.contains_key("access-control-allow-origin"),
        "{headers:?}"
    );
    assert_eq!(registry.list_models().await.unwrap().len(), 1);
}
