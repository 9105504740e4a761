//! What differs between two versions (of one model or of two): metrics with absolute
//! and relative deltas; params and tags added, removed, changed; files added, removed,
//! changed (by digest) or renamed (the same digest under another path), the unchanged
//! ones counted; lineage — run, code, data, parents, environment files, with a unified
//! diff of small text files. The shape is documented in docs/DIFF.md; `cairn diff`,
//! `GET /api/v1/diff` and the web UI all show this one value.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::Sha256Digest;
use crate::lineage::{CodeRef, DataRef, EnvFile, LineageInput, ParentRef};
use crate::manifest::FileEntry;
use crate::model::Version;

/// Environment files at most this large, in UTF-8, get a unified diff of their text.
pub const TEXT_DIFF_MAX: u64 = 64 * 1024;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct VersionDiff {
    pub a: Side,
    pub b: Side,
    /// Whether anything below differs.
    pub differ: bool,
    /// Metrics that differ (present on one side only, or with other values).
    pub metrics: Vec<MetricChange>,
    pub params: KeyChanges,
    pub tags: KeyChanges,
    pub files: FileChanges,
    pub lineage: LineageChanges,
}

/// One side of a comparison.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Side {
    pub model: String,
    pub version: u64,
    pub digest: Option<Sha256Digest>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct MetricChange {
    pub key: String,
    pub a: Option<f64>,
    pub b: Option<f64>,
    /// `b - a`, when both exist.
    pub delta: Option<f64>,
    /// `(b - a) / |a|`, when both exist and `a` is not 0.
    pub relative: Option<f64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct KeyChanges {
    /// Only in B.
    pub added: BTreeMap<String, String>,
    /// Only in A.
    pub removed: BTreeMap<String, String>,
    /// In both, with other values.
    pub changed: Vec<ValueChange>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ValueChange {
    pub key: String,
    pub a: String,
    pub b: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct FileChanges {
    pub added: Vec<FileEntry>,
    pub removed: Vec<FileEntry>,
    /// The same path with other bytes.
    pub changed: Vec<FileChange>,
    /// The same bytes under another path.
    pub renamed: Vec<Rename>,
    /// Files with the same path and bytes on both sides.
    pub unchanged: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct FileChange {
    pub path: String,
    pub a: Sha256Digest,
    pub b: Sha256Digest,
    pub a_size: u64,
    pub b_size: u64,
    /// `b_size - a_size`.
    pub size_delta: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Rename {
    pub from: String,
    pub to: String,
    pub sha256: Sha256Digest,
    pub size: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct LineageChanges {
    /// The producing run, when it differs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<Change<Option<String>>>,
    /// The code, when it differs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<Change<Option<CodeRef>>>,
    /// Datasets by path: added, removed, or with another digest.
    pub data: DataChanges,
    /// Parents only in A, only in B.
    pub parents_removed: Vec<ParentRef>,
    pub parents_added: Vec<ParentRef>,
    /// Environment files by path.
    pub environment: EnvironmentChanges,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Change<T> {
    pub a: T,
    pub b: T,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DataChanges {
    pub added: Vec<DataRef>,
    pub removed: Vec<DataRef>,
    pub changed: Vec<DataChange>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DataChange {
    pub path: String,
    pub a: String,
    pub b: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct EnvironmentChanges {
    pub added: Vec<EnvFile>,
    pub removed: Vec<EnvFile>,
    pub changed: Vec<EnvChange>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct EnvChange {
    pub path: String,
    pub a: Sha256Digest,
    pub b: Sha256Digest,
    /// A unified diff of the text, for UTF-8 files of at most [`TEXT_DIFF_MAX`] bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unified: Option<String>,
}

/// What `compare` needs of one side.
pub struct Compared<'a> {
    /// With its manifest (`files`).
    pub version: &'a Version,
    pub lineage: &'a LineageInput,
}

/// Compares A and B. `text` answers the content of a small environment file by digest
/// (`None`: not available, or not text).
pub fn compare(
    a: Compared<'_>,
    b: Compared<'_>,
    text: &dyn Fn(&Sha256Digest) -> Option<String>,
) -> VersionDiff {
    let side = |v: &Version| Side {
        model: v.model.clone(),
        version: v.version,
        digest: v.digest,
    };
    let metrics = metric_changes(&a.version.metrics, &b.version.metrics);
    let params = key_changes(&a.version.params, &b.version.params);
    let tags = key_changes(&a.version.tags, &b.version.tags);
    let none = Vec::new();
    let files = file_changes(
        a.version.files.as_ref().unwrap_or(&none),
        b.version.files.as_ref().unwrap_or(&none),
    );
    let lineage = lineage_changes(a.lineage, b.lineage, text);
    let differ = !metrics.is_empty()
        || !params.is_empty()
        || !tags.is_empty()
        || !files.is_empty()
        || !lineage.is_empty();
    VersionDiff {
        a: side(a.version),
        b: side(b.version),
        differ,
        metrics,
        params,
        tags,
        files,
        lineage,
    }
}

fn metric_changes(a: &BTreeMap<String, f64>, b: &BTreeMap<String, f64>) -> Vec<MetricChange> {
    let keys: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    keys.into_iter()
        .filter_map(|key| {
            let (x, y) = (a.get(key).copied(), b.get(key).copied());
            if x.map(f64::to_bits) == y.map(f64::to_bits) {
                return None;
            }
            let delta = x.zip(y).map(|(x, y)| y - x);
            let relative = x
                .zip(delta)
                .filter(|(x, _)| *x != 0.0)
                .map(|(x, d)| d / x.abs());
            Some(MetricChange {
                key: key.clone(),
                a: x,
                b: y,
                delta,
                relative,
            })
        })
        .collect()
}

fn key_changes(a: &BTreeMap<String, String>, b: &BTreeMap<String, String>) -> KeyChanges {
    let mut out = KeyChanges::default();
    for (key, value) in a {
        match b.get(key) {
            None => {
                out.removed.insert(key.clone(), value.clone());
            }
            Some(other) if other != value => out.changed.push(ValueChange {
                key: key.clone(),
                a: value.clone(),
                b: other.clone(),
            }),
            Some(_) => {}
        }
    }
    for (key, value) in b {
        if !a.contains_key(key) {
            out.added.insert(key.clone(), value.clone());
        }
    }
    out
}

impl KeyChanges {
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.changed.is_empty()
    }
}

/// Files by path; a file only in A and one only in B with the same digest are a rename
/// (each digest pairs once, in path order).
fn file_changes(a: &[FileEntry], b: &[FileEntry]) -> FileChanges {
    let in_a: BTreeMap<&str, &FileEntry> = a.iter().map(|f| (f.path.as_str(), f)).collect();
    let in_b: BTreeMap<&str, &FileEntry> = b.iter().map(|f| (f.path.as_str(), f)).collect();
    let mut out = FileChanges::default();
    let mut only_a = Vec::new();
    for (path, fa) in &in_a {
        match in_b.get(path) {
            Some(fb) if fb.sha256 == fa.sha256 => out.unchanged += 1,
            Some(fb) => out.changed.push(FileChange {
                path: path.to_string(),
                a: fa.sha256,
                b: fb.sha256,
                a_size: fa.size,
                b_size: fb.size,
                size_delta: fb.size as i64 - fa.size as i64,
            }),
            None => only_a.push(*fa),
        }
    }
    let mut only_b: Vec<&FileEntry> = in_b
        .iter()
        .filter(|(path, _)| !in_a.contains_key(*path))
        .map(|(_, f)| *f)
        .collect();
    for fa in only_a {
        match only_b.iter().position(|fb| fb.sha256 == fa.sha256) {
            Some(i) => {
                let fb = only_b.remove(i);
                out.renamed.push(Rename {
                    from: fa.path.clone(),
                    to: fb.path.clone(),
                    sha256: fa.sha256,
                    size: fa.size,
                });
            }
            None => out.removed.push(fa.clone()),
        }
    }
    out.added = only_b.into_iter().cloned().collect();
    out
}

impl FileChanges {
    pub fn is_empty(&self) -> bool {
        self.added.is_empty()
            && self.removed.is_empty()
            && self.changed.is_empty()
            && self.renamed.is_empty()
    }
}

fn lineage_changes(
    a: &LineageInput,
    b: &LineageInput,
    text: &dyn Fn(&Sha256Digest) -> Option<String>,
) -> LineageChanges {
    let mut out = LineageChanges::default();
    if a.run_id != b.run_id {
        out.run_id = Some(Change {
            a: a.run_id.clone(),
            b: b.run_id.clone(),
        });
    }
    if a.code != b.code {
        out.code = Some(Change {
            a: a.code.clone(),
            b: b.code.clone(),
        });
    }
    let data_a: BTreeMap<&str, &DataRef> = a.data.iter().map(|d| (d.path.as_str(), d)).collect();
    let data_b: BTreeMap<&str, &DataRef> = b.data.iter().map(|d| (d.path.as_str(), d)).collect();
    for (path, da) in &data_a {
        match data_b.get(path) {
            None => out.data.removed.push((*da).clone()),
            Some(db) if db.digest != da.digest => out.data.changed.push(DataChange {
                path: path.to_string(),
                a: da.digest.clone(),
                b: db.digest.clone(),
            }),
            Some(_) => {}
        }
    }
    for (path, db) in &data_b {
        if !data_a.contains_key(path) {
            out.data.added.push((*db).clone());
        }
    }
    out.parents_removed = a
        .parents
        .iter()
        .filter(|p| !b.parents.contains(p))
        .cloned()
        .collect();
    out.parents_added = b
        .parents
        .iter()
        .filter(|p| !a.parents.contains(p))
        .cloned()
        .collect();
    let env_a: BTreeMap<&str, &EnvFile> =
        a.environment.iter().map(|e| (e.path.as_str(), e)).collect();
    let env_b: BTreeMap<&str, &EnvFile> =
        b.environment.iter().map(|e| (e.path.as_str(), e)).collect();
    for (path, ea) in &env_a {
        match env_b.get(path) {
            None => out.environment.removed.push((*ea).clone()),
            Some(eb) if eb.sha256 != ea.sha256 => {
                let unified = (ea.size <= TEXT_DIFF_MAX && eb.size <= TEXT_DIFF_MAX)
                    .then(|| Some((text(&ea.sha256)?, text(&eb.sha256)?)))
                    .flatten()
                    .map(|(x, y)| {
                        similar::TextDiff::from_lines(&x, &y)
                            .unified_diff()
                            .context_radius(3)
                            .header(&format!("a/{path}"), &format!("b/{path}"))
                            .to_string()
                    });
                out.environment.changed.push(EnvChange {
                    path: path.to_string(),
                    a: ea.sha256,
                    b: eb.sha256,
                    unified,
                });
            }
            Some(_) => {}
        }
    }
    for (path, eb) in &env_b {
        if !env_a.contains_key(path) {
            out.environment.added.push((*eb).clone());
        }
    }
    out
}

impl LineageChanges {
    pub fn is_empty(&self) -> bool {
        self.run_id.is_none()
            && self.code.is_none()
            && self.data.added.is_empty()
            && self.data.removed.is_empty()
            && self.data.changed.is_empty()
            && self.parents_added.is_empty()
            && self.parents_removed.is_empty()
            && self.environment.added.is_empty()
            && self.environment.removed.is_empty()
            && self.environment.changed.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str, content: &[u8]) -> FileEntry {
        FileEntry {
            path: path.into(),
            size: content.len() as u64,
            sha256: Sha256Digest::of(content),
        }
    }

    #[test]
    fn files_are_added_removed_changed_renamed_or_counted() {
        let a = [
            file("keep.bin", b"same"),
            file("model.onnx", b"v1"),
            file("old-name.txt", b"moved"),
            file("gone.txt", b"bye"),
        ];
        let b = [
            file("keep.bin", b"same"),
            file("model.onnx", b"v2!"),
            file("new-name.txt", b"moved"),
            file("new.txt", b"hi"),
        ];
        let d = file_changes(&a, &b);
        assert_eq!(d.unchanged, 1);
        assert_eq!(d.changed.len(), 1);
        assert_eq!(d.changed[0].size_delta, 1);
        assert_eq!(d.renamed.len(), 1);
        assert_eq!(
            (d.renamed[0].from.as_str(), d.renamed[0].to.as_str()),
            ("old-name.txt", "new-name.txt")
        );
        assert_eq!(
            d.removed
                .iter()
                .map(|f| f.path.as_str())
                .collect::<Vec<_>>(),
            ["gone.txt"]
        );
        assert_eq!(
            d.added.iter().map(|f| f.path.as_str()).collect::<Vec<_>>(),
            ["new.txt"]
        );
    }

    #[test]
    fn metrics_carry_absolute_and_relative_deltas() {
        let a = BTreeMap::from([
            ("auc".to_owned(), 0.8),
            ("loss".to_owned(), 0.5),
            ("same".to_owned(), 1.0),
        ]);
        let b = BTreeMap::from([
            ("auc".to_owned(), 0.9),
            ("same".to_owned(), 1.0),
            ("f1".to_owned(), 0.7),
        ]);
        let d = metric_changes(&a, &b);
        let auc = d.iter().find(|m| m.key == "auc").unwrap();
        assert!((auc.delta.unwrap() - 0.1).abs() < 1e-12);
        assert!((auc.relative.unwrap() - 0.125).abs() < 1e-12);
        assert_eq!(
            d.iter().map(|m| m.key.as_str()).collect::<Vec<_>>(),
            ["auc", "f1", "loss"]
        );
        assert_eq!(d.iter().find(|m| m.key == "loss").unwrap().b, None);
    }
}
