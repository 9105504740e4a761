//! `Idempotency-Key` on the native API: the same key and request answer the first
//! registration (201, same number and digest) and write nothing more; the same key with
//! another request is 422; a malformed key is 400; a repeated rollback moves the alias
//! once.

use super::*;

async fn keyed(
    app: &TestApp,
    method: Method,
    uri: &str,
    key: &str,
    body: Value,
) -> (StatusCode, Value) {
    let request = Request::builder()
        .method(method)
        .uri(uri)
        .header(header::CONTENT_TYPE, "application/json")
        .header("idempotency-key", key)
        .body(Body::from(body.to_string()))
        .unwrap();
    let (status, bytes) = app.send(request).await;
    (status, serde_json::from_slice(&bytes).unwrap())
}

#[tokio::test]
async fn a_repeated_key_answers_the_first_registration() {
    let app = TestApp::new().await;
    let content = b"weights";
    let digest = Sha256Digest::of(content).to_hex();
    let (status, _) = app.put_blob(&digest, Body::from(&content[..])).await;
    assert_eq!(status, StatusCode::CREATED);
    let manifest =
        json!({"files": [{"path": "model.bin", "size": content.len(), "sha256": digest}]});
    let uri = "/api/v1/models/keyed/versions";
    let (status, first) = keyed(&app, Method::POST, uri, "push-1", manifest.clone()).await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    let (status, again) = keyed(&app, Method::POST, uri, "push-1", manifest.clone()).await;
    assert_eq!(status, StatusCode::CREATED, "{again}");
    assert_eq!(again, first, "the same answer");
    let (_, versions) = app.json(Method::GET, uri, None).await;
    assert_eq!(versions.as_array().unwrap().len(), 1);

    let mut other = manifest.clone();
    other["description"] = json!("another request");
    let (status, body) = keyed(&app, Method::POST, uri, "push-1", other).await;
    assert_error(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "idempotency_key_reused",
    );
    for bad in ["two words", "", &"k".repeat(256)] {
        let (status, body) = keyed(&app, Method::POST, uri, bad, manifest.clone()).await;
        assert_error(status, &body, StatusCode::BAD_REQUEST, "invalid_argument");
    }
    let (_, versions) = app.json(Method::GET, uri, None).await;
    assert_eq!(versions.as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn a_repeated_rollback_moves_the_alias_once() {
    let app = TestApp::new().await;
    for i in 0..3u8 {
        app.push("keyed", "model.bin", &[i]).await;
    }
    for n in 1..=3 {
        let (status, body) = app
            .json(
                Method::PUT,
                "/api/v1/models/keyed/aliases/prod",
                Some(json!({"version": n})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let uri = "/api/v1/models/keyed/aliases/prod/rollback";
    let (status, first) = keyed(&app, Method::POST, uri, "rb-1", json!({})).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    assert_eq!(first["move"]["to"], 2);
    let (status, again) = keyed(&app, Method::POST, uri, "rb-1", json!({})).await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(again, first);
    let (_, version) = app
        .json(Method::GET, "/api/v1/models/keyed/versions/prod", None)
        .await;
    assert_eq!(version["version"], 2, "{version}");
}
