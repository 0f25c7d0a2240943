//! The platform's output policies over HTTP, on both backends: a result that
//! breaks one is not served (the previous step's output is), its run says
//! `policy_violation` and why, for one tenant or for every tenant.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use veneer_plugin_artifacts as built_plugins;

use super::harness::{Db, Server, admin, member, platform_admin, sale};
use crate::util::read;
use veneer::both_backends;

async fn put(server: &Server, path: &str, body: Value) -> (StatusCode, Value) {
    server
        .call(Method::PUT, "", path, Some(&platform_admin()), Some(body))
        .await
}

async fn policies(db: Db) {
    let server = Server::in_process(db).await;
    let token = admin("acme");
    let luxury_alone = server.quote("acme", &token, sale("bags", 250_000)).await;
    // The base's categories, from a tenant without plugins: a leaf to remove.
    server.create_tenant("umbrella").await;
    let (_, base) = server
        .get("umbrella", "/v1/config", &admin("umbrella"))
        .await;
    let categories = base["categories"].as_array().expect("categories");
    let leaf = categories
        .iter()
        .position(|c| !categories.iter().any(|d| d["parent"] == c["id"]))
        .expect("a leaf category");
    let leaf_id = categories[leaf]["id"].clone();

    // Patches before acme's commission logic removing a base category, and
    // after it a 90 % commission: two installations of the same plugin.
    server
        .install_as(
            "acme",
            &token,
            "trim",
            read(built_plugins::DECLARATIVE_OVERRIDES),
            json!({ "categories": [{"op": "remove", "path": format!("/{leaf}")}] }),
        )
        .await;
    server
        .install_as(
            "acme",
            &token,
            "patches",
            read(built_plugins::DECLARATIVE_OVERRIDES),
            json!({
                "commission": [{"when": {}, "patch": [{"op": "replace", "path": "/rate_bps", "value": 9000}]}],
            }),
        )
        .await;
    let (status, body) = server
        .call(
            Method::PUT,
            "acme",
            "/v1/installation-order",
            Some(&token),
            Some(json!({ "order": ["trim", "commission", "patches"] })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let greedy = server.quote("acme", &token, sale("bags", 250_000)).await;
    assert_eq!(
        greedy["decision"]["rate_bps"], 9000,
        "no policy yet: {greedy}"
    );
    let (_, config) = server.get("acme", "/v1/config", &token).await;
    assert!(
        !config["categories"]
            .as_array()
            .expect("categories")
            .iter()
            .any(|c| c["id"] == leaf_id),
        "no policy yet: the leaf is gone"
    );

    // A 0-30 % commission policy for acme: the previous step's answer is served.
    let (status, body) = put(
        &server,
        "/v1/admin/tenants/acme/policy",
        json!({ "commission": { "min_rate_bps": 0, "max_rate_bps": 3000 } }),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["scope"], "acme");
    let held = server.quote("acme", &token, sale("bags", 250_000)).await;
    assert_eq!(held["decision"], luxury_alone["decision"], "{held}");
    assert_eq!(held["source"], "plugin");
    assert_eq!(held["outcome"], "policy_violation", "{held}");
    let step = held["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .find(|s| s["installation"] == "patches")
        .expect("the patches step");
    assert_eq!(step["installation"], "patches");
    assert_eq!(step["outcome"], "policy_violation");
    assert!(
        step["message"]
            .as_str()
            .is_some_and(|m| m.contains("above the platform's maximum of 3000")),
        "{held}"
    );
    // Globex has no such policy.
    let (_, globex) = server.get("globex", "/v1/policy", &member("globex")).await;
    assert_eq!(globex["policies"], json!([]), "{globex}");

    // A policy for every tenant: base categories stay.
    let (status, body) = put(
        &server,
        "/v1/admin/policies",
        json!({ "categories": { "keep_base": true } }),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, config) = server.get("acme", "/v1/config", &token).await;
    assert_eq!(status, StatusCode::OK, "{config}");
    assert!(
        config["categories"]
            .as_array()
            .expect("categories")
            .iter()
            .any(|c| c["id"] == leaf_id),
        "the base category stays"
    );
    let fallback = config["fallbacks"]
        .as_array()
        .expect("fallbacks")
        .iter()
        .find(|f| f["section"] == "categories")
        .cloned()
        .expect("the categories step fell back");
    assert_eq!(fallback["outcome"], "policy_violation", "{fallback}");
    assert_eq!(fallback["installation"], "trim");
    let (_, applying) = server.get("acme", "/v1/policy", &member("acme")).await;
    assert_eq!(
        applying["policies"].as_array().map(Vec::len),
        Some(2),
        "{applying}"
    );
    let (_, globex) = server.get("globex", "/v1/policy", &member("globex")).await;
    assert_eq!(
        globex["policies"].as_array().map(Vec::len),
        Some(1),
        "{globex}"
    );

    // The runs and the audit log say so.
    let found = server
        .eventually(10, async |s| {
            let (_, runs) = s.get("acme", "/v1/runs", &token).await;
            runs["runs"]
                .as_array()?
                .iter()
                .any(|r| r["outcome"] == "policy_violation" && r["installation"] == "patches")
                .then_some(())
        })
        .await;
    assert!(found.is_some(), "a policy_violation run is recorded");
    let (_, audit) = server.get("acme", "/v1/audit", &token).await;
    assert!(audit.to_string().contains("policy.set"), "{audit}");

    // Removing the tenant's policy serves the greedy answer again.
    let (status, _) = server
        .call(
            Method::DELETE,
            "",
            "/v1/admin/tenants/acme/policy",
            Some(&platform_admin()),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let again = server.quote("acme", &token, sale("bags", 250_000)).await;
    assert_eq!(again["decision"]["rate_bps"], 9000, "{again}");

    // Bad policies are refused and say what to fix; tenants cannot set them.
    for (body, needle) in [
        (
            json!({ "commission": { "min_rate_bps": 5000, "max_rate_bps": 10 } }),
            "min_rate_bps",
        ),
        (json!({ "comission": {} }), "comission"),
        (
            json!({ "emails": { "must_contain": [""] } }),
            "must_contain",
        ),
    ] {
        let (status, answer) = put(&server, "/v1/admin/policies", body).await;
        assert_eq!(
            (status, answer["error"]["code"].as_str()),
            (StatusCode::BAD_REQUEST, Some("invalid_policy")),
            "{answer}"
        );
        assert!(answer.to_string().contains(needle), "{answer}");
    }
    let (status, _) = server
        .call(
            Method::PUT,
            "",
            "/v1/admin/tenants/acme/policy",
            Some(&admin("acme")),
            Some(json!({})),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = put(&server, "/v1/admin/tenants/ghost/policy", json!({})).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}
both_backends!(output_policies_hold_the_previous_answer, policies);
