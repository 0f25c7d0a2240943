//! What a tenant manages for itself: plugin versions (upload, list), key-value
//! data, and what it reads about itself: runs, usage, its default quota and
//! its audit log (installations and releases are `http::installations`').
//! Admins write; members read. Uploading is a use case of
//! [`crate::app::plugins`], key-value writes of [`crate::app::tenants`]
//! (invalidation and audit there); the plain reads go to `storage` directly.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app;
use crate::app::plugins::CompileError;
use crate::http::body::Sorted;
use crate::http::context::{ApiQuery, JsonBody, Member, RawBody, TenantAdmin};
use crate::http::openapi::{JSON, MEMBER, QUERY, RAW, TENANT_HOST, TOKEN, errors};
use crate::http::{ApiError, ApiResult, Code};
use crate::state::AppState;
use crate::storage::{AuditRecord, PluginVersion, RunRecord, UsageRecord};

// Response bodies: fields in alphabetical order, nested records sorted (see
// `http::body`).

/// `POST /v1/plugins`.
#[derive(Serialize, ToSchema)]
struct UploadBody {
    /// What the component imports (all of it given by the host).
    imports: Vec<String>,
    #[schema(value_type = PluginVersion)]
    plugin: Sorted<PluginVersion>,
}

/// `GET /v1/plugins`.
#[derive(Serialize, ToSchema)]
struct PluginsBody {
    #[schema(value_type = Vec<PluginVersion>)]
    plugins: Sorted<Vec<PluginVersion>>,
}

/// `GET /v1/plugins/{sha256}`.
#[derive(Serialize, ToSchema)]
struct PluginBody {
    #[schema(value_type = PluginVersion)]
    plugin: Sorted<PluginVersion>,
}

/// One key-value entry.
#[derive(Serialize, ToSchema)]
struct EntryBody {
    key: String,
    value: String,
}

/// `GET /v1/kv`.
#[derive(Serialize, ToSchema)]
struct EntriesBody {
    entries: Vec<EntryBody>,
}

/// `GET /v1/runs`.
#[derive(Serialize, ToSchema)]
struct RunsBody {
    #[schema(value_type = Vec<RunRecord>)]
    runs: Sorted<Vec<RunRecord>>,
}

/// `GET /v1/usage`.
#[derive(Serialize, ToSchema)]
struct UsageBody {
    #[schema(value_type = Vec<UsageRecord>)]
    usage: Sorted<Vec<UsageRecord>>,
}

/// `GET /v1/quota`.
#[derive(Serialize, ToSchema)]
struct QuotaBody {
    #[schema(value_type = crate::runtime::Quota)]
    quota: Sorted<crate::runtime::Quota>,
}

/// `GET /v1/audit`.
#[derive(Serialize, ToSchema)]
struct AuditBody {
    #[schema(value_type = Vec<AuditRecord>)]
    audit: Sorted<Vec<AuditRecord>>,
    /// The cursor of the next (older) page: `?before=<next>`; absent on the last.
    #[serde(skip_serializing_if = "Option::is_none")]
    next: Option<i64>,
}

/// `GET /v1/audit?limit=N&before=ID`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct AuditPage {
    /// Entries per page: 1 to 1000 (default 100).
    limit: Option<u32>,
    /// The `next` of the previous page.
    before: Option<i64>,
}

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_plugins, upload))
        .routes(routes!(plugin_version, delete_plugin_version))
        .routes(routes!(list_kv))
        .routes(routes!(get_kv, put_kv, delete_kv))
        .routes(routes!(runs))
        .routes(routes!(usage))
        .routes(routes!(quota))
        .routes(routes!(audit))
}

pub(crate) fn check_sha(sha256: &str) -> ApiResult<()> {
    if sha256.len() == 64
        && sha256
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    {
        Ok(())
    } else {
        Err(ApiError::new(
            Code::InvalidSha256,
            "a plugin is named by the lowercase hex sha256 of its bytes (64 characters)",
        ))
    }
}

/// Uploads a plugin (a WebAssembly component, the raw body): checked,
/// compiled and stored under its sha256; installing it is a release's job.
#[utoipa::path(post, path = "/v1/plugins", tag = "plugins", security(("bearer" = [])),
    request_body(content = Vec<u8>, content_type = "application/wasm", description = "The component's bytes"),
    responses((status = 201, body = UploadBody)),
    extensions(("x-veneer-errors" = json!(errors(&[TENANT_HOST, TOKEN, MEMBER, RAW, &[
        Code::EmptyFile, Code::TooLarge, Code::CoreModule, Code::NotWasm, Code::InvalidComponent,
        Code::ForbiddenImport, Code::WrongWorld, Code::TooComplex, Code::DescribeFailed,
        Code::CompileBusy, Code::HostCompileBusy, Code::CompileTimeout, Code::PluginStoreFull,
        Code::InvalidSettingsSchema, Code::Conflict,
    ]])))))]
async fn upload(
    State(app): State<AppState>,
    admin: TenantAdmin,
    RawBody(bytes): RawBody,
) -> ApiResult<(StatusCode, Json<UploadBody>)> {
    let uploaded = app::plugins::upload(
        &app,
        admin.tenant.id(),
        &admin.principal.subject,
        bytes.to_vec(),
    )
    .await
    .map_err(|err| match err {
        CompileError::Check(err) => ApiError::from(err),
        CompileError::App(err) => err.into(),
    })?;
    Ok((
        StatusCode::CREATED,
        Json(UploadBody {
            imports: uploaded.imports,
            plugin: Sorted(uploaded.version),
        }),
    ))
}

/// Deletes a plugin version no release uses.
#[utoipa::path(delete, path = "/v1/plugins/{sha256}", tag = "plugins", security(("bearer" = [])),
    params(("sha256" = String, Path, description = "The plugin's lowercase hex sha256")),
    responses((status = 204, description = "Deleted")),
    extensions(("x-veneer-errors" = json!(errors(&[TENANT_HOST, TOKEN, MEMBER, &[Code::InvalidSha256, Code::NotFound, Code::Conflict]])))))]
async fn delete_plugin_version(
    State(app): State<AppState>,
    admin: TenantAdmin,
    Path(sha256): Path<String>,
) -> ApiResult<StatusCode> {
    app::plugins::delete_version(&app, admin.tenant.id(), &admin.principal.subject, &sha256)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The tenant's plugin versions.
#[utoipa::path(get, path = "/v1/plugins", tag = "plugins", security(("bearer" = [])),
    responses((status = 200, body = PluginsBody)),
    extensions(("x-veneer-errors" = json!(errors(&[TENANT_HOST, TOKEN, MEMBER])))))]
async fn list_plugins(State(app): State<AppState>, member: Member) -> ApiResult<Json<PluginsBody>> {
    let versions = app
        .storage
        .tenant(member.tenant.id())
        .plugin_versions()
        .await?;
    Ok(Json(PluginsBody {
        plugins: Sorted(versions),
    }))
}

/// One plugin version.
#[utoipa::path(get, path = "/v1/plugins/{sha256}", tag = "plugins", security(("bearer" = [])),
    params(("sha256" = String, Path, description = "The plugin's lowercase hex sha256")),
    responses((status = 200, body = PluginBody)),
    extensions(("x-veneer-errors" = json!(errors(&[TENANT_HOST, TOKEN, MEMBER, &[Code::InvalidSha256, Code::NotFound]])))))]
async fn plugin_version(
    State(app): State<AppState>,
    member: Member,
    Path(sha256): Path<String>,
) -> ApiResult<Json<PluginBody>> {
    check_sha(&sha256)?;
    let version = app
        .storage
        .tenant(member.tenant.id())
        .plugin_version(&sha256)
        .await?
        .ok_or_else(|| ApiError::not_found("this tenant has no plugin with that sha256"))?;
    Ok(Json(PluginBody {
        plugin: Sorted(version),
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct KvQuery {
    /// Only keys starting with this.
    #[serde(default)]
    prefix: String,
    /// At most this many (default 100, at most 1000).
    limit: Option<u32>,
}

fn check_key(key: &str) -> ApiResult<()> {
    if key.is_empty() || key.len() > 256 || key.chars().any(char::is_control) {
        return Err(ApiError::new(
            Code::InvalidKey,
            "keys are 1 to 256 bytes without control characters",
        ));
    }
    Ok(())
}

/// The tenant's key-value entries, by key.
#[utoipa::path(get, path = "/v1/kv", tag = "kv", security(("bearer" = [])),
    params(KvQuery),
    responses((status = 200, body = EntriesBody)),
    extensions(("x-veneer-errors" = json!(errors(&[TENANT_HOST, TOKEN, MEMBER, QUERY])))))]
async fn list_kv(
    State(app): State<AppState>,
    member: Member,
    ApiQuery(q): ApiQuery<KvQuery>,
) -> ApiResult<Json<EntriesBody>> {
    let limit = q.limit.unwrap_or(100).min(1_000);
    let entries = app
        .storage
        .tenant(member.tenant.id())
        .kv_list(&q.prefix, limit)
        .await?;
    let entries = entries
        .into_iter()
        .map(|(key, value)| EntryBody { key, value })
        .collect();
    Ok(Json(EntriesBody { entries }))
}

/// One key-value entry.
#[utoipa::path(get, path = "/v1/kv/{key}", tag = "kv", security(("bearer" = [])),
    params(("key" = String, Path, description = "1 to 256 bytes without control characters")),
    responses((status = 200, body = EntryBody)),
    extensions(("x-veneer-errors" = json!(errors(&[TENANT_HOST, TOKEN, MEMBER, &[Code::InvalidKey, Code::NotFound]])))))]
async fn get_kv(
    State(app): State<AppState>,
    member: Member,
    Path(key): Path<String>,
) -> ApiResult<Json<EntryBody>> {
    check_key(&key)?;
    let value = app
        .storage
        .tenant(member.tenant.id())
        .kv_get(&key)
        .await?
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "no value under `{}`",
                key.chars().take(64).collect::<String>()
            ))
        })?;
    Ok(Json(EntryBody { key, value }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct KvPut {
    /// At most 64 KiB.
    value: String,
}

/// Sets one key-value entry.
#[utoipa::path(put, path = "/v1/kv/{key}", tag = "kv", security(("bearer" = [])),
    params(("key" = String, Path, description = "1 to 256 bytes without control characters")),
    request_body = KvPut,
    responses((status = 200, body = EntryBody)),
    extensions(("x-veneer-errors" = json!(errors(&[TENANT_HOST, TOKEN, MEMBER, JSON, &[Code::InvalidKey, Code::ValueTooLarge, Code::KvQuotaExceeded]])))))]
async fn put_kv(
    State(app): State<AppState>,
    admin: TenantAdmin,
    Path(key): Path<String>,
    JsonBody(body): JsonBody<KvPut>,
) -> ApiResult<Json<EntryBody>> {
    check_key(&key)?;
    if body.value.len() > 64 << 10 {
        return Err(ApiError::new(
            Code::ValueTooLarge,
            "values are at most 64 KiB",
        ));
    }
    app::tenants::put_kv(
        &app,
        admin.tenant.id(),
        &admin.principal.subject,
        &key,
        &body.value,
    )
    .await?;
    Ok(Json(EntryBody {
        key,
        value: body.value,
    }))
}

/// Deletes one key-value entry.
#[utoipa::path(delete, path = "/v1/kv/{key}", tag = "kv", security(("bearer" = [])),
    params(("key" = String, Path, description = "1 to 256 bytes without control characters")),
    responses((status = 204, description = "Deleted")),
    extensions(("x-veneer-errors" = json!(errors(&[TENANT_HOST, TOKEN, MEMBER, &[Code::InvalidKey, Code::NotFound]])))))]
async fn delete_kv(
    State(app): State<AppState>,
    admin: TenantAdmin,
    Path(key): Path<String>,
) -> ApiResult<StatusCode> {
    check_key(&key)?;
    if app::tenants::delete_kv(&app, admin.tenant.id(), &admin.principal.subject, &key).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found("no value under that key"))
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct Limit {
    /// Runs: at most this many (default 50, at most 500).
    limit: Option<u32>,
    /// Usage: this many days back (default 30, at most 366).
    days: Option<u32>,
}

/// The tenant's latest plugin runs.
#[utoipa::path(get, path = "/v1/runs", tag = "records", security(("bearer" = [])),
    params(Limit),
    responses((status = 200, body = RunsBody)),
    extensions(("x-veneer-errors" = json!(errors(&[TENANT_HOST, TOKEN, MEMBER, QUERY])))))]
async fn runs(
    State(app): State<AppState>,
    member: Member,
    ApiQuery(q): ApiQuery<Limit>,
) -> ApiResult<Json<RunsBody>> {
    let runs = app
        .storage
        .tenant(member.tenant.id())
        .runs(q.limit.unwrap_or(50).min(500))
        .await?;
    Ok(Json(RunsBody { runs: Sorted(runs) }))
}

/// The tenant's usage per day.
#[utoipa::path(get, path = "/v1/usage", tag = "records", security(("bearer" = [])),
    params(Limit),
    responses((status = 200, body = UsageBody)),
    extensions(("x-veneer-errors" = json!(errors(&[TENANT_HOST, TOKEN, MEMBER, QUERY])))))]
async fn usage(
    State(app): State<AppState>,
    member: Member,
    ApiQuery(q): ApiQuery<Limit>,
) -> ApiResult<Json<UsageBody>> {
    let usage = app
        .storage
        .tenant(member.tenant.id())
        .usage(q.days.unwrap_or(30).min(366))
        .await?;
    Ok(Json(UsageBody {
        usage: Sorted(usage),
    }))
}

/// The quota the tenant's plugins run under by default.
#[utoipa::path(get, path = "/v1/quota", tag = "records", security(("bearer" = [])),
    responses((status = 200, body = QuotaBody)),
    extensions(("x-veneer-errors" = json!(errors(&[TENANT_HOST, TOKEN, MEMBER])))))]
async fn quota(State(app): State<AppState>, member: Member) -> ApiResult<Json<QuotaBody>> {
    let state = member.tenant.state(&app).await?;
    Ok(Json(QuotaBody {
        quota: Sorted(state.default_quota),
    }))
}

/// The tenant's audit log, newest first, a page at a time (admins).
#[utoipa::path(get, path = "/v1/audit", tag = "records", security(("bearer" = [])),
    params(AuditPage),
    responses((status = 200, body = AuditBody)),
    extensions(("x-veneer-errors" = json!(errors(&[TENANT_HOST, TOKEN, MEMBER, QUERY])))))]
async fn audit(
    State(app): State<AppState>,
    admin: TenantAdmin,
    ApiQuery(q): ApiQuery<AuditPage>,
) -> ApiResult<Json<AuditBody>> {
    let limit = q.limit.unwrap_or(100).clamp(1, 1_000);
    let rows = app
        .storage
        .tenant(admin.tenant.id())
        .audit_page(q.before, limit)
        .await?;
    let next = (rows.len() == limit as usize)
        .then(|| rows.last().map(|r| r.id))
        .flatten();
    Ok(Json(AuditBody {
        audit: Sorted(rows),
        next,
    }))
}
