//! `cairn versions NAME`, `cairn show NAME@REF`, `cairn delete NAME@N`.

use std::process::ExitCode;

use anyhow::{Result, bail};
use cairn_core::lineage::ParentRef;
use cairn_core::{ModelName, ModelVersionRef, VersionRef};

use crate::client::{LineageQuery, RegistryClient};
use crate::output::{self, print_json, print_table};

#[derive(clap::Args)]
#[command(group = clap::ArgGroup::new("which").required(true))]
pub struct ListArgs {
    /// The model whose versions to list.
    #[arg(group = "which")]
    model: Option<ModelName>,
    /// Versions trained on this input: `sha256:…` (a dataset pushed with --data),
    /// `md5:…` (a DVC output), or the bare digest.
    #[arg(long, group = "which", value_name = "DIGEST")]
    data: Option<String>,
    /// Versions built from this commit (or a prefix of it).
    #[arg(long, group = "which", value_name = "SHA")]
    commit: Option<String>,
    /// Versions derived from NAME@N, directly or through others.
    #[arg(long, group = "which", value_name = "NAME@N")]
    parent: Option<ModelVersionRef>,
    /// Only the first N versions (default: every one).
    #[arg(long, value_name = "N")]
    limit: Option<usize>,
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
    let Some(model) = &args.model else {
        return list_derived(registry, args).await;
    };
    let versions = registry.list_versions(model, args.limit).await?;
    if args.json {
        print_json(&versions)?;
        return Ok(ExitCode::SUCCESS);
    }
    let rows: Vec<Vec<String>> = versions
        .iter()
        .map(|v| {
            vec![
                v.version.to_string(),
                v.digest
                    .map_or_else(|| "external".to_owned(), |d| d.to_hex()[..12].to_owned()),
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
    match (&v.digest, &v.external_source) {
        (Some(digest), _) => println!("digest:      {}", digest.prefixed()),
        (None, source) => println!(
            "external:    {} (not held nor verified by the registry)",
            source.as_deref().unwrap_or("-")
        ),
    }
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
    // Which promotion policies this version meets, alias by alias.
    let model = &args.reference.model;
    let mut aliases: Vec<String> = registry
        .policies()
        .await?
        .into_iter()
        .filter(|p| p.governs(model.as_str()))
        .map(|p| p.alias)
        .collect();
    aliases.sort();
    aliases.dedup();
    for alias in aliases {
        let Ok(alias) = cairn_core::AliasName::new(&alias) else {
            continue;
        };
        let unmet = registry.promotion_check(model, &alias, v.version).await?;
        if unmet.is_empty() {
            println!("policy:      {alias}: every rule met");
        } else {
            println!("policy:      {alias}: {}", unmet.join("; "));
        }
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

/// `cairn versions --data|--commit|--parent`: one NAME@N per line.
async fn list_derived(registry: &dyn RegistryClient, args: ListArgs) -> Result<ExitCode> {
    let query = match (args.data, args.commit, args.parent) {
        (Some(d), _, _) => LineageQuery::Data(d),
        (_, Some(c), _) => LineageQuery::Commit(c),
        (_, _, Some(p)) => {
            let VersionRef::Number(version) = p.version else {
                bail!("--parent {p}: name the version by number (NAME@N)");
            };
            LineageQuery::Parent(ParentRef {
                model: p.model.to_string(),
                version,
            })
        }
        _ => unreachable!("clap requires one of the group"),
    };
    let found = registry.versions_from(&query).await?;
    if args.json {
        print_json(&found)?;
    } else {
        for v in &found {
            println!("{v}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
