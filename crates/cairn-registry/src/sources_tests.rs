//! Versions registered from sources: content-addressed where the registry holds the
//! files, external where it does not, refused where the source must not be read.

use cairn_core::access::Actor;
use std::collections::BTreeMap;

use bytes::Bytes;
use cairn_core::VersionRef;
use cairn_core::api::CreateModel;
use cairn_core::source::{SourceOwner, SourceProblem};

use crate::test_support::{conformance, registry};
use crate::{Error, FileList, Registry, SourcedVersion};

static ACTOR: std::sync::LazyLock<Actor> =
    std::sync::LazyLock::new(|| Actor::unrestricted("tester"));

fn body(
    data: &'static [u8],
) -> futures::stream::Iter<std::vec::IntoIter<Result<Bytes, std::io::Error>>> {
    futures::stream::iter(vec![Ok(Bytes::from_static(data))])
}

async fn model(r: &Registry, name: &str) -> cairn_core::ModelName {
    let req = CreateModel {
        name: name.into(),
        description: String::new(),
        tags: BTreeMap::new(),
    };
    r.create_model(&ACTOR, &req).await.unwrap();
    cairn_core::ModelName::new(name).unwrap()
}

async fn new_run(r: &Registry) -> cairn_core::tracking::RunInfo {
    let t = r.tracking();
    t.create_run(0, "u", 1, None, &BTreeMap::new())
        .await
        .unwrap()
        .info
}

/// A run that logged a model (one file) under `model/`.
async fn run_with_a_model(r: &Registry) -> cairn_core::tracking::RunInfo {
    let run = new_run(r).await;
    let root = cairn_core::source::artifact_path(&run.artifact_uri).unwrap();
    r.tracking()
        .put_artifact(&format!("{root}/model/MLmodel"), body(b"flavors: {}\n"))
        .await
        .unwrap();
    run
}

fn sourced(source: &str, run_id: Option<&str>) -> SourcedVersion {
    SourcedVersion {
        source: source.into(),
        run_id: run_id.map(str::to_owned),
        ..Default::default()
    }
}

async fn sources_resolve_to_stored_files_or_external_versions() {
    let (_dir, r) = registry().await;
    let run = run_with_a_model(&r).await;
    let m = model(&r, "Fraud Model").await;

    // Files the registry holds: content-addressed.
    let mut request = sourced(&format!("runs:/{}/model", run.id), Some(&run.id));
    request.tags = [("team".to_string(), "risk".to_string())].into();
    request.description = "first".into();
    request.run_link = "http://ci/1".into();
    let answer = r.register_from_source(&ACTOR, &m, &request).await.unwrap();
    let held = &answer.0;
    assert!(held.digest.is_some() && held.external_source.is_none());
    assert_eq!(held.file_count, 1);
    // The answer is the version as committed: what reading it back gives.
    let read = r
        .get_version_with_origin(&m, &VersionRef::Number(held.version))
        .await
        .unwrap();
    assert_eq!(answer, read);

    // Elsewhere, or nothing there: external, without files or digest.
    for source in [
        "s3://bucket/fraud/model".to_owned(),
        format!("runs:/{}/nothing-here", run.id),
    ] {
        let (v, _) = r
            .register_from_source(&ACTOR, &m, &sourced(&source, Some(&run.id)))
            .await
            .unwrap();
        assert_eq!(
            (v.digest, v.external_source.as_deref()),
            (None, Some(source.as_str()))
        );
        let read = r
            .get_version(&m, &VersionRef::Number(v.version), FileList::Included)
            .await
            .unwrap();
        assert_eq!(read.digest, None);
        assert_eq!(read.files.unwrap_or_default(), Vec::new());
    }
    // A version of an external version is external too.
    let (copy, _) = r
        .register_from_source(&ACTOR, &m, &sourced("models:/Fraud Model/2", None))
        .await
        .unwrap();
    assert_eq!(copy.digest, None);

    // Verification counts external versions and never calls them verified.
    let report = r.verify_all().await.unwrap();
    assert_eq!((report.versions, report.external), (1, 3));
    assert!(report.ok());
}

async fn sources_the_registry_must_not_read_are_refused() {
    let (_dir, r) = registry().await;
    let (run, other) = (new_run(&r).await, new_run(&r).await);
    let root = cairn_core::source::artifact_path(&run.artifact_uri).unwrap();
    let m = model(&r, "m").await;
    let refused = |source: &str, run_id: Option<&str>| {
        let req = sourced(source, run_id);
        let (r, m) = (r.clone(), m.clone());
        async move {
            match r.register_from_source(&ACTOR, &m, &req).await {
                Err(Error::InvalidSource { problem, .. }) => problem,
                other => panic!("{}: {other:?}", req.source),
            }
        }
    };
    assert_eq!(
        refused("/etc/passwd", None).await,
        SourceProblem::LocalPath(SourceOwner::RunId)
    );
    assert!(matches!(
        refused("http://example.com/m", None).await,
        SourceProblem::HostAddressed { .. }
    ));
    assert_eq!(
        refused(&format!("mlflow-artifacts:/{root}/../../x"), Some(&run.id)).await,
        SourceProblem::RelativeReference
    );
    for (source, run_id) in [
        (format!("runs:/{}/model", run.id), Some(other.id.as_str())),
        (format!("runs:/{}/model", run.id), None),
        (
            format!("mlflow-artifacts:/{root}/model"),
            Some(other.id.as_str()),
        ),
        (format!("mlflow-artifacts:/{root}/model"), None),
    ] {
        assert_eq!(
            refused(&source, run_id).await,
            SourceProblem::OwnerMismatch(SourceOwner::RunId),
            "{source}"
        );
    }
    // Nothing was registered by any of them.
    assert!(r.list_versions(&m).await.unwrap().is_empty());
}

/// MLflow registers versions of existing models only: a source registration never
/// creates its model, whatever the source.
async fn a_source_registration_needs_its_model() {
    let (_dir, r) = registry().await;
    let run = run_with_a_model(&r).await;
    let missing = cairn_core::ModelName::new("Nobody Made Me").unwrap();
    for source in [
        format!("runs:/{}/model", run.id),
        "s3://bucket/fraud/model".to_owned(),
    ] {
        let refused = r
            .register_from_source(&ACTOR, &missing, &sourced(&source, Some(&run.id)))
            .await
            .unwrap_err();
        assert!(
            matches!(&refused, Error::ModelNotFound(name) if name == "Nobody Made Me"),
            "{refused:?}"
        );
    }
    let refused = r.model_exists(&missing).await.unwrap_err();
    assert!(matches!(refused, Error::ModelNotFound(_)), "{refused:?}");
    // The model's number was not taken either: created now, its first version is 1.
    let m = model(&r, "Nobody Made Me").await;
    let (v, _) = r
        .register_from_source(
            &ACTOR,
            &m,
            &sourced(&format!("runs:/{}/model", run.id), Some(&run.id)),
        )
        .await
        .unwrap();
    assert_eq!(v.version, 1);
}

conformance!(
    sources_resolve_to_stored_files_or_external_versions,
    sources_the_registry_must_not_read_are_refused,
    a_source_registration_needs_its_model,
);
