//! The sandbox at the host boundary, attacked over HTTP: plugins that sleep in
//! WASI, print or panic on the quote path, and uploads whose `describe` sleeps.
//! Each ends in a classified outcome within its bounds, and another tenant's
//! traffic is served by its own plugin throughout.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use super::harness::{Db, Server, admin, sale};
use veneer::both_backends;

/// Far below the minute the sleeping plugin asks for.
const SLACK: Duration = Duration::from_secs(5);

async fn quote(server: &Server, tenant: &str) -> Value {
    server
        .quote(tenant, &admin(tenant), sale("bags", 10_000))
        .await
}

/// globex's own plugin still serves its quotes.
async fn globex_is_served(server: &Server) {
    let quote = quote(server, "globex").await;
    assert_eq!(quote["source"], "plugin", "{quote}");
    assert_eq!(quote["outcome"], "ok", "{quote}");
}

async fn sleeping_plugin(db: Db) {
    let server = Server::in_process(db).await;
    let token = admin("acme");
    server
        .install_hostile("acme", json!({ "mode": "sleep", "count": 60_000 }))
        .await;
    server
        .set_quota("acme", json!({ "deadline_ms": 100 }))
        .await;

    let started = Instant::now();
    let q = quote(&server, "acme").await;
    assert_eq!(q["source"], "base", "{q}");
    assert_eq!(q["outcome"], "deadline", "{q}");
    assert!(
        started.elapsed() < SLACK,
        "the quote took {:?}",
        started.elapsed()
    );

    // Every section of the configuration runs the plugin: each ends at its
    // deadline and the base is served.
    let started = Instant::now();
    let (status, config) = server.get("acme", "/v1/config", &token).await;
    assert_eq!(status, StatusCode::OK, "{config}");
    assert!(
        started.elapsed() < SLACK,
        "/v1/config took {:?}",
        started.elapsed()
    );
    globex_is_served(&server).await;
}
both_backends!(
    a_sleeping_plugin_ends_at_its_deadline_over_http,
    sleeping_plugin
);

async fn printing_and_panicking(db: Db) {
    let server = Server::in_process(db).await;
    let token = admin("acme");
    server
        .install_hostile("acme", json!({ "mode": "print" }))
        .await;
    let q = quote(&server, "acme").await;
    assert_eq!(q["source"], "plugin", "{q}");
    assert_eq!(q["outcome"], "ok", "{q}");

    server
        .set_settings(
            "acme",
            &token,
            json!({ "mode": "stdout-flood", "bytes": 200_000 }),
        )
        .await;
    let q = quote(&server, "acme").await;
    assert_eq!(q["outcome"], "ok", "{q}");

    server
        .set_settings("acme", &token, json!({ "mode": "panic" }))
        .await;
    let q = quote(&server, "acme").await;
    assert_eq!(q["source"], "base", "{q}");
    assert_eq!(q["outcome"], "trap", "{q}");
    // The trap is recorded with the panic message in its log.
    let recorded = server
        .eventually(10, async |server| {
            let (status, runs) = server.get("acme", "/v1/runs", &token).await;
            assert_eq!(status, StatusCode::OK, "{runs}");
            runs["runs"].as_array().and_then(|runs| {
                runs.iter()
                    .find(|run| run["outcome"] == "trap" && run["hook"] == "commission")
                    .cloned()
            })
        })
        .await
        .expect("the trap is in /v1/runs");
    assert!(
        recorded.to_string().contains("panicked on purpose"),
        "{recorded}"
    );
    globex_is_served(&server).await;
}
both_backends!(
    printing_or_panicking_plugins_never_fail_a_quote,
    printing_and_panicking
);

async fn sleeping_uploads(db: Db) {
    let server = Server::in_process(db).await;
    let token = admin("acme");
    let bytes = crate::util::read(veneer_plugin_artifacts::HOSTILE_DESCRIBE);
    let started = Instant::now();
    let upload = || server.upload("acme", &token, bytes.clone());
    let (a, b, c, d) = tokio::join!(upload(), upload(), upload(), upload());
    let answers = [a, b, c, d];
    for (status, body) in &answers {
        let code = body["error"]["code"].as_str().unwrap_or_default();
        assert!(
            (*status == StatusCode::UNPROCESSABLE_ENTITY && code == "describe_failed")
                || (*status == StatusCode::TOO_MANY_REQUESTS && code == "compile_busy"),
            "{status} {body}"
        );
    }
    assert!(
        answers
            .iter()
            .any(|(_, body)| body["error"]["code"] == "describe_failed"),
        "{answers:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(30));

    // Nothing of acme's is left holding the pool: globex's plugin serves its
    // quotes, and its own upload compiles.
    globex_is_served(&server).await;
    let (status, body) = server
        .upload(
            "globex",
            &admin("globex"),
            crate::util::read(veneer_plugin_artifacts::HOSTILE),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}
both_backends!(
    uploads_whose_describe_sleeps_leave_other_tenants_served,
    sleeping_uploads
);
