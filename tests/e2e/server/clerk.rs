//! Clerk's organisation webhooks, delivered as Svix delivers them (signed by
//! the test-support sender, which shares no code with the host): forged,
//! tampered, stale and replayed deliveries do nothing; a deleted organisation
//! suspends its tenant; a new one is provisioned only when the platform says
//! so, and never over an existing tenant; a membership change makes the
//! member's older tokens fail on the next request; and a platform admin
//! relinks a tenant to another organisation.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use veneer::auth::{OrgRole, dev_token};
use veneer::both_backends;
use veneer::test_support::svix_sender::{SvixSender, event, membership, now_secs, organization};

use super::harness::{Db, Server, admin, member, platform_admin};

const SECRET: &str = "whsec_C2FtcGxlLWNsZXJrLXdlYmhvb2stc2VjcmV0LTE=";

/// A server taking Clerk webhooks signed with [`SECRET`].
async fn server(db: Db, provision: bool) -> Server {
    Server::in_process_with(db, |config| {
        config.clerk.clerk_webhook_secret = Some(SECRET.to_owned());
        config.clerk.clerk_provision_tenants = provision;
    })
    .await
}

/// Delivers `body` to the platform host with `headers`; status and JSON.
async fn deliver(
    server: &Server,
    host: &str,
    headers: &axum::http::HeaderMap,
    body: &[u8],
) -> (StatusCode, Value) {
    let mut request = server
        .request(Method::POST, host, "/v1/clerk/webhooks")
        .header("content-type", "application/json")
        .body(body.to_vec());
    for (name, value) in headers {
        request = request.header(name.as_str(), value.to_str().expect("ascii"));
    }
    let reply = request.send().await.expect("answered");
    let status = reply.status();
    let text = reply.text().await.expect("utf-8");
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// Signs `body` as message `id` now and delivers it.
async fn send(server: &Server, id: &str, body: &[u8]) -> (StatusCode, Value) {
    let headers = SvixSender::new(SECRET).headers(id, now_secs(), body);
    deliver(server, "", &headers, body).await
}

fn code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or_default()
}

async fn tenant(server: &Server, id: &str) -> (StatusCode, Value) {
    server
        .get("", &format!("/v1/admin/tenants/{id}"), &platform_admin())
        .await
}

async fn audit(server: &Server, tenant: &str) -> Vec<Value> {
    let (status, body) = server
        .get(
            "",
            &format!("/v1/admin/audit?tenant={tenant}&limit=100"),
            &platform_admin(),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["audit"].as_array().cloned().unwrap_or_default()
}

async fn forged_stale_and_replayed_deliveries_do_nothing(db: Db) {
    let server = server(db, false).await;
    let body = event(
        "organization.deleted",
        json!({ "id": "org_acme", "deleted": true, "object": "organization" }),
    );
    let now = now_secs();
    let forged = SvixSender::new("whsec_b3RoZXItc2VjcmV0LW5vdC10aGUtZW5kcG9pbnQ=");
    let stale = SvixSender::new(SECRET).headers("msg_stale", now - 600, &body);
    let future = SvixSender::new(SECRET).headers("msg_future", now + 600, &body);
    let good = SvixSender::new(SECRET).headers("msg_tampered", now, &body);
    let tampered = String::from_utf8(body.clone())
        .expect("utf-8")
        .replace("org_acme", "org_globex")
        .into_bytes();
    let mut unsigned = good.clone();
    unsigned.remove("svix-signature");
    for (what, headers, body) in [
        (
            "another secret",
            forged.headers("msg_forged", now, &body),
            &body,
        ),
        ("stale", stale, &body),
        ("future", future, &body),
        ("tampered body", good, &tampered),
        ("no signature", unsigned, &body),
        ("no headers", axum::http::HeaderMap::new(), &body),
    ] {
        let (status, reply) = deliver(&server, "", &headers, body).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{what}: {reply}");
        assert_eq!(code(&reply), "invalid_clerk_webhook", "{what}: {reply}");
    }
    // Only on the platform's host.
    let headers = SvixSender::new(SECRET).headers("msg_host", now, &body);
    let (status, reply) = deliver(&server, "acme", &headers, &body).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{reply}");
    assert_eq!(code(&reply), "unknown_host");
    // Nothing happened to either tenant.
    for id in ["acme", "globex"] {
        let (status, body) = server.get(id, "/v1/config", &member(id)).await;
        assert_eq!(status, StatusCode::OK, "{id}: {body}");
    }

    // A genuine delivery acts once; the same bytes again, or Svix's retry
    // of the message (same id, signed anew), are acknowledged as duplicates.
    let rename = event(
        "organization.updated",
        organization("org_globex", "Globex Worldwide", "globex"),
    );
    let first = SvixSender::new(SECRET).headers("msg_rename", now_secs(), &rename);
    let (status, reply) = deliver(&server, "", &first, &rename).await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    assert_eq!(reply["status"], "processed", "{reply}");
    assert_eq!(reply["action"], "renamed");
    assert_eq!(reply["tenant"], "globex");
    let (status, reply) = deliver(&server, "", &first, &rename).await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    assert_eq!(reply["status"], "duplicate", "{reply}");
    let (status, reply) = send(&server, "msg_rename", &rename).await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    assert_eq!(reply["status"], "duplicate", "{reply}");
    let renames = audit(&server, "globex")
        .await
        .into_iter()
        .filter(|e| e["action"] == "tenant.update" && e["actor"] == "clerk")
        .count();
    assert_eq!(renames, 1, "acted on once");
    let (_, globex) = tenant(&server, "globex").await;
    assert_eq!(globex["tenant"]["name"], "Globex Worldwide");

    // Signed but not an event: 400, and not remembered as handled.
    let (status, reply) = send(&server, "msg_junk", b"[1,2]").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{reply}");
    assert_eq!(code(&reply), "invalid_json");
    // An event Veneer does not act on is acknowledged.
    let (status, reply) = send(
        &server,
        "msg_user",
        &event("user.created", json!({ "id": "user_1" })),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    assert_eq!(reply["status"], "ignored", "{reply}");

    // One rate for the endpoint, before any signature: a flood of forgeries
    // ends in 429s.
    let slow = Server::in_process_with(db, |config| {
        config.clerk.clerk_webhook_secret = Some(SECRET.to_owned());
        config.clerk.clerk_webhook_rate_per_sec = 1;
    })
    .await;
    let mut limited = 0;
    for i in 0..12 {
        let headers = forged.headers(&format!("msg_flood_{i}"), now_secs(), &body);
        let (status, reply) = deliver(&slow, "", &headers, &body).await;
        match status {
            StatusCode::UNAUTHORIZED => {}
            StatusCode::TOO_MANY_REQUESTS => limited += 1,
            other => panic!("{other}: {reply}"),
        }
    }
    assert!(limited >= 1, "the burst is ten deliveries");

    // Without a secret the endpoint is off, and says so.
    let off = Server::in_process(db).await;
    let (status, reply) = send(&off, "msg_off", &rename).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{reply}");
    assert_eq!(code(&reply), "clerk_webhooks_disabled");
}

async fn deleting_an_organisation_suspends_its_tenant(db: Db) {
    let server = server(db, false).await;
    let (status, reply) = send(
        &server,
        "msg_delete",
        &event(
            "organization.deleted",
            json!({ "id": "org_acme", "deleted": true, "object": "organization" }),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    assert_eq!(reply["action"], "suspended", "{reply}");
    assert_eq!(reply["tenant"], "acme");
    let (status, body) = server.get("acme", "/v1/config", &member("acme")).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(code(&body), "tenant_suspended");
    let (_, acme) = tenant(&server, "acme").await;
    assert_eq!(acme["tenant"]["status"], "suspended");
    assert!(
        acme["tenant"]["deleted_at"].is_null(),
        "suspended, not deleted"
    );
    let entry = audit(&server, "acme")
        .await
        .into_iter()
        .find(|e| e["action"] == "tenant.update" && e["actor"] == "clerk")
        .expect("the suspension is audited");
    assert!(entry["after"].to_string().contains("suspended"), "{entry}");
    // Another tenant is untouched; an unlinked organisation changes nothing.
    let (status, _) = server.get("globex", "/v1/config", &member("globex")).await;
    assert_eq!(status, StatusCode::OK);
    let (status, reply) = send(
        &server,
        "msg_nobody",
        &event("organization.deleted", json!({ "id": "org_nobody" })),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    assert_eq!(reply["status"], "ignored");
}

async fn organisations_are_provisioned_only_when_the_platform_says_so(db: Db) {
    // Off (the default): nothing is created.
    let off = server(db, false).await;
    let created = event(
        "organization.created",
        organization("org_2initrode", "Initrode", "initrode"),
    );
    let (status, reply) = send(&off, "msg_created", &created).await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    assert_eq!(reply["status"], "ignored", "{reply}");
    let (status, _) = tenant(&off, "initrode").await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // On: a tenant named by the slug, linked to the organisation, audited.
    let on = server(db, true).await;
    let (status, reply) = send(&on, "msg_created", &created).await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    assert_eq!(reply["action"], "provisioned", "{reply}");
    let (status, body) = tenant(&on, "initrode").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["tenant"]["org_id"], "org_2initrode");
    assert_eq!(body["tenant"]["name"], "Initrode");
    assert_eq!(body["tenant"]["status"], "active");
    let token = dev_token(
        "org_2initrode",
        OrgRole::Member,
        "user_i",
        false,
        Duration::from_secs(600),
    );
    let (status, body) = on.get("initrode", "/v1/config", &token).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "its organisation's tokens work: {body}"
    );
    assert!(
        audit(&on, "initrode")
            .await
            .iter()
            .any(|e| e["action"] == "tenant.create" && e["actor"] == "clerk")
    );

    // A slug naming an existing tenant: skipped and audited there, never
    // overwritten.
    let clash = event(
        "organization.created",
        organization("org_2imposter", "Acme Imposters", "acme"),
    );
    let (status, reply) = send(&on, "msg_clash", &clash).await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    assert_eq!(reply["status"], "ignored", "{reply}");
    let (_, acme) = tenant(&on, "acme").await;
    assert_eq!(acme["tenant"]["org_id"], "org_acme");
    assert_eq!(acme["tenant"]["name"], "Acme Luxury Consignment");
    assert!(
        audit(&on, "acme")
            .await
            .iter()
            .any(|e| e["action"] == "clerk.provision_skipped" && e["actor"] == "clerk"),
        "the clash is audited on the tenant holding the id"
    );
}

/// Waits until a token minted now has an `iat` at or after `at_ms`.
async fn until_after(at_ms: i64) {
    while now_secs() * 1000 < at_ms {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn a_role_change_takes_effect_on_the_next_request(db: Db) {
    let server = server(db, false).await;
    let old_admin = admin("acme");
    let colleague = dev_token(
        "org_acme",
        OrgRole::Admin,
        "user_colleague",
        false,
        Duration::from_secs(600),
    );
    let put = |token: String| {
        let server = &server;
        async move {
            server
                .call(
                    Method::PUT,
                    "acme",
                    "/v1/kv/greeting",
                    Some(&token),
                    Some(json!({ "value": "hi" })),
                )
                .await
        }
    };
    let (status, body) = put(old_admin.clone()).await;
    assert!(
        status.is_success(),
        "an admin writes (token now cached): {body}"
    );
    tokio::time::sleep(Duration::from_millis(5)).await;

    // Clerk demotes the user to member.
    let demoted = event(
        "organizationMembership.updated",
        membership("org_acme", "user_acme", "org:member"),
    );
    let changed_at = serde_json::from_slice::<Value>(&demoted).expect("json")["timestamp"]
        .as_i64()
        .expect("timestamp");
    let (status, reply) = send(&server, "msg_demote", &demoted).await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    assert_eq!(reply["action"], "tokens_revoked", "{reply}");

    // The very next request with the old (cached, still unexpired) admin
    // token is refused, for reads too.
    let (status, body) = put(old_admin.clone()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(code(&body), "token_revoked");
    let (status, body) = server.get("acme", "/v1/config", &old_admin).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    // Another member of the organisation is not touched.
    let (status, body) = put(colleague.clone()).await;
    assert!(status.is_success(), "{body}");

    // Clerk's next token carries the new role: a member now.
    until_after(changed_at).await;
    let fresh = member("acme");
    let (status, body) = server.get("acme", "/v1/config", &fresh).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = put(fresh.clone()).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(code(&body), "insufficient_role");
    assert!(
        audit(&server, "acme")
            .await
            .iter()
            .any(|e| e["action"] == "clerk.membership.updated" && e["actor"] == "clerk")
    );

    // Removed from the organisation: the member's tokens stop at once too.
    tokio::time::sleep(Duration::from_millis(5)).await;
    let (status, reply) = send(
        &server,
        "msg_remove",
        &event(
            "organizationMembership.deleted",
            membership("org_acme", "user_acme", "org:member"),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    let (status, body) = server.get("acme", "/v1/config", &fresh).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(code(&body), "token_revoked");
}

async fn a_platform_admin_relinks_a_tenant_to_another_organisation(db: Db) {
    let server = server(db, false).await;
    let patch = |id: &str, body: Value| {
        let server = &server;
        let path = format!("/v1/admin/tenants/{id}");
        async move {
            server
                .call(
                    Method::PATCH,
                    "",
                    &path,
                    Some(&platform_admin()),
                    Some(body),
                )
                .await
        }
    };
    let old = member("acme");
    let (status, body) = server.get("acme", "/v1/config", &old).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = patch("acme", json!({ "org_id": "org_2acmeReal" })).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["tenant"]["org_id"], "org_2acmeReal");
    // At once: the old organisation's token no longer, the new one's yes.
    let (status, body) = server.get("acme", "/v1/config", &old).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(code(&body), "wrong_tenant");
    let new = dev_token(
        "org_2acmeReal",
        OrgRole::Member,
        "user_acme",
        false,
        Duration::from_secs(600),
    );
    let (status, body) = server.get("acme", "/v1/config", &new).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let entry = audit(&server, "acme")
        .await
        .into_iter()
        .find(|e| e["action"] == "tenant.update")
        .expect("audited");
    assert!(entry["before"].to_string().contains("org_acme"), "{entry}");
    assert!(
        entry["after"].to_string().contains("org_2acmeReal"),
        "{entry}"
    );

    // Unique, and checked like a creation.
    let (status, body) = patch("globex", json!({ "org_id": "org_2acmeReal" })).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(code(&body), "conflict");
    for bad in ["", "org 2", "org_<script>", &"o".repeat(129)] {
        let (status, body) = patch("globex", json!({ "org_id": bad })).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
        assert_eq!(code(&body), "invalid");
    }
    let (_, globex) = tenant(&server, "globex").await;
    assert_eq!(globex["tenant"]["org_id"], "org_globex");
    // Only a platform admin.
    let (status, _) = server
        .call(
            Method::PATCH,
            "",
            "/v1/admin/tenants/acme",
            Some(&admin("acme")),
            Some(json!({ "org_id": "org_mine" })),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

both_backends!(
    clerk_forged_stale_and_replayed_webhooks_do_nothing,
    forged_stale_and_replayed_deliveries_do_nothing
);
both_backends!(
    clerk_deleting_an_organisation_suspends_its_tenant,
    deleting_an_organisation_suspends_its_tenant
);
both_backends!(
    clerk_organisations_are_provisioned_only_when_the_platform_says_so,
    organisations_are_provisioned_only_when_the_platform_says_so
);
both_backends!(
    clerk_a_role_change_takes_effect_on_the_next_request,
    a_role_change_takes_effect_on_the_next_request
);
both_backends!(
    clerk_a_platform_admin_relinks_a_tenant_to_another_organisation,
    a_platform_admin_relinks_a_tenant_to_another_organisation
);
