//! Listings come in pages, each linking the next (`Link: <…>; rel="next"`) while more
//! may follow; following the links gives every entry once, in order.

use super::*;

/// Every page from `uri` on, following the links: the entries, and how many pages.
async fn follow(app: &TestApp, uri: &str) -> (Vec<Value>, usize) {
    let (mut uri, mut seen, mut pages) = (uri.to_owned(), Vec::new(), 0);
    loop {
        let request = Request::get(&uri)
            .header(header::HOST, "localhost")
            .body(Body::empty())
            .unwrap();
        let response = app.router.clone().oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{uri}");
        let next = response
            .headers()
            .get(header::LINK)
            .map(|l| l.to_str().unwrap().to_owned());
        let body = response.into_body().collect().await.unwrap().to_bytes();
        let page: Value = serde_json::from_slice(&body).unwrap();
        seen.extend(page.as_array().unwrap().iter().cloned());
        pages += 1;
        match next {
            Some(link) => {
                assert!(link.ends_with("; rel=\"next\""), "{link}");
                uri = link[1..link.find('>').unwrap()].to_owned();
            }
            None => return (seen, pages),
        }
    }
}

#[tokio::test]
async fn versions_are_listed_in_pages_linked_to_the_next() {
    let app = TestApp::new().await;
    for i in 0..5u8 {
        app.push("paged", "model.bin", &[i]).await;
    }
    let (seen, pages) = follow(&app, "/api/v1/models/paged/versions?limit=2").await;
    let numbers: Vec<u64> = seen
        .iter()
        .map(|v| v["version"].as_u64().unwrap())
        .collect();
    assert_eq!(numbers, [1, 2, 3, 4, 5], "every version once, in order");
    assert_eq!(pages, 3);
    // Without paging parameters: the first page (all five here), no link.
    let (all, pages) = follow(&app, "/api/v1/models/paged/versions").await;
    assert_eq!((all.len(), pages), (5, 1));
}

#[tokio::test]
async fn models_are_listed_in_pages_by_name() {
    let app = TestApp::new().await;
    for name in ["e.5", "a-1", "d_4", "b", "c"] {
        app.push(name, "model.bin", name.as_bytes()).await;
    }
    let (seen, pages) = follow(&app, "/api/v1/models?limit=2").await;
    let names: Vec<&str> = seen.iter().map(|m| m["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["a-1", "b", "c", "d_4", "e.5"]);
    assert_eq!(pages, 3);
    let (status, body) = app.json(Method::GET, "/api/v1/models?after=c", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body.as_array().unwrap().len(), 2, "{body}");
}

#[tokio::test]
async fn the_audit_log_is_listed_in_pages_keeping_its_filters() {
    let app = TestApp::new().await;
    for i in 0..4u8 {
        app.push("kept", "model.bin", &[i]).await;
        app.push("other", "model.bin", &[i, i]).await;
    }
    let (seen, pages) = follow(&app, "/api/v1/audit?limit=3&model=kept").await;
    let entries: Vec<(u64, &str)> = seen
        .iter()
        .map(|e| (e["seq"].as_u64().unwrap(), e["model"].as_str().unwrap()))
        .collect();
    assert_eq!(entries.len(), 4, "{entries:?}");
    assert!(
        entries.iter().all(|(_, model)| *model == "kept"),
        "{entries:?}"
    );
    assert!(entries.windows(2).all(|w| w[0].0 < w[1].0), "in order");
    assert_eq!(pages, 2);
    let (everything, _) = follow(&app, "/api/v1/audit?limit=5").await;
    assert_eq!(everything.len(), 8);
}
