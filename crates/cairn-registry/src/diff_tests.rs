//! `Registry::diff` on both engines: two versions that differ in one file, one renamed
//! file, two metrics and a dataset's digest are reported as exactly that; environment
//! files get a unified diff of their text.

use bytes::Bytes;
use cairn_core::access::Actor;
use cairn_core::lineage::{DataRef, EnvFile};
use cairn_core::{ModelName, ModelVersionRef, Sha256Digest};

use crate::test_support::{conformance, registry};
use crate::tests::stage;
use crate::{Registry, VersionOrigin};

fn data(digest: &str) -> DataRef {
    DataRef {
        kind: "dataset".into(),
        path: "data/train".into(),
        digest: digest.into(),
        size: None,
        files: None,
    }
}

async fn env(r: &Registry, text: &str) -> EnvFile {
    let digest = Sha256Digest::of(text.as_bytes());
    r.put_blob_bytes(&digest, Bytes::copy_from_slice(text.as_bytes()))
        .await
        .unwrap();
    EnvFile {
        path: "requirements.txt".into(),
        sha256: digest,
        size: text.len() as u64,
    }
}

async fn exactly_the_differences_are_reported() {
    let (_dir, r) = registry().await;
    let ada = Actor::unrestricted("ada");
    let m = ModelName::new("fraud").unwrap();
    let mut one = stage(
        &r,
        &[
            ("model.onnx", b"weights-1"),
            ("config.json", b"{}"),
            ("notes.txt", b"same"),
        ],
    )
    .await;
    one.metrics.insert("auc".into(), 0.80);
    one.metrics.insert("loss".into(), 0.50);
    one.metrics.insert("f1".into(), 0.70);
    one.params.insert("lr".into(), "0.1".into());
    one.lineage.data.push(data("sha256:aaaa"));
    one.lineage
        .environment
        .push(env(&r, "numpy==1.26\nscikit-learn==1.4\n").await);
    let mut two = stage(
        &r,
        &[
            ("model.onnx", b"weights-2!"),
            ("settings.json", b"{}"),
            ("notes.txt", b"same"),
        ],
    )
    .await;
    two.metrics.insert("auc".into(), 0.90);
    two.metrics.insert("loss".into(), 0.40);
    two.metrics.insert("f1".into(), 0.70);
    two.params.insert("lr".into(), "0.1".into());
    two.lineage.data.push(data("sha256:bbbb"));
    two.lineage.environment = one.lineage.environment.clone();
    for new in [&one, &two] {
        r.register_version(&ada, &m, new, &VersionOrigin::default())
            .await
            .unwrap();
    }
    let at = |n: &str| format!("fraud@{n}").parse::<ModelVersionRef>().unwrap();
    let d = r.diff(&at("1"), &at("2")).await.unwrap();
    assert!(d.differ);
    assert_eq!(
        d.metrics.iter().map(|m| m.key.as_str()).collect::<Vec<_>>(),
        ["auc", "loss"]
    );
    assert!((d.metrics[0].delta.unwrap() - 0.1).abs() < 1e-9);
    assert!(d.params.is_empty() && d.tags.is_empty());
    assert_eq!(d.files.changed.len(), 1);
    assert_eq!(d.files.changed[0].path, "model.onnx");
    assert_eq!(d.files.changed[0].size_delta, 1);
    assert_eq!(d.files.renamed.len(), 1);
    assert_eq!(d.files.renamed[0].from, "config.json");
    assert_eq!(d.files.renamed[0].to, "settings.json");
    assert!(d.files.added.is_empty() && d.files.removed.is_empty());
    assert_eq!(d.files.unchanged, 1);
    assert_eq!(d.lineage.data.changed.len(), 1);
    assert_eq!(d.lineage.data.changed[0].b, "sha256:bbbb");
    assert!(d.lineage.data.added.is_empty() && d.lineage.data.removed.is_empty());
    assert!(d.lineage.code.is_none() && d.lineage.run_id.is_none());
    assert!(d.lineage.environment.changed.is_empty());

    // A version against itself: nothing differs.
    let same = r.diff(&at("2"), &at("latest")).await.unwrap();
    assert!(!same.differ, "{same:?}");

    // A third version with another requirements.txt: its text diff.
    let mut three = two.clone();
    three.lineage.environment = vec![env(&r, "numpy==2.0\nscikit-learn==1.4\n").await];
    r.register_version(&ada, &m, &three, &VersionOrigin::default())
        .await
        .unwrap();
    let d = r.diff(&at("2"), &at("3")).await.unwrap();
    let change = &d.lineage.environment.changed[0];
    let unified = change.unified.as_deref().unwrap();
    assert!(
        unified.contains("-numpy==1.26") && unified.contains("+numpy==2.0"),
        "{unified}"
    );
    assert!(d.files.is_empty() && d.metrics.is_empty());
}

conformance!(exactly_the_differences_are_reported);
