//! Starting and stopping the server: build the state, seed the demo in
//! development mode, bind (the API, and the metrics listener when
//! `--metrics-listen` is set), serve until Ctrl-C or SIGTERM, then drain.
//!
//! Connections are served by hyper-util's automatic builder: HTTP/1.1, and
//! HTTP/2 over cleartext with prior knowledge (h2c, what a proxy in front
//! speaks), on the same port. A client gets [`HEADER_READ_TIMEOUT`] to send a
//! request's head (a slow-headers client cannot hold a connection forever), and
//! the request itself is bounded by the router's request timeout (`http`).

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context as _;
use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;

use super::http::{metrics_router, router};
use crate::config::ServeConfig;
use crate::demo;
use crate::state::AppState;

/// A running server: its address, its state and the task serving it.
pub struct Running {
    /// The bound address.
    pub addr: SocketAddr,
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
    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let addr = listener.local_addr()?;
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
    let worker = crate::workers::start(&state);
    let router = router(state.clone());
    let task = tokio::spawn(serve_connections(
        listener,
        router,
        shutdown_signal(),
        HEADER_READ_TIMEOUT,
    ));
    Ok(Running {
        addr,
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
    let running = start(config).await?;
    println!(
        "veneer listening on http://{} (tenants at http://<tenant>.{base_domain}:{}; database {})",
        running.addr,
        running.addr.port(),
        crate::state::redact(&running.state.config.database_url)
    );
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
        let connection = builder
            .serve_connection(TokioIo::new(stream), service)
            .into_owned();
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(err) = connection.await {
                tracing::debug!(%err, "connection ended with an error");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
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
