//! Where a version registered through the MLflow API says its files are: the `source`
//! URI of `model-versions/create`, parsed into what the registry knows how to resolve
//! to stored files, and the artifact-store URIs (`mlflow-artifacts:/PATH`) that runs,
//! experiments and logged models record as their locations.

use std::fmt;

use crate::ModelName;

/// The scheme of a location in the registry's own artifact store.
pub const ARTIFACT_SCHEME: &str = "mlflow-artifacts:";

/// The URI of `path` in the registry's artifact store.
pub fn artifact_uri(path: &str) -> String {
    format!("{ARTIFACT_SCHEME}/{path}")
}

/// The path in the registry's artifact store that an artifact-store URI names, with
/// the URI's authority (`mlflow-artifacts://host:port/…`) and surrounding slashes
/// dropped; `None` for any other URI.
pub fn artifact_path(uri: &str) -> Option<String> {
    let rest = uri.strip_prefix(ARTIFACT_SCHEME)?;
    let rest = match rest.strip_prefix("//") {
        Some(with_host) => with_host.split_once('/').map_or("", |(_, p)| p),
        None => rest,
    };
    Some(rest.trim_matches('/').to_owned())
}

/// A version source, as far as the registry can resolve it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VersionSource {
    /// `models:/NAME/N`: the files of another registered version.
    RegisteredVersion { model: ModelName, number: u64 },
    /// `models:/m-<id>`: the artifacts of a logged model.
    LoggedModel(String),
    /// `runs:/RUN/PATH`: a path under a run's artifacts (`PATH` may be empty).
    RunArtifacts { run: String, path: String },
    /// `mlflow-artifacts:/PATH`: a path in the registry's artifact store.
    ArtifactStore(String),
    /// Anything else (a local path, a `file:` URI, another store's URI): nothing the
    /// registry holds.
    Elsewhere,
}

impl VersionSource {
    /// Parses a source. Relative references (`..`, also percent-encoded) and NUL bytes
    /// are refused whatever the scheme: a source must never name something above the
    /// place it claims.
    pub fn parse(source: &str) -> Result<Self, SourceProblem> {
        if source.contains("..")
            || source.contains('\0')
            || source.to_ascii_lowercase().contains("%2e%2e")
        {
            return Err(SourceProblem::RelativeReference);
        }
        if let Some(rest) = source.strip_prefix("models:/") {
            if let Some(id) = rest.strip_prefix("m-") {
                return Ok(Self::LoggedModel(format!("m-{}", id.trim_end_matches('/'))));
            }
            let (name, number) = rest.split_once('/').ok_or(SourceProblem::Malformed)?;
            return Ok(Self::RegisteredVersion {
                model: ModelName::new(name).map_err(|_| SourceProblem::Malformed)?,
                number: number.parse().map_err(|_| SourceProblem::Malformed)?,
            });
        }
        if let Some(rest) = source.strip_prefix("runs:/") {
            let (run, path) = rest.split_once('/').unwrap_or((rest, ""));
            return Ok(Self::RunArtifacts {
                run: run.to_owned(),
                path: path.trim_matches('/').to_owned(),
            });
        }
        Ok(artifact_path(source).map_or(Self::Elsewhere, Self::ArtifactStore))
    }
}

/// Why a source cannot be registered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceProblem {
    /// The source holds `..` or a NUL byte.
    RelativeReference,
    /// A `models:/` source that names neither a logged model nor `NAME/NUMBER`.
    Malformed,
    /// Not a location the registry stores files at.
    NotStoredHere,
    /// A `runs:/` source of another run than the request's `run_id`.
    OtherRun { run_id: String },
    /// An artifact-store path without a `run_id` that owns it.
    NoOwner,
    /// An artifact-store path outside the artifacts of the request's `run_id`.
    OutsideRun,
    /// The location holds no artifacts.
    NoFiles,
}

impl fmt::Display for SourceProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::RelativeReference => "it holds a relative reference ('..') or a NUL byte",
            Self::Malformed => "a models:/ source is models:/NAME/NUMBER or models:/m-<id>",
            Self::NotStoredHere => {
                "the registry registers versions from files it stores: a models:/, runs:/ or mlflow-artifacts:/ source"
            }
            Self::OtherRun { .. } => "the run_id must name the run of the source",
            Self::NoOwner => "an artifact path needs the run_id of the run that holds it",
            Self::OutsideRun => "the path is not under the artifacts of the run_id's run",
            Self::NoFiles => "no artifacts are stored there",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_parse_to_what_they_name() {
        let parse = |s| VersionSource::parse(s);
        assert_eq!(
            parse("models:/m-abc/"),
            Ok(VersionSource::LoggedModel("m-abc".into()))
        );
        assert_eq!(
            parse("models:/fraud/3"),
            Ok(VersionSource::RegisteredVersion {
                model: ModelName::new("fraud").unwrap(),
                number: 3
            })
        );
        assert_eq!(parse("models:/fraud"), Err(SourceProblem::Malformed));
        assert_eq!(parse("models:/fraud/x"), Err(SourceProblem::Malformed));
        assert_eq!(
            parse("runs:/r1/model/"),
            Ok(VersionSource::RunArtifacts {
                run: "r1".into(),
                path: "model".into()
            })
        );
        assert_eq!(
            parse("runs:/r1"),
            Ok(VersionSource::RunArtifacts {
                run: "r1".into(),
                path: String::new()
            })
        );
        assert_eq!(
            parse("mlflow-artifacts://host:5000/1/r/artifacts/m"),
            Ok(VersionSource::ArtifactStore("1/r/artifacts/m".into()))
        );
        assert_eq!(parse("s3://bucket/model"), Ok(VersionSource::Elsewhere));
        for hostile in [
            "mlflow-artifacts:/1/../../etc",
            "runs:/r/%2E%2E/x",
            "/tmp/m\0",
        ] {
            assert_eq!(parse(hostile), Err(SourceProblem::RelativeReference));
        }
    }

    #[test]
    fn artifact_uris_round_trip() {
        assert_eq!(
            artifact_path(&artifact_uri("7/r/artifacts")).unwrap(),
            "7/r/artifacts"
        );
        assert_eq!(artifact_path("mlflow-artifacts://h:1"), Some(String::new()));
        assert_eq!(artifact_path("s3://b/k"), None);
    }
}
