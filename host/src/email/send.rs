//! Handing a message to an SMTP relay with lettre, and sorting the outcome into
//! what the job runner needs: sent, try again later, or give up.
//!
//! - 2xx: sent; the relay's reply (often with its queue id) is kept.
//! - 4xx, connection refused or reset, timeouts, TLS handshake failures, a
//!   garbled reply: [`SendError::Temporary`]. The relay may be back, or the
//!   recipient's server may accept later: retry with backoff.
//! - 5xx, or a client-side refusal (e.g. the relay does not offer STARTTLS
//!   while it is required, so nothing was sent in clear): [`SendError::Permanent`]
//!   with the server's words, for the dead letter and the tenant.
//!
//! One connection per message (lettre's `pool` feature is off): transports are
//! per tenant and per relay, and a send is a background job, not a request.
//!
//! A tenant's own relay is a connection the tenant directs, so it follows the
//! outbound rule ([`crate::outbound`]): its name is resolved here, at connect
//! time, every address is checked, and lettre is handed the checked IP (with
//! the host name kept for TLS), so DNS cannot change the target in between.
//! What goes wrong with it reaches the tenant only as a generic reason (the
//! reply code at most); the relay's own words go to the server log, so the
//! relay cannot be used to read banners of, or scan, what it reaches.

use std::error::Error as _;
use std::fmt;
use std::io;
use std::time::{Duration, Instant};

use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use super::EmailSettingsError;
use super::settings::SETTINGS_CODE;
use crate::outbound::{OutboundPolicy, Refusal};
use crate::storage::{EmailRelay, EmailSettings, EmailTls};

/// How to reach a relay.
#[derive(Clone, PartialEq, Eq)]
pub struct SmtpConfig {
    /// Host name (also the name TLS certificates are checked against) or IP.
    pub host: String,
    pub port: u16,
    pub tls: EmailTls,
    pub username: Option<String>,
    /// In clear, decrypted just before use; never logged (see `Debug`).
    pub password: Option<String>,
    /// For the whole exchange, connecting included. lettre's async transport
    /// bounds only the connect, so a relay that accepts and then stalls would
    /// hold a worker forever without this. Past it, the outcome is
    /// Temporary, and a retry may deliver a second copy if the relay had
    /// in fact taken the message (SMTP delivers at least once).
    pub timeout: Duration,
    /// The EHLO name; the machine's host name when None.
    pub hello_name: Option<String>,
    /// Set for a tenant's own relay: the rule its addresses must pass, and
    /// failures reported generically. None for the platform's relay.
    pub policy: Option<OutboundPolicy>,
}

impl fmt::Debug for SmtpConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmtpConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("timeout", &self.timeout)
            .field("hello_name", &self.hello_name)
            .field("policy", &self.policy)
            .finish()
    }
}

impl SmtpConfig {
    /// Plain SMTP without credentials, e.g. a relay on loopback.
    pub fn plain(host: impl Into<String>, port: u16) -> SmtpConfig {
        SmtpConfig {
            host: host.into(),
            port,
            tls: EmailTls::None,
            username: None,
            password: None,
            timeout: Duration::from_secs(30),
            hello_name: None,
            policy: None,
        }
    }
}

/// The relay for a tenant: the platform's, or the tenant's own from its
/// (validated) settings with `password` decrypted by the caller, restricted
/// by `policy`. Timeout and EHLO name always come from the platform's
/// configuration.
pub fn relay_config(
    settings: &EmailSettings,
    platform: &SmtpConfig,
    password: Option<String>,
    policy: &OutboundPolicy,
) -> Result<SmtpConfig, EmailSettingsError> {
    if settings.relay == EmailRelay::Platform {
        return Ok(platform.clone());
    }
    let missing = |field| EmailSettingsError {
        code: SETTINGS_CODE,
        field,
        message: "is required with relay `custom`; complete the email settings".into(),
    };
    let host = settings.smtp_host.clone().ok_or(missing("smtp_host"))?;
    let port = settings.smtp_port.ok_or(missing("smtp_port"))?;
    let port = u16::try_from(port)
        .ok()
        .filter(|&p| p != 0)
        .ok_or_else(|| EmailSettingsError {
            code: SETTINGS_CODE,
            field: "smtp_port",
            message: format!("{port} is not a TCP port; use 1 to 65535"),
        })?;
    Ok(SmtpConfig {
        host,
        port,
        tls: settings.smtp_tls,
        username: settings.smtp_username.clone(),
        password,
        timeout: platform.timeout,
        hello_name: platform.hello_name.clone(),
        policy: Some(policy.clone()),
    })
}

/// Checks a tenant's relay before its settings are stored: the port, then
/// every address the host resolves to (checked again at each send).
pub async fn check_relay(host: &str, port: u32, policy: &OutboundPolicy) -> Result<(), Refusal> {
    let port = u16::try_from(port).unwrap_or(0);
    policy.resolve(host, port).await.map(|_| ())
}

/// The relay accepted the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmtpOutcome {
    /// The reply code, e.g. 250.
    pub code: u16,
    /// Code and text as the relay said them, e.g. `250 2.0.0 Ok: queued as 4F2`.
    pub reply: String,
}

/// The relay did not take the message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// Try again later: a 4xx reply, or the relay could not be reached or
    /// talked to. Holds the reply (code first) or what went wrong.
    #[error("temporary failure, will retry: {0}")]
    Temporary(String),
    /// Do not retry: a 5xx reply, or a refusal before anything was sent.
    /// Holds the server's reply (code first) or the reason.
    #[error("permanent failure: {0}")]
    Permanent(String),
}

impl SendError {
    /// The reply or reason, for storing with the message.
    pub fn reply(&self) -> &str {
        match self {
            SendError::Temporary(reply) | SendError::Permanent(reply) => reply,
        }
    }

    /// Whether a retry may succeed.
    pub fn is_temporary(&self) -> bool {
        matches!(self, SendError::Temporary(_))
    }
}

/// Sends `message` to its envelope's recipients, from its envelope sender
/// (built in by [`build_message`](super::build_message)), through `config`.
pub async fn send(config: &SmtpConfig, message: &Message) -> Result<SmtpOutcome, SendError> {
    match &config.policy {
        None => send_to_platform(config, message).await,
        Some(policy) => send_to_tenant_relay(config, policy, message).await,
    }
}

async fn send_to_platform(
    config: &SmtpConfig,
    message: &Message,
) -> Result<SmtpOutcome, SendError> {
    let transport = transport(config, &config.host)?;
    let started = Instant::now();
    let result = tokio::time::timeout(config.timeout, transport.send(message.clone())).await;
    let elapsed_ms = started.elapsed().as_millis();
    let Ok(result) = result else {
        let outcome = SendError::Temporary(format!(
            "the relay {}:{} did not finish within {:?}",
            config.host, config.port, config.timeout
        ));
        tracing::info!(host = %config.host, port = config.port, elapsed_ms, "mail send timed out");
        return Err(outcome);
    };
    match result {
        Ok(response) => Ok(accepted(config, &response, elapsed_ms)),
        Err(err) => {
            let outcome = classify(&err);
            tracing::info!(
                host = %config.host,
                port = config.port,
                elapsed_ms,
                temporary = outcome.is_temporary(),
                reply = outcome.reply(),
                "mail not sent"
            );
            Err(outcome)
        }
    }
}

/// What a tenant is told when its relay fails: the class and, when the relay
/// answered one, the reply code; never the relay's text.
const GENERIC: &str = "the relay refused or could not be reached";

fn generic(raw: &SendError, code: Option<String>) -> SendError {
    let code = code
        .map(|c| format!(" (reply code {c})"))
        .unwrap_or_default();
    let reason = format!("{GENERIC}{code}; the details are in the server log");
    match raw {
        SendError::Temporary(_) => SendError::Temporary(format!("{reason}; will retry")),
        SendError::Permanent(_) => SendError::Permanent(reason),
    }
}

async fn send_to_tenant_relay(
    config: &SmtpConfig,
    policy: &OutboundPolicy,
    message: &Message,
) -> Result<SmtpOutcome, SendError> {
    let started = Instant::now();
    let deadline = tokio::time::Instant::now() + config.timeout;
    let resolved =
        tokio::time::timeout_at(deadline, policy.resolve(&config.host, config.port)).await;
    let addrs = match resolved {
        Ok(Ok(addrs)) => addrs,
        Ok(Err(Refusal::Unresolvable(why))) => {
            tracing::warn!(host = %config.host, port = config.port, %why, "tenant relay does not resolve");
            return Err(SendError::Temporary(format!(
                "smtp_host `{}` does not resolve; will retry (check the email settings)",
                config.host
            )));
        }
        Ok(Err(refusal)) => {
            // The settings passed when stored; the name now points elsewhere.
            tracing::warn!(host = %config.host, port = config.port, %refusal, "tenant relay refused at connect time");
            return Err(SendError::Permanent(format!(
                "smtp_host `{}` {refusal}; fix the email settings",
                config.host
            )));
        }
        Err(_) => {
            tracing::warn!(host = %config.host, port = config.port, "tenant relay: resolving timed out");
            return Err(SendError::Temporary(format!("{GENERIC}; will retry")));
        }
    };
    let mut last = None;
    for (index, addr) in addrs.iter().enumerate() {
        let transport = transport(config, &addr.ip().to_string())?;
        let attempt = tokio::time::timeout_at(deadline, transport.send(message.clone())).await;
        let elapsed_ms = started.elapsed().as_millis();
        let err = match attempt {
            Ok(Ok(response)) => return Ok(accepted(config, &response, elapsed_ms)),
            Ok(Err(err)) => err,
            Err(_) => {
                tracing::warn!(host = %config.host, %addr, elapsed_ms, "tenant relay did not finish in time");
                return Err(SendError::Temporary(format!("{GENERIC}; will retry")));
            }
        };
        let raw = classify(&err);
        tracing::warn!(
            host = %config.host,
            %addr,
            elapsed_ms,
            temporary = raw.is_temporary(),
            reply = raw.reply(),
            "tenant relay did not take the message"
        );
        let more = index + 1 < addrs.len();
        if more && not_connected(&err) {
            last = Some(raw);
            continue;
        }
        return Err(generic(&raw, err.status().map(|c| c.to_string())));
    }
    let raw = last.unwrap_or_else(|| SendError::Temporary(String::new()));
    Err(generic(&raw, None))
}

/// Whether lettre failed before a connection existed, so the next address
/// may be tried without any risk of a second copy.
fn not_connected(err: &lettre::transport::smtp::Error) -> bool {
    err.source()
        .and_then(|source| source.downcast_ref::<io::Error>())
        .is_some_and(|io| {
            matches!(
                io.kind(),
                io::ErrorKind::ConnectionRefused
                    | io::ErrorKind::HostUnreachable
                    | io::ErrorKind::NetworkUnreachable
                    | io::ErrorKind::AddrNotAvailable
            )
        })
}

fn accepted(
    config: &SmtpConfig,
    response: &lettre::transport::smtp::response::Response,
    elapsed_ms: u128,
) -> SmtpOutcome {
    let code: u16 = response.code().to_string().parse().unwrap_or(250);
    let text = response.message().collect::<Vec<_>>().join(" ");
    let reply = format!("{code} {text}").trim_end().to_owned();
    tracing::debug!(host = %config.host, port = config.port, elapsed_ms, %reply, "mail sent");
    SmtpOutcome { code, reply }
}

/// A transport to `server` (the configured host, or the checked IP of a
/// tenant's relay); TLS always checks the certificate against the configured
/// host name.
fn transport(
    config: &SmtpConfig,
    server: &str,
) -> Result<AsyncSmtpTransport<Tokio1Executor>, SendError> {
    let tls_parameters = || {
        TlsParameters::new(config.host.clone()).map_err(|e| {
            SendError::Permanent(format!(
                "cannot set up TLS for relay `{}`: {e}; check smtp_host",
                config.host
            ))
        })
    };
    let tls = match config.tls {
        EmailTls::None => Tls::None,
        EmailTls::Starttls => Tls::Required(tls_parameters()?),
        EmailTls::Tls => Tls::Wrapper(tls_parameters()?),
    };
    let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(server)
        .port(config.port)
        .tls(tls)
        .timeout(Some(config.timeout));
    if let (Some(user), Some(password)) = (&config.username, &config.password) {
        builder = builder.credentials(Credentials::new(user.clone(), password.clone()));
    }
    if let Some(name) = &config.hello_name {
        builder = builder.hello_name(ClientId::Domain(name.clone()));
    }
    Ok(builder.build())
}

/// Sorts a lettre error into retry or give up, keeping the server's reply.
fn classify(err: &lettre::transport::smtp::Error) -> SendError {
    if let Some(code) = err.status() {
        let text = err.source().map(ToString::to_string).unwrap_or_default();
        let reply = format!("{code} {text}").trim_end().to_owned();
        return if err.is_permanent() {
            SendError::Permanent(reply)
        } else {
            SendError::Temporary(reply)
        };
    }
    if err.is_timeout() {
        return SendError::Temporary(format!("the relay did not answer in time ({err})"));
    }
    if err.is_client() {
        return SendError::Permanent(format!(
            "refused before sending: {err}; check the relay settings"
        ));
    }
    SendError::Temporary(format!("cannot reach or talk to the relay: {err}"))
}
