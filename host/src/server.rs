//! Starting and stopping the server: build the state, seed the demo in
//! development mode, bind (the API, and the metrics listener when
//! `--metrics-listen` is set), serve until Ctrl-C or SIGTERM, then drain.
//!
//! Connections are served by hyper-util's automatic builder: HTTP/1.1, and
//! HTTP/2 over cleartext with prior knowledge (h2c, what a proxy in front
//! speaks), on the same port. A client gets [`HEADER_READ_TIMEOUT`] to send a
//! request's head (a slow-headers client cannot hold a connection forever), and
//! the request itself is bounded by the router's request timeout (`http`).
//!
//! With `--tls`, a second listener serves the same router over HTTPS (the
//! handshake bounded by [`HANDSHAKE_TIMEOUT`], certificates by SNI from
//! `tls`), and the HTTP listener answers ACME challenges and redirects the
//! rest to HTTPS (`http::redirect_router`).

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context as _;
use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

use super::http::{metrics_router, redirect_router, router, with_hsts};
use crate::config::ServeConfig;
use crate::demo;
use crate::state::AppState;

/// A running server: its address, its state and the task serving it.
pub struct Running {
    /// The bound address (HTTP).
    pub addr: SocketAddr,
    /// The bound HTTPS address, with `--tls`.
    pub tls_addr: Option<SocketAddr>,
    /// What serves HTTPS, with `--tls`.
    pub tls: Option<std::sync::Arc<crate::tls::Service>>,
    /// The metrics listener's bound address (`--metrics-listen`), if any.
    pub metrics_addr: Option<SocketAddr>,
    /// The shared state (for tests and embedding).
    pub state: AppState,
    /// The serving task.
    pub task: tokio::task::JoinHandle<std::io::Result<()>>,
    /// The background-job worker, when this process runs one.
    pub worker: Option<crate::jobs::WorkerHandle>,
}

impl std::fmt::Debug for Running {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Running")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

/// Builds the state and starts serving in the background.
pub async fn start(config: ServeConfig) -> anyhow::Result<Running> {
    let state = AppState::build(config.clone()).await?;
    if config.dev && demo::seed_if_empty(&state).await? {
        tracing::info!("seeded the demo tenants");
    }
    // Detached: it holds the state until the process ends.
    crate::workers::start_purge_sweeper(&state);
    crate::workers::start_backup_scheduler(&state)?;
    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let addr = listener.local_addr()?;
    follow_base_reloads(&state);
    let metrics_addr = match config.metrics_listen {
        Some(at) => {
            let listener = TcpListener::bind(at)
                .await
                .with_context(|| format!("cannot listen for metrics on {at}"))?;
            let bound = listener.local_addr()?;
            tokio::spawn(serve_connections(
                listener,
                metrics_router(state.clone()),
                shutdown_signal(),
                HEADER_READ_TIMEOUT,
            ));
            Some(bound)
        }
        None => None,
    };
    if !config.tls.enabled {
        let worker = crate::workers::start(&state);
        let router = router(state.clone());
        let task = tokio::spawn(serve_connections(
            listener,
            router,
            shutdown_signal(),
            HEADER_READ_TIMEOUT,
        ));
        return Ok(Running {
            addr,
            tls_addr: None,
            tls: None,
            metrics_addr,
            state,
            task,
            worker,
        });
    }
    let tls_listener = TcpListener::bind(config.tls.tls_listen)
        .await
        .with_context(|| format!("cannot listen on {} (--tls-listen)", config.tls.tls_listen))?;
    let tls_addr = tls_listener.local_addr()?;
    let tls = std::sync::Arc::new(crate::tls::start(&state).await?);
    let worker = crate::workers::start(&state);
    let https = with_hsts(router(state.clone()), config.tls.hsts_max_age);
    let redirect = redirect_router(state.clone(), tls_addr.port());
    let (stop, stopped) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown_signal().await;
        let _ = stop.send(true);
    });
    let until_stopped = |mut stopped: tokio::sync::watch::Receiver<bool>| async move {
        let _ = stopped.wait_for(|stop| *stop).await;
    };
    let serving_tls = tls.clone();
    let task = tokio::spawn(async move {
        let (plain, secure) = tokio::join!(
            serve_connections(
                listener,
                redirect,
                until_stopped(stopped.clone()),
                HEADER_READ_TIMEOUT
            ),
            serve_tls_connections(
                tls_listener,
                serving_tls.acceptor.clone(),
                https,
                until_stopped(stopped),
                HEADER_READ_TIMEOUT
            ),
        );
        drop(serving_tls);
        plain.and(secure)
    });
    Ok(Running {
        addr,
        tls_addr: Some(tls_addr),
        tls: Some(tls),
        metrics_addr,
        state,
        task,
        worker,
    })
}

/// `veneer serve`: runs until a shutdown signal.
pub async fn serve(config: ServeConfig) -> anyhow::Result<()> {
    let dev = config.dev;
    let base_domain = config.base_domain.clone();
    config
        .tls
        .check(config.listen)
        .map_err(|why| anyhow::anyhow!(why))?;
    let running = start(config).await?;
    match running.tls_addr {
        None => println!(
            "veneer listening on http://{} (tenants at http://<tenant>.{base_domain}:{}; database {})",
            running.addr,
            running.addr.port(),
            crate::state::redact(&running.state.config.database_url)
        ),
        Some(tls_addr) => println!(
            "veneer listening on https://{tls_addr} (tenants at https://<tenant>.{base_domain}:{}; HTTP on {} answers ACME challenges and redirects; database {})",
            tls_addr.port(),
            running.addr,
            crate::state::redact(&running.state.config.database_url)
        ),
    }
    if let Some(at) = running.metrics_addr {
        println!("metrics at http://{at}/metrics");
    }
    if dev {
        println!("{}", demo::instructions(&base_domain, running.addr.port()));
    }
    let served = running.task.await.context("server task")?;
    if let Some(worker) = running.worker {
        // Finish or release claimed jobs: nothing is lost on shutdown.
        worker.shutdown(std::time::Duration::from_secs(10)).await;
    }
    served?;
    Ok(())
}

/// How long a client has to send a request's head (line and headers) on HTTP/1.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a client has to complete the TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Accepts connections and serves `router` on each until `shutdown` completes;
/// then stops accepting, lets in-flight requests finish (idle connections are
/// closed, HTTP/2 ones get a GOAWAY) and returns. An HTTP/1 client that has not
/// sent a request's head within `header_read_timeout` is disconnected.
pub async fn serve_connections(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()>,
    header_read_timeout: Duration,
) -> std::io::Result<()> {
    accept_loop(listener, None, router, shutdown, header_read_timeout).await
}

/// Like [`serve_connections`], over TLS: each connection first completes its
/// handshake with `acceptor` within [`HANDSHAKE_TIMEOUT`] (or is dropped),
/// then HTTP/1.1 or HTTP/2 as ALPN chose.
pub async fn serve_tls_connections(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    router: Router,
    shutdown: impl Future<Output = ()>,
    header_read_timeout: Duration,
) -> std::io::Result<()> {
    accept_loop(
        listener,
        Some(acceptor),
        router,
        shutdown,
        header_read_timeout,
    )
    .await
}

async fn accept_loop(
    listener: TcpListener,
    acceptor: Option<TlsAcceptor>,
    router: Router,
    shutdown: impl Future<Output = ()>,
    header_read_timeout: Duration,
) -> std::io::Result<()> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(header_read_timeout);
    builder
        .http2()
        .timer(TokioTimer::new())
        // Pings find peers that vanished without closing.
        .keep_alive_interval(Duration::from_secs(30));
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => stream,
                Err(err) if is_connection_error(&err) => continue,
                Err(err) => {
                    // Out of file descriptors, typically: wait for some to free up.
                    tracing::error!(%err, "cannot accept a connection; retrying in 1 s");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(router.clone());
        let Some(acceptor) = &acceptor else {
            let connection = builder
                .serve_connection(TokioIo::new(stream), service)
                .into_owned();
            let connection = graceful.watch(connection);
            tokio::spawn(async move {
                if let Err(err) = connection.await {
                    tracing::debug!(%err, "connection ended with an error");
                }
            });
            continue;
        };
        let (acceptor, builder, watcher) = (acceptor.clone(), builder.clone(), graceful.watcher());
        tokio::spawn(async move {
            let Some(stream) = handshake(&acceptor, stream).await else {
                return;
            };
            let connection = builder
                .serve_connection(TokioIo::new(stream), service)
                .into_owned();
            if let Err(err) = watcher.watch(connection).await {
                tracing::debug!(%err, "connection ended with an error");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// The TLS handshake on `stream`, bounded in time; None (logged) when it
/// fails — an unknown SNI name among the reasons.
async fn handshake(
    acceptor: &TlsAcceptor,
    stream: TcpStream,
) -> Option<tokio_rustls::server::TlsStream<TcpStream>> {
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
        Ok(Ok(stream)) => Some(stream),
        Ok(Err(err)) => {
            tracing::debug!(%err, "TLS handshake failed");
            None
        }
        Err(_) => {
            tracing::debug!("TLS handshake timed out");
            None
        }
    }
}

fn is_connection_error(err: &std::io::Error) -> bool {
    matches!(
        err.kind(),
        std::io::ErrorKind::ConnectionRefused
            | std::io::ErrorKind::ConnectionAborted
            | std::io::ErrorKind::ConnectionReset
    )
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutting down: finishing in-flight requests");
}

/// Reloads the base configuration when another node did (the invalidation
/// feed says so) and, on Unix, on SIGHUP.
fn follow_base_reloads(state: &AppState) {
    let mut reloads = state.invalidation.base_reloads();
    let app = state.clone();
    tokio::spawn(async move {
        while reloads.changed().await.is_ok() {
            crate::app::base::follow(&app);
        }
    });
    #[cfg(unix)]
    {
        let app = state.clone();
        tokio::spawn(async move {
            use tokio::signal::unix::{SignalKind, signal};
            let Ok(mut hangups) = signal(SignalKind::hangup()) else {
                tracing::warn!(
                    "cannot listen for SIGHUP; reload the base with POST /v1/admin/base/reload"
                );
                return;
            };
            while hangups.recv().await.is_some() {
                match crate::app::base::reload(&app, "veneer:sighup").await {
                    Ok(report) => tracing::info!(
                        to = %report.to_version,
                        tenants_changed = report.tenants.len(),
                        "SIGHUP: base configuration reloaded"
                    ),
                    Err(err) => {
                        tracing::error!(error = %err, "SIGHUP: base configuration not reloaded")
                    }
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    use super::*;

    #[tokio::test]
    async fn a_client_slow_to_send_its_head_is_disconnected_and_others_are_served() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let router = Router::new().route("/", axum::routing::get(|| async { "ok" }));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve_connections(
            listener,
            router,
            async {
                let _ = stopped.await;
            },
            Duration::from_millis(200),
        ));

        let mut slow = TcpStream::connect(addr).await.unwrap();
        slow.write_all(b"GET / HTTP/1.1\r\nHost: a").await.unwrap();
        let started = Instant::now();
        let mut answer = Vec::new();
        tokio::time::timeout(Duration::from_secs(5), slow.read_to_end(&mut answer))
            .await
            .expect("the connection is closed, not left open")
            .ok();
        assert!(started.elapsed() < Duration::from_secs(3));
        assert!(
            answer.is_empty() || answer.starts_with(b"HTTP/1.1 408"),
            "{}",
            String::from_utf8_lossy(&answer)
        );

        let mut prompt = TcpStream::connect(addr).await.unwrap();
        prompt
            .write_all(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut answer = Vec::new();
        prompt.read_to_end(&mut answer).await.unwrap();
        assert!(answer.starts_with(b"HTTP/1.1 200"), "{answer:?}");

        stop.send(()).unwrap();
        server.await.unwrap().unwrap();
    }
}
