//! Record and replay over HTTP, on both backends: a tenant turns recording
//! on within the platform's bounds; its live quotes are recorded with every
//! email address, name and street redacted before storage (the stored rows
//! and the export are searched for them); the export, replayed by
//! `veneer plugin replay` through the same release, reproduces every
//! recorded answer exactly, and a changed release shows its differences.

use std::process::Command;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use veneer_plugin_artifacts as built_plugins;

use super::harness::{Db, Server, admin, member};
use crate::util::read;
use veneer::both_backends;

const CALLS: usize = 40;

fn personal(i: usize) -> [String; 4] {
    [
        format!("buyer{i}@example.com"),
        format!("Annabel Quixote{i}"),
        format!("{i} Wisteria Lane"),
        format!("LC-{i}-7731"),
    ]
}

fn sale(i: usize) -> Value {
    let [email, name, street, card] = personal(i);
    json!({
        "order_id": format!("o-{i}"), "sku": format!("SKU-{i}"), "category_id": "bags",
        "unit_price": 3_000 + (i as u64 * 977) % 30_000, "quantity": 1,
        "currency": "EUR", "seller_id": format!("s{}", i % 4),
        "attributes": [
            { "key": "customer_email", "value": email },
            { "key": "shipping_name", "value": name },
            { "key": "street", "value": street },
            { "key": "loyalty_card", "value": card },
            { "key": "color", "value": "red" },
        ],
    })
}

async fn export(server: &Server) -> Vec<Value> {
    let response = server
        .request(Method::GET, "rec", "/v1/records?limit=10000")
        .bearer_auth(admin("rec"))
        .send()
        .await
        .expect("answered");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()["content-type"],
        "application/x-ndjson",
        "JSONL"
    );
    let text = response.text().await.expect("body");
    text.lines()
        .map(|line| serde_json::from_str(line).expect("each line is JSON"))
        .collect()
}

async fn records(db: Db) {
    let server = Server::in_process_with(db, |config| config.record_max_rate = 1.0).await;
    let token = admin("rec");
    server.create_busy_tenant("rec").await;
    let settings = json!({ "commission": [{ "when": { "seller_id": "s1" },
        "patch": [{ "op": "replace", "path": "/rate_bps", "value": 2000 }] }] });
    server
        .install_as(
            "rec",
            &token,
            "fees",
            read(built_plugins::DECLARATIVE_OVERRIDES),
            settings.clone(),
        )
        .await;

    // Bounds: over the platform's rate or retention, or by a member.
    for body in [
        json!({ "recording": { "rate": 1.5, "retention_days": 7 } }),
        json!({ "recording": { "rate": 0.5, "retention_days": 0 } }),
        json!({ "recording": { "rate": 0.5, "retention_days": 31 } }),
        json!({ "recording": { "rate": 0.5 } }),
    ] {
        let (status, answer) = server
            .call(
                Method::PUT,
                "rec",
                "/v1/rollout",
                Some(&token),
                Some(body.clone()),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {answer}");
        assert_eq!(answer["error"]["code"], "invalid_rollout", "{answer}");
    }
    let on = json!({ "recording": { "rate": 1.0, "retention_days": 7,
                                     "personal_attributes": ["loyalty_card"] } });
    let (status, _) = server
        .call(
            Method::PUT,
            "rec",
            "/v1/rollout",
            Some(&member("rec")),
            Some(on.clone()),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, body) = server
        .call(Method::PUT, "rec", "/v1/rollout", Some(&token), Some(on))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // Live quotes, each waited for until recorded.
    let mut served = Vec::new();
    for i in 0..CALLS {
        let quote = server.quote("rec", &token, sale(i)).await;
        served.push(quote["decision"].clone());
        let want = i + 1;
        server
            .eventually(10, async |server| {
                (export(server).await.len() >= want).then_some(())
            })
            .await
            .unwrap_or_else(|| panic!("call {want} recorded"));
    }
    let lines = export(&server).await;
    assert_eq!(lines.len(), CALLS);
    for (line, decision) in lines.iter().zip(&served) {
        assert_eq!(line["hook"], "commission", "{line}");
        assert_eq!(&line["output"], decision, "the served answer is recorded");
        assert_eq!(line["outcome"], "ok", "{line}");
        assert_eq!(line["chain"][0]["installation"], "fees", "{line}");
        let attributes = line["input"]["sale"]["attributes"]
            .as_array()
            .expect("attributes");
        assert_eq!(attributes.len(), 5, "{line}");
        assert_eq!(
            attributes[4],
            json!({ "key": "color", "value": "red" }),
            "kept"
        );
    }

    // No personal value anywhere: the export, and the stored rows.
    let exported: String = lines.iter().map(Value::to_string).collect();
    let stored = server.stored_text("hook_records").await;
    assert!(stored.contains("[redacted]"), "the rows were read");
    for i in 0..CALLS {
        for value in personal(i) {
            assert!(!exported.contains(&value), "`{value}` exported");
            assert!(!stored.contains(&value), "`{value}` stored");
        }
    }

    // Replayed through the same plugin and settings: every answer the same.
    let dir = tempfile::tempdir().expect("tempdir");
    let records_file = dir.path().join("records.jsonl");
    std::fs::write(
        &records_file,
        lines.iter().map(|l| format!("{l}\n")).collect::<String>(),
    )
    .expect("write records");
    let write = |name: &str, value: &Value| {
        let path = dir.path().join(name);
        std::fs::write(&path, value.to_string()).expect("write settings");
        path
    };
    let same_settings = write("same.json", &settings);
    let replay = |settings: &std::path::Path| {
        let output = Command::new(env!("CARGO_BIN_EXE_veneer"))
            .args([
                "plugin",
                "replay",
                built_plugins::DECLARATIVE_OVERRIDES,
                "--records",
            ])
            .arg(&records_file)
            .arg("--settings")
            .arg(settings)
            .arg("--json")
            .env_remove("RUST_LOG")
            .output()
            .expect("veneer runs");
        let report: Value = serde_json::from_slice(&output.stdout).unwrap_or_else(|err| {
            panic!(
                "{err}: {} {}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            )
        });
        (output.status.code(), report)
    };
    let (code, report) = replay(&same_settings);
    assert_eq!(code, Some(0), "{report}");
    assert_eq!(report["replayed"], CALLS, "{report}");
    assert_eq!(report["same"], CALLS, "{report}");
    assert_eq!(report["differing"], 0, "{report}");
    assert_eq!(report["failed"], 0, "{report}");
    assert!(report["fuel"]["max"].as_u64() > Some(0), "{report}");

    // A new version of the settings: s2's lines differ, and only those.
    let changed = write(
        "changed.json",
        &json!({ "commission": [{ "when": { "seller_id": "s2" },
            "patch": [{ "op": "replace", "path": "/rate_bps", "value": 2000 }] }] }),
    );
    let (code, report) = replay(&changed);
    assert_eq!(code, Some(0), "{report}");
    let differences = report["differences"].as_array().expect("differences");
    assert_eq!(
        differences.len(),
        CALLS / 2,
        "s1's and s2's lines: {report}"
    );
    for d in differences {
        let seller = d["sale"]["seller_id"].as_str().unwrap();
        assert!(seller == "s1" || seller == "s2", "{d}");
    }

    // Recording off: nothing more is recorded.
    let (status, _) = server
        .call(
            Method::PUT,
            "rec",
            "/v1/rollout",
            Some(&token),
            Some(json!({})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    server.quote("rec", &token, sale(999)).await;
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert_eq!(export(&server).await.len(), CALLS);
    // Bad paging.
    let (status, body) = server
        .call(
            Method::GET,
            "rec",
            "/v1/records?limit=0",
            Some(&token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
}
both_backends!(recorded_calls_are_redacted_and_replay_exactly, records);

/// The commission blast radius of a draft over 1,000 recorded sales (seeded
/// in the tenant's records as recording would store them) equals what the
/// test computes itself: each sale quoted live, and quoted by a tenant with
/// the draft's settings live.
async fn blast_radius(db: Db) {
    let server = Server::in_process(db).await;
    for tenant in ["rec", "recdraft"] {
        server.create_busy_tenant(tenant).await;
    }
    let live = json!({ "commission": [{ "when": { "seller_id": "s1" },
        "patch": [{ "op": "replace", "path": "/rate_bps", "value": 2000 }] }] });
    let draft_settings = json!({ "commission": [
        { "when": { "seller_id": "s1" }, "patch": [{ "op": "replace", "path": "/rate_bps", "value": 2000 }] },
        { "when": { "category_id": "sneakers" }, "patch": [{ "op": "replace", "path": "/rate_bps", "value": 500 }] },
        { "when": { "min_gross": 30_000 }, "patch": [{ "op": "replace", "path": "/rate_bps", "value": 1900 }] }
    ] });
    let sha = server
        .install_as(
            "rec",
            &admin("rec"),
            "fees",
            read(built_plugins::DECLARATIVE_OVERRIDES),
            live,
        )
        .await;
    server
        .install_as(
            "recdraft",
            &admin("recdraft"),
            "fees",
            read(built_plugins::DECLARATIVE_OVERRIDES),
            draft_settings.clone(),
        )
        .await;
    let draft = server
        .create_release("rec", &admin("rec"), "fees", &sha, draft_settings)
        .await;

    // 1,000 recorded sales, and one older than the window.
    let storage = veneer::storage::Storage::connect(&server.db.url, &Default::default())
        .await
        .expect("storage");
    let db = storage.tenant(&veneer::tenancy::TenantId::new("rec").unwrap());
    let categories = ["bags", "sneakers", "women-dresses", "watches"];
    let sales: Vec<Value> = (0..1_000usize)
        .map(|i| {
            json!({
                "order_id": format!("o-{i}"), "sku": format!("SKU-{i}"),
                "category_id": categories[i % categories.len()],
                "unit_price": 1_500 + (i as u64 * 7_919) % 60_000, "quantity": 1 + (i % 2) as u32,
                "currency": "EUR", "seller_id": format!("s{}", i % 3), "attributes": [],
            })
        })
        .collect();
    let expires = i64::MAX / 2;
    for sale in &sales {
        let input = json!({ "sale": sale }).to_string();
        db.record_hook_call(&veneer::storage::NewHookRecord {
            hook: "commission",
            input: &input,
            output: "{}",
            outcome: "ok",
            chain: "[]",
            fuel: 0,
            expires_at: expires,
        })
        .await
        .expect("recorded");
    }

    let (mut lines, mut affected, mut before, mut after) = (0u64, 0u64, 0u64, 0u64);
    let mut per_category: std::collections::BTreeMap<String, (u64, u64, u64)> = Default::default();
    for sale in &sales {
        let old = server.quote("rec", &admin("rec"), sale.clone()).await["decision"]["fee"]
            .as_u64()
            .unwrap();
        let new = server
            .quote("recdraft", &admin("recdraft"), sale.clone())
            .await["decision"]["fee"]
            .as_u64()
            .unwrap();
        lines += 1;
        before += old;
        after += new;
        let category = per_category
            .entry(sale["category_id"].as_str().unwrap().to_owned())
            .or_default();
        category.0 += old;
        category.1 += new;
        if old != new {
            affected += 1;
            category.2 += 1;
        }
    }
    assert!(
        affected > 100 && affected < 1_000,
        "a partial change: {affected}"
    );

    let (status, body) = server
        .get(
            "rec",
            &format!("/v1/installations/fees/releases/{draft}/diff"),
            &member("rec"),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let impact = &body["diff"]["commission"];
    assert_eq!(impact["days"], 30, "{impact}");
    assert_eq!(impact["sales"], 1_000, "{impact}");
    assert_eq!(impact["truncated"], false, "{impact}");
    let radius = &impact["radius"];
    assert_eq!(radius["lines"], lines, "{radius}");
    assert_eq!(radius["affected"], affected, "{radius}");
    assert_eq!(radius["total_before"], before, "{radius}");
    assert_eq!(radius["total_after"], after, "{radius}");
    for (category, (old, new, changed)) in &per_category {
        let got = &radius["per_category"][category];
        assert_eq!(got["total_before"], *old, "{category}: {got}");
        assert_eq!(got["total_after"], *new, "{category}: {got}");
        assert_eq!(got["affected"], *changed, "{category}: {got}");
    }
    let up = &radius["largest_increase"];
    assert!(up["after"].as_u64() > up["before"].as_u64(), "{radius}");

    // Bad window.
    let (status, body) = server
        .get(
            "rec",
            &format!("/v1/installations/fees/releases/{draft}/diff?days=0"),
            &member("rec"),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
}
both_backends!(blast_radius_over_recorded_sales, blast_radius);
