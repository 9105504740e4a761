//! `cairn pull NAME@REF -o DIR`: write a version's files under DIR, re-hashing every
//! byte on the way. Nothing the registry sends is trusted: the manifest's paths are
//! checked and must hash to the version's digest, every write goes through
//! [`ConfinedDir`] (no link followed, nothing outside DIR), and files wait in a staging
//! directory inside DIR until every file of the version verified, so a refused pull
//! writes nothing (not even DIR, when it made DIR).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use cairn_core::{
    FileEntry, Manifest, ModelVersionRef, Sha256Digest, Sha256Hasher, Version, hash_reader,
};
use futures::StreamExt;
use tokio::io::AsyncWriteExt;

use crate::client::RegistryClient;
use crate::confined::{ConfinedDir, Entry};
use crate::{output, progress};

const DOWNLOAD_CONCURRENCY: usize = 4;

#[derive(clap::Args)]
pub struct Args {
    /// NAME@REF: REF is a version number, an alias or `latest`.
    reference: ModelVersionRef,
    /// Directory to write into.
    #[arg(long, short = 'o', default_value = ".")]
    output: PathBuf,
    /// Overwrite existing files whose content differs.
    #[arg(long)]
    force: bool,
}

pub async fn run(registry: &dyn RegistryClient, args: Args) -> Result<ExitCode> {
    let version = registry
        .get_version(&args.reference.model, &args.reference.version)
        .await?;
    let (digest, manifest) = verified_manifest(&version, "nothing was written")?;

    let made = make_output_dir(&args.output)?;
    let pulled = pull_into(registry, &args, manifest.files()).await;
    if pulled.is_err() {
        remove_made(&made);
    }
    let written = pulled?;

    println!(
        "{}@{} {}",
        version.model,
        version.version,
        digest.prefixed()
    );
    eprintln!(
        "wrote {} file(s), {} into {} ({} already there)",
        written.len(),
        output::bytes(written.iter().map(|f| f.size).sum()),
        args.output.display(),
        manifest.files().len() - written.len()
    );
    Ok(ExitCode::SUCCESS)
}

/// The version's digest and manifest, checked: an external version has no bytes the
/// registry could verify; the manifest's paths must be safe and hash to the digest.
/// `consequence` ends each refusal (what the caller did not do).
pub(crate) fn verified_manifest(
    version: &Version,
    consequence: &str,
) -> Result<(Sha256Digest, Manifest)> {
    let Some(digest) = version.digest else {
        bail!(
            "{}@{} is an external version: its files are at {}, which the registry does not hold or verify; {consequence}",
            version.model,
            version.version,
            version
                .external_source
                .as_deref()
                .unwrap_or("an unrecorded source")
        );
    };
    // Nothing the registry sends is trusted: its paths are checked as any manifest's
    // (relative, no `..`, no duplicates), and they must hash to the version's digest.
    let manifest = Manifest::new(version.files.clone().unwrap_or_default()).with_context(|| {
        format!(
            "the registry sent an unsafe manifest for {}@{}; {consequence}",
            version.model, version.version
        )
    })?;
    if manifest.digest() != digest {
        bail!(
            "the registry sent a manifest for {}@{} that does not hash to its digest (sha256:{}, manifest: sha256:{}); {consequence}",
            version.model,
            version.version,
            digest,
            manifest.digest()
        );
    }
    Ok((digest, manifest))
}

/// Writes the files of `files` that DIR lacks (or, with `--force`, holds otherwise)
/// through a staging directory inside DIR; answers those written. On an error nothing
/// this call wrote is left, but for files already moved into place when a move fails.
async fn pull_into(
    registry: &dyn RegistryClient,
    args: &Args,
    files: &[FileEntry],
) -> Result<Vec<FileEntry>> {
    let root = ConfinedDir::open(&args.output)?;
    let to_write = files_to_write(&root, files, args)?;
    if to_write.is_empty() {
        return Ok(to_write);
    }
    let staging_name = format!(".cairn-pull-{}", uuid::Uuid::new_v4());
    let staging = root
        .create_dir(&staging_name)
        .with_context(|| format!("creating a staging directory in {}", args.output.display()))?;
    let total: u64 = to_write.iter().map(|f| f.size).sum();
    let placed = match download_all(registry, &staging, &to_write, total).await {
        Ok(()) => place(&root, &staging, &to_write),
        Err(e) => Err(e),
    };
    if placed.is_err() {
        for index in 0..to_write.len() {
            let _ = staging.remove_file(&index.to_string());
        }
    }
    let _ = root.remove_empty_dir(&staging_name);
    placed.map(|()| to_write)
}

/// The files of `files` to write: absent ones, and differing ones with `--force`;
/// differing ones without it are refused, all named in one error.
fn files_to_write(root: &ConfinedDir, files: &[FileEntry], args: &Args) -> Result<Vec<FileEntry>> {
    let mut to_write = Vec::new();
    let mut conflicts = Vec::new();
    for entry in files {
        match existing_state(root, entry)? {
            Existing::Absent => to_write.push(entry.clone()),
            Existing::Same => {}
            Existing::Differs if args.force => to_write.push(entry.clone()),
            Existing::Differs => conflicts.push(entry.path.as_str()),
        }
    }
    if let Some(first) = conflicts.first() {
        bail!(
            "{} file(s) in {} differ from {} (first: {first}); use --force to overwrite",
            conflicts.len(),
            args.output.display(),
            args.reference,
        );
    }
    Ok(to_write)
}

/// Makes the output directory if it is missing; answers the directories made.
fn make_output_dir(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut missing = Vec::new();
    let mut at = Some(dir);
    while let Some(path) = at.filter(|p| !p.as_os_str().is_empty()) {
        if std::fs::symlink_metadata(path).is_ok() {
            break;
        }
        missing.push(path.to_path_buf());
        at = path.parent();
    }
    missing.reverse();
    for path in &missing {
        if let Err(e) = std::fs::create_dir(path) {
            remove_made(&missing);
            return Err(e).with_context(|| format!("creating {}", path.display()));
        }
    }
    Ok(missing)
}

/// Removes the directories a refused pull made, innermost first, if still empty.
fn remove_made(made: &[PathBuf]) {
    for path in made.iter().rev() {
        let _ = std::fs::remove_dir(path);
    }
}

/// Downloads every file into the staging directory, a few at a time; the first failure
/// is the answer (with the others on stderr).
async fn download_all(
    registry: &dyn RegistryClient,
    staging: &ConfinedDir,
    to_write: &[FileEntry],
    total: u64,
) -> Result<()> {
    let bar = progress::bytes_bar(total, "pulling");
    let results: Vec<Result<()>> =
        futures::stream::iter(to_write.iter().enumerate().map(|(index, entry)| {
            let bar = bar.clone();
            async move { download(registry, entry, staging, &index.to_string(), &bar).await }
        }))
        .buffer_unordered(DOWNLOAD_CONCURRENCY)
        .collect()
        .await;
    bar.finish_and_clear();
    let mut failures = results.into_iter().filter_map(Result::err);
    let Some(first) = failures.next() else {
        return Ok(());
    };
    for e in failures {
        eprintln!("error: {e:#}");
    }
    bail!("{first:#}; nothing was written")
}

/// Moves every verified file from the staging directory into place.
fn place(root: &ConfinedDir, staging: &ConfinedDir, to_write: &[FileEntry]) -> Result<()> {
    for (index, entry) in to_write.iter().enumerate() {
        root.move_into(staging, &index.to_string(), &entry.path)
            .with_context(|| format!("moving {} into place", entry.path))?;
    }
    Ok(())
}

enum Existing {
    Absent,
    Same,
    Differs,
}

fn existing_state(root: &ConfinedDir, entry: &FileEntry) -> Result<Existing> {
    let target = root.display(&entry.path);
    match root
        .entry(&entry.path)
        .with_context(|| format!("checking {}", target.display()))?
    {
        Entry::Absent => return Ok(Existing::Absent),
        Entry::Other => bail!("{} exists and is not a regular file", target.display()),
        Entry::File { size } if size != entry.size => return Ok(Existing::Differs),
        Entry::File { .. } => {}
    }
    let file = root.open_file(&entry.path)?;
    let (digest, _) = hash_reader(file, entry.size, |_| {})?;
    Ok(if digest == entry.sha256 {
        Existing::Same
    } else {
        Existing::Differs
    })
}

/// Streams one blob into the staging file `name`, checking size and digest.
async fn download(
    registry: &dyn RegistryClient,
    entry: &FileEntry,
    staging: &ConfinedDir,
    name: &str,
    bar: &indicatif::ProgressBar,
) -> Result<()> {
    let file = staging
        .create_file(name)
        .with_context(|| format!("{}: creating its staging file", entry.path))?;
    download_verified(registry, entry, tokio::fs::File::from_std(file), &|n| {
        bar.inc(n)
    })
    .await
}

/// Streams the blob of `entry` into `file`, hashing it on the way: more bytes than the
/// manifest says, or a digest or size that differs, is an error (the file then holds
/// bytes to throw away). `on_bytes` is told of every chunk written.
pub(crate) async fn download_verified(
    registry: &dyn RegistryClient,
    entry: &FileEntry,
    mut file: tokio::fs::File,
    on_bytes: &(dyn Fn(u64) + Send + Sync),
) -> Result<()> {
    let mut download = registry
        .download_blob(&entry.sha256)
        .await
        .with_context(|| format!("{}: fetching its content", entry.path))?;
    let mut hasher = Sha256Hasher::new();
    while let Some(chunk) = download.stream.next().await {
        let chunk = chunk.with_context(|| {
            format!(
                "{}: download interrupted (a registry cuts off a blob whose stored bytes fail their digest: `cairn verify` there names it)",
                entry.path
            )
        })?;
        hasher.update(&chunk);
        // A registry sending more than the manifest says is cut off, not obeyed.
        if hasher.len() > entry.size {
            bail!(
                "{}: the registry sent more than its {} bytes",
                entry.path,
                entry.size
            );
        }
        file.write_all(&chunk).await?;
        on_bytes(chunk.len() as u64);
    }
    file.flush().await?;
    let (actual, size) = hasher.finish();
    if actual != entry.sha256 || size != entry.size {
        bail!(
            "{}: stored content is corrupt (manifest: sha256:{} {} bytes, got sha256:{} {} bytes)",
            entry.path,
            entry.sha256,
            entry.size,
            actual,
            size
        );
    }
    Ok(())
}
