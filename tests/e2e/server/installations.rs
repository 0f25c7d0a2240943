//! Installations and releases over HTTP, on both backends: several plugins
//! compose in the tenant's order, drafts never change a live answer, rollback
//! restores exactly what was served, a runaway installation costs only its own
//! run and the chain's budget holds, and the platform's per-installation quota
//! applies at once and survives a rollback.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use veneer_plugin_artifacts as built_plugins;

use super::harness::{Db, Server, admin, member, platform_admin, sale};
use crate::util::read;
use veneer::both_backends;

const LUXURY: &str = r#"{"cap": 120000, "unauthenticated_surcharge_bps": 500, "tiers": [{"from": 0, "rate_bps": 2500}, {"from": 100000, "rate_bps": 1800}, {"from": 500000, "rate_bps": 1200}]}"#;

fn luxury(cap: u64) -> Value {
    let mut settings: Value = serde_json::from_str(LUXURY).expect("json");
    settings["cap"] = json!(cap);
    settings
}

/// Declarative patches: an `outlet` category and every commission at 9 %.
fn patches() -> Value {
    json!({
        "categories": [{"op": "add", "path": "/-", "value": {"id": "outlet", "parent": null, "name": "Outlet", "slug": "outlet", "position": 99, "attributes": []}}],
        "commission": [{"when": {}, "patch": [{"op": "replace", "path": "/rate_bps", "value": 900}]}],
    })
}

async fn quote_body(server: &Server, token: &str) -> Value {
    server.quote("acme", token, sale("bags", 250_000)).await
}

/// A quote's answer as bytes: everything but the fuel figures, which depend on
/// whether the call found a warm instance (the first call of an instance costs
/// more than the next), not on what was decided.
async fn answer(server: &Server, token: &str) -> String {
    let mut quote = quote_body(server, token).await;
    quote
        .as_object_mut()
        .expect("an object")
        .remove("fuel_used");
    for step in quote["steps"].as_array_mut().expect("steps") {
        step.as_object_mut().expect("a step").remove("fuel_used");
    }
    quote.to_string()
}

async fn order(server: &Server, token: &str, names: &[&str]) {
    let (status, body) = server
        .call(
            Method::PUT,
            "acme",
            "/v1/installation-order",
            Some(token),
            Some(json!({ "order": names })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let got: Vec<&str> = body["installations"]
        .as_array()
        .expect("installations")
        .iter()
        .filter_map(|i| i["name"].as_str())
        .collect();
    assert_eq!(got, names, "{body}");
}

async fn compose(db: Db) {
    let server = Server::in_process(db).await;
    let token = admin("acme");
    let alone = quote_body(&server, &token).await;
    assert_eq!(alone["steps"].as_array().map(Vec::len), Some(1), "{alone}");

    // Two more authors: the platform's email branding and no-code patches.
    server
        .install_as(
            "acme",
            &token,
            "brand-emails",
            read(built_plugins::EMAIL_REBRAND),
            json!({ "brand_name": "Acme", "primary_color": "#0a0a0a", "accent_color": "#c9a227" }),
        )
        .await;
    server
        .install_as(
            "acme",
            &token,
            "patches",
            read(built_plugins::DECLARATIVE_OVERRIDES),
            patches(),
        )
        .await;

    // Every installation applies where it has a hook: luxury's categories and
    // the outlet, the branded email, and commission through both in order.
    let (status, config) = server.get("acme", "/v1/config", &token).await;
    assert_eq!(status, StatusCode::OK, "{config}");
    let ids: Vec<&str> = config["categories"]
        .as_array()
        .expect("categories")
        .iter()
        .filter_map(|c| c["id"].as_str())
        .collect();
    assert!(
        ids.contains(&"bags-vintage") && ids.contains(&"outlet"),
        "{ids:?}"
    );
    let releases: Vec<&str> = config["releases"]
        .as_array()
        .expect("releases")
        .iter()
        .filter_map(|r| r["installation"].as_str())
        .collect();
    assert_eq!(releases, ["commission", "brand-emails", "patches"]);
    let (status, preview) = server
        .call(
            Method::POST,
            "acme",
            "/v1/email/preview",
            Some(&member("acme")),
            Some(json!({ "template": "order-confirmation" })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{preview}");
    assert_eq!(preview["source"], "plugin", "{preview}");
    assert!(
        preview["rendered"]["html"]
            .as_str()
            .is_some_and(|h| h.contains("veneer:email-rebrand")),
        "{preview}"
    );

    let luxury_then_patches = quote_body(&server, &token).await;
    let steps: Vec<&str> = luxury_then_patches["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .filter_map(|s| s["installation"].as_str())
        .collect();
    assert_eq!(steps, ["commission", "patches"], "{luxury_then_patches}");
    assert_eq!(luxury_then_patches["decision"]["rate_bps"], 900);
    assert_ne!(luxury_then_patches["decision"], alone["decision"]);

    // The order is the tenant's: patches first, then luxury decides.
    order(&server, &token, &["patches", "brand-emails", "commission"]).await;
    let patches_then_luxury = quote_body(&server, &token).await;
    assert_eq!(patches_then_luxury["decision"], alone["decision"]);
    assert_ne!(
        patches_then_luxury["decision"],
        luxury_then_patches["decision"]
    );
    // Deterministic: the same order, the same answer, every time.
    let first = answer(&server, &token).await;
    for _ in 0..3 {
        assert_eq!(answer(&server, &token).await, first);
    }
    order(&server, &token, &["commission", "brand-emails", "patches"]).await;
    assert_eq!(
        quote_body(&server, &token).await["decision"],
        luxury_then_patches["decision"]
    );

    // An order that is not every installation exactly once is refused.
    let (status, body) = server
        .call(
            Method::PUT,
            "acme",
            "/v1/installation-order",
            Some(&token),
            Some(json!({ "order": ["commission", "patches"] })),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("exactly once")),
        "{body}"
    );
}
both_backends!(installations_compose_in_the_tenants_order, compose);

async fn drafts(db: Db) {
    let server = Server::in_process(db).await;
    let token = admin("acme");
    let before = answer(&server, &token).await;
    let (_, config_before) = server.get("acme", "/v1/config", &token).await;
    let (status, installation) = server
        .get("acme", "/v1/installations/commission", &token)
        .await;
    assert_eq!(status, StatusCode::OK, "{installation}");
    let sha = installation["installation"]["live"]["plugin"]
        .as_str()
        .expect("live plugin")
        .to_owned();

    // Drafts with other settings, and with another plugin: nothing live moves.
    let cheaper = server
        .create_release("acme", &token, "commission", &sha, luxury(5_000))
        .await;
    let (status, uploaded) = server
        .upload("acme", &token, read(built_plugins::DECLARATIVE_OVERRIDES))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{uploaded}");
    let other = uploaded["plugin"]["sha256"]
        .as_str()
        .expect("sha")
        .to_owned();
    server
        .create_release("acme", &token, "commission", &other, patches())
        .await;
    // A refused draft leaves nothing behind either.
    let (status, refused) = server
        .call(
            Method::POST,
            "acme",
            "/v1/installations/commission/releases",
            Some(&token),
            Some(json!({ "plugin": sha, "settings": { "accent_color": "gold" } })),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{refused}");
    assert_eq!(answer(&server, &token).await, before);
    let (_, config_after) = server.get("acme", "/v1/config", &token).await;
    assert_eq!(config_after, config_before);

    // Activated: the new settings answer.
    server
        .activate_release("acme", &token, "commission", cheaper)
        .await;
    let after = quote_body(&server, &token).await;
    assert_eq!(after["decision"]["fee"], 5_000, "{after}");
    assert_ne!(answer(&server, &token).await, before);
}
both_backends!(a_draft_never_changes_a_live_answer, drafts);

async fn rollbacks(db: Db) {
    let server = Server::in_process(db).await;
    let token = admin("acme");
    let (_, installation) = server
        .get("acme", "/v1/installations/commission", &token)
        .await;
    let demo = installation["installation"]["active_release"]
        .as_i64()
        .expect("live");
    let sha = installation["installation"]["live"]["plugin"]
        .as_str()
        .expect("live plugin")
        .to_owned();
    let q0 = answer(&server, &token).await;

    // Release 2: other code and settings; release 3: the first code, other settings.
    let (_, uploaded) = server
        .upload("acme", &token, read(built_plugins::DECLARATIVE_OVERRIDES))
        .await;
    let other = uploaded["plugin"]["sha256"]
        .as_str()
        .expect("sha")
        .to_owned();
    let r2 = server
        .create_release("acme", &token, "commission", &other, patches())
        .await;
    server
        .activate_release("acme", &token, "commission", r2)
        .await;
    let q2 = answer(&server, &token).await;
    let r3 = server
        .create_release("acme", &token, "commission", &sha, luxury(7_000))
        .await;
    server
        .activate_release("acme", &token, "commission", r3)
        .await;
    let q3 = answer(&server, &token).await;
    assert!(q0 != q2 && q2 != q3 && q0 != q3, "{q0}\n{q2}\n{q3}");

    let rollback = async |to: Option<i64>| {
        let (status, body) = server
            .call(
                Method::POST,
                "acme",
                "/v1/installations/commission/rollback",
                Some(&token),
                to.map(|id| json!({ "to": id })),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["event"]["release_id"].as_i64().expect("release")
    };
    // Back to the previous release (code and settings together), byte for byte.
    assert_eq!(rollback(None).await, r2);
    assert_eq!(answer(&server, &token).await, q2);
    // Across the three: to the demo's release by id.
    assert_eq!(rollback(Some(demo)).await, demo);
    assert_eq!(answer(&server, &token).await, q0);
    assert_eq!(rollback(Some(r3)).await, r3);
    assert_eq!(answer(&server, &token).await, q3);
    // The default goes back to what was live before: the demo's.
    assert_eq!(rollback(None).await, demo);
    assert_eq!(answer(&server, &token).await, q0);

    // A draft was never live: a rollback to it is refused; a bad id too.
    let draft = server
        .create_release("acme", &token, "commission", &sha, luxury(1_000))
        .await;
    for (to, code, status) in [
        (json!({ "to": draft }), "conflict", StatusCode::CONFLICT),
        (json!({ "to": 999_999 }), "not_found", StatusCode::NOT_FOUND),
        (
            json!({ "to": "x" }),
            "invalid_json",
            StatusCode::BAD_REQUEST,
        ),
    ] {
        let (got, body) = server
            .call(
                Method::POST,
                "acme",
                "/v1/installations/commission/rollback",
                Some(&token),
                Some(to),
            )
            .await;
        assert_eq!(
            (got, body["error"]["code"].as_str()),
            (status, Some(code)),
            "{body}"
        );
    }
    assert_eq!(answer(&server, &token).await, q0);
}
both_backends!(rollback_restores_code_settings_and_quota_exactly, rollbacks);

async fn runaway(db: Db) {
    // A small request budget, so the chain's bound shows.
    let server = Server::start_with(db, |config| {
        config.chain_max_fuel = 30_000_000;
    })
    .await;
    let token = admin("acme");
    let alone = quote_body(&server, &token).await;

    // A hostile plugin that spins, first in the chain.
    server
        .install_as(
            "acme",
            &token,
            "runaway",
            read(built_plugins::HOSTILE),
            json!({ "mode": "spin" }),
        )
        .await;
    order(&server, &token, &["runaway", "commission"]).await;
    let quote = quote_body(&server, &token).await;
    let steps = quote["steps"].as_array().expect("steps");
    assert_eq!(steps.len(), 2, "{quote}");
    assert_eq!(steps[0]["installation"], "runaway");
    assert!(
        ["out_of_fuel", "deadline"].contains(&steps[0]["outcome"].as_str().unwrap_or("")),
        "{quote}"
    );
    assert_eq!(steps[1]["installation"], "commission");
    assert_eq!(
        steps[1]["outcome"], "ok",
        "the other installation still applies: {quote}"
    );
    assert_eq!(quote["decision"], alone["decision"], "{quote}");
    assert_eq!(quote["source"], "plugin");

    // Two spinning installations before luxury: the first spends its own
    // quota (20,000,000 fuel), the second is capped by what is left of the
    // request's 30,000,000, and luxury is skipped once nothing is left.
    server
        .install_as(
            "acme",
            &token,
            "runaway-2",
            read(built_plugins::HOSTILE),
            json!({ "mode": "spin" }),
        )
        .await;
    order(&server, &token, &["runaway", "runaway-2", "commission"]).await;
    let quote = quote_body(&server, &token).await;
    let steps = quote["steps"].as_array().expect("steps");
    assert_eq!(steps.len(), 3, "{quote}");
    let total: u64 = steps.iter().filter_map(|s| s["fuel_used"].as_u64()).sum();
    assert!(
        total <= 30_000_000 + 1_000_000,
        "the chain's bound holds: {total}"
    );
    assert!(
        steps[2]["message"]
            .as_str()
            .is_some_and(|m| m.contains("budget")),
        "the last step is skipped once the budget is spent: {quote}"
    );
    assert_eq!(quote["source"], "base", "{quote}");

    // The runs name their installation; only the runaway's breaker trips.
    for _ in 0..4 {
        quote_body(&server, &token).await;
    }
    let recorded = server
        .eventually(10, async |s| {
            let (status, runs) = s.get("acme", "/v1/runs", &token).await;
            assert_eq!(status, StatusCode::OK, "{runs}");
            runs["runs"]
                .as_array()
                .expect("runs")
                .iter()
                .any(|r| r["installation"] == "runaway" && r["release_id"].is_i64())
                .then_some(())
        })
        .await;
    assert!(
        recorded.is_some(),
        "the runaway's runs are recorded against it"
    );
    order(&server, &token, &["commission", "runaway", "runaway-2"]).await;
    let quote = quote_body(&server, &token).await;
    assert_eq!(quote["steps"][0]["installation"], "commission");
    assert_eq!(quote["steps"][0]["outcome"], "ok", "{quote}");
    assert_eq!(quote["decision"], alone["decision"]);
    let (status, health) = server.get("", "/healthz", "").await;
    assert_eq!(status, StatusCode::OK, "{health}");
}
both_backends!(a_runaway_installation_costs_only_its_own_run, runaway);

async fn quotas(db: Db) {
    let server = Server::in_process(db).await;
    let token = admin("acme");
    let pa = platform_admin();
    let (status, body) = server
        .get(
            "acme",
            "/v1/installations/commission/quota",
            &member("acme"),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["ceiling"]["fuel"], 20_000_000,
        "the host's default: {body}"
    );
    let before = quote_body(&server, &token).await;
    assert_eq!(before["outcome"], "ok");

    // The platform lowers this installation's fuel: a release with the new
    // quota goes live at once.
    let path = "/v1/admin/tenants/acme/installations/commission/quota";
    let (status, body) = server
        .call(
            Method::PUT,
            "",
            path,
            Some(&pa),
            Some(json!({ "fuel": 1_000 })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let quota_release = body["release"].as_i64().expect("a release made live");
    let starved = quote_body(&server, &token).await;
    assert_eq!(starved["outcome"], "out_of_fuel", "{starved}");
    assert_eq!(starved["source"], "base");
    let (_, detail) = server
        .get("acme", "/v1/installations/commission", &token)
        .await;
    assert_eq!(detail["history"][0]["action"], "quota", "{detail}");
    assert_eq!(detail["installation"]["active_release"], quota_release);
    // Globex's installations are not touched.
    let (_, globex) = server
        .get(
            "globex",
            "/v1/installations/catalog/quota",
            &member("globex"),
        )
        .await;
    assert_eq!(globex["ceiling"]["fuel"], 20_000_000, "{globex}");

    // A rollback brings the old release back, still under the lowered quota.
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
    let (_, body) = server
        .get(
            "acme",
            "/v1/installations/commission/quota",
            &member("acme"),
        )
        .await;
    assert_eq!(body["live"]["fuel"], 1_000, "{body}");
    assert_eq!(quote_body(&server, &token).await["outcome"], "out_of_fuel");

    // Raised again: answered by the plugin.
    let (status, body) = server
        .call(
            Method::PUT,
            "",
            path,
            Some(&pa),
            Some(json!({ "fuel": 20_000_000 })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        quote_body(&server, &token).await["decision"],
        before["decision"]
    );
    let (status, body) = server.call(Method::GET, "", path, Some(&pa), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["quota"]["fuel"], 20_000_000);

    // Bad input: a quota the engine cannot enforce, an unknown installation.
    let (status, body) = server
        .call(Method::PUT, "", path, Some(&pa), Some(json!({ "fuel": 0 })))
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_quota")),
        "{body}"
    );
    let (status, body) = server
        .call(
            Method::PUT,
            "",
            "/v1/admin/tenants/acme/installations/ghost/quota",
            Some(&pa),
            Some(json!({ "fuel": 1_000 })),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (status, body) = server
        .call(
            Method::PUT,
            "",
            "/v1/admin/tenants/acme/installations/Bad%20Name/quota",
            Some(&pa),
            Some(json!({ "fuel": 1_000 })),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_installation")),
        "{body}"
    );
}
both_backends!(
    per_installation_quotas_apply_at_once_and_hold_across_rollback,
    quotas
);

async fn catalogue(db: Db) {
    let server = Server::in_process(db).await;
    let pa = platform_admin();
    // The demo publishes the four example plugins; every tenant reads them.
    let (status, listed) = server.get("acme", "/v1/catalogue", &member("acme")).await;
    assert_eq!(status, StatusCode::OK, "{listed}");
    let entries = listed["catalogue"].as_array().expect("catalogue");
    assert_eq!(entries.len(), 4, "{listed}");
    assert!(
        entries
            .iter()
            .all(|e| e["description"].as_str().is_some_and(|d| !d.is_empty()))
    );
    let branding = entries
        .iter()
        .find(|e| e["hooks"] == json!(["email"]))
        .expect("the email-branding plugin is published");
    let name = branding["name"].as_str().expect("name").to_owned();
    let (_, for_globex) = server
        .get("globex", "/v1/catalogue", &member("globex"))
        .await;
    assert_eq!(for_globex, listed, "one catalogue for every tenant");

    // Two tenants install it, each with its own settings and quota, without
    // uploading anything.
    for (tenant, brand) in [("acme", "Acme Luxe"), ("globex", "Globex Kicks")] {
        let token = admin(tenant);
        server
            .ensure_installation(tenant, &token, "brand-emails")
            .await;
        let (status, body) = server
            .call(
                Method::POST,
                tenant,
                "/v1/installations/brand-emails/releases",
                Some(&token),
                Some(json!({ "catalogue": name, "settings": { "brand_name": brand, "primary_color": "#101010", "accent_color": "#c0c0c0" } })),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        assert_eq!(body["release"]["plugin"], branding["sha256"], "{body}");
        let id = body["release"]["id"].as_i64().expect("id");
        server
            .activate_release(tenant, &token, "brand-emails", id)
            .await;
    }
    let preview = async |tenant: &str| {
        let (status, body) = server
            .call(
                Method::POST,
                tenant,
                "/v1/email/preview",
                Some(&member(tenant)),
                Some(json!({ "template": "order-confirmation" })),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["rendered"]["html"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    let (acme_html, globex_html) = (preview("acme").await, preview("globex").await);
    assert!(acme_html.contains("Acme Luxe") && !acme_html.contains("Globex Kicks"));
    assert!(globex_html.contains("Globex Kicks") && !globex_html.contains("Acme Luxe"));
    // Neither sees the other's settings; a quota for one is not the other's.
    let (_, acme_installations) = server
        .get("acme", "/v1/installations", &admin("acme"))
        .await;
    assert!(!acme_installations.to_string().contains("Globex Kicks"));
    let (status, body) = server
        .call(
            Method::PUT,
            "",
            "/v1/admin/tenants/acme/installations/brand-emails/quota",
            Some(&pa),
            Some(json!({ "fuel": 5_000 })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, globex_quota) = server
        .get(
            "globex",
            "/v1/installations/brand-emails/quota",
            &member("globex"),
        )
        .await;
    assert_eq!(globex_quota["live"]["fuel"], 20_000_000, "{globex_quota}");

    // Bad requests say what to fix.
    for (body, status, code) in [
        (
            json!({ "catalogue": "no-such-plugin" }),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            json!({ "catalogue": name, "plugin": "a".repeat(64) }),
            StatusCode::BAD_REQUEST,
            "invalid_json",
        ),
        (
            json!({ "settings": {} }),
            StatusCode::BAD_REQUEST,
            "invalid_json",
        ),
    ] {
        let (got, answer) = server
            .call(
                Method::POST,
                "acme",
                "/v1/installations/brand-emails/releases",
                Some(&admin("acme")),
                Some(body),
            )
            .await;
        assert_eq!(
            (got, answer["error"]["code"].as_str()),
            (status, Some(code)),
            "{answer}"
        );
    }

    // Platform admins publish and unpublish; tenants cannot.
    use base64::Engine as _;
    let wasm = base64::engine::general_purpose::STANDARD.encode(read(built_plugins::HOSTILE));
    let publish =
        json!({ "wasm_base64": wasm, "description": "test only", "settings_example": {} });
    let (status, body) = server
        .call(
            Method::POST,
            "",
            "/v1/admin/catalogue",
            Some(&admin("acme")),
            Some(publish.clone()),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let (status, published) = server
        .call(
            Method::POST,
            "",
            "/v1/admin/catalogue",
            Some(&pa),
            Some(publish.clone()),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{published}");
    let (status, again) = server
        .call(
            Method::POST,
            "",
            "/v1/admin/catalogue",
            Some(&pa),
            Some(publish),
        )
        .await;
    assert_eq!(
        (status, &again),
        (StatusCode::CREATED, &published),
        "the same bytes again"
    );
    let (status, body) = server
        .call(
            Method::POST,
            "",
            "/v1/admin/catalogue",
            Some(&pa),
            Some(json!({ "wasm_base64": "not base64!", "description": "x" })),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let path = format!(
        "/v1/admin/catalogue/{}/{}",
        published["plugin"]["name"].as_str().expect("name"),
        published["plugin"]["version"].as_str().expect("version")
    );
    let (status, _) = server
        .call(Method::DELETE, "", &path, Some(&pa), None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = server
        .call(Method::DELETE, "", &path, Some(&pa), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, after) = server.get("acme", "/v1/catalogue", &member("acme")).await;
    assert_eq!(after, listed);
}
both_backends!(
    the_catalogue_is_shared_and_each_install_is_the_tenants_own,
    catalogue
);

async fn headroom(db: Db) {
    let server = Server::in_process(db).await;
    let token = admin("acme");
    for _ in 0..5 {
        quote_body(&server, &token).await;
    }
    let read = async |server: &Server| {
        let (status, body) = server
            .get(
                "acme",
                "/v1/installations/commission/headroom?runs=100",
                &member("acme"),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["headroom"].clone()
    };
    let recorded = server
        .eventually(10, async |s| {
            let h = read(s).await;
            (h["runs"].as_u64() >= Some(5)).then_some(h)
        })
        .await
        .expect("the runs are recorded");
    assert!(recorded["fuel"]["p99"].as_u64() > Some(0), "{recorded}");
    assert_eq!(recorded["fuel"]["quota"], 20_000_000);
    assert_eq!(recorded["warnings"], json!([]), "{recorded}");
    assert!(recorded["suggested"]["fuel"].as_u64() >= Some(1_000_000));
    assert!(recorded["suggested"]["fuel"].as_u64() <= Some(20_000_000));

    // A quota close to what the runs use: the API warns.
    let p99 = recorded["fuel"]["p99"].as_u64().expect("p99");
    let (status, body) = server
        .call(
            Method::PUT,
            "",
            "/v1/admin/tenants/acme/installations/commission/quota",
            Some(&platform_admin()),
            Some(json!({ "fuel": (p99 * 3 / 2).max(1_000) })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let tight = read(&server).await;
    assert!(
        tight["warnings"][0]
            .as_str()
            .is_some_and(|w| w.starts_with("fuel")),
        "{tight}"
    );
    // Other tenants' installations and unknown names.
    let (status, _) = server
        .get("acme", "/v1/installations/ghost/headroom", &member("acme"))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = server
        .get(
            "globex",
            "/v1/installations/commission/headroom",
            &member("globex"),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}
both_backends!(headroom_reads_the_runs_against_the_quota, headroom);

async fn auto_rollback(db: Db) {
    let server = Server::start_with(db, |config| {
        config.rollback_failures = 3;
        config.rollback_calls = 20;
    })
    .await;
    let token = admin("acme");
    let good = answer(&server, &token).await;
    // The tenant's rollout contact, emailed through its own settings.
    server
        .configure_email(
            "acme",
            json!({ "sending_domain": "acme.example", "from_name": "Acme",
                    "from_address": "orders@acme.example", "relay": "platform" }),
        )
        .await;
    let (status, body) = server
        .call(
            Method::PUT,
            "acme",
            "/v1/rollout",
            Some(&token),
            Some(json!({ "notify": "not an address" })),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, body) = server
        .call(
            Method::PUT,
            "acme",
            "/v1/rollout",
            Some(&token),
            Some(json!({ "notify": "ops@acme.example" })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // A release that panics on every call goes live.
    let (status, uploaded) = server
        .upload("acme", &token, read(built_plugins::HOSTILE))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{uploaded}");
    let sha = uploaded["plugin"]["sha256"]
        .as_str()
        .expect("sha")
        .to_owned();
    let bad = server
        .create_release(
            "acme",
            &token,
            "commission",
            &sha,
            json!({ "mode": "panic" }),
        )
        .await;
    server
        .activate_release("acme", &token, "commission", bad)
        .await;
    for _ in 0..3 {
        let quote = quote_body(&server, &token).await;
        assert_eq!(quote["outcome"], "trap", "{quote}");
        assert_eq!(quote["source"], "base", "its input passes on: {quote}");
    }

    // Three failures in its first calls: the installation goes back by itself.
    let back = server
        .eventually(10, async |s| {
            let (_, detail) = s.get("acme", "/v1/installations/commission", &token).await;
            (detail["installation"]["active_release"] != bad).then_some(detail)
        })
        .await
        .expect("the failing release is rolled back");
    let event = &back["history"][0];
    assert_eq!(event["action"], "rollback", "{back}");
    assert_eq!(event["actor"], "veneer:auto-rollback", "{back}");
    assert_eq!(
        answer(&server, &token).await,
        good,
        "the previous answer, exactly"
    );
    let (_, audit) = server.get("acme", "/v1/audit", &token).await;
    let row = audit["audit"]
        .as_array()
        .expect("rows")
        .iter()
        .find(|r| r["action"] == "release.auto_rollback")
        .cloned()
        .expect("the rollback is audited");
    assert!(
        row["after"]["reason"]
            .as_str()
            .is_some_and(|a| a.contains("failed 3 of its first 3 calls")),
        "{row}"
    );

    // The contact was told, with the reason.
    let notice = server
        .eventually(10, async |s| {
            let (_, messages) = s.get("acme", "/v1/email/messages", &token).await;
            messages["messages"]
                .as_array()
                .and_then(|list| list.iter().find(|m| m["to_address"] == "ops@acme.example"))
                .cloned()
        })
        .await
        .expect("the rollback notice is queued");
    assert!(
        notice["subject"]
            .as_str()
            .is_some_and(|s| s.contains(&format!("rolled back release {bad} of `commission`"))),
        "{notice}"
    );

    // Activated again by hand, it is watched again only as a new activation.
    let other = server
        .create_release("acme", &token, "commission", &sha, json!({ "mode": "ok" }))
        .await;
    server
        .activate_release("acme", &token, "commission", other)
        .await;
    for _ in 0..5 {
        let quote = quote_body(&server, &token).await;
        assert_eq!(quote["steps"][0]["outcome"], "ok", "{quote}");
    }
    let (_, detail) = server
        .get("acme", "/v1/installations/commission", &token)
        .await;
    assert_eq!(
        detail["installation"]["active_release"], other,
        "a healthy release stays"
    );
}
both_backends!(
    a_release_failing_right_after_activation_is_rolled_back,
    auto_rollback
);

async fn release_diff(db: Db) {
    let server = Server::in_process(db).await;
    server.create_tenant("umbrella").await;
    let token = admin("umbrella");
    let (_, base) = server.get("umbrella", "/v1/config", &token).await;
    // Globex serves sneaker-store with these settings: what it adds to the
    // base, computed here from the two served configurations.
    let settings = json!({ "charts": ["shoes-men", "shoes-women"], "subcategories": true });
    let (_, globex) = server.get("globex", "/v1/config", &admin("globex")).await;
    let ids = |config: &Value, section: &str| -> Vec<String> {
        let mut ids: Vec<String> = config[section]
            .as_array()
            .expect("section")
            .iter()
            .filter_map(|c| c["id"].as_str().map(str::to_owned))
            .collect();
        ids.sort();
        ids
    };
    let expected_categories: Vec<String> = ids(&globex, "categories")
        .into_iter()
        .filter(|id| !ids(&base, "categories").contains(id))
        .collect();
    let expected_charts: Vec<String> = ids(&globex, "size_charts")
        .into_iter()
        .filter(|id| !ids(&base, "size_charts").contains(id))
        .collect();

    server
        .ensure_installation("umbrella", &token, "catalog")
        .await;
    let (status, uploaded) = server
        .upload("umbrella", &token, read(built_plugins::SNEAKER_STORE))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{uploaded}");
    let sha = uploaded["plugin"]["sha256"]
        .as_str()
        .expect("sha")
        .to_owned();
    let draft = server
        .create_release("umbrella", &token, "catalog", &sha, settings)
        .await;
    let (status, body) = server
        .get(
            "umbrella",
            &format!("/v1/installations/catalog/releases/{draft}/diff"),
            &member("umbrella"),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let diff = &body["diff"];
    assert_eq!(diff["against"], Value::Null, "nothing is live there yet");
    assert_eq!(diff["failures"], json!([]), "{diff}");
    let mut added: Vec<String> = diff["diff"]["categories"]["added"]
        .as_array()
        .expect("added")
        .iter()
        .filter_map(|v| v.as_str().map(str::to_owned))
        .collect();
    added.sort();
    assert_eq!(added, expected_categories, "{diff}");
    assert_eq!(diff["diff"]["categories"]["removed"], json!([]));
    let mut charts: Vec<String> = diff["diff"]["size_charts"]["added"]
        .as_array()
        .expect("charts")
        .iter()
        .filter_map(|v| v.as_str().map(str::to_owned))
        .collect();
    charts.sort();
    assert_eq!(charts, expected_charts, "{diff}");
    // Nothing served changed.
    let (_, still) = server.get("umbrella", "/v1/config", &token).await;
    assert_eq!(still, base);

    // A release with email patches shows the text diff; a foreign id is 404.
    let (_, uploaded) = server
        .upload(
            "umbrella",
            &token,
            read(built_plugins::DECLARATIVE_OVERRIDES),
        )
        .await;
    let declarative = uploaded["plugin"]["sha256"]
        .as_str()
        .expect("sha")
        .to_owned();
    server
        .ensure_installation("umbrella", &token, "patches")
        .await;
    let patched = server
        .create_release(
            "umbrella",
            &token,
            "patches",
            &declarative,
            json!({ "email": { "welcome": [{"op": "replace", "path": "/subject", "value": "Welcome to Umbrella"}] } }),
        )
        .await;
    let (status, body) = server
        .get(
            "umbrella",
            &format!("/v1/installations/patches/releases/{patched}/diff"),
            &member("umbrella"),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let emails = body["diff"]["diff"]["emails"].as_array().expect("emails");
    assert_eq!(emails.len(), 1, "{body}");
    assert!(
        emails[0]["subject"]
            .as_str()
            .is_some_and(|d| d.contains("+Welcome to Umbrella")),
        "{body}"
    );
    let (status, _) = server
        .get(
            "globex",
            &format!("/v1/installations/catalog/releases/{draft}/diff"),
            &member("globex"),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "umbrella's release is not globex's"
    );
}
both_backends!(a_drafts_diff_names_what_it_would_change, release_diff);
