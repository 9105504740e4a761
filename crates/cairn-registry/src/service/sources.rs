//! Registering a version from a source URI (MLflow's `model-versions/create`). The
//! source is checked as `mlflow server` checks it — no host named by the client, no path
//! on the server's disk, no relative references, and it must lie in the run or logged
//! model the request names — then resolved: a source whose files the registry stores
//! becomes a content-addressed version like any `cairn push`; any other (an `s3://…`
//! location, a run with nothing logged there) is recorded as an **external** version,
//! without files or digest, never presented as verified.

use std::collections::BTreeMap;

use cairn_core::access::Actor;
use cairn_core::api::NewVersion;
use cairn_core::source::{SourceOwner, SourceProblem, VersionSource, artifact_path};
use cairn_core::{FileEntry, Manifest, ModelName, Version};

use super::{Registration, Registry};
use crate::store::{FileList, VersionExtras, VersionOrigin};
use crate::{Error, Result};

/// A version to register from a source URI, with what MLflow records beside it.
#[derive(Debug, Clone, Default)]
pub struct SourcedVersion {
    pub source: String,
    /// The request's run; `Some("")` when the field was sent empty (MLflow tells a field
    /// sent from one left out).
    pub run_id: Option<String>,
    /// The request's logged model, likewise.
    pub model_id: Option<String>,
    pub run_link: String,
    pub description: String,
    pub tags: BTreeMap<String, String>,
}

/// What a source resolves to.
enum Content {
    Files(Vec<FileEntry>),
    External,
}

impl Registry {
    /// Registers a version of the existing `model` from `req.source`: content-addressed
    /// when the registry stores the files there, external otherwise. Its lineage is its
    /// run's (the request's run, the logged model's source run, or the registered
    /// version's it names).
    pub async fn register_from_source(
        &self,
        actor: &Actor,
        model: &ModelName,
        req: &SourcedVersion,
    ) -> Result<(Version, VersionExtras)> {
        let mut run_id = req.run_id.clone().unwrap_or_default();
        let mut model_id = req.model_id.clone().unwrap_or_default();
        let owner = match model_id.is_empty() {
            true => SourceOwner::RunId,
            false => SourceOwner::ModelId,
        };
        let source = VersionSource::parse(&req.source, owner).map_err(|p| invalid(req, p))?;
        let mut uri = req.source.clone();
        let content = match &source {
            VersionSource::RegisteredVersion {
                model: other,
                reference,
            } => {
                let (version, extras) = self.get_version_with_origin(other, reference).await?;
                let (theirs_run, theirs_model) = (
                    extras.origin.run_id,
                    extras.origin.logged_model_id.unwrap_or_default(),
                );
                if (req.run_id.is_some() && run_id != theirs_run)
                    || (req.model_id.is_some() && model_id != theirs_model)
                {
                    return Err(invalid(req, SourceProblem::VersionOwnerMismatch));
                }
                (run_id, model_id) = (theirs_run, theirs_model);
                uri = format!("models:/{other}/{}", version.version);
                match version.digest {
                    Some(_) => {
                        let files = self
                            .get_version(other, reference, FileList::Included)
                            .await?
                            .files;
                        Content::Files(files.unwrap_or_default())
                    }
                    None => Content::External,
                }
            }
            _ => {
                self.check_owner(req, &source, owner, &run_id, &model_id)
                    .await?;
                self.stored_content(&source).await?
            }
        };
        if let VersionSource::LoggedModel(id) = &source {
            model_id = id.clone();
        }
        if run_id.is_empty()
            && !model_id.is_empty()
            && let Some(logged) = found(self.tracking.get_logged_model(&model_id).await)?
        {
            run_id = logged.source_run_id.unwrap_or_default();
        }
        let lineage = match run_id.is_empty() {
            true => None,
            false => found(self.tracking.run_lineage(&run_id).await)?,
        };
        let origin = VersionOrigin {
            source: uri,
            run_id,
            run_link: req.run_link.clone(),
            logged_model_id: Some(model_id).filter(|id| !id.is_empty()),
        };
        let (files, external) = match content {
            Content::Files(files) => (Manifest::new(files)?, false),
            Content::External => (Manifest::external(), true),
        };
        let new = NewVersion {
            files,
            description: req.description.clone(),
            tags: req.tags.clone(),
            metrics: Default::default(),
            params: Default::default(),
            lineage: lineage.unwrap_or_default(),
        };
        self.register(
            actor,
            model,
            &new,
            &origin,
            Registration::Mlflow { external },
        )
        .await
    }

    /// Fails unless the source lies in the run (`run_id`) or logged model (`model_id`)
    /// the request names, as `mlflow server` requires; sources elsewhere need no owner.
    async fn check_owner(
        &self,
        req: &SourcedVersion,
        source: &VersionSource,
        owner: SourceOwner,
        run_id: &str,
        model_id: &str,
    ) -> Result<()> {
        let mismatch = |field| Err(invalid(req, SourceProblem::OwnerMismatch(field)));
        let root = match (source, owner) {
            (VersionSource::RunArtifacts { run, .. }, SourceOwner::RunId) => {
                return match !run_id.is_empty() && run == run_id {
                    true => Ok(()),
                    false => mismatch(SourceOwner::RunId),
                };
            }
            (VersionSource::LoggedModel(id), SourceOwner::ModelId) if id == model_id => {
                return Ok(());
            }
            (VersionSource::RunArtifacts { .. } | VersionSource::LoggedModel(_), _) => {
                return mismatch(SourceOwner::ModelId);
            }
            (VersionSource::ArtifactStore(_), SourceOwner::RunId) if run_id.is_empty() => {
                return mismatch(SourceOwner::RunId);
            }
            (VersionSource::ArtifactStore(_), SourceOwner::RunId) => {
                found(self.tracking.run_info(run_id).await)?.map(|run| run.artifact_uri)
            }
            (VersionSource::ArtifactStore(_), SourceOwner::ModelId) => {
                found(self.tracking.get_logged_model(model_id).await)?.map(|m| m.artifact_uri)
            }
            (VersionSource::Elsewhere | VersionSource::RegisteredVersion { .. }, _) => {
                return Ok(());
            }
        };
        let VersionSource::ArtifactStore(path) = source else {
            unreachable!("only artifact-store sources are checked against a root")
        };
        match root.as_deref().and_then(artifact_path) {
            Some(root) if is_within(path, &root) => Ok(()),
            _ => mismatch(owner),
        }
    }

    /// The files the registry stores where `source` points: a directory's files, or the
    /// one file at that path; `External` when it stores none there (or the run or
    /// logged model named does not exist).
    async fn stored_content(&self, source: &VersionSource) -> Result<Content> {
        let location = match source {
            VersionSource::RunArtifacts { run, path } => found(self.tracking.run_info(run).await)?
                .and_then(|run| artifact_path(&run.artifact_uri))
                .map(|root| match path.is_empty() {
                    true => root,
                    false => format!("{root}/{path}"),
                }),
            VersionSource::LoggedModel(id) => found(self.tracking.get_logged_model(id).await)?
                .and_then(|m| artifact_path(&m.artifact_uri)),
            VersionSource::ArtifactStore(path) => Some(path.clone()),
            VersionSource::Elsewhere | VersionSource::RegisteredVersion { .. } => None,
        };
        let Some(location) = location else {
            return Ok(Content::External);
        };
        let mut files: Vec<FileEntry> = self
            .tracking
            .artifact_files(&location)
            .await?
            .into_iter()
            .map(|(path, sha256, size)| FileEntry { path, size, sha256 })
            .collect();
        if files.is_empty()
            && let Some((sha256, size)) = self.tracking.artifact_blob(&location).await?
        {
            let name = location.rsplit('/').next().unwrap_or(&location).to_owned();
            files.push(FileEntry {
                path: name,
                size,
                sha256,
            });
        }
        Ok(match files.is_empty() {
            true => Content::External,
            false => Content::Files(files),
        })
    }
}

/// Whether artifact path `path` is `root` or under it, segment by segment.
fn is_within(path: &str, root: &str) -> bool {
    let parts = |p: &str| {
        p.split('/')
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    parts(path).starts_with(&parts(root))
}

/// `Ok(None)` for what does not exist, the error for any other failure.
fn found<T>(result: Result<T>) -> Result<Option<T>> {
    match result {
        Ok(value) => Ok(Some(value)),
        Err(Error::NotFound(_)) => Ok(None),
        Err(e) => Err(e),
    }
}

fn invalid(req: &SourcedVersion, problem: SourceProblem) -> Error {
    Error::InvalidSource {
        uri: req.source.clone(),
        problem,
    }
}
