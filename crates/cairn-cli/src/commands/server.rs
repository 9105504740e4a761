//! `cairn server`: the registry over HTTP, on the embedded stores by default, or on
//! PostgreSQL and an object store (`--db`, `--artifacts`) for many servers as one
//! registry. `cairn migrate` brings a database's schema up to date without serving.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use cairn_registry::{BlobLocation, DbLocation, DbOptions, Registry};

use crate::client::Location;

/// Where the server keeps metadata and blobs, and how it talks to the database.
#[derive(clap::Args)]
pub struct StoreArgs {
    /// Data directory: the default home of the SQLite database and the blobs.
    /// Default: $CAIRN_HOME, else the platform data directory.
    #[arg(long, value_name = "DIR")]
    data: Option<PathBuf>,
    /// Metadata database: postgres://USER@HOST/DB (many servers, one registry), or a
    /// SQLite file. Default: DIR/cairn.db.
    #[arg(long, env = "CAIRN_DB", value_name = "URL")]
    db: Option<String>,
    /// Most database connections this server opens.
    #[arg(long, env = "CAIRN_DB_MAX_CONNECTIONS", default_value_t = 16)]
    db_max_connections: u32,
    /// How long a request waits for a database connection (e.g. 1500ms, 3s): with the
    /// database down, requests answer 503 (`database_unavailable`) after this long.
    #[arg(long, env = "CAIRN_DB_ACQUIRE_TIMEOUT", default_value = "1500ms", value_parser = super::parse_duration)]
    db_acquire_timeout: Duration,
    /// PostgreSQL: statements running longer are cancelled (0 = never).
    #[arg(long, env = "CAIRN_DB_STATEMENT_TIMEOUT", default_value = "30s", value_parser = super::parse_duration)]
    db_statement_timeout: Duration,
    /// How often a write is run again after a database failure that provably left
    /// nothing committed (deadlock, serialization failure, a connection lost before
    /// its commit). A commit whose answer was lost is looked up, never run again blindly.
    #[arg(long, env = "CAIRN_DB_RETRIES", default_value_t = 3)]
    db_retries: u32,
}

impl StoreArgs {
    /// The database, the blob store (`artifacts`, else the data directory) and the
    /// pool settings.
    fn resolve(&self, artifacts: Option<&str>) -> Result<(DbLocation, BlobLocation, DbOptions)> {
        let data = || match &self.data {
            Some(dir) => Ok(dir.clone()),
            None => Location::default_data_dir(),
        };
        let db = match &self.db {
            Some(url) => DbLocation::parse(url)?,
            None => DbLocation::Sqlite(data()?.join("cairn.db")),
        };
        let blobs = match artifacts {
            Some(spec) => BlobLocation::parse(spec)?,
            None => BlobLocation::Local(data()?),
        };
        let options = DbOptions {
            max_connections: self.db_max_connections.max(1),
            acquire_timeout: self.db_acquire_timeout,
            statement_timeout: (!self.db_statement_timeout.is_zero())
                .then_some(self.db_statement_timeout),
            retries: self.db_retries,
        };
        Ok((db, blobs, options))
    }
}

/// Staged uploads older than this were abandoned (see `BlobStore::remove_stale_uploads`):
/// the default grace period of `cairn gc`. Younger ones may be uploads in progress on
/// another server sharing the directory or bucket.
const STALE_UPLOAD_AGE: Duration = Duration::from_secs(24 * 60 * 60);

#[derive(clap::Args)]
pub struct Args {
    /// The address to listen on. Anything but a loopback address serves everyone who
    /// can reach it: that needs --auth (or --insecure-no-auth).
    #[arg(long, env = "CAIRN_HOST", default_value = "127.0.0.1")]
    host: String,
    /// Enforce authentication: every request but /healthz and /readyz needs a token
    /// (`cairn token create`), and may do what the token's role allows.
    #[arg(long, env = "CAIRN_AUTH")]
    auth: bool,
    /// Serve a non-loopback address without authentication: anyone who can reach it
    /// may read, write and delete.
    #[arg(long, env = "CAIRN_INSECURE_NO_AUTH", conflicts_with = "auth")]
    insecure_no_auth: bool,
    /// 0 picks a free port; the address is printed on stdout.
    #[arg(long, env = "CAIRN_PORT", default_value_t = 5000)]
    port: u16,
    #[command(flatten)]
    store: StoreArgs,
    /// Host headers the server answers, comma-separated globs (e.g.
    /// registry.example.com,*.internal:5000; `*` for any). Default: localhost, loopback
    /// and private network addresses. A server behind a load balancer or reached by
    /// name needs its names here.
    #[arg(long, env = "CAIRN_ALLOWED_HOSTS", value_delimiter = ',')]
    allowed_hosts: Option<Vec<String>>,
    /// Origins (besides local pages) whose pages may change things and read answers,
    /// comma-separated globs (e.g. https://ui.example.com); `*` for any.
    #[arg(long, env = "CAIRN_CORS_ALLOWED_ORIGINS", value_delimiter = ',')]
    cors_allowed_origins: Vec<String>,
    /// The X-Frame-Options header: SAMEORIGIN, DENY, or NONE for none.
    #[arg(long, env = "CAIRN_X_FRAME_OPTIONS", default_value = "SAMEORIGIN")]
    x_frame_options: String,
    /// Serve HTTPS: the certificate chain, a PEM file (with --tls-key).
    #[arg(long, env = "CAIRN_TLS_CERT", value_name = "PEM", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The certificate's private key, a PEM file (with --tls-cert).
    #[arg(long, env = "CAIRN_TLS_KEY", value_name = "PEM", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    #[command(flatten)]
    limits: LimitArgs,
    /// Let webhooks call plain http URLs and private, loopback and link-local
    /// addresses (internal networks, tests). Otherwise only https to public addresses.
    #[arg(long, env = "CAIRN_WEBHOOK_ALLOW_PRIVATE")]
    webhook_allow_private: bool,
    /// How long a webhook delivery is retried before it is marked failed.
    #[arg(long, env = "CAIRN_WEBHOOK_RETRY_FOR", default_value = "24h", value_parser = super::parse_duration)]
    webhook_retry_for: Duration,
    /// How long an idempotency key (a write's `Idempotency-Key`; the CLI sends one
    /// with every push and alias move) is remembered: a retry within it answers the
    /// first write's result.
    #[arg(long, env = "CAIRN_IDEMPOTENCY_TTL", default_value = "24h", value_parser = super::parse_duration)]
    idempotency_ttl: Duration,
    /// Log format on stderr.
    #[arg(long, value_enum, default_value = "text")]
    log_format: LogFormat,
}

/// What one client may take from the server (defaults: `cairn_server::ServerLimits`).
#[derive(clap::Args)]
struct LimitArgs {
    /// Open connections at most.
    #[arg(long, env = "CAIRN_MAX_CONNECTIONS", default_value_t = 8192)]
    max_connections: usize,
    /// Time to send a request's head; also the longest a connection may idle.
    #[arg(long, env = "CAIRN_HEADER_TIMEOUT", default_value = "10s", value_parser = super::parse_duration)]
    header_timeout: Duration,
    /// The largest JSON request body, in bytes (uploads stream and have no limit).
    #[arg(long, env = "CAIRN_MAX_JSON_BODY", default_value_t = cairn_server::ServerLimits::default().max_json_body)]
    max_json_body: usize,
    /// The longest a request body may go without sending a byte.
    #[arg(long, env = "CAIRN_BODY_STALL_TIMEOUT", default_value = "60s", value_parser = super::parse_duration)]
    body_stall_timeout: Duration,
    /// Streamed uploads at once; the others wait their turn.
    #[arg(long, env = "CAIRN_MAX_UPLOADS", default_value_t = 8)]
    max_uploads: usize,
    /// Writes a second per token (burst: twice that); 0 for no limit.
    #[arg(long, env = "CAIRN_WRITES_PER_SECOND", default_value_t = 1000)]
    writes_per_second: u32,
}

impl LimitArgs {
    fn limits(&self) -> cairn_server::ServerLimits {
        cairn_server::ServerLimits {
            max_connections: self.max_connections.max(1),
            header_timeout: self.header_timeout,
            max_json_body: self.max_json_body,
            body_stall_timeout: self.body_stall_timeout,
            max_uploads: self.max_uploads.max(1),
            writes_per_second: self.writes_per_second,
            ..Default::default()
        }
    }
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub(crate) enum LogFormat {
    Text,
    Json,
}

/// How often expired idempotency keys are swept (a key past its time is ignored
/// anyway; this keeps the table small).
const KEY_SWEEP_EVERY: Duration = Duration::from_secs(10 * 60);

/// Forgets expired idempotency keys, now and then, for as long as the server runs.
async fn expire_idempotency_keys(registry: Registry) {
    let mut every = tokio::time::interval(KEY_SWEEP_EVERY);
    loop {
        every.tick().await;
        match registry.expire_idempotency_keys().await {
            Ok(0) => {}
            Ok(n) => tracing::debug!(forgotten = n, "expired idempotency keys swept"),
            Err(e) => tracing::warn!(error = %e, "could not sweep expired idempotency keys"),
        }
    }
}

/// How often the planner statistics of the searched tables are checked (a search on
/// a table loaded since its last analysis may plan badly until then).
const STATISTICS_EVERY: Duration = Duration::from_secs(5);

/// Keeps the planner statistics fresh (PostgreSQL), for as long as the server runs.
async fn refresh_statistics(registry: Registry) {
    let mut every = tokio::time::interval(STATISTICS_EVERY);
    loop {
        every.tick().await;
        match registry.refresh_statistics().await {
            Ok(tables) if tables.is_empty() => {}
            Ok(tables) => tracing::debug!(?tables, "planner statistics refreshed"),
            Err(e) => tracing::warn!(error = %e, "could not refresh planner statistics"),
        }
    }
}

/// Whether `host` names this machine only (127.0.0.0/8, ::1, localhost).
fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .trim_matches(['[', ']'])
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

pub async fn run(args: Args, artifacts: Option<&str>) -> Result<ExitCode> {
    if let Err(e) = server_options(&args).check() {
        eprintln!("error: {e}");
        return Ok(ExitCode::from(2));
    }
    if !is_loopback(&args.host) && !args.auth && !args.insecure_no_auth {
        eprintln!(
            "error: --host {} would serve everyone who can reach it without authentication; pass --auth (and create a token with `cairn token create`), listen on a loopback address, or pass --insecure-no-auth to serve the network anyway",
            args.host
        );
        return Ok(ExitCode::from(2));
    }
    init_logging(args.log_format);
    if !is_loopback(&args.host) && !args.auth {
        tracing::warn!(host = %args.host, "serving a network address without authentication (--insecure-no-auth)");
    }
    let (db, blobs, options) = args.store.resolve(artifacts)?;
    let webhooks = super::webhooks::config(
        &db,
        args.store.data.as_deref(),
        Some((args.webhook_allow_private, args.webhook_retry_for)),
    )?;
    let registry = Registry::open(&db, &blobs, &options)
        .await
        .with_context(|| format!("opening the registry at {db} (artifacts: {blobs})"))?
        .with_webhooks(webhooks)
        .with_key_ttl(args.idempotency_ttl);
    tokio::spawn(expire_idempotency_keys(registry.clone()));
    if matches!(db, DbLocation::Postgres(_)) {
        tokio::spawn(refresh_statistics(registry.clone()));
    }
    // Uploads cut off by a crash leave staged parts behind; a day is far longer than
    // any upload in progress.
    let sweeper = registry.clone();
    tokio::spawn(async move {
        match sweeper
            .blobs()
            .remove_stale_uploads(STALE_UPLOAD_AGE, false)
            .await
        {
            Ok(0) => {}
            Ok(n) => tracing::info!(removed = n, "removed uploads abandoned over a day ago"),
            Err(e) => tracing::warn!(error = %e, "could not sweep abandoned uploads"),
        }
    });
    if args.auth {
        warn_without_admin(&registry).await?;
    }
    let listener = tokio::net::TcpListener::bind((args.host.as_str(), args.port))
        .await
        .with_context(|| format!("cannot listen on {}:{}", args.host, args.port))?;
    let addr = listener.local_addr()?;
    let shutdown = cairn_server::shutdown_signal().context("installing signal handlers")?;
    let options = server_options(&args);
    // A certificate that does not load stops the server before it says it listens.
    if let Some(tls) = &options.tls {
        tls.load().context("loading the TLS certificate")?;
    }
    let scheme = if options.tls.is_some() {
        "https"
    } else {
        "http"
    };
    // Scripts and tests read the bound address (port 0 picks one) from this line.
    println!("cairn server listening on {scheme}://{addr} (metadata: {db}, artifacts: {blobs})");
    tracing::info!(%addr, metadata = %db, artifacts = %blobs, "cairn server started");
    // Webhook deliveries run beside the requests and stop with them.
    let (stopping, stopped) = tokio::sync::watch::channel(false);
    let deliveries = tokio::spawn({
        let registry = registry.clone();
        let mut stopped = stopped.clone();
        async move {
            registry
                .deliver_webhooks(async move {
                    let _ = stopped.wait_for(|s| *s).await;
                })
                .await
        }
    });
    let shutdown = async move {
        shutdown.await;
        let _ = stopping.send(true);
    };
    cairn_server::serve(registry, &options, listener, shutdown)
        .await
        .context("serving")?;
    let _ = deliveries.await;
    Ok(ExitCode::SUCCESS)
}

#[derive(clap::Args)]
pub struct MigrateArgs {
    #[command(flatten)]
    store: StoreArgs,
}

/// Applies pending schema migrations (the server also does on start).
pub async fn migrate(args: MigrateArgs) -> Result<()> {
    let (db, _, options) = args.store.resolve(None)?;
    let applied = cairn_registry::db::MetadataStore::open(&db, &options)
        .await
        .with_context(|| format!("migrating {db}"))?
        .schema_version()
        .await?;
    println!("{db}: schema at migration {applied}");
    Ok(())
}

pub(crate) fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,tower_http=info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

/// The server's behaviour from its flags.
fn server_options(args: &Args) -> cairn_server::ServerOptions {
    cairn_server::ServerOptions {
        access: cairn_server::AccessOptions { enforce: args.auth },
        browsers: cairn_server::BrowserOptions {
            allowed_hosts: args.allowed_hosts.clone(),
            cors_allowed_origins: args.cors_allowed_origins.clone(),
            x_frame_options: args.x_frame_options.clone(),
        },
        limits: args.limits.limits(),
        tls: args
            .tls_cert
            .clone()
            .zip(args.tls_key.clone())
            .map(|(cert, key)| cairn_server::TlsFiles { cert, key }),
    }
}

/// With authentication on and no admin (token or password login), nobody can manage
/// the server: say how to make the first one.
async fn warn_without_admin(registry: &Registry) -> Result<()> {
    use cairn_core::auth::Role;
    let tokens = registry.list_tokens().await?;
    let users = registry.list_users().await?;
    let admin = tokens
        .iter()
        .any(|t| t.role == Role::Admin && t.models.is_none() && t.revoked_at.is_none())
        || users.iter().any(|u| {
            u.has_password
                && u.grants.iter().any(|g| {
                    g.role == Some(Role::Admin) && g.models.is_none() && g.experiment.is_none()
                })
        });
    if !admin {
        tracing::warn!(
            "no admin token exists: create one against the data directory or database with `cairn --registry DIR token create --user NAME --role admin`"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::is_loopback;

    #[test]
    fn only_this_machine_is_loopback() {
        for host in [
            "127.0.0.1",
            "127.1.2.3",
            "::1",
            "[::1]",
            "localhost",
            "LOCALHOST",
        ] {
            assert!(is_loopback(host), "{host}");
        }
        for host in [
            "0.0.0.0",
            "::",
            "10.0.0.5",
            "example.com",
            "localhost.evil.com",
        ] {
            assert!(!is_loopback(host), "{host}");
        }
    }
}
