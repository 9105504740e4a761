//! `cairn serve NAME@REF`: a version as a live HTTP endpoint in MLflow's scoring
//! protocol. REF an alias (or `latest`) is followed: when it moves — a promotion, a
//! rollback, by any process — the new version is fetched, verified, loaded beside the
//! old one and swapped in atomically; a version that fails any of that is not swapped
//! in, and the old one keeps serving. REF a number serves that version, fixed.

mod cache;
mod follow;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};
use cairn_core::{ModelVersionRef, VersionRef};
use cairn_serve::deployment::Deployment;
use cairn_serve::runtime::Runtime;

use crate::client::RegistryClient;
use cache::BlobCache;
use follow::Follower;

#[derive(clap::Args)]
pub struct Args {
    /// NAME@REF: an alias (followed as it moves), `latest` (followed), or a version
    /// number (served as it is).
    reference: ModelVersionRef,
    /// The address to listen on.
    #[arg(long, env = "CAIRN_SERVE_HOST", default_value = "127.0.0.1")]
    host: String,
    /// 0 picks a free port; the address is printed on stdout.
    #[arg(long, env = "CAIRN_SERVE_PORT", default_value_t = 5001)]
    port: u16,
    /// The onnxruntime shared library (libonnxruntime.so). Default: $ORT_DYLIB_PATH,
    /// else the one in the `onnxruntime` Python package of the python3 on PATH.
    #[arg(long, value_name = "PATH")]
    onnxruntime: Option<PathBuf>,
    /// Send a share of requests to another reference, followed on its own:
    /// NAME@candidate=10 sends 10% of requests there.
    #[arg(long, value_name = "NAME@REF=PERCENT", value_parser = parse_split)]
    split: Option<(ModelVersionRef, u32)>,
    /// Where fetched files are kept, shared between versions (and processes).
    /// Default: ~/.cache/cairn/serve.
    #[arg(long, env = "CAIRN_SERVE_CACHE", value_name = "DIR")]
    cache_dir: Option<PathBuf>,
    /// The largest scoring request body accepted, in bytes (413 above).
    #[arg(long, default_value_t = cairn_serve::app::DEFAULT_MAX_BODY)]
    max_body: usize,
    /// Requests a version runs at once, each on its own onnxruntime session (and its own
    /// copy of the weights). Default: the number of cores, at most 4.
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=256))]
    sessions: Option<u16>,
}

/// Sessions per loaded version unless `--sessions` says otherwise.
fn default_sessions() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().min(4))
}

fn parse_split(text: &str) -> Result<(ModelVersionRef, u32), String> {
    let (reference, share) = text
        .rsplit_once('=')
        .ok_or("expected NAME@REF=PERCENT, e.g. fraud@candidate=10")?;
    let share: u32 = share
        .parse()
        .ok()
        .filter(|s| *s <= 100)
        .ok_or_else(|| format!("{share:?} is not a percentage from 0 to 100"))?;
    let reference = reference.parse().map_err(|e| format!("{e}"))?;
    Ok((reference, share))
}

pub async fn run(registry: &dyn RegistryClient, args: Args) -> Result<ExitCode> {
    let runtime = Runtime::load(args.onnxruntime.as_deref())?;
    tracing::info!(library = %runtime.library().display(), "onnxruntime loaded");
    let cache = BlobCache::open(
        &args
            .cache_dir
            .clone()
            .unwrap_or_else(BlobCache::default_root),
    )?;
    let deployment = Arc::new(Deployment::new(
        args.reference.to_string(),
        args.split
            .as_ref()
            .map(|(reference, share)| (reference.to_string(), *share)),
    ));
    let loader = follow::Loader {
        registry,
        cache: &cache,
        runtime: &runtime,
        deployment: &deployment,
        sessions: args.sessions.map_or_else(default_sessions, usize::from),
    };
    let mut followers = vec![Follower::new(&loader, args.reference.clone(), false)];
    if let Some((candidate, _)) = &args.split {
        followers.push(Follower::new(&loader, candidate.clone(), true));
    }
    // The primary must load before anything is served; a candidate that fails leaves
    // the primary all the traffic (and says so in /health).
    for follower in &mut followers {
        if let Err(e) = follower.start().await {
            if !follower.is_candidate() {
                return Err(e.context(format!("cannot serve {}", args.reference)));
            }
            tracing::error!(error = %format!("{e:#}"), "the split's candidate is not serving");
        }
    }

    let listener = tokio::net::TcpListener::bind((args.host.as_str(), args.port))
        .await
        .with_context(|| format!("cannot listen on {}:{}", args.host, args.port))?;
    let addr = listener.local_addr()?;
    let shutdown = cairn_server::shutdown_signal().context("installing signal handlers")?;
    let app = cairn_serve::app::router(Arc::clone(&deployment), args.max_body);
    let limits = cairn_server::ServerLimits::default();
    let serving = deployment
        .primary
        .current()
        .map(|l| l.label())
        .unwrap_or_default();
    // Scripts and tests read the address from this line.
    println!("serving {serving} on http://{addr}");
    let server = cairn_server::serve_router(app, listener, &limits, None, shutdown);
    let following = futures::future::join_all(
        followers
            .iter_mut()
            .filter(|f| f.follows())
            .map(|f| f.follow()),
    );
    tokio::select! {
        served = server => served.context("serving")?,
        () = async { following.await; std::future::pending::<()>().await } => {}
    }
    Ok(ExitCode::SUCCESS)
}

/// Whether `reference` moves (an alias or `latest`) or names one version for good.
fn moves(reference: &VersionRef) -> bool {
    !matches!(reference, VersionRef::Number(_))
}
