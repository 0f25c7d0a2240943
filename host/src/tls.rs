//! HTTPS serving (`serve --tls`): the certificates this node serves, chosen
//! by SNI ([`Certificates`]); the rustls server configuration (ring provider,
//! ALPN h2 and http/1.1); and the node's two background loops — one reloads
//! the certificates stored by any node (cheap stamps polled each
//! `--tls-tick-ms`, only changed rows read and opened), the other orders what
//! is due through [`crate::app::certificates`] — stopped with the server. The
//! connection loop itself is `server`'s; the ordering rules are the
//! application layer's.

mod resolver;

use std::sync::Arc;

use anyhow::Context as _;
use tokio_rustls::TlsAcceptor;

pub use resolver::Certificates;

use crate::acme::Acme;
use crate::app::certificates::Orderer;
use crate::state::AppState;

/// HTTPS on this node: the acceptor and what keeps its certificates current.
/// Dropping it stops the loops.
pub struct Service {
    /// Completes TLS handshakes with the certificate SNI names.
    pub acceptor: TlsAcceptor,
    /// The certificates served.
    pub certificates: Arc<Certificates>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl std::fmt::Debug for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Service").finish_non_exhaustive()
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Loads the base certificate (PEM files) and the stored ones, and starts the
/// loops. Fails when a PEM file or the ACME settings are unusable.
pub async fn start(app: &AppState) -> anyhow::Result<Service> {
    let config = &app.config.tls;
    let base_pem = match (&config.tls_cert, &config.tls_key) {
        (Some(cert), Some(key)) => {
            let chain = std::fs::read(cert)
                .with_context(|| format!("reading --tls-cert {}", cert.display()))?;
            let key_pem = zeroize::Zeroizing::new(
                std::fs::read(key)
                    .with_context(|| format!("reading --tls-key {}", key.display()))?,
            );
            Some(
                crate::certs::certified_key(&chain, &key_pem).with_context(|| {
                    format!(
                        "--tls-cert {} with --tls-key {}",
                        cert.display(),
                        key.display()
                    )
                })?,
            )
        }
        _ => None,
    };
    let certificates = Arc::new(Certificates::new(&app.config.base_domain, base_pem));
    certificates
        .refresh(app)
        .await
        .context("loading the stored certificates")?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut server = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("configuring TLS")?
        .with_no_client_auth()
        .with_cert_resolver(certificates.clone());
    server.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let acme = Acme::new(
        &config.acme_directory,
        config.acme_contact.as_deref(),
        config.acme_ca_root.as_deref(),
    )
    .context("configuring the ACME client")?;
    let orderer = Orderer::new(acme);
    let stored = Arc::new(tokio::sync::Notify::new());
    let tick = config.tick();

    let reload = {
        let (app, certificates, stored) = (app.clone(), certificates.clone(), stored.clone());
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    () = tokio::time::sleep(tick) => {}
                    () = stored.notified() => {}
                }
                if let Err(err) = certificates.refresh(&app).await {
                    tracing::warn!(%err, "cannot reload the certificates; serving the ones loaded");
                }
            }
        })
    };
    let order = {
        let app = app.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(tick).await;
                match orderer.tick(&app).await {
                    Ok(true) => stored.notify_one(),
                    Ok(false) => {}
                    Err(err) => tracing::warn!(%err, "certificate round failed"),
                }
            }
        })
    };
    Ok(Service {
        acceptor: TlsAcceptor::from(Arc::new(server)),
        certificates,
        tasks: vec![reload, order],
    })
}
