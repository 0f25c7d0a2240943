//! Live base-configuration updates over HTTP, on both backends: a check
//! reports, tenant by tenant and section by section, what the base on disk
//! would change and whose plugins it would break, without changing what is
//! served; a reload swaps it in and every tenant is served from it (a tenant
//! whose plugin now fails falls back to the base for that step and keeps being
//! served); a base that does not load is refused and the old one stays.

use reqwest::{Method, StatusCode};
use serde_json::Value;

use super::harness::{Db, Server, admin, platform_admin};
use veneer::both_backends;

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read the base") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

async fn base_call(server: &Server, action: &str, token: &str) -> (StatusCode, Value) {
    server
        .call(
            Method::POST,
            "",
            &format!("/v1/admin/base/{action}"),
            Some(token),
            None,
        )
        .await
}

async fn category_ids(server: &Server, tenant: &str) -> Vec<String> {
    let (status, body) = server
        .get(tenant, "/v1/config/categories", &admin(tenant))
        .await;
    assert_eq!(status, StatusCode::OK, "{tenant}: {body}");
    let list = body["value"]
        .as_array()
        .or_else(|| body["categories"].as_array())
        .unwrap_or_else(|| panic!("a category list: {body}"));
    list.iter()
        .filter_map(|c| c["id"].as_str().map(str::to_owned))
        .collect()
}

async fn reload(db: Db) {
    let dir = tempfile::tempdir().expect("temp dir");
    let base = dir.path().join("base-config");
    copy_dir(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../base-config"),
        &base,
    );
    let at = base.clone();
    let server = Server::in_process_with(db, move |config| config.base_config = Some(at)).await;
    let pa = platform_admin();

    // Nothing changed on disk: nothing to report.
    let (status, body) = base_call(&server, "check", &pa).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let report = &body["base"];
    assert_eq!(report["from_version"], report["to_version"], "{body}");
    assert!(
        report["tenants_checked"].as_u64().unwrap_or(0) >= 2,
        "{body}"
    );
    assert_eq!(report["tenants"], serde_json::json!({}), "{body}");
    // Only a platform admin.
    let (status, _) = base_call(&server, "check", &admin("acme")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // A new base category whose slug is the one acme's plugin gives its own
    // `bags-vintage`: every tenant's categories change, acme's plugin output
    // becomes invalid (two siblings with one slug).
    let mut categories = std::fs::read_to_string(base.join("categories.toml")).expect("read");
    categories.push_str(
        "\n[[category]]\nid = \"bags-retro\"\nparent = \"bags\"\nname = \"Retro\"\nslug = \"vintage\"\nposition = 95\n",
    );
    std::fs::write(base.join("categories.toml"), &categories).expect("write");
    let (status, body) = base_call(&server, "check", &pa).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let report = &body["base"];
    assert_ne!(report["from_version"], report["to_version"], "{body}");
    assert_eq!(report["applied"], false);
    let acme = &report["tenants"]["acme"];
    assert!(
        acme["failures"].as_array().is_some_and(|f| f
            .iter()
            .any(|f| f.as_str().unwrap_or("").contains("categories"))),
        "acme's plugin fails on the new base: {body}"
    );
    let globex = &report["tenants"]["globex"];
    assert_eq!(
        globex["changed"],
        serde_json::json!(["categories"]),
        "{body}"
    );
    assert_eq!(globex["failures"], serde_json::json!([]), "{body}");
    assert_eq!(
        globex["diff"]["categories"]["added"][0], "bags-retro",
        "{body}"
    );
    // A check changes nothing served.
    assert!(
        !category_ids(&server, "globex")
            .await
            .contains(&"bags-retro".to_owned())
    );
    // The same report from the command line, against the database.
    let candidate = base.display().to_string();
    let url = server.db.url.clone();
    let out = server
        .veneer(
            &[
                "base",
                "check",
                "--base-config",
                &candidate,
                "--against",
                &url,
            ],
            &[],
        )
        .await;
    let text = &out.stdout;
    assert_eq!(out.code, Some(1), "acme's plugin would fail: {text}");
    assert!(text.contains("3 tenants checked"), "{text}");
    assert!(text.contains("  acme: changes categories"), "{text}");
    assert!(
        text.contains("    would fail: commission categories: invalid_output"),
        "{text}"
    );
    assert!(text.contains("  globex: changes categories"), "{text}");

    // Reload: swapped in, every tenant served from it; acme's failing step
    // passes the base on.
    let (status, body) = base_call(&server, "reload", &pa).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["base"]["applied"], true, "{body}");
    let new_version = body["base"]["to_version"].clone();
    assert!(
        category_ids(&server, "globex")
            .await
            .contains(&"bags-retro".to_owned())
    );
    let of_acme = category_ids(&server, "acme").await;
    assert!(of_acme.contains(&"bags-retro".to_owned()), "{of_acme:?}");
    assert!(!of_acme.contains(&"bags-vintage".to_owned()), "{of_acme:?}");
    let (status, health) = server.get("", "/healthz", &pa).await;
    assert_eq!(status, StatusCode::OK, "{health}");

    // A base that does not load: refused, the served one stays.
    std::fs::write(base.join("categories.toml"), "[[category]]\nid = 7\n").expect("write");
    let (status, body) = base_call(&server, "reload", &pa).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["error"]["code"], "invalid_base", "{body}");
    assert!(
        category_ids(&server, "globex")
            .await
            .contains(&"bags-retro".to_owned())
    );
    let (_, body) = base_call(&server, "check", &pa).await;
    assert_eq!(body["error"]["code"], "invalid_base", "{body}");
    let _ = new_version;

    // A server on the built-in base has nothing to reload.
    let builtin = Server::in_process(Db::Sqlite).await;
    let (status, body) = base_call(&builtin, "reload", &pa).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("--base-config"),
        "{body}"
    );
}
both_backends!(the_base_configuration_reloads_live_with_a_report, reload);
