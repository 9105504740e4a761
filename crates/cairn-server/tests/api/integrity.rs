//! Hostile input and damaged stores: every answer is the API's JSON error with the right
//! status, and no bytes that are not the blob's are ever served whole.

use super::*;

/// The path of a stored blob in the app's data directory.
fn blob_path(app: &TestApp, content: &[u8]) -> std::path::PathBuf {
    let hex = Sha256Digest::of(content).to_hex();
    app.dir
        .path()
        .join("blobs/sha256")
        .join(&hex[..2])
        .join(hex)
}

#[tokio::test]
async fn a_declared_size_must_be_the_stored_size() {
    let app = TestApp::new().await;
    let content = b"hello world";
    app.push("m", "a.txt", content).await;
    let digest = Sha256Digest::of(content).to_hex();
    for size in [999_u64, 10, 0] {
        let (status, body) = app
            .json(
                Method::POST,
                "/api/v1/models/m/versions",
                Some(json!({"files": [{"path": "b.txt", "size": size, "sha256": digest}]})),
            )
            .await;
        assert_error(status, &body, StatusCode::BAD_REQUEST, "size_mismatch");
        assert!(
            body["message"].as_str().unwrap().contains("holds 11 bytes"),
            "{body}"
        );
    }
    // Sizes the stores cannot hold, alone or summed.
    for files in [
        json!([{"path": "a", "size": 9_223_372_036_854_775_808_u64, "sha256": digest}]),
        json!([{"path": "a", "size": 9_223_372_036_854_775_807_u64, "sha256": digest},
               {"path": "b", "size": 11, "sha256": digest}]),
    ] {
        let (status, body) = app
            .json(
                Method::POST,
                "/api/v1/models/m/versions",
                Some(json!({"files": files})),
            )
            .await;
        assert_error(status, &body, StatusCode::BAD_REQUEST, "invalid_argument");
    }
    let (_, versions) = app
        .json(Method::GET, "/api/v1/models/m/versions", None)
        .await;
    assert_eq!(
        versions.as_array().unwrap().len(),
        1,
        "nothing was registered"
    );
    let (status, report) = app.json(Method::POST, "/api/v1/verify", None).await;
    assert_eq!(
        (status, &report["problems"], &report["records"]),
        (StatusCode::OK, &json!([]), &json!([]))
    );
}

/// GET a blob through both doors: the native API and MLflow's artifact download.
async fn fetch_both(app: &TestApp, content: &[u8]) -> Vec<(StatusCode, Result<Bytes, String>)> {
    let digest = Sha256Digest::of(content);
    let mut out = Vec::new();
    for uri in [
        format!("/api/v1/blobs/sha256/{digest}"),
        "/api/2.0/mlflow-artifacts/artifacts/_cairn/versions/m/1/w.bin".to_owned(),
    ] {
        let response = app
            .router
            .clone()
            .oneshot(
                Request::get(uri)
                    .header(header::HOST, "localhost")
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        let status = response.status();
        let body = response.into_body().collect().await;
        out.push((
            status,
            body.map(|b| b.to_bytes()).map_err(|e| e.to_string()),
        ));
    }
    out
}

#[tokio::test]
async fn a_small_corrupt_blob_is_refused_with_a_json_error() {
    let app = TestApp::new().await;
    let content = b"the weights, small";
    app.push("m", "w.bin", content).await;
    let mut damaged = content.to_vec();
    damaged[0] ^= 1;
    std::fs::write(blob_path(&app, content), &damaged).unwrap();
    for (status, body) in fetch_both(&app, content).await {
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        let body: Value = serde_json::from_slice(&body.unwrap()).unwrap();
        let message = body["message"].as_str().unwrap();
        assert!(message.contains("is corrupt"), "{body}");
    }
    // Emptied: refused too (there is no last chunk to hold back).
    std::fs::write(blob_path(&app, content), b"").unwrap();
    for (status, _) in fetch_both(&app, content).await {
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    }
}

#[tokio::test]
async fn a_large_corrupt_blob_never_ends_cleanly() {
    let app = TestApp::new().await;
    let content: Vec<u8> = (0..3 * 1024 * 1024 + 17).map(|i| (i % 251) as u8).collect();
    app.push("m", "w.bin", &content).await;
    for (status, body) in fetch_both(&app, &content).await {
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body.unwrap(), content, "intact: served whole");
    }
    // One bit flipped in the last chunk, then one in the first.
    for at in [content.len() - 1, 0] {
        let mut damaged = content.clone();
        damaged[at] ^= 1;
        std::fs::write(blob_path(&app, &content), &damaged).unwrap();
        for (status, body) in fetch_both(&app, &content).await {
            assert_eq!(
                status,
                StatusCode::OK,
                "headers go before the bytes are known"
            );
            let err = body.expect_err("a corrupt body must end in an error, never cleanly");
            assert!(err.contains("corrupt"), "{err}");
        }
    }
}

#[tokio::test]
async fn numbers_past_what_the_stores_hold_name_nothing() {
    let app = TestApp::new().await;
    app.push("m", "a.txt", b"a").await;
    for n in ["9223372036854775808", "18446744073709551615"] {
        let (status, body) = app
            .json(
                Method::POST,
                "/api/2.0/mlflow/registered-models/alias",
                Some(json!({"name": "m", "alias": "prod", "version": n})),
            )
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
        let message = body["message"].as_str().unwrap();
        assert!(message.contains(n) && !message.contains('-'), "{message}");
        let (status, body) = app
            .json(Method::GET, &format!("/api/v1/models/m/versions/{n}"), None)
            .await;
        assert_error(status, &body, StatusCode::BAD_REQUEST, "invalid_argument");
        assert!(
            body["message"]
                .as_str()
                .unwrap()
                .contains("9223372036854775807"),
            "{body}"
        );
    }
    let (status, body) = app
        .send(
            Request::put("/api/2.0/mlflow-artifacts/mpu/part/abc/99999999999999999999999")
                .body(Body::from("x"))
                .unwrap(),
        )
        .await;
    let body: Value = serde_json::from_slice(&body).expect("a JSON error body");
    assert_eq!(
        (status, &body["error_code"]),
        (StatusCode::BAD_REQUEST, &json!("INVALID_PARAMETER_VALUE"))
    );
}

#[tokio::test]
async fn mlflow_aliases_with_unicode_letters_work_and_odd_ones_answer_json() {
    let app = TestApp::new().await;
    app.push("m", "a.txt", b"a").await;
    let set = |alias: &str| json!({"name": "m", "alias": alias, "version": "1"});
    let (status, body) = app
        .json(
            Method::POST,
            "/api/2.0/mlflow/registered-models/alias",
            Some(set("ü")),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = app
        .json(
            Method::GET,
            "/api/2.0/mlflow/registered-models/alias?name=m&alias=%C3%BC",
            None,
        )
        .await;
    assert_eq!(
        (status, &body["model_version"]["version"]),
        (StatusCode::OK, &json!("1")),
        "{body}"
    );
    for alias in ["", "v1", "ü ü", "\u{0}", &"ü".repeat(40), "-"] {
        let (status, body) = app
            .json(
                Method::POST,
                "/api/2.0/mlflow/registered-models/alias",
                Some(set(alias)),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{alias:?}: {body}");
        assert_eq!(body["error_code"], "INVALID_PARAMETER_VALUE", "{body}");
    }
}

#[tokio::test]
async fn oversized_bodies_are_refused_from_their_headers_with_413() {
    let app = TestApp::new().await;
    // Declared 300 MB, sent nothing: refused before a byte is read.
    for (uri, code_field) in [
        ("/api/v1/models", "code"),
        ("/api/2.0/mlflow/runs/search", "error_code"),
        ("/api/v1/audit/verify", "code"),
    ] {
        let request = Request::post(uri)
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::CONTENT_LENGTH, "300000000")
            .body(Body::empty())
            .unwrap();
        let (status, body) = app.send(request).await;
        let body: Value = serde_json::from_slice(&body).expect("a JSON error body");
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{uri}: {body}");
        assert!(body[code_field].is_string(), "{body}");
    }
}

#[tokio::test]
async fn a_filter_of_thousands_of_comparisons_is_a_400() {
    let app = TestApp::new().await;
    let filter = vec!["metrics.a > 1"; 20_000].join(" AND ");
    let (status, body) = app
        .json(
            Method::POST,
            "/api/2.0/mlflow/runs/search",
            Some(json!({"experiment_ids": ["0"], "filter": filter})),
        )
        .await;
    assert_eq!(
        (status, &body["error_code"]),
        (StatusCode::BAD_REQUEST, &json!("INVALID_PARAMETER_VALUE"))
    );
    assert!(
        body["message"].as_str().unwrap().len() < 1000,
        "the message quotes an excerpt"
    );
}

#[tokio::test]
async fn a_multipart_upload_must_name_a_file() {
    let app = TestApp::new().await;
    let (status, run) = app
        .json(
            Method::POST,
            "/api/2.0/mlflow/runs/create",
            Some(json!({"experiment_id": "0"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let run_id = run["run"]["info"]["run_id"].as_str().unwrap();
    for local in ["dir/", "dir\\"] {
        let (status, body) = app
            .json(
                Method::POST,
                &format!("/api/2.0/mlflow-artifacts/mpu/create/0/{run_id}/artifacts/model"),
                Some(json!({"path": local, "num_parts": 1})),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{local}: {body}");
    }
    let (status, body) = app
        .send(
            Request::put(format!(
                "/api/2.0/mlflow-artifacts/artifacts/0/{run_id}/artifacts/dir/"
            ))
            .body(Body::from("x"))
            .unwrap(),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body:?}");
    // Nothing stored blocks registering the run's artifacts.
    let (status, body) = app
        .json(
            Method::POST,
            "/api/2.0/mlflow/registered-models/create",
            Some(json!({"name": "m"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}
