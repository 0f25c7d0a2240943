//! Traffic endpoints, in process (`Server::in_process`): the demo tenants'
//! effective configurations differ, ETags and gzip negotiate exactly, quotes
//! run the plugin, previews render with escaping, bad input gets clear errors.

use reqwest::{Method, StatusCode};
use serde_json::json;

use super::harness::{Db, Server, admin, member, sale};
use veneer::both_backends;

async fn traffic(db: Db) {
    let server = Server::in_process(db).await;
    let (acme, globex) = (member("acme"), member("globex"));
    let (status, a) = server.get("acme", "/v1/config", &acme).await;
    assert_eq!(status, StatusCode::OK, "{a}");
    let (status, g) = server.get("globex", "/v1/config", &globex).await;
    assert_eq!(status, StatusCode::OK, "{g}");
    assert_ne!(
        a["categories"], g["categories"],
        "acme and globex see different trees"
    );
    assert_ne!(a["size_charts"], g["size_charts"]);

    // ETag round trip.
    let version = a["version"].as_str().expect("version").to_owned();
    let cached = server
        .request(Method::GET, "acme", "/v1/config")
        .bearer_auth(&acme)
        .header("if-none-match", format!("\"{version}\""))
        .send()
        .await
        .expect("answered");
    assert_eq!(cached.status(), StatusCode::NOT_MODIFIED);

    // gzip for clients that accept it: the same document, cached encoded, with
    // its own validator, which a conditional request accepts too.
    let zipped = server
        .request(Method::GET, "acme", "/v1/config")
        .bearer_auth(&acme)
        .header("accept-encoding", "br;q=1, gzip;q=0.8")
        .send()
        .await
        .expect("answered");
    assert_eq!(zipped.status(), StatusCode::OK);
    assert_eq!(zipped.headers()["content-encoding"], "gzip");
    assert_eq!(zipped.headers()["vary"], "accept-encoding");
    let gzip_tag = zipped.headers()["etag"].to_str().expect("etag").to_owned();
    assert_eq!(gzip_tag, format!("\"{version}-gzip\""));
    let bytes = zipped.bytes().await.expect("body");
    let mut json = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&bytes[..]), &mut json)
        .expect("valid gzip");
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&json).expect("json"),
        a
    );
    assert!(
        bytes.len() * 3 < json.len(),
        "{} of {}",
        bytes.len(),
        json.len()
    );
    server
        .revalidate("acme", "/v1/config", &acme, &gzip_tag)
        .await;
    let refused = server
        .request(Method::GET, "acme", "/v1/config")
        .bearer_auth(&acme)
        .header("accept-encoding", "gzip;q=0")
        .send()
        .await
        .expect("answered");
    assert_eq!(refused.status(), StatusCode::OK);
    assert!(refused.headers().get("content-encoding").is_none());
    assert_eq!(refused.json::<serde_json::Value>().await.expect("json"), a);

    // Sections.
    let (status, section) = server
        .get("globex", "/v1/config/size-charts", &globex)
        .await;
    assert_eq!(
        (status, section["source"].as_str()),
        (StatusCode::OK, Some("plugin"))
    );
    assert_eq!(section["section"], "size-charts");
    assert_eq!(section["tenant"], "globex");
    // Each name answers as asked (an alias echoes itself), served from the
    // cached configuration, with the configuration's validator.
    let (status, alias) = server
        .get("globex", "/v1/config/size_charts", &globex)
        .await;
    assert_eq!(status, StatusCode::OK, "{alias}");
    assert_eq!(alias["section"], "size_charts");
    assert_eq!(alias["value"], section["value"]);
    let (status, again) = server
        .get("globex", "/v1/config/size-charts", &globex)
        .await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(again, section, "the second answer is the same document");
    for name in [
        "categories",
        "emails",
        "commission-rules",
        "commission_rules",
    ] {
        let (status, body) = server
            .get("globex", &format!("/v1/config/{name}"), &globex)
            .await;
        assert_eq!(
            (status, body["section"].as_str()),
            (StatusCode::OK, Some(name)),
            "{body}"
        );
        assert!(!body["value"].is_null(), "{name}: {body}");
    }
    let section_version = section["version"].as_str().expect("version").to_owned();
    let zipped = server
        .request(Method::GET, "globex", "/v1/config/emails")
        .bearer_auth(&globex)
        .header("accept-encoding", "gzip")
        .send()
        .await
        .expect("answered");
    assert_eq!(zipped.status(), StatusCode::OK);
    // Every email template is well over the 1 KiB below which nothing is
    // compressed: this section is always sent gzip when that is accepted.
    assert_eq!(zipped.headers()["content-encoding"], "gzip");
    let tag = zipped.headers()["etag"].to_str().expect("etag").to_owned();
    assert_eq!(tag, format!("\"{section_version}-gzip\""));
    server
        .revalidate("globex", "/v1/config/emails", &globex, &tag)
        .await;
    // An unknown section is a 404 even with a matching validator.
    let unknown = server
        .request(Method::GET, "globex", "/v1/config/colours")
        .bearer_auth(&globex)
        .header("if-none-match", format!("\"{section_version}\""))
        .send()
        .await
        .expect("answered");
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
    // The benchmarks' static floor exists only in `bench-native` builds: a
    // served build answers it like any unknown path, on any host.
    for host in ["localhost", "acme"] {
        let (status, body) = server
            .call(Method::GET, host, "/bench/static-config", None, None)
            .await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (StatusCode::NOT_FOUND, Some("no_route")),
            "{body}"
        );
    }
    // A query string that does not parse is the API's JSON error, naming it.
    for path in [
        "/v1/jobs?limit=many",
        "/v1/email/messages?limit=-1",
        "/v1/kv?limit=x",
        "/v1/audit?before=yesterday",
    ] {
        let (status, body) = server.get("globex", path, &admin("globex")).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (StatusCode::BAD_REQUEST, Some("invalid_query")),
            "{path}: {body}"
        );
    }
    let (status, body) = server.get("globex", "/v1/config/colours", &globex).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("categories")
    );

    // Quotes differ by plugin.
    let (status, qa) = server
        .call(
            Method::POST,
            "acme",
            "/v1/commission/quote",
            Some(&acme),
            Some(sale("bags", 250_000)),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{qa}");
    let (status, qg) = server
        .call(
            Method::POST,
            "globex",
            "/v1/commission/quote",
            Some(&globex),
            Some(sale("bags", 250_000)),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{qg}");
    assert_eq!(qa["source"], "plugin", "{qa}");
    assert_ne!(qa["decision"], qg["decision"]);

    // Bad input: clear errors, nothing else happens.
    let (status, body) = server
        .call(
            Method::POST,
            "acme",
            "/v1/commission/quote",
            Some(&acme),
            Some(json!({ "sku": 1 })),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_json"))
    );
    let mut wrong_currency = sale("bags", 100);
    wrong_currency["currency"] = json!("USD");
    let (status, body) = server
        .call(
            Method::POST,
            "acme",
            "/v1/commission/quote",
            Some(&acme),
            Some(wrong_currency),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_sale"))
    );
    let (status, _) = server
        .call(Method::GET, "acme", "/v1/nope", Some(&acme), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Preview renders with HTML escaping of user data.
    let (status, preview) = server
        .call(Method::POST, "acme", "/v1/email/preview", Some(&acme),
            Some(json!({ "template": "welcome", "context": { "customer_name": "<script>alert(1)</script>" } })))
        .await;
    assert_eq!(status, StatusCode::OK, "{preview}");
    let html = preview["rendered"]["html"].as_str().unwrap_or("");
    let text = preview["rendered"]["text"].as_str().unwrap_or("");
    if text.contains("<script>") {
        assert!(!html.contains("<script>alert"), "HTML part is escaped");
    }
    let (status, _) = server
        .call(
            Method::POST,
            "acme",
            "/v1/email/preview",
            Some(&acme),
            Some(json!({ "template": "nope" })),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Health and readiness, no auth.
    let (status, ready) = server.call(Method::GET, "", "/readyz", None, None).await;
    assert_eq!(status, StatusCode::OK, "{ready}");
    let _ = admin("acme");
}
both_backends!(demo_tenants_differ_and_traffic_works, traffic);

/// Quotes run on warm instances of the tenant's own plugin: reused between one
/// tenant's calls, never across tenants, and never after the settings change.
/// The hostile plugin's `count-calls` mode counts calls in instance memory.
/// The in-place attempt gets room enough that a preempted worker thread never
/// sends a call to the fresh-store retry (which would start a new count).
async fn warm_quotes(db: Db) {
    let server = Server::in_process_with(db, |config| config.inline_ms = 1_000).await;
    let mut shas = Vec::new();
    for tenant in ["acme", "globex"] {
        let sha = server
            .install(
                tenant,
                &admin(tenant),
                crate::util::read(veneer_plugin_artifacts::HOSTILE),
                json!({ "mode": "count-calls" }),
            )
            .await;
        shas.push(sha);
    }
    assert_eq!(shas[0], shas[1], "both run the same plugin");
    let note = |tenant: &'static str| {
        let server = &server;
        async move {
            let (status, quote) = server
                .call(
                    Method::POST,
                    tenant,
                    "/v1/commission/quote",
                    Some(&admin(tenant)),
                    Some(sale("bags", 10_000)),
                )
                .await;
            assert_eq!(status, StatusCode::OK, "{quote}");
            assert_eq!(quote["outcome"], "ok", "{quote}");
            quote["decision"]["note"].as_str().expect("note").to_owned()
        }
    };
    assert_eq!(note("acme").await, "call 1");
    assert_eq!(note("acme").await, "call 2");
    assert_eq!(
        note("globex").await,
        "call 1",
        "globex never gets acme's instance"
    );
    assert_eq!(note("acme").await, "call 3");
    // New settings, a new instance.
    server
        .set_settings(
            "acme",
            &admin("acme"),
            json!({ "mode": "count-calls", "count": 7 }),
        )
        .await;
    assert_eq!(note("acme").await, "call 1");
    assert_eq!(note("globex").await, "call 2");
}
both_backends!(quotes_reuse_a_tenants_own_warm_instance, warm_quotes);

/// A quote first runs in place under a small budget; a plugin that needs more
/// (but stays within its quota) is run again on a blocking thread and succeeds,
/// its recorded fuel covering both attempts. One that loops still ends out of
/// fuel, having used its whole quota.
async fn slow_quotes(db: Db) {
    let server = Server::in_process(db).await;
    let token = admin("acme");
    server
        .install_hostile("acme", json!({ "mode": "slow-ok", "count": 300000 }))
        .await;
    let quote = || async {
        let (status, quote) = server
            .call(
                Method::POST,
                "acme",
                "/v1/commission/quote",
                Some(&token),
                Some(sale("bags", 10_000)),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{quote}");
        quote
    };
    let slow = quote().await;
    assert_eq!(slow["outcome"], "ok", "{slow}");
    assert_eq!(slow["source"], "plugin", "{slow}");
    let fuel = slow["fuel_used"].as_u64().expect("fuel");
    // 300,000 rounds need about 5 M fuel, more than the in-place budget; the
    // in-place attempt's fuel is counted on top of the full run's. (How much the
    // in-place attempt used depends on whether its fuel or its 2 ms ran out
    // first, so compare with the same work done once, which fuel makes exact.)
    let once = {
        let rt = veneer::runtime::Runtime::new(veneer::runtime::RuntimeConfig::default())
            .expect("runtime starts");
        let plugin = rt
            .load(&crate::util::read(veneer_plugin_artifacts::HOSTILE))
            .expect("hostile loads");
        let data =
            crate::util::settings(&json!({ "mode": "slow-ok", "count": 300000 }).to_string());
        let sale: veneer::base::Sale = serde_json::from_value(sale("bags", 10_000)).expect("sale");
        let base = crate::util::base().decide_commission(&sale);
        let run = rt.run::<veneer::runtime::hook::Commission>(
            &plugin,
            None,
            data,
            &veneer::runtime::Quota::default(),
            (&sale, &base),
        );
        assert!(
            matches!(run.outcome, veneer::runtime::Outcome::Ok(_)),
            "{:?}",
            run.outcome
        );
        run.stats.fuel_used
    };
    assert!(once > 4 * veneer::app::quote::INLINE_FUEL, "one run {once}");
    assert!(fuel > once, "fuel {fuel}, the same work once {once}");
    server
        .set_settings("acme", &token, json!({ "mode": "spin" }))
        .await;
    let spin = quote().await;
    assert_eq!(spin["outcome"], "out_of_fuel", "{spin}");
    let quota_fuel = veneer::runtime::Quota::default().fuel;
    assert!(
        spin["fuel_used"].as_u64().expect("fuel") >= quota_fuel,
        "{spin}"
    );
}
both_backends!(
    a_quote_too_slow_for_the_inline_budget_runs_again_with_its_quota,
    slow_quotes
);
