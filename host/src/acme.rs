//! The ACME client (RFC 8555, through instant-acme): the account, and one
//! certificate order for one name answered with HTTP-01 — started (the
//! challenges to publish), then finished (challenges declared ready, the
//! order polled with bounded time, finalized with a fresh key and CSR, the
//! chain downloaded). It owns the connection to the CA (rustls with the ring
//! provider, the system's roots plus `--acme-ca-root`); it knows nothing of
//! storage, tenants or serving: publishing the challenges, sealing keys and
//! scheduling are `app::certificates`'.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::rt::TokioExecutor;
use instant_acme::{
    Account, AccountCredentials, AuthorizationStatus, BodyWrapper, ChallengeType, Identifier,
    NewAccount, NewOrder, Order, OrderStatus, RetryPolicy,
};
use rustls::RootCertStore;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

/// What went wrong talking to the CA, in words an operator can act on.
#[derive(Debug, thiserror::Error)]
pub enum AcmeError {
    /// The client could not be set up (a bad `--acme-ca-root`, say).
    #[error("ACME client set-up: {0}")]
    Setup(String),
    /// The CA refused, failed or could not be reached.
    #[error("ACME: {0}")]
    Ca(String),
    /// The CA did not finish in time.
    #[error("ACME: the CA did not finish within {0:?}")]
    Timeout(Duration),
}

impl From<instant_acme::Error> for AcmeError {
    fn from(err: instant_acme::Error) -> Self {
        AcmeError::Ca(err.to_string())
    }
}

/// A CA's directory and how to reach it. Cheap to clone.
#[derive(Clone)]
pub struct Acme {
    directory: String,
    contact: Option<String>,
    http: Arc<
        HyperClient<
            hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
            BodyWrapper<Bytes>,
        >,
    >,
}

impl std::fmt::Debug for Acme {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Acme")
            .field("directory", &self.directory)
            .finish_non_exhaustive()
    }
}

/// An HTTP-01 challenge to answer at `/.well-known/acme-challenge/<token>`.
#[derive(Debug, Clone)]
pub struct Http01 {
    pub token: String,
    pub key_authorization: String,
}

/// An order whose challenges are to be published before [`Acme::finish`].
pub struct Started {
    order: Order,
    /// Publish each before finishing.
    pub challenges: Vec<Http01>,
}

impl std::fmt::Debug for Started {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Started")
            .field("challenges", &self.challenges.len())
            .finish_non_exhaustive()
    }
}

/// An issued certificate: the chain (leaf first) and its new private key, PEM.
pub struct Issued {
    pub chain_pem: String,
    pub key_pem: zeroize::Zeroizing<String>,
}

impl Acme {
    /// A client of `directory`, trusting the system's roots and `extra_root`.
    pub fn new(
        directory: &str,
        contact: Option<&str>,
        extra_root: Option<&Path>,
    ) -> Result<Self, AcmeError> {
        let mut roots = RootCertStore::empty();
        let native = rustls_native_certs::load_native_certs();
        for cert in native.certs {
            let _ = roots.add(cert);
        }
        if let Some(path) = extra_root {
            let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
                .and_then(|iter| iter.collect())
                .map_err(|err| {
                    AcmeError::Setup(format!("reading --acme-ca-root {}: {err}", path.display()))
                })?;
            if certs.is_empty() {
                return Err(AcmeError::Setup(format!(
                    "--acme-ca-root {} holds no certificate",
                    path.display()
                )));
            }
            for cert in certs {
                roots.add(cert).map_err(|err| {
                    AcmeError::Setup(format!("--acme-ca-root {}: {err}", path.display()))
                })?;
            }
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|err| AcmeError::Setup(err.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .build();
        let http = HyperClient::builder(TokioExecutor::new()).build(connector);
        Ok(Self {
            directory: directory.to_owned(),
            contact: contact.map(str::to_owned),
            http: Arc::new(http),
        })
    }

    /// The directory URL (accounts are kept per directory).
    pub fn directory(&self) -> &str {
        &self.directory
    }

    fn builder(&self) -> instant_acme::AccountBuilder {
        Account::builder_with_http(Box::new((*self.http).clone()))
    }

    /// The account from stored credentials (JSON), or a new one (agreeing to
    /// the CA's terms) with its credentials to store.
    pub async fn account(
        &self,
        stored: Option<&[u8]>,
    ) -> Result<(Account, Option<zeroize::Zeroizing<String>>), AcmeError> {
        if let Some(stored) = stored {
            let credentials: AccountCredentials = serde_json::from_slice(stored)
                .map_err(|err| AcmeError::Setup(format!("stored ACME account: {err}")))?;
            return Ok((self.builder().from_credentials(credentials).await?, None));
        }
        let contact = self.contact.as_ref().map(|c| format!("mailto:{c}"));
        let contacts: Vec<&str> = contact.iter().map(String::as_str).collect();
        let (account, credentials) = self
            .builder()
            .create(
                &NewAccount {
                    contact: &contacts,
                    terms_of_service_agreed: true,
                    only_return_existing: false,
                },
                self.directory.clone(),
                None,
            )
            .await?;
        let json = serde_json::to_string(&credentials)
            .map_err(|err| AcmeError::Setup(format!("saving the ACME account: {err}")))?;
        Ok((account, Some(zeroize::Zeroizing::new(json))))
    }

    /// Orders a certificate for `domain`: the HTTP-01 challenges to publish.
    pub async fn start(&self, account: &Account, domain: &str) -> Result<Started, AcmeError> {
        let identifiers = [Identifier::Dns(domain.to_owned())];
        let mut order = account.new_order(&NewOrder::new(&identifiers)).await?;
        let mut challenges = Vec::new();
        let mut authorizations = order.authorizations();
        while let Some(authorization) = authorizations.next().await {
            let mut authorization = authorization?;
            match authorization.status {
                AuthorizationStatus::Pending => {}
                AuthorizationStatus::Valid => continue,
                other => {
                    return Err(AcmeError::Ca(format!(
                        "the CA's authorization for {domain} is {other:?}"
                    )));
                }
            }
            let challenge = authorization
                .challenge(ChallengeType::Http01)
                .ok_or_else(|| AcmeError::Ca("the CA offers no HTTP-01 challenge".into()))?;
            challenges.push(Http01 {
                token: challenge.token.clone(),
                key_authorization: challenge.key_authorization().as_str().to_owned(),
            });
        }
        Ok(Started { order, challenges })
    }

    /// Tells the CA the challenges are published, waits (at most `within`)
    /// for it to validate them and issue, and downloads the chain.
    pub async fn finish(&self, started: Started, within: Duration) -> Result<Issued, AcmeError> {
        let mut order = started.order;
        let mut authorizations = order.authorizations();
        while let Some(authorization) = authorizations.next().await {
            let mut authorization = authorization?;
            if authorization.status != AuthorizationStatus::Pending {
                continue;
            }
            if let Some(mut challenge) = authorization.challenge(ChallengeType::Http01) {
                challenge.set_ready().await?;
            }
        }
        let retries = RetryPolicy::new()
            .initial_delay(Duration::from_millis(200))
            .backoff(1.5)
            .timeout(within);
        let status = order.poll_ready(&retries).await.map_err(|err| match err {
            instant_acme::Error::Timeout(_) => AcmeError::Timeout(within),
            other => other.into(),
        })?;
        if status != OrderStatus::Ready {
            let why = order
                .state()
                .error
                .as_ref()
                .map_or_else(|| format!("{status:?}"), |p| p.to_string());
            return Err(AcmeError::Ca(format!("the order was not validated: {why}")));
        }
        let key_pem = zeroize::Zeroizing::new(order.finalize().await?);
        let chain_pem = order
            .poll_certificate(&retries)
            .await
            .map_err(|err| match err {
                instant_acme::Error::Timeout(_) => AcmeError::Timeout(within),
                other => other.into(),
            })?;
        Ok(Issued { chain_pem, key_pem })
    }
}
