//! `cairn models list|show|delete`.

use std::process::ExitCode;

use anyhow::Result;
use cairn_core::ModelName;

use crate::client::RegistryClient;
use crate::output::{self, print_json, print_table};

#[derive(clap::Subcommand)]
pub enum ModelsCommand {
    /// Every model with its version count, latest version and aliases.
    List {
        #[arg(long)]
        json: bool,
    },
    /// One model.
    Show {
        name: ModelName,
        #[arg(long)]
        json: bool,
    },
    /// Delete a model with all its versions and aliases.
    Delete { name: ModelName },
}

pub async fn run(registry: &dyn RegistryClient, cmd: ModelsCommand) -> Result<ExitCode> {
    match cmd {
        ModelsCommand::List { json } => {
            let models = registry.list_models().await?;
            if json {
                print_json(&models)?;
            } else {
                let rows: Vec<Vec<String>> = models
                    .iter()
                    .map(|m| {
                        vec![
                            m.name.clone(),
                            m.version_count.to_string(),
                            output::version_or_none(m.latest_version),
                            aliases(&m.aliases),
                            output::time(&m.updated_at),
                        ]
                    })
                    .collect();
                print_table(&["NAME", "VERSIONS", "LATEST", "ALIASES", "UPDATED"], &rows);
            }
        }
        ModelsCommand::Show { name, json } => {
            let m = registry.get_model(&name).await?;
            if json {
                print_json(&m)?;
            } else {
                println!("name:        {}", m.name);
                println!("description: {}", m.description);
                println!(
                    "versions:    {} (latest: {})",
                    m.version_count,
                    output::version_or_none(m.latest_version)
                );
                println!("aliases:     {}", aliases(&m.aliases));
                for (k, v) in &m.tags {
                    println!("tag:         {k}={v}");
                }
                println!(
                    "created:     {} by {}",
                    output::time(&m.created_at),
                    m.created_by
                );
                println!("updated:     {}", output::time(&m.updated_at));
            }
        }
        ModelsCommand::Delete { name } => {
            registry.delete_model(&name).await?;
            eprintln!("deleted model {name}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn aliases(aliases: &std::collections::BTreeMap<String, u64>) -> String {
    if aliases.is_empty() {
        return "-".into();
    }
    aliases
        .iter()
        .map(|(a, n)| format!("{a}→{n}"))
        .collect::<Vec<_>>()
        .join(", ")
}
