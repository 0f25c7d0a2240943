//! What a tenant manages for itself: plugin versions (upload, activate, roll
//! back), settings, key-value data, and what it reads about itself: runs, usage,
//! its quota and its audit log. Admins write; members read.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::{
    Json, Router,
    routing::{get, post},
};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::app::plugins::CompileError;
use crate::http::context::{JsonBody, Member, RawBody, TenantAdmin};
use crate::http::{ApiError, ApiResult, Code};
use crate::state::AppState;
use crate::storage::{Activation, NewPluginVersion};

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/plugins", get(list_plugins).post(upload))
        .route("/v1/plugins/active", get(active))
        .route("/v1/plugins/rollback", post(rollback))
        .route("/v1/plugins/deactivate", post(deactivate))
        .route("/v1/plugins/{sha256}", get(plugin_version))
        .route("/v1/plugins/{sha256}/activate", post(activate))
        .route("/v1/settings", get(get_settings).put(put_settings))
        .route("/v1/kv", get(list_kv))
        .route("/v1/kv/{key}", get(get_kv).put(put_kv).delete(delete_kv))
        .route("/v1/runs", get(runs))
        .route("/v1/usage", get(usage))
        .route("/v1/quota", get(quota))
        .route("/v1/audit", get(audit))
}

fn check_sha(sha256: &str) -> ApiResult<()> {
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
) -> ApiResult<(StatusCode, Json<Value>)> {
    let tenant = admin.tenant.id().clone();
    let bytes = bytes.to_vec();
    let plugin = match crate::app::plugins::compile(&app, Some(&tenant), bytes.clone()).await {
        Ok(plugin) => plugin,
        Err(CompileError::Check(err)) => return Err(err.into()),
        Err(CompileError::App(err)) => return Err(err.into()),
    };
    let info = plugin.info();
    let hooks: Vec<String> = info.hooks.iter().map(|h| h.as_str().to_owned()).collect();
    let db = app.storage.tenant(&tenant);
    let version = db
        .put_plugin_version(&NewPluginVersion {
            sha256: &info.sha256,
            name: &info.name,
            version: &info.version,
            hooks: &hooks,
            size_bytes: info.size_bytes as u64,
            binary: &bytes,
            uploaded_by: &admin.principal.subject,
        })
        .await?;
    let after = json!({ "sha256": info.sha256, "name": info.name, "version": info.version, "hooks": hooks }).to_string();
    db.audit(
        &admin.principal.subject,
        "plugin.upload",
        Some(&info.sha256),
        None,
        Some(&after),
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "plugin": version, "imports": info.imports })),
    ))
}

async fn list_plugins(State(app): State<AppState>, member: Member) -> ApiResult<Json<Value>> {
    let versions = app
        .storage
        .tenant(member.tenant.id())
        .plugin_versions()
        .await?;
    Ok(Json(json!({ "plugins": versions })))
}

async fn plugin_version(
    State(app): State<AppState>,
    member: Member,
    Path(sha256): Path<String>,
) -> ApiResult<Json<Value>> {
    check_sha(&sha256)?;
    let version = app
        .storage
        .tenant(member.tenant.id())
        .plugin_version(&sha256)
        .await?
        .ok_or_else(|| ApiError::not_found("this tenant has no plugin with that sha256"))?;
    Ok(Json(json!({ "plugin": version })))
}

async fn active(State(app): State<AppState>, member: Member) -> ApiResult<Json<Value>> {
    let db = app.storage.tenant(member.tenant.id());
    let active = db.active_plugin().await?;
    let version = match &active {
        Some(sha) => db.plugin_version(sha).await?,
        None => None,
    };
    Ok(Json(json!({ "active": active, "plugin": version })))
}

async fn after_activation(
    app: &AppState,
    admin: &TenantAdmin,
    before: Option<String>,
    activation: Activation,
    action: &str,
) -> ApiResult<Json<Value>> {
    let tenant = admin.tenant.id();
    app.invalidate(tenant);
    // Warm the runtime so the first request after an activation does not compile.
    if let Some(sha) = &activation.sha256 {
        crate::app::plugins::load(app, tenant, sha).await?;
    }
    let before = json!({ "active": before }).to_string();
    let after = json!({ "active": activation.sha256 }).to_string();
    app.storage
        .tenant(tenant)
        .audit(
            &admin.principal.subject,
            action,
            activation.sha256.as_deref(),
            Some(&before),
            Some(&after),
        )
        .await?;
    Ok(Json(json!({ "activation": activation })))
}

async fn activate(
    State(app): State<AppState>,
    admin: TenantAdmin,
    Path(sha256): Path<String>,
) -> ApiResult<Json<Value>> {
    check_sha(&sha256)?;
    let db = app.storage.tenant(admin.tenant.id());
    let before = db.active_plugin().await?;
    let activation = db.activate(&sha256, &admin.principal.subject).await?;
    after_activation(&app, &admin, before, activation, "plugin.activate").await
}

async fn rollback(State(app): State<AppState>, admin: TenantAdmin) -> ApiResult<Json<Value>> {
    let db = app.storage.tenant(admin.tenant.id());
    let before = db.active_plugin().await?;
    let activation = db.rollback(&admin.principal.subject).await?;
    after_activation(&app, &admin, before, activation, "plugin.rollback").await
}

async fn deactivate(State(app): State<AppState>, admin: TenantAdmin) -> ApiResult<Json<Value>> {
    let db = app.storage.tenant(admin.tenant.id());
    let before = db.active_plugin().await?;
    let activation = db.deactivate(&admin.principal.subject).await?;
    after_activation(&app, &admin, before, activation, "plugin.deactivate").await
}

async fn get_settings(State(app): State<AppState>, member: Member) -> ApiResult<Json<Value>> {
    let settings = app.storage.tenant(member.tenant.id()).settings().await?;
    let value: Value = serde_json::from_str(&settings.json).unwrap_or(Value::Null);
    Ok(Json(
        json!({ "settings": value, "version": settings.version, "updated_at": settings.updated_at }),
    ))
}

/// Largest settings document, in bytes of JSON.
const MAX_SETTINGS_BYTES: usize = 256 << 10;

async fn put_settings(
    State(app): State<AppState>,
    admin: TenantAdmin,
    headers: HeaderMap,
    JsonBody(value): JsonBody<Value>,
) -> ApiResult<Json<Value>> {
    if !value.is_object() {
        return Err(ApiError::new(
            Code::InvalidSettings,
            "settings must be a JSON object",
        ));
    }
    let json = value.to_string();
    if json.len() > MAX_SETTINGS_BYTES {
        return Err(ApiError::new(
            Code::SettingsTooLarge,
            format!(
                "settings are {} bytes; at most {MAX_SETTINGS_BYTES} are allowed",
                json.len()
            ),
        ));
    }
    let expected = match headers.get(header::IF_MATCH) {
        Some(v) => Some(
            v.to_str()
                .ok()
                .and_then(|v| v.trim().trim_matches('"').parse::<i64>().ok())
                .ok_or_else(|| {
                    ApiError::new(
                        Code::InvalidIfMatch,
                        "If-Match must be the settings version number you read",
                    )
                })?,
        ),
        None => None,
    };
    let db = app.storage.tenant(admin.tenant.id());
    let before = db.settings().await?;
    let saved = db.set_settings(&json, expected).await?;
    app.invalidate(admin.tenant.id());
    db.audit(
        &admin.principal.subject,
        "settings.update",
        None,
        Some(&before.json),
        Some(&saved.json),
    )
    .await?;
    Ok(Json(
        json!({ "settings": value, "version": saved.version, "updated_at": saved.updated_at }),
    ))
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
    Query(q): Query<KvQuery>,
) -> ApiResult<Json<Value>> {
    let limit = q.limit.unwrap_or(100).min(1_000);
    let entries = app
        .storage
        .tenant(member.tenant.id())
        .kv_list(&q.prefix, limit)
        .await?;
    let entries: Vec<Value> = entries
        .into_iter()
        .map(|(k, v)| json!({ "key": k, "value": v }))
        .collect();
    Ok(Json(json!({ "entries": entries })))
}

async fn get_kv(
    State(app): State<AppState>,
    member: Member,
    Path(key): Path<String>,
) -> ApiResult<Json<Value>> {
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
    Ok(Json(json!({ "key": key, "value": value })))
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
) -> ApiResult<Json<Value>> {
    check_key(&key)?;
    if body.value.len() > 64 << 10 {
        return Err(ApiError::new(
            Code::ValueTooLarge,
            "values are at most 64 KiB",
        ));
    }
    app.storage
        .tenant(admin.tenant.id())
        .kv_put(&key, &body.value)
        .await?;
    app.invalidate(admin.tenant.id());
    Ok(Json(json!({ "key": key, "value": body.value })))
}

async fn delete_kv(
    State(app): State<AppState>,
    admin: TenantAdmin,
    Path(key): Path<String>,
) -> ApiResult<StatusCode> {
    check_key(&key)?;
    if app
        .storage
        .tenant(admin.tenant.id())
        .kv_delete(&key)
        .await?
    {
        app.invalidate(admin.tenant.id());
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
    Query(q): Query<Limit>,
) -> ApiResult<Json<Value>> {
    let runs = app
        .storage
        .tenant(member.tenant.id())
        .runs(q.limit.unwrap_or(50).min(500))
        .await?;
    Ok(Json(json!({ "runs": runs })))
}

async fn usage(
    State(app): State<AppState>,
    member: Member,
    Query(q): Query<Limit>,
) -> ApiResult<Json<Value>> {
    let usage = app
        .storage
        .tenant(member.tenant.id())
        .usage(q.days.unwrap_or(30).min(366))
        .await?;
    Ok(Json(json!({ "usage": usage })))
}

async fn quota(State(app): State<AppState>, member: Member) -> ApiResult<Json<Value>> {
    let state = member.tenant.state(&app).await?;
    Ok(Json(json!({ "quota": state.quota })))
}

async fn audit(
    State(app): State<AppState>,
    admin: TenantAdmin,
    Query(q): Query<Limit>,
) -> ApiResult<Json<Value>> {
    let rows = app
        .storage
        .tenant(admin.tenant.id())
        .audit_log(q.limit.unwrap_or(100).min(1_000))
        .await?;
    Ok(Json(json!({ "audit": rows })))
}
