//! Aliases: `cairn alias set|delete|protect|unprotect|protected`, `cairn promote`,
//! `cairn rollback`, `cairn history`.

use std::process::ExitCode;

use anyhow::{Result, bail};
use cairn_core::{AliasMove, AliasName, ModelName, ModelVersionRef, VersionRef};

use crate::client::RegistryClient;
use crate::output::{self, print_json, print_table};

#[derive(clap::Subcommand)]
pub enum AliasCommand {
    /// Point ALIAS at version N.
    Set {
        model: ModelName,
        alias: AliasName,
        version: u64,
        #[arg(long)]
        reason: Option<String>,
    },
    /// Remove ALIAS (its history is kept).
    Delete {
        model: ModelName,
        alias: AliasName,
        #[arg(long)]
        reason: Option<String>,
    },
    /// Let only admins of the model move, roll back or delete ALIAS (also its MLflow
    /// stage: protecting `production` protects stage Production). The alias need not
    /// point anywhere yet.
    Protect { model: ModelName, alias: AliasName },
    /// Lift ALIAS's protection.
    Unprotect { model: ModelName, alias: AliasName },
    /// The model's protected aliases, one per line.
    Protected { model: ModelName },
}

#[derive(clap::Args)]
pub struct PromoteArgs {
    /// NAME@N (or NAME@ALIAS: promote what another alias points at).
    reference: ModelVersionRef,
    /// The alias to move, e.g. production.
    #[arg(long)]
    to: AliasName,
    #[arg(long)]
    reason: Option<String>,
    /// List every rule of the alias's policies the version does not meet, and move
    /// nothing (exit 1 when one is unmet).
    #[arg(long)]
    dry_run: bool,
}

#[derive(clap::Args)]
pub struct RollbackArgs {
    model: ModelName,
    alias: AliasName,
    #[arg(long)]
    reason: Option<String>,
}

#[derive(clap::Args)]
pub struct HistoryArgs {
    model: ModelName,
    alias: AliasName,
    #[arg(long)]
    json: bool,
}

pub async fn run(registry: &dyn RegistryClient, cmd: AliasCommand) -> Result<ExitCode> {
    match cmd {
        AliasCommand::Set {
            model,
            alias,
            version,
            reason,
        } => {
            if version == 0 {
                bail!("version numbers start at 1");
            }
            let moved = registry
                .move_alias(&model, &alias, version, reason.as_deref())
                .await?;
            report(&model, &alias, moved, Some(version));
        }
        AliasCommand::Delete {
            model,
            alias,
            reason,
        } => {
            let moved = registry
                .delete_alias(&model, &alias, reason.as_deref())
                .await?;
            report(&model, &alias, moved, None);
        }
        AliasCommand::Protect { model, alias } => {
            registry.protect_alias(&model, &alias, true).await?;
            eprintln!("{model}@{alias} is protected: only admins of {model} move it");
        }
        AliasCommand::Unprotect { model, alias } => {
            registry.protect_alias(&model, &alias, false).await?;
            eprintln!("{model}@{alias} is no longer protected");
        }
        AliasCommand::Protected { model } => {
            for alias in registry.protected_aliases(&model).await? {
                println!("{alias}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn promote(registry: &dyn RegistryClient, args: PromoteArgs) -> Result<ExitCode> {
    let model = &args.reference.model;
    let number = match &args.reference.version {
        VersionRef::Number(n) => *n,
        other => registry.get_version(model, other).await?.version,
    };
    if args.dry_run {
        let unmet = registry.promotion_check(model, &args.to, number).await?;
        if unmet.is_empty() {
            println!("{model}@{number} meets every rule for {}", args.to);
            return Ok(ExitCode::SUCCESS);
        }
        println!(
            "{model}@{number} does not meet {} rule(s) for {}:",
            unmet.len(),
            args.to
        );
        for rule in &unmet {
            println!("  - {rule}");
        }
        return Ok(ExitCode::FAILURE);
    }
    let moved = registry
        .move_alias(model, &args.to, number, args.reason.as_deref())
        .await?;
    report(model, &args.to, moved, Some(number));
    Ok(ExitCode::SUCCESS)
}

pub async fn rollback(registry: &dyn RegistryClient, args: RollbackArgs) -> Result<ExitCode> {
    let moved = registry
        .rollback_alias(&args.model, &args.alias, args.reason.as_deref())
        .await?;
    report(&args.model, &args.alias, moved, None);
    Ok(ExitCode::SUCCESS)
}

pub async fn history(registry: &dyn RegistryClient, args: HistoryArgs) -> Result<ExitCode> {
    let moves = registry.alias_history(&args.model, &args.alias).await?;
    if args.json {
        print_json(&moves)?;
        return Ok(ExitCode::SUCCESS);
    }
    let rows: Vec<Vec<String>> = moves
        .iter()
        .map(|m| {
            vec![
                output::time(&m.at),
                m.action.as_str().to_owned(),
                output::version_or_none(m.from),
                output::version_or_none(m.to),
                m.actor.clone(),
                m.reason.clone().unwrap_or_default(),
            ]
        })
        .collect();
    print_table(&["AT", "ACTION", "FROM", "TO", "ACTOR", "REASON"], &rows);
    Ok(ExitCode::SUCCESS)
}

/// One line on stdout saying what happened to the alias.
fn report(model: &ModelName, alias: &AliasName, moved: Option<AliasMove>, wanted: Option<u64>) {
    match moved {
        Some(m) => println!(
            "{model}@{alias}: {} -> {}",
            output::version_or_none(m.from),
            output::version_or_none(m.to)
        ),
        None => println!(
            "{model}@{alias}: already at {} (nothing changed)",
            output::version_or_none(wanted)
        ),
    }
}
