//! `cairn token create|list|revoke`: API tokens. Against the registry's own data
//! directory or database (embedded), which is how the first admin token of a fresh
//! server is made; against a server, as one of its admins. `create` prints the secret
//! alone on stdout (details on stderr), so `T=$(cairn token create --user ci)` works;
//! nothing ever prints it again.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Result, bail};
use cairn_core::api::CreateToken;
use cairn_core::auth::{ModelPattern, Role};

use crate::client::RegistryClient;
use crate::output::{print_json, print_table, time};

#[derive(clap::Subcommand)]
pub enum TokenCommand {
    /// Create a token (and its user, if new); prints the secret once.
    Create(CreateArgs),
    /// Every token: id, user, role, scope, expiry. Never a secret.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Revoke a token: it authenticates nothing from then on.
    Revoke {
        /// The token's id (`cairn token list`).
        id: String,
    },
}

#[derive(clap::Args)]
pub struct CreateArgs {
    /// The user (or service account) the token speaks for.
    #[arg(long)]
    user: String,
    /// reader, writer or admin.
    #[arg(long, default_value = "reader")]
    role: Role,
    /// Only models whose names match this glob (`*`, `?`; `\*` and `\?` match
    /// themselves).
    #[arg(long, value_name = "PATTERN")]
    models: Option<ModelPattern>,
    /// Expire after this long (e.g. 30d, 12h); never, when left out.
    #[arg(long, value_parser = super::parse_duration)]
    expires: Option<Duration>,
    /// A name to recognise it by in `cairn token list`.
    #[arg(long, default_value = "")]
    name: String,
}

pub async fn run(registry: &dyn RegistryClient, cmd: TokenCommand) -> Result<ExitCode> {
    match cmd {
        TokenCommand::Create(args) => {
            let lifetime = match args.expires {
                Some(d) if d.as_secs() == 0 => bail!("--expires must be at least one second"),
                Some(d) => Some(i64::try_from(d.as_secs())?),
                None => None,
            };
            let request = CreateToken {
                user: args.user,
                name: args.name,
                role: args.role,
                models: args.models.map(|m| m.as_str().to_owned()),
                expires_in_seconds: lifetime,
            };
            let created = registry.create_token(&request).await?;
            let (info, secret) = (created.token, created.secret);
            println!("{secret}");
            eprintln!(
                "token {} for {} ({}{}{})",
                info.id,
                info.user,
                info.role,
                info.models
                    .map(|m| format!(", models {m}"))
                    .unwrap_or_default(),
                info.expires_at
                    .map(|at| format!(", expires {}", time(&at)))
                    .unwrap_or_default()
            );
        }
        TokenCommand::List { json } => {
            let tokens = registry.list_tokens().await?;
            if json {
                print_json(&tokens)?;
                return Ok(ExitCode::SUCCESS);
            }
            let rows: Vec<Vec<String>> = tokens
                .iter()
                .map(|t| {
                    vec![
                        t.id.clone(),
                        t.user.clone(),
                        t.role.to_string(),
                        t.models.clone().unwrap_or_else(|| "*".into()),
                        t.name.clone(),
                        time(&t.created_at),
                        t.expires_at.as_ref().map_or_else(|| "-".into(), time),
                        t.revoked_at.as_ref().map_or_else(|| "-".into(), time),
                    ]
                })
                .collect();
            print_table(
                &[
                    "ID", "USER", "ROLE", "MODELS", "NAME", "CREATED", "EXPIRES", "REVOKED",
                ],
                &rows,
            );
        }
        TokenCommand::Revoke { id } => {
            let token = registry.revoke_token(&id).await?;
            eprintln!("token {} of {} revoked", token.id, token.user);
        }
    }
    Ok(ExitCode::SUCCESS)
}
