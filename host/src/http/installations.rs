//! Installations and releases over HTTP: a tenant's chain (list, create,
//! order, delete), each installation's releases (create a checked draft from an
//! upload or a stock plugin, list, show, activate, roll back, deactivate,
//! delete a draft), the quota each installation runs under, the platform
//! admin's per-installation quota, and the catalogue of stock plugins
//! (tenants list it; platform admins publish and unpublish).
//! Admins write; members read. The use cases are
//! [`crate::app::installations`]'.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{
    Json, Router,
    routing::{get, post, put},
};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::admin::tenant_id;
use crate::app;
use crate::app::installations::{Change, PluginSource, ReleaseRequest};
use crate::app::plugins::CompileError;
use crate::http::body::Sorted;
use crate::http::context::{JsonBody, Member, PlatformAdmin, RawBody, TenantAdmin};
use crate::http::{ApiError, ApiResult, Code};
use crate::runtime::Quota;
use crate::state::AppState;
use crate::storage::{
    CatalogueEntry, InstallationRecord, PluginVersion, ReleaseEvent, ReleaseRecord,
    check_installation_name,
};
use crate::tenancy::TenantId;

// Response bodies: fields in alphabetical order (see `http::body`).

/// One installation, with its live release.
#[derive(Serialize)]
struct InstallationBody {
    active_release: Option<i64>,
    created_at: i64,
    created_by: String,
    live: Option<ReleaseBody>,
    name: String,
    position: i64,
    updated_at: i64,
}

/// `GET /v1/installations`, `PUT /v1/installation-order`.
#[derive(Serialize)]
struct InstallationsBody {
    installations: Vec<InstallationBody>,
}

/// `GET /v1/installations/{name}`.
#[derive(Serialize)]
struct InstallationDetailBody {
    history: Sorted<Vec<ReleaseEvent>>,
    installation: InstallationBody,
    releases: Vec<ReleaseBody>,
}

/// One release. `state`: `live`, `previous` (was live) or `draft`.
#[derive(Serialize)]
struct ReleaseBody {
    created_at: i64,
    created_by: String,
    id: i64,
    installation: String,
    note: Option<String>,
    plugin: String,
    /// What the plugin says about itself, for a console's settings form.
    plugin_about: Option<PluginAboutBody>,
    quota: Value,
    settings: Value,
    state: &'static str,
}

/// A release's plugin as it describes itself: its name and version, the WIT
/// version it speaks, its description and settings JSON Schema (text; `null`
/// when it declares none).
#[derive(Serialize)]
struct PluginAboutBody {
    description: String,
    name: String,
    settings_schema: Option<String>,
    version: String,
    wit_version: String,
}

impl PluginAboutBody {
    fn find(sha256: &str, plugins: &[PluginVersion]) -> Option<Self> {
        plugins.iter().find(|p| p.sha256 == sha256).map(|p| Self {
            description: p.description.clone(),
            name: p.name.clone(),
            settings_schema: p.settings_schema.clone(),
            version: p.version.clone(),
            wit_version: p.wit_version.clone(),
        })
    }
}

impl ReleaseBody {
    fn of(release: ReleaseRecord, live: Option<i64>, plugins: &[PluginVersion]) -> Self {
        let state = if Some(release.id) == live {
            "live"
        } else if release.ever_active {
            "previous"
        } else {
            "draft"
        };
        Self {
            created_at: release.created_at,
            created_by: release.created_by,
            id: release.id,
            installation: release.installation,
            note: release.note,
            plugin_about: PluginAboutBody::find(&release.sha256, plugins),
            plugin: release.sha256,
            quota: serde_json::from_str(&release.quota).unwrap_or(Value::Null),
            settings: serde_json::from_str(&release.settings).unwrap_or(Value::Null),
            state,
        }
    }
}

/// `GET /v1/installations/{name}/releases`.
#[derive(Serialize)]
struct ReleasesBody {
    releases: Vec<ReleaseBody>,
}

/// `…/releases/{id}`.
#[derive(Serialize)]
struct OneReleaseBody {
    release: ReleaseBody,
}

/// Activate, roll back, deactivate.
#[derive(Serialize)]
struct EventBody {
    event: Sorted<ReleaseEvent>,
}

/// `GET /v1/installations/{name}/quota`.
#[derive(Serialize)]
struct InstallationQuotaBody {
    /// What a new release of the installation gets: the platform's quota.
    ceiling: Sorted<Quota>,
    installation: String,
    /// What the live release runs under (its quota within the ceiling).
    live: Option<Sorted<Quota>>,
}

/// `GET`/`PUT /v1/admin/tenants/{id}/installations/{name}/quota`.
#[derive(Serialize)]
struct AdminQuotaBody {
    installation: String,
    quota: Sorted<Quota>,
    /// The release made live with the new quota, if one was live.
    release: Option<i64>,
    tenant: Sorted<TenantId>,
}

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/installations", get(list).post(create))
        .route("/v1/installation-order", put(reorder))
        .route("/v1/installations/{name}", get(show).delete(remove))
        .route(
            "/v1/installations/{name}/releases",
            get(releases).post(create_release),
        )
        .route(
            "/v1/installations/{name}/releases/{id}",
            get(release).delete(delete_release),
        )
        .route(
            "/v1/installations/{name}/releases/{id}/activate",
            post(activate),
        )
        .route("/v1/installations/{name}/releases/{id}/diff", get(diff))
        .route("/v1/installations/{name}/rollback", post(rollback))
        .route("/v1/installations/{name}/deactivate", post(deactivate))
        .route("/v1/installations/{name}/quota", get(quota))
        .route("/v1/installations/{name}/headroom", get(headroom))
        .route(
            "/v1/admin/tenants/{id}/installations/{name}/releases/{release}/activate",
            post(admin_activate),
        )
        .route(
            "/v1/admin/tenants/{id}/installations/{name}/quota",
            get(admin_quota).put(set_admin_quota),
        )
        .route("/v1/catalogue", get(catalogue))
        .route("/v1/admin/catalogue", get(admin_catalogue).post(publish))
        .route(
            "/v1/admin/catalogue/{name}/{version}",
            axum::routing::delete(unpublish),
        )
}

/// `GET /v1/catalogue`, `GET /v1/admin/catalogue`.
#[derive(Serialize)]
struct CatalogueBody {
    catalogue: Sorted<Vec<CatalogueEntry>>,
}

/// `POST /v1/admin/catalogue`.
#[derive(Serialize)]
struct PublishedBody {
    plugin: Sorted<CatalogueEntry>,
}

async fn catalogue(State(app): State<AppState>, member: Member) -> ApiResult<Json<CatalogueBody>> {
    let entries = app.storage.tenant(member.tenant.id()).catalogue().await?;
    Ok(Json(CatalogueBody {
        catalogue: Sorted(entries),
    }))
}

async fn admin_catalogue(
    State(app): State<AppState>,
    _admin: PlatformAdmin,
) -> ApiResult<Json<CatalogueBody>> {
    let entries = app.storage.platform().catalogue().await?;
    Ok(Json(CatalogueBody {
        catalogue: Sorted(entries),
    }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Publish {
    /// The component, base64.
    wasm_base64: String,
    description: String,
    #[serde(default = "empty_object")]
    settings_example: Value,
}

async fn publish(
    State(app): State<AppState>,
    admin: PlatformAdmin,
    JsonBody(body): JsonBody<Publish>,
) -> ApiResult<(StatusCode, Json<PublishedBody>)> {
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(body.wasm_base64.trim())
        .map_err(|err| {
            ApiError::new(
                Code::InvalidJson,
                format!("`wasm_base64` is not base64: {err}"),
            )
        })?;
    let entry = app::catalogue::publish(
        &app,
        &admin.0.subject,
        bytes,
        &body.description,
        &body.settings_example,
    )
    .await
    .map_err(|err| match err {
        CompileError::Check(err) => ApiError::from(err),
        CompileError::App(err) => err.into(),
    })?;
    Ok((
        StatusCode::CREATED,
        Json(PublishedBody {
            plugin: Sorted(entry),
        }),
    ))
}

async fn unpublish(
    State(app): State<AppState>,
    _admin: PlatformAdmin,
    Path((name, version)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    if app
        .storage
        .platform()
        .unpublish_catalogue(&name, &version)
        .await?
    {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!(
            "the catalogue has no `{}` at version `{}`",
            name.chars().take(80).collect::<String>(),
            version.chars().take(40).collect::<String>()
        )))
    }
}

pub(crate) fn name(name: &str) -> ApiResult<&str> {
    check_installation_name(name)
        .map_err(|err| ApiError::new(Code::InvalidInstallation, err.to_string()))?;
    Ok(name)
}

pub(crate) fn release_id(id: &str) -> ApiResult<i64> {
    id.parse::<i64>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| {
            ApiError::new(
                Code::InvalidReleaseId,
                format!(
                    "`{}` is not a release id: use the number `GET /v1/installations/{{name}}/releases` lists",
                    id.chars().take(40).collect::<String>()
                ),
            )
        })
}

fn installation_body(
    record: InstallationRecord,
    live: Option<ReleaseRecord>,
    plugins: &[PluginVersion],
) -> InstallationBody {
    InstallationBody {
        active_release: record.active_release,
        created_at: record.created_at,
        created_by: record.created_by,
        live: live.map(|r| ReleaseBody::of(r, record.active_release, plugins)),
        name: record.name,
        position: record.position,
        updated_at: record.updated_at,
    }
}

async fn installations_body(app: &AppState, tenant: &TenantId) -> ApiResult<InstallationsBody> {
    let db = app.storage.tenant(tenant);
    let mut live = db.live_releases().await?;
    let plugins = db.plugin_versions().await?;
    let installations = db
        .installations()
        .await?
        .into_iter()
        .map(|record| {
            let release = live
                .iter()
                .position(|l| l.release.installation == record.name)
                .map(|i| live.swap_remove(i).release);
            installation_body(record, release, &plugins)
        })
        .collect();
    Ok(InstallationsBody { installations })
}

async fn list(State(app): State<AppState>, member: Member) -> ApiResult<Json<InstallationsBody>> {
    Ok(Json(installations_body(&app, member.tenant.id()).await?))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateInstallation {
    name: String,
}

async fn create(
    State(app): State<AppState>,
    admin: TenantAdmin,
    JsonBody(body): JsonBody<CreateInstallation>,
) -> ApiResult<(StatusCode, Json<InstallationBody>)> {
    let record = app::installations::create_installation(
        &app,
        admin.tenant.id(),
        &admin.principal.subject,
        name(&body.name)?,
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(installation_body(record, None, &[])),
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Order {
    order: Vec<String>,
}

async fn reorder(
    State(app): State<AppState>,
    admin: TenantAdmin,
    JsonBody(body): JsonBody<Order>,
) -> ApiResult<Json<InstallationsBody>> {
    for n in &body.order {
        name(n)?;
    }
    app::installations::reorder(
        &app,
        admin.tenant.id(),
        &admin.principal.subject,
        &body.order,
    )
    .await?;
    Ok(Json(installations_body(&app, admin.tenant.id()).await?))
}

async fn show(
    State(app): State<AppState>,
    member: Member,
    Path(installation): Path<String>,
) -> ApiResult<Json<InstallationDetailBody>> {
    let installation = name(&installation)?;
    let db = app.storage.tenant(member.tenant.id());
    let record = db
        .installation(installation)
        .await?
        .ok_or_else(|| not_found(installation))?;
    let live = record.active_release;
    let releases: Vec<ReleaseRecord> = db.releases(installation, 50).await?;
    let live_release = releases.iter().find(|r| Some(r.id) == live).cloned();
    let plugins = db.plugin_versions().await?;
    Ok(Json(InstallationDetailBody {
        history: Sorted(db.release_events(installation, 50).await?),
        installation: installation_body(record, live_release, &plugins),
        releases: releases
            .into_iter()
            .map(|r| ReleaseBody::of(r, live, &plugins))
            .collect(),
    }))
}

fn not_found(installation: &str) -> ApiError {
    ApiError::not_found(format!(
        "this tenant has no installation `{installation}`; create it first (POST /v1/installations)"
    ))
}

async fn remove(
    State(app): State<AppState>,
    admin: TenantAdmin,
    Path(installation): Path<String>,
) -> ApiResult<StatusCode> {
    app::installations::delete_installation(
        &app,
        admin.tenant.id(),
        &admin.principal.subject,
        name(&installation)?,
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateRelease {
    /// The sha256 of an uploaded plugin version (or `catalogue`).
    #[serde(default)]
    plugin: Option<String>,
    /// A stock plugin of the catalogue, by name (or `plugin`).
    #[serde(default)]
    catalogue: Option<String>,
    /// The catalogue version; the newest when omitted.
    #[serde(default)]
    version: Option<String>,
    #[serde(default = "empty_object")]
    settings: Value,
    #[serde(default)]
    note: Option<String>,
}

fn empty_object() -> Value {
    Value::Object(Default::default())
}

async fn create_release(
    State(app): State<AppState>,
    admin: TenantAdmin,
    Path(installation): Path<String>,
    JsonBody(body): JsonBody<CreateRelease>,
) -> ApiResult<(StatusCode, Json<OneReleaseBody>)> {
    let installation = name(&installation)?;
    let plugin = match (body.plugin, body.catalogue) {
        (Some(sha256), None) if body.version.is_none() => {
            super::tenant::check_sha(&sha256)?;
            PluginSource::Uploaded(sha256)
        }
        (None, Some(name)) => PluginSource::Catalogue {
            name,
            version: body.version,
        },
        _ => {
            return Err(ApiError::new(
                Code::InvalidJson,
                "name the release's plugin with either `plugin` (an uploaded sha256) or \
                 `catalogue` (a stock plugin's name, with an optional `version`)",
            ));
        }
    };
    let release = app::installations::create_release(
        &app,
        admin.tenant.id(),
        &admin.principal.subject,
        installation,
        ReleaseRequest {
            plugin,
            settings: body.settings,
            note: body.note,
        },
    )
    .await?;
    let plugins = app
        .storage
        .tenant(admin.tenant.id())
        .plugin_version(&release.sha256)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(OneReleaseBody {
            release: ReleaseBody::of(release, None, plugins.as_slice()),
        }),
    ))
}

async fn releases(
    State(app): State<AppState>,
    member: Member,
    Path(installation): Path<String>,
) -> ApiResult<Json<ReleasesBody>> {
    let installation = name(&installation)?;
    let db = app.storage.tenant(member.tenant.id());
    let record = db
        .installation(installation)
        .await?
        .ok_or_else(|| not_found(installation))?;
    let releases = db.releases(installation, 100).await?;
    let plugins = db.plugin_versions().await?;
    Ok(Json(ReleasesBody {
        releases: releases
            .into_iter()
            .map(|r| ReleaseBody::of(r, record.active_release, &plugins))
            .collect(),
    }))
}

async fn release(
    State(app): State<AppState>,
    member: Member,
    Path((installation, id)): Path<(String, String)>,
) -> ApiResult<Json<OneReleaseBody>> {
    let (installation, id) = (name(&installation)?, release_id(&id)?);
    let db = app.storage.tenant(member.tenant.id());
    let record = db
        .installation(installation)
        .await?
        .ok_or_else(|| not_found(installation))?;
    let release = db.release(installation, id).await?.ok_or_else(|| {
        ApiError::not_found(format!("installation `{installation}` has no release {id}"))
    })?;
    let plugins = db.plugin_version(&release.sha256).await?;
    Ok(Json(OneReleaseBody {
        release: ReleaseBody::of(release, record.active_release, plugins.as_slice()),
    }))
}

/// `GET …/releases/{id}/diff`.
#[derive(Serialize)]
struct DiffBody {
    diff: Sorted<app::installations::ReleaseDiff>,
}

/// `?days=N`: the window of recorded sales for the commission's blast radius.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DiffQuery {
    #[serde(default = "thirty")]
    days: u32,
}

fn thirty() -> u32 {
    30
}

async fn diff(
    State(app): State<AppState>,
    member: Member,
    Path((installation, id)): Path<(String, String)>,
    query: Result<axum::extract::Query<DiffQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<DiffBody>> {
    let (installation, id) = (name(&installation)?, release_id(&id)?);
    let days = match query {
        Ok(axum::extract::Query(q)) if (1..=365).contains(&q.days) => q.days,
        _ => {
            return Err(ApiError::new(
                Code::InvalidLimit,
                "days must be a number of days from 1 to 365 (default 30)",
            ));
        }
    };
    let state = member.tenant.state(&app).await?;
    let diff = app::installations::diff_release(&app, &state, installation, id, days).await?;
    Ok(Json(DiffBody { diff: Sorted(diff) }))
}

async fn delete_release(
    State(app): State<AppState>,
    admin: TenantAdmin,
    Path((installation, id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let (installation, id) = (name(&installation)?, release_id(&id)?);
    app::installations::delete_release(
        &app,
        admin.tenant.id(),
        &admin.principal.subject,
        installation,
        id,
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn change(
    app: &AppState,
    admin: &TenantAdmin,
    installation: &str,
    change: Change,
) -> ApiResult<Json<EventBody>> {
    let event = app::installations::change(
        app,
        admin.tenant.id(),
        &admin.principal.subject,
        installation,
        change,
    )
    .await?;
    Ok(Json(EventBody {
        event: Sorted(event),
    }))
}

/// The optional body of a tenant's activation: `force` is refused there (a
/// platform admin forces at the admin route, with a reason).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Activate {
    #[serde(default)]
    force: bool,
    #[serde(default)]
    #[allow(dead_code)]
    reason: Option<String>,
}

async fn activate(
    State(app): State<AppState>,
    admin: TenantAdmin,
    Path((installation, id)): Path<(String, String)>,
    RawBody(body): RawBody,
) -> ApiResult<Json<EventBody>> {
    let (installation, id) = (name(&installation)?, release_id(&id)?);
    // The body is optional: none activates through the gate.
    if !body.iter().all(u8::is_ascii_whitespace) {
        let asked = serde_json::from_slice::<Activate>(&body).map_err(|err| {
            ApiError::new(
                Code::InvalidJson,
                format!("the body must be empty or {{\"force\": true, \"reason\": \"…\"}}: {err}"),
            )
        })?;
        if asked.force {
            return Err(ApiError::new(
                Code::ForceNotAllowed,
                format!(
                    "only a platform admin may force an activation past the shadow gate, with a reason: POST /v1/admin/tenants/{}/installations/{installation}/releases/{id}/activate",
                    admin.tenant.id()
                ),
            ));
        }
    }
    change(
        &app,
        &admin,
        installation,
        Change::Activate {
            release: id,
            force: None,
        },
    )
    .await
}

/// `POST /v1/admin/tenants/{id}/installations/{name}/releases/{release}/activate`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ForceActivate {
    /// Why the gate is passed: kept in the audit log.
    #[serde(default)]
    reason: Option<String>,
}

/// A platform admin activates a tenant's release past its shadow gate.
async fn admin_activate(
    State(app): State<AppState>,
    admin: PlatformAdmin,
    Path((id, installation, release)): Path<(String, String, String)>,
    JsonBody(body): JsonBody<ForceActivate>,
) -> ApiResult<Json<EventBody>> {
    let (id, installation, release) =
        (tenant_id(&id)?, name(&installation)?, release_id(&release)?);
    app.storage
        .platform()
        .tenant(&id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no tenant `{id}`")))?;
    let event = app::installations::change(
        &app,
        &id,
        &admin.0.subject,
        installation,
        Change::Activate {
            release,
            force: Some(app::shadow::Force {
                platform_admin: admin.0.platform_admin,
                reason: body.reason,
            }),
        },
    )
    .await?;
    Ok(Json(EventBody {
        event: Sorted(event),
    }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Rollback {
    /// A release that was live before; by default the one live before the
    /// current one.
    #[serde(default)]
    to: Option<i64>,
}

async fn rollback(
    State(app): State<AppState>,
    admin: TenantAdmin,
    Path(installation): Path<String>,
    RawBody(body): RawBody,
) -> ApiResult<Json<EventBody>> {
    let installation = name(&installation)?;
    // The body is optional: none rolls back to the release live before.
    let to = if body.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        serde_json::from_slice::<Rollback>(&body)
            .map_err(|err| {
                ApiError::new(
                    Code::InvalidJson,
                    format!("the body must be empty or {{\"to\": <release id>}}: {err}"),
                )
            })?
            .to
    };
    change(&app, &admin, installation, Change::Rollback(to)).await
}

async fn deactivate(
    State(app): State<AppState>,
    admin: TenantAdmin,
    Path(installation): Path<String>,
) -> ApiResult<Json<EventBody>> {
    let installation = name(&installation)?;
    change(&app, &admin, installation, Change::Deactivate).await
}

async fn quota(
    State(app): State<AppState>,
    member: Member,
    Path(installation): Path<String>,
) -> ApiResult<Json<InstallationQuotaBody>> {
    let installation = name(&installation)?;
    let tenant = member.tenant.id();
    app.storage
        .tenant(tenant)
        .installation(installation)
        .await?
        .ok_or_else(|| not_found(installation))?;
    let ceiling = app::installations::ceiling(&app, tenant, installation).await?;
    let state = member.tenant.state(&app).await?;
    let live = state
        .chain
        .iter()
        .find(|step| step.installation == installation)
        .map(|step| Sorted(step.quota));
    Ok(Json(InstallationQuotaBody {
        ceiling: Sorted(ceiling),
        installation: installation.to_owned(),
        live,
    }))
}

#[derive(Debug, Deserialize)]
struct Window {
    runs: Option<u32>,
}

/// `GET /v1/installations/{name}/headroom`.
#[derive(Serialize)]
struct HeadroomBody {
    headroom: Sorted<app::headroom::Headroom>,
}

async fn headroom(
    State(app): State<AppState>,
    member: Member,
    Path(installation): Path<String>,
    crate::http::context::ApiQuery(window): crate::http::context::ApiQuery<Window>,
) -> ApiResult<Json<HeadroomBody>> {
    let installation = name(&installation)?;
    let state = member.tenant.state(&app).await?;
    let headroom = app::headroom::headroom(
        &app,
        &state,
        installation,
        window.runs.unwrap_or(app::headroom::DEFAULT_WINDOW),
    )
    .await?;
    Ok(Json(HeadroomBody {
        headroom: Sorted(headroom),
    }))
}

async fn admin_quota(
    State(app): State<AppState>,
    _admin: PlatformAdmin,
    Path((id, installation)): Path<(String, String)>,
) -> ApiResult<Json<AdminQuotaBody>> {
    let (id, installation) = (tenant_id(&id)?, name(&installation)?);
    app.storage
        .platform()
        .tenant(&id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no tenant `{id}`")))?;
    app.storage
        .tenant(&id)
        .installation(installation)
        .await?
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "tenant `{id}` has no installation `{installation}`"
            ))
        })?;
    let quota = app::installations::ceiling(&app, &id, installation).await?;
    Ok(Json(AdminQuotaBody {
        installation: installation.to_owned(),
        quota: Sorted(quota),
        release: None,
        tenant: Sorted(id),
    }))
}

async fn set_admin_quota(
    State(app): State<AppState>,
    admin: PlatformAdmin,
    Path((id, installation)): Path<(String, String)>,
    JsonBody(quota): JsonBody<Quota>,
) -> ApiResult<Json<AdminQuotaBody>> {
    let (id, installation) = (tenant_id(&id)?, name(&installation)?);
    quota
        .validate()
        .map_err(|err| ApiError::new(Code::InvalidQuota, err.to_string()))?;
    app.storage
        .platform()
        .tenant(&id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no tenant `{id}`")))?;
    let release = app::installations::set_installation_quota(
        &app,
        &admin.0.subject,
        &id,
        installation,
        &quota,
    )
    .await?;
    Ok(Json(AdminQuotaBody {
        installation: installation.to_owned(),
        quota: Sorted(quota),
        release: release.map(|r| r.id),
        tenant: Sorted(id),
    }))
}
