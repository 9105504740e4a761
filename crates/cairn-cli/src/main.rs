//! `cairn`: a versioned, content-addressed model registry.
//!
//! Exit codes: 0 success, 1 failure, 2 usage error. Failures print one `error:` line on
//! stderr; data goes to stdout (`--json` for machines).

mod capture;
mod client;
mod commands;
mod confined;
mod output;
mod progress;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::client::Location;

/// mimalloc instead of the system allocator, for Rust and (with its `override` feature)
/// for the bundled SQLite too: the server's rows are allocated on the database's threads
/// and freed on the request threads, which glibc's per-thread arenas handle with locks
/// and consolidation passes (a quarter of a search's CPU in profiles).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "cairn",
    version,
    about = "Versioned, content-addressed model registry"
)]
struct Cli {
    /// Registry to use: a data directory, sqlite://PATH or postgres://… (embedded: the
    /// CLI opens the stores itself, no server needed), or http(s)://HOST:PORT (a
    /// `cairn server`). Default: $CAIRN_HOME, else the platform data directory
    /// (~/.local/share/cairn on Linux).
    #[arg(long, global = true, env = "CAIRN_REGISTRY", value_name = "REGISTRY")]
    registry: Option<String>,

    /// Where blobs live, for a registry the CLI opens itself and for `cairn server`:
    /// s3://BUCKET/PREFIX, gs://BUCKET/PREFIX, az://CONTAINER/PREFIX or a directory.
    /// Required with a postgres:// registry. Object stores read their usual
    /// environment (AWS_ENDPOINT_URL, AWS_REGION, AWS_ACCESS_KEY_ID…).
    #[arg(long, global = true, env = "CAIRN_ARTIFACTS", value_name = "URL")]
    artifacts: Option<String>,

    /// With a server (http(s)://…): retry a request that failed on the way or found
    /// the registry briefly unavailable at most N times. By default requests are
    /// retried for about a minute in all, with the same idempotency key: a push or an
    /// alias move retried is never done twice.
    #[arg(long, global = true, env = "CAIRN_RETRIES", value_name = "N")]
    retries: Option<u32>,

    /// With a server: never retry a request.
    #[arg(long, global = true, conflicts_with = "retries")]
    no_retry: bool,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Register a file or directory as a new version of a model.
    Push(commands::push::Args),
    /// Write a version's files into a directory, verifying every byte.
    Pull(commands::pull::Args),
    /// The registry's events (every change), as they commit with --follow.
    Events(commands::events::Args),
    /// Serve an ONNX version over HTTP (MLflow's scoring protocol), following its
    /// alias: a promotion or rollback is live within a second.
    Serve(commands::serve::Args),
    /// List, show and delete models.
    #[command(subcommand)]
    Models(commands::models::ModelsCommand),
    /// List the versions of a model, or the versions that came from a dataset, a commit
    /// or a parent version.
    Versions(commands::versions::ListArgs),
    /// Show one version: manifest, metadata, aliases.
    Show(commands::versions::ShowArgs),
    /// Delete one version (its number is never reused).
    Delete(commands::versions::DeleteArgs),
    /// Set or delete an alias.
    #[command(subcommand)]
    Alias(commands::alias::AliasCommand),
    /// Point an alias (e.g. production) at a version.
    Promote(commands::alias::PromoteArgs),
    /// Promotion policies: the rules a version must meet before an alias points at it.
    #[command(subcommand)]
    Policy(commands::policy::PolicyCommand),
    /// Approve a version for an alias (policies may require approvals).
    Approve(commands::policy::ApproveArgs),
    /// Send the registry's events to other systems, signed, retried, in order per model.
    #[command(subcommand)]
    Webhooks(commands::webhooks::WebhooksCommand),
    /// Move an alias back to the version it pointed at before its last move.
    Rollback(commands::alias::RollbackArgs),
    /// Every move of an alias: from, to, who, when, why.
    History(commands::alias::HistoryArgs),
    /// Re-hash stored files and report any that are corrupt or missing.
    Verify(commands::verify::Args),
    /// A model card: description, metrics, params, lineage, files, alias history.
    Card(commands::card::Args),
    /// Where a version came from: run, code, data, environment, parents.
    Lineage(commands::lineage::Args),
    /// What differs between two versions: metrics, params, tags, files, lineage.
    Diff(commands::diff::Args),
    /// Delete the blobs nothing references any more (after deletions).
    Gc(commands::gc::Args),
    /// The tamper-evident log of every change: list, verify, export its head.
    #[command(subcommand)]
    Audit(commands::audit::AuditCommand),
    /// Run the registry server (native REST API and MLflow's).
    Server(commands::server::Args),
    /// Bring a registry database's schema up to date.
    Migrate(commands::server::MigrateArgs),
    /// Copy a whole registry into another (e.g. embedded to PostgreSQL + S3).
    Copy(commands::copy::Args),
    /// API tokens: create (prints the secret once), list, revoke.
    #[command(subcommand)]
    Token(commands::token::TokenCommand),
    /// Users: passwords (for MLflow's Basic auth) and their own grants.
    #[command(subcommand)]
    User(commands::user::UserCommand),
}

/// Parses the command line. A usage error is one `error:` line on stderr and exit 2
/// (clap's usage and `--help` hint are left out: `--help` says it all); `--help` and
/// `--version` print as usual.
fn parse_args() -> Result<Cli, ExitCode> {
    use clap::error::ErrorKind;
    match Cli::try_parse() {
        Ok(cli) => Ok(cli),
        Err(e) if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) => {
            let _ = e.print();
            Err(ExitCode::SUCCESS)
        }
        Err(e) if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = e.print();
            Err(ExitCode::from(2))
        }
        Err(e) => {
            eprintln!("{}", usage_error_line(&e.render().to_string()));
            Err(ExitCode::from(2))
        }
    }
}

/// clap's message on one line: its first paragraph (for a missing argument, the lines
/// after the first name what is missing) and the usage it shows.
fn usage_error_line(rendered: &str) -> String {
    let mut line: Vec<&str> = rendered
        .lines()
        .take_while(|l| !l.trim().is_empty())
        .map(str::trim)
        .collect();
    if line.is_empty() {
        line.push("error: invalid arguments");
    }
    let mut line = line.join(" ");
    if let Some(usage) = rendered
        .lines()
        .find_map(|l| l.trim().strip_prefix("Usage: "))
    {
        line.push_str(&format!(" (usage: {usage})"));
    }
    line
}

fn main() -> ExitCode {
    let cli = match parse_args() {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    exit_quietly_on_closed_stdout();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", one_line(&e));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes on one line, skipping causes their parent already quotes.
fn one_line(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if !line.contains(&text) {
            if !line.is_empty() {
                line.push_str(": ");
            }
            line.push_str(&text);
        }
    }
    line.replace('\n', " ")
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let artifacts = cli.artifacts.as_deref();
    match cli.command {
        Command::Server(args) => return commands::server::run(args, artifacts).await,
        Command::Migrate(args) => {
            init_cli_logging();
            return commands::server::migrate(args)
                .await
                .map(|()| ExitCode::SUCCESS);
        }
        Command::Copy(args) => {
            init_cli_logging();
            return commands::copy::run(args).await;
        }
        // A serving process is a service: its swaps and failures are logged.
        Command::Serve(_) => commands::server::init_logging(commands::server::LogFormat::Text),
        _ => init_cli_logging(),
    }
    let location = match &cli.registry {
        Some(spec) => Location::parse(spec, artifacts)?,
        None => Location::data_dir(
            Location::default_data_dir()?,
            artifacts
                .map(cairn_registry::BlobLocation::parse)
                .transpose()?,
        ),
    };
    let command = cli.command;
    let retry = client::RetryPolicy::from_flags(cli.retries, cli.no_retry);
    let registry = location.connect(retry).await?;
    let registry = registry.as_ref();
    match command {
        Command::Push(args) => commands::push::run(registry, args).await,
        Command::Pull(args) => commands::pull::run(registry, args).await,
        Command::Serve(args) => commands::serve::run(registry, args).await,
        Command::Events(args) => commands::events::run(registry, args).await,
        Command::Policy(cmd) => commands::policy::run(registry, cmd).await,
        Command::Approve(args) => commands::policy::approve(registry, args).await,
        Command::Webhooks(cmd) => commands::webhooks::run(registry, cmd).await,
        Command::Models(cmd) => commands::models::run(registry, cmd).await,
        Command::Versions(args) => commands::versions::list(registry, args).await,
        Command::Show(args) => commands::versions::show(registry, args).await,
        Command::Delete(args) => commands::versions::delete(registry, args).await,
        Command::Alias(cmd) => commands::alias::run(registry, cmd).await,
        Command::Promote(args) => commands::alias::promote(registry, args).await,
        Command::Rollback(args) => commands::alias::rollback(registry, args).await,
        Command::History(args) => commands::alias::history(registry, args).await,
        Command::Verify(args) => commands::verify::run(registry, args).await,
        Command::Audit(cmd) => commands::audit::run(registry, cmd).await,
        Command::Gc(args) => commands::gc::run(registry, args).await,
        Command::Lineage(args) => commands::lineage::run(registry, args).await,
        Command::Diff(args) => commands::diff::run(registry, args).await,
        Command::Card(args) => commands::card::run(registry, args).await,
        Command::Token(cmd) => commands::token::run(registry, cmd).await,
        Command::User(cmd) => commands::user::run(registry, cmd).await,
        Command::Server(_) | Command::Migrate(_) | Command::Copy(_) => {
            unreachable!("handled above")
        }
    }
}

/// `cairn versions demo | head` should stop quietly when `head` exits, like every Unix
/// tool. SIGPIPE itself stays ignored (Rust's default): a server that dies in the middle
/// of an upload must give the CLI an error to report, not kill it. A print to a closed
/// stdout then panics; this hook turns that one panic into a silent exit with the
/// status shells report for a SIGPIPE death.
fn exit_quietly_on_closed_stdout() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        let message = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or("");
        if message.contains("failed printing to stdout") && message.contains("Broken pipe") {
            std::process::exit(128 + 13);
        }
        default(info)
    }));
}

/// Library warnings only, on stderr; `RUST_LOG` overrides.
fn init_cli_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, Parser};

    #[test]
    fn a_missing_argument_is_named_on_the_one_line() {
        let Err(e) = super::Cli::try_parse_from(["cairn", "rollback", "fraud"]) else {
            panic!("parsed without its alias");
        };
        let line = super::usage_error_line(&e.render().to_string());
        assert!(!line.contains('\n'));
        assert!(line.contains("not provided: <ALIAS>"), "{line}");
        assert!(line.contains("(usage: cairn rollback"), "{line}");
    }

    #[test]
    fn cli_definition_is_consistent() {
        super::Cli::command().debug_assert();
    }
}
