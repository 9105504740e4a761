//! `cairn server`: the registry over HTTP, on the embedded stores by default.

use std::path::PathBuf;

use anyhow::{Context, Result};
use cairn_registry::Registry;

use crate::client::Location;

#[derive(clap::Args)]
pub struct Args {
    #[arg(long, env = "CAIRN_HOST", default_value = "127.0.0.1")]
    host: String,
    /// 0 picks a free port; the address is printed on stdout.
    #[arg(long, env = "CAIRN_PORT", default_value_t = 5000)]
    port: u16,
    /// Data directory (SQLite database and blobs). Default: $CAIRN_HOME, else the
    /// platform data directory.
    #[arg(long, value_name = "DIR")]
    data: Option<PathBuf>,
    /// Log format on stderr.
    #[arg(long, value_enum, default_value = "text")]
    log_format: LogFormat,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

pub async fn run(args: Args) -> Result<()> {
    init_logging(args.log_format);
    let data = match args.data {
        Some(dir) => dir,
        None => Location::default_data_dir()?,
    };
    let registry = Registry::open_local(&data)
        .await
        .with_context(|| format!("opening the registry in {}", data.display()))?;
    let listener = tokio::net::TcpListener::bind((args.host.as_str(), args.port))
        .await
        .with_context(|| format!("cannot listen on {}:{}", args.host, args.port))?;
    let addr = listener.local_addr()?;
    let shutdown = cairn_server::shutdown_signal().context("installing signal handlers")?;
    // Scripts and tests read the bound address (port 0 picks one) from this line.
    println!(
        "cairn server listening on http://{addr} (data: {})",
        data.display()
    );
    tracing::info!(%addr, data = %data.display(), "cairn server started");
    cairn_server::serve(registry, listener, shutdown)
        .await
        .context("serving")?;
    Ok(())
}

fn init_logging(format: LogFormat) {
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
