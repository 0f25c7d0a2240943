//! Per-tenant email routes: settings (sending domain, from, reply-to, relay),
//! transactional sends (rendered now with the tenant's plugin, sent by a job in
//! the tenant's queue), the delivery log, the suppression list, and — on the
//! platform host — the bounce endpoint that attributes DSNs and bounce webhooks
//! to their tenant and message. Rendering and queueing a send are
//! [`crate::app::email`]'s; the send itself is the job handler's (`workers`).

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::{
    Json, Router,
    routing::{delete, get, post},
};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::app;
use crate::email::{BounceOutcome, parse_bounce_webhook, parse_dsn, record_bounce};
use crate::http::body::Sorted;
use crate::http::context::{ApiQuery, JsonBody, Member, PlatformHost, RawBody, TenantAdmin};
use crate::http::{ApiError, ApiResult, Code};
use crate::state::AppState;

// Response bodies: fields in alphabetical order, nested records sorted (see
// `http::body`).

/// `GET`/`PUT /v1/email/settings` (without settings: `{"configured":false}`).
#[derive(Serialize)]
struct SettingsBody<T> {
    configured: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    has_smtp_password: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    settings: Option<Sorted<T>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    updated_at: Option<i64>,
    /// Who mail goes out as now, and why (a sending domain not yet verified
    /// sends from the platform's address).
    #[serde(skip_serializing_if = "Option::is_none")]
    sending_as: Option<Sorted<app::email::SendingAs>>,
}

/// `POST /v1/email/send`.
#[derive(Serialize)]
struct SendBody {
    job: i64,
    message_id: String,
    message_id_header: String,
    source: crate::resolve::Source,
}

/// `GET /v1/email/messages`.
#[derive(Serialize)]
struct MessagesBody<T> {
    messages: Sorted<T>,
}

/// `GET /v1/email/messages/{id}`.
#[derive(Serialize)]
struct MessageBody<T> {
    message: Sorted<T>,
}

/// `GET /v1/email/suppressions`.
#[derive(Serialize)]
struct SuppressionsBody<T> {
    suppressions: Sorted<T>,
}

/// One bounce of `POST /v1/email/bounces`.
#[derive(Serialize)]
#[serde(untagged)]
enum BounceBody {
    Other {
        recipient: String,
        result: &'static str,
    },
    Recorded {
        hard: bool,
        message_id: String,
        recipient: String,
        result: &'static str,
        suppressed: Option<String>,
        tenant: Sorted<crate::tenancy::TenantId>,
    },
}

/// `POST /v1/email/bounces`.
#[derive(Serialize)]
struct BouncesBody {
    bounces: Vec<BounceBody>,
}

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/email/settings", get(get_settings).put(put_settings))
        .route("/v1/email/send", post(send))
        .route("/v1/email/messages", get(messages))
        .route("/v1/email/messages/{id}", get(message))
        .route("/v1/email/suppressions", get(suppressions))
        .route("/v1/email/suppressions/{address}", delete(unsuppress))
        .route("/v1/email/bounces", post(bounces))
}

async fn get_settings(
    State(app): State<AppState>,
    member: Member,
) -> ApiResult<Json<SettingsBody<impl Serialize>>> {
    let record = app
        .storage
        .tenant(member.tenant.id())
        .email_settings()
        .await?;
    Ok(Json(match record {
        Some(record) => SettingsBody {
            configured: true,
            has_smtp_password: Some(record.settings.smtp_password_enc.is_some()),
            sending_as: Some(Sorted(
                app::email::sending_as(&app, member.tenant.id(), &record.settings).await?,
            )),
            settings: Some(Sorted(record.settings)),
            updated_at: Some(record.updated_at),
        },
        None => SettingsBody {
            configured: false,
            has_smtp_password: None,
            settings: None,
            updated_at: None,
            sending_as: None,
        },
    }))
}

async fn put_settings(
    State(app): State<AppState>,
    admin: TenantAdmin,
    JsonBody(change): JsonBody<app::email::SettingsChange>,
) -> ApiResult<Json<SettingsBody<impl Serialize>>> {
    let saved =
        app::email::save_settings(&app, admin.tenant.id(), &admin.principal.subject, change)
            .await?;
    Ok(Json(SettingsBody {
        configured: true,
        has_smtp_password: None,
        sending_as: Some(Sorted(
            app::email::sending_as(&app, admin.tenant.id(), &saved.settings).await?,
        )),
        settings: Some(Sorted(saved.settings)),
        updated_at: Some(saved.updated_at),
    }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SendInput {
    template: String,
    to: String,
    #[serde(default)]
    context: BTreeMap<String, String>,
}

async fn send(
    State(app): State<AppState>,
    admin: TenantAdmin,
    JsonBody(input): JsonBody<SendInput>,
) -> ApiResult<(StatusCode, Json<SendBody>)> {
    let tenant = admin.tenant.state(&app).await?;
    let queued = app::email::queue_send(
        &app,
        &tenant,
        &admin.principal.subject,
        &input.template,
        &input.to,
        input.context,
    )
    .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(SendBody {
            job: queued.job,
            message_id: queued.message_id,
            message_id_header: queued.message_id_header,
            source: queued.source,
        }),
    ))
}

#[derive(Debug, Deserialize)]
struct Limit {
    limit: Option<u32>,
}

async fn messages(
    State(app): State<AppState>,
    member: Member,
    ApiQuery(q): ApiQuery<Limit>,
) -> ApiResult<Json<MessagesBody<impl Serialize>>> {
    let messages = app
        .storage
        .tenant(member.tenant.id())
        .email_messages(q.limit.unwrap_or(50).min(500))
        .await?;
    Ok(Json(MessagesBody {
        messages: Sorted(messages),
    }))
}

async fn message(
    State(app): State<AppState>,
    member: Member,
    Path(id): Path<String>,
) -> ApiResult<Json<MessageBody<impl Serialize>>> {
    let message = app
        .storage
        .tenant(member.tenant.id())
        .email_message(&id)
        .await?
        .ok_or_else(|| ApiError::not_found("this tenant has no message with that id"))?;
    Ok(Json(MessageBody {
        message: Sorted(message),
    }))
}

async fn suppressions(
    State(app): State<AppState>,
    member: Member,
    ApiQuery(q): ApiQuery<Limit>,
) -> ApiResult<Json<SuppressionsBody<impl Serialize>>> {
    let list = app
        .storage
        .tenant(member.tenant.id())
        .email_suppressions(q.limit.unwrap_or(100).min(1_000))
        .await?;
    Ok(Json(SuppressionsBody {
        suppressions: Sorted(list),
    }))
}

async fn unsuppress(
    State(app): State<AppState>,
    admin: TenantAdmin,
    Path(address): Path<String>,
) -> ApiResult<StatusCode> {
    let db = app.storage.tenant(admin.tenant.id());
    if !db.email_unsuppress(&address).await? {
        return Err(ApiError::not_found(
            "that address is not on this tenant's suppression list",
        ));
    }
    db.audit(
        &admin.principal.subject,
        "email.unsuppress",
        None,
        Some(&json!({ "address": address.to_ascii_lowercase() }).to_string()),
        None,
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Bounce notifications from the platform's mail system: RFC 3464 delivery
/// status messages (raw) or the JSON webhook form. Platform host only, with the
/// configured shared token.
async fn bounces(
    State(app): State<AppState>,
    // The platform's host only, read as every route reads it (HTTP/2 included).
    _platform: PlatformHost,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> ApiResult<Json<BouncesBody>> {
    // One rate for the endpoint, token or not: a flood costs a token
    // comparison at most, then 429s.
    if let Err(not_until) = app.bounce_rate.check() {
        // The limiter's own clock (a fresh quanta clock costs a VM exit).
        let wait = not_until.wait_time_from(governor::clock::Clock::now(app.bounce_rate.clock()));
        return Err(ApiError::rate_limited(
            wait.as_secs_f64().ceil().max(1.0) as u64
        ));
    }
    let expected = app.config.bounce_token.as_deref().ok_or_else(|| {
        ApiError::new(
            Code::BouncesDisabled,
            "this server has no bounce token configured (VENEER_BOUNCE_TOKEN)",
        )
    })?;
    let given = headers
        .get("x-veneer-bounce-token")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if !constant_time_eq(given.as_bytes(), expected.as_bytes()) {
        return Err(ApiError::new(
            Code::InvalidBounceToken,
            "send the configured token in X-Veneer-Bounce-Token",
        ));
    }
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/json"));
    let parsed = if is_json {
        parse_bounce_webhook(&body).map(|b| vec![b])
    } else {
        parse_dsn(&body)
    };
    let bounces = parsed.map_err(|err| ApiError::new(Code::InvalidBounce, err.to_string()))?;
    let mut results = Vec::new();
    for bounce in &bounces {
        let outcome = record_bounce(&app.storage, bounce).await?;
        if let BounceOutcome::Recorded {
            tenant, suppressed, ..
        } = &outcome
        {
            app.metrics
                .email(tenant, crate::metrics::EmailEvent::Bounced);
            if suppressed.is_some() {
                app.metrics
                    .email(tenant, crate::metrics::EmailEvent::Suppressed);
            }
        }
        results.push(match outcome {
            BounceOutcome::Delayed => BounceBody::Other {
                recipient: bounce.recipient.clone(),
                result: "delayed",
            },
            BounceOutcome::Unattributed => BounceBody::Other {
                recipient: bounce.recipient.clone(),
                result: "unattributed",
            },
            BounceOutcome::Recorded {
                tenant,
                message_id,
                hard,
                suppressed,
            } => BounceBody::Recorded {
                hard,
                message_id,
                recipient: bounce.recipient.clone(),
                result: "recorded",
                suppressed,
                tenant: Sorted(tenant),
            },
        });
    }
    Ok(Json(BouncesBody { bounces: results }))
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// The typed bodies answer the same bytes the `json!` literals did.
    #[test]
    fn settings_and_bounce_bodies_keep_their_json_bytes() {
        let none: SettingsBody<()> = SettingsBody {
            configured: false,
            has_smtp_password: None,
            settings: None,
            updated_at: None,
            sending_as: None,
        };
        assert_eq!(
            serde_json::to_string(&none).unwrap(),
            json!({ "configured": false }).to_string()
        );
        let tenant = crate::tenancy::TenantId::new("acme").unwrap();
        let typed = BouncesBody {
            bounces: vec![
                BounceBody::Other {
                    recipient: "a@example.com".into(),
                    result: "delayed",
                },
                BounceBody::Recorded {
                    hard: true,
                    message_id: "m1".into(),
                    recipient: "b@example.com".into(),
                    result: "recorded",
                    suppressed: None,
                    tenant: Sorted(tenant.clone()),
                },
            ],
        };
        let literal = json!({ "bounces": [
            json!({ "recipient": "a@example.com", "result": "delayed" }),
            json!({
                "recipient": "b@example.com", "result": "recorded", "tenant": tenant, "message_id": "m1",
                "hard": true, "suppressed": None::<String>,
            }),
        ] });
        assert_eq!(serde_json::to_string(&typed).unwrap(), literal.to_string());
    }
}
