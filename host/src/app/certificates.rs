//! HTTPS certificates ordered with ACME: which names need one (the base
//! domain, when no PEM was given, and every custom domain that routes), when
//! (a new name at once; a renewal at two thirds of the current certificate's
//! lifetime; a retry after a failure with exponential backoff, from
//! `--acme-retry-secs` doubling up to [`MAX_BACKOFF`]), and one order end to
//! end: the lease that lets one node at a time order a name, the ACME account
//! (created once per directory, stored sealed), the HTTP-01 answers published
//! in the database so any node can serve them, the new key sealed with the
//! secrets key (additional data naming the domain), the outcome recorded per
//! domain. A domain that stops routing loses its row: it is neither renewed
//! nor served. Also what the API shows of a domain's certificate, and the
//! answers of the HTTP-01 path and of a TLS proxy's `ask`.
//!
//! The CA is `crate::acme`'s; serving the stored certificates is `tls`'s.

use std::time::Duration;

use serde::Serialize;

use super::Result;
use crate::acme::{Acme, Issued};
use crate::state::AppState;
use crate::storage::{CertificateRecord, CertificateStatus, IssuedCertificate};
use crate::tenancy::TenantId;
use crate::tenancy::{HostTarget, classify};

/// The longest pause between two failed orders of one name.
pub const MAX_BACKOFF: Duration = Duration::from_secs(6 * 3600);
/// How long one order may take, from the account to the chain.
pub const ORDER_BUDGET: Duration = Duration::from_secs(120);
/// How long an HTTP-01 answer stays published.
const CHALLENGE_TTL_MS: i64 = 10 * 60 * 1_000;

/// The additional data sealing a certificate's private key: a key stored
/// under another domain's row does not open.
pub fn key_aad(domain: &str) -> String {
    format!("veneer:tls-key:{domain}")
}

/// The additional data sealing the ACME account of `directory`.
pub fn account_aad(directory: &str) -> String {
    format!("veneer:acme-account:{directory}")
}

/// A domain's certificate as the API shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct CertificateView {
    /// `pending` (none issued yet) or `issued`.
    pub status: CertificateStatus,
    /// Unix milliseconds.
    pub issued_at: Option<i64>,
    pub not_after: Option<i64>,
    /// Why the last order failed (none since the last success).
    pub last_error: Option<String>,
    /// Failed orders since the last success.
    pub attempts: u32,
    /// When the next order (renewal or retry) is due, unix milliseconds.
    pub next_attempt_at: i64,
}

impl From<CertificateRecord> for CertificateView {
    fn from(record: CertificateRecord) -> Self {
        Self {
            status: record.status,
            issued_at: record.issued_at,
            not_after: record.not_after,
            last_error: record.last_error,
            attempts: record.attempts,
            next_attempt_at: record.next_attempt_at,
        }
    }
}

/// The certificates of `tenant`'s domains, by domain (only with `--tls`).
pub async fn of_tenant(
    app: &AppState,
    tenant: &TenantId,
) -> Result<std::collections::HashMap<String, CertificateView>> {
    if !app.config.tls.enabled {
        return Ok(Default::default());
    }
    Ok(app
        .storage
        .platform()
        .tenant_certificates(tenant)
        .await?
        .into_iter()
        .map(|r| (r.domain.clone(), r.into()))
        .collect())
}

/// Makes `tenant`'s `domain` certificate due for an order now (after fixing
/// what its last error said); NotFound when none is ordered for it.
pub async fn retry(app: &AppState, tenant: &TenantId, domain: &str) -> Result<()> {
    let platform = app.storage.platform();
    let ordered = platform
        .certificate(domain)
        .await?
        .filter(|c| c.tenant_id.as_deref() == Some(tenant.as_str()));
    if ordered.is_none() || !platform.retry_certificate(domain).await? {
        return Err(super::Error::NotFound(format!(
            "no certificate is ordered for `{}`: it is ordered once the domain is verified, with --tls",
            domain.chars().take(80).collect::<String>()
        )));
    }
    Ok(())
}

/// The key authorization answering HTTP-01 `token`, if it is being asked for.
pub async fn challenge_answer(app: &AppState, token: &str) -> Result<Option<String>> {
    if token.is_empty()
        || token.len() > 256
        || !token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Ok(None);
    }
    Ok(app.storage.platform().acme_challenge(token).await?)
}

/// Whether a TLS proxy may get a certificate for `name` (the `ask` of
/// on-demand TLS): the base domain, an existing tenant's subdomain, or a
/// custom domain that routes — never a name merely claimed.
pub async fn may_serve(app: &AppState, name: &str) -> Result<bool> {
    let name = name.trim().trim_end_matches('.').to_ascii_lowercase();
    let base = app.config.base_domain.to_ascii_lowercase();
    if name == base {
        return Ok(true);
    }
    match classify(&name, &base) {
        HostTarget::Subdomain(id) => Ok(app.tenant_record(&id).await?.is_some()),
        HostTarget::Custom(domain) => Ok(app.tenant_for_domain(&domain).await?.is_some()),
        HostTarget::Platform | HostTarget::Invalid => Ok(false),
    }
}

/// One node's orderer: the CA client, the node's name on leases, the account
/// once loaded.
pub struct Orderer {
    acme: Acme,
    node: String,
    account: tokio::sync::Mutex<Option<instant_acme::Account>>,
}

impl std::fmt::Debug for Orderer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Orderer")
            .field("node", &self.node)
            .finish_non_exhaustive()
    }
}

impl Orderer {
    /// An orderer for this node.
    pub fn new(acme: Acme) -> Self {
        Self {
            acme,
            node: format!("{}-{:08x}", std::process::id(), rand::random::<u32>()),
            account: tokio::sync::Mutex::new(None),
        }
    }

    /// One round: brings the certificate rows in step with what routes, then
    /// orders at most one due certificate (one order at a time per node).
    /// True when a certificate was stored.
    pub async fn tick(&self, app: &AppState) -> Result<bool> {
        let platform = app.storage.platform();
        let base = app.config.base_domain.to_ascii_lowercase();
        let orders_base = app.config.tls.orders_base().then_some(base.as_str());
        platform.sync_certificates(orders_base).await?;
        for (domain, _tenant) in platform.due_certificates(4).await? {
            let until = now_ms().saturating_add(millis(ORDER_BUDGET + Duration::from_secs(30)));
            if !platform
                .lease_certificate(&domain, &self.node, until)
                .await?
            {
                continue; // another node took it
            }
            return self.order(app, &domain).await;
        }
        Ok(false)
    }

    async fn order(&self, app: &AppState, domain: &str) -> Result<bool> {
        let platform = app.storage.platform();
        let outcome = match tokio::time::timeout(ORDER_BUDGET, self.obtain(app, domain)).await {
            Ok(Ok(issued)) => self.seal(app, domain, &issued),
            Ok(Err(why)) => Err(why),
            Err(_) => Err(format!(
                "the order did not finish within {} s",
                ORDER_BUDGET.as_secs()
            )),
        };
        match outcome {
            Ok((chain, sealed, (not_before, not_after))) => {
                let lifetime = not_after.saturating_sub(not_before).max(0);
                let renew_at = not_before.saturating_add(lifetime / 3 * 2);
                let stored = platform
                    .store_certificate(
                        domain,
                        &self.node,
                        &IssuedCertificate {
                            chain_pem: &chain,
                            key_sealed: &sealed,
                            not_before,
                            not_after,
                            renew_at,
                        },
                    )
                    .await?;
                tracing::info!(domain, not_after, stored, "certificate issued");
                Ok(stored)
            }
            Err(why) => {
                let attempts = platform
                    .certificate(domain)
                    .await?
                    .map_or(0, |c| c.attempts);
                let delay = backoff(app.config.tls.acme_retry(), attempts);
                let retry_at = now_ms().saturating_add(millis(delay));
                tracing::warn!(domain, error = %why, retry_in_secs = delay.as_secs(), "certificate order failed");
                platform
                    .fail_certificate(domain, &self.node, &why, retry_at)
                    .await?;
                Ok(false)
            }
        }
    }

    /// The chain, the sealed key and the validity of an issued certificate.
    fn seal(
        &self,
        app: &AppState,
        domain: &str,
        issued: &Issued,
    ) -> std::result::Result<(String, String, (i64, i64)), String> {
        // What is stored must be servable: check before replacing a good one.
        crate::certs::certified_key(issued.chain_pem.as_bytes(), issued.key_pem.as_bytes())
            .map_err(|e| format!("the CA's certificate cannot be served: {e}"))?;
        let validity = crate::certs::validity(issued.chain_pem.as_bytes())
            .map_err(|e| format!("the CA's certificate: {e}"))?;
        let sealed = app
            .secrets
            .encrypt(issued.key_pem.as_bytes(), &key_aad(domain));
        Ok((issued.chain_pem.clone(), sealed, validity))
    }

    async fn obtain(&self, app: &AppState, domain: &str) -> std::result::Result<Issued, String> {
        let account = self.account(app).await?;
        let started = self
            .acme
            .start(&account, domain)
            .await
            .map_err(|e| e.to_string())?;
        let platform = app.storage.platform();
        let expires = now_ms().saturating_add(CHALLENGE_TTL_MS);
        for challenge in &started.challenges {
            platform
                .put_acme_challenge(
                    &challenge.token,
                    &challenge.key_authorization,
                    domain,
                    expires,
                )
                .await
                .map_err(|e| format!("publishing the HTTP-01 answer: {e}"))?;
        }
        let tokens: Vec<String> = started.challenges.iter().map(|c| c.token.clone()).collect();
        let issued = self.acme.finish(started, ORDER_BUDGET).await;
        for token in tokens {
            let _ = platform.remove_acme_challenge(&token).await;
        }
        issued.map_err(|e| e.to_string())
    }

    /// The ACME account: this node's, else the stored one, else a new one
    /// (if two nodes create one at once, the one stored first is kept).
    async fn account(&self, app: &AppState) -> std::result::Result<instant_acme::Account, String> {
        let mut held = self.account.lock().await;
        if let Some(account) = held.as_ref() {
            return Ok(account.clone());
        }
        let platform = app.storage.platform();
        let directory = self.acme.directory();
        let aad = account_aad(directory);
        let stored = platform
            .acme_account(directory)
            .await
            .map_err(|e| e.to_string())?;
        let account = match stored {
            Some(sealed) => {
                let plain = app
                    .secrets
                    .decrypt(&sealed, &aad)
                    .map_err(|e| format!("the stored ACME account does not open: {e}"))?;
                self.acme
                    .account(Some(&plain))
                    .await
                    .map_err(|e| e.to_string())?
                    .0
            }
            None => {
                let (account, credentials) =
                    self.acme.account(None).await.map_err(|e| e.to_string())?;
                let credentials = credentials.ok_or("the CA returned no account credentials")?;
                let sealed = app.secrets.encrypt(credentials.as_bytes(), &aad);
                let kept = platform
                    .save_acme_account(directory, &sealed)
                    .await
                    .map_err(|e| e.to_string())?;
                if kept == sealed {
                    account
                } else {
                    let plain = app
                        .secrets
                        .decrypt(&kept, &aad)
                        .map_err(|e| format!("the stored ACME account does not open: {e}"))?;
                    self.acme
                        .account(Some(&plain))
                        .await
                        .map_err(|e| e.to_string())?
                        .0
                }
            }
        };
        *held = Some(account.clone());
        Ok(account)
    }
}

/// The pause before the next order after `attempts` failures in a row:
/// `first`, doubling, at most [`MAX_BACKOFF`].
pub fn backoff(first: Duration, attempts: u32) -> Duration {
    first
        .saturating_mul(1u32 << attempts.min(20))
        .min(MAX_BACKOFF)
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_doubling_up_to_the_cap() {
        let first = Duration::from_secs(60);
        assert_eq!(backoff(first, 0), first);
        assert_eq!(backoff(first, 1), first * 2);
        assert_eq!(backoff(first, 3), first * 8);
        assert_eq!(backoff(first, 30), MAX_BACKOFF);
    }
}
