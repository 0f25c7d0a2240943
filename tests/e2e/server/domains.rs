//! Custom domains proven by DNS, over HTTP, on both backends, against a real
//! DNS server on loopback: a claimed domain is pending and never served
//! (404 `unknown_host`, nothing of any tenant's) until its TXT record (or a
//! CNAME to the tenant's host) is published and checked; a domain verified for
//! one tenant cannot be claimed by another; a record that goes missing puts
//! the domain in grace (still served), then disables it, audited.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use veneer::test_support::dns_server::DnsServer;

use super::harness::{BASE, Db, Server, admin, member, platform_admin};
use veneer::both_backends;

async fn served(server: &Server, host: &str, tenant: &str) -> (StatusCode, Value) {
    let response = server
        .client
        .get(server.url("/v1/config/categories"))
        .header("host", host)
        .bearer_auth(admin(tenant))
        .send()
        .await
        .expect("answered");
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn domain(server: &Server, tenant: &str, name: &str) -> Value {
    let (status, body) = server
        .get(tenant, &format!("/v1/domains/{name}"), &member(tenant))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["domain"].clone()
}

async fn until_status(server: &Server, tenant: &str, name: &str, want: &str) -> Value {
    let mut last = Value::Null;
    for _ in 0..200 {
        last = domain(server, tenant, name).await;
        if last["status"] == want {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{name} never became {want}: {last}");
}

async fn check(server: &Server, tenant: &str, name: &str) {
    let (status, body) = server
        .call(
            Method::POST,
            tenant,
            &format!("/v1/domains/{name}/check"),
            Some(&admin(tenant)),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
}

async fn domains(db: Db) {
    let dns = DnsServer::start().await;
    let server = Server::start_with(db, |config| {
        config.dns_server = Some(dns.addr);
        config.job_backoff_ms = 50;
        config.domain_recheck_secs = 1;
        config.domain_grace_secs = 2;
    })
    .await;

    // Bad names, and names under the base domain.
    for bad in ["not a domain", "localhost", &format!("x.{BASE}")] {
        let (status, body) = server
            .call(
                Method::POST,
                "acme",
                "/v1/domains",
                Some(&admin("acme")),
                Some(json!({ "domain": bad })),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
        assert_eq!(body["error"]["code"], "invalid_domain", "{body}");
    }
    // Members read; only admins claim.
    let (status, _) = server
        .call(
            Method::POST,
            "acme",
            "/v1/domains",
            Some(&member("acme")),
            Some(json!({ "domain": "shop.acme.example" })),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // A claim is pending, with the records to publish, and is not served.
    let (status, body) = server
        .call(
            Method::POST,
            "acme",
            "/v1/domains",
            Some(&admin("acme")),
            Some(json!({ "domain": "Shop.Acme.Example." })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let claim = &body["domain"];
    assert_eq!(claim["domain"], "shop.acme.example", "{claim}");
    assert_eq!(claim["status"], "pending", "{claim}");
    assert_eq!(claim["routes"], false, "{claim}");
    let txt = claim["records"]
        .as_array()
        .expect("records")
        .iter()
        .find(|r| r["type"] == "TXT")
        .expect("a TXT record to publish")
        .clone();
    assert_eq!(txt["name"], "_veneer-challenge.shop.acme.example", "{txt}");
    let token = txt["value"].as_str().expect("value").to_owned();
    assert!(token.starts_with("veneer-verify="), "{token}");
    // Checked without a record: still pending, and the check says why.
    let pending = until_status(&server, "acme", "shop.acme.example", "pending").await;
    let (status, body) = served(&server, "shop.acme.example", "acme").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(body["error"]["code"], "unknown_host", "{body}");
    let _ = pending;

    // Another tenant may claim a domain nobody has proven, but not prove it
    // with acme's record.
    let (status, body) = server
        .call(
            Method::POST,
            "globex",
            "/v1/domains",
            Some(&admin("globex")),
            Some(json!({ "domain": "shop.acme.example" })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    // Published: verified, and served as acme.
    dns.set_txt("_veneer-challenge.shop.acme.example", &[&token]);
    check(&server, "acme", "shop.acme.example").await;
    let verified = until_status(&server, "acme", "shop.acme.example", "verified").await;
    assert!(
        verified["last_result"]
            .as_str()
            .unwrap_or("")
            .contains("TXT"),
        "{verified}"
    );
    assert!(verified["verified_at"].as_i64().is_some(), "{verified}");
    let (status, body) = served(&server, "shop.acme.example", "acme").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // Globex's claim of it: refused now, and its own check cannot win.
    check(&server, "globex", "shop.acme.example").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let globex_claim = domain(&server, "globex", "shop.acme.example").await;
    assert_ne!(globex_claim["status"], "verified", "{globex_claim}");
    let (status, body) = served(&server, "shop.acme.example", "globex").await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "globex's token at acme's domain: {body}"
    );
    server.create_tenant("umbrella").await;
    let (status, body) = server
        .call(
            Method::POST,
            "",
            "/v1/admin/tenants/umbrella/domains",
            Some(&platform_admin()),
            Some(json!({ "domain": "shop.acme.example" })),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "verified for acme: {body}");

    // A CNAME to the tenant's own host proves it too.
    let (status, _) = server
        .call(
            Method::POST,
            "",
            "/v1/admin/tenants/globex/domains",
            Some(&platform_admin()),
            Some(json!({ "domain": "www.globex.example" })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    dns.set_cname("www.globex.example", &format!("globex.{BASE}"));
    check(&server, "globex", "www.globex.example").await;
    let verified = until_status(&server, "globex", "www.globex.example", "verified").await;
    assert!(
        verified["last_result"]
            .as_str()
            .unwrap_or("")
            .contains("CNAME"),
        "{verified}"
    );
    let (status, body) = served(&server, "www.globex.example", "globex").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, listed) = server
        .get("", "/v1/admin/tenants/globex/domains", &platform_admin())
        .await;
    assert_eq!(status, StatusCode::OK, "{listed}");
    assert!(
        listed["domains"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["domain"] == "www.globex.example" && d["status"] == "verified"),
        "{listed}"
    );

    // The record removed: grace (still served), then disabled (not served).
    dns.remove("_veneer-challenge.shop.acme.example");
    until_status(&server, "acme", "shop.acme.example", "grace").await;
    let (status, _) = served(&server, "shop.acme.example", "acme").await;
    assert_eq!(status, StatusCode::OK, "served during grace");
    let disabled = until_status(&server, "acme", "shop.acme.example", "disabled").await;
    assert_eq!(disabled["routes"], false, "{disabled}");
    let (status, body) = served(&server, "shop.acme.example", "acme").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (_, audit) = server.get("acme", "/v1/audit", &admin("acme")).await;
    let actions: Vec<&str> = audit["audit"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["action"].as_str())
        .collect();
    for action in [
        "domain.add",
        "domain.verified",
        "domain.missing",
        "domain.disabled",
    ] {
        assert!(actions.contains(&action), "{action} in {actions:?}");
    }
    // Published again: verified again.
    dns.set_txt("_veneer-challenge.shop.acme.example", &[&token]);
    until_status(&server, "acme", "shop.acme.example", "verified").await;

    // Removing it: gone, and not served.
    let (status, _) = server
        .call(
            Method::DELETE,
            "acme",
            "/v1/domains/shop.acme.example",
            Some(&admin("acme")),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = served(&server, "shop.acme.example", "acme").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}
both_backends!(domains_route_only_once_proven_by_dns, domains);

/// `veneer domains list|check` against the server's own database: the list
/// shows each claim's status (exit 1 while one is not served); a check shows
/// what DNS answers now and waits for the running server's check.
async fn cli(db: Db) {
    let server = Server::start_with_dns(db, |_| {}).await;
    let dns = server.dns.as_ref().expect("dns").addr;

    server.verify_domain("acme", "shop.acme.example").await;
    let (status, body) = server
        .call(
            Method::POST,
            "globex",
            "/v1/domains",
            Some(&admin("globex")),
            Some(json!({ "domain": "www.globex.example" })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    let out = server.veneer(&["domains", "list"], &[]).await;
    let text = &out.stdout;
    assert_eq!(out.code, Some(1), "one is not served: {text}");
    let line = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("{name} listed: {text}"))
            .to_owned()
    };
    assert!(
        line("shop.acme.example").contains("\tacme\tverified\tyes\t"),
        "{text}"
    );
    assert!(
        line("www.globex.example").contains("\tglobex\tpending\tno\t"),
        "{text}"
    );
    let out = server
        .veneer(&["domains", "list", "--tenant", "acme", "--json"], &[])
        .await;
    assert_eq!(out.code, Some(0), "{out:?}");
    let rows: Vec<Value> = out
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["domain"], "shop.acme.example");
    assert_eq!(rows[0]["served"], true);

    // Checking before the record is published says what is missing.
    let dns = dns.to_string();
    let check = async |wait: &str| {
        server
            .veneer(
                &[
                    "domains",
                    "check",
                    "www.globex.example",
                    "--dns-server",
                    &dns,
                    "--base-domain",
                    BASE,
                    "--wait-secs",
                    wait,
                ],
                &[],
            )
            .await
    };
    let out = check("0").await;
    let text = &out.stdout;
    assert_eq!(out.code, Some(0), "{text}");
    assert!(text.contains("DNS now: no TXT record"), "{text}");
    // Published as a CNAME to the tenant's host: the server's check verifies it.
    server
        .dns
        .as_ref()
        .expect("dns")
        .set_cname("www.globex.example", &format!("globex.{BASE}"));
    let out = check("30").await;
    let text = &out.stdout;
    assert_eq!(out.code, Some(0), "{text}");
    assert!(
        text.contains("DNS now: proven by its CNAME record"),
        "{text}"
    );
    assert!(
        text.contains("checked: verified: verified by CNAME"),
        "{text}"
    );
    let out = server
        .veneer(&["domains", "check", "nobody.example"], &[])
        .await;
    assert_eq!(out.code, Some(2), "{out:?}");
    assert!(
        out.stderr.contains("no tenant claims `nobody.example`"),
        "{out:?}"
    );
}
both_backends!(the_domains_cli_lists_and_checks, cli);
