//! The HTTP edge and tenant state, attacked: floods without a valid token never
//! load a tenant's key-value data, concurrent loads coalesce, unknown hosts are
//! remembered briefly, key-value stores are capped, every request has a time
//! limit, and the host is read one way (duplicate `Host` refused, absolute-form
//! authority first, HTTP/2's `:authority`). After each attack another tenant's
//! good call succeeds.

use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use veneer::cache::LoadCounts;
use veneer::tenancy::TenantId;

use super::harness::{BASE, Db, Server, admin, member, platform_admin};
use veneer::both_backends;

fn tid(id: &str) -> TenantId {
    TenantId::new(id).expect("tenant id")
}

fn loads(server: &Server) -> LoadCounts {
    server.state.caches.loads()
}

/// The good call that must keep working after every attack.
async fn globex_is_served(server: &Server) {
    let (status, body) = server.get("globex", "/v1/config", &admin("globex")).await;
    assert_eq!(status, StatusCode::OK, "globex's good call: {body}");
}

/// One HTTP/1.1 exchange over a raw connection (for what reqwest will not
/// send: two Host headers, an absolute-form target, a body that never comes).
/// Returns the status and the JSON body.
async fn raw(server: &Server, request: &str) -> (u16, Value) {
    let mut stream = tokio::net::TcpStream::connect(server.running().addr)
        .await
        .expect("connect");
    stream.write_all(request.as_bytes()).await.expect("send");
    let mut received = Vec::new();
    let read = async {
        let mut chunk = [0u8; 8192];
        loop {
            let n = stream.read(&mut chunk).await.expect("read");
            if n == 0 {
                break;
            }
            received.extend_from_slice(&chunk[..n]);
            if let Some(end) = find(&received, b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&received[..end]).to_ascii_lowercase();
                let length = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse::<usize>().ok())
                    .unwrap_or(0);
                if received.len() >= end + 4 + length {
                    break;
                }
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(20), read)
        .await
        .expect("the server answers");
    let end = find(&received, b"\r\n\r\n").expect("a response head");
    let head = String::from_utf8_lossy(&received[..end]).into_owned();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("status line: {head}"));
    let body = &received[end + 4..];
    let body = serde_json::from_slice(body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(body).into_owned()));
    (status, body)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// A token with one character of its signature changed.
fn forged(token: &str) -> String {
    let mut bytes = token.as_bytes().to_vec();
    let i = bytes.len() - 10;
    bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
    String::from_utf8(bytes).expect("ascii")
}

async fn put_kv(server: &Server, tenant: &str, key: &str, value: &str) -> (StatusCode, Value) {
    server
        .call(
            Method::PUT,
            tenant,
            &format!("/v1/kv/{key}"),
            Some(&admin(tenant)),
            Some(json!({ "value": value })),
        )
        .await
}

/// Many concurrent requests without a valid token for acme, whose key-value
/// store is big, are refused without ever reading that store (or any of the
/// tenant's state besides its small row).
async fn unauthenticated_flood(db: Db) {
    let server = Server::start(db).await;
    let big = "v".repeat(60 << 10);
    for i in 0..40 {
        let (status, body) = put_kv(&server, "acme", &format!("big-{i}"), &big).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    server.state.invalidate(&tid("acme"));
    let before = loads(&server);

    let no_token = || server.call(Method::GET, "acme", "/v1/config", None, None);
    let forged_token = forged(&admin("acme"));
    let globex_token = admin("globex");
    let mut calls = Vec::new();
    for i in 0..90 {
        let (token, expected, code) = match i % 3 {
            0 => (None, StatusCode::UNAUTHORIZED, "missing_token"),
            1 => (Some(forged_token.as_str()), StatusCode::UNAUTHORIZED, ""),
            _ => (
                Some(globex_token.as_str()),
                StatusCode::FORBIDDEN,
                "wrong_tenant",
            ),
        };
        let server = &server;
        calls.push(async move {
            let (status, body) = match token {
                None => no_token().await,
                Some(token) => server.get("acme", "/v1/kv/big-0", token).await,
            };
            assert_eq!(status, expected, "{body}");
            if !code.is_empty() {
                assert_eq!(body["error"]["code"], code, "{body}");
            }
        });
    }
    futures_join_all(calls).await;
    let after = loads(&server);
    assert_eq!(after.state_loads, before.state_loads, "no state was loaded");
    assert_eq!(
        after.kv_reads, before.kv_reads,
        "no key-value data was read"
    );
    assert!(
        after.record_loads - before.record_loads <= 1,
        "the tenant's row was read once and cached: {before:?} → {after:?}"
    );

    // acme's own call that needs the state loads it, once.
    let (status, body) = server.get("acme", "/v1/config", &admin("acme")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let loaded = loads(&server);
    assert_eq!(loaded.state_loads, after.state_loads + 1);
    assert_eq!(loaded.kv_reads, after.kv_reads + 1);
    globex_is_served(&server).await;
}
both_backends!(
    an_unauthenticated_flood_never_loads_the_tenants_data,
    unauthenticated_flood
);

/// Runs the calls concurrently (polled together, so the server sees them at
/// once) until all are done; they borrow the server, so they are not spawned.
async fn futures_join_all<F: std::future::Future<Output = ()>>(calls: Vec<F>) {
    let mut pending: Vec<_> = calls.into_iter().map(|call| Some(Box::pin(call))).collect();
    std::future::poll_fn(|cx| {
        let mut done = true;
        for slot in &mut pending {
            if let Some(fut) = slot {
                if fut.as_mut().poll(cx).is_ready() {
                    *slot = None;
                } else {
                    done = false;
                }
            }
        }
        if done {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
    .await;
}

/// Concurrent authenticated requests for a cold tenant read it once; a reload
/// whose key-value data did not change shares the snapshot still in memory.
async fn coalescing(db: Db) {
    let server = Server::start(db).await;
    for i in 0..5 {
        let (status, body) = put_kv(&server, "acme", &format!("k{i}"), "value").await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let state = &server.state;
    state.invalidate(&tid("acme"));
    let before = loads(&server);
    let token = member("acme");
    let mut calls = Vec::new();
    for _ in 0..24 {
        let server = &server;
        let token = token.as_str();
        calls.push(async move {
            let (status, body) = server.get("acme", "/v1/config", token).await;
            assert_eq!(status, StatusCode::OK, "{body}");
        });
    }
    futures_join_all(calls).await;
    let after = loads(&server);
    assert_eq!(
        after.state_loads,
        before.state_loads + 1,
        "one load for 24 requests"
    );
    assert_eq!(after.kv_reads, before.kv_reads + 1);

    // A settings change reloads the state, not the unchanged key-value data.
    let held = state
        .tenant_state(&tid("acme"))
        .await
        .expect("state")
        .expect("acme");
    server
        .set_settings("acme", &admin("acme"), json!({ "cap": 1 }))
        .await;
    let (status, body) = server.get("acme", "/v1/config", &token).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let reloaded = state
        .tenant_state(&tid("acme"))
        .await
        .expect("state")
        .expect("acme");
    assert!(!Arc::ptr_eq(&held, &reloaded), "a new state was loaded");
    assert!(
        Arc::ptr_eq(held.kv(), reloaded.kv()),
        "sharing one snapshot"
    );
    assert_eq!(reloaded.kv().len(), 5);
    assert_eq!(
        loads(&server).kv_reads,
        after.kv_reads,
        "no second copy read"
    );

    // A key-value write is a new version: read afresh. The write itself loads
    // no state (its route does not need it).
    let before_write = loads(&server);
    let (status, _) = put_kv(&server, "acme", "k9", "new").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(loads(&server).state_loads, before_write.state_loads);
    let (status, body) = server.get("acme", "/v1/config", &token).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let fresh = state
        .tenant_state(&tid("acme"))
        .await
        .expect("state")
        .expect("acme");
    assert_eq!(fresh.kv().len(), 6);
    assert_eq!(loads(&server).kv_reads, after.kv_reads + 1);
    globex_is_served(&server).await;
}
both_backends!(concurrent_loads_of_one_tenant_coalesce, coalescing);

/// The tenant cache is weighed in bytes: a state heavier than its capacity is
/// not kept (it is loaded again when needed), a light one is.
async fn cache_bound(db: Db) {
    let server = Server::start_with(db, |config| config.tenant_cache_mib = 1).await;
    let big = "v".repeat(60 << 10);
    for i in 0..30 {
        let (status, body) = put_kv(&server, "acme", &format!("big-{i}"), &big).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let caches = &server.state.caches;
    let config_of = |tenant: &'static str| {
        let server = &server;
        async move {
            let (status, body) = server.get(tenant, "/v1/config", &admin(tenant)).await;
            assert_eq!(status, StatusCode::OK, "{body}");
            caches.run_pending_tasks();
        }
    };
    let before = loads(&server);
    config_of("acme").await;
    config_of("acme").await;
    assert_eq!(
        loads(&server).state_loads,
        before.state_loads + 2,
        "acme's 1.8 MiB state is not kept in a 1 MiB cache"
    );
    assert!(
        caches.tenant_bytes() <= 1 << 20,
        "{}",
        caches.tenant_bytes()
    );
    let before = loads(&server);
    config_of("globex").await;
    config_of("globex").await;
    assert_eq!(
        loads(&server).state_loads,
        before.state_loads + 1,
        "globex's small state stays"
    );
}
both_backends!(the_tenant_cache_is_bounded_in_bytes, cache_bound);

/// Unknown hosts cost one database query per few seconds, not one each; a
/// tenant created, or a domain verified, is reachable at once.
async fn unknown_hosts(db: Db) {
    let dns = veneer::test_support::dns_server::DnsServer::start().await;
    let server = Server::start_with(db, |config| {
        config.dns_server = Some(dns.addr);
        config.job_backoff_ms = 50;
    })
    .await;
    let before = loads(&server);
    for _ in 0..5 {
        let (status, body) = server.get("nosuch", "/v1/config", &admin("nosuch")).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
        assert_eq!(body["error"]["code"], "unknown_host");
    }
    let custom = |server: &Server| {
        server
            .client
            .get(server.url("/v1/config"))
            .header("host", "shop.nosuch.example")
            .bearer_auth(admin("nosuch"))
            .send()
    };
    for _ in 0..5 {
        let response = custom(&server).await.expect("answered");
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
    }
    let after = loads(&server);
    assert_eq!(after.record_loads, before.record_loads + 1, "{after:?}");
    assert_eq!(after.host_lookups, before.host_lookups + 1, "{after:?}");

    // Created now: served at once, not after the miss expires.
    let (status, body) = server
        .call(
            Method::POST,
            "",
            "/v1/admin/tenants",
            Some(&platform_admin()),
            Some(json!({ "id": "nosuch", "name": "No Such" })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = server.get("nosuch", "/v1/config", &admin("nosuch")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = server
        .call(
            Method::POST,
            "",
            "/v1/admin/tenants/nosuch/domains",
            Some(&platform_admin()),
            Some(json!({ "domain": "shop.nosuch.example" })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let response = custom(&server).await.expect("answered");
    assert_eq!(response.status(), StatusCode::NOT_FOUND, "pending");
    let txt = body["domain"]["records"][0].clone();
    dns.set_txt(
        txt["name"].as_str().expect("name"),
        &[txt["value"].as_str().expect("value")],
    );
    let verified = server
        .eventually(20, async |s| {
            let (_, body) = s
                .get(
                    "",
                    "/v1/admin/tenants/nosuch/domains/shop.nosuch.example",
                    &platform_admin(),
                )
                .await;
            (body["domain"]["status"] == "verified").then_some(())
        })
        .await;
    assert!(verified.is_some(), "the domain is verified");
    let response = custom(&server).await.expect("answered");
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "served at once once verified"
    );
    globex_is_served(&server).await;
}
both_backends!(unknown_hosts_are_remembered_briefly, unknown_hosts);

/// A tenant's key-value store is capped in keys and bytes: a clear 409, and
/// nothing stored is lost.
async fn kv_caps(db: Db) {
    let server = Server::start_with(db, |config| {
        config.kv_max_keys = 3;
        config.kv_max_bytes = 100 << 10;
    })
    .await;
    for key in ["a", "b", "c"] {
        let (status, body) = put_kv(&server, "acme", key, "1").await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let (status, body) = put_kv(&server, "acme", "d", "1").await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"]["code"], "kv_quota_exceeded");
    let message = body["error"]["message"].as_str().expect("message");
    assert!(
        message.contains("limit is 3") && message.contains("delete"),
        "{message}"
    );
    // Bytes: two 60 KiB values do not fit in 100 KiB.
    let big = "x".repeat(60 << 10);
    let (status, body) = put_kv(&server, "acme", "a", &big).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = put_kv(&server, "acme", "b", &big).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"]["code"], "kv_quota_exceeded");
    // Nothing lost, the refused writes left no trace.
    let (status, body) = server.get("acme", "/v1/kv", &admin("acme")).await;
    assert_eq!(status, StatusCode::OK);
    let entries: Vec<(&str, usize)> = body["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| {
            (
                e["key"].as_str().unwrap_or(""),
                e["value"].as_str().unwrap_or("").len(),
            )
        })
        .collect();
    assert_eq!(entries, [("a", 60 << 10), ("b", 1), ("c", 1)]);
    // Room made, the write goes in.
    let (status, _) = server
        .call(
            Method::DELETE,
            "acme",
            "/v1/kv/c",
            Some(&admin("acme")),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = put_kv(&server, "acme", "d", "1").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // globex's cap is its own.
    for key in ["a", "b", "c"] {
        let (status, body) = put_kv(&server, "globex", key, "1").await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    globex_is_served(&server).await;
}
both_backends!(kv_stores_are_capped_per_tenant, kv_caps);

/// A request past the time limit is answered 503 `request_timeout` (here: a
/// body announced and never sent), and the server goes on serving.
async fn request_timeout(db: Db) {
    let server = Server::start_with(db, |config| config.request_timeout_ms = 500).await;
    let started = Instant::now();
    let (status, body) = raw(
        &server,
        &format!(
            "PUT /v1/kv/slow HTTP/1.1\r\nHost: acme.{BASE}\r\nAuthorization: Bearer {}\r\n\
             Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"value\":",
            admin("acme")
        ),
    )
    .await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "request_timeout", "{body}");
    assert!(started.elapsed() < Duration::from_secs(10));
    let (status, body) = server.get("acme", "/v1/kv/slow", &admin("acme")).await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "nothing half-written: {body}"
    );
    globex_is_served(&server).await;
}
both_backends!(every_request_has_a_time_limit, request_timeout);

/// Two Host headers: which one did a proxy in front route by? Refused.
async fn duplicate_host(db: Db) {
    let server = Server::start(db).await;
    for second in [format!("globex.{BASE}"), format!("acme.{BASE}")] {
        let (status, body) = raw(
            &server,
            &format!(
                "GET /v1/config HTTP/1.1\r\nHost: acme.{BASE}\r\nHost: {second}\r\n\
                 Authorization: Bearer {}\r\nConnection: close\r\n\r\n",
                admin("acme")
            ),
        )
        .await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(body["error"]["code"], "duplicate_host", "{body}");
    }
    globex_is_served(&server).await;
}
both_backends!(duplicate_host_headers_are_refused, duplicate_host);

/// An absolute-form target names the host (RFC 9112 §3.2.2), whatever the
/// Host header says: acme's token aimed at globex's authority is refused even
/// with Host naming acme, or a third tenant.
async fn absolute_form(db: Db) {
    let server = Server::start(db).await;
    let (status, _) = put_kv(&server, "globex", "secret", "globex-only").await;
    assert_eq!(status, StatusCode::OK);
    let request = |host: &str, token: &str| {
        format!(
            "GET http://globex.{BASE}/v1/kv/secret HTTP/1.1\r\nHost: {host}\r\n\
             Authorization: Bearer {token}\r\nConnection: close\r\n\r\n"
        )
    };
    for host in [format!("acme.{BASE}"), format!("initech.{BASE}")] {
        let (status, body) = raw(&server, &request(&host, &admin("acme"))).await;
        assert_eq!(status, 403, "Host {host}: {body}");
        assert_eq!(body["error"]["code"], "wrong_tenant", "{body}");
    }
    // The authority's own tenant is served, whatever Host says.
    let (status, body) = raw(&server, &request(&format!("acme.{BASE}"), &admin("globex"))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["value"], "globex-only");
    let (status, body) = server.get("acme", "/v1/config", &admin("acme")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    globex_is_served(&server).await;
}
both_backends!(an_absolute_form_target_names_the_host, absolute_form);

/// HTTP/2 (h2c, prior knowledge) carries the host as `:authority`, not Host:
/// the bounce endpoint on the platform host and tenant routes still find it.
async fn http2(db: Db) {
    let server = Server::start(db).await;
    let addr = server.running().addr;
    let h2 = reqwest::Client::builder()
        .http2_prior_knowledge()
        .resolve(&format!("acme.{BASE}"), addr)
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client");
    let bounce = json!({
        "type": "bounce", "bounce_type": "soft", "recipient": "someone@example.com",
    });
    let response = h2
        .post(format!("http://{addr}/v1/email/bounces"))
        .header("x-veneer-bounce-token", "test-bounce-token")
        .json(&bounce)
        .send()
        .await
        .expect("answered");
    assert_eq!(response.version(), reqwest::Version::HTTP_2);
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["bounces"][0]["result"], "unattributed", "{body}");
    // The token is still checked over HTTP/2.
    let response = h2
        .post(format!("http://{addr}/v1/email/bounces"))
        .json(&bounce)
        .send()
        .await
        .expect("answered");
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    // A tenant host over HTTP/2, and not the platform's routes there.
    let port = addr.port();
    let response = h2
        .get(format!("http://acme.{BASE}:{port}/v1/config"))
        .bearer_auth(admin("acme"))
        .send()
        .await
        .expect("answered");
    assert_eq!(response.version(), reqwest::Version::HTTP_2);
    assert_eq!(response.status(), StatusCode::OK);
    let response = h2
        .post(format!("http://acme.{BASE}:{port}/v1/email/bounces"))
        .header("x-veneer-bounce-token", "test-bounce-token")
        .json(&bounce)
        .send()
        .await
        .expect("answered");
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    globex_is_served(&server).await;
}
both_backends!(http2_requests_are_routed_by_their_authority, http2);
