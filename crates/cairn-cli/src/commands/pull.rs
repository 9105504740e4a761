//! `cairn pull NAME@REF -o DIR`: write a version's files under DIR, re-hashing every
//! byte on the way. Files land in temporary names first and are renamed into place only
//! when every file of the version verified, so a corrupt blob never reaches DIR.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use cairn_core::{FileEntry, ModelVersionRef, Sha256Hasher, hash_reader};
use futures::StreamExt;
use tokio::io::AsyncWriteExt;

use crate::client::RegistryClient;
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

/// A file written under a temporary name, waiting to be renamed into place.
struct Staged {
    temp: PathBuf,
    target: PathBuf,
}

pub async fn run(registry: &dyn RegistryClient, args: Args) -> Result<ExitCode> {
    let version = registry
        .get_version(&args.reference.model, &args.reference.version)
        .await?;
    let files = version.files.clone().unwrap_or_default();

    let mut to_write = Vec::new();
    let mut conflicts = Vec::new();
    for entry in &files {
        let target = args.output.join(&entry.path);
        match existing_state(&target, entry)? {
            Existing::Absent => to_write.push(entry.clone()),
            Existing::Same => {}
            Existing::Differs if args.force => to_write.push(entry.clone()),
            Existing::Differs => conflicts.push(entry.path.clone()),
        }
    }
    if !conflicts.is_empty() {
        bail!(
            "{} file(s) in {} differ from {}@{} (first: {}); use --force to overwrite",
            conflicts.len(),
            args.output.display(),
            version.model,
            version.version,
            conflicts[0]
        );
    }

    let total: u64 = to_write.iter().map(|f| f.size).sum();
    let bar = progress::bytes_bar(total, "pulling");
    let results: Vec<Result<Staged>> = futures::stream::iter(to_write.iter().map(|entry| {
        let bar = bar.clone();
        let target = args.output.join(&entry.path);
        async move { download(registry, entry, target, &bar).await }
    }))
    .buffer_unordered(DOWNLOAD_CONCURRENCY)
    .collect()
    .await;
    bar.finish_and_clear();

    let mut staged = Vec::new();
    let mut failures = Vec::new();
    for result in results {
        match result {
            Ok(s) => staged.push(s),
            Err(e) => failures.push(e),
        }
    }
    if let Some(first) = failures.first() {
        for s in &staged {
            let _ = std::fs::remove_file(&s.temp);
        }
        for e in &failures[1..] {
            eprintln!("error: {e:#}");
        }
        bail!("{first:#}; nothing was written");
    }
    for s in &staged {
        std::fs::rename(&s.temp, &s.target)
            .with_context(|| format!("moving {} into place", s.target.display()))?;
    }

    println!(
        "{}@{} {}",
        version.model,
        version.version,
        version.digest.prefixed()
    );
    eprintln!(
        "wrote {} file(s), {} into {} ({} already there)",
        staged.len(),
        output::bytes(total),
        args.output.display(),
        files.len() - staged.len()
    );
    Ok(ExitCode::SUCCESS)
}

enum Existing {
    Absent,
    Same,
    Differs,
}

fn existing_state(target: &Path, entry: &FileEntry) -> Result<Existing> {
    let meta = match std::fs::symlink_metadata(target) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Existing::Absent),
        Err(e) => return Err(e).with_context(|| format!("checking {}", target.display())),
    };
    if !meta.is_file() {
        bail!("{} exists and is not a regular file", target.display());
    }
    if meta.len() != entry.size {
        return Ok(Existing::Differs);
    }
    let file = std::fs::File::open(target)?;
    let (digest, _) = hash_reader(file, entry.size, |_| {})?;
    Ok(if digest == entry.sha256 {
        Existing::Same
    } else {
        Existing::Differs
    })
}

/// Streams one blob into a temporary file beside its target, checking size and digest.
async fn download(
    registry: &dyn RegistryClient,
    entry: &FileEntry,
    target: PathBuf,
    bar: &indicatif::ProgressBar,
) -> Result<Staged> {
    let parent = target.parent().unwrap_or(Path::new("."));
    tokio::fs::create_dir_all(parent)
        .await
        .with_context(|| format!("creating {}", parent.display()))?;
    let temp = parent.join(format!(".cairn-pull-{}", uuid::Uuid::new_v4()));
    let written = async {
        let mut download = registry
            .download_blob(&entry.sha256)
            .await
            .with_context(|| format!("{}: fetching its content", entry.path))?;
        let mut file = tokio::fs::File::create(&temp).await?;
        let mut hasher = Sha256Hasher::new();
        while let Some(chunk) = download.stream.next().await {
            let chunk = chunk.with_context(|| format!("{}: download interrupted", entry.path))?;
            hasher.update(&chunk);
            file.write_all(&chunk).await?;
            bar.inc(chunk.len() as u64);
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
    .await;
    match written {
        Ok(()) => Ok(Staged { temp, target }),
        Err(e) => {
            let _ = tokio::fs::remove_file(&temp).await;
            Err(e)
        }
    }
}
