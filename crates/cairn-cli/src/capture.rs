//! Lineage that `cairn push` captures on the user's machine: the git state of the work
//! tree the model comes from, and the DVC-tracked outputs among its `--data` inputs.
//! Git is asked through its own command (as users have it); DVC's files are small YAML
//! documents of a fixed shape, read here directly.

use std::path::{Path, PathBuf};
use std::process::Command;

use cairn_core::lineage::{CodeRef, DataRef};

/// The commit, branch, remote and dirty flag of the git work tree holding `path`;
/// `None` outside a work tree (or without git).
pub fn git_state(path: &Path) -> Option<CodeRef> {
    let dir = if path.is_dir() { path } else { path.parent()? };
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let git = |args: &[&str]| -> Option<String> {
        let out = Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(args)
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
    };
    let commit = git(&["rev-parse", "--verify", "HEAD"])?;
    let branch = git(&["symbolic-ref", "--quiet", "--short", "HEAD"]).filter(|b| !b.is_empty());
    let remote = git(&["config", "--get", "remote.origin.url"]).filter(|r| !r.is_empty());
    // Uncommitted changes to tracked files; untracked files do not make a tree dirty.
    let dirty = git(&["status", "--porcelain", "--untracked-files=no"])
        .is_none_or(|status| !status.is_empty());
    Some(CodeRef {
        commit,
        branch,
        remote,
        dirty,
    })
}

/// The DVC outputs at or under `data`: from `data.dvc`, the `.dvc` files inside a data
/// directory, and the `outs` of `dvc.lock` in the DVC project (the nearest directory up
/// holding `.dvc/` or `dvc.lock`). Paths are relative to the DVC project root.
pub fn dvc_inputs(data: &Path) -> anyhow::Result<Vec<DataRef>> {
    let data = data.canonicalize()?;
    let Some(root) = data
        .ancestors()
        .find(|d| d.join(".dvc").is_dir() || d.join("dvc.lock").is_file())
        .map(Path::to_path_buf)
    else {
        return Ok(Vec::new());
    };
    let mut dvc_files: Vec<PathBuf> = Vec::new();
    let beside = PathBuf::from(format!("{}.dvc", data.display()));
    if beside.is_file() {
        dvc_files.push(beside);
    }
    if data.is_dir() {
        for entry in walkdir::WalkDir::new(&data).sort_by_file_name() {
            let entry = entry?;
            if entry.file_type().is_file() && entry.path().extension().is_some_and(|e| e == "dvc") {
                dvc_files.push(entry.into_path());
            }
        }
    }
    let mut found = Vec::new();
    for file in dvc_files {
        let dir = file.parent().unwrap_or(&root);
        for out in dvc_outs(&std::fs::read_to_string(&file)?) {
            found.push(dvc_ref(&root, &dir.join(&out.path), out));
        }
    }
    let lock = root.join("dvc.lock");
    if lock.is_file() {
        for out in dvc_outs(&std::fs::read_to_string(&lock)?) {
            let path = root.join(&out.path);
            if path.starts_with(&data) {
                found.push(dvc_ref(&root, &path, out));
            }
        }
    }
    found.sort_by(|a, b| (&a.path, &a.digest).cmp(&(&b.path, &b.digest)));
    found.dedup();
    Ok(found)
}

fn dvc_ref(root: &Path, path: &Path, out: DvcOut) -> DataRef {
    let relative = path.strip_prefix(root).unwrap_or(path);
    DataRef {
        kind: "dvc".into(),
        path: relative.to_string_lossy().replace('\\', "/"),
        digest: format!("md5:{}", out.md5),
        size: out.size,
        files: out.nfiles,
    }
}

#[derive(Debug, Default, PartialEq)]
struct DvcOut {
    path: String,
    md5: String,
    size: Option<u64>,
    nfiles: Option<u64>,
}

/// The entries of every `outs:` list in a `.dvc` file or `dvc.lock`:
///
/// ```yaml
/// outs:
/// - md5: 3f8a…
///   size: 1024
///   path: train.csv
/// ```
fn dvc_outs(text: &str) -> Vec<DvcOut> {
    let mut outs = Vec::new();
    // Indentation of the `outs:` key while inside its list.
    let mut list_indent: Option<usize> = None;
    let mut current: Option<DvcOut> = None;
    let finish = |current: &mut Option<DvcOut>, outs: &mut Vec<DvcOut>| {
        if let Some(out) = current.take()
            && !out.path.is_empty()
            && !out.md5.is_empty()
        {
            outs.push(out);
        }
    };
    for line in text.lines() {
        let indent = line.len() - line.trim_start().len();
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        if let Some(outer) = list_indent
            && (indent < outer || (indent == outer && !trimmed.starts_with("- ")))
        {
            finish(&mut current, &mut outs);
            list_indent = None;
        }
        if trimmed == "outs:" {
            list_indent = Some(indent);
            continue;
        }
        if list_indent.is_none() {
            continue;
        }
        let item = match trimmed.strip_prefix("- ") {
            Some(rest) => {
                finish(&mut current, &mut outs);
                current = Some(DvcOut::default());
                rest
            }
            None => trimmed,
        };
        let (Some(out), Some((key, value))) = (current.as_mut(), item.split_once(':')) else {
            continue;
        };
        let value = value.trim().trim_matches(|c| c == '\'' || c == '"');
        match key.trim() {
            "path" => out.path = value.to_owned(),
            "md5" => out.md5 = value.to_owned(),
            "size" => out.size = value.parse().ok(),
            "nfiles" => out.nfiles = value.parse().ok(),
            _ => {}
        }
    }
    finish(&mut current, &mut outs);
    outs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_dvc_files_and_locks() {
        let dvc = "outs:\n- md5: 0123abcd\n  size: 42\n  hash: md5\n  path: train.csv\n";
        assert_eq!(
            dvc_outs(dvc),
            [DvcOut {
                path: "train.csv".into(),
                md5: "0123abcd".into(),
                size: Some(42),
                nfiles: None
            }]
        );
        let lock = "schema: '2.0'\nstages:\n  prepare:\n    cmd: python prep.py\n    deps:\n    - path: raw.csv\n      md5: aaaa\n    outs:\n    - path: data/clean\n      hash: md5\n      md5: bbbb.dir\n      size: 10\n      nfiles: 2\n  train:\n    outs:\n    - path: model.pkl\n      md5: cccc\n";
        let outs = dvc_outs(lock);
        assert_eq!(
            outs.iter()
                .map(|o| (o.path.as_str(), o.md5.as_str()))
                .collect::<Vec<_>>(),
            [("data/clean", "bbbb.dir"), ("model.pkl", "cccc")],
            "dependencies are not outputs"
        );
        assert_eq!(outs[0].nfiles, Some(2));
    }
}
