//! Tracking-store tests on a real SQLite database and blob directory.

use std::collections::BTreeMap;

use bytes::Bytes;
use cairn_core::search::{parse_filter, parse_order_by};
use cairn_core::tracking::{DatasetInput, Lifecycle};

use crate::test_support::{conformance, registry};
use crate::tracking::{MetricValue, ViewType};
use crate::{Error, Refusal};

fn metric(key: &str, value: f64, step: i64) -> MetricValue {
    MetricValue {
        key: key.into(),
        value,
        timestamp: 1_000 + step,
        step,
    }
}

fn chunks(data: &[u8]) -> futures::stream::Iter<std::vec::IntoIter<Result<Bytes, std::io::Error>>> {
    let parts: Vec<Result<Bytes, std::io::Error>> = data
        .chunks(3)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    futures::stream::iter(parts)
}

async fn default_experiment_exists_and_names_are_unique() {
    let (_dir, r) = registry().await;
    let t = r.tracking();
    assert_eq!(t.get_experiment(0).await.unwrap().name, "Default");
    let id = t
        .create_experiment("exp", None, &BTreeMap::new())
        .await
        .unwrap();
    assert_eq!(
        t.get_experiment_by_name("exp")
            .await
            .unwrap()
            .artifact_location,
        format!("mlflow-artifacts:/{id}")
    );
    assert!(matches!(
        t.create_experiment("exp", None, &BTreeMap::new()).await,
        Err(Error::AlreadyExists(_))
    ));
    assert!(matches!(
        t.get_experiment_by_name("nope").await,
        Err(Error::NotFound(_))
    ));
}

async fn latest_metric_is_the_largest_step_and_history_keeps_everything() {
    let (_dir, r) = registry().await;
    let t = r.tracking();
    let run = t
        .create_run(0, "u", 1, None, &BTreeMap::new())
        .await
        .unwrap()
        .info
        .id;
    t.log_batch(
        &run,
        &[
            metric("loss", 0.5, 2),
            metric("loss", 0.9, 1),
            metric("loss", f64::NAN, 0),
        ],
        &[],
        &[],
    )
    .await
    .unwrap();
    let got = t.get_run(&run).await.unwrap();
    assert_eq!(got.metrics.len(), 1);
    assert_eq!((got.metrics[0].step, got.metrics[0].value), (2, 0.5));
    let history = t.metric_history(&run, "loss").await.unwrap();
    assert_eq!(history.len(), 3);
    assert!(history[0].value.is_nan(), "NaN survives the round trip");
    assert_eq!(got.tags["mlflow.runName"], got.info.name);
}

/// A value is identified by run, key, timestamp, step and value, as MLflow identifies
/// it: logging it again (a retried request) keeps one, on both write paths (metrics
/// alone through the group-committing writer, metrics with tags in one transaction).
async fn a_metric_value_logged_twice_is_kept_once() {
    let (_dir, r) = registry().await;
    let t = r.tracking();
    let run = t
        .create_run(0, "u", 1, None, &BTreeMap::new())
        .await
        .unwrap()
        .info
        .id;
    let first = [metric("loss", 0.5, 1), metric("loss", f64::NAN, 2)];
    t.log_batch(&run, &first, &[], &[]).await.unwrap();
    t.log_batch(&run, &first, &[], &[]).await.unwrap();
    let tag = [("note".to_string(), "retry".to_string())];
    t.log_batch(&run, &first, &[], &tag).await.unwrap();
    // The same value twice within one request, and a new value at a logged step.
    let second = [
        metric("loss", 0.25, 3),
        metric("loss", 0.25, 3),
        metric("loss", 0.4, 1),
    ];
    t.log_batch(&run, &second, &[], &[]).await.unwrap();
    let history = t.metric_history(&run, "loss").await.unwrap();
    let seen: Vec<(i64, String)> = history
        .iter()
        .map(|m| (m.step, m.value.to_string()))
        .collect();
    assert_eq!(
        seen,
        [
            (1, "0.4".to_string()),
            (1, "0.5".to_string()),
            (2, "NaN".to_string()),
            (3, "0.25".to_string()),
        ]
    );
    let latest = t.get_run(&run).await.unwrap().metrics;
    assert_eq!((latest[0].step, latest[0].value), (3, 0.25));
}

/// A registry that stored the same value twice before values had an identity keeps
/// one of each when it upgrades, and still knows each key's latest value.
async fn upgrading_keeps_one_of_each_logged_metric_value() {
    let storage = crate::test_support::empty_storage().await;
    crate::db::seed_before_migration(
        storage.db(),
        "metric identity",
        "INSERT INTO experiments (id, name, artifact_location, lifecycle_stage, creation_time, last_update_time)
           VALUES (7, 'old', 'mlflow-artifacts:/7', 'active', 0, 0);
         INSERT INTO runs (id, experiment_id, name, user_id, status, start_time, lifecycle_stage, artifact_uri)
           VALUES ('r1', 7, 'old-run', 'u', 'FINISHED', 0, 'active', 'mlflow-artifacts:/7/r1/artifacts');
         INSERT INTO run_metrics (run_id, key, value, is_nan, timestamp, step) VALUES
           ('r1', 'loss', 0.5, 0, 10, 1), ('r1', 'loss', 0.5, 0, 10, 1),
           ('r1', 'loss', 0.0, 1, 20, 2), ('r1', 'loss', 0.0, 1, 20, 2), ('r1', 'loss', 0.3, 0, 20, 2)",
    )
    .await;

    let t = storage.open_again().await;
    let t = t.tracking();
    let history: Vec<(i64, String)> = t
        .metric_history("r1", "loss")
        .await
        .unwrap()
        .iter()
        .map(|m| (m.step, m.value.to_string()))
        .collect();
    assert_eq!(
        history,
        [
            (1, "0.5".to_string()),
            (2, "NaN".to_string()),
            (2, "0.3".to_string()),
        ]
    );
    assert_eq!(t.get_run("r1").await.unwrap().metrics[0].value, 0.3);
    // Logging after the upgrade goes through the new key and the latest-value trigger.
    let again = MetricValue {
        key: "loss".into(),
        value: 0.5,
        timestamp: 10,
        step: 1,
    };
    t.log_batch("r1", &[metric("loss", 0.1, 5), again], &[], &[])
        .await
        .unwrap();
    assert_eq!(t.metric_history("r1", "loss").await.unwrap().len(), 4);
    assert_eq!(t.get_run("r1").await.unwrap().metrics[0].value, 0.1);
}

async fn params_are_write_once_and_deleted_runs_refuse_writes() {
    let (_dir, r) = registry().await;
    let t = r.tracking();
    let run = t
        .create_run(0, "u", 1, Some("r1"), &BTreeMap::new())
        .await
        .unwrap()
        .info
        .id;
    let p = |v: &str| vec![("lr".to_string(), v.to_string())];
    t.log_batch(&run, &[], &p("0.1"), &[]).await.unwrap();
    t.log_batch(&run, &[], &p("0.1"), &[]).await.unwrap();
    assert!(matches!(
        t.log_batch(&run, &[], &p("0.2"), &[]).await,
        Err(Error::Refused(Refusal::ParamChanged { old, new, .. })) if old == "0.1" && new == "0.2"
    ));
    t.set_run_lifecycle(&run, Lifecycle::Deleted).await.unwrap();
    assert!(matches!(
        t.log_batch(&run, &[metric("m", 1.0, 0)], &[], &[]).await,
        Err(Error::Refused(Refusal::RunDeleted(id))) if id == run
    ));
    assert_eq!(
        t.get_run(&run).await.unwrap().info.lifecycle,
        Lifecycle::Deleted
    );
}

/// Concurrent metric writes are grouped into shared statements; each request still gets
/// its own answer, and a deleted or unknown run, or a value logged twice, in the same
/// batch costs the others nothing.
async fn concurrent_metric_writes_each_get_their_own_answer() {
    let (_dir, r) = registry().await;
    let t = r.tracking();
    let no_tags = BTreeMap::new();
    let mut active = Vec::new();
    for name in ["a", "b", "c"] {
        let run = t.create_run(0, "u", 1, Some(name), &no_tags);
        active.push(run.await.unwrap().info.id);
    }
    let deleted = t
        .create_run(0, "u", 1, Some("d"), &BTreeMap::new())
        .await
        .unwrap()
        .info
        .id;
    t.set_run_lifecycle(&deleted, Lifecycle::Deleted)
        .await
        .unwrap();
    let unknown = "0".repeat(32);
    let mut targets: Vec<(&str, i64)> = Vec::new();
    for step in 0..20 {
        // Each value twice (a retried request): the second adds nothing, and is no error.
        targets.extend(active.iter().map(|run| (run.as_str(), step)));
        targets.extend(active.iter().map(|run| (run.as_str(), step)));
        if step % 5 == 0 {
            targets.extend([(deleted.as_str(), step), (unknown.as_str(), step)]);
        }
    }
    let writes = targets.iter().map(|&(run, step)| async move {
        (
            run,
            t.log_batch(run, &[metric("m", step as f64, step)], &[], &[])
                .await,
        )
    });
    for (run, answer) in futures::future::join_all(writes).await {
        match answer {
            Ok(()) => assert!(active.iter().any(|a| a == run), "{run} accepted a metric"),
            Err(Error::Refused(Refusal::RunDeleted(_))) => assert_eq!(run, deleted),
            Err(Error::NotFound(_)) => assert_eq!(run, unknown),
            Err(e) => panic!("{run}: {e}"),
        }
    }
    for run in &active {
        assert_eq!(t.metric_history(run, "m").await.unwrap().len(), 20);
    }
    assert!(t.metric_history(&deleted, "m").await.unwrap().is_empty());
}

async fn run_search_filters_and_orders_in_sql() {
    let (_dir, r) = registry().await;
    let t = r.tracking();
    let exp = t
        .create_experiment("s", None, &BTreeMap::new())
        .await
        .unwrap();
    let mut ids = Vec::new();
    for (i, acc) in [0.2, 0.9, 0.6, 0.75].into_iter().enumerate() {
        let tags: BTreeMap<String, String> = [(
            "kind".to_string(),
            if i % 2 == 0 { "even" } else { "odd" }.to_string(),
        )]
        .into();
        let run = t
            .create_run(exp, "u", 10 + i as i64, Some(&format!("run-{i}")), &tags)
            .await
            .unwrap()
            .info
            .id;
        t.log_batch(
            &run,
            &[metric("acc", acc, 0)],
            &[("idx".into(), i.to_string())],
            &[],
        )
        .await
        .unwrap();
        ids.push(run);
    }
    let search = |filter: &str, order: &[&str]| {
        let filter = parse_filter(filter).unwrap();
        let order: Vec<_> = order.iter().map(|o| parse_order_by(o).unwrap()).collect();
        async move {
            t.search_runs(&[exp], &filter, ViewType::ActiveOnly, &order, 0, 100)
                .await
                .unwrap()
                .into_iter()
                .map(|r| r.params["idx"].clone())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        search("metrics.acc > 0.5", &["metrics.acc DESC"]).await,
        ["1", "3", "2"]
    );
    assert_eq!(
        search("params.idx = '2' AND tags.kind = 'even'", &[]).await,
        ["2"]
    );
    assert_eq!(
        search("tags.kind LIKE 'EV%'", &[]).await,
        Vec::<String>::new(),
        "LIKE is case-sensitive"
    );
    assert_eq!(
        search("tags.kind ILIKE 'EV%'", &["params.idx"]).await,
        ["0", "2"]
    );
    assert_eq!(
        search(
            "attributes.run_name IN ('run-3', 'run-0')",
            &["attributes.start_time ASC"]
        )
        .await,
        ["0", "3"]
    );
    assert_eq!(
        search("params.missing IS NULL AND metrics.acc <= 0.2", &[]).await,
        ["0"]
    );
    // Default order: newest start first.
    assert_eq!(search("", &[]).await, ["3", "2", "1", "0"]);
    // Pages: limit + 1 rows tell the caller more exist.
    let page = t
        .search_runs(&[exp], &[], ViewType::ActiveOnly, &[], 2, 1)
        .await
        .unwrap();
    assert_eq!(page.len(), 2);
    // An offset past every run (a page token may carry any number) is an empty page.
    let past = t
        .search_runs(&[exp], &[], ViewType::ActiveOnly, &[], usize::MAX, 1)
        .await
        .unwrap();
    assert!(past.is_empty());
    t.set_run_lifecycle(&ids[0], Lifecycle::Deleted)
        .await
        .unwrap();
    let deleted = t
        .search_runs(&[exp], &[], ViewType::DeletedOnly, &[], 0, 10)
        .await
        .unwrap();
    assert_eq!(deleted.len(), 1);
}

async fn artifacts_are_blobs_listed_as_a_tree() {
    let (_dir, r) = registry().await;
    let t = r.tracking();
    t.put_artifact("1/run/artifacts/model/MLmodel", chunks(b"flavors: {}\n"))
        .await
        .unwrap();
    t.put_artifact("1/run/artifacts/model/data/w.bin", chunks(b"weights"))
        .await
        .unwrap();
    t.put_artifact("1/run/artifacts/notes.txt", chunks(b"hi"))
        .await
        .unwrap();
    let top: Vec<(String, bool)> = t
        .list_artifacts("1/run/artifacts")
        .await
        .unwrap()
        .into_iter()
        .map(|e| (e.name, e.is_dir))
        .collect();
    assert_eq!(
        top,
        [
            ("model".to_string(), true),
            ("notes.txt".to_string(), false)
        ]
    );
    let files = t.artifact_files("1/run/artifacts/model").await.unwrap();
    let paths: Vec<&str> = files.iter().map(|(p, _, _)| p.as_str()).collect();
    assert_eq!(paths, ["MLmodel", "data/w.bin"]);
    assert!(matches!(
        t.put_artifact("1/../../etc", chunks(b"x")).await,
        Err(Error::InvalidArgument(_))
    ));
    t.delete_artifacts("1/run/artifacts/model").await.unwrap();
    assert!(
        t.artifact_files("1/run/artifacts/model")
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        t.artifact_blob("1/run/artifacts/notes.txt")
            .await
            .unwrap()
            .is_some()
    );
}

async fn multipart_upload_concatenates_parts_in_order() {
    let (_dir, r) = registry().await;
    let t = r.tracking();
    let id = t.create_upload("1/run/artifacts/big.bin").await.unwrap();
    let second = t.put_upload_part(&id, 2, chunks(b"world")).await.unwrap();
    let first = t.put_upload_part(&id, 1, chunks(b"hello ")).await.unwrap();
    assert!(
        t.complete_upload(&id, &[(1, "bogus".into()), (2, second.to_hex())])
            .await
            .is_err(),
        "a wrong ETag is refused"
    );
    t.complete_upload(&id, &[(2, second.to_hex()), (1, first.to_hex())])
        .await
        .unwrap();
    let (digest, size) = t
        .artifact_blob("1/run/artifacts/big.bin")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(size, 11);
    assert_eq!(digest, cairn_core::Sha256Digest::of(b"hello world"));
    assert!(matches!(
        t.complete_upload(&id, &[]).await,
        Err(Error::NotFound(_))
    ));
}

/// Both plans of a run search (`tracking::run_search`) — the newest-first walk, chosen
/// when the filter matches at least ten times the rows a page needs, and matches-first
/// below that — answer exactly the runs a plain reading of the filter and order gives,
/// page after page, ties on start time broken by id, deleted runs left out.
async fn run_search_plans_answer_the_same_pages() {
    let (_dir, r) = registry().await;
    let t = r.tracking();
    let exp = t
        .create_experiment("plans", None, &BTreeMap::new())
        .await
        .unwrap();
    // (id, start time, acc, deleted)
    let mut runs: Vec<(String, i64, f64, bool)> = Vec::new();
    for i in 0..240i64 {
        // Two runs per start time: the order within a pair is by id.
        let start = 1_000 + i / 2;
        let acc = (i % 8) as f64 / 8.0;
        let run = t
            .create_run(exp, "u", start, None, &BTreeMap::new())
            .await
            .unwrap()
            .info
            .id;
        let param = [(
            "p".to_string(),
            if i % 8 == 7 { "x" } else { "y" }.to_string(),
        )];
        t.log_batch(&run, &[metric("acc", acc, 0)], &param, &[])
            .await
            .unwrap();
        let deleted = i % 16 == 6;
        if deleted {
            t.set_run_lifecycle(&run, Lifecycle::Deleted).await.unwrap();
        }
        runs.push((run, start, acc, deleted));
    }
    // The newest runs logged NaN: stored as 0 with `is_nan` set, they match no
    // comparison, whichever plan reads them.
    for i in 0..12i64 {
        let run = t
            .create_run(exp, "u", 2_000 + i, None, &BTreeMap::new())
            .await
            .unwrap()
            .info
            .id;
        t.log_batch(&run, &[metric("acc", f64::NAN, 0)], &[], &[])
            .await
            .unwrap();
        runs.push((run, 2_000 + i, f64::NAN, false));
    }
    let expected = |keep: &dyn Fn(f64) -> bool| {
        let mut ids: Vec<(i64, String)> = runs
            .iter()
            .filter(|(_, _, acc, deleted)| keep(*acc) && !deleted)
            .map(|(id, start, _, _)| (-start, id.clone()))
            .collect();
        ids.sort();
        ids.into_iter().map(|(_, id)| id).collect::<Vec<_>>()
    };
    let pages = |filter: &str, order: &[&str]| {
        let filter = parse_filter(filter).unwrap();
        let order: Vec<_> = order.iter().map(|o| parse_order_by(o).unwrap()).collect();
        async move {
            let mut all = Vec::new();
            for page in 0.. {
                let got = t
                    .search_runs(&[exp], &filter, ViewType::ActiveOnly, &order, page * 5, 5)
                    .await
                    .unwrap();
                let more = got.len() > 5;
                all.extend(got.into_iter().take(5).map(|r| {
                    assert_eq!(r.metrics.len(), 1, "each run comes with its metrics");
                    r.info.id
                }));
                if !more {
                    break;
                }
            }
            all
        }
    };
    // 90 runs match (75 active): at least 60 (ten times a page of 5 and one), a walk.
    let many = expected(&|acc| acc > 0.5);
    assert_eq!(pages("metrics.acc > 0.5", &[]).await, many);
    assert_eq!(
        pages("metrics.acc > 0.5", &["attributes.start_time DESC"]).await,
        many
    );
    // 30 runs match: matches first.
    let few = expected(&|acc| acc > 0.8);
    assert_eq!(few.len(), 30);
    assert_eq!(pages("metrics.acc > 0.8", &[]).await, few);
    assert_eq!(pages("params.p = 'x'", &[]).await, few);
    // Below a value NaN is stored as: a walk (60 of 0 and 0.125), matches first (30 of 0).
    let low = expected(&|acc| acc < 0.2);
    assert_eq!(low.len(), 60);
    assert_eq!(pages("metrics.acc < 0.2", &[]).await, low);
    assert_eq!(
        pages("metrics.acc < 0.1", &[]).await,
        expected(&|acc| acc < 0.1)
    );
    assert_eq!(
        pages("metrics.acc <= 0", &[]).await,
        expected(&|acc| acc <= 0.0)
    );
    // Another order is served by matching first whatever the count.
    let by_acc = pages("metrics.acc > 0.5", &["metrics.acc DESC"]).await;
    assert_eq!(by_acc.len(), many.len());
    let acc_of = |id: &String| runs.iter().find(|r| &r.0 == id).unwrap().2;
    assert!(by_acc.windows(2).all(|w| acc_of(&w[0]) >= acc_of(&w[1])));
}

/// A run's details read back exactly, on both read paths (a run, a page of runs) and
/// both engines (on PostgreSQL they travel as JSON): metric values at the edges of
/// floating point, text that JSON escapes, datasets with their tags, model inputs.
async fn run_details_read_back_exactly() {
    let (_dir, r) = registry().await;
    let t = r.tracking();
    let exp = t
        .create_experiment("exact", None, &BTreeMap::new())
        .await
        .unwrap();
    let run = t
        .create_run(exp, "u", 5, Some("exact"), &BTreeMap::new())
        .await
        .unwrap()
        .info
        .id;
    let values = [
        ("inf", f64::INFINITY),
        ("minus_inf", f64::NEG_INFINITY),
        ("nan", f64::NAN),
        ("tenth", 0.1 + 0.2),
        ("tiny", 5e-324),
        ("huge", -1.797_693_134_862_315_7e308),
    ];
    let metrics: Vec<MetricValue> = values.iter().map(|(k, v)| metric(k, *v, 1)).collect();
    let text = "quote \" backslash \\ newline \n tab \t é ✓ \u{1}";
    t.log_batch(
        &run,
        &metrics,
        &[("text".into(), text.into())],
        &[("text".into(), text.into())],
    )
    .await
    .unwrap();
    let dataset = DatasetInput {
        name: "train \"set\"".into(),
        digest: "abc123".into(),
        source_type: "local".into(),
        source: "{\"uri\": \"/data\"}".into(),
        schema: None,
        profile: Some("{\"rows\": 3}".into()),
        tags: [(
            DatasetInput::CONTEXT_TAG.to_string(),
            "training".to_string(),
        )]
        .into(),
    };
    t.log_inputs(&run, std::slice::from_ref(&dataset), &["m-1".to_string()])
        .await
        .unwrap();
    let filter = parse_filter("params.text LIKE 'quote%'").unwrap();
    let found = t
        .search_runs(&[exp], &filter, ViewType::ActiveOnly, &[], 0, 10)
        .await
        .unwrap();
    assert_eq!(found.len(), 1);
    for got in [
        t.get_run(&run).await.unwrap(),
        found.into_iter().next().unwrap(),
    ] {
        assert_eq!(got.metrics.len(), values.len());
        for (key, value) in values {
            let m = got.metrics.iter().find(|m| m.key == key).unwrap();
            if value.is_nan() {
                assert!(m.value.is_nan(), "{key}");
            } else {
                assert_eq!(m.value.to_bits(), value.to_bits(), "{key}");
            }
            assert_eq!((m.step, m.timestamp), (1, 1_001));
        }
        assert_eq!(got.params["text"], text);
        assert_eq!(got.tags["text"], text);
        assert_eq!(got.inputs, std::slice::from_ref(&dataset));
        assert_eq!(got.model_inputs, ["m-1"]);
        assert!(got.outputs.is_empty());
    }
}

/// A page of several runs: each run gets its own details and no other's, metrics in
/// key order whatever order they were logged in, on both engines (SQLite reads the
/// details of the whole page in one statement per kind and hands out the rows).
async fn a_page_hands_each_run_its_own_details() {
    let (_dir, r) = registry().await;
    let t = r.tracking();
    let exp = t
        .create_experiment("page", None, &BTreeMap::new())
        .await
        .unwrap();
    let mut logged = Vec::new();
    for i in 0..5_i64 {
        let run = t
            .create_run(exp, "u", 10 + i, None, &BTreeMap::new())
            .await
            .unwrap()
            .info
            .id;
        // Keys logged out of order, a different set per run; runs 0 and 4 have none.
        let keys: Vec<String> = ["zeta", "alpha", "mid"]
            .iter()
            .take((i % 4) as usize)
            .map(|k| format!("{k}{i}"))
            .collect();
        let metrics: Vec<MetricValue> = keys.iter().map(|k| metric(k, i as f64, i)).collect();
        let params = [(format!("p{i}"), format!("v{i}"))];
        t.log_batch(&run, &metrics, &params, &[]).await.unwrap();
        if i % 2 == 0 {
            t.log_inputs(&run, &[], &[format!("model-{i}")])
                .await
                .unwrap();
        }
        logged.push((run, keys));
    }
    let page = t
        .search_runs(&[exp], &[], ViewType::ActiveOnly, &[], 0, 10)
        .await
        .unwrap();
    assert_eq!(page.len(), 5);
    for got in &page {
        let i = logged
            .iter()
            .position(|(id, _)| *id == got.info.id)
            .unwrap();
        let mut keys = logged[i].1.clone();
        keys.sort();
        let got_keys: Vec<&str> = got.metrics.iter().map(|m| m.key.as_str()).collect();
        assert_eq!(got_keys, keys, "run {i}");
        assert!(
            got.metrics
                .iter()
                .all(|m| m.value == i as f64 && m.step == i as i64)
        );
        assert_eq!(
            got.params,
            BTreeMap::from([(format!("p{i}"), format!("v{i}"))])
        );
        let models: Vec<String> = if i % 2 == 0 {
            vec![format!("model-{i}")]
        } else {
            Vec::new()
        };
        assert_eq!(got.model_inputs, models, "run {i}");
    }
}

conformance!(
    default_experiment_exists_and_names_are_unique,
    latest_metric_is_the_largest_step_and_history_keeps_everything,
    a_metric_value_logged_twice_is_kept_once,
    upgrading_keeps_one_of_each_logged_metric_value,
    params_are_write_once_and_deleted_runs_refuse_writes,
    concurrent_metric_writes_each_get_their_own_answer,
    run_search_filters_and_orders_in_sql,
    run_search_plans_answer_the_same_pages,
    run_details_read_back_exactly,
    a_page_hands_each_run_its_own_details,
    artifacts_are_blobs_listed_as_a_tree,
    multipart_upload_concatenates_parts_in_order,
);
