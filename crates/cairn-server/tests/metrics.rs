//! `/metrics` counts requests per route template (never per raw path), server errors,
//! and reports the metadata store's connections, in Prometheus' text format.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use cairn_registry::Registry;
use http_body_util::BodyExt;
use tower::ServiceExt;

async fn get(router: &axum::Router, uri: &str) -> (StatusCode, String) {
    let request = Request::builder()
        .uri(uri)
        .header("host", "localhost:5000")
        .body(Body::empty())
        .unwrap();
    let response = router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8(bytes.to_vec()).unwrap())
}

#[tokio::test]
async fn requests_are_counted_by_route_template_with_the_pool() {
    let dir = tempfile::tempdir().unwrap();
    let registry = Registry::open_local(dir.path()).await.unwrap();
    let router = cairn_server::router(registry, &Default::default());
    for name in ["alpha", "beta"] {
        let (status, _) = get(&router, &format!("/api/v1/models/{name}")).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }
    assert_eq!(get(&router, "/api/v1/models").await.0, StatusCode::OK);

    let (status, text) = get(&router, "/metrics").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        text.contains(r#"cairn_server_requests_total{route="/api/v1/models/{name}",method="GET",status="404"} 2"#),
        "{text}"
    );
    assert!(
        text.contains(
            r#"cairn_server_requests_total{route="/api/v1/models",method="GET",status="200"} 1"#
        ),
        "{text}"
    );
    assert!(
        !text.contains("alpha"),
        "a raw path leaked into a label: {text}"
    );
    assert!(
        text.contains(
            r#"cairn_server_request_duration_seconds_count{route="/api/v1/models",method="GET"} 1"#
        ),
        "{text}"
    );
    assert!(text.contains("cairn_server_db_connections_open "), "{text}");
    assert!(text.trim_end().ends_with("# EOF"));
}
