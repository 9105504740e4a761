//! `cairn user list|password|grant|deny|revoke`: users' passwords (for MLflow's Basic
//! auth: `MLFLOW_TRACKING_USERNAME` / `MLFLOW_TRACKING_PASSWORD`) and their own grants,
//! which are what a password login may do. Tokens carry their own grant; a user's
//! explicit deny binds its tokens too.

use std::io::BufRead;
use std::process::ExitCode;

use anyhow::{Context, Result};
use cairn_core::api::SetGrant;
use cairn_core::auth::{ModelPattern, Role};

use crate::client::RegistryClient;
use crate::output::{print_json, print_table};

#[derive(clap::Subcommand)]
pub enum UserCommand {
    /// Every user: password set or not, and its grants.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Set USER's password (creating the user if new), read from the first line of stdin.
    Password { user: String },
    /// Grant USER a role on everything, on the models PATTERN matches, or on one
    /// experiment (its runs, logged models and artifacts).
    Grant {
        user: String,
        #[arg(long)]
        role: Role,
        #[arg(long, value_name = "PATTERN", conflicts_with = "experiment")]
        models: Option<ModelPattern>,
        #[arg(long, value_name = "ID")]
        experiment: Option<i64>,
    },
    /// Deny USER the models PATTERN matches, or one experiment, whatever else it holds
    /// (its tokens too).
    Deny {
        user: String,
        #[arg(
            long,
            value_name = "PATTERN",
            conflicts_with = "experiment",
            required_unless_present = "experiment"
        )]
        models: Option<ModelPattern>,
        #[arg(long, value_name = "ID")]
        experiment: Option<i64>,
    },
    /// Remove USER's grant or deny on PATTERN or an experiment (on everything without
    /// either).
    Revoke {
        user: String,
        #[arg(long, value_name = "PATTERN", conflicts_with = "experiment")]
        models: Option<ModelPattern>,
        #[arg(long, value_name = "ID")]
        experiment: Option<i64>,
    },
}

fn grant(models: Option<&ModelPattern>, experiment: Option<i64>, role: Option<Role>) -> SetGrant {
    SetGrant {
        models: models.map(|m| m.as_str().to_owned()),
        experiment,
        role,
    }
}

pub async fn run(registry: &dyn RegistryClient, cmd: UserCommand) -> Result<ExitCode> {
    match cmd {
        UserCommand::List { json } => {
            let users = registry.list_users().await?;
            if json {
                print_json(&users)?;
                return Ok(ExitCode::SUCCESS);
            }
            let rows: Vec<Vec<String>> = users
                .iter()
                .map(|u| {
                    let grants: Vec<String> = u
                        .grants
                        .iter()
                        .map(|g| {
                            let on = match (&g.models, g.experiment) {
                                (Some(pattern), _) => pattern.clone(),
                                (None, Some(id)) => format!("experiment {id}"),
                                (None, None) => "*".to_owned(),
                            };
                            g.role.map_or(format!("deny {on}"), |r| format!("{r} {on}"))
                        })
                        .collect();
                    vec![
                        u.name.clone(),
                        if u.has_password { "yes" } else { "no" }.to_owned(),
                        grants.join(", "),
                    ]
                })
                .collect();
            print_table(&["USER", "PASSWORD", "GRANTS"], &rows);
        }
        UserCommand::Password { user } => {
            let mut line = String::new();
            std::io::stdin()
                .lock()
                .read_line(&mut line)
                .context("reading the password from stdin")?;
            let password = line.trim_end_matches(['\n', '\r']);
            registry.set_password(&user, password).await?;
            eprintln!("password of {user} set");
        }
        UserCommand::Grant {
            user,
            role,
            models,
            experiment,
        } => {
            let on = grant(models.as_ref(), experiment, Some(role));
            registry.set_grant(&user, &on).await?;
        }
        UserCommand::Deny {
            user,
            models,
            experiment,
        } => {
            let on = grant(models.as_ref(), experiment, None);
            registry.set_grant(&user, &on).await?;
        }
        UserCommand::Revoke {
            user,
            models,
            experiment,
        } => {
            let on = grant(models.as_ref(), experiment, None);
            registry.revoke_grant(&user, &on).await?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
