//! Per-tenant email routes: settings (sending domain, from, reply-to, relay),
//! transactional sends (rendered now with the tenant's plugin, sent by a job in
//! the tenant's queue), the delivery log, the suppression list, and — on the
//! platform host — the bounce endpoint that attributes DSNs and bounce webhooks
//! to their tenant and message. Rendering and queueing a send are
//! [`crate::app::email`]'s; the send itself is the job handler's (`workers`).

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app;
use crate::email::{BounceOutcome, parse_bounce_webhook, parse_dsn, record_bounce};
use crate::http::body::Sorted;
use crate::http::context::{ApiQuery, JsonBody, Member, PlatformHost, RawBody, TenantAdmin};
use crate::http::openapi::{HOST, JSON, MEMBER, QUERY, RAW, TENANT_HOST, TOKEN, errors};
use crate::http::{ApiError, ApiResult, Code};
use crate::state::AppState;
use crate::storage::{EmailMessageRecord, EmailSettings, EmailSuppression};

// Response bodies: fields in alphabetical order, nested records sorted (see
// `http::body`).

/// `GET`/`PUT /v1/email/settings` (without settings: `{"configured":false}`).
#[derive(Serialize, ToSchema)]
struct SettingsBody {
    configured: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    has_smtp_password: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<EmailSettings>)]
    settings: Option<Sorted<EmailSettings>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    updated_at: Option<i64>,
    /// Who mail goes out as now, and why (a sending domain not yet verified
    /// sends from the platform's address).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<app::email::SendingAs>)]
    sending_as: Option<Sorted<app::email::SendingAs>>,
}

/// `POST /v1/email/send`.
#[derive(Serialize, ToSchema)]
struct SendBody {
    job: i64,
    message_id: String,
    message_id_header: String,
    source: crate::resolve::Source,
}

/// `GET /v1/email/messages`.
#[derive(Serialize, ToSchema)]
struct MessagesBody {
    #[schema(value_type = Vec<EmailMessageRecord>)]
    messages: Sorted<Vec<EmailMessageRecord>>,
}

/// `GET /v1/email/messages/{id}`.
#[derive(Serialize, ToSchema)]
struct MessageBody {
    #[schema(value_type = EmailMessageRecord)]
    message: Sorted<EmailMessageRecord>,
}

/// `GET /v1/email/suppressions`.
#[derive(Serialize, ToSchema)]
struct SuppressionsBody {
    #[schema(value_type = Vec<EmailSuppression>)]
    suppressions: Sorted<Vec<EmailSuppression>>,
}

/// One bounce of `POST /v1/email/bounces`.
#[derive(Serialize, ToSchema)]
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
        #[schema(value_type = String)]
        tenant: Sorted<crate::tenancy::TenantId>,
    },
}

/// `POST /v1/email/bounces`.
#[derive(Serialize, ToSchema)]
struct BouncesBody {
    bounces: Vec<BounceBody>,
}

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_settings, put_settings))
        .routes(routes!(send))
        .routes(routes!(messages))
        .routes(routes!(message))
        .routes(routes!(suppressions))
        .routes(routes!(unsuppress))
        .routes(routes!(bounces))
}

/// The tenant's email settings and who its mail goes out as.
#[utoipa::path(
    get,
    path = "/v1/email/settings",
    tag = "email",
    security(("bearer" = [])),
    responses(
        (status = 200, body = SettingsBody),
    ),
    extensions(("x-veneer-errors" = json!(errors(&[TENANT_HOST, TOKEN, MEMBER])))),
)]
async fn get_settings(
    State(app): State<AppState>,
    member: Member,
) -> ApiResult<Json<SettingsBody>> {
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

/// Sets the tenant's email settings (admins).
#[utoipa::path(
    put,
    path = "/v1/email/settings",
    tag = "email",
    security(("bearer" = [])),
    request_body = app::email::SettingsChange,
    responses(
        (status = 200, body = SettingsBody),
    ),
    extensions(("x-veneer-errors" = json!(errors(&[TENANT_HOST, TOKEN, MEMBER, JSON, &[Code::InvalidEmailSettings, Code::InvalidFromName, Code::RelayPortNotAllowed, Code::RelayAddressNotAllowed, Code::RelayUnresolvable, Code::InvalidRecipient]])))),
)]
async fn put_settings(
    State(app): State<AppState>,
    admin: TenantAdmin,
    JsonBody(change): JsonBody<app::email::SettingsChange>,
) -> ApiResult<Json<SettingsBody>> {
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

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct SendInput {
    template: String,
    to: String,
    #[serde(default)]
    context: BTreeMap<String, String>,
}

/// Renders a template with the tenant's plugins and queues it for sending (admins).
#[utoipa::path(
    post,
    path = "/v1/email/send",
    tag = "email",
    security(("bearer" = [])),
    request_body = SendInput,
    responses(
        (status = 202, body = SendBody, description = "Rendered and queued"),
    ),
    extensions(("x-veneer-errors" = json!(errors(&[TENANT_HOST, TOKEN, MEMBER, JSON, &[Code::UnknownTemplate, Code::ContextTooLarge, Code::RenderFailed, Code::EmailNotConfigured, Code::InvalidRecipient, Code::EmailQuotaExceeded, Code::TenantBusy, Code::Conflict]])))),
)]
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

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct Limit {
    limit: Option<u32>,
}

/// The tenant's latest messages and their delivery state.
#[utoipa::path(
    get,
    path = "/v1/email/messages",
    tag = "email",
    security(("bearer" = [])),
    params(Limit),
    responses(
        (status = 200, body = MessagesBody),
    ),
    extensions(("x-veneer-errors" = json!(errors(&[TENANT_HOST, TOKEN, MEMBER, QUERY])))),
)]
async fn messages(
    State(app): State<AppState>,
    member: Member,
    ApiQuery(q): ApiQuery<Limit>,
) -> ApiResult<Json<MessagesBody>> {
    let messages = app
        .storage
        .tenant(member.tenant.id())
        .email_messages(q.limit.unwrap_or(50).min(500))
        .await?;
    Ok(Json(MessagesBody {
        messages: Sorted(messages),
    }))
}

/// One message.
#[utoipa::path(
    get,
    path = "/v1/email/messages/{id}",
    tag = "email",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The message id")),
    responses(
        (status = 200, body = MessageBody),
    ),
    extensions(("x-veneer-errors" = json!(errors(&[TENANT_HOST, TOKEN, MEMBER, &[Code::NotFound]])))),
)]
async fn message(
    State(app): State<AppState>,
    member: Member,
    Path(id): Path<String>,
) -> ApiResult<Json<MessageBody>> {
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

/// The tenant's suppressed addresses.
#[utoipa::path(
    get,
    path = "/v1/email/suppressions",
    tag = "email",
    security(("bearer" = [])),
    params(Limit),
    responses(
        (status = 200, body = SuppressionsBody),
    ),
    extensions(("x-veneer-errors" = json!(errors(&[TENANT_HOST, TOKEN, MEMBER, QUERY])))),
)]
async fn suppressions(
    State(app): State<AppState>,
    member: Member,
    ApiQuery(q): ApiQuery<Limit>,
) -> ApiResult<Json<SuppressionsBody>> {
    let list = app
        .storage
        .tenant(member.tenant.id())
        .email_suppressions(q.limit.unwrap_or(100).min(1_000))
        .await?;
    Ok(Json(SuppressionsBody {
        suppressions: Sorted(list),
    }))
}

/// Takes an address off the suppression list (admins).
#[utoipa::path(
    delete,
    path = "/v1/email/suppressions/{address}",
    tag = "email",
    security(("bearer" = [])),
    params(("address" = String, Path, description = "The suppressed address")),
    responses(
        (status = 204, description = "Removed"),
    ),
    extensions(("x-veneer-errors" = json!(errors(&[TENANT_HOST, TOKEN, MEMBER, &[Code::NotFound]])))),
)]
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
#[utoipa::path(
    post,
    path = "/v1/email/bounces",
    tag = "email",
    security(("bounce_token" = [])),
    request_body(content = String, description = "An RFC 3464 delivery status message, or the JSON bounce webhook (`Content-Type: application/json`)", content_type = "message/delivery-status"),
    responses(
        (status = 200, body = BouncesBody),
    ),
    extensions(("x-veneer-errors" = json!(errors(&[HOST, RAW, &[Code::RateLimited, Code::BouncesDisabled, Code::InvalidBounceToken, Code::InvalidBounce, Code::DatabaseUnavailable]])))),
)]
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
        let none: SettingsBody = SettingsBody {
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
