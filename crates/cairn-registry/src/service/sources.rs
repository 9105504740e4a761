//! Registering a version from a source URI (MLflow's `model-versions/create`): the
//! source resolved to the files the registry stores there, checked against the run or
//! logged model the request names, and registered through `register_version` like any
//! other version — content-addressed and verifiable.

use std::collections::BTreeMap;

use cairn_core::api::NewVersion;
use cairn_core::source::{SourceProblem, VersionSource, artifact_path};
use cairn_core::tracking::RunInfo;
use cairn_core::{FileEntry, Manifest, ModelName, Version, VersionRef};

use super::Registry;
use crate::store::{FileList, VersionOrigin};
use crate::{Error, Result};

/// A version to register from a source URI, with what MLflow records beside it.
#[derive(Debug, Clone, Default)]
pub struct SourcedVersion {
    pub source: String,
    /// The run the source belongs to (its artifacts must hold an artifact-store source).
    pub run_id: Option<String>,
    /// The logged model whose artifacts are the version's files.
    pub model_id: Option<String>,
    pub run_link: String,
    pub description: String,
    pub tags: BTreeMap<String, String>,
}

impl Registry {
    /// Registers a version of the existing `model` from the files stored at
    /// `req.source`. The version's lineage is its run's (the request's run, or the
    /// logged model's source run).
    pub async fn register_from_source(
        &self,
        actor: &str,
        model: &ModelName,
        req: &SourcedVersion,
    ) -> Result<Version> {
        self.model_exists(model).await?;
        let source = VersionSource::parse(&req.source).map_err(|p| invalid(&req.source, p))?;
        let run = match &req.run_id {
            Some(id) => Some(self.tracking.run_info(id).await?),
            None => None,
        };
        let files = self.source_files(&req.source, &source, run.as_ref(), req.model_id.as_deref());
        let files = files.await?;
        let logged_model_id = req.model_id.clone().or(match source {
            VersionSource::LoggedModel(id) => Some(id),
            _ => None,
        });
        let run_id = match (&logged_model_id, &req.run_id) {
            (_, Some(run)) => run.clone(),
            (Some(id), None) => self
                .tracking
                .get_logged_model(id)
                .await?
                .source_run_id
                .unwrap_or_default(),
            (None, None) => String::new(),
        };
        let lineage = match run_id.is_empty() {
            true => Default::default(),
            false => self.tracking.run_lineage(&run_id).await?,
        };
        let new = NewVersion {
            files: Manifest::new(files)?,
            description: req.description.clone(),
            tags: req.tags.clone(),
            metrics: Default::default(),
            params: Default::default(),
            lineage,
        };
        let origin = VersionOrigin {
            source: req.source.clone(),
            run_id,
            run_link: req.run_link.clone(),
            logged_model_id,
        };
        self.register_version(actor, model, &new, &origin).await
    }

    /// The files a source names: another version's manifest, or the artifacts stored
    /// under the source's path (a directory's files, or the one file at that path).
    async fn source_files(
        &self,
        uri: &str,
        source: &VersionSource,
        named_run: Option<&RunInfo>,
        model_id: Option<&str>,
    ) -> Result<Vec<FileEntry>> {
        let root_of = |artifact_uri: &str| {
            artifact_path(artifact_uri).ok_or_else(|| invalid(uri, SourceProblem::NotStoredHere))
        };
        // A logged model in the source wins over the request's `model_id`.
        let logged_model = match source {
            VersionSource::LoggedModel(id) => Some(id.as_str()),
            _ => model_id,
        };
        let path = match (source, logged_model) {
            (VersionSource::RegisteredVersion { model, number }, _) => {
                let version = self
                    .get_version(model, &VersionRef::Number(*number), FileList::Included)
                    .await?;
                return Ok(version.files.unwrap_or_default());
            }
            (_, Some(id)) => root_of(&self.tracking.get_logged_model(id).await?.artifact_uri)?,
            (VersionSource::RunArtifacts { run, path }, None) => {
                let artifact_uri = match named_run {
                    Some(info) if info.id == *run => info.artifact_uri.clone(),
                    Some(info) => {
                        return Err(invalid(
                            uri,
                            SourceProblem::OtherRun {
                                run_id: info.id.clone(),
                            },
                        ));
                    }
                    None => self.tracking.run_info(run).await?.artifact_uri,
                };
                let root = root_of(&artifact_uri)?;
                match path.is_empty() {
                    true => root,
                    false => format!("{root}/{path}"),
                }
            }
            (VersionSource::ArtifactStore(path), None) => {
                let run = named_run.ok_or_else(|| invalid(uri, SourceProblem::NoOwner))?;
                let root = root_of(&run.artifact_uri)?;
                if *path != root && !path.starts_with(&format!("{root}/")) {
                    return Err(invalid(uri, SourceProblem::OutsideRun));
                }
                path.clone()
            }
            (VersionSource::Elsewhere | VersionSource::LoggedModel(_), None) => {
                return Err(invalid(uri, SourceProblem::NotStoredHere));
            }
        };
        let mut files: Vec<FileEntry> = self
            .tracking
            .artifact_files(&path)
            .await?
            .into_iter()
            .map(|(path, sha256, size)| FileEntry { path, size, sha256 })
            .collect();
        if files.is_empty()
            && let Some((sha256, size)) = self.tracking.artifact_blob(&path).await?
        {
            let name = path.rsplit('/').next().unwrap_or(&path).to_owned();
            files.push(FileEntry {
                path: name,
                size,
                sha256,
            });
        }
        if files.is_empty() {
            return Err(invalid(uri, SourceProblem::NoFiles));
        }
        Ok(files)
    }
}

fn invalid(uri: &str, problem: SourceProblem) -> Error {
    Error::InvalidSource {
        uri: uri.to_owned(),
        problem,
    }
}
