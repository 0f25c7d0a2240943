//! Starting and stopping the server: build the state, seed the demo in
//! development mode, bind, serve until Ctrl-C or SIGTERM, then drain.

use std::net::SocketAddr;

use anyhow::Context as _;
use tokio::net::TcpListener;

use crate::config::ServeConfig;
use crate::demo;
use crate::http::app;
use crate::state::AppState;

/// A running server: its address, its state and the task serving it.
pub struct Running {
    /// The bound address.
    pub addr: SocketAddr,
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
    let worker = crate::workers::start(&state);
    let router = app(state.clone());
    let task = tokio::spawn(async move {
        axum::serve(listener, router)
            .with_graceful_shutdown(shutdown_signal())
            .await
    });
    Ok(Running {
        addr,
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
