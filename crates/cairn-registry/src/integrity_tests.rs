//! The registry against a damaged store, run on both engines: what `verify` covers,
//! what a registration checks, what garbage collection sweeps.

use cairn_core::access::Actor;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use cairn_core::api::NewVersion;
use cairn_core::lineage::{EnvFile, LineageInput};
use cairn_core::model::BlobProblem;
use cairn_core::{FileEntry, Manifest, ModelName, Sha256Digest};

use crate::test_support::{conformance, registry};
use crate::{Error, VersionOrigin};

static ACTOR: std::sync::LazyLock<Actor> =
    std::sync::LazyLock::new(|| Actor::unrestricted("tester"));

fn one_chunk(
    data: &[u8],
) -> futures::stream::Iter<std::vec::IntoIter<Result<Bytes, std::io::Error>>> {
    futures::stream::iter(vec![Ok(Bytes::copy_from_slice(data))])
}

/// `verify --all` re-hashes blobs that only run artifacts reference.
async fn verify_covers_blobs_only_artifacts_reference() {
    let (_dir, r) = registry().await;
    let path = "1/run/artifacts/model/w.bin";
    r.tracking()
        .put_artifact(path, one_chunk(b"run weights"))
        .await
        .unwrap();
    let report = r.verify_all().await.unwrap();
    assert!(report.ok(), "{report:?}");
    assert_eq!(report.blobs, 1, "the artifact's blob is covered");

    let digest = Sha256Digest::of(b"run weights");
    std::fs::write(r.blobs().local_path(&digest).unwrap(), b"run weightz").unwrap();
    let report = r.verify_all().await.unwrap();
    assert_eq!(report.problems.len(), 1, "{report:?}");
    assert_eq!(report.problems[0].problem, BlobProblem::Corrupt);
    assert_eq!(report.problems[0].artifacts, [path]);
    // And it is never served as if intact.
    assert!(matches!(
        r.read_blob(&digest).await,
        Err(Error::CorruptBlob(_))
    ));
}

/// An environment file's declared size is checked like a version file's.
async fn environment_files_sizes_are_checked() {
    let (_dir, r) = registry().await;
    let weights = Sha256Digest::of(b"w");
    let requirements = Sha256Digest::of(b"numpy==2\n");
    r.put_blob_bytes(&weights, Bytes::from_static(b"w"))
        .await
        .unwrap();
    r.put_blob_bytes(&requirements, Bytes::from_static(b"numpy==2\n"))
        .await
        .unwrap();
    let version = |size| NewVersion {
        files: Manifest::new(vec![FileEntry {
            path: "w".into(),
            size: 1,
            sha256: weights,
        }])
        .unwrap(),
        description: String::new(),
        tags: Default::default(),
        metrics: Default::default(),
        params: Default::default(),
        lineage: LineageInput {
            environment: vec![EnvFile {
                path: "requirements.txt".into(),
                sha256: requirements,
                size,
            }],
            ..Default::default()
        },
    };
    let m = ModelName::new("m").unwrap();
    for size in [1, u64::MAX] {
        let err = r
            .register_version(&ACTOR, &m, &version(size), &VersionOrigin::default())
            .await
            .unwrap_err();
        assert!(
            matches!(err, Error::SizeMismatch { stored: 9, .. }),
            "{err}"
        );
    }
    r.register_version(&ACTOR, &m, &version(9), &VersionOrigin::default())
        .await
        .unwrap();
    // Once referenced, the recorded size stands for the check, and still refuses.
    let err = r
        .register_version(&ACTOR, &m, &version(10), &VersionOrigin::default())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::SizeMismatch { .. }), "{err}");
    assert!(r.verify_all().await.unwrap().ok());
}

/// Staged files of interrupted uploads go with `gc` once older than the grace period;
/// younger ones may be another server's upload in progress.
async fn gc_sweeps_staged_files_older_than_the_grace() {
    let (fixture, r) = registry().await;
    let root = fixture.path();
    let aged = |path: std::path::PathBuf| {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let file = std::fs::File::create(&path).unwrap();
        file.set_modified(SystemTime::now() - Duration::from_secs(2 * 3600))
            .unwrap();
        path
    };
    let old_multipart = aged(root.join("blobs/tmp/3f2a#1"));
    let old_small = aged(root.join("blobs/sha256/ab/.staging-1234"));
    let young = root.join("blobs/tmp/in-progress");
    std::fs::write(&young, b"part").unwrap();

    let dry = r
        .collect_garbage(&ACTOR, Duration::from_secs(3600), true)
        .await
        .unwrap();
    assert_eq!(dry.stale_uploads, 2);
    assert!(old_multipart.exists() && old_small.exists());
    let done = r
        .collect_garbage(&ACTOR, Duration::from_secs(3600), false)
        .await
        .unwrap();
    assert_eq!(done.stale_uploads, 2);
    assert!(!old_multipart.exists() && !old_small.exists());
    assert!(young.exists());
    assert!(r.verify_audit(None).await.unwrap().ok());
}

conformance!(
    verify_covers_blobs_only_artifacts_reference,
    environment_files_sizes_are_checked,
    gc_sweeps_staged_files_older_than_the_grace,
);
