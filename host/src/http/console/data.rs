//! The tenant's data: key-value entries plugins read (admins set and delete
//! them through [`crate::app::tenants`]), and its email templates rendered
//! through its chain as previews ([`crate::app::email::render_email`], as
//! `POST /v1/email/preview` does, with each template's sample values). A
//! preview's HTML is served on its own URL into a sandboxed frame, under a
//! policy of its own (no script at all; the inline styles emails use).

use std::collections::BTreeMap;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use maud::{Markup, html};
use serde::Deserialize;

use super::layout::{self, PageError, csrf};
use super::overview::Notice;
use super::session::{Act, TenantViewer};
use crate::app;
use crate::http::{ApiError, Code};
use crate::state::AppState;

/// Largest value the console (like the API) stores under one key.
const MAX_VALUE_BYTES: usize = 64 << 10;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/console/data", get(kv))
        .route("/console/data/put", post(put))
        .route("/console/data/delete", post(delete))
        .route("/console/emails", get(emails))
        .route("/console/emails/{id}/preview", get(preview))
}

/// `?prefix=`.
#[derive(Debug, Deserialize)]
struct KvQuery {
    #[serde(default)]
    prefix: String,
    notice: Option<String>,
}

async fn kv(
    State(app): State<AppState>,
    viewer: TenantViewer,
    Query(q): Query<KvQuery>,
) -> Result<Response, PageError> {
    Ok(kv_page(
        &app,
        &viewer,
        &q.prefix,
        layout::notice(q.notice.as_deref()),
        None,
    )
    .await?
    .into_response())
}

async fn kv_page(
    app: &AppState,
    viewer: &TenantViewer,
    prefix: &str,
    notice: Option<&str>,
    error: Option<(&KvForm, String)>,
) -> Result<Markup, PageError> {
    let entries = app
        .storage
        .tenant(viewer.tenant.id())
        .kv_list(prefix, 200)
        .await?;
    let body = html! {
        form.card method="get" action="/console/data" {
            label for="prefix" { "Keys starting with" }
            input type="text" name="prefix" id="prefix" value=(prefix);
            button.secondary type="submit" { "Show" }
        }
        table id="kv" {
            tr { th { "Key" } th { "Value" } th { "" } }
            @for (key, value) in &entries {
                tr {
                    td { code { (key) } }
                    td { pre { (value) } }
                    td {
                        @if viewer.is_admin() {
                            form method="post" action="/console/data/delete" {
                                (csrf(&viewer.csrf))
                                input type="hidden" name="key" value=(key);
                                input type="hidden" name="value" value="";
                                button.danger type="submit" { "Delete" }
                            }
                        }
                    }
                }
            }
            @if entries.is_empty() { tr { td.muted colspan="3" { "No entries." } } }
        }
        @if viewer.is_admin() {
            form.card method="post" action="/console/data/put" {
                (csrf(&viewer.csrf))
                h2 { "Set a value" }
                label for="key" { "Key" }
                input type="text" name="key" id="key" value=(error.as_ref().map_or("", |(f, _)| f.key.as_str()));
                label for="value" { "Value" }
                textarea name="value" id="value" class=[error.as_ref().map(|_| "invalid")] { (error.as_ref().map_or("", |(f, _)| f.value.as_str())) }
                @if let Some((_, message)) = &error { p.field-error { (message) } }
                button type="submit" { "Save" }
            }
        }
    };
    Ok(layout::page(
        &viewer.frame(),
        "Key-value data",
        notice,
        body,
    ))
}

#[derive(Debug, Deserialize)]
struct KvForm {
    key: String,
    #[serde(default)]
    value: String,
}

/// The key rule of `/v1/kv/{key}`: 1 to 256 bytes, no control characters.
fn check_key(key: &str) -> Result<(), String> {
    if key.is_empty() || key.len() > 256 || key.chars().any(char::is_control) {
        return Err("Keys are 1 to 256 bytes without control characters.".into());
    }
    Ok(())
}

async fn put(
    State(app): State<AppState>,
    act: Act<TenantViewer, KvForm>,
) -> Result<Response, PageError> {
    let viewer = &act.viewer;
    viewer.require_admin()?;
    let form = &act.form;
    let checked = check_key(&form.key).and_then(|()| {
        if form.value.len() > MAX_VALUE_BYTES {
            Err("Values are at most 64 KiB.".to_owned())
        } else {
            Ok(())
        }
    });
    let result = match checked {
        Err(message) => Err(message),
        Ok(()) => app::tenants::put_kv(
            &app,
            viewer.tenant.id(),
            &viewer.principal.subject,
            &form.key,
            &form.value,
        )
        .await
        .map_err(|err| ApiError::from(err).message().to_owned()),
    };
    match result {
        Ok(()) => Ok(Redirect::to("/console/data?notice=saved").into_response()),
        Err(message) => Ok(layout::with_status(
            StatusCode::UNPROCESSABLE_ENTITY,
            kv_page(&app, viewer, "", None, Some((form, message))).await?,
        )),
    }
}

async fn delete(
    State(app): State<AppState>,
    act: Act<TenantViewer, KvForm>,
) -> Result<Response, PageError> {
    let viewer = &act.viewer;
    viewer.require_admin()?;
    check_key(&act.form.key).map_err(|m| PageError::Api(ApiError::new(Code::InvalidKey, m)))?;
    if !app::tenants::delete_kv(
        &app,
        viewer.tenant.id(),
        &viewer.principal.subject,
        &act.form.key,
    )
    .await?
    {
        return Err(PageError::Api(ApiError::not_found(
            "no value under that key",
        )));
    }
    Ok(Redirect::to("/console/data?notice=removed").into_response())
}

/// `GET /console/emails`: every template, rendered through the chain with
/// its sample values.
async fn emails(
    State(app): State<AppState>,
    viewer: TenantViewer,
    Query(_q): Query<Notice>,
) -> Result<Response, PageError> {
    let state = viewer.tenant.state(&app).await?;
    let config = app::config::effective(&app, &state).await?;
    let mut previews = Vec::new();
    for id in config.emails.keys() {
        let rendered = app::email::render_email(&app, &state, id, BTreeMap::new()).await;
        previews.push((id.clone(), rendered));
    }
    let body = html! {
        @for (id, rendered) in &previews {
            section.card.email-preview id={ "email-" (id) } {
                h2 { (id) }
                @match rendered {
                    Ok((resolved, r)) => {
                        p { "Subject: " strong { (r.subject) } }
                        p.muted {
                            "From: " @match resolved.source {
                                crate::resolve::Source::Base => "base template",
                                crate::resolve::Source::Plugin => "customised by the tenant's chain",
                            }
                        }
                        iframe sandbox="" title={ "Preview of " (id) } src={ "/console/emails/" (id) "/preview" } height="320" {}
                        details { summary { "Text part" } pre { (r.text) } }
                    }
                    Err(err) => { p.error { (ApiError::from(err.clone()).message()) } }
                }
            }
        }
    };
    Ok(layout::page(&viewer.frame(), "Email templates", None, body).into_response())
}

/// `GET /console/emails/{id}/preview`: the rendered HTML alone, for the
/// sandboxed frame (no script may run in it; its own inline styles may).
async fn preview(
    State(app): State<AppState>,
    viewer: TenantViewer,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    let state = viewer.tenant.state(&app).await?;
    let (_, rendered) = app::email::render_email(&app, &state, &id, BTreeMap::new()).await?;
    let mut response = (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        rendered.html,
    )
        .into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; img-src data:; sandbox; frame-ancestors 'self'",
        ),
    );
    headers.insert(
        header::X_FRAME_OPTIONS,
        HeaderValue::from_static("SAMEORIGIN"),
    );
    Ok(response)
}
