//! Shadow runs and the activation gate over HTTP, on both backends: a draft
//! that raises fees for one order line in ten is run beside the live release
//! on live quotes; the report counts the differing tenth and the fee delta
//! that activating it then really brings; the gate refuses it until it has
//! enough clean runs, and only a platform admin with a reason forces past it
//! (audited); a looping draft in shadow fails only in its report, never in
//! the live answers, which are the same with and without shadowing.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use veneer_plugin_artifacts as built_plugins;

use super::harness::{Db, Server, admin, member, platform_admin};
use crate::util::read;
use veneer::both_backends;

const SALES: usize = 200;
const BATCH: usize = 10;

fn sale(i: usize) -> Value {
    json!({
        "order_id": format!("o-{i}"), "sku": format!("SKU-{i}"), "category_id": "bags",
        "unit_price": 2_000 + (i as u64 * 1_733) % 38_000, "quantity": 1 + (i % 3) as u32,
        "currency": "EUR", "seller_id": format!("s{}", i % 10),
    })
}

/// What a quote answers, without what varies from call to call (fuel of a
/// fresh or a warm instance).
fn answer(quote: &Value) -> String {
    json!({ "decision": quote["decision"], "outcome": quote["outcome"], "source": quote["source"] })
        .to_string()
}

async fn report(server: &Server, release: i64) -> Value {
    let (status, report) = server
        .get(
            "shop",
            &format!("/v1/installations/fees/releases/{release}/shadow"),
            &member("shop"),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{report}");
    report
}

/// Quotes `sales` in batches, waiting after each for its shadow runs to be
/// recorded (so none finds every shadow slot busy and goes unshadowed).
async fn quote_all(
    server: &Server,
    release: i64,
    sales: &[Value],
    runs_before: u64,
) -> Vec<String> {
    let mut answers = Vec::new();
    for (n, batch) in sales.chunks(BATCH).enumerate() {
        for sale in batch {
            answers.push(answer(
                &server.quote("shop", &admin("shop"), sale.clone()).await,
            ));
        }
        let want = runs_before + ((n + 1) * BATCH).min(sales.len()) as u64;
        server
            .eventually(20, async |server| {
                (report(server, release).await["calls"].as_u64() >= Some(want)).then_some(())
            })
            .await
            .unwrap_or_else(|| panic!("{want} shadow runs recorded"));
    }
    answers
}

async fn shadow_runs(db: Db) {
    // Room for every sampled call: the test waits for each batch's runs.
    let server = Server::in_process_with(db, |config| {
        config.shadow_concurrency = 16;
        config.shadow_max_per_sec = 1_000_000;
    })
    .await;
    let token = admin("shop");
    // Room for every quote and report poll of the test in its request rate.
    server.create_busy_tenant("shop").await;
    let sha = server
        .install_as(
            "shop",
            &token,
            "fees",
            read(built_plugins::DECLARATIVE_OVERRIDES),
            json!({}),
        )
        .await;
    let sales: Vec<Value> = (0..SALES).map(sale).collect();
    let mut without = Vec::new();
    for sale in &sales {
        without.push(answer(&server.quote("shop", &token, sale.clone()).await));
    }

    // The draft: seller s3's lines at 25 % instead of the base's 15 %.
    let draft = server
        .create_release(
            "shop",
            &token,
            "fees",
            &sha,
            json!({ "commission": [{ "when": { "seller_id": "s3" },
                                      "patch": [{ "op": "replace", "path": "/rate_bps", "value": 2500 }] }] }),
        )
        .await;
    // Bad input: a rate that is no share, a release of no installation's.
    for (body, status) in [
        (
            json!({ "release": draft, "rate": 1.5 }),
            StatusCode::BAD_REQUEST,
        ),
        (
            json!({ "release": 999_999, "rate": 0.5 }),
            StatusCode::NOT_FOUND,
        ),
        (json!({ "release": draft }), StatusCode::BAD_REQUEST),
    ] {
        let (got, refused) = server
            .call(
                Method::PUT,
                "shop",
                "/v1/installations/fees/shadow",
                Some(&token),
                Some(body.clone()),
            )
            .await;
        assert_eq!(got, status, "{body}: {refused}");
    }
    // Members read the report; only admins shadow.
    let (status, _) = server
        .call(
            Method::PUT,
            "shop",
            "/v1/installations/fees/shadow",
            Some(&member("shop")),
            Some(json!({ "release": draft, "rate": 1.0 })),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, started) = server
        .call(
            Method::PUT,
            "shop",
            "/v1/installations/fees/shadow",
            Some(&token),
            Some(json!({ "release": draft, "rate": 1.0 })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{started}");
    assert_eq!(started["shadow"]["release_id"], draft, "{started}");

    // Live answers while shadowing are the answers without it.
    let with = quote_all(&server, draft, &sales, 0).await;
    assert_eq!(with, without, "shadowing changed a live answer");

    let report1 = report(&server, draft).await;
    assert_eq!(report1["calls"], SALES, "{report1}");
    assert_eq!(report1["ok"], SALES, "{report1}");
    assert_eq!(report1["failures"], json!({}), "{report1}");
    let differing = report1["differing"].as_u64().expect("differing");
    assert_eq!(differing, (SALES / 10) as u64, "one line in ten: {report1}");
    let share = report1["differing_share"].as_f64().unwrap();
    assert!((share - 0.1).abs() < 1e-9, "{report1}");
    let fees = &report1["fees"]["EUR"];
    assert_eq!(fees["calls"], SALES, "{report1}");
    assert_eq!(
        fees["distribution"]["unchanged"],
        SALES - SALES / 10,
        "{report1}"
    );
    assert_eq!(
        fees["distribution"]["up_over_10pct"],
        SALES / 10,
        "{report1}"
    );
    let samples = report1["samples"].as_array().expect("samples");
    assert!(!samples.is_empty() && samples.len() <= 10, "{report1}");
    for sample in samples {
        assert_eq!(sample["sample"]["sale"]["seller_id"], "s3", "{sample}");
        assert!(
            sample["sample"]["shadow"]["fee"].as_u64() > sample["sample"]["live"]["fee"].as_u64(),
            "{sample}"
        );
    }
    assert!(report1["usage"]["fuel"][0].as_u64() > Some(0), "{report1}");

    // The gate: the tenant asks for 500 clean runs; it has 200.
    let (status, body) = server
        .call(
            Method::PUT,
            "shop",
            "/v1/rollout",
            Some(&token),
            Some(json!({ "shadow_gate": 20_000 })),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["code"], "invalid_rollout", "{body}");
    let (status, body) = server
        .call(
            Method::PUT,
            "shop",
            "/v1/rollout",
            Some(&token),
            Some(json!({ "shadow_gate": 500 })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["effective"]["shadow_gate"], 500, "{body}");
    let gate = report(&server, draft).await["gate"].clone();
    assert_eq!(gate["applies"], true, "{gate}");
    assert_eq!(gate["passes"], false, "{gate}");
    let activate = format!("/v1/installations/fees/releases/{draft}/activate");
    let (status, body) = server
        .call(Method::POST, "shop", &activate, Some(&token), None)
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"]["code"], "shadow_gate", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("200 clean shadow runs"),
        "{body}"
    );
    // Forcing: not by the tenant's admin, not without a reason.
    let (status, refused) = server
        .call(
            Method::POST,
            "shop",
            &activate,
            Some(&token),
            Some(json!({ "force": true, "reason": "trust me" })),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{refused}");
    assert_eq!(refused["error"]["code"], "force_not_allowed", "{refused}");
    let force = format!("/v1/admin/tenants/shop/installations/fees/releases/{draft}/activate");
    for body in [json!({}), json!({ "reason": "  " })] {
        let (status, refused) = server
            .call(
                Method::POST,
                "",
                &force,
                Some(&platform_admin()),
                Some(body.clone()),
            )
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{body}: {refused}");
        assert_eq!(refused["error"]["code"], "force_not_allowed", "{refused}");
    }
    let (status, refused) = server
        .call(
            Method::POST,
            "",
            &force,
            Some(&token),
            Some(json!({ "reason": "x" })),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "a tenant admin on the admin route: {refused}"
    );
    let (status, body) = server
        .call(
            Method::POST,
            "",
            &force,
            Some(&platform_admin()),
            Some(json!({ "reason": "finance approved the s3 increase" })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, audit) = server.get("shop", "/v1/audit", &token).await;
    let forced = audit["audit"]
        .as_array()
        .expect("audit entries")
        .iter()
        .find(|e| e["action"] == "release.activate")
        .expect("the activation is audited")
        .clone();
    assert!(
        forced["after"]["forced"]
            .as_str()
            .is_some_and(|f| f.contains("finance approved the s3 increase")
                && f.contains("200 clean shadow runs")),
        "{forced}"
    );
    assert_eq!(forced["actor"], "user_platform", "{forced}");

    // What activating really did to each fee equals what shadow reported.
    let mut delta: i64 = 0;
    let mut changed = 0;
    for (sale, before) in sales.iter().zip(&without) {
        let now: Value = server.quote("shop", &token, sale.clone()).await;
        let before: Value = serde_json::from_str(before).unwrap();
        let (old, new) = (
            before["decision"]["fee"].as_i64().unwrap(),
            now["decision"]["fee"].as_i64().unwrap(),
        );
        if old != new {
            changed += 1;
            assert_eq!(sale["seller_id"], "s3", "{sale}");
        }
        delta += new - old;
    }
    assert_eq!(changed, differing);
    assert!(delta > 0);
    assert_eq!(fees["delta_total"], delta, "{report1}");
    assert_eq!(
        fees["shadow_total"].as_i64().unwrap() - fees["live_total"].as_i64().unwrap(),
        delta
    );
    // Live now: it is no longer in shadow.
    assert_eq!(report(&server, draft).await["shadow"], Value::Null);

    // A looping draft in shadow fails in its report only.
    let (status, uploaded) = server
        .upload("shop", &token, read(built_plugins::HOSTILE))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{uploaded}");
    let live_now: Vec<String> = {
        let mut answers = Vec::new();
        for sale in &sales[..BATCH] {
            answers.push(answer(&server.quote("shop", &token, sale.clone()).await));
        }
        answers
    };
    let looping = server
        .create_release(
            "shop",
            &token,
            "fees",
            uploaded["plugin"]["sha256"].as_str().unwrap(),
            json!({ "mode": "spin" }),
        )
        .await;
    let (status, body) = server
        .call(
            Method::PUT,
            "shop",
            "/v1/installations/fees/shadow",
            Some(&token),
            Some(json!({ "release": looping, "rate": 1.0 })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let during = quote_all(&server, looping, &sales[..BATCH], 0).await;
    assert_eq!(during, live_now, "a looping shadow changed a live answer");
    let looped = report(&server, looping).await;
    assert!(looped["calls"].as_u64() >= Some(BATCH as u64), "{looped}");
    assert_eq!(looped["ok"], 0, "{looped}");
    let failures = looped["failures"].as_object().expect("failures");
    assert!(
        failures
            .keys()
            .all(|k| k == "out_of_fuel" || k == "deadline"),
        "{looped}"
    );
    assert_eq!(looped["gate"]["passes"], false, "{looped}");
    assert!(
        looped["gate"]["reason"]
            .as_str()
            .unwrap()
            .contains("failed"),
        "{looped}"
    );
    // Stopping it; stopping twice says there is nothing to stop.
    let (status, _) = server
        .call(
            Method::DELETE,
            "shop",
            "/v1/installations/fees/shadow",
            Some(&token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = server
        .call(
            Method::DELETE,
            "shop",
            "/v1/installations/fees/shadow",
            Some(&token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
}
both_backends!(shadow_runs_report_and_gate, shadow_runs);
