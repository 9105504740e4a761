//! Service-level tests on a real SQLite database and a real local blob store.

use cairn_core::access::Actor;
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use cairn_core::api::{CreateModel, NewVersion};
use cairn_core::model::{AliasAction, BlobProblem};
use cairn_core::{AliasName, FileEntry, Manifest, ModelName, Sha256Digest, VersionRef};
use futures::TryStreamExt;

use crate::test_support::{conformance, registry};
use crate::{AliasTarget, FileList};
use crate::{Error, Registry, VersionOrigin};

static ACTOR: std::sync::LazyLock<Actor> =
    std::sync::LazyLock::new(|| Actor::unrestricted("tester"));

fn name(s: &str) -> ModelName {
    ModelName::new(s).unwrap()
}

fn alias(s: &str) -> AliasName {
    AliasName::new(s).unwrap()
}

/// Stores `files` as blobs and returns the version request for them.
pub(crate) async fn stage(registry: &Registry, files: &[(&str, &[u8])]) -> NewVersion {
    let mut entries = Vec::new();
    for (path, content) in files {
        let digest = Sha256Digest::of(content);
        registry
            .put_blob_bytes(&digest, Bytes::copy_from_slice(content))
            .await
            .unwrap();
        entries.push(FileEntry {
            path: (*path).into(),
            size: content.len() as u64,
            sha256: digest,
        });
    }
    NewVersion {
        files: Manifest::new(entries).unwrap(),
        description: String::new(),
        tags: Default::default(),
        metrics: Default::default(),
        params: Default::default(),
        lineage: Default::default(),
    }
}

fn blob_files(dir: &std::path::Path) -> BTreeSet<String> {
    walk(&dir.join("blobs/sha256"))
}

fn walk(dir: &std::path::Path) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        if e.file_type().unwrap().is_dir() {
            out.extend(walk(&e.path()));
        } else {
            out.insert(e.file_name().to_string_lossy().into_owned());
        }
    }
    out
}

async fn versions_are_numbered_from_one_and_never_reused() {
    let (_dir, r) = registry().await;
    let m = name("demo");
    for expected in 1..=3 {
        let new = stage(&r, &[("w.bin", format!("v{expected}").as_bytes())]).await;
        assert_eq!(
            r.register_version(&ACTOR, &m, &new, &VersionOrigin::default())
                .await
                .unwrap()
                .version,
            expected
        );
    }
    r.delete_version(&ACTOR, &m, 3).await.unwrap();
    let new = stage(&r, &[("w.bin", b"v4")]).await;
    assert_eq!(
        r.register_version(&ACTOR, &m, &new, &VersionOrigin::default())
            .await
            .unwrap()
            .version,
        4
    );
    let numbers: Vec<u64> = r
        .list_versions(&m)
        .await
        .unwrap()
        .iter()
        .map(|v| v.version)
        .collect();
    assert_eq!(numbers, [1, 2, 4]);
    assert_eq!(
        r.get_version(&m, &VersionRef::Latest, FileList::Included)
            .await
            .unwrap()
            .version,
        4
    );
    assert!(matches!(
        r.get_version(&m, &VersionRef::Number(3), FileList::Included)
            .await,
        Err(Error::VersionNotFound { .. })
    ));
}

async fn concurrent_registrations_get_distinct_gap_free_numbers() {
    let (_dir, r) = registry().await;
    let m = name("busy");
    let mut tasks = Vec::new();
    for i in 0..24 {
        let r = r.clone();
        let m = m.clone();
        tasks.push(tokio::spawn(async move {
            let new = stage(&r, &[("f", format!("content {i}").as_bytes())]).await;
            r.register_version(&ACTOR, &m, &new, &VersionOrigin::default())
                .await
                .unwrap()
                .version
        }));
    }
    let mut numbers = Vec::new();
    for t in tasks {
        numbers.push(t.await.unwrap());
    }
    numbers.sort_unstable();
    assert_eq!(numbers, (1..=24).collect::<Vec<u64>>());
}

async fn version_records_manifest_digest_and_metadata() {
    let (_dir, r) = registry().await;
    let mut new = stage(&r, &[("b.txt", b"two"), ("a/x.bin", b"one")]).await;
    new.metrics.insert("accuracy".into(), 0.93);
    new.params.insert("lr".into(), "0.01".into());
    new.tags.insert("team".into(), "vision".into());
    new.description = "first".into();
    let expected_digest = new.files.digest();
    let v = r
        .register_version(&ACTOR, &name("m"), &new, &VersionOrigin::default())
        .await
        .unwrap();
    assert_eq!(v.digest, Some(expected_digest));
    let shown = r
        .get_version(&name("m"), &VersionRef::Number(1), FileList::Included)
        .await
        .unwrap();
    let files = shown.files.unwrap();
    assert_eq!(files.len(), 2);
    assert_eq!(files[0].path, "a/x.bin");
    assert_eq!(files[0].sha256, Sha256Digest::of(b"one"));
    assert_eq!(shown.metrics["accuracy"], 0.93);
    assert_eq!(shown.params["lr"], "0.01");
    assert_eq!(shown.tags["team"], "vision");
    assert_eq!(shown.description, "first");
    assert_eq!(shown.created_by, ACTOR.name);
    assert_eq!((shown.file_count, shown.size), (2, 6));
}

async fn identical_files_are_stored_once() {
    let (dir, r) = registry().await;
    let v1 = stage(&r, &[("a", b"same"), ("b", b"one"), ("c", b"two")]).await;
    r.register_version(&ACTOR, &name("m1"), &v1, &VersionOrigin::default())
        .await
        .unwrap();
    let v2 = stage(&r, &[("a", b"same"), ("b", b"one"), ("c", b"changed")]).await;
    r.register_version(&ACTOR, &name("m1"), &v2, &VersionOrigin::default())
        .await
        .unwrap();
    let other = stage(&r, &[("copy", b"same")]).await;
    r.register_version(&ACTOR, &name("m2"), &other, &VersionOrigin::default())
        .await
        .unwrap();
    assert_eq!(blob_files(dir.path()).len(), 4);
}

/// A registration checks and syncs only blobs no committed version or artifact
/// references yet (the others were made durable when first referenced); once the last
/// reference is gone and a collection took the bytes, the blob is refused again.
async fn only_unreferenced_blobs_are_checked_at_registration() {
    let (_dir, r) = registry().await;
    let m = name("m");
    let new = stage(&r, &[("a", b"first"), ("b", b"second")]).await;
    let staged: Vec<Sha256Digest> = new.files.files().iter().map(|f| f.sha256).collect();
    let never = Sha256Digest::of(b"never uploaded");
    let asked = [staged[0], staged[1], never];
    let recorded = r.meta.recorded_sizes(&asked).await.unwrap();
    assert!(recorded.is_empty(), "staged blobs are not referenced yet");

    r.register_version(&ACTOR, &m, &new, &VersionOrigin::default())
        .await
        .unwrap();
    let recorded = r.meta.recorded_sizes(&asked).await.unwrap();
    assert_eq!(recorded.len(), 2);
    assert_eq!(
        recorded[&staged[0]],
        [5],
        "\"first\" is 5 bytes, recorded once"
    );
    assert!(!recorded.contains_key(&never));
    r.register_version(&ACTOR, &m, &new, &VersionOrigin::default())
        .await
        .unwrap();

    for number in [1, 2] {
        r.delete_version(&ACTOR, &m, number).await.unwrap();
    }
    r.collect_garbage(&ACTOR, std::time::Duration::ZERO, false)
        .await
        .unwrap();
    match r
        .register_version(&ACTOR, &m, &new, &VersionOrigin::default())
        .await
    {
        Err(Error::MissingBlobs(mut missing)) => {
            missing.sort();
            let mut expected = staged.clone();
            expected.sort();
            assert_eq!(missing, expected);
        }
        other => panic!("expected MissingBlobs, got {other:?}"),
    }
}

async fn registration_refuses_unstored_blobs_and_bad_metadata() {
    let (_dir, r) = registry().await;
    let mut new = stage(&r, &[("a", b"stored")]).await;
    let ghost = Sha256Digest::of(b"never uploaded");
    let mut files = new.files.files().to_vec();
    files.push(FileEntry {
        path: "ghost".into(),
        size: 14,
        sha256: ghost,
    });
    new.files = Manifest::new(files).unwrap();
    match r
        .register_version(&ACTOR, &name("m"), &new, &VersionOrigin::default())
        .await
    {
        Err(Error::MissingBlobs(missing)) => assert_eq!(missing, [ghost]),
        other => panic!("expected MissingBlobs, got {other:?}"),
    }

    let mut bad_metric = stage(&r, &[("a", b"stored")]).await;
    bad_metric.metrics.insert("loss".into(), f64::NAN);
    assert!(matches!(
        r.register_version(&ACTOR, &name("m"), &bad_metric, &VersionOrigin::default())
            .await,
        Err(Error::Invalid(_))
    ));
    let mut bad_key = stage(&r, &[("a", b"stored")]).await;
    bad_key.tags.insert("no=pe".into(), "x".into());
    assert!(
        r.register_version(&ACTOR, &name("m"), &bad_key, &VersionOrigin::default())
            .await
            .is_err()
    );
    // Nothing was registered by the refused requests.
    assert!(matches!(
        r.get_model(&name("m")).await,
        Err(Error::ModelNotFound(_))
    ));
}

async fn alias_moves_are_recorded_and_rollback_returns_to_the_previous_version() {
    let (_dir, r) = registry().await;
    let m = name("demo");
    let prod = alias("production");
    for i in 1..=2 {
        let new = stage(&r, &[("w", format!("{i}").as_bytes())]).await;
        r.register_version(&ACTOR, &m, &new, &VersionOrigin::default())
            .await
            .unwrap();
    }
    assert!(matches!(
        r.move_alias(&ACTOR, &m, &prod, AliasTarget::PreviousVersion, None)
            .await,
        Err(Error::AliasNotFound { .. })
    ));
    r.move_alias(
        &Actor::unrestricted("alice"),
        &m,
        &prod,
        AliasTarget::Version(1),
        None,
    )
    .await
    .unwrap()
    .unwrap();
    assert!(matches!(
        r.move_alias(&ACTOR, &m, &prod, AliasTarget::PreviousVersion, None)
            .await,
        Err(Error::Conflict(_))
    ));
    r.move_alias(
        &Actor::unrestricted("bob"),
        &m,
        &prod,
        AliasTarget::Version(2),
        Some("better"),
    )
    .await
    .unwrap()
    .unwrap();
    // Moving to where it already points records nothing.
    assert!(
        r.move_alias(
            &Actor::unrestricted("bob"),
            &m,
            &prod,
            AliasTarget::Version(2),
            None
        )
        .await
        .unwrap()
        .is_none()
    );
    let back = r
        .move_alias(
            &Actor::unrestricted("carol"),
            &m,
            &prod,
            AliasTarget::PreviousVersion,
            Some("regression"),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!((back.from, back.to), (Some(2), Some(1)));
    assert_eq!(
        r.get_version(&m, &VersionRef::Alias(prod.clone()), FileList::Included)
            .await
            .unwrap()
            .version,
        1
    );

    let history = r.alias_history(&m, &prod).await.unwrap();
    let moves: Vec<_> = history
        .iter()
        .map(|h| {
            (
                h.from,
                h.to,
                h.action,
                h.actor.as_str(),
                h.reason.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        moves,
        [
            (None, Some(1), AliasAction::Set, "alice", None),
            (Some(1), Some(2), AliasAction::Set, "bob", Some("better")),
            (
                Some(2),
                Some(1),
                AliasAction::Rollback,
                "carol",
                Some("regression")
            ),
        ]
    );
    assert!(matches!(
        r.move_alias(&ACTOR, &m, &prod, AliasTarget::Version(9), None)
            .await,
        Err(Error::VersionNotFound { .. })
    ));
}

async fn deleting_a_version_removes_its_aliases_and_records_why() {
    let (_dir, r) = registry().await;
    let m = name("demo");
    for i in 1..=2 {
        let new = stage(&r, &[("w", format!("{i}").as_bytes())]).await;
        r.register_version(&ACTOR, &m, &new, &VersionOrigin::default())
            .await
            .unwrap();
    }
    r.move_alias(
        &ACTOR,
        &m,
        &alias("champion"),
        AliasTarget::Version(2),
        None,
    )
    .await
    .unwrap();
    r.delete_version(&ACTOR, &m, 2).await.unwrap();
    assert!(r.get_model(&m).await.unwrap().aliases.is_empty());
    let last = r
        .alias_history(&m, &alias("champion"))
        .await
        .unwrap()
        .pop()
        .unwrap();
    assert_eq!(
        (last.from, last.to, last.action),
        (Some(2), None, AliasAction::VersionDeleted)
    );
    // Rolling back would point at the deleted version: refused, nothing moves.
    assert!(matches!(
        r.move_alias(
            &ACTOR,
            &m,
            &alias("champion"),
            AliasTarget::PreviousVersion,
            None
        )
        .await,
        Err(Error::Conflict(_))
    ));
}

async fn model_lifecycle() {
    let (_dir, r) = registry().await;
    let req = CreateModel {
        name: "fraud".into(),
        description: "card fraud".into(),
        tags: [("owner".to_string(), "risk".to_string())].into(),
    };
    let m = r.create_model(&ACTOR, &req).await.unwrap();
    assert_eq!((m.version_count, m.latest_version), (0, None));
    assert!(matches!(
        r.create_model(&ACTOR, &req).await,
        Err(Error::ModelExists(_))
    ));
    let bad = CreateModel {
        name: "../etc".into(),
        ..Default::default()
    };
    assert!(matches!(
        r.create_model(&ACTOR, &bad).await,
        Err(Error::Invalid(_))
    ));
    let new = stage(&r, &[("w", b"x")]).await;
    r.register_version(&ACTOR, &name("fraud"), &new, &VersionOrigin::default())
        .await
        .unwrap();
    let shown = r.get_model(&name("fraud")).await.unwrap();
    assert_eq!((shown.version_count, shown.latest_version), (1, Some(1)));
    assert_eq!(shown.tags["owner"], "risk");
    r.delete_model(&ACTOR, &name("fraud")).await.unwrap();
    assert!(r.list_models().await.unwrap().is_empty());
    assert!(matches!(
        r.delete_model(&ACTOR, &name("fraud")).await,
        Err(Error::ModelNotFound(_))
    ));
}

async fn a_blob_whose_bytes_do_not_match_is_not_stored() {
    let (dir, r) = registry().await;
    let claimed = Sha256Digest::of(b"the real thing");
    assert!(matches!(
        r.put_blob_bytes(&claimed, Bytes::from_static(b"an impostor"))
            .await,
        Err(Error::DigestMismatch { .. })
    ));
    // Large enough for the streaming (multipart) path.
    let big = vec![7u8; 20 * 1024 * 1024];
    let chunks: Vec<Result<Bytes, std::io::Error>> = big
        .chunks(1 << 20)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    assert!(matches!(
        r.put_blob_stream(&claimed, futures::stream::iter(chunks))
            .await,
        Err(Error::DigestMismatch { .. })
    ));
    assert!(r.missing_blobs(&[claimed]).await.unwrap() == [claimed]);
    assert!(blob_files(dir.path()).is_empty());
    assert!(
        walk(&dir.path().join("blobs/tmp")).is_empty(),
        "staging left behind"
    );
}

async fn an_interrupted_stream_leaves_nothing() {
    let (dir, r) = registry().await;
    let mut chunks: Vec<Result<Bytes, std::io::Error>> = (0..12)
        .map(|_| Ok(Bytes::from(vec![1u8; 1 << 20])))
        .collect();
    chunks.push(Err(std::io::Error::other("connection reset")));
    let digest = Sha256Digest::of(b"whatever");
    assert!(matches!(
        r.put_blob_stream(&digest, futures::stream::iter(chunks))
            .await,
        Err(Error::UploadInterrupted(_))
    ));
    assert!(blob_files(dir.path()).is_empty());
    assert!(
        walk(&dir.path().join("blobs/tmp")).is_empty(),
        "staging left behind"
    );
}

async fn a_large_streamed_blob_round_trips() {
    let (_dir, r) = registry().await;
    // Not a whole number of read chunks: the last one is short.
    let big: Vec<u8> = (0..25 * 1024 * 1024 + 12_345u32)
        .map(|i| (i % 251) as u8)
        .collect();
    let digest = Sha256Digest::of(&big);
    let chunks: Vec<Result<Bytes, std::io::Error>> = big
        .chunks(300_000)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    let size = r
        .put_blob_stream(&digest, futures::stream::iter(chunks))
        .await
        .unwrap();
    assert_eq!(size, big.len() as u64);
    assert_eq!(
        r.blobs().rehash(&digest).await.unwrap(),
        Some((digest, size))
    );
    let read = r.read_blob(&digest).await.unwrap();
    assert_eq!(read.size, size);
    let back: Vec<Bytes> = read.stream.try_collect().await.unwrap();
    assert_eq!(back.concat(), big);

    // And the empty blob: no chunk at all.
    let empty = Sha256Digest::of(b"");
    r.put_blob_bytes(&empty, Bytes::new()).await.unwrap();
    let read = r.read_blob(&empty).await.unwrap();
    let back: Vec<Bytes> = read.stream.try_collect().await.unwrap();
    assert_eq!((read.size, back.concat()), (0, Vec::new()));
}

async fn verify_names_corrupt_and_missing_blobs_and_the_versions_they_break() {
    let (dir, r) = registry().await;
    let m = name("demo");
    let v1 = stage(&r, &[("shared.bin", b"shared"), ("own.bin", b"own")]).await;
    r.register_version(&ACTOR, &m, &v1, &VersionOrigin::default())
        .await
        .unwrap();
    let v2 = stage(&r, &[("shared.bin", b"shared"), ("other.bin", b"other")]).await;
    r.register_version(&ACTOR, &m, &v2, &VersionOrigin::default())
        .await
        .unwrap();
    assert!(r.verify_all().await.unwrap().ok());

    let shared = r.blobs().local_path(&Sha256Digest::of(b"shared")).unwrap();
    let mut bytes = std::fs::read(&shared).unwrap();
    bytes[0] ^= 0xff;
    std::fs::write(&shared, bytes).unwrap();
    std::fs::remove_file(r.blobs().local_path(&Sha256Digest::of(b"other")).unwrap()).unwrap();

    let report = r.verify_version(&m, &VersionRef::Number(1)).await.unwrap();
    assert_eq!(report.problems.len(), 1);
    let p = &report.problems[0];
    assert_eq!(p.problem, BlobProblem::Corrupt);
    let broken: Vec<(u64, &str)> = p
        .files
        .iter()
        .map(|f| (f.version, f.path.as_str()))
        .collect();
    assert_eq!(broken, [(1, "shared.bin"), (2, "shared.bin")]);

    let all = r.verify_all().await.unwrap();
    let kinds: BTreeSet<_> = all
        .problems
        .iter()
        .map(|p| format!("{:?}", p.problem))
        .collect();
    assert_eq!(kinds, ["Corrupt".to_string(), "Missing".to_string()].into());
    assert_eq!((all.versions, all.blobs), (2, 3));
    drop(dir);
}

async fn batched_writes_verify_each_blob_and_leave_no_staging_files() {
    let (dir, r) = registry().await;
    let good = Bytes::from_static(b"good bytes");
    let good_digest = Sha256Digest::of(&good);
    let forged_digest = Sha256Digest::of(b"what was promised");
    let result = r
        .put_blob_batch(vec![
            (good_digest, good.clone()),
            (forged_digest, Bytes::from_static(b"something else")),
        ])
        .await;
    assert!(matches!(result, Err(Error::DigestMismatch { .. })));
    assert_eq!(
        r.missing_blobs(&[good_digest, forged_digest])
            .await
            .unwrap(),
        [forged_digest]
    );
    // Writing an existing blob again is success, and stores nothing twice.
    r.put_blob_batch(vec![(good_digest, good)]).await.unwrap();
    let names = blob_files(dir.path());
    assert_eq!(names, [good_digest.to_hex()].into());
}

/// Two registries on one database — two servers — writing to one model at once:
/// version numbers stay 1..N with no gaps or repeats, and the alias history stays a
/// chain (each move starts where the previous one ended).
async fn two_registries_on_one_database_stay_consistent() {
    let (fixture, r1) = registry().await;
    let r2 = fixture.open_again().await;
    let m = name("shared");
    let mut tasks = Vec::new();
    for i in 0..40 {
        let r = if i % 2 == 0 { r1.clone() } else { r2.clone() };
        let m = m.clone();
        tasks.push(tokio::spawn(async move {
            let new = stage(&r, &[("f", format!("content {i}").as_bytes())]).await;
            r.register_version(&ACTOR, &m, &new, &VersionOrigin::default())
                .await
                .unwrap()
                .version
        }));
    }
    let mut numbers = Vec::new();
    for t in tasks {
        numbers.push(t.await.unwrap());
    }
    numbers.sort_unstable();
    assert_eq!(numbers, (1..=40).collect::<Vec<u64>>());

    let prod = alias("production");
    let mut tasks = Vec::new();
    for i in 0..30_u64 {
        let r = if i % 2 == 0 { r1.clone() } else { r2.clone() };
        let (m, prod) = (m.clone(), prod.clone());
        tasks.push(tokio::spawn(async move {
            let moved = if i % 3 == 2 {
                r.move_alias(&ACTOR, &m, &prod, AliasTarget::PreviousVersion, None)
                    .await
            } else {
                r.move_alias(&ACTOR, &m, &prod, AliasTarget::Version(i % 40 + 1), None)
                    .await
            };
            match moved {
                // A rollback before any move, or to before the first one.
                Ok(_) | Err(Error::AliasNotFound { .. } | Error::Conflict(_)) => {}
                Err(e) => panic!("alias move failed: {e}"),
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let history = r2.alias_history(&m, &prod).await.unwrap();
    assert!(history.len() >= 10, "{} moves recorded", history.len());
    assert_eq!(history[0].from, None);
    for pair in history.windows(2) {
        assert_eq!(
            pair[1].from, pair[0].to,
            "history is not a chain: {history:?}"
        );
    }
    let now = r1
        .get_version(&m, &VersionRef::Alias(prod), FileList::Included)
        .await
        .unwrap();
    assert_eq!(Some(now.version), history.last().unwrap().to);
    // One audit chain for both writers, numbered without gaps.
    let report = r1.verify_audit(None).await.unwrap();
    assert!(report.ok(), "{report:?}");
    assert_eq!(report.entries, 40 + history.len() as u64);
}

/// `copy_into` from the embedded default to the backend under test and back: every
/// version, alias, move, run and artifact arrives; a second copy writes nothing; the
/// target keeps numbering where the source stopped.
async fn copy_moves_a_whole_registry_and_a_second_copy_writes_nothing() {
    let source_dir = tempfile::tempdir().unwrap();
    let source = Registry::open_local(source_dir.path()).await.unwrap();
    let (_fixture, target) = registry().await;

    let m = name("fraud");
    for i in 0..5 {
        let mut new = stage(
            &source,
            &[
                ("model.bin", format!("w{i}").as_bytes()),
                ("README", b"same"),
            ],
        )
        .await;
        new.tags.insert("i".into(), i.to_string());
        new.metrics.insert("auc".into(), 0.9 + f64::from(i) / 100.0);
        source
            .register_version(&ACTOR, &m, &new, &VersionOrigin::default())
            .await
            .unwrap();
    }
    let prod = alias("production");
    source
        .move_alias(
            &Actor::unrestricted("alice"),
            &m,
            &prod,
            AliasTarget::Version(2),
            Some("first"),
        )
        .await
        .unwrap();
    source
        .move_alias(
            &Actor::unrestricted("bob"),
            &m,
            &prod,
            AliasTarget::Version(4),
            None,
        )
        .await
        .unwrap();
    source
        .move_alias(
            &Actor::unrestricted("carol"),
            &m,
            &prod,
            AliasTarget::PreviousVersion,
            Some("regression"),
        )
        .await
        .unwrap();
    source.delete_version(&ACTOR, &m, 5).await.unwrap();
    let t = source.tracking();
    let exp = t
        .create_experiment("copy-exp", None, &Default::default())
        .await
        .unwrap();
    let run = t
        .create_run(exp, "alice", 1_000, Some("r"), &Default::default())
        .await
        .unwrap();
    let run_id = run.info.id.clone();
    let metrics: Vec<_> = (0..3)
        .map(|step| crate::tracking::MetricValue {
            key: "loss".into(),
            value: 1.0 / f64::from(step + 1),
            timestamp: 10 + i64::from(step),
            step: i64::from(step),
        })
        .collect();
    t.log_batch(&run_id, &metrics, &[("lr".into(), "0.1".into())], &[])
        .await
        .unwrap();
    let artifact = format!("{exp}/{run_id}/artifacts/model/MLmodel");
    let chunks = futures::stream::iter([Ok::<_, std::io::Error>(bytes::Bytes::from_static(
        b"flavors: {}",
    ))]);
    t.put_artifact(&artifact, chunks).await.unwrap();

    let report = source.copy_into(&target).await.unwrap();
    assert_eq!(
        report.blobs, 6,
        "4 live weights (5 was deleted) + 1 shared README + 1 artifact"
    );
    assert!(
        report.rows["versions"] == 4 && report.rows["alias_moves"] == 3,
        "{report:?}"
    );

    // Everything arrived, and reads the same.
    assert_eq!(
        target.list_versions(&m).await.unwrap(),
        source.list_versions(&m).await.unwrap()
    );
    assert_eq!(
        target.alias_history(&m, &prod).await.unwrap(),
        source.alias_history(&m, &prod).await.unwrap()
    );
    for n in 1..=4 {
        let (a, b) = (VersionRef::Number(n), VersionRef::Number(n));
        assert_eq!(
            target
                .get_version(&m, &a, FileList::Included)
                .await
                .unwrap(),
            source
                .get_version(&m, &b, FileList::Included)
                .await
                .unwrap()
        );
    }
    assert!(target.verify_all().await.unwrap().ok());
    let tt = target.tracking();
    assert_eq!(
        tt.get_run(&run_id).await.unwrap(),
        t.get_run(&run_id).await.unwrap()
    );
    assert_eq!(
        tt.metric_history(&run_id, "loss").await.unwrap(),
        t.metric_history(&run_id, "loss").await.unwrap()
    );
    assert_eq!(
        tt.list_artifacts(&format!("{exp}/{run_id}/artifacts/model"))
            .await
            .unwrap(),
        t.list_artifacts(&format!("{exp}/{run_id}/artifacts/model"))
            .await
            .unwrap()
    );

    // The audit log came along, entry for entry.
    assert_eq!(
        target.audit_log(None, None).await.unwrap(),
        source.audit_log(None, None).await.unwrap()
    );
    assert!(target.verify_audit(None).await.unwrap().ok());

    // Idempotent.
    let again = source.copy_into(&target).await.unwrap();
    assert!(again.is_empty(), "second copy wrote {again:?}");

    // A change in the source travels; the target numbers on after the copied versions
    // (5 was deleted, and numbers are never reused).
    source
        .move_alias(
            &Actor::unrestricted("dave"),
            &m,
            &prod,
            AliasTarget::Version(3),
            None,
        )
        .await
        .unwrap();
    let update = source.copy_into(&target).await.unwrap();
    assert_eq!(update.rows.get("alias_moves"), Some(&1), "{update:?}");
    assert_eq!(
        target
            .get_version(&m, &VersionRef::Alias(prod.clone()), FileList::Included)
            .await
            .unwrap()
            .version,
        3
    );
    let new = stage(&target, &[("model.bin", b"fresh")]).await;
    assert_eq!(
        target
            .register_version(&ACTOR, &m, &new, &VersionOrigin::default())
            .await
            .unwrap()
            .version,
        6
    );
    let model = name("after-copy");
    let new = stage(&target, &[("model.bin", b"other")]).await;
    assert_eq!(
        target
            .register_version(&ACTOR, &model, &new, &VersionOrigin::default())
            .await
            .unwrap()
            .version,
        1
    );
    let next = target
        .tracking()
        .create_experiment("after-copy", None, &Default::default())
        .await
        .unwrap();
    assert!(next > exp, "experiment ids continue after the copied ones");

    // And back to a fresh embedded registry.
    let back_dir = tempfile::tempdir().unwrap();
    let back = Registry::open_local(back_dir.path()).await.unwrap();
    target.copy_into(&back).await.unwrap();
    assert_eq!(
        back.list_versions(&m).await.unwrap(),
        target.list_versions(&m).await.unwrap()
    );
    assert!(back.verify_all().await.unwrap().ok());
}

/// A target that grew its own history is refused, and left as it was.
async fn copy_refuses_a_diverged_target() {
    let source_dir = tempfile::tempdir().unwrap();
    let source = Registry::open_local(source_dir.path()).await.unwrap();
    let (_fixture, target) = registry().await;
    let other = name("other");
    let new = stage(&target, &[("x", b"target's own")]).await;
    target
        .register_version(&ACTOR, &other, &new, &VersionOrigin::default())
        .await
        .unwrap();
    let m = name("m");
    // The source's first model gets the id the target's model already has.
    let new = stage(&source, &[("x", b"source")]).await;
    source
        .register_version(&ACTOR, &m, &new, &VersionOrigin::default())
        .await
        .unwrap();
    assert!(matches!(
        source.copy_into(&target).await,
        Err(Error::Conflict(_))
    ));
    assert!(matches!(
        target.get_model(&m).await,
        Err(Error::ModelNotFound(_))
    ));
    assert_eq!(target.list_versions(&other).await.unwrap().len(), 1);
}

/// Registered-model search runs in SQL: name and tag comparisons, order, pages.
async fn model_search_filters_orders_and_pages_in_sql() {
    use cairn_core::search::{parse_filter, parse_order_by};

    let (_fixture, r) = registry().await;
    for (n, team) in [
        ("Fraud-A", "risk"),
        ("fraud-b", "risk"),
        ("churn", "growth"),
        ("fraud_c", ""),
    ] {
        let mut tags = std::collections::BTreeMap::new();
        if !team.is_empty() {
            tags.insert("team".to_owned(), team.to_owned());
        }
        r.create_model(
            &ACTOR,
            &CreateModel {
                name: n.into(),
                description: String::new(),
                tags,
            },
        )
        .await
        .unwrap();
    }
    let search = |filter: &str, order: &[&str], offset, limit| {
        let filter = parse_filter(filter).unwrap();
        let order: Vec<_> = order.iter().map(|o| parse_order_by(o).unwrap()).collect();
        let r = r.clone();
        async move {
            r.search_models(&filter, &order, offset, limit)
                .await
                .unwrap()
                .into_iter()
                .map(|m| m.name)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        search("name LIKE 'fraud%'", &[], 0, 10).await,
        ["fraud-b", "fraud_c"]
    );
    assert_eq!(
        search("name ILIKE 'fraud%'", &[], 0, 10).await,
        ["Fraud-A", "fraud-b", "fraud_c"]
    );
    assert_eq!(
        search("tags.team = 'risk'", &["name DESC"], 0, 10).await,
        ["fraud-b", "Fraud-A"]
    );
    assert_eq!(search("tags.team IS NULL", &[], 0, 10).await, ["fraud_c"]);
    assert_eq!(
        search("tags.`mlflow.prompt.is_prompt` != 'true'", &[], 0, 10)
            .await
            .len(),
        4,
        "models without the tag are not prompts"
    );
    // Names sort by code point on both engines: upper case first.
    assert_eq!(search("", &[], 1, 2).await, ["churn", "fraud-b"]);
    assert!(matches!(
        r.search_models(&parse_filter("run_id = 'x'").unwrap(), &[], 0, 10)
            .await,
        Err(Error::InvalidArgument(_))
    ));
}

/// Model-version search runs in SQL across models: filters, default and explicit
/// order, pages; each version arrives with its tags and aliases.
async fn version_search_filters_orders_and_pages_in_sql() {
    use cairn_core::search::{parse_filter, parse_order_by};

    let (_fixture, r) = registry().await;
    for (model, count) in [("alpha", 3_u64), ("beta", 2)] {
        for i in 1..=count {
            let mut new = stage(&r, &[("f", format!("{model}{i}").as_bytes())]).await;
            new.tags.insert(
                "parity".into(),
                if i % 2 == 0 { "even" } else { "odd" }.into(),
            );
            r.register_version(&ACTOR, &name(model), &new, &VersionOrigin::default())
                .await
                .unwrap();
        }
    }
    r.move_alias(
        &ACTOR,
        &name("alpha"),
        &alias("prod"),
        AliasTarget::Version(2),
        None,
    )
    .await
    .unwrap();
    let search = |filter: &str, order: &[&str], offset, limit| {
        let filter = parse_filter(filter).unwrap();
        let order: Vec<_> = order.iter().map(|o| parse_order_by(o).unwrap()).collect();
        let r = r.clone();
        async move {
            r.search_versions(&filter, &order, offset, limit)
                .await
                .unwrap()
                .into_iter()
                .map(|(v, _)| format!("{}@{}", v.model, v.version))
                .collect::<Vec<_>>()
        }
    };
    // Default order: name ascending, then newest first.
    assert_eq!(
        search("", &[], 0, 10).await,
        ["alpha@3", "alpha@2", "alpha@1", "beta@2", "beta@1"]
    );
    assert_eq!(search("", &[], 2, 2).await, ["alpha@1", "beta@2"]);
    // An offset past every version (a page token may carry any number): an empty page.
    assert!(search("", &[], usize::MAX, 2).await.is_empty());
    assert_eq!(
        search("name = 'beta'", &[], 0, 10).await,
        ["beta@2", "beta@1"]
    );
    assert_eq!(
        search("tags.parity = 'even'", &["version_number ASC"], 0, 10).await,
        ["alpha@2", "beta@2"]
    );
    assert_eq!(
        search("name LIKE 'a%' AND version_number >= 2", &[], 0, 10).await,
        ["alpha@3", "alpha@2"]
    );
    let found = r
        .search_versions(
            &parse_filter("name = 'alpha' AND version_number = 2").unwrap(),
            &[],
            0,
            10,
        )
        .await
        .unwrap();
    assert_eq!(found[0].0.aliases, ["prod"]);
    assert_eq!(found[0].0.tags["parity"], "even");
}

/// Staged uploads abandoned long ago are swept; recent ones (maybe in progress) stay.
async fn abandoned_uploads_are_swept() {
    let (fixture, r) = registry().await;
    let tmp = fixture.path().join("blobs/tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    let old = std::fs::File::create(tmp.join("abandoned")).unwrap();
    old.set_modified(std::time::SystemTime::now() - std::time::Duration::from_secs(3 * 86_400))
        .unwrap();
    std::fs::write(tmp.join("in-progress"), b"part").unwrap();
    let removed = r
        .blobs()
        .remove_stale_uploads(std::time::Duration::from_secs(86_400), false)
        .await
        .unwrap();
    assert_eq!(removed, 1);
    assert!(!tmp.join("abandoned").exists());
    assert!(tmp.join("in-progress").exists());
}

/// Every mutation leaves exactly one audit entry (no-ops none), in order, and the
/// chain verifies.
async fn every_mutation_leaves_one_audit_entry() {
    let (_fixture, r) = registry().await;
    let m = name("audited");
    let req = CreateModel {
        name: "audited".into(),
        description: "first".into(),
        tags: Default::default(),
    };
    r.create_model(&Actor::unrestricted("alice"), &req)
        .await
        .unwrap();
    for i in 0..2 {
        let new = stage(&r, &[("w", format!("{i}").as_bytes())]).await;
        r.register_version(
            &Actor::unrestricted("alice"),
            &m,
            &new,
            &VersionOrigin::default(),
        )
        .await
        .unwrap();
    }
    let prod = alias("prod");
    r.move_alias(
        &Actor::unrestricted("bob"),
        &m,
        &prod,
        AliasTarget::Version(1),
        None,
    )
    .await
    .unwrap();
    r.move_alias(
        &Actor::unrestricted("bob"),
        &m,
        &prod,
        AliasTarget::Version(1),
        None,
    )
    .await
    .unwrap(); // no-op
    r.move_alias(
        &Actor::unrestricted("bob"),
        &m,
        &prod,
        AliasTarget::Version(2),
        Some("better"),
    )
    .await
    .unwrap();
    r.move_alias(
        &Actor::unrestricted("carol"),
        &m,
        &prod,
        AliasTarget::PreviousVersion,
        None,
    )
    .await
    .unwrap();
    r.set_tag(&Actor::unrestricted("bob"), &m, None, "team", Some("risk"))
        .await
        .unwrap();
    r.set_tag(&Actor::unrestricted("bob"), &m, None, "team", Some("risk"))
        .await
        .unwrap(); // no-op
    r.set_tag(
        &Actor::unrestricted("bob"),
        &m,
        Some(2),
        "reviewed",
        Some("yes"),
    )
    .await
    .unwrap();
    r.set_tag(&Actor::unrestricted("bob"), &m, Some(2), "reviewed", None)
        .await
        .unwrap();
    r.set_description(&Actor::unrestricted("bob"), &m, None, "second")
        .await
        .unwrap();
    r.set_description(&Actor::unrestricted("bob"), &m, None, "second")
        .await
        .unwrap(); // no-op
    r.set_stage(&Actor::unrestricted("mlflow"), &m, 2, "Production", true)
        .await
        .unwrap();
    let renamed = name("audited-2");
    r.rename_model(&Actor::unrestricted("bob"), &m, &renamed)
        .await
        .unwrap();
    r.delete_version(&Actor::unrestricted("bob"), &renamed, 1)
        .await
        .unwrap();
    r.delete_model(&Actor::unrestricted("bob"), &renamed)
        .await
        .unwrap();

    let log = r.audit_log(None, None).await.unwrap();
    let actions: Vec<(&str, &str, &str)> = log
        .iter()
        .map(|e| (e.actor.as_str(), e.action.as_str(), e.target.as_str()))
        .collect();
    assert_eq!(
        actions,
        [
            ("alice", "model.create", "audited"),
            ("alice", "version.create", "audited@1"),
            ("alice", "version.create", "audited@2"),
            ("bob", "alias.set", "audited@prod"),
            ("bob", "alias.set", "audited@prod"),
            ("carol", "alias.rollback", "audited@prod"),
            ("bob", "model.tag.set", "audited"),
            ("bob", "version.tag.set", "audited@2"),
            ("bob", "version.tag.delete", "audited@2"),
            ("bob", "model.description", "audited"),
            ("mlflow", "version.stage", "audited@2"),
            ("bob", "model.rename", "audited"),
            ("bob", "version.delete", "audited-2@1"),
            ("bob", "model.delete", "audited-2"),
        ]
    );
    assert_eq!(
        log.iter().map(|e| e.seq).collect::<Vec<_>>(),
        (1..=14).collect::<Vec<u64>>()
    );
    let rollback = &log[5];
    assert_eq!(rollback.before, Some(serde_json::json!({ "version": 2 })));
    assert_eq!(rollback.after.as_ref().unwrap()["version"], 1);
    // The version deletion says which aliases went with it.
    assert_eq!(
        log[12].before.as_ref().unwrap()["aliases"],
        serde_json::json!(["prod"])
    );
    assert_eq!(r.audit_log(Some("audited"), None).await.unwrap().len(), 11);

    let report = r.verify_audit(None).await.unwrap();
    assert!(report.ok(), "{report:?}");
    assert_eq!(report.entries, 14);
    assert_eq!(report.head, r.audit_head().await.unwrap());
    assert_eq!(report.head.hash, log[13].hash);
}

/// Editing, deleting or swapping audit rows directly in the database breaks the chain
/// at the entry concerned; an exported head pins everything up to it.
async fn tampering_with_the_audit_log_is_detected() {
    let (_fixture, r) = registry().await;
    let m = name("t");
    for i in 0..5 {
        let new = stage(&r, &[("w", format!("{i}").as_bytes())]).await;
        r.register_version(&ACTOR, &m, &new, &VersionOrigin::default())
            .await
            .unwrap();
    }
    // Behind the registry's back, on its database (through its own connection: what
    // someone with write access to the database could run).
    let run = |sql: &'static str| {
        let meta = r.meta.clone();
        async move {
            meta.write(sql).execute().await.unwrap();
        }
    };
    let broken_at = || async { r.verify_audit(None).await.unwrap().broken.map(|b| b.seq) };
    assert_eq!(broken_at().await, None);
    let head = r.audit_head().await.unwrap();

    // Edit one field of one entry.
    run("UPDATE audit_log SET actor = 'mallory' WHERE seq = 2").await;
    assert_eq!(broken_at().await, Some(2));
    run("UPDATE audit_log SET actor = 'tester' WHERE seq = 2").await;
    assert_eq!(broken_at().await, None);

    // Another field of another entry.
    run("UPDATE audit_log SET target = 't@9' WHERE seq = 3").await;
    assert_eq!(broken_at().await, Some(3));
    run("UPDATE audit_log SET target = 't@3' WHERE seq = 3").await;

    // Delete one from the middle, and the newest.
    run("CREATE TABLE saved AS SELECT * FROM audit_log").await;
    let restore = || async {
        run("DELETE FROM audit_log").await;
        run("INSERT INTO audit_log SELECT * FROM saved").await;
    };
    run("DELETE FROM audit_log WHERE seq = 3").await;
    assert_eq!(broken_at().await, Some(3));
    restore().await;
    assert_eq!(broken_at().await, None);
    run("DELETE FROM audit_log WHERE seq = 5").await;
    assert_eq!(broken_at().await, Some(5));
    run("INSERT INTO audit_log SELECT * FROM saved WHERE seq = 5").await;

    // Swap two entries' places.
    run("UPDATE audit_log SET seq = -2 WHERE seq = 2").await;
    run("UPDATE audit_log SET seq = 2 WHERE seq = 4").await;
    run("UPDATE audit_log SET seq = 4 WHERE seq = -2").await;
    assert_eq!(broken_at().await, Some(2));
    restore().await;
    assert_eq!(broken_at().await, None);

    // A stored hash rewritten; then an exported head pins what came before it.
    run("UPDATE audit_log SET hash = CASE WHEN substr(hash, 1, 1) = 'f' THEN '0' ELSE 'f' END || substr(hash, 2) WHERE seq = 5").await;
    assert_eq!(broken_at().await, Some(5));
    restore().await;
    let report = r.verify_audit(Some(&head)).await.unwrap();
    assert!(report.ok(), "{report:?}");
    let forged = cairn_core::AuditHead {
        seq: 3,
        hash: "0".repeat(64),
    };
    assert_eq!(
        r.verify_audit(Some(&forged))
            .await
            .unwrap()
            .broken
            .map(|b| b.seq),
        Some(3)
    );
    run("DROP TABLE saved").await;
}

/// After deleting 3 of 5 versions that share files, gc frees exactly the blobs only
/// those 3 used; the rest still verify; young unreferenced blobs are kept.
async fn gc_frees_exactly_what_only_deleted_versions_used() {
    let (fixture, r) = registry().await;
    let m = name("gc");
    let files = |i: u32| -> Vec<(String, Vec<u8>)> {
        let mut f = vec![
            ("shared.bin".to_owned(), b"in every version".to_vec()),
            (
                "own.bin".to_owned(),
                format!("only version {i}").into_bytes(),
            ),
        ];
        // Versions 2 and 3 share a file nobody else has; 4 and 5 another.
        if i == 2 || i == 3 {
            f.push(("pair.bin".into(), b"two and three".to_vec()));
        }
        if i == 4 || i == 5 {
            f.push(("pair.bin".into(), b"four and five".to_vec()));
        }
        f
    };
    for i in 1..=5 {
        let owned = files(i);
        let refs: Vec<(&str, &[u8])> = owned
            .iter()
            .map(|(p, c)| (p.as_str(), c.as_slice()))
            .collect();
        let new = stage(&r, &refs).await;
        r.register_version(&ACTOR, &m, &new, &VersionOrigin::default())
            .await
            .unwrap();
    }
    for n in [2, 3, 4] {
        r.delete_version(&ACTOR, &m, n).await.unwrap();
    }
    let mut expected: Vec<Sha256Digest> = [
        "only version 2",
        "only version 3",
        "only version 4",
        "two and three",
    ]
    .iter()
    .map(|c| Sha256Digest::of(c.as_bytes()))
    .collect();
    expected.sort_unstable();

    let dry = r
        .collect_garbage(&ACTOR, std::time::Duration::ZERO, true)
        .await
        .unwrap();
    assert_eq!(dry.freed, expected);
    assert!(dry.dry_run);
    assert_eq!(
        blob_files(fixture.path()).len(),
        8,
        "a dry run deletes nothing"
    );

    // A blob uploaded for a version not committed yet is young: kept.
    let pending = Sha256Digest::of(b"pushed, not yet registered");
    r.put_blob_bytes(&pending, Bytes::from_static(b"pushed, not yet registered"))
        .await
        .unwrap();
    let report = r
        .collect_garbage(&ACTOR, std::time::Duration::from_secs(3600), false)
        .await
        .unwrap();
    assert!(
        report.freed.is_empty() && report.kept_young == 5,
        "{report:?}"
    );

    let report = r
        .collect_garbage(&ACTOR, std::time::Duration::ZERO, false)
        .await
        .unwrap();
    let mut freed_expected = expected.clone();
    freed_expected.push(pending);
    freed_expected.sort_unstable();
    assert_eq!(report.freed, freed_expected);
    let left = blob_files(fixture.path());
    for d in &expected {
        assert!(!left.contains(&d.to_hex()), "{d} should be gone");
    }
    assert_eq!(left.len(), 4, "shared, own 1, own 5, pair of 4 and 5");
    let logged = r.audit_log(None, None).await.unwrap();
    let last = logged.last().unwrap();
    assert_eq!(last.action, "blobs.collect");
    assert_eq!(last.after.as_ref().unwrap()["freed"], 5);
    let verified = r.verify_all().await.unwrap();
    assert!(verified.ok() && verified.versions == 2, "{verified:?}");
    assert!(
        r.collect_garbage(&ACTOR, std::time::Duration::ZERO, false)
            .await
            .unwrap()
            .freed
            .is_empty()
    );

    let shared = r
        .why_blob(&Sha256Digest::of(b"in every version"))
        .await
        .unwrap();
    assert_eq!(
        shared
            .versions
            .iter()
            .map(|f| f.version)
            .collect::<Vec<_>>(),
        [1, 5]
    );
    let gone = r.why_blob(&expected[0]).await.unwrap();
    assert!(!gone.stored && gone.versions.is_empty() && gone.collected_at.is_some());
}

/// A version naming a collected blob is refused and the blob reported missing until it
/// is uploaded again; pushes racing collections lose nothing.
async fn pushes_racing_gc_lose_nothing() {
    let (_fixture, r) = registry().await;
    let m = name("race");
    let content = b"weights".to_vec();
    let d = Sha256Digest::of(&content);
    r.put_blob_bytes(&d, Bytes::from(content.clone()))
        .await
        .unwrap();
    r.collect_garbage(&ACTOR, std::time::Duration::ZERO, false)
        .await
        .unwrap();
    let new = NewVersion {
        files: Manifest::new(vec![FileEntry {
            path: "w".into(),
            size: content.len() as u64,
            sha256: d,
        }])
        .unwrap(),
        description: String::new(),
        tags: Default::default(),
        metrics: Default::default(),
        params: Default::default(),
        lineage: Default::default(),
    };
    assert!(matches!(
        r.register_version(&ACTOR, &m, &new, &VersionOrigin::default())
            .await,
        Err(Error::MissingBlobs(_))
    ));
    assert_eq!(r.missing_blobs(&[d]).await.unwrap(), [d]);
    r.put_blob_bytes(&d, Bytes::from(content.clone()))
        .await
        .unwrap();
    assert!(r.missing_blobs(&[d]).await.unwrap().is_empty());
    assert_eq!(
        r.register_version(&ACTOR, &m, &new, &VersionOrigin::default())
            .await
            .unwrap()
            .version,
        1
    );

    // Pushers (upload, then register; on "upload it first", push again) against a
    // collector running with no grace at all.
    let collector = {
        let r = r.clone();
        tokio::spawn(async move {
            for _ in 0..30 {
                r.collect_garbage(&ACTOR, std::time::Duration::ZERO, false)
                    .await
                    .unwrap();
                tokio::task::yield_now().await;
            }
        })
    };
    let mut pushers = Vec::new();
    for p in 0..3 {
        let (r, m) = (r.clone(), m.clone());
        pushers.push(tokio::spawn(async move {
            for i in 0..10 {
                let body = format!("pusher {p} version {i}");
                let digest = Sha256Digest::of(body.as_bytes());
                let new = NewVersion {
                    files: Manifest::new(vec![FileEntry {
                        path: "model.bin".into(),
                        size: body.len() as u64,
                        sha256: digest,
                    }])
                    .unwrap(),
                    description: String::new(),
                    tags: Default::default(),
                    metrics: Default::default(),
                    params: Default::default(),
                    lineage: Default::default(),
                };
                for attempt in 0.. {
                    assert!(attempt < 50, "pusher {p} never got version {i} in");
                    // A collection may delete the bytes under the upload, or before the
                    // registration: both say so, and pushing again fixes it.
                    match r.put_blob_bytes(&digest, Bytes::from(body.clone())).await {
                        Ok(()) => {}
                        Err(Error::UploadInterrupted(_)) => continue,
                        Err(e) => panic!("upload failed: {e}"),
                    }
                    match r
                        .register_version(&ACTOR, &m, &new, &VersionOrigin::default())
                        .await
                    {
                        Ok(_) => break,
                        Err(Error::MissingBlobs(_)) => continue,
                        Err(e) => panic!("push failed: {e}"),
                    }
                }
            }
        }));
    }
    for p in pushers {
        p.await.unwrap();
    }
    collector.await.unwrap();
    let report = r.verify_all().await.unwrap();
    assert!(report.ok(), "{report:?}");
    assert_eq!(report.versions, 31);
}

/// Lineage is recorded with the version and read both ways: ancestors up, and the
/// versions from a dataset, a commit or a parent down.
async fn lineage_is_recorded_and_queried_both_ways() {
    use cairn_core::lineage::{CodeRef, DataRef, EnvFile, LineageInput, ParentRef};

    let (_fixture, r) = registry().await;
    let m = name("ft");
    let env = b"numpy==2.3.0\n";
    let env_digest = Sha256Digest::of(env);
    let mut base = stage(&r, &[("w", b"base weights")]).await;
    base.lineage = LineageInput {
        run_id: Some("0123456789abcdef0123456789abcdef".into()),
        code: Some(CodeRef {
            commit: "a1b2c3d4e5f60718293a4b5c6d7e8f9012345678".into(),
            branch: Some("main".into()),
            remote: Some("git@example.com:team/models.git".into()),
            dirty: true,
        }),
        data: vec![
            DataRef {
                kind: "dataset".into(),
                path: "data".into(),
                digest: format!("sha256:{}", "ab".repeat(32)),
                size: Some(10),
                files: Some(1),
            },
            DataRef {
                kind: "dvc".into(),
                path: "data/train.csv".into(),
                digest: "md5:0123456789abcdef0123456789abcdef".into(),
                size: Some(10),
                files: None,
            },
        ],
        parents: vec![],
        environment: vec![EnvFile {
            path: "requirements.txt".into(),
            sha256: env_digest,
            size: env.len() as u64,
        }],
    };
    // The environment file is a blob like any other: it must be stored first.
    assert!(matches!(
        r.register_version(&ACTOR, &m, &base, &VersionOrigin::default())
            .await,
        Err(Error::MissingBlobs(_))
    ));
    r.put_blob_bytes(&env_digest, Bytes::from_static(env))
        .await
        .unwrap();
    r.register_version(&ACTOR, &m, &base, &VersionOrigin::default())
        .await
        .unwrap();

    let mut child = stage(&r, &[("w", b"fine-tuned")]).await;
    child.lineage.parents = vec![ParentRef {
        model: "ft".into(),
        version: 1,
    }];
    r.register_version(&ACTOR, &m, &child, &VersionOrigin::default())
        .await
        .unwrap();
    let mut grandchild = stage(&r, &[("w", b"fine-tuned again")]).await;
    grandchild.lineage.parents = vec![ParentRef {
        model: "ft".into(),
        version: 2,
    }];
    r.register_version(&ACTOR, &m, &grandchild, &VersionOrigin::default())
        .await
        .unwrap();
    let mut orphan = stage(&r, &[("w", b"x")]).await;
    orphan.lineage.parents = vec![ParentRef {
        model: "ft".into(),
        version: 9,
    }];
    assert!(matches!(
        r.register_version(&ACTOR, &m, &orphan, &VersionOrigin::default())
            .await,
        Err(Error::VersionNotFound { .. })
    ));

    let first = r.lineage(&m, &VersionRef::Number(1)).await.unwrap();
    assert_eq!(first.recorded, base.lineage);
    assert_eq!(
        first.children,
        [ParentRef {
            model: "ft".into(),
            version: 2
        }]
    );
    let last = r.lineage(&m, &VersionRef::Latest).await.unwrap();
    assert_eq!(last.version, 3);
    assert_eq!(last.ancestors.len(), 1);
    assert_eq!(last.ancestors[0].version, 2);
    assert_eq!(
        last.ancestors[0].ancestors[0].recorded.code,
        base.lineage.code
    );

    let v = |n| ParentRef {
        model: "ft".into(),
        version: n,
    };
    assert_eq!(
        r.versions_with_input("0123456789abcdef0123456789abcdef")
            .await
            .unwrap(),
        [v(1)]
    );
    assert_eq!(
        r.versions_with_input(&format!("sha256:{}", "ab".repeat(32)))
            .await
            .unwrap(),
        [v(1)]
    );
    assert!(r.versions_with_input("md5:ffff").await.unwrap().is_empty());
    assert_eq!(r.versions_with_commit("A1B2C3").await.unwrap(), [v(1)]);
    assert!(matches!(
        r.versions_with_commit("xyz").await,
        Err(Error::InvalidArgument(_))
    ));
    assert_eq!(r.descendants(&v(1)).await.unwrap(), [v(2), v(3)]);
    // The run named at registration is the version's run.
    let (_, extras) = r
        .get_version_with_origin(&m, &VersionRef::Number(1))
        .await
        .unwrap();
    assert_eq!(extras.origin.run_id, "0123456789abcdef0123456789abcdef");

    // The environment blob is verified and kept alive like version files.
    assert!(r.verify_all().await.unwrap().ok());
    let kept = r
        .collect_garbage(&ACTOR, std::time::Duration::ZERO, false)
        .await
        .unwrap();
    assert!(!kept.freed.contains(&env_digest));
    // A deleted ancestor stays named; its lineage is gone with it.
    r.delete_version(&ACTOR, &m, 1).await.unwrap();
    let second = r.lineage(&m, &VersionRef::Number(2)).await.unwrap();
    assert_eq!(second.recorded.parents, [v(1)]);
    assert!(second.ancestors.is_empty());
}

conformance!(
    cached_reads_follow_every_registry_change,
    concurrent_identical_reads_compute_the_answer_once,
    lineage_is_recorded_and_queried_both_ways,
    gc_frees_exactly_what_only_deleted_versions_used,
    pushes_racing_gc_lose_nothing,
    every_mutation_leaves_one_audit_entry,
    tampering_with_the_audit_log_is_detected,
    abandoned_uploads_are_swept,
    version_search_filters_orders_and_pages_in_sql,
    model_search_filters_orders_and_pages_in_sql,
    copy_moves_a_whole_registry_and_a_second_copy_writes_nothing,
    copy_refuses_a_diverged_target,
    two_registries_on_one_database_stay_consistent,
    versions_are_numbered_from_one_and_never_reused,
    concurrent_registrations_get_distinct_gap_free_numbers,
    version_records_manifest_digest_and_metadata,
    identical_files_are_stored_once,
    registration_refuses_unstored_blobs_and_bad_metadata,
    only_unreferenced_blobs_are_checked_at_registration,
    alias_moves_are_recorded_and_rollback_returns_to_the_previous_version,
    deleting_a_version_removes_its_aliases_and_records_why,
    model_lifecycle,
    a_blob_whose_bytes_do_not_match_is_not_stored,
    an_interrupted_stream_leaves_nothing,
    a_large_streamed_blob_round_trips,
    verify_names_corrupt_and_missing_blobs_and_the_versions_they_break,
    batched_writes_verify_each_blob_and_leave_no_staging_files,
);

/// Every version of every model with its MLflow state, through the read cache;
/// `computed` counts the times the answer was not served from memory.
async fn cached_versions(r: &Registry, computed: &AtomicUsize) -> String {
    let answer = r
        .cached_read("all versions".into(), async {
            computed.fetch_add(1, Ordering::SeqCst);
            let found = r.search_versions(&[], &[], 0, 1000).await?;
            Ok::<_, Error>(Bytes::from(format!("{found:?}")))
        })
        .await
        .unwrap();
    String::from_utf8(answer.to_vec()).unwrap()
}

/// A cached read is served from memory while the registry is unchanged, and computed
/// again after every change — made through this registry or through another one on the
/// same database (a second server) — and after nothing else.
async fn cached_reads_follow_every_registry_change() {
    let (fixture, r1) = registry().await;
    let r2 = fixture.open_again().await;
    let m = name("cached");
    let new = stage(&r1, &[("w", b"1")]).await;
    r1.register_version(&ACTOR, &m, &new, &VersionOrigin::default())
        .await
        .unwrap();
    let computed = AtomicUsize::new(0);
    let mut seen = cached_versions(&r1, &computed).await;
    assert_eq!(cached_versions(&r1, &computed).await, seen);
    assert_eq!(
        computed.load(Ordering::SeqCst),
        1,
        "the second read is served"
    );

    let prod = alias("prod");
    for step in 0..8 {
        // Alternate the writer: the reader's cache must notice the other server's writes.
        let w = if step % 2 == 0 { &r2 } else { &r1 };
        match step {
            0 => w
                .set_tag(&ACTOR, &m, Some(1), "k", Some("v"))
                .await
                .unwrap(),
            1 => drop(
                w.move_alias(&ACTOR, &m, &prod, AliasTarget::Version(1), None)
                    .await
                    .unwrap(),
            ),
            2 => w
                .set_description(&ACTOR, &m, Some(1), "described")
                .await
                .unwrap(),
            3 => w.set_stage(&ACTOR, &m, 1, "Staging", false).await.unwrap(),
            4 => {
                let new = stage(w, &[("w", b"2")]).await;
                w.register_version(&ACTOR, &m, &new, &VersionOrigin::default())
                    .await
                    .unwrap();
            }
            5 => drop(
                w.move_alias(&ACTOR, &m, &prod, AliasTarget::Remove, None)
                    .await
                    .unwrap(),
            ),
            6 => w.delete_version(&ACTOR, &m, 1).await.unwrap(),
            _ => drop(w.rename_model(&ACTOR, &m, &name("cached-2")).await.unwrap()),
        }
        let before = computed.load(Ordering::SeqCst);
        let now = cached_versions(&r1, &computed).await;
        assert_eq!(
            computed.load(Ordering::SeqCst),
            before + 1,
            "step {step}: not recomputed"
        );
        assert_ne!(now, seen, "step {step}: the change does not show");
        seen = now;
    }
    // A write that changes nothing leaves the registry's state, and the cached answer.
    let m = name("cached-2");
    r2.set_description(&ACTOR, &m, Some(2), "").await.unwrap();
    let before = computed.load(Ordering::SeqCst);
    assert_eq!(cached_versions(&r1, &computed).await, seen);
    assert_eq!(computed.load(Ordering::SeqCst), before);
}

/// Many clients asking the same read at once (a fleet polling after a promotion): one
/// computes the answer, the others wait for it; and no computation is left registered.
async fn concurrent_identical_reads_compute_the_answer_once() {
    let (_fixture, r) = registry().await;
    let computed = AtomicUsize::new(0);
    let read = || {
        r.cached_read("slow".into(), async {
            computed.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            Ok::<_, Error>(Bytes::from_static(b"answer"))
        })
    };
    let answers = futures::future::join_all((0..8).map(|_| read())).await;
    for answer in answers {
        assert_eq!(&answer.unwrap()[..], b"answer");
    }
    assert_eq!(computed.load(Ordering::SeqCst), 1);
    assert_eq!(r.read_cache.computing_keys(), 0);

    // A computation that fails keeps nothing: the next read computes again.
    let failed = r
        .cached_read("failing".into(), async {
            Err::<Bytes, _>(Error::InvalidArgument("nothing".into()))
        })
        .await;
    assert!(matches!(failed, Err(Error::InvalidArgument(_))));
    let again = r
        .cached_read("failing".into(), async {
            Ok::<_, Error>(Bytes::from_static(b"now"))
        })
        .await
        .unwrap();
    assert_eq!(&again[..], b"now");
    assert_eq!(r.read_cache.computing_keys(), 0);
}

/// A caller that reads the head and then waits for it to pass must wait, though the
/// shared poller's last read is older than the head it read (else webhook and event
/// loops spin while writes go on), and never gets a head below the one it asked after.
#[tokio::test]
async fn a_change_wait_waits_past_a_head_newer_than_the_pollers_read() {
    let (_dir, r) = registry().await;
    let model = |n: &str| CreateModel {
        name: n.into(),
        description: String::new(),
        tags: Default::default(),
    };
    r.create_model(&ACTOR, &model("first")).await.unwrap();
    // A waiter that never wakes keeps the poller running with its read of the head.
    let holder = {
        let r = r.clone();
        tokio::spawn(async move { r.wait_for_change(u64::MAX, Duration::from_secs(5)).await })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    r.create_model(&ACTOR, &model("second")).await.unwrap();
    let after = r.audit_head().await.unwrap().seq;
    let started = std::time::Instant::now();
    let head = r
        .wait_for_change(after, Duration::from_millis(100))
        .await
        .unwrap();
    assert!(
        head.seq >= after,
        "answered head {} below {after}",
        head.seq
    );
    assert!(
        started.elapsed() >= Duration::from_millis(90),
        "did not wait"
    );
    holder.abort();
}
