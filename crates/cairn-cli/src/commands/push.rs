//! `cairn push PATH --model NAME`: hash every file, upload only the blobs the registry
//! lacks, then register the manifest as the next version.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use cairn_core::api::NewVersion;
use cairn_core::lineage::{CodeRef, DataRef, EnvFile, LineageInput, ParentRef};
use cairn_core::{
    FileEntry, Manifest, ModelName, ModelVersionRef, Sha256Digest, VersionRef, hash_reader,
};
use futures::{StreamExt, TryStreamExt};

use super::{parse_key_value, parse_metric};
use crate::client::{BlobSource, RegistryClient};
use crate::{capture, output, progress};

const HASH_BATCH_FILES: usize = 256;
const HASH_BATCH_BYTES: u64 = 64 * 1024 * 1024;
/// Files from this size on (each hashed alone) are hashed by the registry client, which
/// may copy them into a local store as it hashes. Copying costs a write even when the
/// registry holds the file already (a re-push); below this size, reading a file a
/// second time for its upload costs less than that.
const STAGE_FROM: u64 = HASH_BATCH_BYTES;

#[derive(clap::Args)]
pub struct Args {
    /// File or directory to register (directories recursively).
    path: PathBuf,
    /// Model to add the version to; created if it does not exist.
    #[arg(long, short)]
    model: ModelName,
    #[arg(long, default_value = "")]
    description: String,
    /// KEY=VALUE, repeatable.
    #[arg(long = "tag", value_name = "KEY=VALUE", value_parser = parse_key_value)]
    tags: Vec<(String, String)>,
    /// KEY=NUMBER, repeatable.
    #[arg(long = "metric", value_name = "KEY=NUMBER", value_parser = parse_metric)]
    metrics: Vec<(String, f64)>,
    /// KEY=VALUE, repeatable.
    #[arg(long = "param", value_name = "KEY=VALUE", value_parser = parse_key_value)]
    params: Vec<(String, String)>,
    /// Data it was trained on (file or directory, repeatable): hashed into a dataset
    /// digest; DVC-tracked outputs under it (`.dvc` files, `dvc.lock`) are recorded too.
    #[arg(long = "data", value_name = "PATH")]
    data: Vec<PathBuf>,
    /// A version this one derives from (NAME@N, repeatable), e.g. fine-tuned from.
    #[arg(long = "parent", value_name = "NAME@N")]
    parents: Vec<ModelVersionRef>,
    /// An environment file (requirements.txt, conda.yaml, a lock file; repeatable),
    /// stored with the version.
    #[arg(long = "env", value_name = "FILE")]
    env: Vec<PathBuf>,
    /// The run that produced it (a Cairn or MLflow run id).
    #[arg(long)]
    run: Option<String>,
    /// The code's commit, instead of the one of the git work tree holding PATH.
    #[arg(long, value_name = "SHA")]
    commit: Option<String>,
    /// Record no git state.
    #[arg(long, conflicts_with = "commit")]
    no_git: bool,
}

/// A file to push: where it is, and its path in the manifest.
pub(crate) struct LocalFile {
    pub source: PathBuf,
    pub path: String,
    pub size: u64,
}

pub async fn run(registry: &dyn RegistryClient, args: Args) -> Result<ExitCode> {
    let started = std::time::Instant::now();
    let files = collect_files(&args.path)?;
    tracing::debug!(files = files.len(), elapsed = ?started.elapsed(), "walked");
    let total: u64 = files.iter().map(|f| f.size).sum();

    let manifest = hash_manifest(&files, total, "hashing", Some(registry)).await?;
    tracing::debug!(elapsed = ?started.elapsed(), "hashed");

    let (lineage, env_files) = capture_lineage(&args).await?;

    // One source file per distinct blob (environment files are blobs too).
    let mut sources: HashMap<Sha256Digest, (&Path, u64)> = HashMap::new();
    for (entry, file) in manifest_sources(&manifest, &files) {
        sources
            .entry(entry.sha256)
            .or_insert((file.source.as_path(), entry.size));
    }
    for (env, source) in lineage.environment.iter().zip(&env_files) {
        sources
            .entry(env.sha256)
            .or_insert((source.as_path(), env.size));
    }
    let mut digests: Vec<Sha256Digest> = sources.keys().copied().collect();
    digests.sort_unstable();
    let missing = registry.missing_blobs(&digests).await?;
    let upload_bytes: u64 = missing.iter().map(|d| sources[d].1).sum();
    tracing::debug!(missing = missing.len(), elapsed = ?started.elapsed(), "asked for missing blobs");

    let bar = progress::bytes_bar(upload_bytes, "uploading");
    let uploads: Vec<BlobSource> = missing
        .iter()
        .map(|digest| {
            let (source, size) = sources[digest];
            BlobSource {
                digest: *digest,
                path: source.to_path_buf(),
                size,
            }
        })
        .collect();
    registry.upload_blobs(&uploads, &|n| bar.inc(n)).await?;
    bar.finish_and_clear();
    tracing::debug!(elapsed = ?started.elapsed(), "uploaded");

    let new = NewVersion {
        files: manifest,
        description: args.description,
        tags: args.tags.into_iter().collect(),
        metrics: args.metrics.into_iter().collect(),
        params: args.params.into_iter().collect(),
        lineage,
    };
    let version = registry.create_version(&args.model, &new).await?;
    tracing::debug!(elapsed = ?started.elapsed(), "registered");
    let digest = version
        .digest
        .context("the registry answered a push with an external version")?;
    println!(
        "{}@{} {}",
        version.model,
        version.version,
        digest.prefixed()
    );
    eprintln!(
        "{} file(s), {}; uploaded {} new blob(s), {}",
        version.file_count,
        output::bytes(version.size),
        missing.len(),
        output::bytes(upload_bytes)
    );
    Ok(ExitCode::SUCCESS)
}

/// Run, code, data, parents and environment of the version being pushed, and the local
/// environment files (in the order of `lineage.environment`).
async fn capture_lineage(args: &Args) -> Result<(LineageInput, Vec<PathBuf>)> {
    let code = match (&args.commit, args.no_git) {
        (_, true) => None,
        (Some(commit), false) => Some(CodeRef {
            commit: commit.clone(),
            branch: None,
            remote: None,
            dirty: false,
        }),
        (None, false) => capture::git_state(&args.path),
    };
    let mut data = Vec::new();
    for path in &args.data {
        let files = collect_files(path)?;
        let total: u64 = files.iter().map(|f| f.size).sum();
        let manifest = hash_manifest(&files, total, "hashing data", None).await?;
        data.push(DataRef {
            kind: "dataset".into(),
            path: path.display().to_string(),
            digest: manifest.digest().prefixed(),
            size: Some(total),
            files: Some(files.len() as u64),
        });
        data.extend(
            capture::dvc_inputs(path)
                .with_context(|| format!("reading DVC files for {}", path.display()))?,
        );
    }
    let mut parents = Vec::new();
    for p in &args.parents {
        let VersionRef::Number(version) = p.version else {
            bail!("--parent {p}: name the parent by number (NAME@N), not by alias");
        };
        parents.push(ParentRef {
            model: p.model.to_string(),
            version,
        });
    }
    let mut environment = Vec::new();
    for file in &args.env {
        let meta =
            std::fs::metadata(file).with_context(|| format!("cannot read {}", file.display()))?;
        if !meta.is_file() {
            bail!("--env {}: not a file", file.display());
        }
        let name = file
            .file_name()
            .and_then(|n| n.to_str())
            .with_context(|| format!("{} has no UTF-8 file name", file.display()))?;
        let (sha256, size) = hash_file(file, meta.len(), &indicatif::ProgressBar::hidden())?;
        environment.push(EnvFile {
            path: name.to_owned(),
            sha256,
            size,
        });
    }
    let lineage = LineageInput {
        run_id: args.run.clone(),
        code,
        data,
        parents,
        environment,
    };
    Ok((lineage, args.env.clone()))
}

/// Hashes `files` on every core (in batches: a task per file would cost more than hashing
/// a small file does) into their manifest. With `stage_in`, files above `STAGE_FROM`
/// bytes are hashed by the registry client, which may keep a copy made while hashing
/// for the upload (`RegistryClient::hash_and_stage`).
pub(crate) async fn hash_manifest(
    files: &[LocalFile],
    total: u64,
    label: &str,
    stage_in: Option<&dyn RegistryClient>,
) -> Result<Manifest> {
    let bar = progress::bytes_bar(total, label);
    let parallelism = std::thread::available_parallelism().map_or(2, |n| n.get());
    // Files are hashed in batches, one blocking task per batch and one batch per core at
    // a time: a task per file would cost more than hashing a small file does.
    let batches: Vec<Vec<FileEntry>> = futures::stream::iter(hash_batches(files).map(|batch| {
        let jobs: Vec<(PathBuf, String, u64)> = batch
            .iter()
            .map(|f| (f.source.clone(), f.path.clone(), f.size))
            .collect();
        let bar = bar.clone();
        async move {
            if let ([(source, path, size)], Some(registry)) = (jobs.as_slice(), stage_in)
                && *size >= STAGE_FROM
            {
                let counted = bar.clone();
                let staged = registry
                    .hash_and_stage(source, Box::new(move |n| counted.inc(n)))
                    .await
                    .with_context(|| format!("reading {}", source.display()))?;
                if let Some((sha256, size)) = staged {
                    return Ok(vec![FileEntry {
                        path: path.clone(),
                        size,
                        sha256,
                    }]);
                }
            }
            tokio::task::spawn_blocking(move || {
                jobs.into_iter()
                    .map(|(source, path, size)| {
                        let (sha256, size) = hash_file(&source, size, &bar)?;
                        Ok(FileEntry { path, size, sha256 })
                    })
                    .collect::<Result<Vec<_>>>()
            })
            .await
            .context("hashing task failed")?
        }
    }))
    .buffered(parallelism)
    .try_collect()
    .await?;
    let entries: Vec<FileEntry> = batches.into_iter().flatten().collect();
    bar.finish_and_clear();
    Ok(Manifest::new(entries)?)
}

/// Consecutive runs of files of at most `HASH_BATCH_FILES` files and `HASH_BATCH_BYTES`
/// bytes (a larger file forms a batch of its own).
fn hash_batches(files: &[LocalFile]) -> impl Iterator<Item = &[LocalFile]> {
    let mut rest = files;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let mut bytes = 0;
        let mut len = 0;
        while len < rest.len()
            && len < HASH_BATCH_FILES
            && (len == 0 || bytes + rest[len].size <= HASH_BATCH_BYTES)
        {
            bytes += rest[len].size;
            len += 1;
        }
        let (batch, tail) = rest.split_at(len);
        rest = tail;
        Some(batch)
    })
}

/// Pairs each manifest entry with the local file it came from.
fn manifest_sources<'a>(
    manifest: &'a Manifest,
    files: &'a [LocalFile],
) -> impl Iterator<Item = (&'a FileEntry, &'a LocalFile)> {
    let by_path: HashMap<&str, &LocalFile> = files.iter().map(|f| (f.path.as_str(), f)).collect();
    manifest
        .files()
        .iter()
        .map(move |entry| (entry, by_path[entry.path.as_str()]))
}

fn hash_file(path: &Path, size: u64, bar: &indicatif::ProgressBar) -> Result<(Sha256Digest, u64)> {
    let file = std::fs::File::open(path).with_context(|| format!("reading {}", path.display()))?;
    hash_reader(file, size, |n| bar.inc(n)).with_context(|| format!("reading {}", path.display()))
}

/// Every regular file under `root` (or `root` itself), with manifest paths relative to
/// it. Symlinks are followed only while they stay inside `root`.
pub(crate) fn collect_files(root: &Path) -> Result<Vec<LocalFile>> {
    let meta =
        std::fs::metadata(root).with_context(|| format!("cannot read {}", root.display()))?;
    if meta.is_file() {
        let name = root
            .file_name()
            .and_then(|n| n.to_str())
            .with_context(|| format!("{} has no UTF-8 file name", root.display()))?;
        return Ok(vec![LocalFile {
            source: root.to_path_buf(),
            path: name.to_owned(),
            size: meta.len(),
        }]);
    }
    if !meta.is_dir() {
        bail!("{} is neither a file nor a directory", root.display());
    }
    let canonical_root = root.canonicalize()?;
    let mut files = Vec::new();
    for entry in walkdir::WalkDir::new(root)
        .follow_links(true)
        .sort_by_file_name()
    {
        let entry = entry.with_context(|| format!("walking {}", root.display()))?;
        if entry.path_is_symlink() {
            let target = entry
                .path()
                .canonicalize()
                .with_context(|| format!("{} is a broken symlink", entry.path().display()))?;
            if !target.starts_with(&canonical_root) {
                bail!(
                    "{} is a symlink to {}, outside {}; refusing to push it",
                    entry.path().display(),
                    target.display(),
                    root.display()
                );
            }
        }
        let file_type = entry.file_type();
        if file_type.is_dir() {
            continue;
        }
        if !file_type.is_file() {
            bail!("{} is not a regular file", entry.path().display());
        }
        let relative = entry.path().strip_prefix(root)?;
        let path = relative
            .components()
            .map(|c| c.as_os_str().to_str())
            .collect::<Option<Vec<_>>>()
            .with_context(|| format!("{} is not a UTF-8 path", entry.path().display()))?
            .join("/");
        files.push(LocalFile {
            source: entry.path().to_path_buf(),
            path,
            size: entry.metadata()?.len(),
        });
    }
    if files.is_empty() {
        bail!("{} holds no files to push", root.display());
    }
    Ok(files)
}
