//! Tenant archives: one file holding everything a tenant owns, to back it up,
//! restore it, or move it to another Veneer (SQLite and PostgreSQL alike).
//!
//! The archive is a gzip'd tar of
//! - `manifest.json`: format and version, the tenant, when and from what it was
//!   exported, how its secrets travel, what was left out and why, and the
//!   SHA-256 and size of every other file (an import checks them all before it
//!   writes anything, and refuses a file the manifest does not list);
//! - `tables/<table>.json`: the tenant's rows of one table, `{"table",
//!   "columns", "rows"}`, values as JSON (bytes as `{"blob": "<sha256>"}`);
//! - `blobs/<sha256>`: those bytes (plugin binaries, mostly), stored once.
//!
//! Which tables: every table of the schema with a tenant column (so a table
//! added later travels without a change here) except [`LEFT_OUT`], and the
//! [`HISTORY`] tables only when asked. Secrets (SMTP password, Shopify
//! credentials and app client secret, DKIM private keys) are sealed under the instance's key and
//! bound to the tenant: an export opens them and either seals them again under
//! a key given for the export, or leaves them out (the manifest lists what);
//! an import opens them with that key and seals them under its own instance's
//! key for the tenant it creates.

use std::collections::{BTreeMap, HashSet};
use std::io::{Read, Write};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::{Error, Result};
use crate::secrets::SecretBox;
use crate::storage::{Cell, ImportOutcome, Storage, TenantTable, tenant_column};
use crate::tenancy::TenantId;

/// The manifest's `format`.
pub const FORMAT: &str = "veneer-tenant-archive";
/// The archive format version this Veneer writes and reads.
pub const VERSION: u32 = 1;

/// Tables never archived, with the reason the manifest gives.
pub const LEFT_OUT: &[(&str, &str)] = &[
    ("rate_windows", "rate-limit counters of the moment"),
    ("job_tenants", "the job scheduler's own state"),
    (
        "member_revocations",
        "membership revocations of the moment: they refuse tokens that expire within the token lifetime",
    ),
    (
        "jobs",
        "queued work belongs to the instance that queued it (retry or drop dead letters before moving)",
    ),
    (
        "shopify_oauth_states",
        "Shopify installs in progress belong to the instance the merchant's browser is on",
    ),
    (
        "certificates",
        "certificates and their keys stay with the instance that obtained them; the target obtains its own",
    ),
];

/// Tables of what happened rather than what is configured: archived unless
/// the export leaves history out.
pub const HISTORY: &[&str] = &[
    "plugin_runs",
    "hook_records",
    "shadow_runs",
    "email_messages",
    "usage",
];

/// Bounds on what an import reads.
#[derive(Debug, Clone, Copy)]
pub struct ImportLimits {
    /// Uncompressed bytes, every file together.
    pub max_bytes: u64,
    /// Files in the archive.
    pub max_files: usize,
}

impl Default for ImportLimits {
    fn default() -> Self {
        Self {
            max_bytes: 2 << 30,
            max_files: 100_000,
        }
    }
}

/// How an archive carries the tenant's secrets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "snake_case")]
pub enum SecretsMode {
    /// Sealed under the export key `key_id`; `check` is a known text sealed
    /// under it, so an import with the wrong key fails before it writes.
    Sealed { key_id: String, check: String },
    /// Left out: these columns are empty (or these rows absent) in the archive.
    Omitted { omitted: Vec<String> },
}

impl SecretsMode {
    /// A line for logs and the audit: the mode, never the check value.
    pub fn describe(&self) -> String {
        match self {
            SecretsMode::Sealed { key_id, .. } => format!("sealed under export key `{key_id}`"),
            SecretsMode::Omitted { .. } => "left out".to_owned(),
        }
    }
}

/// One file of the archive, as the manifest lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    pub sha256: String,
    pub bytes: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rows: Option<u64>,
}

/// `manifest.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: String,
    pub version: u32,
    pub tenant: String,
    /// Unix milliseconds.
    pub exported_at: i64,
    /// The exporting Veneer's version.
    pub veneer: String,
    /// The exporting instance's database backend.
    pub source: String,
    pub history: bool,
    pub secrets: SecretsMode,
    /// Tables not in the archive, `table: why`.
    pub left_out: Vec<String>,
    pub files: BTreeMap<String, FileEntry>,
}

/// What to put in an export.
#[derive(Debug, Clone, Copy)]
pub struct ExportOptions<'a> {
    /// Seal secrets under this key; None leaves them out.
    pub secrets_key: Option<&'a SecretBox>,
    /// Include the [`HISTORY`] tables.
    pub history: bool,
}

/// An export: the archive's bytes and its manifest.
#[derive(Debug)]
pub struct Export {
    pub bytes: Vec<u8>,
    pub manifest: Manifest,
}

/// How to import.
#[derive(Debug, Clone)]
pub struct ImportOptions<'a> {
    /// Import under this id instead of the archive's.
    pub as_id: Option<TenantId>,
    /// Link it to this organisation instead of the archive's.
    pub org: Option<String>,
    /// Replace a tenant that exists (its rows go first).
    pub replace: bool,
    /// The key the archive's secrets are sealed under.
    pub secrets_key: Option<&'a SecretBox>,
    /// Import a sealed archive without its secrets (when the key is lost).
    pub without_secrets: bool,
    /// Who the audit log names.
    pub actor: &'a str,
    pub limits: ImportLimits,
}

/// What an import did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ImportReport {
    pub tenant: String,
    pub from_tenant: String,
    /// False when this archive had been imported into this tenant already.
    pub imported: bool,
    pub replaced: bool,
    pub rows: BTreeMap<String, u64>,
    /// Secrets the import left out (none when they traveled sealed).
    pub secrets_left_out: Vec<String>,
}

const CHECK_TEXT: &[u8] = b"veneer tenant archive";
const CHECK_AAD: &str = "veneer:archive:check";

/// A secret column: where, and the associated data binding it to its tenant
/// and row (the same as the instance uses when it seals it).
struct SecretColumn {
    table: &'static str,
    column: &'static str,
    /// Whether the row survives without it (else the rows go, with `also`).
    nullable: bool,
    /// Tables whose rows go too when this secret's rows go.
    also: &'static [&'static str],
    aad: fn(&TenantId, &TenantTable, &[Cell]) -> Option<String>,
}

fn text_at<'a>(table: &TenantTable, row: &'a [Cell], column: &str) -> Option<&'a str> {
    match table.position(column).map(|i| &row[i]) {
        Some(Cell::Text(t)) => Some(t),
        _ => None,
    }
}

const SECRETS: &[SecretColumn] = &[
    SecretColumn {
        table: "email_settings",
        column: "smtp_password_enc",
        nullable: true,
        also: &[],
        aad: |tenant, _, _| Some(crate::email::password_aad(tenant)),
    },
    SecretColumn {
        table: "shopify_stores",
        column: "access_token_enc",
        nullable: true,
        also: &[],
        aad: |tenant, _, _| Some(crate::shopify::access_token_aad(tenant)),
    },
    SecretColumn {
        table: "shopify_stores",
        column: "app_secret_enc",
        nullable: true,
        also: &[],
        aad: |tenant, _, _| Some(crate::shopify::app_secret_aad(tenant)),
    },
    SecretColumn {
        table: "shopify_apps",
        column: "client_secret_enc",
        nullable: false,
        also: &[],
        aad: |tenant, _, _| Some(super::shopify_install::client_secret_aad(tenant)),
    },
    SecretColumn {
        table: "dkim_keys",
        column: "private_key_enc",
        nullable: false,
        also: &["sending_domains"],
        aad: |tenant, table, row| {
            Some(crate::email::dkim::key_aad(
                tenant,
                text_at(table, row, "domain")?,
                text_at(table, row, "selector")?,
            ))
        },
    },
];

/// Exports tenant `id`.
pub async fn export(
    storage: &Storage,
    secrets: &SecretBox,
    id: &TenantId,
    options: ExportOptions<'_>,
) -> Result<Export> {
    let platform = storage.platform();
    let schema = platform.schema().await?;
    let left_out: HashSet<&str> = LEFT_OUT
        .iter()
        .map(|(t, _)| *t)
        .chain(HISTORY.iter().copied().filter(|_| !options.history))
        .collect();
    let names: Vec<String> = schema
        .iter()
        .filter(|t| tenant_column(t).is_some() && !left_out.contains(t.name.as_str()))
        .map(|t| t.name.clone())
        .collect();
    let mut tables = platform.tenant_rows(id, &names).await?;
    let secrets_mode = match options.secrets_key {
        Some(key) => {
            reseal(&mut tables, id, secrets, id, key)?;
            SecretsMode::Sealed {
                key_id: key.current_key_id().to_owned(),
                check: key.encrypt(CHECK_TEXT, CHECK_AAD),
            }
        }
        None => SecretsMode::Omitted {
            omitted: leave_secrets_out(&mut tables),
        },
    };
    let mut notes: Vec<String> = LEFT_OUT
        .iter()
        .map(|(t, why)| format!("{t}: {why}"))
        .collect();
    if !options.history {
        notes.extend(
            HISTORY
                .iter()
                .map(|t| format!("{t}: history, left out by request")),
        );
    }
    let mut manifest = Manifest {
        format: FORMAT.into(),
        version: VERSION,
        tenant: id.to_string(),
        exported_at: super::jobs::now_ms(),
        veneer: env!("CARGO_PKG_VERSION").into(),
        source: format!("{:?}", storage.backend()).to_lowercase(),
        history: options.history,
        secrets: secrets_mode,
        left_out: notes,
        files: BTreeMap::new(),
    };
    let mut files: Vec<(String, Vec<u8>)> = Vec::new();
    let mut blobs: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    for table in &tables {
        let rows: Vec<Value> = table
            .rows
            .iter()
            .map(|row| Value::Array(row.iter().map(|c| cell_to_json(c, &mut blobs)).collect()))
            .collect();
        let body = serde_json::to_vec(&serde_json::json!({
            "table": table.table,
            "columns": table.columns,
            "rows": rows,
        }))
        .map_err(|e| Error::Invalid(format!("cannot write table `{}`: {e}", table.table)))?;
        let name = format!("tables/{}.json", table.table);
        manifest
            .files
            .insert(name.clone(), entry(&body, Some(table.rows.len() as u64)));
        files.push((name, body));
    }
    for (sha, bytes) in blobs {
        let name = format!("blobs/{sha}");
        manifest.files.insert(name.clone(), entry(&bytes, None));
        files.push((name, bytes));
    }
    let bytes = write_archive(&manifest, &files, manifest.exported_at)?;
    Ok(Export { bytes, manifest })
}

/// [`export`], recorded in the tenant's audit log (who, and how secrets went).
pub async fn export_audited(
    storage: &Storage,
    secrets: &SecretBox,
    id: &TenantId,
    options: ExportOptions<'_>,
    actor: &str,
) -> Result<Export> {
    let export = export(storage, secrets, id, options).await?;
    let after = serde_json::json!({
        "exported_at": export.manifest.exported_at,
        "bytes": export.bytes.len(),
        "history": export.manifest.history,
        "secrets": export.manifest.secrets.describe(),
    })
    .to_string();
    storage
        .platform()
        .audit(&crate::storage::AuditEntry {
            tenant: id,
            actor,
            action: "tenant.export",
            plugin_sha256: None,
            before: None,
            after: Some(&after),
        })
        .await?;
    Ok(export)
}

fn entry(bytes: &[u8], rows: Option<u64>) -> FileEntry {
    FileEntry {
        sha256: hex::encode(Sha256::digest(bytes)),
        bytes: bytes.len() as u64,
        rows,
    }
}

fn cell_to_json(cell: &Cell, blobs: &mut BTreeMap<String, Vec<u8>>) -> Value {
    match cell {
        Cell::Null => Value::Null,
        Cell::Int(v) => Value::from(*v),
        Cell::Real(v) => serde_json::Number::from_f64(*v).map_or(Value::Null, Value::Number),
        Cell::Text(v) => Value::from(v.as_str()),
        Cell::Bool(v) => Value::from(*v),
        Cell::Blob(v) => {
            let sha = hex::encode(Sha256::digest(v));
            blobs.entry(sha.clone()).or_insert_with(|| v.clone());
            serde_json::json!({ "blob": sha })
        }
    }
}

fn json_to_cell(value: &Value, blobs: &BTreeMap<String, Vec<u8>>, table: &str) -> Result<Cell> {
    Ok(match value {
        Value::Null => Cell::Null,
        Value::Bool(v) => Cell::Bool(*v),
        Value::Number(n) => match n.as_i64() {
            Some(v) => Cell::Int(v),
            None => Cell::Real(n.as_f64().unwrap_or_default()),
        },
        Value::String(s) => Cell::Text(s.clone()),
        Value::Object(map) => {
            let sha = map.get("blob").and_then(Value::as_str).ok_or_else(|| {
                Error::Invalid(format!(
                    "table `{table}` in the archive has an object that is not a blob reference"
                ))
            })?;
            Cell::Blob(
                blobs
                    .get(sha)
                    .ok_or_else(|| {
                        Error::Invalid(format!(
                            "table `{table}` in the archive names blob {sha}, which it lacks"
                        ))
                    })?
                    .clone(),
            )
        }
        Value::Array(_) => {
            return Err(Error::Invalid(format!(
                "table `{table}` in the archive has a list where a value belongs"
            )));
        }
    })
}

/// Opens each secret under `from` (bound to `from_tenant`) and seals it under
/// `to` (bound to `to_tenant`).
fn reseal(
    tables: &mut [TenantTable],
    from_tenant: &TenantId,
    from: &SecretBox,
    to_tenant: &TenantId,
    to: &SecretBox,
) -> Result<()> {
    for secret in SECRETS {
        let Some(table) = tables.iter_mut().find(|t| t.table == secret.table) else {
            continue;
        };
        let Some(at) = table.position(secret.column) else {
            continue;
        };
        for i in 0..table.rows.len() {
            let Cell::Text(sealed) = &table.rows[i][at] else {
                continue;
            };
            let (Some(open_aad), Some(seal_aad)) = (
                (secret.aad)(from_tenant, table, &table.rows[i]),
                (secret.aad)(to_tenant, table, &table.rows[i]),
            ) else {
                return Err(Error::Invalid(format!(
                    "a row of `{}` lacks the columns its secret is bound to",
                    secret.table
                )));
            };
            let plain = from.decrypt(sealed, &open_aad).map_err(|err| {
                Error::Invalid(format!(
                    "`{}.{}` of tenant `{from_tenant}` does not open: {err}",
                    secret.table, secret.column
                ))
            })?;
            table.rows[i][at] = Cell::Text(to.encrypt(&plain, &seal_aad));
        }
    }
    Ok(())
}

/// Empties the secret columns, or drops the rows that cannot live without
/// theirs; what went, as `table.column` and `table (rows)`.
fn leave_secrets_out(tables: &mut [TenantTable]) -> Vec<String> {
    let mut omitted = Vec::new();
    let mut drop_tables: Vec<&str> = Vec::new();
    for secret in SECRETS {
        if secret.nullable {
            if let Some(table) = tables.iter_mut().find(|t| t.table == secret.table)
                && let Some(at) = table.position(secret.column)
            {
                for row in &mut table.rows {
                    row[at] = Cell::Null;
                }
            }
            omitted.push(format!("{}.{}", secret.table, secret.column));
        } else {
            drop_tables.push(secret.table);
            drop_tables.extend(secret.also);
        }
    }
    for table in tables.iter_mut() {
        if drop_tables.contains(&table.table.as_str()) {
            table.rows.clear();
        }
    }
    omitted.extend(drop_tables.iter().map(|t| format!("{t} (rows)")));
    omitted
}

fn write_archive(
    manifest: &Manifest,
    files: &[(String, Vec<u8>)],
    mtime_ms: i64,
) -> Result<Vec<u8>> {
    let io = |e: std::io::Error| Error::Invalid(format!("cannot write the archive: {e}"));
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    let mut tar = tar::Builder::new(gz);
    let manifest_bytes = serde_json::to_vec_pretty(manifest)
        .map_err(|e| Error::Invalid(format!("cannot write the manifest: {e}")))?;
    let mtime = u64::try_from(mtime_ms / 1000).unwrap_or_default();
    for (name, bytes) in std::iter::once(("manifest.json", &manifest_bytes))
        .chain(files.iter().map(|(n, b)| (n.as_str(), b)))
    {
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o600);
        header.set_mtime(mtime);
        header.set_entry_type(tar::EntryType::Regular);
        tar.append_data(&mut header, name, bytes.as_slice())
            .map_err(io)?;
    }
    let gz = tar.into_inner().map_err(io)?;
    let mut bytes = gz.finish().map_err(io)?;
    bytes.flush().map_err(io)?;
    Ok(bytes)
}

/// An archive read back: its manifest (and the manifest's own digest, which
/// names the archive) and its files, every checksum verified.
struct Opened {
    manifest: Manifest,
    digest: String,
    files: BTreeMap<String, Vec<u8>>,
}

fn open_archive(bytes: &[u8], limits: ImportLimits) -> Result<Opened> {
    let bad = |why: String| Error::Invalid(format!("not a usable tenant archive: {why}"));
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(bytes));
    let mut files = BTreeMap::new();
    let mut total = 0u64;
    for entry in tar.entries().map_err(|e| bad(e.to_string()))? {
        let entry = entry.map_err(|e| bad(e.to_string()))?;
        if files.len() >= limits.max_files {
            return Err(bad(format!("more than {} files", limits.max_files)));
        }
        let name = entry
            .path()
            .map_err(|e| bad(e.to_string()))?
            .to_string_lossy()
            .into_owned();
        let left = limits.max_bytes.saturating_sub(total);
        let mut body = Vec::new();
        entry
            .take(left + 1)
            .read_to_end(&mut body)
            .map_err(|e| bad(e.to_string()))?;
        total += body.len() as u64;
        if total > limits.max_bytes {
            return Err(bad(format!(
                "more than {} bytes uncompressed",
                limits.max_bytes
            )));
        }
        if files.insert(name.clone(), body).is_some() {
            return Err(bad(format!("`{name}` appears twice")));
        }
    }
    let manifest_bytes = files
        .remove("manifest.json")
        .ok_or_else(|| bad("it has no manifest.json".into()))?;
    let manifest: Manifest =
        serde_json::from_slice(&manifest_bytes).map_err(|e| bad(format!("manifest.json: {e}")))?;
    if manifest.format != FORMAT {
        return Err(bad(format!("its format is `{}`", manifest.format)));
    }
    if manifest.version > VERSION {
        return Err(bad(format!(
            "it is version {} and this Veneer reads up to {VERSION}: import it with a newer Veneer",
            manifest.version
        )));
    }
    for (name, body) in &files {
        let listed = manifest
            .files
            .get(name)
            .ok_or_else(|| bad(format!("`{name}` is not in its manifest")))?;
        let sha = hex::encode(Sha256::digest(body));
        if sha != listed.sha256 || body.len() as u64 != listed.bytes {
            return Err(bad(format!(
                "`{name}` does not match its checksum: the archive is damaged or was altered"
            )));
        }
    }
    if let Some(missing) = manifest.files.keys().find(|n| !files.contains_key(*n)) {
        return Err(bad(format!("`{missing}` is in its manifest but not in it")));
    }
    Ok(Opened {
        digest: hex::encode(Sha256::digest(&manifest_bytes)),
        manifest,
        files,
    })
}

/// Reads an archive's manifest, checksums verified (for `veneer tenant
/// import --dry-run` and listings).
pub fn inspect(bytes: &[u8], limits: ImportLimits) -> Result<Manifest> {
    Ok(open_archive(bytes, limits)?.manifest)
}

/// Imports an archive into this instance's database.
pub async fn import(
    storage: &Storage,
    secrets: &SecretBox,
    bytes: &[u8],
    options: ImportOptions<'_>,
) -> Result<ImportReport> {
    let opened = open_archive(bytes, options.limits)?;
    let manifest = &opened.manifest;
    let from = TenantId::new(&manifest.tenant)
        .map_err(|e| Error::Invalid(format!("the archive's tenant id: {e}")))?;
    let target = options.as_id.clone().unwrap_or_else(|| from.clone());
    let (blobs, tables): (BTreeMap<_, _>, BTreeMap<_, _>) = opened
        .files
        .iter()
        .partition(|(name, _)| name.starts_with("blobs/"));
    let blobs: BTreeMap<String, Vec<u8>> = blobs
        .into_iter()
        .map(|(n, b)| (n.trim_start_matches("blobs/").to_owned(), b.clone()))
        .collect();
    let mut rows = Vec::with_capacity(tables.len());
    for (name, body) in tables {
        rows.push(read_table(name, body, &blobs)?);
    }
    let mut secrets_left_out = Vec::new();
    match (&manifest.secrets, options.secrets_key) {
        (SecretsMode::Omitted { omitted }, _) => secrets_left_out.clone_from(omitted),
        (SecretsMode::Sealed { .. }, None) if options.without_secrets => {
            secrets_left_out = leave_secrets_out(&mut rows);
        }
        (SecretsMode::Sealed { key_id, .. }, None) => {
            return Err(Error::Invalid(format!(
                "the archive's secrets are sealed under export key `{key_id}`: give that key, \
                 or import without its secrets"
            )));
        }
        (SecretsMode::Sealed { key_id, check }, Some(key)) => {
            if key.decrypt(check, CHECK_AAD).is_err() {
                return Err(Error::Invalid(format!(
                    "the key given does not open this archive's secrets (they are sealed under \
                     export key `{key_id}`)"
                )));
            }
            reseal(&mut rows, &from, key, &target, secrets)?;
        }
    }
    for table in &mut rows {
        retag(table, &from, &target)?;
    }
    if let Some(org) = &options.org {
        let org = org.trim();
        super::admin::check_org_id(org)?;
        if let Some(tenants) = rows.iter_mut().find(|t| t.table == "tenants")
            && let Some(at) = tenants.position("org_id")
        {
            for row in &mut tenants.rows {
                row[at] = Cell::Text(org.to_owned());
            }
        }
    }
    let marker = serde_json::json!({
        "archive": opened.digest,
        "from_tenant": manifest.tenant,
        "exported_at": manifest.exported_at,
    })
    .to_string();
    let outcome = storage
        .platform()
        .import_tenant(&target, &rows, options.replace, options.actor, &marker)
        .await?;
    let (imported, replaced, rows) = match outcome {
        ImportOutcome::Imported { rows, replaced } => (true, replaced, rows),
        ImportOutcome::AlreadyImported => (false, false, BTreeMap::new()),
    };
    Ok(ImportReport {
        tenant: target.to_string(),
        from_tenant: manifest.tenant.clone(),
        imported,
        replaced,
        rows,
        secrets_left_out,
    })
}

fn read_table(name: &str, body: &[u8], blobs: &BTreeMap<String, Vec<u8>>) -> Result<TenantTable> {
    #[derive(Deserialize)]
    struct File {
        table: String,
        columns: Vec<String>,
        rows: Vec<Vec<Value>>,
    }
    let file: File = serde_json::from_slice(body)
        .map_err(|e| Error::Invalid(format!("the archive's `{name}` does not read: {e}")))?;
    if name != format!("tables/{}.json", file.table) {
        return Err(Error::Invalid(format!(
            "the archive's `{name}` holds table `{}`",
            file.table
        )));
    }
    let rows = file
        .rows
        .iter()
        .map(|row| {
            row.iter()
                .map(|v| json_to_cell(v, blobs, &file.table))
                .collect::<Result<Vec<_>>>()
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(TenantTable {
        table: file.table,
        columns: file.columns,
        rows,
    })
}

/// Sets every row's tenant column to `target`; a row of another tenant than
/// the archive's (`from`) is refused.
fn retag(table: &mut TenantTable, from: &TenantId, target: &TenantId) -> Result<()> {
    let column = match table.table.as_str() {
        "tenants" => "id",
        "output_policies" => "scope",
        _ => "tenant_id",
    };
    let at = table.position(column).ok_or_else(|| {
        Error::Invalid(format!(
            "the archive's table `{}` lacks its tenant column `{column}`",
            table.table
        ))
    })?;
    for row in &mut table.rows {
        match row.get_mut(at) {
            Some(cell) if *cell == Cell::Text(from.to_string()) => {
                *cell = Cell::Text(target.to_string());
            }
            _ => {
                return Err(Error::Invalid(format!(
                    "a row of the archive's table `{}` is not tenant `{from}`'s: the archive \
                     was altered",
                    table.table
                )));
            }
        }
    }
    Ok(())
}
