//! Plugin lifecycle over HTTP: refused uploads, upload, activation, rollback, the
//! audit trail, settings with optimistic concurrency, and admin quotas biting.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use veneer_plugin_artifacts as built_plugins;

use super::harness::{Db, Server, admin, platform_admin, sale};
use crate::util::{fixture, read};
use veneer::both_backends;

async fn refused_uploads(db: Db) {
    let server = Server::in_process(db).await;
    let token = admin("acme");
    for (name, bytes, code) in [
        (
            "imports-filesystem.wat",
            fixture("imports-filesystem.wat"),
            "forbidden_import",
        ),
        (
            "imports-sockets.wat",
            fixture("imports-sockets.wat"),
            "forbidden_import",
        ),
        (
            "imports-http.wat",
            fixture("imports-http.wat"),
            "forbidden_import",
        ),
        ("core-module.wat", fixture("core-module.wat"), "core_module"),
        ("wrong-world.wat", fixture("wrong-world.wat"), "wrong_world"),
        ("garbage.bin", fixture("garbage.bin"), "not_wasm"),
        ("empty.wasm", fixture("empty.wasm"), "empty_file"),
    ] {
        let (status, body) = server.upload("acme", &token, bytes).await;
        assert!(status.is_client_error(), "{name}: {status} {body}");
        assert_eq!(body["error"]["code"], code, "{name}: {body}");
        assert!(
            body["error"]["message"].as_str().unwrap_or("").len() > 20,
            "{name}: the message explains: {body}"
        );
    }
    let (status, list) = server.get("acme", "/v1/plugins", &token).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert_eq!(
        list["plugins"].as_array().map(Vec::len),
        Some(1),
        "only the demo plugin is stored: {list}"
    );

    // Over the body cap: 413 with the JSON error shape.
    let (status, body) = server.upload("acme", &token, vec![0u8; 17 << 20]).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    assert_eq!(body["error"]["code"], "body_too_large");
}
both_backends!(hostile_uploads_are_refused_with_a_reason, refused_uploads);

fn category_ids(config: &Value) -> Vec<String> {
    config["categories"]
        .as_array()
        .expect("categories")
        .iter()
        .filter_map(|c| c["id"].as_str().map(str::to_owned))
        .collect()
}

async fn lifecycle(db: Db) {
    let server = Server::in_process(db).await;
    let token = admin("acme");
    let (status, before) = server.get("acme", "/v1/config", &token).await;
    assert_eq!(status, StatusCode::OK, "{before}");
    let demo_sha = before["releases"][0]["plugin"]
        .as_str()
        .expect("demo plugin live")
        .to_owned();
    assert_eq!(before["releases"][0]["installation"], "commission");
    assert!(
        category_ids(&before).contains(&"bags-vintage".to_owned()),
        "luxury categories served"
    );

    // Upload the declarative plugin, then a draft release of the demo's
    // installation with it: nothing served changes until it is activated.
    let (status, uploaded) = server
        .upload("acme", &token, read(built_plugins::DECLARATIVE_OVERRIDES))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{uploaded}");
    let sha = uploaded["plugin"]["sha256"]
        .as_str()
        .expect("sha")
        .to_owned();
    let draft = server
        .create_release(
            "acme",
            &token,
            "commission",
            &sha,
            json!({
                "categories": [{"op": "add", "path": "/-", "value": {"id": "acme-exclusive", "parent": null, "name": "Acme Exclusive", "slug": "exclusive", "position": 1, "attributes": []}}]
            }),
        )
        .await;
    let (status, staged) = server.get("acme", "/v1/config", &token).await;
    assert_eq!(status, StatusCode::OK, "{staged}");
    assert_eq!(staged, before, "a draft changes nothing served");
    server
        .activate_release("acme", &token, "commission", draft)
        .await;
    let (status, after) = server.get("acme", "/v1/config", &token).await;
    assert_eq!(status, StatusCode::OK, "{after}");
    assert_eq!(after["releases"][0]["plugin"].as_str(), Some(sha.as_str()));
    assert_eq!(after["releases"][0]["release"], draft);
    let ids = category_ids(&after);
    assert!(
        ids.contains(&"acme-exclusive".to_owned()) && !ids.contains(&"bags-vintage".to_owned()),
        "{ids:?}"
    );
    assert_ne!(after["version"], before["version"]);

    // Roll back: the luxury plugin's release again, code and settings.
    let (status, body) = server
        .call(
            Method::POST,
            "acme",
            "/v1/installations/commission/rollback",
            Some(&token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["event"]["action"], "rollback", "{body}");
    let (status, rolled) = server.get("acme", "/v1/config", &token).await;
    assert_eq!(status, StatusCode::OK, "{rolled}");
    assert_eq!(
        rolled["releases"][0]["plugin"].as_str(),
        Some(demo_sha.as_str())
    );
    assert_eq!(
        rolled, before,
        "the rollback serves exactly what was served"
    );

    // The installation's history names each change and who made it.
    let (status, detail) = server
        .get("acme", "/v1/installations/commission", &token)
        .await;
    assert_eq!(status, StatusCode::OK, "{detail}");
    let history: Vec<&str> = detail["history"]
        .as_array()
        .expect("history")
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    assert_eq!(history, ["rollback", "activate", "activate"], "{detail}");
    assert_eq!(detail["history"][0]["actor"], "user_acme");
    let states: Vec<&str> = detail["releases"]
        .as_array()
        .expect("releases")
        .iter()
        .filter_map(|r| r["state"].as_str())
        .collect();
    assert_eq!(states, ["previous", "live"], "{detail}");

    // Every step is in the audit log, with actor and hashes.
    let (status, audit) = server.get("acme", "/v1/audit", &token).await;
    assert_eq!(status, StatusCode::OK, "{audit}");
    let actions: Vec<&str> = audit["audit"]
        .as_array()
        .expect("rows")
        .iter()
        .filter_map(|r| r["action"].as_str())
        .collect();
    for action in [
        "plugin.upload",
        "release.create",
        "release.activate",
        "release.rollback",
    ] {
        assert!(
            actions.contains(&action),
            "{action} missing from {actions:?}"
        );
    }
    let row = audit["audit"]
        .as_array()
        .expect("rows")
        .iter()
        .find(|r| r["action"] == "release.activate")
        .expect("activation row");
    assert_eq!(row["plugin_sha256"].as_str(), Some(sha.as_str()));
    assert_eq!(row["actor"], "user_acme");
    assert!(
        row["before"].is_object() && row["after"].is_object(),
        "{row}"
    );

    // Admins read every tenant's audit rows; tenants only their own.
    let (status, all) = server
        .get("", "/v1/admin/audit?limit=500", &platform_admin())
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        all["audit"]
            .as_array()
            .expect("rows")
            .iter()
            .any(|r| r["tenant_id"] == "globex")
    );
    assert!(
        audit["audit"]
            .as_array()
            .expect("rows")
            .iter()
            .all(|r| r["tenant_id"] == "acme")
    );

    // A release whose settings do not fit the plugin's settings schema is
    // refused naming the setting; a live release cannot be deleted, a draft can.
    let (status, refused) = server
        .call(
            Method::POST,
            "acme",
            "/v1/installations/commission/releases",
            Some(&token),
            Some(json!({ "plugin": demo_sha, "settings": { "accent_color": "gold" } })),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{refused}");
    assert_eq!(
        refused["error"]["code"], "settings_schema_violation",
        "{refused}"
    );
    assert!(
        refused["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("accent_color")),
        "{refused}"
    );
    let live = detail["installation"]["active_release"]
        .as_i64()
        .expect("live");
    let (status, body) = server
        .call(
            Method::DELETE,
            "acme",
            &format!("/v1/installations/commission/releases/{live}"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    let spare = server
        .create_release("acme", &token, "commission", &demo_sha, json!({}))
        .await;
    let (status, body) = server
        .call(
            Method::DELETE,
            "acme",
            &format!("/v1/installations/commission/releases/{spare}"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
}
both_backends!(upload_activate_rollback_and_audit, lifecycle);

async fn quota_bites(db: Db) {
    let server = Server::in_process(db).await;
    let token = admin("acme");
    let (status, quote) = server
        .call(
            Method::POST,
            "acme",
            "/v1/commission/quote",
            Some(&token),
            Some(sale("bags", 200_000)),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{quote}");
    assert_eq!(quote["source"], "plugin", "{quote}");

    server.set_quota("acme", json!({ "fuel": 1000 })).await;
    let (status, quote) = server
        .call(
            Method::POST,
            "acme",
            "/v1/commission/quote",
            Some(&token),
            Some(sale("bags", 200_000)),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{quote}");
    assert_eq!(quote["source"], "base", "{quote}");
    assert_eq!(quote["outcome"], "out_of_fuel");

    // The run is recorded (asynchronously) with its outcome.
    let mut found = false;
    for _ in 0..50 {
        let (status, runs) = server.get("acme", "/v1/runs", &token).await;
        assert_eq!(status, StatusCode::OK, "{runs}");
        if runs["runs"].as_array().is_some_and(|r| {
            r.iter()
                .any(|run| run["outcome"] == "out_of_fuel" && run["hook"] == "commission")
        }) {
            found = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(found, "the out_of_fuel run is in /v1/runs");

    // Invalid quotas are refused with the field named.
    let (status, body) = server
        .call(
            Method::PUT,
            "",
            "/v1/admin/tenants/acme/quota",
            Some(&platform_admin()),
            Some(json!({ "memory_bytes": 99_999_999_999u64 })),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("memory_bytes"),
        "{body}"
    );
    let (status, _) = server
        .call(
            Method::PUT,
            "",
            "/v1/admin/tenants/acme/quota",
            Some(&platform_admin()),
            Some(json!({ "cpu": 1 })),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}
both_backends!(lowering_fuel_makes_quotes_fall_back, quota_bites);
