//! Where a version registered through the MLflow API says its files are: the `source`
//! URI of `model-versions/create`, parsed into what the registry knows how to resolve
//! to stored files, and the artifact-store URIs (`mlflow-artifacts:/PATH`) that runs,
//! experiments and logged models record as their locations.

use std::fmt;

use crate::{AliasName, ModelName, VersionRef};

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
    /// `models:/NAME/REF` or `models:/NAME@ALIAS`: another registered version.
    RegisteredVersion {
        model: ModelName,
        reference: VersionRef,
    },
    /// `models:/m-<id>`: the artifacts of a logged model.
    LoggedModel(String),
    /// `runs:/RUN/PATH`: a path under a run's artifacts (`PATH` may be empty).
    RunArtifacts { run: String, path: String },
    /// `mlflow-artifacts:/PATH`: a path in the registry's artifact store.
    ArtifactStore(String),
    /// Another store's location (`s3://…`, `gs://…`): recorded, never read.
    Elsewhere,
}

/// Schemes whose URIs name a host to connect to: a source must not make the registry
/// connect where a client says (`mlflow-artifacts:` only with an authority).
const HOST_ADDRESSED: [&str; 10] = [
    "ftp",
    "sftp",
    "hdfs",
    "viewfs",
    "http",
    "https",
    "mlflow-artifacts",
    "r2",
    "b2",
    "abfss",
];

/// A URI split as `scheme:[//authority]path[?query][#fragment]`, without touching
/// its path (no dot-segment resolution: `..` must stay visible to be refused).
struct Uri<'a> {
    scheme: String,
    authority: &'a str,
    path: &'a str,
}

impl<'a> Uri<'a> {
    fn split(uri: &'a str) -> Self {
        let (scheme, rest) = match uri.split_once(':') {
            Some((scheme, rest))
                if scheme.len() > 1
                    && scheme.starts_with(|c: char| c.is_ascii_alphabetic())
                    && scheme
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')) =>
            {
                (scheme.to_ascii_lowercase(), rest)
            }
            _ => (String::new(), uri),
        };
        let (authority, path) = match rest.strip_prefix("//") {
            Some(after) => after.split_at(after.find('/').unwrap_or(after.len())),
            None => ("", rest),
        };
        let path = path.split(['?', '#']).next().unwrap_or_default();
        Self {
            scheme,
            authority,
            path,
        }
    }
}

/// `value` percent-decoded (and `+` read as a space) until nothing changes, so that an
/// encoded `..` is seen as one.
fn fully_decoded(value: &str) -> String {
    let mut current = value.to_owned();
    loop {
        let plus_as_space = current.replace('+', " ");
        let next = percent_encoding::percent_decode_str(&plus_as_space)
            .decode_utf8_lossy()
            .into_owned();
        if next == current {
            return current;
        }
        current = next;
    }
}

/// Whether the source's path, decoded, is an absolute path with nothing to resolve:
/// no `.` or `..` segment, no NUL, not empty.
fn names_itself(source: &str) -> bool {
    let decoded = fully_decoded(source);
    if decoded.split('/').any(|part| part == "..") || decoded.contains('\0') {
        return false;
    }
    let path = Uri::split(&decoded).path.trim_end_matches('/').to_owned();
    path.starts_with('/') && !path.split('/').any(|part| part == "." || part == "..")
}

impl VersionSource {
    /// Parses a source and refuses, in `mlflow server`'s order, what no registry should
    /// read: a URI that names a host, a path on the server's own disk (a bare path or
    /// `file:`), a path with relative references (also percent-encoded), and a
    /// `models:` URI of another registry.
    /// `owner` is the request field that names where the source must be (`model_id`
    /// when the request names a logged model, else `run_id`).
    pub fn parse(source: &str, owner: SourceOwner) -> Result<Self, SourceProblem> {
        let uri = Uri::split(source);
        if HOST_ADDRESSED.contains(&uri.scheme.as_str())
            && (uri.scheme != "mlflow-artifacts" || !uri.authority.is_empty())
        {
            return Err(SourceProblem::HostAddressed { scheme: uri.scheme });
        }
        if uri.scheme.is_empty() || uri.scheme == "file" {
            return Err(SourceProblem::LocalPath(owner));
        }
        if !names_itself(source) {
            return Err(SourceProblem::RelativeReference);
        }
        let path = uri.path.trim_matches('/');
        match uri.scheme.as_str() {
            "models" if !uri.authority.is_empty() => Err(SourceProblem::OtherRegistry),
            "models" => match path.strip_prefix("m-") {
                Some(id) => Ok(Self::LoggedModel(format!("m-{id}"))),
                None => registered_version(path).ok_or(SourceProblem::Malformed),
            },
            "runs" if !uri.authority.is_empty() => Err(SourceProblem::OwnerMismatch(owner)),
            "runs" => {
                let (run, path) = path.split_once('/').unwrap_or((path, ""));
                Ok(Self::RunArtifacts {
                    run: run.to_owned(),
                    path: path.trim_matches('/').to_owned(),
                })
            }
            "mlflow-artifacts" => Ok(Self::ArtifactStore(path.to_owned())),
            _ => Ok(Self::Elsewhere),
        }
    }
}

/// `NAME/N`, `NAME/latest` or `NAME@ALIAS`.
fn registered_version(path: &str) -> Option<VersionSource> {
    let (name, reference) = match path.split_once('/') {
        Some((name, reference)) => (name, reference.parse().ok()?),
        None => {
            let (name, alias) = path.rsplit_once('@')?;
            (name, VersionRef::Alias(AliasName::new(alias).ok()?))
        }
    };
    Some(VersionSource::RegisteredVersion {
        model: ModelName::new(name).ok()?,
        reference,
    })
}

/// Which request field names the run or logged model a source must belong to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceOwner {
    RunId,
    ModelId,
}

impl SourceOwner {
    pub fn field(self) -> &'static str {
        match self {
            Self::RunId => "run_id",
            Self::ModelId => "model_id",
        }
    }
}

/// Why a source cannot be registered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceProblem {
    /// A URI naming a host (`http://…`, `mlflow-artifacts://host/…`): the registry
    /// would connect where the client says.
    HostAddressed { scheme: String },
    /// A path on the server's disk (a bare path, `file:`): never read.
    LocalPath(SourceOwner),
    /// A path with `..`, `.` or NUL (also percent-encoded), or not absolute.
    RelativeReference,
    /// A `models:` URI with an authority: another registry's.
    OtherRegistry,
    /// A `models:/` URI naming neither a logged model nor `NAME/REF` / `NAME@ALIAS`.
    Malformed,
    /// The source is not in the run or logged model the request's field names.
    OwnerMismatch(SourceOwner),
    /// The request's run or logged model is not the registered version's it names.
    VersionOwnerMismatch,
}

impl fmt::Display for SourceProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::HostAddressed { scheme } => write!(
                f,
                "a {scheme}: URI names a host, and the registry does not connect where a request says"
            ),
            Self::LocalPath(_) => f.write_str("the registry never reads a path on its own disk"),
            Self::RelativeReference => f.write_str(
                "it must be an absolute path without relative references ('.', '..') or NUL bytes",
            ),
            Self::OtherRegistry => f.write_str("a models: source must name this registry"),
            Self::Malformed => f.write_str(
                "a models:/ source is models:/NAME/REF, models:/NAME@ALIAS or models:/m-<id>",
            ),
            Self::OwnerMismatch(owner) => {
                write!(f, "it is not in what the request's {} names", owner.field())
            }
            Self::VersionOwnerMismatch => f.write_str(
                "the request's run_id and model_id must be those of the version it names",
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(source: &str) -> Result<VersionSource, SourceProblem> {
        VersionSource::parse(source, SourceOwner::RunId)
    }

    #[test]
    fn sources_parse_to_what_they_name() {
        assert_eq!(
            parse("models:/m-abc/"),
            Ok(VersionSource::LoggedModel("m-abc".into()))
        );
        assert_eq!(
            parse("models:/Fraud Model/3"),
            Ok(VersionSource::RegisteredVersion {
                model: ModelName::new("Fraud Model").unwrap(),
                reference: VersionRef::Number(3),
            })
        );
        assert_eq!(
            parse("models:/fraud@champion"),
            Ok(VersionSource::RegisteredVersion {
                model: ModelName::new("fraud").unwrap(),
                reference: VersionRef::Alias(AliasName::new("champion").unwrap()),
            })
        );
        assert_eq!(parse("models:/fraud"), Err(SourceProblem::Malformed));
        assert_eq!(parse("models:/fraud/x.y"), Err(SourceProblem::Malformed));
        assert_eq!(
            parse("models://other/fraud/1"),
            Err(SourceProblem::OtherRegistry)
        );
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
            parse("mlflow-artifacts:/1/r/artifacts/m"),
            Ok(VersionSource::ArtifactStore("1/r/artifacts/m".into()))
        );
        assert_eq!(parse("s3://bucket/model"), Ok(VersionSource::Elsewhere));
        assert_eq!(parse("gs://bucket/a/b"), Ok(VersionSource::Elsewhere));
    }

    #[test]
    fn sources_the_registry_must_not_read_are_refused() {
        for host in [
            "http://evil/x",
            "https://h/api/2.0/mlflow-artifacts/artifacts/x",
            "mlflow-artifacts://h:5000/1/x",
            "ftp://h/x",
        ] {
            assert!(
                matches!(parse(host), Err(SourceProblem::HostAddressed { .. })),
                "{host}"
            );
        }
        for local in ["/etc/passwd", "model", "file:///etc/passwd", "file:/tmp/m"] {
            assert_eq!(
                parse(local),
                Err(SourceProblem::LocalPath(SourceOwner::RunId)),
                "{local}"
            );
        }
        for hostile in [
            "mlflow-artifacts:/1/../../etc",
            "runs:/r/%2E%2E/x",
            "runs:/r/%252e%252e/x",
            "s3://b/./x",
            "s3://bucket",
            "s3://b/m%00",
        ] {
            assert_eq!(
                parse(hostile),
                Err(SourceProblem::RelativeReference),
                "{hostile}"
            );
        }
        assert_eq!(
            VersionSource::parse("runs://host/r/m", SourceOwner::ModelId),
            Err(SourceProblem::OwnerMismatch(SourceOwner::ModelId))
        );
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
