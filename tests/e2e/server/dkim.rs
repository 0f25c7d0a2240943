//! Sending-domain authentication end to end: a tenant's sending domain gets a
//! DKIM key and the records to publish; once the record is on the test's DNS
//! server the domain verifies and every message through the platform relay
//! goes out as the tenant's address, DKIM-signed — checked by dkimpy, an
//! implementation independent of the host's, against the published key.
//! Rotation, a record that disappears, and another tenant naming the same
//! domain are the attacks.

use std::process::Command;
use std::sync::Once;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use super::email::{BOUNCE_DOMAIN, WAIT, configure, parse, send, server_with, settings};
use super::harness::{Db, Server, admin, member};
use crate::smtp_server::{ReceivedMail, SmtpServer};
use veneer::both_backends;

/// Installs dkimpy and dnspython for the verifier when missing (once per run).
fn ensure_dkimpy() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let present = Command::new("python3")
            .args(["-c", "import dkim, dns.resolver"])
            .status()
            .is_ok_and(|s| s.success());
        if !present {
            let status = Command::new("python3")
                .args([
                    "-m",
                    "pip",
                    "install",
                    "--quiet",
                    "--disable-pip-version-check",
                    "dkimpy",
                    "dnspython",
                ])
                .status()
                .expect("python3 runs");
            assert!(status.success(), "pip install dkimpy dnspython");
        }
    });
}

/// dkimpy's verdict on `mail` ("pass", or "fail: why").
async fn dkimpy(server: &Server, data: Vec<u8>) -> String {
    let dns = server.dns.as_ref().expect("a DNS server").addr.to_string();
    tokio::task::spawn_blocking(move || {
        ensure_dkimpy();
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("message.eml");
        std::fs::write(&path, &data).expect("write the message");
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/e2e/dkim_verify.py");
        let out = Command::new("python3")
            .arg(script)
            .arg(&path)
            .arg(&dns)
            .output()
            .expect("python3 runs");
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    })
    .await
    .expect("the verifier ran")
}

/// The tags of the message's DKIM-Signature header (`d`, `s`, ...).
fn signature_tag(mail: &ReceivedMail, tag: &str) -> Option<String> {
    let parsed = parse(mail);
    let header = parsed.header("dkim-signature");
    let value = header.first()?;
    value.split(';').find_map(|part| {
        let (name, value) = part.split_once('=')?;
        (name.trim() == tag).then(|| value.trim().to_owned())
    })
}

async fn domain_view(server: &Server, tenant: &str, domain: &str) -> Value {
    let (status, body) = server
        .get(
            tenant,
            &format!("/v1/email/domains/{domain}"),
            &member(tenant),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["domain"].clone()
}

fn dkim_records(view: &Value) -> Vec<(String, String)> {
    view["records"]
        .as_array()
        .expect("records")
        .iter()
        .filter(|r| r["purpose"] == "dkim")
        .map(|r| {
            (
                r["name"].as_str().unwrap_or_default().to_owned(),
                r["value"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

async fn check(server: &Server, tenant: &str, domain: &str) {
    let (status, body) = server
        .call(
            Method::POST,
            tenant,
            &format!("/v1/email/domains/{domain}/check"),
            Some(&admin(tenant)),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
}

async fn welcome(server: &Server, smtp: &SmtpServer, tenant: &str, n: usize) -> ReceivedMail {
    send(
        server,
        tenant,
        "welcome",
        "ann@example.com",
        json!({ "customer_name": "Ann" }),
    )
    .await;
    let mut received = smtp.wait_for_messages(n, Duration::from_secs(WAIT)).await;
    assert_eq!(received.len(), n, "{n} messages received");
    received.pop().expect("the last message")
}

async fn signed_and_verified(db: Db) {
    let smtp = SmtpServer::start().await;
    let server = server_with(db, &smtp).await;
    let dns = server.dns.as_ref().expect("dns");

    // Setting the sending domain gives the records to publish.
    server
        .configure_email(
            "acme",
            settings("acme.example", "Acme Orders", "help@acme.example"),
        )
        .await;
    let pending = domain_view(&server, "acme", "acme.example").await;
    assert_eq!(pending["status"], "pending", "{pending}");
    assert_eq!(pending["sends_as_domain"], false);
    let records = pending["records"].as_array().expect("records");
    let purposes: Vec<&str> = records
        .iter()
        .filter_map(|r| r["purpose"].as_str())
        .collect();
    assert_eq!(purposes, ["dkim", "spf", "dmarc"], "{pending}");
    let (dkim_name, dkim_value) = dkim_records(&pending).remove(0);
    assert!(
        dkim_name.ends_with("._domainkey.acme.example"),
        "{dkim_name}"
    );
    assert!(
        dkim_value.starts_with("v=DKIM1; k=rsa; p=MIIB"),
        "{dkim_value}"
    );
    let spf = &records[1];
    assert_eq!(spf["name"], "acme.example");
    assert_eq!(
        spf["value"],
        format!("v=spf1 include:_spf.{BOUNCE_DOMAIN} ~all")
    );
    assert_eq!(records[2]["name"], "_dmarc.acme.example");
    // The private key is nowhere in the API, nor stored in clear.
    assert!(!pending.to_string().to_ascii_lowercase().contains("private"));
    let stored = server.stored_text("dkim_keys").await;
    assert!(
        !stored.contains("PRIVATE KEY"),
        "the private key is encrypted"
    );
    assert!(!stored.contains("MIIE"), "no PKCS#1 key body in clear");

    // Unverified: from the platform's address, unsigned.
    let first = welcome(&server, &smtp, "acme", 1).await;
    assert_eq!(
        parse(&first).one("from"),
        format!("\"Acme Orders\" <no-reply@{BOUNCE_DOMAIN}>")
    );
    assert!(parse(&first).header("dkim-signature").is_empty());

    // Published (with SPF and DMARC): verified, signed, and dkimpy agrees.
    dns.set_txt(
        "acme.example",
        &[&format!("v=spf1 include:_spf.{BOUNCE_DOMAIN} ~all")],
    );
    dns.set_txt("_dmarc.acme.example", &["v=DMARC1; p=none"]);
    let selector = server.verify_sending_domain("acme", "acme.example").await;
    let verified = domain_view(&server, "acme", "acme.example").await;
    assert_eq!(verified["status"], "verified", "{verified}");
    assert!(
        verified["spf_result"]
            .as_str()
            .unwrap_or_default()
            .contains("includes"),
        "{verified}"
    );
    assert!(
        verified["dmarc_result"]
            .as_str()
            .unwrap_or_default()
            .contains("p=none"),
        "{verified}"
    );
    let signed = welcome(&server, &smtp, "acme", 2).await;
    assert_eq!(
        parse(&signed).one("from"),
        "\"Acme Orders\" <orders@acme.example>"
    );
    assert_eq!(signature_tag(&signed, "d").as_deref(), Some("acme.example"));
    assert_eq!(
        signature_tag(&signed, "s").as_deref(),
        Some(selector.as_str())
    );
    assert_eq!(signature_tag(&signed, "a").as_deref(), Some("rsa-sha256"));
    assert_eq!(dkimpy(&server, signed.data.clone()).await, "pass");
    // The verifier is real: a changed subject fails it.
    let tampered = String::from_utf8_lossy(&signed.data).replacen("Subject: ", "Subject: Re: ", 1);
    assert!(
        dkimpy(&server, tampered.into_bytes())
            .await
            .starts_with("fail")
    );

    // Another tenant naming the same domain gets a key of its own, and
    // acme's verification does not let it send as acme.example.
    server
        .configure_email(
            "globex",
            settings("acme.example", "Not Acme", "x@globex.example"),
        )
        .await;
    let of_globex = domain_view(&server, "globex", "acme.example").await;
    assert_eq!(of_globex["status"], "pending", "{of_globex}");
    assert_ne!(
        dkim_records(&of_globex)[0].0,
        dkim_name,
        "a selector of its own"
    );
    let from_globex = welcome(&server, &smtp, "globex", 3).await;
    assert_eq!(
        parse(&from_globex).one("from"),
        format!("\"Not Acme\" <no-reply@{BOUNCE_DOMAIN}>"),
        "never as acme.example"
    );
    assert!(parse(&from_globex).header("dkim-signature").is_empty());

    // Rotation: the new key waits for its record while the old one signs.
    let (status, body) = server
        .call(
            Method::POST,
            "acme",
            "/v1/email/domains/acme.example/rotate",
            Some(&admin("acme")),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let rotating = &body["domain"];
    assert_eq!(rotating["status"], "verified", "{rotating}");
    let new_key = rotating["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .find(|k| k["state"] == "pending")
        .expect("a pending key")["selector"]
        .as_str()
        .expect("selector")
        .to_owned();
    assert_ne!(new_key, selector);
    // A second rotation before the first is done is refused.
    let (status, body) = server
        .call(
            Method::POST,
            "acme",
            "/v1/email/domains/acme.example/rotate",
            Some(&admin("acme")),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"]["code"], "conflict", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains(&new_key),
        "{body}"
    );
    let during = welcome(&server, &smtp, "acme", 4).await;
    assert_eq!(
        signature_tag(&during, "s").as_deref(),
        Some(selector.as_str())
    );
    assert_eq!(dkimpy(&server, during.data.clone()).await, "pass");
    let (name, value) = dkim_records(rotating)
        .into_iter()
        .find(|(name, _)| name.starts_with(&new_key))
        .expect("the new key's record");
    dns.set_txt(&name, &[&value]);
    check(&server, "acme", "acme.example").await;
    let rotated = server
        .eventually(WAIT, async |s| {
            let view = domain_view(s, "acme", "acme.example").await;
            view["keys"]
                .as_array()?
                .iter()
                .any(|k| k["selector"] == new_key.as_str() && k["state"] == "active")
                .then_some(view)
        })
        .await
        .expect("the new key becomes active");
    let old = rotated["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .find(|k| k["selector"] == selector.as_str())
        .expect("the old key")
        .clone();
    assert_eq!(old["state"], "retired", "{rotated}");
    let after = welcome(&server, &smtp, "acme", 5).await;
    assert_eq!(
        signature_tag(&after, "s").as_deref(),
        Some(new_key.as_str())
    );
    assert_eq!(dkimpy(&server, after.data.clone()).await, "pass");

    // The signing record removed: back to the platform's address.
    dns.remove(&name);
    check(&server, "acme", "acme.example").await;
    let lost = server
        .eventually(WAIT, async |s| {
            let view = domain_view(s, "acme", "acme.example").await;
            (view["status"] == "pending").then_some(view)
        })
        .await
        .expect("the domain goes back to pending");
    assert!(
        lost["last_result"].as_str().unwrap_or("").contains("gone"),
        "{lost}"
    );
    let (status, body) = server
        .get("acme", "/v1/email/settings", &member("acme"))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["sending_as"]["own_domain"], false, "{body}");
    let unsigned = welcome(&server, &smtp, "acme", 6).await;
    assert_eq!(
        parse(&unsigned).one("from"),
        format!("\"Acme Orders\" <no-reply@{BOUNCE_DOMAIN}>")
    );

    // The audit log tells the story.
    let (status, body) = server.get("acme", "/v1/audit", &admin("acme")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let actions: Vec<&str> = body["audit"]
        .as_array()
        .expect("audit entries")
        .iter()
        .filter_map(|e| e["action"].as_str())
        .filter(|a| a.starts_with("email.domain"))
        .collect();
    for action in [
        "email.domain.add",
        "email.domain.verified",
        "email.domain.rotate",
        "email.domain.missing",
    ] {
        assert!(actions.contains(&action), "{action} in {actions:?}");
    }
}
both_backends!(
    mail_from_a_verified_domain_is_dkim_signed_and_verifies,
    signed_and_verified
);

/// The routes refuse what they should: another tenant's domain, a member
/// rotating, a domain that is not set up.
async fn refusals(db: Db) {
    let smtp = SmtpServer::start().await;
    let server = server_with(db, &smtp).await;
    configure(
        &server,
        "acme",
        settings("acme.example", "Acme Orders", "help@acme.example"),
    )
    .await;
    for (method, path) in [
        (Method::GET, "/v1/email/domains/acme.example"),
        (Method::POST, "/v1/email/domains/acme.example/check"),
        (Method::POST, "/v1/email/domains/acme.example/rotate"),
        (Method::DELETE, "/v1/email/domains/acme.example"),
    ] {
        let (status, body) = server
            .call(method.clone(), "globex", path, Some(&admin("globex")), None)
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{method} {path}: {body}");
        // acme's token on globex's host is refused before anything is looked up.
        let (status, _) = server
            .call(method.clone(), "globex", path, Some(&admin("acme")), None)
            .await;
        assert!(
            status == StatusCode::FORBIDDEN || status == StatusCode::UNAUTHORIZED,
            "{method} {path}: {status}"
        );
    }
    let (status, body) = server
        .call(
            Method::POST,
            "acme",
            "/v1/email/domains/acme.example/rotate",
            Some(&member("acme")),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let (status, body) = server
        .get("acme", "/v1/email/domains", &member("acme"))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["domains"].as_array().map(Vec::len), Some(1), "{body}");
    let (status, body) = server
        .get(
            "",
            "/v1/admin/tenants/acme/email/domains",
            &veneer::test_support::platform_admin(),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["domains"][0]["domain"], "acme.example", "{body}");
    // Removed: mail goes from the platform again, and the domain is gone.
    let (status, body) = server
        .call(
            Method::DELETE,
            "acme",
            "/v1/email/domains/acme.example",
            Some(&admin("acme")),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let (status, body) = server
        .get("acme", "/v1/email/settings", &member("acme"))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["sending_as"]["own_domain"], false, "{body}");
}
both_backends!(sending_domain_routes_refuse_other_tenants, refusals);

/// `veneer secrets rotate` re-encrypts SMTP passwords and DKIM keys (beside
/// Shopify credentials) under the new key, leaves current ones alone on a
/// second run, and reports — without dropping — what no configured key opens.
async fn rotation(db: Db) {
    use base64::Engine;
    let key = |id: &str, byte: u8| {
        format!(
            "{id}:{}",
            base64::engine::general_purpose::STANDARD.encode([byte; 32])
        )
    };
    let (k1, k2, k3) = (key("k1", 1), key("k2", 2), key("k3", 3));
    let first = k1.clone();
    let server = Server::start_with_dns(db, move |config| {
        config.secret_key = Some(first);
        config.smtp_relay_allow = vec!["127.0.0.1:2525".parse().expect("allow")];
    })
    .await;
    server
        .configure_email(
            "acme",
            json!({
                "sending_domain": "acme.example",
                "from_name": "Acme",
                "from_address": "orders@acme.example",
                "relay": "custom",
                "smtp_host": "127.0.0.1",
                "smtp_port": 2525,
                "smtp_tls": "starttls",
                "smtp_username": "acme",
                "smtp_password": "relay-password",
            }),
        )
        .await;
    server
        .configure_email(
            "globex",
            settings("globex.example", "Globex", "help@globex.example"),
        )
        .await;
    // A send waiting in the jobs table (the platform relay is not there):
    // its body is sealed (the delivery log keeps recipient and subject).
    send(
        &server,
        "globex",
        "welcome",
        "carol@example.com",
        json!({ "sell_url": "https://sealed.example/sell-7f3a" }),
    )
    .await;
    let jobs = server.stored_text("jobs").await;
    assert!(jobs.contains("email.send"), "the send job is stored");
    assert!(
        !jobs.contains("sealed.example/sell-7f3a"),
        "no body in clear"
    );
    let rotate = async |current: &str, old: &str| {
        let out = server
            .veneer(
                &["secrets", "rotate"],
                &[
                    ("VENEER_SECRET_KEY", current),
                    ("VENEER_SECRET_OLD_KEYS", old),
                ],
            )
            .await;
        (out.code, out.stdout)
    };
    let (code, text) = rotate(&k2, &k1).await;
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.contains("SMTP passwords: 1 re-encrypted under key `k2`, 0 already current"),
        "{text}"
    );
    assert!(
        text.contains("DKIM keys: 2 re-encrypted under key `k2`, 0 already current"),
        "{text}"
    );
    assert!(
        text.contains("Job payloads: 1 re-encrypted under key `k2`, 0 already current"),
        "{text}"
    );
    let (code, text) = rotate(&k2, &k1).await;
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.contains("SMTP passwords: 0 re-encrypted under key `k2`, 1 already current"),
        "{text}"
    );
    assert!(
        text.contains("DKIM keys: 0 re-encrypted under key `k2`, 2 already current"),
        "{text}"
    );
    assert!(
        text.contains("Job payloads: 0 re-encrypted under key `k2`, 1 already current"),
        "{text}"
    );

    // Sealed under k2 now: k2 alone opens them, with their own AAD.
    let k2_only = veneer::secrets::SecretBox::from_env_or_dev(Some(&k2), &[], false).expect("k2");
    let acme = veneer::tenancy::TenantId::new("acme").expect("id");
    let tenant = server.state.storage.tenant(&acme);
    let settings = tenant.email_settings().await.expect("read").expect("set");
    let sealed = settings.settings.smtp_password_enc.expect("a password");
    let plain = k2_only
        .decrypt(&sealed, &veneer::email::password_aad(&acme))
        .expect("opens under k2");
    assert_eq!(&plain[..], b"relay-password");
    let domain = tenant
        .sending_domain("acme.example")
        .await
        .expect("read")
        .expect("a sending domain");
    let dkim_key = &domain.keys[0];
    let pem = k2_only
        .decrypt(
            &dkim_key.private_key_enc,
            &veneer::email::dkim::key_aad(&acme, "acme.example", &dkim_key.selector),
        )
        .expect("opens under k2");
    assert!(String::from_utf8_lossy(&pem).contains("BEGIN RSA PRIVATE KEY"));

    // A key nobody configured: reported, exit 1, nothing lost.
    let (code, text) = rotate(&k3, "").await;
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains("acme SMTP password: cannot be opened"),
        "{text}"
    );
    assert!(text.contains("acme DKIM key veneer-"), "{text}");
    let after = tenant.email_settings().await.expect("read").expect("set");
    assert_eq!(
        after.settings.smtp_password_enc.as_deref(),
        Some(sealed.as_str())
    );
}
both_backends!(
    secrets_rotate_reencrypts_smtp_passwords_and_dkim_keys,
    rotation
);
