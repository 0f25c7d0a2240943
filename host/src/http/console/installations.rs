//! Installations and releases: the chain, uploading a component (file input,
//! or dropped on the form) and its `plugin check` result, creating an
//! installation, a release with its settings (refused settings shown in
//! place, with the plugin's words), activating, rolling back, deleting
//! drafts, and each release's diff and shadow report and the installation's
//! headroom. The use cases are [`crate::app::installations`] and
//! [`crate::app::plugins`]', as for `/v1/installations`.

use axum::Router;
use axum::extract::{Multipart, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::Value;

use super::layout::{self, PageError, csrf, when};
use super::overview::Notice;
use super::session::{Act, TenantViewer, check_csrf_of};
use crate::app;
use crate::app::installations::{Change, PluginSource, ReleaseRequest};
use crate::app::plugins::CompileError;
use crate::http::{ApiError, Code};
use crate::state::AppState;
use crate::storage::{ReleaseRecord, check_installation_name};

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/console/installations", get(list).post(create))
        .route("/console/plugins", post(upload))
        .route("/console/installations/{name}", get(show))
        .route(
            "/console/installations/{name}/releases",
            post(create_release),
        )
        .route(
            "/console/installations/{name}/releases/{id}/activate",
            post(activate),
        )
        .route(
            "/console/installations/{name}/releases/{id}/delete",
            post(delete_release),
        )
        .route("/console/installations/{name}/rollback", post(rollback))
        .route(
            "/console/installations/{name}/releases/{id}/diff",
            get(diff),
        )
        .route(
            "/console/installations/{name}/releases/{id}/shadow",
            get(shadow),
        )
        .route("/console/installations/{name}/headroom", get(headroom))
}

fn installation_name(name: &str) -> Result<&str, PageError> {
    check_installation_name(name)
        .map_err(|err| PageError::Api(ApiError::new(Code::InvalidInstallation, err.to_string())))?;
    Ok(name)
}

fn state_of(release: &ReleaseRecord, live: Option<i64>) -> &'static str {
    if Some(release.id) == live {
        "live"
    } else if release.ever_active {
        "previous"
    } else {
        "draft"
    }
}

/// The upload form (file input; the script adds dropping onto it).
fn upload_form(token: &str, error: Option<&str>) -> Markup {
    html! {
        form.card method="post" action="/console/plugins" enctype="multipart/form-data" data-dropzone {
            (csrf(token))
            h2 { "Upload a plugin" }
            div.dropzone {
                label for="plugin-file" { "Component (.wasm)" }
                input type="file" name="plugin" id="plugin-file" accept=".wasm,application/wasm" required;
                p.muted { "Choose a file, or drop one here." }
            }
            @if let Some(error) = error { p.error id="upload-error" { (error) } }
            button type="submit" id="upload" { "Upload and check" }
        }
    }
}

/// `GET /console/installations`.
async fn list(
    State(app): State<AppState>,
    viewer: TenantViewer,
    Query(q): Query<Notice>,
) -> Result<Response, PageError> {
    Ok(list_page(
        &app,
        &viewer,
        layout::notice(q.notice.as_deref()),
        None,
        None,
    )
    .await?
    .into_response())
}

async fn list_page(
    app: &AppState,
    viewer: &TenantViewer,
    notice: Option<&str>,
    create_error: Option<(&str, &str)>,
    upload_error: Option<&str>,
) -> Result<Markup, PageError> {
    let db = app.storage.tenant(viewer.tenant.id());
    let installations = db.installations().await?;
    let live = db.live_releases().await?;
    let versions = db.plugin_versions().await?;
    let body = html! {
        table id="installations" {
            tr { th { "Position" } th { "Installation" } th { "Live release" } th { "Updated" } }
            @for inst in &installations {
                tr {
                    td { (inst.position) }
                    td { a href={ "/console/installations/" (inst.name) } { (inst.name) } }
                    td {
                        @match live.iter().find(|l| l.release.installation == inst.name) {
                            Some(l) => span.badge.live { "#" (l.release.id) },
                            None => span.muted { "none" },
                        }
                    }
                    td { (when(inst.updated_at)) }
                }
            }
            @if installations.is_empty() { tr { td.muted colspan="4" { "No installations yet." } } }
        }
        @if viewer.is_admin() {
            form.card method="post" action="/console/installations" {
                (csrf(&viewer.csrf))
                h2 { "Create an installation" }
                label for="name" { "Name" }
                input type="text" name="name" id="name" placeholder="brand-emails"
                    value=(create_error.map_or("", |(n, _)| n))
                    class=[create_error.map(|_| "invalid")];
                @if let Some((_, error)) = create_error { p.field-error id="name-error" { (error) } }
                button type="submit" id="create-installation" { "Create" }
            }
            (upload_form(&viewer.csrf, upload_error))
        }
        h2 { "Uploaded plugins" }
        table id="plugins" {
            tr { th { "Name" } th { "Version" } th { "Hooks" } th { "Size" } th { "sha256" } th { "Uploaded" } }
            @for v in &versions {
                tr {
                    td { (v.name) } td { (v.version) } td { (v.hooks.join(", ")) }
                    td { (v.size_bytes / 1024) " KiB" }
                    td { code { (v.sha256.get(..16).unwrap_or(&v.sha256)) "…" } }
                    td { (when(v.created_at)) " by " (v.uploaded_by) }
                }
            }
        }
    };
    Ok(layout::page(&viewer.frame(), "Installations", notice, body))
}

#[derive(Debug, Deserialize)]
struct CreateForm {
    name: String,
}

/// `POST /console/installations`.
async fn create(
    State(app): State<AppState>,
    act: Act<TenantViewer, CreateForm>,
) -> Result<Response, PageError> {
    let viewer = &act.viewer;
    viewer.require_admin()?;
    let name = act.form.name.trim();
    let result = match check_installation_name(name) {
        Err(err) => Err(err.to_string()),
        Ok(()) => app::installations::create_installation(
            &app,
            viewer.tenant.id(),
            &viewer.principal.subject,
            name,
        )
        .await
        .map_err(|err| ApiError::from(err).message().to_owned()),
    };
    match result {
        Ok(_) => Ok(
            Redirect::to(&format!("/console/installations/{name}?notice=created")).into_response(),
        ),
        Err(error) => Ok(layout::with_status(
            StatusCode::UNPROCESSABLE_ENTITY,
            list_page(&app, viewer, None, Some((name, &error)), None).await?,
        )),
    }
}

/// `POST /console/plugins` (multipart: `csrf`, `plugin`): checks, compiles
/// and stores the component, and shows what `veneer plugin check` shows.
async fn upload(
    State(app): State<AppState>,
    viewer: TenantViewer,
    mut multipart: Multipart,
) -> Result<Response, PageError> {
    let (mut given, mut bytes) = (String::new(), None);
    while let Some(field) = multipart
        .next_field()
        .await
        .map_err(|err| PageError::Api(ApiError::new(Code::BadBody, err.body_text())))?
    {
        match field.name() {
            Some("csrf") => {
                given = field
                    .text()
                    .await
                    .map_err(|err| PageError::Api(ApiError::new(Code::BadBody, err.body_text())))?;
            }
            Some("plugin") => {
                bytes = Some(field.bytes().await.map_err(|err| {
                    PageError::Api(ApiError::new(Code::BadBody, err.body_text()))
                })?);
            }
            _ => {}
        }
    }
    check_csrf_of(&app, &viewer, &given)?;
    viewer.require_admin()?;
    let bytes = match bytes.filter(|b| !b.is_empty()) {
        Some(bytes) => bytes,
        None => {
            return Ok(layout::with_status(
                StatusCode::UNPROCESSABLE_ENTITY,
                list_page(
                    &app,
                    &viewer,
                    None,
                    None,
                    Some("Choose a .wasm file to upload."),
                )
                .await?,
            ));
        }
    };
    let uploaded = app::plugins::upload(
        &app,
        viewer.tenant.id(),
        &viewer.principal.subject,
        bytes.to_vec(),
    )
    .await
    .map_err(|err| match err {
        CompileError::Check(err) => ApiError::from(err),
        CompileError::App(err) => err.into(),
    });
    let uploaded = match uploaded {
        Ok(uploaded) => uploaded,
        Err(err) => {
            let message = format!("Refused ({}): {}", err.code(), err.message());
            return Ok(layout::with_status(
                err.status(),
                list_page(&app, &viewer, None, None, Some(message.as_str())).await?,
            ));
        }
    };
    let installations = app
        .storage
        .tenant(viewer.tenant.id())
        .installations()
        .await?;
    let v = &uploaded.version;
    let body = html! {
        p.notice role="status" id="check-result" { "Checked and stored: " (v.name) " " (v.version) "." }
        table id="check" {
            tr { th { "Name" } td { (v.name) } }
            tr { th { "Version" } td { (v.version) } }
            tr { th { "Hooks" } td { (v.hooks.join(", ")) } }
            tr { th { "Imports" } td { (uploaded.imports.join(", ")) } }
            tr { th { "Size" } td { (v.size_bytes) " bytes" } }
            tr { th { "sha256" } td { code id="sha256" { (v.sha256) } } }
        }
        @if installations.is_empty() {
            p { a href="/console/installations" { "Create an installation" } " to release it." }
        } @else {
            h2 { "Release it" }
            @for inst in &installations {
                form.card method="post" action={ "/console/installations/" (inst.name) "/releases" } {
                    (csrf(&viewer.csrf))
                    input type="hidden" name="plugin" value=(v.sha256);
                    label { "Settings for " (inst.name) " (JSON)" }
                    textarea name="settings" { "{}" }
                    button type="submit" { "Create a draft release of " (inst.name) }
                }
            }
        }
    };
    Ok((
        StatusCode::CREATED,
        layout::page(&viewer.frame(), "Plugin checked", None, body),
    )
        .into_response())
}

/// What the new-release form shows again after a refusal.
#[derive(Debug, Default)]
struct ReleaseFormState {
    plugin: Option<String>,
    settings: Option<String>,
    note: Option<String>,
    error: Option<String>,
}

/// `GET /console/installations/{name}`.
async fn show(
    State(app): State<AppState>,
    viewer: TenantViewer,
    Path(name): Path<String>,
    Query(q): Query<Notice>,
) -> Result<Response, PageError> {
    let name = installation_name(&name)?;
    Ok(detail(
        &app,
        &viewer,
        name,
        layout::notice(q.notice.as_deref()),
        ReleaseFormState::default(),
    )
    .await?
    .into_response())
}

async fn detail(
    app: &AppState,
    viewer: &TenantViewer,
    name: &str,
    notice: Option<&str>,
    form: ReleaseFormState,
) -> Result<Markup, PageError> {
    let db = app.storage.tenant(viewer.tenant.id());
    let record = db.installation(name).await?.ok_or_else(|| {
        PageError::Api(ApiError::not_found(format!(
            "this tenant has no installation `{name}`"
        )))
    })?;
    let live = record.active_release;
    let releases = db.releases(name, 50).await?;
    let history = db.release_events(name, 50).await?;
    let versions = db.plugin_versions().await?;
    let live_release = releases.iter().find(|r| Some(r.id) == live);
    let settings = form.settings.clone().unwrap_or_else(|| {
        live_release
            .and_then(|r| serde_json::from_str::<Value>(&r.settings).ok())
            .and_then(|v| serde_json::to_string_pretty(&v).ok())
            .unwrap_or_else(|| "{}".to_owned())
    });
    let chosen = form
        .plugin
        .clone()
        .or_else(|| live_release.map(|r| r.sha256.clone()));
    let admin = viewer.is_admin();
    let base = format!("/console/installations/{name}");
    let body = html! {
        p {
            "Position " (record.position) " · "
            @match live { Some(id) => { "live release " span.badge.live id="live-release" { "#" (id) } }, None => { span.muted id="live-release" { "nothing live" } } }
            " · " a href={ (base) "/headroom" } { "Headroom" }
        }
        @if admin && live.is_some() {
            form.inline method="post" action={ (base) "/rollback" } {
                (csrf(&viewer.csrf))
                button.secondary type="submit" id="rollback" { "Roll back to the release live before" }
            }
        }
        h2 { "Releases" }
        table id="releases" {
            tr { th { "Release" } th { "State" } th { "Plugin" } th { "Settings" } th { "Created" } th { "" } }
            @for r in &releases {
                @let state = state_of(r, live);
                tr id={ "release-" (r.id) } {
                    td { "#" (r.id) }
                    td { span class={ "badge " (state) } { (state) } }
                    td { code { (r.sha256.get(..12).unwrap_or(&r.sha256)) } }
                    td { code { (r.settings) } }
                    td { (when(r.created_at)) " by " (r.created_by) @if let Some(note) = &r.note { br; span.muted { (note) } } }
                    td.actions {
                        a href={ (base) "/releases/" (r.id) "/diff" } { "Diff" } " "
                        a href={ (base) "/releases/" (r.id) "/shadow" } { "Shadow" }
                        @if admin && state != "live" {
                            form method="post" action={ (base) "/releases/" (r.id) "/activate" } {
                                (csrf(&viewer.csrf))
                                button type="submit" class="activate" { "Activate" }
                            }
                        }
                        @if admin && state == "draft" {
                            form method="post" action={ (base) "/releases/" (r.id) "/delete" } {
                                (csrf(&viewer.csrf))
                                button.danger type="submit" { "Delete draft" }
                            }
                        }
                    }
                }
            }
            @if releases.is_empty() { tr { td.muted colspan="6" { "No releases yet." } } }
        }
        @if admin {
            form.card method="post" action={ (base) "/releases" } id="new-release" {
                (csrf(&viewer.csrf))
                h2 { "New release (a draft)" }
                label for="plugin" { "Plugin" }
                select name="plugin" id="plugin" {
                    @for v in &versions {
                        option value=(v.sha256) selected[chosen.as_deref() == Some(v.sha256.as_str())] {
                            (v.name) " " (v.version) " (" (v.sha256.get(..12).unwrap_or(&v.sha256)) ")"
                        }
                    }
                }
                label for="settings" { "Settings (JSON object)" }
                textarea name="settings" id="settings" class=[form.error.as_ref().map(|_| "invalid")] { (settings) }
                @if let Some(error) = &form.error { p.field-error id="settings-error" { (error) } }
                label for="note" { "Note" }
                input type="text" name="note" id="note" value=(form.note.as_deref().unwrap_or(""));
                button type="submit" id="create-release" { "Check and create draft" }
            }
        }
        h2 { "History" }
        table {
            tr { th { "When" } th { "Action" } th { "Live after" } th { "By" } }
            @for e in &history {
                tr {
                    td { (when(e.created_at)) } td { (e.action) }
                    td { @match e.release_id { Some(id) => { "#" (id) }, None => "none" } }
                    td { (e.actor) }
                }
            }
        }
    };
    Ok(layout::page(&viewer.frame(), name, notice, body))
}

#[derive(Debug, Deserialize)]
struct ReleaseForm {
    plugin: String,
    #[serde(default)]
    settings: String,
    #[serde(default)]
    note: String,
}

/// `POST /console/installations/{name}/releases`: a refused release shows
/// the form again with the reason under the settings.
async fn create_release(
    State(app): State<AppState>,
    Path(name): Path<String>,
    act: Act<TenantViewer, ReleaseForm>,
) -> Result<Response, PageError> {
    let viewer = &act.viewer;
    viewer.require_admin()?;
    let name = installation_name(&name)?;
    let form = act.form;
    let settings_text = if form.settings.trim().is_empty() {
        "{}".to_owned()
    } else {
        form.settings.clone()
    };
    let refused = |error: String| ReleaseFormState {
        plugin: Some(form.plugin.clone()),
        settings: Some(form.settings.clone()),
        note: Some(form.note.clone()),
        error: Some(error),
    };
    let settings: Value = match serde_json::from_str(&settings_text) {
        Ok(value @ Value::Object(_)) => value,
        Ok(_) => {
            let state =
                refused("The settings must be a JSON object, such as {\"rate_bps\": 1200}.".into());
            return Ok(layout::with_status(
                StatusCode::UNPROCESSABLE_ENTITY,
                detail(&app, viewer, name, None, state).await?,
            ));
        }
        Err(err) => {
            let state = refused(format!("The settings are not JSON: {err}."));
            return Ok(layout::with_status(
                StatusCode::UNPROCESSABLE_ENTITY,
                detail(&app, viewer, name, None, state).await?,
            ));
        }
    };
    let note = Some(form.note.trim().to_owned()).filter(|n| !n.is_empty());
    let created = app::installations::create_release(
        &app,
        viewer.tenant.id(),
        &viewer.principal.subject,
        name,
        ReleaseRequest {
            plugin: PluginSource::Uploaded(form.plugin.clone()),
            settings,
            note,
        },
    )
    .await;
    match created {
        Ok(_) => Ok(
            Redirect::to(&format!("/console/installations/{name}?notice=release")).into_response(),
        ),
        Err(err) => {
            let err = ApiError::from(err);
            let status = err.status();
            let state = refused(format!("Refused ({}): {}", err.code(), err.message()));
            Ok(layout::with_status(
                status,
                detail(&app, viewer, name, None, state).await?,
            ))
        }
    }
}

fn release_id(id: &str) -> Result<i64, PageError> {
    id.parse::<i64>().ok().filter(|id| *id > 0).ok_or_else(|| {
        PageError::Api(ApiError::new(
            Code::InvalidReleaseId,
            "that is not a release id: use a number the installation's page lists",
        ))
    })
}

#[derive(Debug, Deserialize)]
struct Empty {}

async fn change(
    app: &AppState,
    viewer: &TenantViewer,
    name: &str,
    change: Change,
    notice: &str,
) -> Result<Response, PageError> {
    viewer.require_admin()?;
    app::installations::change(
        app,
        viewer.tenant.id(),
        &viewer.principal.subject,
        name,
        change,
    )
    .await?;
    Ok(Redirect::to(&format!("/console/installations/{name}?notice={notice}")).into_response())
}

/// `POST …/releases/{id}/activate` (through the shadow gate, like the API's).
async fn activate(
    State(app): State<AppState>,
    Path((name, id)): Path<(String, String)>,
    act: Act<TenantViewer, Empty>,
) -> Result<Response, PageError> {
    let (name, id) = (installation_name(&name)?, release_id(&id)?);
    change(
        &app,
        &act.viewer,
        name,
        Change::Activate {
            release: id,
            force: None,
        },
        "activated",
    )
    .await
}

/// `POST …/rollback`: to the release live before.
async fn rollback(
    State(app): State<AppState>,
    Path(name): Path<String>,
    act: Act<TenantViewer, Empty>,
) -> Result<Response, PageError> {
    let name = installation_name(&name)?;
    change(
        &app,
        &act.viewer,
        name,
        Change::Rollback(None),
        "rolled-back",
    )
    .await
}

/// `POST …/releases/{id}/delete`: only drafts are deleted.
async fn delete_release(
    State(app): State<AppState>,
    Path((name, id)): Path<(String, String)>,
    act: Act<TenantViewer, Empty>,
) -> Result<Response, PageError> {
    let viewer = &act.viewer;
    viewer.require_admin()?;
    let (name, id) = (installation_name(&name)?, release_id(&id)?);
    app::installations::delete_release(
        &app,
        viewer.tenant.id(),
        &viewer.principal.subject,
        name,
        id,
    )
    .await?;
    Ok(Redirect::to(&format!("/console/installations/{name}?notice=deleted")).into_response())
}

/// A report shown as its JSON, pretty-printed.
fn report(
    viewer: &TenantViewer,
    title: &str,
    back: &str,
    value: &impl serde::Serialize,
) -> Response {
    let text = serde_json::to_string_pretty(value).unwrap_or_default();
    layout::page(
        &viewer.frame(),
        title,
        None,
        html! {
            p { a href=(back) { "Back to the installation" } }
            pre { (text) }
        },
    )
    .into_response()
}

/// `GET …/releases/{id}/diff`: what making the release live would change.
async fn diff(
    State(app): State<AppState>,
    viewer: TenantViewer,
    Path((name, id)): Path<(String, String)>,
) -> Result<Response, PageError> {
    let (name, id) = (installation_name(&name)?, release_id(&id)?);
    let state = viewer.tenant.state(&app).await?;
    let diff = app::installations::diff_release(&app, &state, name, id, 30).await?;
    Ok(report(
        &viewer,
        &format!("{name}: what release #{id} changes"),
        &format!("/console/installations/{name}"),
        &diff,
    ))
}

/// `GET …/releases/{id}/shadow`: the release's shadow report.
async fn shadow(
    State(app): State<AppState>,
    viewer: TenantViewer,
    Path((name, id)): Path<(String, String)>,
) -> Result<Response, PageError> {
    let (name, id) = (installation_name(&name)?, release_id(&id)?);
    let state = viewer.tenant.state(&app).await?;
    let report_ = app::shadow::report(&app, &state, name, id).await?;
    Ok(report(
        &viewer,
        &format!("{name}: shadow report of release #{id}"),
        &format!("/console/installations/{name}"),
        &report_,
    ))
}

/// `GET …/headroom`: the installation's recent runs against its quota.
async fn headroom(
    State(app): State<AppState>,
    viewer: TenantViewer,
    Path(name): Path<String>,
) -> Result<Response, PageError> {
    let name = installation_name(&name)?;
    let state = viewer.tenant.state(&app).await?;
    let headroom =
        app::headroom::headroom(&app, &state, name, app::headroom::DEFAULT_WINDOW).await?;
    let figures = [
        ("Fuel", &headroom.fuel),
        ("Memory (bytes)", &headroom.memory_bytes),
        ("Wall time (µs)", &headroom.wall_time_us),
    ];
    let body = html! {
        p { a href={ "/console/installations/" (name) } { "Back to the installation" } }
        p { (headroom.runs) " recent runs, " (headroom.failed) " not ok." }
        table {
            tr { th { "" } th { "p50" } th { "p99" } th { "max" } th { "quota" } th { "p99 of quota" } }
            @for (label, figure) in figures {
                @if let Some(f) = figure {
                    tr { td { (label) } td { (f.p50) } td { (f.p99) } td { (f.max) } td { (f.quota) } td { (format!("{:.1} %", f.p99_percent_of_quota)) } }
                }
            }
        }
        @for w in &headroom.warnings { p.error { (w) } }
        @if let Some(s) = &headroom.suggested {
            h2 { "Suggested quota" }
            pre { (serde_json::to_string_pretty(s).unwrap_or_default()) }
        }
    };
    Ok(layout::page(&viewer.frame(), &format!("{name}: headroom"), None, body).into_response())
}
