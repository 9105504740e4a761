//! `cairn gc`: reclaims the blobs nothing references any more (deleted versions and
//! models keep their bytes until then). `--dry-run` only reports; `--why DIGEST` says
//! what keeps one blob alive.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Result;
use cairn_core::Sha256Digest;

use crate::client::RegistryClient;
use crate::output::{bytes, print_json};

#[derive(clap::Args)]
pub struct Args {
    /// Report what would be freed; delete nothing.
    #[arg(long)]
    dry_run: bool,
    /// Keep unreferenced blobs, and staged files of uploads, younger than this (e.g. 1h,
    /// 7d): a push uploads its blobs before it registers the version that references
    /// them, and another server may be in the middle of an upload.
    #[arg(long, default_value = "24h", value_parser = super::parse_duration)]
    grace: Duration,
    /// Say what keeps this blob alive instead of collecting.
    #[arg(long, value_name = "DIGEST", conflicts_with = "dry_run")]
    why: Option<Sha256Digest>,
    #[arg(long)]
    json: bool,
}

pub async fn run(registry: &dyn RegistryClient, args: Args) -> Result<ExitCode> {
    if let Some(digest) = args.why {
        let used = registry.why_blob(&digest).await?;
        if args.json {
            print_json(&used)?;
            return Ok(ExitCode::SUCCESS);
        }
        for f in &used.versions {
            println!("version {}@{} file {}", f.model, f.version, f.path);
        }
        for a in &used.artifacts {
            println!("artifact {a}");
        }
        for u in &used.uploads {
            println!("upload in progress {u}");
        }
        let referenced =
            !(used.versions.is_empty() && used.artifacts.is_empty() && used.uploads.is_empty());
        match (used.stored, referenced, used.collected_at) {
            (false, _, Some(at)) => println!("not stored: garbage-collected at {at}"),
            (false, _, None) => println!("not stored"),
            (true, false, _) => {
                println!("unreferenced: the next gc past its grace period frees it")
            }
            (true, true, _) => {}
        }
        return Ok(ExitCode::SUCCESS);
    }
    let report = registry.collect_garbage(args.grace, args.dry_run).await?;
    if args.json {
        print_json(&report)?;
        return Ok(ExitCode::SUCCESS);
    }
    for d in &report.freed {
        println!("{d}");
    }
    let verb = if report.dry_run {
        "would free"
    } else {
        "freed"
    };
    eprintln!(
        "{verb} {} blob(s), {} of {} stored; kept {} unreferenced blob(s) younger than the grace period",
        report.freed.len(),
        bytes(report.freed_bytes),
        report.stored,
        report.kept_young
    );
    if report.stale_uploads > 0 {
        let verb = if report.dry_run {
            "would remove"
        } else {
            "removed"
        };
        eprintln!(
            "{verb} {} staged file(s) of interrupted uploads",
            report.stale_uploads
        );
    }
    Ok(ExitCode::SUCCESS)
}
