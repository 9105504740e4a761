//! Accepting connections within bounds: at most `max_connections` open at once, request
//! heads within `max_header_bytes` and `header_timeout` (which also closes connections
//! idle between requests), the process's descriptor limit raised to what the system
//! allows, and an accept loop that rides out descriptor exhaustion instead of spinning
//! or dying; TLS (rustls) when a certificate is given. On shutdown, in-flight requests
//! finish.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::limits::ServerLimits;

/// How long shutdown waits for in-flight requests.
const DRAIN: Duration = Duration::from_secs(30);

/// Raises the soft limit of open descriptors to the hard one (idle clients must not be
/// able to exhaust a low default such as 1,024). Answers the limit now in force.
pub fn raise_descriptor_limit() -> Option<u64> {
    #[cfg(unix)]
    {
        use rustix::process::{Resource, getrlimit, setrlimit};
        let mut limit = getrlimit(Resource::Nofile);
        if limit.current < limit.maximum {
            limit.current = limit.maximum;
            if let Err(e) = setrlimit(Resource::Nofile, limit) {
                tracing::warn!(error = %e, "could not raise the open-file limit");
            }
        }
        getrlimit(Resource::Nofile).current
    }
    #[cfg(not(unix))]
    None
}

/// A certificate chain and its private key, PEM files (`--tls-cert`, `--tls-key`).
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl TlsFiles {
    /// The server's TLS configuration (HTTP/2 and HTTP/1.1 offered by ALPN); an error
    /// names the file that is missing or unreadable.
    pub fn load(&self) -> std::io::Result<Arc<rustls::ServerConfig>> {
        let invalid = |path: &Path, e: &dyn std::fmt::Display| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("{}: {e}", path.display()),
            )
        };
        let certs = CertificateDer::pem_file_iter(&self.cert)
            .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
            .map_err(|e| invalid(&self.cert, &e))?;
        if certs.is_empty() {
            return Err(invalid(&self.cert, &"no certificate in it"));
        }
        let key = PrivateKeyDer::from_pem_file(&self.key).map_err(|e| invalid(&self.key, &e))?;
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| invalid(&self.cert, &e))?
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .map_err(|e| invalid(&self.key, &e))?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}

/// Set when the server starts shutting down: long waits (long-polls, event streams)
/// end at once, so draining does not wait them out. Handlers take it as an optional
/// extension: a router served some other way (tests) never drains.
#[derive(Clone)]
pub struct Draining(pub tokio::sync::watch::Receiver<bool>);

impl Draining {
    /// Completes when shutdown starts; never without a `Draining`.
    pub async fn started(draining: Option<&Self>) {
        match draining {
            Some(d) => drop(d.0.clone().wait_for(|started| *started).await),
            None => std::future::pending().await,
        }
    }
}

/// Serves `router` on `listener` until `shutdown` completes, over TLS with `tls`.
pub async fn serve(
    router: Router,
    listener: TcpListener,
    limits: &ServerLimits,
    tls: Option<Arc<rustls::ServerConfig>>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let tls = tls.map(TlsAcceptor::from);
    let descriptors = raise_descriptor_limit();
    // Leave descriptors for the database, blob files and the process itself.
    let max = match descriptors {
        Some(n) => limits
            .max_connections
            .min(n.saturating_sub(256).max(16) as usize),
        None => limits.max_connections,
    };
    if max < limits.max_connections {
        tracing::warn!(max, descriptors = ?descriptors, "fewer connections than asked: the open-file limit is low");
    }
    let slots = Arc::new(Semaphore::new(max));
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_buf_size(limits.max_header_bytes.max(8192));
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Some(limits.header_timeout))
        .keep_alive_timeout(limits.header_timeout)
        .max_header_list_size(limits.max_header_bytes as u32);
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => slot.expect("the semaphore is never closed"),
            () = &mut shutdown => break,
        };
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of descriptors (EMFILE) or a connection reset before it was taken:
                // wait a moment (idle connections time out meanwhile) and go on.
                tracing::warn!(error = %e, "could not accept a connection");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(router.clone());
        let (builder, watcher, wait) = (builder.clone(), graceful.watcher(), limits.header_timeout);
        let tls = tls.clone();
        tokio::spawn(async move {
            // A connection that sends nothing is closed: the HTTP version is told from
            // the first bytes, and the header timeout only starts with them.
            // (`peek` waits for a byte; `readable` may wake without one.)
            let mut first = [0u8; 1];
            let peeked = tokio::time::timeout(wait, stream.peek(&mut first)).await;
            if !matches!(peeked, Ok(Ok(1))) {
                return;
            }
            let served = match tls {
                None => serve_io(&builder, watcher, stream, service).await,
                // The handshake, too, within the header timeout.
                Some(acceptor) => match tokio::time::timeout(wait, acceptor.accept(stream)).await {
                    Ok(Ok(stream)) => serve_io(&builder, watcher, stream, service).await,
                    Ok(Err(e)) => {
                        tracing::debug!(error = %e, "TLS handshake failed");
                        return;
                    }
                    Err(_) => return,
                },
            };
            // Errors here are clients that went away or broke the protocol.
            if let Err(e) = served {
                tracing::debug!(error = %e, "connection ended with an error");
            }
            drop(slot);
        });
    }
    drop(listener);
    tracing::info!("shutting down: finishing in-flight requests");
    if tokio::time::timeout(DRAIN, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("requests still in flight after {DRAIN:?}; closing them");
    }
    Ok(())
}

/// One connection served by `builder` until it ends or shutdown closes it, whatever
/// carries it (TCP, or TLS over TCP).
async fn serve_io<I>(
    builder: &auto::Builder<TokioExecutor>,
    watcher: hyper_util::server::graceful::Watcher,
    io: I,
    service: TowerToHyperService<Router>,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>>
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let connection = builder
        .serve_connection_with_upgrades(TokioIo::new(io), service)
        .into_owned();
    watcher.watch(connection).await
}
