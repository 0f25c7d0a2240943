//! Tenant lifecycle over HTTP: a deleted tenant is not served (410
//! `tenant_deleted`), is restored within its grace period with everything it
//! had, and once purged is gone — unknown host, no audit entries, its unused
//! compiled artifacts removed — while the id can be taken again.

use reqwest::{Method, StatusCode};
use serde_json::json;
use veneer_plugin_artifacts as built_plugins;

use super::harness::{Db, Server, admin, platform_admin};
use crate::util::read;
use veneer::both_backends;

async fn delete_restore_purge(db: Db) {
    let artifacts = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "lifecycle-artifacts-{}-{:?}",
        std::process::id(),
        db
    ));
    let _ = std::fs::remove_dir_all(&artifacts);
    let dir = artifacts.clone();
    // Artifacts of its own: the purge removes those no tenant of this
    // database stores, which would be every other test's.
    let server = Server::in_process_with(db, move |config| config.artifact_dir = dir).await;
    let pa = platform_admin();
    let token = admin("acme");
    let (status, _) = server.get("acme", "/v1/config", &token).await;
    assert_eq!(status, StatusCode::OK);
    let (status, uploaded) = server
        .upload("acme", &token, read(built_plugins::HOSTILE))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{uploaded}");
    let hostile = uploaded["plugin"]["sha256"]
        .as_str()
        .expect("sha256")
        .to_owned();
    let artifact_of = |sha: &str| {
        std::fs::read_dir(&artifacts)
            .expect("artifact dir")
            .flatten()
            .any(|e| e.file_name().to_string_lossy().starts_with(sha))
    };
    assert!(artifact_of(&hostile), "the upload compiled it to disk");

    // Deleted: not served, other tenants are.
    let (status, body) = server
        .call(
            Method::DELETE,
            "",
            "/v1/admin/tenants/acme",
            Some(&pa),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["tenant"]["deleted_at"].is_i64(), "{body}");
    assert!(
        body["tenant"]["purge_after"].as_i64() > body["tenant"]["deleted_at"].as_i64(),
        "{body}"
    );
    let (status, body) = server.get("acme", "/v1/config", &token).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::GONE, Some("tenant_deleted"))
    );
    let (status, _) = server.get("globex", "/v1/config", &admin("globex")).await;
    assert_eq!(status, StatusCode::OK, "other tenants are unaffected");
    let (status, body) = server
        .call(
            Method::DELETE,
            "",
            "/v1/admin/tenants/acme",
            Some(&pa),
            None,
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("conflict"))
    );
    let (status, body) = server
        .call(
            Method::POST,
            "",
            "/v1/admin/tenants",
            Some(&pa),
            Some(json!({ "id": "acme", "name": "Another Acme" })),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::CONFLICT,
        "the id is held until the purge: {body}"
    );

    // Restored within the grace period: served again, as it was.
    let (status, body) = server
        .call(
            Method::POST,
            "",
            "/v1/admin/tenants/acme/restore",
            Some(&pa),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["tenant"]["deleted_at"].is_null(), "{body}");
    let (status, body) = server.get("acme", "/v1/plugins", &token).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.to_string().contains(&hostile));
    let (status, body) = server
        .call(
            Method::GET,
            "",
            "/v1/admin/audit?tenant=acme",
            Some(&pa),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let actions: Vec<&str> = body["audit"]
        .as_array()
        .expect("audit")
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    assert!(
        actions.starts_with(&["tenant.restore", "tenant.delete"]),
        "{actions:?}"
    );

    // Purging needs a deleted tenant.
    let (status, body) = server
        .call(
            Method::POST,
            "",
            "/v1/admin/tenants/acme/purge",
            Some(&pa),
            None,
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("conflict"))
    );
    // Deleted and purged at once: gone.
    let (status, _) = server
        .call(
            Method::DELETE,
            "",
            "/v1/admin/tenants/acme",
            Some(&pa),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = server
        .call(
            Method::POST,
            "",
            "/v1/admin/tenants/acme/purge",
            Some(&pa),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["purged"]["rows"]["tenants"], 1, "{body}");
    assert!(
        body["purged"]["rows"]["audit_log"].as_u64() >= Some(2),
        "{body}"
    );
    let (status, body) = server.get("acme", "/v1/config", &token).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("unknown_host"))
    );
    let (status, _) = server
        .call(Method::GET, "", "/v1/admin/tenants/acme", Some(&pa), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, body) = server
        .call(
            Method::GET,
            "",
            "/v1/admin/audit?tenant=acme",
            Some(&pa),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["audit"], json!([]));
    assert!(
        !artifact_of(&hostile),
        "no tenant stores it: its artifact went"
    );
    let (status, body) = server.get("globex", "/v1/config", &admin("globex")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _) = server
        .call(
            Method::POST,
            "",
            "/v1/admin/tenants/nobody/restore",
            Some(&pa),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // The id is free again: a new tenant, with nothing of the old one.
    server.create_tenant("acme").await;
    let (status, body) = server.get("acme", "/v1/plugins", &token).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(!body.to_string().contains(&hostile), "{body}");
    let _ = std::fs::remove_dir_all(&artifacts);
}

both_backends!(deleted_restored_and_purged_tenants, delete_restore_purge);

async fn swept(db: Db) {
    let artifacts = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "lifecycle-sweep-{}-{:?}",
        std::process::id(),
        db
    ));
    let dir = artifacts.clone();
    let server = Server::start_with(db, move |config| {
        config.artifact_dir = dir;
        config.tenant_purge_grace_secs = 0;
        config.tenant_purge_interval_secs = 1;
    })
    .await;
    let pa = platform_admin();
    let (status, body) = server
        .call(
            Method::DELETE,
            "",
            "/v1/admin/tenants/globex",
            Some(&pa),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // No grace: the sweep purges it on its own.
    let gone = server
        .eventually(20, async |server| {
            let (status, _) = server
                .call(Method::GET, "", "/v1/admin/tenants/globex", Some(&pa), None)
                .await;
            (status == StatusCode::NOT_FOUND).then_some(())
        })
        .await;
    assert!(gone.is_some(), "the sweep purged the deleted tenant");
    let (status, _) = server.get("acme", "/v1/config", &admin("acme")).await;
    assert_eq!(status, StatusCode::OK, "the others stay");
    let _ = std::fs::remove_dir_all(&artifacts);
}

both_backends!(the_sweep_purges_a_tenant_whose_grace_is_over, swept);
