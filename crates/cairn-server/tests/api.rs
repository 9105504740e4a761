//! The native API in-process: every request goes through the real router, registry
//! service, SQLite database and blob directory.

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use bytes::Bytes;
use cairn_core::Sha256Digest;
use cairn_registry::Registry;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

struct TestApp {
    dir: tempfile::TempDir,
    router: Router,
}

impl TestApp {
    async fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let registry = Registry::open_local(dir.path()).await.unwrap();
        Self {
            router: cairn_server::router(registry, &Default::default()),
            dir,
        }
    }

    async fn send(&self, mut request: Request<Body>) -> (StatusCode, Bytes) {
        // What every HTTP/1.1 client sends; the server refuses requests for other hosts.
        request
            .headers_mut()
            .entry(header::HOST)
            .or_insert(header::HeaderValue::from_static("localhost"));
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        (
            status,
            response.into_body().collect().await.unwrap().to_bytes(),
        )
    }

    async fn json(&self, method: Method, uri: &str, body: Option<Value>) -> (StatusCode, Value) {
        let mut builder = Request::builder().method(method).uri(uri);
        let body = match body {
            Some(v) => {
                builder = builder.header(header::CONTENT_TYPE, "application/json");
                Body::from(v.to_string())
            }
            None => Body::empty(),
        };
        let (status, bytes) = self.send(builder.body(body).unwrap()).await;
        let value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()))
        };
        (status, value)
    }

    async fn put_blob(&self, digest: &str, body: Body) -> (StatusCode, Value) {
        let request = Request::put(format!("/api/v1/blobs/sha256/{digest}"))
            .header(header::CONTENT_TYPE, "application/octet-stream")
            .body(body)
            .unwrap();
        let (status, bytes) = self.send(request).await;
        (status, serde_json::from_slice(&bytes).unwrap())
    }

    fn stored_blobs(&self) -> usize {
        count_files(&self.dir.path().join("blobs"))
    }

    /// Uploads `content` and registers it as a one-file version of `model`.
    async fn push(&self, model: &str, path: &str, content: &[u8]) -> Value {
        let digest = Sha256Digest::of(content).to_hex();
        let (status, _) = self.put_blob(&digest, Body::from(content.to_vec())).await;
        assert_eq!(status, StatusCode::CREATED);
        let (status, v) = self
            .json(
                Method::POST,
                &format!("/api/v1/models/{model}/versions"),
                Some(json!({"files": [{"path": path, "size": content.len(), "sha256": digest}]})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{v}");
        v
    }
}

fn count_files(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| {
                    if e.path().is_dir() {
                        count_files(&e.path())
                    } else {
                        1
                    }
                })
                .sum()
        })
        .unwrap_or(0)
}

fn assert_error(status: StatusCode, body: &Value, want_status: StatusCode, want_code: &str) {
    assert_eq!(status, want_status, "{body}");
    assert_eq!(body["code"], want_code, "{body}");
    assert!(!body["message"].as_str().unwrap().is_empty(), "{body}");
}

#[tokio::test]
async fn upload_register_fetch_round_trip() {
    let app = TestApp::new().await;
    let v = app.push("demo", "weights/model.bin", b"weights").await;
    assert_eq!(v["version"], 1);
    let (status, missing) = app
        .json(
            Method::POST,
            "/api/v1/blobs/missing",
            Some(json!({"digests": [Sha256Digest::of(b"weights").to_hex(), Sha256Digest::of(b"new").to_hex()]})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        missing["missing"],
        json!([Sha256Digest::of(b"new").to_hex()])
    );

    let (status, shown) = app
        .json(Method::GET, "/api/v1/models/demo/versions/latest", None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(shown["files"][0]["path"], "weights/model.bin");
    let request = Request::get(format!(
        "/api/v1/blobs/sha256/{}",
        Sha256Digest::of(b"weights")
    ))
    .body(Body::empty())
    .unwrap();
    let (status, bytes) = app.send(request).await;
    assert_eq!((status, &bytes[..]), (StatusCode::OK, &b"weights"[..]));
}

#[tokio::test]
async fn alias_endpoints_record_history_with_the_declared_actor() {
    let app = TestApp::new().await;
    app.push("demo", "w", b"1").await;
    app.push("demo", "w", b"2").await;
    for n in [1, 2] {
        let request = Request::put("/api/v1/models/demo/aliases/production")
            .header(header::CONTENT_TYPE, "application/json")
            .header("x-cairn-actor", "ci-bot")
            .body(Body::from(
                json!({"version": n, "reason": "release"}).to_string(),
            ))
            .unwrap();
        assert_eq!(app.send(request).await.0, StatusCode::OK);
        // Each move shows at once where the alias is resolved.
        let (status, now) = app
            .json(Method::GET, "/api/v1/models/demo/versions/production", None)
            .await;
        assert_eq!((status, now["version"].clone()), (StatusCode::OK, json!(n)));
    }
    let (status, rolled) = app
        .json(
            Method::POST,
            "/api/v1/models/demo/aliases/production/rollback",
            Some(json!({})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (rolled["move"]["from"].clone(), rolled["move"]["to"].clone()),
        (json!(2), json!(1))
    );
    let (_, now) = app
        .json(Method::GET, "/api/v1/models/demo/versions/production", None)
        .await;
    assert_eq!(now["version"], 1);
    let (_, history) = app
        .json(
            Method::GET,
            "/api/v1/models/demo/aliases/production/history",
            None,
        )
        .await;
    let history = history.as_array().unwrap();
    assert_eq!(history.len(), 3);
    assert_eq!(history[0]["actor"], "ci-bot");
    assert_eq!(history[0]["from"], Value::Null);
    assert_eq!(history[2]["actor"], "anonymous");
    let (status, _) = app
        .json(
            Method::DELETE,
            "/api/v1/models/demo/aliases/production?reason=retired",
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = app
        .json(Method::GET, "/api/v1/models/demo/versions/production", None)
        .await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "alias_not_found");
}

#[tokio::test]
async fn unknown_things_are_404_with_a_code() {
    let app = TestApp::new().await;
    let (s, b) = app.json(Method::GET, "/api/v1/models/ghost", None).await;
    assert_error(s, &b, StatusCode::NOT_FOUND, "model_not_found");
    app.push("demo", "w", b"1").await;
    let (s, b) = app
        .json(Method::GET, "/api/v1/models/demo/versions/7", None)
        .await;
    assert_error(s, &b, StatusCode::NOT_FOUND, "version_not_found");
    let (s, b) = app
        .json(Method::GET, "/api/v1/models/demo/versions/staging", None)
        .await;
    assert_error(s, &b, StatusCode::NOT_FOUND, "alias_not_found");
    let (s, b) = app
        .json(Method::DELETE, "/api/v1/models/demo/versions/7", None)
        .await;
    assert_error(s, &b, StatusCode::NOT_FOUND, "version_not_found");
    let (s, b) = app
        .json(
            Method::GET,
            &format!("/api/v1/blobs/sha256/{}", "0".repeat(64)),
            None,
        )
        .await;
    assert_error(s, &b, StatusCode::NOT_FOUND, "blob_not_found");
    let (s, b) = app.json(Method::GET, "/api/v2/whatever", None).await;
    assert_error(s, &b, StatusCode::NOT_FOUND, "no_such_route");
}

#[tokio::test]
async fn invalid_names_and_references_are_400() {
    let app = TestApp::new().await;
    for uri in [
        "/api/v1/models/bad%2Fname",
        "/api/v1/models/bad%3Aname",
        "/api/v1/models/..x",
        "/api/v1/models/demo/versions/0",
        "/api/v1/models/demo/versions/a.b",
        "/api/v1/models/demo/aliases/latest/history",
        "/api/v1/blobs/sha256/xyz",
    ] {
        let (s, b) = app.json(Method::GET, uri, None).await;
        assert_error(s, &b, StatusCode::BAD_REQUEST, "invalid_argument");
    }
    let (s, b) = app
        .json(Method::POST, "/api/v1/models", Some(json!({"name": "a/b"})))
        .await;
    assert_error(s, &b, StatusCode::BAD_REQUEST, "invalid_argument");
}

#[tokio::test]
async fn manifests_with_escaping_paths_are_refused() {
    let app = TestApp::new().await;
    let digest = Sha256Digest::of(b"x").to_hex();
    app.put_blob(&digest, Body::from("x")).await;
    for path in [
        "../../etc/passwd",
        "/etc/passwd",
        "a/../../b",
        "a//b",
        "a\\b",
    ] {
        let (s, b) = app
            .json(
                Method::POST,
                "/api/v1/models/demo/versions",
                Some(json!({"files": [{"path": path, "size": 1, "sha256": digest}]})),
            )
            .await;
        assert_error(s, &b, StatusCode::BAD_REQUEST, "invalid_argument");
        assert!(
            b["message"].as_str().unwrap().contains("invalid file path"),
            "{b}"
        );
    }
    let (s, _) = app.json(Method::GET, "/api/v1/models/demo", None).await;
    assert_eq!(
        s,
        StatusCode::NOT_FOUND,
        "a refused manifest must not create the model"
    );
}

#[tokio::test]
async fn malformed_json_is_400_and_missing_content_type_415() {
    let app = TestApp::new().await;
    let request = Request::post("/api/v1/models/demo/versions")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from("{\"files\": [oops"))
        .unwrap();
    let (s, b) = app.send(request).await;
    let b: Value = serde_json::from_slice(&b).unwrap();
    assert_error(s, &b, StatusCode::BAD_REQUEST, "malformed_json");
    let request = Request::post("/api/v1/models")
        .body(Body::from("{}"))
        .unwrap();
    let (s, b) = app.send(request).await;
    let b: Value = serde_json::from_slice(&b).unwrap();
    assert_error(
        s,
        &b,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    );
    let (s, b) = app
        .json(
            Method::POST,
            "/api/v1/models",
            Some(json!({"name": "ok", "surprise": 1})),
        )
        .await;
    assert_error(s, &b, StatusCode::BAD_REQUEST, "invalid_argument");
}

#[tokio::test]
async fn blob_with_wrong_bytes_is_refused_and_nothing_stored() {
    let app = TestApp::new().await;
    let claimed = Sha256Digest::of(b"genuine").to_hex();
    let (s, b) = app.put_blob(&claimed, Body::from("forged")).await;
    assert_error(s, &b, StatusCode::BAD_REQUEST, "digest_mismatch");
    assert_eq!(app.stored_blobs(), 0);
    let (s, b) = app
        .json(
            Method::POST,
            "/api/v1/models/demo/versions",
            Some(json!({"files": [{"path": "w", "size": 7, "sha256": claimed}]})),
        )
        .await;
    assert_error(s, &b, StatusCode::BAD_REQUEST, "missing_blobs");
}

#[tokio::test]
async fn truncated_upload_is_refused_and_leaves_nothing() {
    let app = TestApp::new().await;
    let content = vec![3u8; 12 * 1024 * 1024];
    let digest = Sha256Digest::of(&content).to_hex();
    // The client dies after 10 MiB: the body stream ends with an error.
    let chunks: Vec<Result<Bytes, std::io::Error>> = content[..10 * 1024 * 1024]
        .chunks(1 << 20)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .chain([Err(std::io::Error::other("connection reset by peer"))])
        .collect();
    let (s, b) = app
        .put_blob(&digest, Body::from_stream(futures::stream::iter(chunks)))
        .await;
    assert_error(s, &b, StatusCode::BAD_REQUEST, "upload_interrupted");
    // A body that simply ends early hashes differently.
    let (s, b) = app
        .put_blob(&digest, Body::from(content[..1000].to_vec()))
        .await;
    assert_error(s, &b, StatusCode::BAD_REQUEST, "digest_mismatch");
    assert_eq!(
        app.stored_blobs(),
        0,
        "no blob and no staging file may remain"
    );
    // The server keeps serving, and the full upload then succeeds.
    let (s, _) = app.put_blob(&digest, Body::from(content)).await;
    assert_eq!(s, StatusCode::CREATED);
}

#[tokio::test]
async fn bad_input_changes_nothing_already_stored() {
    let app = TestApp::new().await;
    app.push("demo", "w", b"1").await;
    let (_, before) = app
        .json(Method::GET, "/api/v1/models/demo/versions/1", None)
        .await;
    app.json(
        Method::POST,
        "/api/v1/models/demo/versions",
        Some(json!({"files": []})),
    )
    .await;
    app.json(
        Method::PUT,
        "/api/v1/models/demo/aliases/prod",
        Some(json!({"version": "one"})),
    )
    .await;
    app.json(Method::DELETE, "/api/v1/models/demo/versions/latest", None)
        .await;
    app.put_blob(&Sha256Digest::of(b"1").to_hex(), Body::from("2"))
        .await;
    let (_, after) = app
        .json(Method::GET, "/api/v1/models/demo/versions/1", None)
        .await;
    assert_eq!(before, after);
    let (_, report) = app.json(Method::POST, "/api/v1/verify", None).await;
    assert_eq!(report["problems"], json!([]));
}

#[tokio::test]
async fn health_and_openapi() {
    let app = TestApp::new().await;
    assert_eq!(
        app.json(Method::GET, "/healthz", None).await.0,
        StatusCode::OK
    );
    assert_eq!(
        app.json(Method::GET, "/readyz", None).await.0,
        StatusCode::OK
    );
    let (s, doc) = app.json(Method::GET, "/api/v1/openapi.json", None).await;
    assert_eq!(s, StatusCode::OK);
    let paths = doc["paths"].as_object().unwrap();
    for path in [
        "/api/v1/models",
        "/api/v1/models/{name}",
        "/api/v1/models/{name}/versions",
        "/api/v1/models/{name}/versions/{reference}",
        "/api/v1/models/{name}/versions/{reference}/verify",
        "/api/v1/models/{name}/aliases/{alias}",
        "/api/v1/models/{name}/aliases/{alias}/rollback",
        "/api/v1/models/{name}/aliases/{alias}/history",
        "/api/v1/verify",
        "/api/v1/blobs/missing",
        "/api/v1/blobs/sha256/{digest}",
        "/api/v1/audit",
        "/api/v1/audit/head",
        "/api/v1/audit/verify",
        "/api/v1/gc",
        "/api/v1/blobs/sha256/{digest}/why",
        "/api/v1/models/{name}/versions/{reference}/lineage",
        "/api/v1/lineage/versions",
    ] {
        assert!(
            paths.contains_key(path),
            "{path} missing from the OpenAPI document"
        );
    }
    assert!(doc["components"]["schemas"]["Version"].is_object());
}

#[tokio::test]
async fn audit_gc_and_lineage_endpoints_answer_bad_input_with_400_and_a_code() {
    let app = TestApp::new().await;
    app.push("m", "w", b"weights").await;

    let (status, body) = app
        .json(Method::GET, "/api/v1/audit?since=yesterday", None)
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_argument"))
    );
    let (status, log) = app.json(Method::GET, "/api/v1/audit?model=m", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(log[0]["action"], "version.create");

    let (status, body) = app
        .send(
            Request::post("/api/v1/audit/verify")
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from("{not json"))
                .unwrap(),
        )
        .await;
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("malformed_json"))
    );
    let (status, report) = app.json(Method::POST, "/api/v1/audit/verify", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(report["broken"], Value::Null);

    let (status, body) = app
        .json(
            Method::POST,
            "/api/v1/gc",
            Some(json!({"grace_seconds": "soon"})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, body) = app
        .json(Method::GET, "/api/v1/blobs/sha256/zz/why", None)
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_argument"))
    );

    let (status, body) = app
        .json(Method::GET, "/api/v1/lineage/versions", None)
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_argument"))
    );
    let (status, body) = app
        .json(
            Method::GET,
            "/api/v1/lineage/versions?parent=m@latest",
            None,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, body) = app
        .json(Method::GET, "/api/v1/models/m/versions/9/lineage", None)
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("version_not_found"))
    );
    let (status, lineage) = app
        .json(Method::GET, "/api/v1/models/m/versions/1/lineage", None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(lineage["version"], 1);
}

/// What a hostile client or a damaged store does to the API (issue: "verified byte for
/// byte on every path").
#[path = "api/integrity.rs"]
mod integrity;

/// The listings' pages and their `Link: rel="next"`.
#[path = "api/paging.rs"]
mod paging;

/// `Idempotency-Key`: a repeated write answers the first one's result.
#[path = "api/idempotency.rs"]
mod idempotency;
