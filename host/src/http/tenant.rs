//! What a tenant manages for itself: plugin versions (upload, list), key-value
//! data, and what it reads about itself: runs, usage, its default quota and
//! its audit log (installations and releases are `http::installations`').
//! Admins write; members read. Uploading is a use case of
//! [`crate::app::plugins`], key-value writes of [`crate::app::tenants`]
//! (invalidation and audit there); the plain reads go to `storage` directly.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Json, Router, routing::get};
use serde::{Deserialize, Serialize};

use crate::app;
use crate::app::plugins::CompileError;
use crate::http::body::Sorted;
use crate::http::context::{ApiQuery, JsonBody, Member, RawBody, TenantAdmin};
use crate::http::{ApiError, ApiResult, Code};
use crate::state::AppState;
use crate::storage::{AuditRecord, PluginVersion, RunRecord, UsageRecord};

// Response bodies: fields in alphabetical order, nested records sorted (see
// `http::body`).

/// `POST /v1/plugins`.
#[derive(Serialize)]
struct UploadBody {
    imports: Vec<String>,
    plugin: Sorted<PluginVersion>,
}

/// `GET /v1/plugins`.
#[derive(Serialize)]
struct PluginsBody {
    plugins: Sorted<Vec<PluginVersion>>,
}

/// `GET /v1/plugins/{sha256}`.
#[derive(Serialize)]
struct PluginBody {
    plugin: Sorted<PluginVersion>,
}

/// One key-value entry.
#[derive(Serialize)]
struct EntryBody {
    key: String,
    value: String,
}

/// `GET /v1/kv`.
#[derive(Serialize)]
struct EntriesBody {
    entries: Vec<EntryBody>,
}

/// `GET /v1/runs`.
#[derive(Serialize)]
struct RunsBody {
    runs: Sorted<Vec<RunRecord>>,
}

/// `GET /v1/usage`.
#[derive(Serialize)]
struct UsageBody {
    usage: Sorted<Vec<UsageRecord>>,
}

/// `GET /v1/quota`.
#[derive(Serialize)]
struct QuotaBody {
    quota: Sorted<crate::runtime::Quota>,
}

/// `GET /v1/audit`.
#[derive(Serialize)]
struct AuditBody {
    audit: Sorted<Vec<AuditRecord>>,
    /// The cursor of the next (older) page: `?before=<next>`; absent on the last.
    #[serde(skip_serializing_if = "Option::is_none")]
    next: Option<i64>,
}

/// `GET /v1/audit?limit=N&before=ID`.
#[derive(Debug, Deserialize)]
struct AuditPage {
    limit: Option<u32>,
    before: Option<i64>,
}

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/plugins", get(list_plugins).post(upload))
        .route(
            "/v1/plugins/{sha256}",
            get(plugin_version).delete(delete_plugin_version),
        )
        .route("/v1/kv", get(list_kv))
        .route("/v1/kv/{key}", get(get_kv).put(put_kv).delete(delete_kv))
        .route("/v1/runs", get(runs))
        .route("/v1/usage", get(usage))
        .route("/v1/quota", get(quota))
        .route("/v1/audit", get(audit))
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

async fn delete_plugin_version(
    State(app): State<AppState>,
    admin: TenantAdmin,
    Path(sha256): Path<String>,
) -> ApiResult<StatusCode> {
    app::plugins::delete_version(&app, admin.tenant.id(), &admin.principal.subject, &sha256)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

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

#[derive(Debug, Deserialize)]
struct KvQuery {
    #[serde(default)]
    prefix: String,
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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct KvPut {
    value: String,
}

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

#[derive(Debug, Deserialize)]
struct Limit {
    limit: Option<u32>,
    days: Option<u32>,
}

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

async fn quota(State(app): State<AppState>, member: Member) -> ApiResult<Json<QuotaBody>> {
    let state = member.tenant.state(&app).await?;
    Ok(Json(QuotaBody {
        quota: Sorted(state.default_quota),
    }))
}

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
