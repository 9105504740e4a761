//! A version's manifest: every file's relative path, size and SHA-256.
//!
//! The version digest is the SHA-256 of the manifest's canonical text: one line per
//! file, sorted by path (bytewise), each `<sha256 hex> <size> <path>\n`. The text is
//! simple enough to recompute with shell tools, and paths cannot contain newlines.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::{Sha256Digest, ValidationError};

/// Longest manifest path, in bytes.
pub const PATH_MAX: usize = 1024;
/// Largest size a file, or a whole version, may declare: the largest the metadata
/// stores (64-bit signed integers on both engines) hold.
pub const SIZE_MAX: u64 = i64::MAX as u64;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FileEntry {
    /// Relative path, `/`-separated.
    pub path: String,
    pub size: u64,
    pub sha256: Sha256Digest,
}

/// A validated manifest: paths are safe to join under any directory, unique, sorted,
/// and no file sits where another file needs a directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Manifest {
    files: Vec<FileEntry>,
}

impl Manifest {
    /// The manifest of an external version: no files. A content-addressed version
    /// never has it (`new` refuses an empty list), so its digest names nothing verified.
    pub fn external() -> Self {
        Self { files: Vec::new() }
    }

    pub fn new(mut files: Vec<FileEntry>) -> Result<Self, ValidationError> {
        if files.is_empty() {
            return Err(ValidationError::Manifest(
                "a version needs at least one file".into(),
            ));
        }
        let mut total: u64 = 0;
        for f in &files {
            validate_path(&f.path)?;
            total = total
                .checked_add(f.size)
                .filter(|t| *t <= SIZE_MAX)
                .ok_or_else(|| {
                    ValidationError::Manifest(format!(
                        "the files' sizes add up to more than {SIZE_MAX} bytes (at {:?})",
                        f.path
                    ))
                })?;
        }
        files.sort_by(|a, b| a.path.as_bytes().cmp(b.path.as_bytes()));
        let mut seen = BTreeSet::new();
        for f in &files {
            if !seen.insert(f.path.as_str()) {
                return Err(ValidationError::Path(f.path.clone(), "listed twice"));
            }
        }
        // "a" as a file and "a/b" as a file cannot both be written out.
        for f in &files {
            let mut prefix = f.path.as_str();
            while let Some((parent, _)) = prefix.rsplit_once('/') {
                if seen.contains(parent) {
                    return Err(ValidationError::Path(
                        f.path.clone(),
                        "lies under another file of the manifest",
                    ));
                }
                prefix = parent;
            }
        }
        Ok(Self { files })
    }

    pub fn files(&self) -> &[FileEntry] {
        &self.files
    }

    pub fn into_files(self) -> Vec<FileEntry> {
        self.files
    }

    /// The sum of the files' sizes; [`Manifest::new`] proved it at most [`SIZE_MAX`].
    pub fn total_size(&self) -> u64 {
        self.files.iter().map(|f| f.size).sum()
    }

    pub fn canonical_text(&self) -> String {
        let mut out = String::with_capacity(self.files.len() * 100);
        for f in &self.files {
            out.push_str(&format!("{} {} {}\n", f.sha256, f.size, f.path));
        }
        out
    }

    pub fn digest(&self) -> Sha256Digest {
        Sha256Digest::of(self.canonical_text().as_bytes())
    }
}

impl<'de> Deserialize<'de> for Manifest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Manifest::new(Vec::<FileEntry>::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

/// A manifest path must stay inside whatever directory it is written under.
pub fn validate_path(path: &str) -> Result<(), ValidationError> {
    let err = |why| Err(ValidationError::Path(path.to_owned(), why));
    if path.is_empty() {
        return err("must not be empty");
    }
    if path.len() > PATH_MAX {
        return err("longer than 1024 bytes");
    }
    if path.starts_with('/') {
        return err("must be relative");
    }
    if path.contains('\\') {
        return err("must use '/' as separator, not '\\'");
    }
    if path.chars().any(char::is_control) {
        return err("must not contain control characters");
    }
    for segment in path.split('/') {
        match segment {
            "" => return err("must not contain empty segments"),
            "." | ".." => return err("must not contain '.' or '..' segments"),
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(path: &str, content: &[u8]) -> FileEntry {
        FileEntry {
            path: path.into(),
            size: content.len() as u64,
            sha256: Sha256Digest::of(content),
        }
    }

    #[test]
    fn digest_is_order_independent_and_content_sensitive() {
        let a = Manifest::new(vec![entry("b.bin", b"2"), entry("a.txt", b"1")]).unwrap();
        let b = Manifest::new(vec![entry("a.txt", b"1"), entry("b.bin", b"2")]).unwrap();
        assert_eq!(a.digest(), b.digest());
        assert_eq!(a.files()[0].path, "a.txt");
        let c = Manifest::new(vec![entry("a.txt", b"1"), entry("b.bin", b"3")]).unwrap();
        assert_ne!(a.digest(), c.digest());
        let renamed = Manifest::new(vec![entry("a.txt", b"1"), entry("c.bin", b"2")]).unwrap();
        assert_ne!(a.digest(), renamed.digest());
    }

    #[test]
    fn canonical_text_format() {
        let m = Manifest::new(vec![entry("x/y", b"abc")]).unwrap();
        assert_eq!(
            m.canonical_text(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad 3 x/y\n"
        );
    }

    #[test]
    fn refuses_unsafe_paths() {
        for bad in [
            "",
            "/etc/passwd",
            "../x",
            "a/../../x",
            "a//b",
            "./a",
            "a/.",
            "a\\b",
            "a\nb",
        ] {
            assert!(validate_path(bad).is_err(), "{bad:?}");
            assert!(Manifest::new(vec![entry(bad, b"x")]).is_err());
        }
        assert!(validate_path("dir/sub/file.onnx").is_ok());
        assert!(validate_path("..hidden/x..y").is_ok());
    }

    #[test]
    fn refuses_duplicates_and_file_directory_clashes() {
        assert!(Manifest::new(vec![entry("a", b"1"), entry("a", b"2")]).is_err());
        assert!(Manifest::new(vec![entry("a", b"1"), entry("a/b", b"2")]).is_err());
        assert!(Manifest::new(vec![]).is_err());
    }

    #[test]
    fn refuses_sizes_past_what_the_stores_hold() {
        let sized = |path: &str, size| FileEntry {
            size,
            ..entry(path, b"x")
        };
        assert!(Manifest::new(vec![sized("a", SIZE_MAX)]).is_ok());
        assert!(Manifest::new(vec![sized("a", SIZE_MAX + 1)]).is_err());
        assert!(Manifest::new(vec![sized("a", u64::MAX)]).is_err());
        // Each size fits; the sum would wrap (or pass 2^63 - 1).
        let err = Manifest::new(vec![sized("a", SIZE_MAX), sized("b", 1)]).unwrap_err();
        assert!(err.to_string().contains("add up to more than"), "{err}");
        assert!(Manifest::new(vec![sized("a", u64::MAX), sized("b", 2)]).is_err());
    }

    #[test]
    fn deserialization_validates() {
        let bad = r#"[{"path":"../x","size":1,"sha256":"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"}]"#;
        assert!(serde_json::from_str::<Manifest>(bad).is_err());
    }
}
