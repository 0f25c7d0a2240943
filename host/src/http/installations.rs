//! Installations and releases over HTTP: a tenant's chain (list, create,
//! order, delete), each installation's releases (create a checked draft from an
//! upload or a stock plugin, list, show, activate, roll back, deactivate,
//! delete a draft), the quota each installation runs under, the platform
//! admin's per-installation quota, and the catalogue of stock plugins
//! (tenants list it; platform admins publish and unpublish).
//! Admins write; members read. The use cases are
//! [`crate::app::installations`]'.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::admin::tenant_id;
use crate::app;
use crate::app::installations::{Change, PluginSource, ReleaseRequest};
use crate::app::plugins::CompileError;
use crate::http::body::Sorted;
use crate::http::context::{JsonBody, Member, PlatformAdmin, RawBody, TenantAdmin};
use crate::http::openapi::{
    HOST, JSON, MEMBER, PLATFORM_ADMIN, QUERY, RAW, TENANT_HOST, TOKEN, errors,
};
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
#[derive(Serialize, ToSchema)]
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
#[derive(Serialize, ToSchema)]
struct InstallationsBody {
    installations: Vec<InstallationBody>,
}

/// `GET /v1/installations/{name}`.
#[derive(Serialize, ToSchema)]
struct InstallationDetailBody {
    #[schema(value_type = Vec<ReleaseEvent>)]
    history: Sorted<Vec<ReleaseEvent>>,
    installation: InstallationBody,
    releases: Vec<ReleaseBody>,
}

/// One release. `state`: `live`, `previous` (was live) or `draft`.
#[derive(Serialize, ToSchema)]
struct ReleaseBody {
    created_at: i64,
    created_by: String,
    id: i64,
    installation: String,
    note: Option<String>,
    plugin: String,
    /// What the plugin says about itself, for a console's settings form.
    plugin_about: Option<PluginAboutBody>,
    /// The release's quota.
    #[schema(value_type = Quota)]
    quota: Value,
    /// The release's settings (a JSON object).
    settings: Value,
    /// `live`, `previous` (was live) or `draft`.
    state: &'static str,
}

/// A release's plugin as it describes itself: its name and version, the WIT
/// version it speaks, its description and settings JSON Schema (text; `null`
/// when it declares none).
#[derive(Serialize, ToSchema)]
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
#[derive(Serialize, ToSchema)]
struct ReleasesBody {
    releases: Vec<ReleaseBody>,
}

/// `…/releases/{id}`.
#[derive(Serialize, ToSchema)]
struct OneReleaseBody {
    release: ReleaseBody,
}

/// Activate, roll back, deactivate.
#[derive(Serialize, ToSchema)]
struct EventBody {
    #[schema(value_type = ReleaseEvent)]
    event: Sorted<ReleaseEvent>,
}

/// `GET /v1/installations/{name}/quota`.
#[derive(Serialize, ToSchema)]
struct InstallationQuotaBody {
    /// What a new release of the installation gets: the platform's quota.
    #[schema(value_type = Quota)]
    ceiling: Sorted<Quota>,
    installation: String,
    /// What the live release runs under (its quota within the ceiling).
    #[schema(value_type = Option<Quota>)]
    live: Option<Sorted<Quota>>,
}

/// `GET`/`PUT /v1/admin/tenants/{id}/installations/{name}/quota`.
#[derive(Serialize, ToSchema)]
struct AdminQuotaBody {
    installation: String,
    #[schema(value_type = Quota)]
    quota: Sorted<Quota>,
    /// The release made live with the new quota, if one was live.
    release: Option<i64>,
    #[schema(value_type = String)]
    tenant: Sorted<TenantId>,
}

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(reorder))
        .routes(routes!(show, remove))
        .routes(routes!(releases, create_release))
        .routes(routes!(release, delete_release))
        .routes(routes!(activate))
        .routes(routes!(diff))
        .routes(routes!(rollback))
        .routes(routes!(deactivate))
        .routes(routes!(quota))
        .routes(routes!(headroom))
        .routes(routes!(admin_activate))
        .routes(routes!(admin_quota, set_admin_quota))
        .routes(routes!(catalogue))
        .routes(routes!(admin_catalogue, publish))
        .routes(routes!(unpublish))
}

/// `GET /v1/catalogue`, `GET /v1/admin/catalogue`.
#[derive(Serialize, ToSchema)]
struct CatalogueBody {
    #[schema(value_type = Vec<CatalogueEntry>)]
    catalogue: Sorted<Vec<CatalogueEntry>>,
}

/// `POST /v1/admin/catalogue`.
#[derive(Serialize, ToSchema)]
struct PublishedBody {
    #[schema(value_type = CatalogueEntry)]
    plugin: Sorted<CatalogueEntry>,
}

/// The stock plugins a release can install.
#[utoipa::path(
    get,
    path = "/v1/catalogue",
    tag = "catalogue",
    security(("bearer" = [])),
    responses((status = 200, body = CatalogueBody)),
    extensions(("x-veneer-errors" = json!(errors(&[TENANT_HOST, TOKEN, MEMBER])))),
)]
async fn catalogue(State(app): State<AppState>, member: Member) -> ApiResult<Json<CatalogueBody>> {
    let entries = app.storage.tenant(member.tenant.id()).catalogue().await?;
    Ok(Json(CatalogueBody {
        catalogue: Sorted(entries),
    }))
}

/// The catalogue of stock plugins (platform admins).
#[utoipa::path(
    get,
    path = "/v1/admin/catalogue",
    tag = "catalogue",
    security(("bearer" = [])),
    responses((status = 200, body = CatalogueBody)),
    extensions(("x-veneer-errors" = json!(errors(&[HOST, TOKEN, PLATFORM_ADMIN])))),
)]
async fn admin_catalogue(
    State(app): State<AppState>,
    _admin: PlatformAdmin,
) -> ApiResult<Json<CatalogueBody>> {
    let entries = app.storage.platform().catalogue().await?;
    Ok(Json(CatalogueBody {
        catalogue: Sorted(entries),
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct Publish {
    /// The component, base64.
    wasm_base64: String,
    description: String,
    #[serde(default = "empty_object")]
    settings_example: Value,
}

/// Publishes a stock plugin to the catalogue (platform admins).
#[utoipa::path(
    post,
    path = "/v1/admin/catalogue",
    tag = "catalogue",
    security(("bearer" = [])),
    request_body = Publish,
    responses((status = 201, body = PublishedBody)),
    extensions(("x-veneer-errors" = json!(errors(&[HOST, TOKEN, PLATFORM_ADMIN, JSON, &[Code::EmptyFile, Code::TooLarge, Code::CoreModule, Code::NotWasm, Code::InvalidComponent, Code::ForbiddenImport, Code::WrongWorld, Code::TooComplex, Code::DescribeFailed, Code::HostCompileBusy, Code::CompileTimeout, Code::InvalidSettingsSchema, Code::SettingsSchemaViolation, Code::Conflict, Code::Invalid]])))),
)]
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

/// Takes a stock plugin version out of the catalogue (platform admins).
#[utoipa::path(
    delete,
    path = "/v1/admin/catalogue/{name}/{version}",
    tag = "catalogue",
    security(("bearer" = [])),
    params(("name" = String, Path, description = "The stock plugin's name"), ("version" = String, Path, description = "Its version")),
    responses((status = 204, description = "Unpublished")),
    extensions(("x-veneer-errors" = json!(errors(&[HOST, TOKEN, PLATFORM_ADMIN, &[Code::NotFound, Code::Conflict]])))),
)]
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

/// The tenant's installations, in chain order, each with its live release.
#[utoipa::path(
    get,
    path = "/v1/installations",
    tag = "installations",
    security(("bearer" = [])),
    responses((status = 200, body = InstallationsBody)),
    extensions(("x-veneer-errors" = json!(errors(&[TENANT_HOST, TOKEN, MEMBER])))),
)]
async fn list(State(app): State<AppState>, member: Member) -> ApiResult<Json<InstallationsBody>> {
    Ok(Json(installations_body(&app, member.tenant.id()).await?))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct CreateInstallation {
    name: String,
}

/// Creates an installation at the end of the chain (admins).
#[utoipa::path(
    post,
    path = "/v1/installations",
    tag = "installations",
    security(("bearer" = [])),
    request_body = CreateInstallation,
    responses((status = 201, body = InstallationBody)),
    extensions(("x-veneer-errors" = json!(errors(&[TENANT_HOST, TOKEN, MEMBER, JSON, &[Code::InvalidInstallation, Code::Conflict, Code::Invalid]])))),
)]
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

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct Order {
    order: Vec<String>,
}

/// Sets the chain's order: every installation named once (admins).
#[utoipa::path(
    put,
    path = "/v1/installation-order",
    tag = "installations",
    security(("bearer" = [])),
    request_body = Order,
    responses((status = 200, body = InstallationsBody)),
    extensions(("x-veneer-errors" = json!(errors(&[TENANT_HOST, TOKEN, MEMBER, JSON, &[Code::InvalidInstallation, Code::Conflict, Code::Invalid]])))),
)]
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

/// One installation: its live release, latest releases and history.
#[utoipa::path(
    get,
    path = "/v1/installations/{name}",
    tag = "installations",
    security(("bearer" = [])),
    params(("name" = String, Path, description = "The installation's name")),
    responses((status = 200, body = InstallationDetailBody)),
    extensions(("x-veneer-errors" = json!(errors(&[TENANT_HOST, TOKEN, MEMBER, &[Code::InvalidInstallation, Code::NotFound]])))),
)]
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

/// Deletes an installation and its releases (admins).
#[utoipa::path(
    delete,
    path = "/v1/installations/{name}",
    tag = "installations",
    security(("bearer" = [])),
    params(("name" = String, Path, description = "The installation's name")),
    responses((status = 204, description = "Deleted")),
    extensions(("x-veneer-errors" = json!(errors(&[TENANT_HOST, TOKEN, MEMBER, &[Code::InvalidInstallation, Code::NotFound, Code::Conflict]])))),
)]
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

#[derive(Debug, Deserialize, ToSchema)]
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

/// Creates a draft release from an uploaded plugin or a stock one, checked
/// by running it with its settings on the base (admins).
#[utoipa::path(
    post,
    path = "/v1/installations/{name}/releases",
    tag = "installations",
    security(("bearer" = [])),
    params(("name" = String, Path, description = "The installation's name")),
    request_body = CreateRelease,
    responses((status = 201, body = OneReleaseBody)),
    extensions(("x-veneer-errors" = json!(errors(&[TENANT_HOST, TOKEN, MEMBER, JSON, &[Code::InvalidInstallation, Code::InvalidSha256, Code::NotFound, Code::InvalidSettings, Code::SettingsTooLarge, Code::SettingsSchemaViolation, Code::ReleaseRejected, Code::Conflict, Code::Invalid, Code::TenantBusy]])))),
)]
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

/// An installation's latest releases.
#[utoipa::path(
    get,
    path = "/v1/installations/{name}/releases",
    tag = "installations",
    security(("bearer" = [])),
    params(("name" = String, Path, description = "The installation's name")),
    responses((status = 200, body = ReleasesBody)),
    extensions(("x-veneer-errors" = json!(errors(&[TENANT_HOST, TOKEN, MEMBER, &[Code::InvalidInstallation, Code::NotFound]])))),
)]
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

/// One release.
#[utoipa::path(
    get,
    path = "/v1/installations/{name}/releases/{id}",
    tag = "installations",
    security(("bearer" = [])),
    params(("name" = String, Path, description = "The installation's name"), ("id" = String, Path, description = "The release's id (a positive number)")),
    responses((status = 200, body = OneReleaseBody)),
    extensions(("x-veneer-errors" = json!(errors(&[TENANT_HOST, TOKEN, MEMBER, &[Code::InvalidInstallation, Code::InvalidReleaseId, Code::NotFound]])))),
)]
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
#[derive(Serialize, ToSchema)]
struct DiffBody {
    /// What the release changes against the live one, section by section
    /// (and the commission's blast radius over recorded sales).
    #[schema(value_type = Object)]
    diff: Sorted<app::installations::ReleaseDiff>,
}

/// `?days=N`: the window of recorded sales for the commission's blast radius.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct DiffQuery {
    /// Days of recorded sales, 1 to 365.
    #[serde(default = "thirty")]
    days: u32,
}

fn thirty() -> u32 {
    30
}

/// What a release would change against the live one.
#[utoipa::path(
    get,
    path = "/v1/installations/{name}/releases/{id}/diff",
    tag = "installations",
    security(("bearer" = [])),
    params(("name" = String, Path, description = "The installation's name"), ("id" = String, Path, description = "The release's id (a positive number)"), DiffQuery),
    responses((status = 200, body = DiffBody)),
    extensions(("x-veneer-errors" = json!(errors(&[TENANT_HOST, TOKEN, MEMBER, &[Code::InvalidInstallation, Code::InvalidReleaseId, Code::InvalidLimit, Code::NotFound, Code::TenantBusy]])))),
)]
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

/// Deletes a draft release (admins).
#[utoipa::path(
    delete,
    path = "/v1/installations/{name}/releases/{id}",
    tag = "installations",
    security(("bearer" = [])),
    params(("name" = String, Path, description = "The installation's name"), ("id" = String, Path, description = "The release's id (a positive number)")),
    responses((status = 204, description = "Deleted")),
    extensions(("x-veneer-errors" = json!(errors(&[TENANT_HOST, TOKEN, MEMBER, &[Code::InvalidInstallation, Code::InvalidReleaseId, Code::NotFound, Code::Conflict]])))),
)]
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
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct Activate {
    #[serde(default)]
    force: bool,
    #[serde(default)]
    #[allow(dead_code)]
    reason: Option<String>,
}

/// Makes a release live (admins), through the shadow gate when the
/// tenant's rollout settings set one.
#[utoipa::path(
    post,
    path = "/v1/installations/{name}/releases/{id}/activate",
    tag = "installations",
    security(("bearer" = [])),
    params(("name" = String, Path, description = "The installation's name"), ("id" = String, Path, description = "The release's id (a positive number)")),
    request_body(content = Option<Activate>, description = "Optional; `force` is refused here (a platform admin forces at the admin route)"),
    responses((status = 200, body = EventBody)),
    extensions(("x-veneer-errors" = json!(errors(&[TENANT_HOST, TOKEN, MEMBER, RAW, &[Code::InvalidInstallation, Code::InvalidReleaseId, Code::InvalidJson, Code::ForceNotAllowed, Code::ShadowGate, Code::NotFound, Code::Conflict]])))),
)]
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
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct ForceActivate {
    /// Why the gate is passed: kept in the audit log.
    #[serde(default)]
    reason: Option<String>,
}

/// A platform admin activates a tenant's release past its shadow gate.
#[utoipa::path(
    post,
    path = "/v1/admin/tenants/{id}/installations/{name}/releases/{release}/activate",
    tag = "installations",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The tenant's id"), ("name" = String, Path, description = "The installation's name"), ("release" = String, Path, description = "The release's id")),
    request_body = ForceActivate,
    responses((status = 200, body = EventBody)),
    extensions(("x-veneer-errors" = json!(errors(&[HOST, TOKEN, PLATFORM_ADMIN, JSON, &[Code::InvalidTenantId, Code::InvalidInstallation, Code::InvalidReleaseId, Code::ForceNotAllowed, Code::NotFound, Code::Conflict]])))),
)]
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

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct Rollback {
    /// A release that was live before; by default the one live before the
    /// current one.
    #[serde(default)]
    to: Option<i64>,
}

/// Makes an earlier release live again (admins).
#[utoipa::path(
    post,
    path = "/v1/installations/{name}/rollback",
    tag = "installations",
    security(("bearer" = [])),
    params(("name" = String, Path, description = "The installation's name")),
    request_body(content = Option<Rollback>, description = "Optional: the release to go back to"),
    responses((status = 200, body = EventBody)),
    extensions(("x-veneer-errors" = json!(errors(&[TENANT_HOST, TOKEN, MEMBER, RAW, &[Code::InvalidInstallation, Code::InvalidJson, Code::NotFound, Code::Conflict]])))),
)]
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

/// Takes an installation out of the chain: no release live (admins).
#[utoipa::path(
    post,
    path = "/v1/installations/{name}/deactivate",
    tag = "installations",
    security(("bearer" = [])),
    params(("name" = String, Path, description = "The installation's name")),
    responses((status = 200, body = EventBody)),
    extensions(("x-veneer-errors" = json!(errors(&[TENANT_HOST, TOKEN, MEMBER, &[Code::InvalidInstallation, Code::NotFound, Code::Conflict]])))),
)]
async fn deactivate(
    State(app): State<AppState>,
    admin: TenantAdmin,
    Path(installation): Path<String>,
) -> ApiResult<Json<EventBody>> {
    let installation = name(&installation)?;
    change(&app, &admin, installation, Change::Deactivate).await
}

/// The quota an installation's releases get, and the live one's.
#[utoipa::path(
    get,
    path = "/v1/installations/{name}/quota",
    tag = "installations",
    security(("bearer" = [])),
    params(("name" = String, Path, description = "The installation's name")),
    responses((status = 200, body = InstallationQuotaBody)),
    extensions(("x-veneer-errors" = json!(errors(&[TENANT_HOST, TOKEN, MEMBER, &[Code::InvalidInstallation, Code::NotFound]])))),
)]
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

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct Window {
    /// How many of the latest runs to measure.
    runs: Option<u32>,
}

/// `GET /v1/installations/{name}/headroom`.
#[derive(Serialize, ToSchema)]
struct HeadroomBody {
    /// The live release's measured use of its quota over its latest runs.
    #[schema(value_type = Object)]
    headroom: Sorted<app::headroom::Headroom>,
}

/// How close the live release runs to its quota.
#[utoipa::path(
    get,
    path = "/v1/installations/{name}/headroom",
    tag = "installations",
    security(("bearer" = [])),
    params(("name" = String, Path, description = "The installation's name"), Window),
    responses((status = 200, body = HeadroomBody)),
    extensions(("x-veneer-errors" = json!(errors(&[TENANT_HOST, TOKEN, MEMBER, QUERY, &[Code::InvalidInstallation, Code::InvalidLimit, Code::NotFound]])))),
)]
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

/// An installation's quota ceiling (platform admins).
#[utoipa::path(
    get,
    path = "/v1/admin/tenants/{id}/installations/{name}/quota",
    tag = "installations",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The tenant's id"), ("name" = String, Path, description = "The installation's name")),
    responses((status = 200, body = AdminQuotaBody)),
    extensions(("x-veneer-errors" = json!(errors(&[HOST, TOKEN, PLATFORM_ADMIN, &[Code::InvalidTenantId, Code::InvalidInstallation, Code::NotFound]])))),
)]
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

/// Sets an installation's quota ceiling; a live release gets a new
/// release within it (platform admins).
#[utoipa::path(
    put,
    path = "/v1/admin/tenants/{id}/installations/{name}/quota",
    tag = "installations",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The tenant's id"), ("name" = String, Path, description = "The installation's name")),
    request_body = Quota,
    responses((status = 200, body = AdminQuotaBody)),
    extensions(("x-veneer-errors" = json!(errors(&[HOST, TOKEN, PLATFORM_ADMIN, JSON, &[Code::InvalidTenantId, Code::InvalidInstallation, Code::InvalidQuota, Code::NotFound, Code::Conflict]])))),
)]
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
