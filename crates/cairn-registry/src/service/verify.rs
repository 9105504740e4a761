//! `cairn verify`: proves that what the registry holds is what its records say, trusting
//! neither the blobs nor the rows.
//!
//! Two checks, each independent of the other:
//! - **records**: every version's digest is recomputed from its manifest rows (path, size,
//!   SHA-256 of each file) and compared with the digest recorded when it was registered,
//!   with its file count and total size; a row edited, added or removed since shows.
//!   External versions (whose bytes the registry does not hold) are counted, not
//!   verified: there is nothing to recompute, and they are never reported as verified.
//! - **blobs**: every blob a row references (version files, environment files, run and
//!   logged-model artifacts, parts of uploads in progress) is re-hashed once; a blob
//!   that is missing or no longer hashes to its digest is reported with everything that
//!   holds it, and a row declaring a size its (intact) blob does not have is reported on
//!   its own, without blaming the other holders of that blob.

use std::collections::{BTreeMap, BTreeSet};

use cairn_core::model::{BlobProblem, FileRef};
use cairn_core::{
    FileEntry, Manifest, ModelName, RecordProblem, Sha256Digest, VerifyProblem, VerifyReport,
};
use futures::StreamExt;

use crate::blobs::BlobStore;
use crate::db::sql::{Columns, Decode, DecodeError, SqlBuilder, decoded_row};
use crate::db::{MetadataStore, corrupt_row};
use crate::{Error, Result};

/// Versions whose manifests are read and recomputed per round trip: bounds memory on a
/// registry of any size.
const VERSIONS_PER_BATCH: i64 = 500;

/// What to verify.
pub(crate) enum Scope {
    /// One version, by its row id.
    Version(i64),
    All,
}

/// One version row, as recorded: `id, name, number, digest, file_count, size, external`.
struct RecordedVersion {
    id: i64,
    name: String,
    number: i64,
    digest: String,
    file_count: i64,
    size: i64,
    external: i64,
}

/// Every table whose rows reference blobs, and what a row of it is called in a report:
/// version tables first, then the others.
const HOLDERS: [(&str, &str); 4] = [
    ("version_files", "file"),
    ("version_environment", "environment file"),
    ("artifacts", "artifact"),
    ("artifact_upload_parts", "upload part"),
];

pub(crate) async fn verify(
    meta: &MetadataStore,
    blobs: &BlobStore,
    scope: Scope,
) -> Result<VerifyReport> {
    let mut report = VerifyReport::default();
    verify_records(meta, &scope, &mut report).await?;
    verify_blobs(meta, blobs, &scope, &mut report).await?;
    Ok(report)
}

/// Recomputes each version's digest, file count and size from its manifest rows, a
/// batch of versions (and their rows) per round trip.
async fn verify_records(
    meta: &MetadataStore,
    scope: &Scope,
    report: &mut VerifyReport,
) -> Result<()> {
    let mut after = i64::MIN;
    loop {
        let versions: Vec<RecordedVersion> = match scope {
            Scope::Version(id) => meta.read(VERSIONS_SQL_ONE).bind(*id),
            Scope::All => meta
                .read(VERSIONS_SQL_ALL)
                .bind(after)
                .bind(VERSIONS_PER_BATCH),
        }
        .fetch_all()
        .await?;
        let (Some(first), Some(last)) = (versions.first(), versions.last()) else {
            return Ok(());
        };
        let rows: Vec<(i64, String, i64, String)> = meta
            .read(
                "SELECT version_id, path, size, sha256 FROM version_files
             WHERE version_id >= $1 AND version_id <= $2",
            )
            .bind(first.id)
            .bind(last.id)
            .fetch_all()
            .await?;
        let mut files: BTreeMap<i64, Vec<(String, i64, String)>> = BTreeMap::new();
        for (version_id, path, size, sha256) in rows {
            files
                .entry(version_id)
                .or_default()
                .push((path, size, sha256));
        }
        for version in &versions {
            let rows = files.remove(&version.id).unwrap_or_default();
            match version.external {
                0 => report.versions += 1,
                _ => report.external += 1,
            }
            if let Err(reason) = check_version(version, rows) {
                report.records.push(RecordProblem {
                    record: format!("{}@{}", version.name, version.number),
                    reason,
                });
            }
        }
        if matches!(scope, Scope::Version(_)) {
            return Ok(());
        }
        after = last.id;
    }
}

impl Decode for RecordedVersion {
    fn decode(c: &mut Columns<'_>) -> std::result::Result<Self, DecodeError> {
        Ok(Self {
            id: c.next()?,
            name: c.next()?,
            number: c.next()?,
            digest: c.next()?,
            file_count: c.next()?,
            size: c.next()?,
            external: c.next()?,
        })
    }
}
decoded_row!(RecordedVersion);

const VERSIONS_SQL_ONE: &str =
    "SELECT v.id, m.name, v.number, v.digest, v.file_count, v.size, v.external
     FROM versions v JOIN models m ON m.id = v.model_id WHERE v.id = $1";
const VERSIONS_SQL_ALL: &str =
    "SELECT v.id, m.name, v.number, v.digest, v.file_count, v.size, v.external
     FROM versions v JOIN models m ON m.id = v.model_id WHERE v.id > $1 ORDER BY v.id LIMIT $2";

/// Why a version's rows disagree with its recorded digest, count or size.
fn check_version(
    version: &RecordedVersion,
    rows: Vec<(String, i64, String)>,
) -> std::result::Result<(), String> {
    if version.external != 0 {
        // Nothing to recompute; but an external version holds nothing either.
        return match (
            version.external,
            rows.len(),
            version.digest.as_str(),
            version.file_count,
            version.size,
        ) {
            (1, 0, "", 0, 0) => Ok(()),
            _ => Err("it is marked external but records files or a digest".to_owned()),
        };
    }
    let count = rows.len();
    let mut entries = Vec::with_capacity(count);
    for (path, size, sha256) in rows {
        let size = u64::try_from(size).map_err(|_| format!("file {path:?} has size {size}"))?;
        let sha256 = sha256
            .parse::<Sha256Digest>()
            .map_err(|_| format!("file {path:?} has an unreadable digest {sha256:?}"))?;
        entries.push(FileEntry { path, size, sha256 });
    }
    // The manifest's own rules (safe paths, sizes, no duplicates) hold for every row,
    // whoever wrote it: a pull joins these paths under a directory.
    let manifest =
        Manifest::new(entries).map_err(|e| format!("its manifest rows are refused: {e}"))?;
    let computed = manifest.digest();
    if computed.to_hex() != version.digest {
        return Err(format!(
            "its manifest rows hash to sha256:{computed}, not to its recorded digest sha256:{}",
            version.digest
        ));
    }
    if count as i64 != version.file_count || manifest.total_size() as i64 != version.size {
        return Err(format!(
            "it records {} file(s) and {} bytes; its manifest has {count} and {}",
            version.file_count,
            version.size,
            manifest.total_size()
        ));
    }
    Ok(())
}

/// Re-hashes every blob in scope once and reports the bad ones with their holders, and
/// the rows declaring a size their intact blob does not have.
async fn verify_blobs(
    meta: &MetadataStore,
    blobs: &BlobStore,
    scope: &Scope,
    report: &mut VerifyReport,
) -> Result<()> {
    let mut declared: BTreeMap<Sha256Digest, BTreeSet<u64>> = BTreeMap::new();
    for (digest, size) in referenced(meta, scope).await? {
        let digest = digest
            .parse::<Sha256Digest>()
            .map_err(|_| corrupt_row("blob digest"))?;
        // A negative size matches no blob: reported below as a wrong declaration.
        declared
            .entry(digest)
            .or_default()
            .insert(u64::try_from(size).unwrap_or(u64::MAX));
    }

    // Hashing is CPU-bound: one blob per core at a time.
    let parallelism = std::thread::available_parallelism().map_or(2, |n| n.get());
    // Each blob with what its bytes hash to and their size (`None`: missing).
    type Rehashed = (Sha256Digest, Option<(Sha256Digest, u64)>);
    let checks: Vec<Result<Rehashed>> =
        futures::stream::iter(declared.keys().copied().map(|digest| {
            let store = blobs.clone();
            async move { Ok((digest, store.rehash(&digest).await?)) }
        }))
        .buffer_unordered(parallelism)
        .collect()
        .await;

    let mut bad = BTreeMap::new();
    let mut wrong_sizes = Vec::new();
    for check in checks {
        let (digest, hashed) = check?;
        report.blobs += 1;
        match hashed {
            None => {
                bad.insert(digest, BlobProblem::Missing);
            }
            Some((actual, _)) if actual != digest => {
                bad.insert(digest, BlobProblem::Corrupt);
            }
            Some((_, size)) => {
                report.bytes += size;
                if declared[&digest].iter().any(|d| *d != size) {
                    wrong_sizes.push((digest, size));
                }
            }
        }
    }
    for (digest, problem) in bad {
        // A bad blob breaks everything holding it, in scope or not: all are named.
        let holders = holders(meta, &Scope::All, &digest, None).await?;
        report.problems.push(VerifyProblem {
            sha256: digest,
            problem,
            files: holders.files,
            environment: holders.environment,
            artifacts: holders.artifacts,
        });
    }
    for (digest, size) in wrong_sizes {
        for (record, declared) in holders(meta, scope, &digest, Some(size)).await?.described {
            report.records.push(RecordProblem {
                record,
                reason: format!(
                    "{declared} bytes declared; its blob sha256:{digest} holds {size} bytes"
                ),
            });
        }
    }
    report.records.sort_by(|a, b| a.record.cmp(&b.record));
    Ok(())
}

/// Distinct (digest, declared size) pairs of every row in scope.
async fn referenced(meta: &MetadataStore, scope: &Scope) -> Result<Vec<(String, i64)>> {
    Ok(match scope {
        Scope::Version(id) => {
            meta.read(
                "SELECT sha256, size FROM version_files WHERE version_id = $1
                 UNION SELECT sha256, size FROM version_environment WHERE version_id = $1",
            )
            .bind(*id)
            .fetch_all()
            .await?
        }
        Scope::All => {
            let sql = HOLDERS
                .iter()
                .map(|(table, _)| format!("SELECT sha256, size FROM {table}"))
                .collect::<Vec<_>>()
                .join(" UNION ");
            meta.read(&sql).fetch_all().await?
        }
    })
}

/// Everything in scope that holds a blob.
#[derive(Default)]
struct Holders {
    files: Vec<FileRef>,
    environment: Vec<FileRef>,
    artifacts: Vec<String>,
    /// Each holder as a record name, with the size it declares.
    described: Vec<(String, i64)>,
}

/// The holders of `digest` in scope; with `not_size`, only those declaring another size.
async fn holders(
    meta: &MetadataStore,
    scope: &Scope,
    digest: &Sha256Digest,
    not_size: Option<u64>,
) -> Result<Holders> {
    // The conditions every holder query ends with.
    let filter = |q: &mut SqlBuilder, versions: bool| {
        q.push(" WHERE f.sha256 = ").push_bind(digest.to_hex());
        if let Some(size) = not_size {
            q.push(" AND f.size <> ").push_bind(size as i64);
        }
        if let (true, Scope::Version(id)) = (versions, scope) {
            q.push(" AND v.id = ").push_bind(*id);
        }
    };
    let mut out = Holders::default();
    for (table, what) in &HOLDERS[..2] {
        let mut q = SqlBuilder::new(
            meta.backend(),
            format!(
                "SELECT m.name, v.number, f.path, f.size FROM {table} f
                 JOIN versions v ON v.id = f.version_id JOIN models m ON m.id = v.model_id"
            ),
        );
        filter(&mut q, true);
        q.push(" ORDER BY m.name, v.number, f.path");
        let rows: Vec<(String, i64, String, i64)> = meta.read_sql(q).fetch_all().await?;
        for (model, version, path, size) in rows {
            out.described
                .push((format!("{model}@{version} {what} {path}"), size));
            let file = FileRef {
                model,
                version: version as u64,
                path,
            };
            match *table {
                "version_files" => out.files.push(file),
                _ => out.environment.push(file),
            }
        }
    }
    if matches!(scope, Scope::All) {
        for (table, what) in &HOLDERS[2..] {
            let name = match *table {
                "artifacts" => "f.path",
                _ => "f.upload_id || ' part ' || CAST(f.part_number AS TEXT)",
            };
            let mut q = SqlBuilder::new(
                meta.backend(),
                format!("SELECT {name}, f.size FROM {table} f"),
            );
            filter(&mut q, false);
            q.push(" ORDER BY 1");
            let rows: Vec<(String, i64)> = meta.read_sql(q).fetch_all().await?;
            for (path, size) in rows {
                out.described.push((format!("{what} {path}"), size));
                out.artifacts.push(path);
            }
        }
    }
    Ok(out)
}

/// The row id of `model`'s version `number`.
pub(crate) async fn version_id(
    meta: &MetadataStore,
    model: &ModelName,
    number: u64,
) -> Result<i64> {
    let id: Option<i64> = meta
        .read(
            "SELECT v.id FROM versions v JOIN models m ON m.id = v.model_id
         WHERE m.name = $1 AND v.number = $2",
        )
        .bind(model.as_str())
        .bind(number as i64)
        .scalar_optional()
        .await?;
    id.ok_or_else(|| Error::VersionNotFound {
        model: model.to_string(),
        reference: number.to_string(),
    })
}
