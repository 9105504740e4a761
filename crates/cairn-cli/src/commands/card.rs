//! `cairn card NAME@REF [--format md|json]`: a model card for auditors — description,
//! metrics, params, lineage, every file with its digest, and the history of the aliases
//! that pointed at the version.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::process::ExitCode;

use anyhow::Result;
use cairn_core::lineage::Lineage;
use cairn_core::{AliasMove, AliasName, ModelVersionRef, Version, VersionRef};
use serde::Serialize;

use crate::client::RegistryClient;
use crate::output::{bytes, print_json, time};

#[derive(Clone, Copy, clap::ValueEnum)]
enum Format {
    Md,
    Json,
}

#[derive(clap::Args)]
pub struct Args {
    /// NAME@REF: REF is a version number, an alias or `latest`.
    reference: ModelVersionRef,
    #[arg(long, value_enum, default_value = "md")]
    format: Format,
}

/// Everything a card shows, as `--format json` prints it.
#[derive(Serialize)]
struct Card {
    model_description: String,
    version: Version,
    lineage: Lineage,
    /// Per alias of the model, its moves to or from this version.
    alias_history: BTreeMap<String, Vec<AliasMove>>,
}

pub async fn run(registry: &dyn RegistryClient, args: Args) -> Result<ExitCode> {
    let model = registry.get_model(&args.reference.model).await?;
    let version = registry
        .get_version(&args.reference.model, &args.reference.version)
        .await?;
    // Pin the number: an alias could move between the calls.
    let number = VersionRef::Number(version.version);
    let lineage = registry.lineage(&args.reference.model, &number).await?;
    let mut alias_history = BTreeMap::new();
    for alias in model.aliases.keys() {
        let alias = AliasName::new(alias)?;
        let moves: Vec<AliasMove> = registry
            .alias_history(&args.reference.model, &alias)
            .await?
            .into_iter()
            .filter(|m| m.from == Some(version.version) || m.to == Some(version.version))
            .collect();
        if !moves.is_empty() {
            alias_history.insert(alias.to_string(), moves);
        }
    }
    let card = Card {
        model_description: model.description,
        version,
        lineage,
        alias_history,
    };
    match args.format {
        Format::Json => print_json(&card)?,
        Format::Md => print!("{}", markdown(&card)),
    }
    Ok(ExitCode::SUCCESS)
}

fn markdown(card: &Card) -> String {
    let v = &card.version;
    let l = &card.lineage.recorded;
    let mut md = String::new();
    let mut line = |text: String| {
        md.push_str(&text);
        md.push('\n');
    };
    line(format!("# Model card: {}@{}\n", v.model, v.version));
    line("| | |\n|---|---|".into());
    match (&v.digest, &v.external_source) {
        (Some(digest), _) => line(format!("| digest | `{}` |", digest.prefixed())),
        (None, source) => line(format!(
            "| external | `{}` (files not held nor verified by the registry) |",
            source.as_deref().unwrap_or("-")
        )),
    }
    line(format!(
        "| created | {} by {} |",
        time(&v.created_at),
        v.created_by
    ));
    line(format!("| files | {} ({}) |", v.file_count, bytes(v.size)));
    if !v.aliases.is_empty() {
        line(format!("| aliases | {} |", v.aliases.join(", ")));
    }
    line(String::new());
    if !card.model_description.is_empty() || !v.description.is_empty() {
        line("## Description\n".into());
        for text in [&card.model_description, &v.description] {
            if !text.is_empty() {
                line(format!("{text}\n"));
            }
        }
    }
    let table = |title: &str, rows: Vec<(String, String)>| {
        let mut t = String::new();
        if !rows.is_empty() {
            let _ = writeln!(t, "## {title}\n\n| name | value |\n|---|---|");
            for (k, value) in rows {
                let _ = writeln!(t, "| {k} | {value} |");
            }
            t.push('\n');
        }
        t
    };
    md.push_str(&table(
        "Metrics",
        v.metrics
            .iter()
            .map(|(k, x)| (k.clone(), x.to_string()))
            .collect(),
    ));
    md.push_str(&table(
        "Parameters",
        v.params
            .iter()
            .map(|(k, x)| (k.clone(), x.clone()))
            .collect(),
    ));
    md.push_str(&table(
        "Tags",
        v.tags.iter().map(|(k, x)| (k.clone(), x.clone())).collect(),
    ));

    md.push_str("## Lineage\n\n");
    let before = md.len();
    if let Some(run) = &l.run_id {
        let _ = writeln!(md, "- run: `{run}`");
    }
    if let Some(c) = &l.code {
        let _ = writeln!(
            md,
            "- code: `{}`{}{}{}",
            c.commit,
            c.branch
                .as_ref()
                .map(|b| format!(" on {b}"))
                .unwrap_or_default(),
            if c.dirty {
                " (uncommitted changes)"
            } else {
                ""
            },
            c.remote
                .as_ref()
                .map(|r| format!(", {r}"))
                .unwrap_or_default()
        );
    }
    for d in &l.data {
        let _ = writeln!(md, "- data ({}): {} `{}`", d.kind, d.path, d.digest);
    }
    for e in &l.environment {
        let _ = writeln!(md, "- environment: {} `{}`", e.path, e.sha256.prefixed());
    }
    for p in &l.parents {
        let digest = card
            .lineage
            .ancestors
            .iter()
            .find(|a| a.model == p.model && a.version == p.version)
            .map_or_else(
                || "(deleted)".to_owned(),
                |a| format!("`{}`", a.digest.prefixed()),
            );
        let _ = writeln!(md, "- derived from: {p} {digest}");
    }
    if md.len() == before {
        md.push_str("- nothing recorded\n");
    }
    md.push('\n');

    md.push_str("## Files\n\n| path | size | sha256 |\n|---|---:|---|\n");
    for f in v.files.iter().flatten() {
        let _ = writeln!(md, "| {} | {} | `{}` |", f.path, f.size, f.sha256);
    }
    md.push('\n');

    if !card.alias_history.is_empty() {
        md.push_str("## Alias history\n\n| alias | from | to | action | by | at | reason |\n|---|---:|---:|---|---|---|---|\n");
        for (alias, moves) in &card.alias_history {
            for m in moves {
                let n = |x: Option<u64>| x.map_or_else(|| "-".to_owned(), |n| n.to_string());
                let _ = writeln!(
                    md,
                    "| {alias} | {} | {} | {} | {} | {} | {} |",
                    n(m.from),
                    n(m.to),
                    m.action.as_str(),
                    m.actor,
                    time(&m.at),
                    m.reason.as_deref().unwrap_or("")
                );
            }
        }
        md.push('\n');
    }
    md
}
