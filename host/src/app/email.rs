//! Email as use cases: a base template customised by the tenant's plugin for a
//! caller's context and rendered — what a preview shows — and a send: rendered
//! now, then queued with the job that delivers exactly those bytes (the job
//! handler in `workers` sends; retries never re-run the plugin). Rendering and
//! its bounds are `crate::email`'s; the fallback to the base is `resolve`'s.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::jobs::{SEND_JOB, SEND_JOB_ATTEMPTS};
use super::plugins::{budget, chain};
use super::runs::record_run;
use super::slots::with_slot;
use super::{Error, Result};
use crate::base::EmailTemplate;
use crate::email::{self, EmailRelay, EmailSettings, EmailTls};
use crate::outbound::Refusal;
use crate::resolve::{InputError, Resolved, Resolver, Source};
use crate::runtime::OutcomeKind;
use crate::state::AppState;
use crate::storage::{EmailSettingsRecord, NewEmailMessage, NewJob};
use crate::tenancy::{TenantId, TenantState};

/// Largest context a caller may pass to a render, keys and values together:
/// it bounds what one template instruction can cost (fuel counts instructions,
/// not bytes).
pub const MAX_EMAIL_CONTEXT_BYTES: usize = 64 * 1024;

/// A template customised by the tenant's plugin for `caller_context` (on top of
/// the template's sample values) and rendered. The plugin call and the
/// rendering run on a blocking thread, under one of the tenant's plugin slots
/// when a plugin runs (rendering the base alone needs no slot, but still leaves
/// the async workers). A plugin template that does not render, or goes past a
/// rendering bound, is the plugin's `invalid_output`: the base template is
/// rendered and served instead.
pub async fn render_email(
    app: &AppState,
    tenant: &Arc<TenantState>,
    template: &str,
    caller_context: BTreeMap<String, String>,
) -> Result<(Resolved<EmailTemplate>, email::Rendered)> {
    let base = app.base();
    let def = base
        .email(template)
        .ok_or_else(|| InputError::UnknownTemplate(template.to_owned()))?;
    let context_bytes: usize = caller_context.iter().map(|(k, v)| k.len() + v.len()).sum();
    if context_bytes > MAX_EMAIL_CONTEXT_BYTES {
        return Err(Error::ContextTooLarge {
            bytes: context_bytes,
            limit: MAX_EMAIL_CONTEXT_BYTES,
        });
    }
    // Sample values first, the caller's on top: a partial context still renders.
    let mut context = def.sample.clone();
    context.extend(caller_context);
    let plugins = chain(app, tenant).await?;
    let runs_plugin = plugins.runs_plugin();
    let (runtime, base, state, mut budget) =
        (app.runtime.clone(), app.base(), tenant.clone(), budget(app));
    let id = template.to_owned();
    let work = move || {
        let steps = plugins.steps(&state, false);
        let resolved =
            Resolver::new(&runtime, &base).email_chain(&steps, &mut budget, &id, Some(&context))?;
        let base_template = base.email(&id).map(|d| d.template.clone());
        Ok::<_, InputError>(render_or_base(resolved, base_template, &context))
    };
    let (resolved, rendered) = if runs_plugin {
        with_slot(app, tenant, true, work).await??
    } else {
        tokio::task::spawn_blocking(work)
            .await
            .map_err(|err| Error::internal(format!("render task failed: {err}")))??
    };
    for run in &resolved.runs {
        record_run(app, tenant, run);
    }
    let rendered = rendered.map_err(|err| Error::RenderFailed(err.to_string()))?;
    Ok((resolved, rendered))
}

/// A send, queued.
#[derive(Debug)]
pub struct Queued {
    /// The message's id.
    pub message_id: String,
    /// Its `Message-ID` header.
    pub message_id_header: String,
    /// The job that sends it.
    pub job: i64,
    /// Whether the plugin's template or the base's was rendered.
    pub source: Source,
}

/// Renders `template` for `to` with the tenant's plugin and queues the message
/// with the job that sends it, in one transaction (a failure between them can
/// not leave a queued message nothing will send). A bad context is the
/// caller's error now, not the job's later. Audited as `actor`'s (message id
/// and template; the recipient is in the delivery log). At most
/// `--max-emails-per-day` per tenant and UTC day.
pub async fn queue_send(
    app: &AppState,
    tenant: &Arc<TenantState>,
    actor: &str,
    template: &str,
    to: &str,
    context: BTreeMap<String, String>,
) -> Result<Queued> {
    let db = app.storage.tenant(&tenant.record.id);
    let settings = db
        .email_settings()
        .await?
        .ok_or(Error::EmailNotConfigured)?;
    let to = to.trim().to_ascii_lowercase();
    email::check_address(&to).map_err(|why| Error::InvalidRecipient {
        why: why.to_string(),
    })?;
    // The day's cap, before the plugin runs for it.
    const DAY_MS: i64 = 86_400_000;
    let midnight = super::jobs::now_ms() / DAY_MS * DAY_MS;
    let today = db.email_count_since(midnight).await?;
    if today >= app.config.max_emails_per_day {
        return Err(Error::EmailQuotaExceeded(format!(
            "the tenant queued {today} emails today, the most allowed per day is {}; sending \
             resumes at 00:00 UTC",
            app.config.max_emails_per_day
        )));
    }
    let (resolved, rendered) = render_email(app, tenant, template, context).await?;
    let (message_id, message_id_header, job) =
        queue_rendered(app, &tenant.record.id, &settings, template, &to, &rendered).await?;
    // Who sent what, not to whom (the delivery log has the recipient).
    let after = json!({ "message_id": message_id, "template": template }).to_string();
    db.audit(actor, "email.send", None, None, Some(&after))
        .await?;
    Ok(Queued {
        message_id,
        message_id_header,
        job,
        source: resolved.source,
    })
}

/// Queues an already rendered message to `to` (checked by the caller) with
/// the job that sends it, in one transaction: its id, Message-ID header and
/// job id.
async fn queue_rendered(
    app: &AppState,
    tenant: &TenantId,
    settings: &EmailSettingsRecord,
    template: &str,
    to: &str,
    rendered: &email::Rendered,
) -> Result<(String, String, i64)> {
    let db = app.storage.tenant(tenant);
    let id = email::new_message_id();
    // The Message-ID names the domain the mail will go out as.
    let identity = sending_as(app, tenant, &settings.settings).await?;
    let header = email::message_id_header(&id, &identity.domain);
    // The recipient and the rendered message wait in the jobs table sealed.
    let payload = super::jobs::seal_payload(
        app,
        tenant,
        SEND_JOB,
        &id,
        json!({ "message": id }),
        &json!({ "message": id, "to": to, "rendered": rendered }),
    );
    let dedupe = format!("email:{id}");
    let (_, job) = db
        .email_queue_message(
            &NewEmailMessage {
                id: &id,
                template_id: template,
                to_address: to,
                subject: &rendered.subject,
                message_id: &header,
            },
            Some(&NewJob {
                kind: SEND_JOB,
                payload: &payload,
                max_attempts: SEND_JOB_ATTEMPTS,
                run_at: None,
                dedupe_key: Some(&dedupe),
            }),
        )
        .await?;
    let job = job.ok_or_else(|| Error::internal("the send job was not written"))?;
    Ok((id, header, job.id))
}

/// Emails the tenant's rollout contact (`notify` in its rollout settings)
/// about something Veneer did by itself, through the tenant's own email
/// settings. Nothing is sent (and `Ok(None)` returned) when the tenant has no
/// contact or no email settings.
pub async fn notify_tenant(
    app: &AppState,
    tenant: &TenantId,
    to: &str,
    subject: &str,
    text: &str,
) -> Result<Option<String>> {
    let Some(settings) = app.storage.tenant(tenant).email_settings().await? else {
        return Ok(None);
    };
    let escaped: String = text
        .chars()
        .map(|c| match c {
            '<' => "&lt;".to_owned(),
            '>' => "&gt;".to_owned(),
            '&' => "&amp;".to_owned(),
            '"' => "&quot;".to_owned(),
            c => c.to_string(),
        })
        .collect();
    let rendered = email::Rendered {
        subject: subject.to_owned(),
        html: format!("<p>{}</p>", escaped.replace('\n', "<br>")),
        text: text.to_owned(),
        from_name: None,
        reply_to: None,
    };
    let (id, _, _) = queue_rendered(app, tenant, &settings, "veneer-notice", to, &rendered).await?;
    Ok(Some(id))
}

/// Renders the resolved template; when it is the plugin's and does not render
/// (a bound, or an error of its own), renders `base` instead and marks the run
/// `invalid_output`. When the base does not render either, the context is at
/// fault: the base's error is returned and the run is left as it was.
fn render_or_base(
    mut resolved: Resolved<EmailTemplate>,
    base: Option<EmailTemplate>,
    context: &BTreeMap<String, String>,
) -> (
    Resolved<EmailTemplate>,
    std::result::Result<email::Rendered, email::RenderError>,
) {
    let first = email::render(&resolved.value, context);
    let (Err(err), Source::Plugin, Some(base)) = (&first, resolved.source, base) else {
        return (resolved, first);
    };
    match email::render(&base, context) {
        Ok(rendered) => {
            tracing::info!(template = %base.id, part = err.part, bound = ?err.bound, "plugin template does not render; serving the base");
            // The chain's result does not render: the last step made it so.
            if let Some(run) = resolved
                .runs
                .iter_mut()
                .rev()
                .find(|r| r.outcome == OutcomeKind::Ok)
            {
                run.outcome = OutcomeKind::InvalidOutput;
                run.message = Some(format!("the plugin's email template is refused: {err}"));
            }
            resolved.value = base;
            resolved.source = Source::Base;
            (resolved, Ok(rendered))
        }
        Err(base_err) => (resolved, Err(base_err)),
    }
}

/// A tenant admin's email settings, as given: trimmed and checked by
/// [`save_settings`]. The SMTP password comes in clear and is sealed there;
/// omitted, the stored one is kept; empty, it is removed.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SettingsChange {
    pub sending_domain: String,
    pub from_name: String,
    pub from_address: String,
    #[serde(default)]
    pub reply_to: Option<String>,
    #[serde(default = "platform_relay")]
    pub relay: EmailRelay,
    #[serde(default)]
    pub smtp_host: Option<String>,
    #[serde(default)]
    pub smtp_port: Option<u32>,
    #[serde(default = "starttls")]
    pub smtp_tls: EmailTls,
    #[serde(default)]
    pub smtp_username: Option<String>,
    /// In clear; stored encrypted. Omit to keep the stored one.
    #[serde(default)]
    pub smtp_password: Option<String>,
}

fn platform_relay() -> EmailRelay {
    EmailRelay::Platform
}

fn starttls() -> EmailTls {
    EmailTls::Starttls
}

/// Saves `tenant`'s email settings (audited as `actor`): addresses trimmed,
/// the domain lowercased, the password sealed, every rule of
/// `email::validate_settings` checked, and a tenant's own relay checked to be
/// public and on a submission port unless the platform allows otherwise (and
/// again at every send: DNS can change).
pub async fn save_settings(
    app: &AppState,
    tenant: &TenantId,
    actor: &str,
    change: SettingsChange,
) -> Result<EmailSettingsRecord> {
    let db = app.storage.tenant(tenant);
    let before = db.email_settings().await?;
    let password_enc = match &change.smtp_password {
        Some(password) if !password.is_empty() => Some(
            app.secrets
                .encrypt(password.as_bytes(), &email::password_aad(tenant)),
        ),
        Some(_) => None,
        None => before
            .as_ref()
            .and_then(|b| b.settings.smtp_password_enc.clone()),
    };
    let settings = EmailSettings {
        sending_domain: change.sending_domain.trim().to_ascii_lowercase(),
        from_name: change.from_name,
        from_address: change.from_address.trim().to_owned(),
        reply_to: change
            .reply_to
            .map(|r| r.trim().to_owned())
            .filter(|r| !r.is_empty()),
        relay: change.relay,
        smtp_host: change.smtp_host,
        smtp_port: change.smtp_port,
        smtp_tls: change.smtp_tls,
        smtp_username: change.smtp_username,
        smtp_password_enc: password_enc,
    };
    email::validate_settings(&settings).map_err(|err| {
        // A display name that reads as an address has a code of its own.
        if err.code == email::FROM_NAME_CODE {
            Error::InvalidFromName(err.to_string())
        } else {
            Error::InvalidEmailSettings(err.to_string())
        }
    })?;
    if settings.relay == EmailRelay::Custom
        && let (Some(host), Some(port)) = (&settings.smtp_host, settings.smtp_port)
    {
        email::check_relay(host, port, &app.config.relay_policy())
            .await
            .map_err(|refusal| {
                let shown = || format!("smtp_host `{}`", host.chars().take(80).collect::<String>());
                match refusal {
                    Refusal::Port { .. } => {
                        Error::RelayPortNotAllowed(format!("smtp_port: {refusal}"))
                    }
                    Refusal::Address(_) => {
                        Error::RelayAddressNotAllowed(format!("{} {refusal}", shown()))
                    }
                    Refusal::Unresolvable(_) => {
                        Error::RelayUnresolvable(format!("{} {refusal}", shown()))
                    }
                }
            })?;
    }
    // A new sending domain gets its DKIM key (and a check) before it is used.
    super::sending_domains::ensure(app, tenant, actor, &settings.sending_domain).await?;
    let saved = db.email_set_settings(&settings).await?;
    let after = serde_json::to_string(&saved.settings).unwrap_or_default();
    let before = before.and_then(|b| serde_json::to_string(&b.settings).ok());
    db.audit(
        actor,
        "email.settings",
        None,
        before.as_deref(),
        Some(&after),
    )
    .await?;
    Ok(saved)
}

/// Who a tenant's mail goes out as, and why.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SendingAs {
    /// The From address used.
    pub from_address: String,
    /// The domain of the Message-ID.
    pub domain: String,
    /// The Reply-To used when a template sets none.
    pub reply_to: Option<String>,
    /// Whether mail goes out as the tenant's own address.
    pub own_domain: bool,
    /// Why, in words (and what to do when it does not).
    pub why: String,
}

/// The identity mail of a tenant with `settings` goes out as. Through its own
/// relay, its own address (its provider answers for it). Through the
/// platform's relay, its own address only once the sending domain's DKIM
/// record is found (`app::sending_domains`: that proves control of its DNS,
/// and every message is then signed); until
/// then mail goes from the platform's `no-reply@<bounce domain>` with the
/// tenant's name, its Reply-To (or its from address as Reply-To), so nobody
/// can send as a domain it does not own.
pub async fn sending_as(
    app: &AppState,
    tenant: &TenantId,
    settings: &crate::storage::EmailSettings,
) -> Result<SendingAs> {
    if settings.relay != EmailRelay::Platform {
        return Ok(SendingAs {
            from_address: settings.from_address.clone(),
            domain: settings.sending_domain.clone(),
            reply_to: settings.reply_to.clone(),
            own_domain: true,
            why: "sent through the tenant's own relay".into(),
        });
    }
    if super::sending_domains::verified(app, tenant, &settings.sending_domain).await? {
        return Ok(SendingAs {
            from_address: settings.from_address.clone(),
            domain: settings.sending_domain.clone(),
            reply_to: settings.reply_to.clone(),
            own_domain: true,
            why: format!(
                "{}'s DKIM record is verified: mail goes out as it, signed",
                settings.sending_domain
            ),
        });
    }
    let platform = app.config.bounce_domain.to_ascii_lowercase();
    Ok(SendingAs {
        from_address: format!("no-reply@{platform}"),
        domain: platform.clone(),
        reply_to: Some(
            settings
                .reply_to
                .clone()
                .unwrap_or_else(|| settings.from_address.clone()),
        ),
        own_domain: false,
        why: format!(
            "{domain} is not verified for this tenant: publish the DKIM record GET /v1/email/domains/{domain} lists; until then mail goes from no-reply@{platform} with the tenant's name and Reply-To",
            domain = settings.sending_domain
        ),
    })
}
