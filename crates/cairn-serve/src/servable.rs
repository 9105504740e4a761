//! Which file of a version is the model to serve, and its MLflow signature if it has one.
//!
//! A version is servable when it holds exactly one `.onnx` file, or an MLflow model
//! directory (an `MLmodel` file) whose flavors include `onnx`. Anything else is refused
//! with a message naming what the version holds.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::signature::Signature;

/// The model file of a version, found among its files.
#[derive(Debug, Clone, PartialEq)]
pub struct Servable {
    /// The ONNX file, relative to the version's directory.
    pub onnx: String,
    /// The MLflow signature, when the version is an MLflow model that has one.
    pub signature: Option<Signature>,
}

#[derive(Debug, thiserror::Error, PartialEq)]
#[error("{0}")]
pub struct NotServable(pub String);

#[derive(Deserialize)]
struct MlModel {
    #[serde(default)]
    flavors: std::collections::BTreeMap<String, serde_json::Value>,
    signature: Option<SignatureText>,
}

/// MLflow writes a signature's parts as JSON text inside the YAML.
#[derive(Deserialize)]
struct SignatureText {
    inputs: Option<String>,
}

/// Finds the model among `files` (paths relative to `dir`, where the version's files
/// are): an `MLmodel` at the shallowest depth wins over bare `.onnx` files.
pub fn find(dir: &Path, files: &[String]) -> Result<Servable, NotServable> {
    let depth = |p: &str| p.matches('/').count();
    let mlmodels: Vec<&String> = files
        .iter()
        .filter(|p| p.rsplit('/').next() == Some("MLmodel"))
        .collect();
    if let Some(shallowest) = mlmodels.iter().map(|p| depth(p)).min() {
        let top: Vec<&&String> = mlmodels.iter().filter(|p| depth(p) == shallowest).collect();
        if top.len() > 1 {
            return Err(NotServable(format!(
                "it holds {} MLflow models side by side ({}); push one model per version",
                top.len(),
                list(top.iter().map(|p| p.as_str()))
            )));
        }
        return from_mlmodel(dir, top[0], files);
    }
    let onnx: Vec<&String> = files.iter().filter(|p| p.ends_with(".onnx")).collect();
    match onnx.as_slice() {
        [one] => Ok(Servable {
            onnx: (*one).clone(),
            signature: None,
        }),
        [] => Err(NotServable(format!(
            "it holds no .onnx file and no MLflow model: {} file(s) ({}); cairn serve runs ONNX models (for other MLflow flavors use `mlflow models serve` against this registry)",
            files.len(),
            list(files.iter().map(String::as_str))
        ))),
        many => Err(NotServable(format!(
            "it holds {} .onnx files ({}) and no MLmodel saying which one to serve",
            many.len(),
            list(many.iter().map(|p| p.as_str()))
        ))),
    }
}

fn from_mlmodel(dir: &Path, mlmodel: &str, files: &[String]) -> Result<Servable, NotServable> {
    let text = std::fs::read_to_string(dir.join(mlmodel))
        .map_err(|e| NotServable(format!("its {mlmodel} cannot be read: {e}")))?;
    let parsed: MlModel = serde_saphyr::from_str(&text)
        .map_err(|e| NotServable(format!("its {mlmodel} is not a valid MLmodel file: {e}")))?;
    let Some(onnx) = parsed.flavors.get("onnx") else {
        let flavors: Vec<&str> = parsed.flavors.keys().map(String::as_str).collect();
        return Err(NotServable(format!(
            "its {mlmodel} has no onnx flavor (flavors: {}); cairn serve runs ONNX models (for other flavors use `mlflow models serve` against this registry)",
            if flavors.is_empty() {
                "none".to_owned()
            } else {
                flavors.join(", ")
            }
        )));
    };
    let data = onnx.get("data").and_then(|d| d.as_str()).ok_or_else(|| {
        NotServable(format!(
            "the onnx flavor of its {mlmodel} names no data file"
        ))
    })?;
    let base = mlmodel.rsplit_once('/').map_or("", |(parent, _)| parent);
    let onnx_path = normalize(base, data).ok_or_else(|| {
        NotServable(format!(
            "its {mlmodel} names a model file outside the version: {data:?}"
        ))
    })?;
    if !files.contains(&onnx_path) {
        return Err(NotServable(format!(
            "its {mlmodel} names {onnx_path}, which the version does not hold"
        )));
    }
    let signature = match parsed.signature.and_then(|s| s.inputs) {
        Some(inputs) => Some(Signature::parse(&inputs).map_err(|e| {
            NotServable(format!("the signature in its {mlmodel} is not valid: {e}"))
        })?),
        None => None,
    };
    Ok(Servable {
        onnx: onnx_path,
        signature,
    })
}

/// `data` joined to `base` as a path inside the version, or None when it would leave it.
fn normalize(base: &str, data: &str) -> Option<String> {
    if data.starts_with('/') {
        return None;
    }
    let mut parts: Vec<&str> = base.split('/').filter(|p| !p.is_empty()).collect();
    for part in data.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            p => parts.push(p),
        }
    }
    let joined = parts.join("/");
    (!joined.is_empty()).then_some(joined)
}

/// Up to five names, then how many more.
fn list<'a>(names: impl Iterator<Item = &'a str>) -> String {
    let names: Vec<&str> = names.collect();
    if names.is_empty() {
        return "none".into();
    }
    let shown = names.iter().take(5).copied().collect::<Vec<_>>().join(", ");
    match names.len() {
        n if n > 5 => format!("{shown} and {} more", n - 5),
        _ => shown,
    }
}

/// Where the ONNX file of `servable` is on disk.
pub fn onnx_path(dir: &Path, servable: &Servable) -> PathBuf {
    dir.join(&servable.onnx)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn one_onnx_file_is_served_and_two_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let found = find(dir.path(), &files(&["model.onnx", "README.md"])).unwrap();
        assert_eq!(found.onnx, "model.onnx");
        let err = find(dir.path(), &files(&["a.onnx", "b/c.onnx"])).unwrap_err();
        assert!(err.0.contains("2 .onnx files (a.onnx, b/c.onnx)"), "{err}");
        let err = find(dir.path(), &files(&["model.pkl", "conda.yaml"])).unwrap_err();
        assert!(err.0.contains("model.pkl, conda.yaml"), "{err}");
    }

    #[test]
    fn an_mlmodel_names_its_onnx_file_and_signature() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("m")).unwrap();
        std::fs::write(
            dir.path().join("m/MLmodel"),
            "flavors:\n  onnx:\n    data: model.onnx\n    onnx_version: 1.23.2\n  python_function:\n    loader_module: mlflow.onnx\nsignature:\n  inputs: '[{\"type\": \"double\", \"name\": \"a\", \"required\": true}]'\n  outputs: null\n",
        )
        .unwrap();
        let found = find(
            dir.path(),
            &files(&["m/MLmodel", "m/model.onnx", "m/other.onnx"]),
        )
        .unwrap();
        assert_eq!(found.onnx, "m/model.onnx");
        assert!(found.signature.is_some());
    }

    #[test]
    fn an_mlmodel_without_the_onnx_flavor_is_refused_by_its_flavors() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("MLmodel"),
            "flavors:\n  sklearn:\n    pickled_model: model.pkl\n  python_function:\n    loader_module: mlflow.sklearn\n",
        )
        .unwrap();
        let err = find(dir.path(), &files(&["MLmodel", "model.pkl"])).unwrap_err();
        assert!(
            err.0
                .contains("no onnx flavor (flavors: python_function, sklearn)"),
            "{err}"
        );
    }

    #[test]
    fn an_mlmodel_cannot_name_a_file_outside_the_version() {
        assert_eq!(normalize("m", "../../etc/passwd"), None);
        assert_eq!(normalize("m", "/etc/passwd"), None);
        assert_eq!(
            normalize("m", "./x/../model.onnx").as_deref(),
            Some("m/model.onnx")
        );
    }
}
