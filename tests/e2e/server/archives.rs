//! Tenant archives end to end, with `veneer tenant export|import` run as
//! separate processes between a SQLite and a PostgreSQL instance (each with a
//! secrets key of its own): the archive holds nothing of another tenant and is
//! checked before anything is written; an import restores the effective
//! configuration, its plugin binaries and its secrets (sealed again under the
//! target's key), refuses conflicts, repeats harmlessly, and leaves every other
//! tenant's rows as they were.

use std::collections::BTreeMap;
use std::io::Read;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use super::harness::{Db, Server, admin, platform_admin, sale};

fn key(id: &str, byte: u8) -> String {
    use base64::Engine;
    format!(
        "{id}:{}",
        base64::engine::general_purpose::STANDARD.encode([byte; 32])
    )
}

/// Every file of a `.tar.gz`, by name.
fn files_of(bytes: &[u8]) -> BTreeMap<String, Vec<u8>> {
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(bytes));
    let mut out = BTreeMap::new();
    for entry in tar.entries().expect("a tar") {
        let mut entry = entry.expect("an entry");
        let name = entry.path().expect("a path").to_string_lossy().into_owned();
        let mut body = Vec::new();
        entry.read_to_end(&mut body).expect("readable");
        out.insert(name, body);
    }
    out
}

/// A `.tar.gz` of `files`.
fn archive_of(files: &BTreeMap<String, Vec<u8>>) -> Vec<u8> {
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut tar = tar::Builder::new(gz);
    for (name, body) in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(body.len() as u64);
        header.set_mode(0o600);
        tar.append_data(&mut header, name, body.as_slice())
            .expect("append");
    }
    tar.into_inner().expect("tar").finish().expect("gzip")
}

/// The tables of a tenant's export (not its manifest's time), to compare.
async fn tables_of(
    server: &Server,
    secret_key: &str,
    tenant: &str,
    key_file: &str,
    dir: &std::path::Path,
) -> Value {
    let out = dir.join(format!("{tenant}-check.tar.gz"));
    let run = server
        .veneer(
            &[
                "tenant",
                "export",
                tenant,
                "--out",
                out.to_str().expect("path"),
                "--no-history",
                "--export-key-file",
                key_file,
            ],
            &[("VENEER_SECRET_KEY", secret_key)],
        )
        .await;
    assert_eq!(run.code, Some(0), "{run:?}");
    let files = files_of(&std::fs::read(&out).expect("archive"));
    let manifest: Value = serde_json::from_slice(&files["manifest.json"]).expect("manifest");
    let mut tables = manifest["files"].clone();
    // The audit log gains the check's own export entry each time.
    tables
        .as_object_mut()
        .expect("files")
        .remove("tables/audit_log.json");
    tables
}

/// A tenant's effective configuration and a quote, without what differs from
/// run to run (fuel: a warm instance uses less) or between instances (release
/// ids are the target's own, and the configuration's version names them).
async fn effective(server: &Server, tenant: &str) -> (Value, Value) {
    fn strip(value: &mut Value) {
        match value {
            Value::Object(map) => {
                map.remove("fuel_used");
                map.remove("release");
                map.remove("version");
                map.values_mut().for_each(strip);
            }
            Value::Array(items) => items.iter_mut().for_each(strip),
            _ => {}
        }
    }
    let token = admin(tenant);
    let (status, mut config) = server.get(tenant, "/v1/config", &token).await;
    assert_eq!(status, StatusCode::OK, "{config}");
    strip(&mut config);
    let mut quote = server.quote(tenant, &token, sale("bags", 250_000)).await;
    strip(&mut quote);
    (config, quote)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_and_import_move_a_tenant_between_sqlite_and_postgresql() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (k_sqlite, k_postgres, k_export) = (key("s1", 11), key("p1", 22), key("x1", 33));
    let key_file = dir.path().join("export.key");
    std::fs::write(&key_file, format!("{k_export}\n")).expect("key file");
    let key_file = key_file.to_str().expect("path").to_owned();
    let wrong_file = dir.path().join("wrong.key");
    std::fs::write(&wrong_file, key("x1", 44)).expect("key file");

    let ks = k_sqlite.clone();
    let source = Server::start_with(Db::Sqlite, move |c| {
        c.secret_key = Some(ks);
        c.smtp_relay_allow = vec!["127.0.0.1:2525".parse().expect("allow")];
    })
    .await;
    source
        .configure_email(
            "acme",
            json!({
                "sending_domain": "acme.example",
                "from_name": "Acme",
                "from_address": "orders@acme.example",
                "relay": "custom",
                "smtp_host": "127.0.0.1",
                "smtp_port": 2525,
                "smtp_tls": "starttls",
                "smtp_username": "acme",
                "smtp_password": "relay-password",
            }),
        )
        .await;
    let before = effective(&source, "acme").await;

    // Exported with its secrets sealed under the export key.
    let archive = dir.path().join("acme.tar.gz");
    let run = source
        .veneer(
            &[
                "tenant",
                "export",
                "acme",
                "--out",
                archive.to_str().expect("path"),
                "--export-key-file",
                &key_file,
            ],
            &[("VENEER_SECRET_KEY", &k_sqlite)],
        )
        .await;
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(
        run.stdout.contains("secrets sealed under export key `x1`"),
        "{run:?}"
    );
    let bytes = std::fs::read(&archive).expect("the archive");
    let files = files_of(&bytes);
    let manifest: Value = serde_json::from_slice(&files["manifest.json"]).expect("manifest");
    assert_eq!(manifest["tenant"], "acme");
    assert_eq!(manifest["source"], "sqlite");
    assert_eq!(manifest["secrets"]["mode"], "sealed");
    assert!(
        files.keys().any(|f| f.starts_with("blobs/")),
        "plugin binaries travel"
    );
    for table in [
        "tenants",
        "installations",
        "releases",
        "plugin_versions",
        "email_settings",
    ] {
        assert!(
            manifest["files"][format!("tables/{table}.json")]["rows"].as_u64() >= Some(1),
            "{table}: {manifest}"
        );
    }
    // Nothing of another tenant, nor a secret in clear.
    for (name, body) in &files {
        let text = String::from_utf8_lossy(body);
        assert!(!text.contains("globex"), "{name} names globex");
        assert!(
            !text.contains("relay-password"),
            "{name} holds the password in clear"
        );
    }

    // The PostgreSQL instance has its own acme (the demo's) and globex.
    let kp = k_postgres.clone();
    let target = Server::start_with(Db::Postgres, move |c| c.secret_key = Some(kp)).await;
    let import = |args: Vec<String>| {
        let target = &target;
        let k = k_postgres.clone();
        async move {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            target.veneer(&args, &[("VENEER_SECRET_KEY", &k)]).await
        }
    };
    let path = archive.to_str().expect("path").to_owned();
    let globex_before = tables_of(&target, &k_postgres, "globex", &key_file, dir.path()).await;
    let (_, demo_quote) = effective(&target, "acme").await; // cached now

    // Refusals, each with nothing written.
    let run = import(vec!["tenant".into(), "import".into(), path.clone()]).await;
    assert_eq!(run.code, Some(1), "{run:?}");
    assert!(
        run.stderr.contains("sealed under export key `x1`"),
        "{run:?}"
    );
    let run = import(vec![
        "tenant".into(),
        "import".into(),
        path.clone(),
        "--export-key-file".into(),
        wrong_file.to_str().expect("path").into(),
    ])
    .await;
    assert_eq!(run.code, Some(1), "{run:?}");
    assert!(run.stderr.contains("does not open"), "{run:?}");
    let with_key = |extra: &[&str]| {
        let mut args: Vec<String> = ["tenant", "import", &path, "--export-key-file", &key_file]
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        args.extend(extra.iter().map(|s| (*s).to_owned()));
        args
    };
    let run = import(with_key(&[])).await;
    assert_eq!(run.code, Some(1), "{run:?}");
    assert!(
        run.stderr.contains("tenant `acme` exists already"),
        "{run:?}"
    );
    let run = import(with_key(&["--as", "acme2"])).await;
    assert_eq!(run.code, Some(1), "{run:?}");
    assert!(
        run.stderr
            .contains("organisation `org_acme` belongs to tenant `acme`"),
        "{run:?}"
    );
    // Altered after export: refused on its checksum.
    let mut altered = files.clone();
    let table = altered.get_mut("tables/kv_usage.json").or(None);
    let name = match table {
        Some(body) => {
            body.push(b' ');
            "tables/kv_usage.json"
        }
        None => {
            let body = altered.get_mut("tables/tenants.json").expect("tenants");
            body.push(b' ');
            "tables/tenants.json"
        }
    };
    let altered_path = dir.path().join("altered.tar.gz");
    std::fs::write(&altered_path, archive_of(&altered)).expect("write");
    let run = import(vec![
        "tenant".into(),
        "import".into(),
        altered_path.to_str().expect("path").into(),
        "--export-key-file".into(),
        key_file.clone(),
        "--replace".into(),
    ])
    .await;
    assert_eq!(run.code, Some(1), "{run:?}");
    assert!(
        run.stderr
            .contains(&format!("`{name}` does not match its checksum")),
        "{run:?}"
    );
    assert_eq!(effective(&target, "acme").await.1, demo_quote, "unchanged");

    // Replacing the demo's acme with the archive's.
    let run = import(with_key(&["--replace", "--json"])).await;
    assert_eq!(run.code, Some(0), "{run:?}");
    let report: Value = serde_json::from_str(run.stdout.trim()).expect("json report");
    assert_eq!(report["imported"], true, "{report}");
    assert_eq!(report["replaced"], true, "{report}");
    // The serving node was told to forget what it cached of acme.
    let after = target
        .eventually(10, async |s| {
            let now = effective(s, "acme").await;
            (now == before).then_some(now)
        })
        .await;
    assert_eq!(after, Some(before.clone()));
    // Its SMTP password opens under the target's key, bound to acme there.
    let target_box =
        veneer::secrets::SecretBox::from_env_or_dev(Some(&k_postgres), &[], false).expect("key");
    let acme = veneer::tenancy::TenantId::new("acme").expect("id");
    let settings = target
        .state
        .storage
        .tenant(&acme)
        .email_settings()
        .await
        .expect("read")
        .expect("set");
    let sealed = settings
        .settings
        .smtp_password_enc
        .expect("the password came");
    let plain = target_box
        .decrypt(&sealed, &veneer::email::password_aad(&acme))
        .expect("sealed under the target's key");
    assert_eq!(plain.as_slice(), b"relay-password");
    // Again: without --replace it is a no-op, with it the same result.
    let run = import(with_key(&[])).await;
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(run.stdout.contains("already holds this archive"), "{run:?}");
    let run = import(with_key(&["--replace"])).await;
    assert_eq!(run.code, Some(0), "{run:?}");
    assert_eq!(effective(&target, "acme").await, before);
    // globex, there all along, is as it was.
    assert_eq!(
        tables_of(&target, &k_postgres, "globex", &key_file, dir.path()).await,
        globex_before
    );

    // And back: PostgreSQL's acme, under a new id, into a SQLite instance,
    // without its secrets; and the admin route's export is the same kind of
    // archive, audited.
    let from_api = dir.path().join("from-api.tar.gz");
    let download = target
        .request(Method::POST, "", "/v1/admin/tenants/acme/export")
        .bearer_auth(platform_admin())
        .json(&json!({ "without_history": true }))
        .send()
        .await
        .expect("export");
    assert_eq!(download.status(), StatusCode::OK);
    assert_eq!(
        download.headers()["content-type"].to_str().ok(),
        Some("application/gzip")
    );
    let api_bytes = download.bytes().await.expect("body").to_vec();
    std::fs::write(&from_api, &api_bytes).expect("write");
    let api_files = files_of(&api_bytes);
    let api_manifest: Value = serde_json::from_slice(&api_files["manifest.json"]).expect("json");
    assert_eq!(api_manifest["source"], "postgres");
    assert_eq!(api_manifest["secrets"]["mode"], "omitted");
    assert!(!api_files.contains_key("tables/plugin_runs.json"));
    let (status, audit) = target
        .call(
            Method::GET,
            "",
            "/v1/admin/audit?tenant=acme",
            Some(&platform_admin()),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let actions: Vec<&str> = audit["audit"]
        .as_array()
        .expect("audit")
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    assert!(actions.contains(&"tenant.export"), "{actions:?}");
    assert!(actions.contains(&"tenant.import"), "{actions:?}");

    // Into the SQLite instance as a new tenant (its own id and organisation:
    // the source still has the original acme).
    let run = source
        .veneer(
            &[
                "tenant",
                "import",
                from_api.to_str().expect("path"),
                "--as",
                "acme3",
                "--org",
                "org_acme3",
            ],
            &[("VENEER_SECRET_KEY", &k_sqlite)],
        )
        .await;
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(run.stdout.contains("left out (set them again)"), "{run:?}");
    let (config, quote) = effective(&source, "acme3").await;
    assert_eq!(quote, before.1);
    assert_eq!(
        config.to_string().replace("acme3", "acme"),
        before.0.to_string()
    );
    let acme3 = veneer::tenancy::TenantId::new("acme3").expect("id");
    let settings = source
        .state
        .storage
        .tenant(&acme3)
        .email_settings()
        .await
        .expect("read")
        .expect("set");
    assert_eq!(settings.settings.smtp_password_enc, None, "left out");

    // The import route: globex's archive replaces acme3, and the serving node
    // answers with globex's configuration at once (it dropped its cache).
    let download = |tenant: &str| {
        let request = source
            .request(
                Method::POST,
                "",
                &format!("/v1/admin/tenants/{tenant}/export"),
            )
            .bearer_auth(platform_admin())
            .json(&json!({}));
        async move {
            let reply = request.send().await.expect("export");
            assert_eq!(reply.status(), StatusCode::OK);
            reply.bytes().await.expect("body").to_vec()
        }
    };
    let globex = download("globex").await;
    let upload = |query: &str, body: Vec<u8>, key: Option<&str>| {
        let mut request = source
            .request(
                Method::POST,
                "",
                &format!("/v1/admin/tenants/import{query}"),
            )
            .bearer_auth(platform_admin())
            .header("content-type", "application/gzip")
            .body(body);
        if let Some(key) = key {
            request = request.header("veneer-export-key", key);
        }
        async move {
            let reply = request.send().await.expect("import");
            let status = reply.status();
            let body: Value = reply.json().await.expect("json");
            (status, body)
        }
    };
    let (status, body) = upload("?as=acme3&org=org_acme3", globex.clone(), None).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("conflict")),
        "{body}"
    );
    let (status, body) = upload("", b"not an archive".to_vec(), None).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid")),
        "{body}"
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("not a usable tenant archive")),
        "{body}"
    );
    let (status, body) = upload("?as=acme3&bogus=1", globex.clone(), None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, body) = upload("?as=acme6&org=not%20an%20org!", globex.clone(), None).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid")),
        "{body}"
    );
    let (status, body) = upload("?as=acme3&org=org_acme3&replace=true", globex, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["import"]["replaced"], true, "{body}");
    let globex_now = effective(&source, "globex").await;
    let acme3_now = effective(&source, "acme3").await;
    assert_eq!(acme3_now.1, globex_now.1, "acme3 quotes as globex does now");
    assert_eq!(
        acme3_now.0.to_string().replace("acme3", "globex"),
        globex_now.0.to_string()
    );
    // The sealed archive through the route needs its key, in a header.
    let sealed = std::fs::read(&archive).expect("archive");
    let (status, body) = upload("?as=acme5&org=org_acme5", sealed.clone(), None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, body) = upload("?as=acme5&org=org_acme5", sealed, Some(&k_export)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["import"]["imported"], true, "{body}");
    assert_eq!(effective(&source, "acme5").await.1, before.1);
}

/// `--backup-dir`: every tenant is backed up each period (a job per tenant),
/// the newest `--backup-keep` archives stay, each holds only its tenant, and a
/// purged tenant's backups go with it.
async fn scheduled_backups(db: Db) {
    let dir = tempfile::tempdir().expect("temp dir");
    let root = dir.path().to_owned();
    let server = Server::start_with(db, move |c| {
        c.backups.backup_dir = Some(root);
        c.backups.backup_every_secs = 1;
        c.backups.backup_keep = 2;
    })
    .await;
    let archives = |tenant: &str| -> Vec<std::path::PathBuf> {
        let mut found: Vec<_> = std::fs::read_dir(dir.path().join(tenant))
            .map(|d| d.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        found.sort();
        found
    };
    let first = server
        .eventually(30, async |_| archives("acme").first().cloned())
        .await
        .expect("acme is backed up");
    // Later periods add newer archives and remove the oldest.
    let later = server
        .eventually(30, async |_| {
            let now = archives("acme");
            (!now.contains(&first) && now.len() == 2).then_some(now)
        })
        .await
        .expect("newer backups replace the oldest");
    assert!(later.iter().all(|p| p > &first), "{later:?}");
    assert!(!archives("globex").is_empty(), "every tenant is backed up");

    let files = files_of(&std::fs::read(&later[1]).expect("readable"));
    let manifest: Value = serde_json::from_slice(&files["manifest.json"]).expect("manifest");
    assert_eq!(manifest["tenant"], "acme");
    assert_eq!(manifest["secrets"]["mode"], "omitted");
    for (name, body) in &files {
        assert!(
            !String::from_utf8_lossy(body).contains("globex"),
            "{name} names globex"
        );
    }

    // Purged: its backups go; another tenant's stay.
    let pa = platform_admin();
    for (method, path) in [
        (Method::DELETE, "/v1/admin/tenants/acme"),
        (Method::POST, "/v1/admin/tenants/acme/purge"),
    ] {
        let (status, body) = server.call(method, "", path, Some(&pa), None).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    assert!(!dir.path().join("acme").exists(), "acme's backups went");
    assert!(!archives("globex").is_empty());
}

veneer::both_backends!(
    backups_run_on_schedule_and_go_with_the_purge,
    scheduled_backups
);
