//! The ONNX Runtime library, found on the user's machine and loaded once per process.
//!
//! Cairn never downloads or bundles onnxruntime: the shared library is one the user
//! already has — named with `--onnxruntime`, by `ORT_DYLIB_PATH` (onnxruntime's own
//! variable), or the one inside an installed `onnxruntime` Python package (the wheel
//! ships `capi/libonnxruntime.so.*`).

use std::path::{Path, PathBuf};
use std::process::Command;

use ort::environment::Environment;

/// How to get the library, said whenever it cannot be found or loaded.
const HOW_TO_GET_IT: &str = "pass --onnxruntime PATH/TO/libonnxruntime.so, set ORT_DYLIB_PATH, or install the Python package (`pip install onnxruntime`) for the python3 on PATH";

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("onnxruntime was not found: {HOW_TO_GET_IT}")]
    NotFound,
    #[error("onnxruntime could not be loaded from {path} ({from}): {reason}; {HOW_TO_GET_IT}")]
    Load {
        path: PathBuf,
        from: &'static str,
        reason: String,
    },
}

/// The loaded runtime: sessions are created in its environment.
#[derive(Clone)]
pub struct Runtime {
    pub(crate) environment: Environment,
    library: PathBuf,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("library", &self.library)
            .finish()
    }
}

impl Runtime {
    /// Finds the library (`flag` first, then `ORT_DYLIB_PATH`, then Python's package)
    /// and loads it. Only one runtime can be loaded per process.
    pub fn load(flag: Option<&Path>) -> Result<Self, RuntimeError> {
        let (path, from) = locate(flag)?;
        let failed = |reason: String| RuntimeError::Load {
            path: path.clone(),
            from,
            reason,
        };
        if !path.is_file() {
            return Err(failed("no such file".into()));
        }
        let environment = ort::init_from(&path)
            .map_err(|e| failed(e.to_string()))?
            .with_name("cairn-serve")
            .build()
            .map_err(|e| failed(e.to_string()))?;
        Ok(Self {
            environment,
            library: path,
        })
    }

    pub fn library(&self) -> &Path {
        &self.library
    }
}

/// Where the library is, and which rule found it.
fn locate(flag: Option<&Path>) -> Result<(PathBuf, &'static str), RuntimeError> {
    if let Some(path) = flag {
        return Ok((path.to_path_buf(), "--onnxruntime"));
    }
    if let Some(path) = std::env::var_os("ORT_DYLIB_PATH").filter(|p| !p.is_empty()) {
        return Ok((PathBuf::from(path), "ORT_DYLIB_PATH"));
    }
    python_package_library()
        .map(|path| (path, "the onnxruntime Python package"))
        .ok_or(RuntimeError::NotFound)
}

/// `libonnxruntime.so*` inside the `onnxruntime` package of the first Python on PATH
/// that has it. The package is located, not imported (importing it takes a while and
/// runs its code).
fn python_package_library() -> Option<PathBuf> {
    const FIND: &str = "import importlib.util as u; s = u.find_spec('onnxruntime'); print(s.submodule_search_locations[0] if s and s.submodule_search_locations else '')";
    ["python3", "python"].iter().find_map(|python| {
        let out = Command::new(python).args(["-c", FIND]).output().ok()?;
        let package = String::from_utf8(out.stdout).ok()?;
        let package = package.trim();
        if !out.status.success() || package.is_empty() {
            return None;
        }
        library_in(&Path::new(package).join("capi"))
    })
}

/// The onnxruntime library in `dir`: `libonnxruntime.so`, or a versioned name
/// (`libonnxruntime.so.1.32.0`), or macOS's `.dylib`.
fn library_in(dir: &Path) -> Option<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| {
            p.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
                n.starts_with("libonnxruntime.so")
                    || n.starts_with("libonnxruntime.") && n.ends_with(".dylib")
            })
        })
        .collect();
    found.sort();
    found.into_iter().next()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_a_versioned_library_name_and_ignores_the_providers() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("libonnxruntime_providers_shared.so"), b"").unwrap();
        assert_eq!(library_in(dir.path()), None);
        std::fs::write(dir.path().join("libonnxruntime.so.1.32.0"), b"").unwrap();
        assert_eq!(
            library_in(dir.path()),
            Some(dir.path().join("libonnxruntime.so.1.32.0"))
        );
    }
}
