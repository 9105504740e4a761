//! `cairn versions NAME`, `cairn show NAME@REF`, `cairn delete NAME@N`.

use std::process::ExitCode;

use anyhow::{Result, bail};
use cairn_core::{ModelName, ModelVersionRef, VersionRef};

use crate::client::RegistryClient;
use crate::output::{self, print_json, print_table};

#[derive(clap::Args)]
pub struct ListArgs {
    model: ModelName,
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
pub struct ShowArgs {
    /// NAME@REF: REF is a version number, an alias or `latest`.
    reference: ModelVersionRef,
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
pub struct DeleteArgs {
    /// NAME@N
    reference: ModelVersionRef,
}

pub async fn list(registry: &dyn RegistryClient, args: ListArgs) -> Result<ExitCode> {
    let versions = registry.list_versions(&args.model).await?;
    if args.json {
        print_json(&versions)?;
        return Ok(ExitCode::SUCCESS);
    }
    let rows: Vec<Vec<String>> = versions
        .iter()
        .map(|v| {
            vec![
                v.version.to_string(),
                v.digest.to_hex()[..12].to_owned(),
                v.file_count.to_string(),
                output::bytes(v.size),
                if v.aliases.is_empty() {
                    "-".into()
                } else {
                    v.aliases.join(",")
                },
                output::time(&v.created_at),
                v.created_by.clone(),
            ]
        })
        .collect();
    print_table(
        &[
            "VERSION", "DIGEST", "FILES", "SIZE", "ALIASES", "CREATED", "BY",
        ],
        &rows,
    );
    Ok(ExitCode::SUCCESS)
}

pub async fn show(registry: &dyn RegistryClient, args: ShowArgs) -> Result<ExitCode> {
    let v = registry
        .get_version(&args.reference.model, &args.reference.version)
        .await?;
    if args.json {
        print_json(&v)?;
        return Ok(ExitCode::SUCCESS);
    }
    println!("{}@{}", v.model, v.version);
    println!("digest:      {}", v.digest.prefixed());
    println!(
        "created:     {} by {}",
        output::time(&v.created_at),
        v.created_by
    );
    if !v.description.is_empty() {
        println!("description: {}", v.description);
    }
    if !v.aliases.is_empty() {
        println!("aliases:     {}", v.aliases.join(", "));
    }
    for (k, value) in &v.metrics {
        println!("metric:      {k}={value}");
    }
    for (k, value) in &v.params {
        println!("param:       {k}={value}");
    }
    for (k, value) in &v.tags {
        println!("tag:         {k}={value}");
    }
    println!("files:       {} ({})", v.file_count, output::bytes(v.size));
    for f in v.files.iter().flatten() {
        println!("  {}  {:>10}  {}", f.sha256, f.size, f.path);
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn delete(registry: &dyn RegistryClient, args: DeleteArgs) -> Result<ExitCode> {
    let VersionRef::Number(number) = args.reference.version else {
        bail!(
            "{}: deleting needs an explicit version number (NAME@N), not an alias or \"latest\"",
            args.reference
        );
    };
    registry
        .delete_version(&args.reference.model, number)
        .await?;
    eprintln!("deleted {}@{number}", args.reference.model);
    Ok(ExitCode::SUCCESS)
}
