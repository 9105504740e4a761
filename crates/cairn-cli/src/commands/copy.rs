//! `cairn copy --from REGISTRY --to REGISTRY`: copies a whole registry — versions and
//! their blobs, aliases and their history, experiments, runs and artifacts — e.g. from
//! the embedded default to PostgreSQL + S3. Every copied blob is re-hashed on arrival;
//! the metadata lands in one transaction; running it again copies only what changed.

use std::process::ExitCode;

use anyhow::{Context, Result};
use cairn_registry::Registry;

use crate::client::Location;
use crate::output::print_json;

#[derive(clap::Args)]
pub struct Args {
    /// The registry to copy: a data directory, sqlite://PATH or postgres://….
    #[arg(long, value_name = "REGISTRY")]
    from: String,
    /// Artifact store of the source (required with a postgres:// source).
    #[arg(long, value_name = "URL")]
    from_artifacts: Option<String>,
    /// The registry to copy into (created if it does not exist).
    #[arg(long, value_name = "REGISTRY")]
    to: String,
    /// Artifact store of the target: s3://BUCKET/PREFIX, gs://…, az://… or a directory
    /// (required with a postgres:// target).
    #[arg(long, value_name = "URL")]
    to_artifacts: Option<String>,
    #[arg(long)]
    json: bool,
}

async fn open(spec: &str, artifacts: Option<&str>, role: &str) -> Result<Registry> {
    match Location::parse(spec, artifacts).with_context(|| format!("--{role}"))? {
        Location::Embedded { db, blobs } => {
            Registry::open(&db, &blobs, &cairn_registry::DbOptions::default())
                .await
                .with_context(|| format!("opening {db} (artifacts: {blobs})"))
        }
        Location::Remote(url) => anyhow::bail!(
            "--{role} {url}: copy reads and writes the stores directly; give the server's \
             database and artifact store instead of its URL"
        ),
    }
}

pub async fn run(args: Args) -> Result<ExitCode> {
    let from = open(&args.from, args.from_artifacts.as_deref(), "from").await?;
    let to = open(&args.to, args.to_artifacts.as_deref(), "to").await?;
    let report = from.copy_into(&to).await.context("copying")?;
    if args.json {
        print_json(&serde_json::json!({
            "blobs": report.blobs,
            "blob_bytes": report.blob_bytes,
            "rows": report.rows,
        }))?;
    } else if report.is_empty() {
        println!("nothing to copy: the target already holds everything in the source");
    } else {
        println!(
            "copied {} blob(s), {} byte(s), all verified",
            report.blobs, report.blob_bytes
        );
        for (table, rows) in &report.rows {
            println!("  {table}: {rows} row(s)");
        }
    }
    Ok(ExitCode::SUCCESS)
}
