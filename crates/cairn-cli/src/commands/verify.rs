//! `cairn verify NAME@REF` / `cairn verify --all`: recompute versions' digests from their
//! manifest rows and re-hash stored blobs; exit 1 naming every corrupt or missing file,
//! every record that disagrees with its content, and the versions they break.

use std::process::ExitCode;

use anyhow::Result;
use cairn_core::ModelVersionRef;
use cairn_core::model::BlobProblem;

use crate::client::RegistryClient;
use crate::output::{self, print_json};

#[derive(clap::Args)]
#[command(group = clap::ArgGroup::new("what").required(true))]
pub struct Args {
    /// NAME@REF to verify.
    #[arg(group = "what")]
    reference: Option<ModelVersionRef>,
    /// Verify every version of every model.
    #[arg(long, group = "what")]
    all: bool,
    #[arg(long)]
    json: bool,
}

pub async fn run(registry: &dyn RegistryClient, args: Args) -> Result<ExitCode> {
    let report = match &args.reference {
        Some(r) => registry.verify_version(&r.model, &r.version).await?,
        None => registry.verify_all().await?,
    };
    if args.json {
        print_json(&report)?;
    } else {
        for p in &report.problems {
            let what = match p.problem {
                BlobProblem::Corrupt => "corrupt",
                BlobProblem::Missing => "missing",
            };
            for f in &p.files {
                println!(
                    "{what}: {}@{} {} (sha256:{})",
                    f.model, f.version, f.path, p.sha256
                );
            }
            for f in &p.environment {
                println!(
                    "{what}: {}@{} environment file {} (sha256:{})",
                    f.model, f.version, f.path, p.sha256
                );
            }
            for path in &p.artifacts {
                println!("{what}: artifact {path} (sha256:{})", p.sha256);
            }
        }
        for r in &report.records {
            println!("tampered: {}: {}", r.record, r.reason);
        }
    }
    // One external version asked for by name has nothing that could be verified: say so,
    // and do not answer "ok".
    if let Some(r) = &args.reference
        && report.external > 0
        && report.ok()
    {
        eprintln!(
            "error: {}@{} is an external version: the registry does not hold its files, so nothing was verified",
            r.model, r.version
        );
        return Ok(ExitCode::FAILURE);
    }
    if report.external > 0 {
        eprintln!(
            "{} external version(s) skipped: their files are not held by the registry",
            report.external
        );
    }
    if report.ok() {
        eprintln!(
            "ok: {} version(s), {} blob(s), {} verified",
            report.versions,
            report.blobs,
            output::bytes(report.bytes)
        );
        return Ok(ExitCode::SUCCESS);
    }
    let mut broken: Vec<String> = report
        .problems
        .iter()
        .flat_map(|p| p.files.iter().chain(&p.environment))
        .map(|f| format!("{}@{}", f.model, f.version))
        .chain(
            report
                .records
                .iter()
                .map(|r| r.record.split(' ').next().unwrap_or_default().to_owned()),
        )
        .collect();
    broken.sort();
    broken.dedup();
    eprintln!(
        "error: {} of {} blob(s) corrupt or missing, {} record(s) disagreeing with their content; broken: {}",
        report.problems.len(),
        report.blobs,
        report.records.len(),
        broken.join(", ")
    );
    Ok(ExitCode::FAILURE)
}
