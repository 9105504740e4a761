//! `cairn lineage NAME@REF`: where a version came from, as a tree — run, code, data,
//! environment, and its parents with their own lineage; `--json` for machines.

use std::process::ExitCode;

use anyhow::Result;
use cairn_core::ModelVersionRef;
use cairn_core::lineage::Lineage;

use crate::client::RegistryClient;
use crate::output::{bytes, print_json};

#[derive(clap::Args)]
pub struct Args {
    /// NAME@REF: REF is a version number, an alias or `latest`.
    reference: ModelVersionRef,
    #[arg(long)]
    json: bool,
}

pub async fn run(registry: &dyn RegistryClient, args: Args) -> Result<ExitCode> {
    let lineage = registry
        .lineage(&args.reference.model, &args.reference.version)
        .await?;
    if args.json {
        print_json(&lineage)?;
    } else {
        println!(
            "{}@{} {}",
            lineage.model,
            lineage.version,
            lineage.digest.prefixed()
        );
        print_tree(&lineage, "");
    }
    Ok(ExitCode::SUCCESS)
}

/// The lines under one version, each parent's subtree indented below it.
fn print_tree(l: &Lineage, indent: &str) {
    let r = &l.recorded;
    let mut lines: Vec<(String, Option<&Lineage>)> = Vec::new();
    if let Some(run) = &r.run_id {
        lines.push((format!("run: {run}"), None));
    }
    if let Some(code) = &r.code {
        let mut text = format!("code: {}", code.commit);
        let mut notes = Vec::new();
        if let Some(branch) = &code.branch {
            notes.push(branch.clone());
        }
        if code.dirty {
            notes.push("dirty".into());
        }
        if !notes.is_empty() {
            text.push_str(&format!(" ({})", notes.join(", ")));
        }
        if let Some(remote) = &code.remote {
            text.push_str(&format!(" {remote}"));
        }
        lines.push((text, None));
    }
    for d in &r.data {
        let mut text = format!("data ({}): {} {}", d.kind, d.path, d.digest);
        match (d.files, d.size) {
            (Some(files), Some(size)) => {
                text.push_str(&format!(" ({files} files, {})", bytes(size)))
            }
            (None, Some(size)) => text.push_str(&format!(" ({})", bytes(size))),
            _ => {}
        }
        lines.push((text, None));
    }
    for e in &r.environment {
        lines.push((
            format!("environment: {} {}", e.path, e.sha256.prefixed()),
            None,
        ));
    }
    for p in &r.parents {
        let ancestor = l
            .ancestors
            .iter()
            .find(|a| a.model == p.model && a.version == p.version);
        let text = match ancestor {
            Some(a) => format!("parent: {p} {}", a.digest.prefixed()),
            None => format!("parent: {p} (deleted)"),
        };
        lines.push((text, ancestor));
    }
    for c in &l.children {
        lines.push((format!("child: {c}"), None));
    }
    let count = lines.len();
    for (i, (text, subtree)) in lines.into_iter().enumerate() {
        let last = i + 1 == count;
        println!("{indent}{}{text}", if last { "└─ " } else { "├─ " });
        if let Some(parent) = subtree {
            let deeper = format!("{indent}{}", if last { "   " } else { "│  " });
            print_tree(parent, &deeper);
        }
    }
}
