//! Email end to end: a real SMTP server on loopback (tests/e2e/smtp_server.rs)
//! is the platform's relay; the send route, the tenant's plugin, the queue, the
//! `email.send` job, lettre, the bounce endpoint and the suppression list are
//! the code under test, against SQLite and PostgreSQL.

use std::collections::BTreeSet;
use std::time::Duration;

use base64::Engine;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use veneer_plugin_artifacts as built_plugins;

use super::harness::{Db, Server, admin, member};
use crate::smtp_server::{ReceivedMail, SmtpServer};
use crate::util::read;
use veneer::both_backends;

pub(super) const BOUNCE_DOMAIN: &str = "bounces.veneer.test";
const BOUNCE_TOKEN: &str = "test-bounce-token";
/// Seconds to wait for something the worker does.
pub(super) const WAIT: u64 = 30;

/// A server whose platform relay is `smtp`, with quick job retries.
pub(super) async fn server_with(db: Db, smtp: &SmtpServer) -> Server {
    let port = smtp.port();
    Server::start_with_dns(db, |config| {
        config.smtp_host = "127.0.0.1".into();
        config.smtp_port = port;
        config.smtp_tls = "none".into();
        config.job_backoff_ms = 50;
    })
    .await
}

/// Settings sending through the platform relay from `orders@<domain>`.
pub(super) fn settings(domain: &str, from_name: &str, reply_to: &str) -> Value {
    json!({
        "sending_domain": domain,
        "from_name": from_name,
        "from_address": format!("orders@{domain}"),
        "reply_to": reply_to,
        "relay": "platform",
    })
}

/// Saves the settings and publishes the sending domain's DKIM record (a
/// platform-relay sender's own address is used only for a verified domain).
pub(super) async fn configure(server: &Server, tenant: &str, settings: Value) {
    let domain = settings["sending_domain"]
        .as_str()
        .filter(|_| settings["relay"] == "platform")
        .map(str::to_owned);
    server.configure_email(tenant, settings).await;
    if let Some(domain) = domain {
        server.verify_sending_domain(tenant, &domain).await;
    }
}

/// Sends `template` to `to` as `tenant`; returns the 202 body.
pub(super) async fn send(
    server: &Server,
    tenant: &str,
    template: &str,
    to: &str,
    context: Value,
) -> Value {
    let (status, body) = server
        .call(
            Method::POST,
            tenant,
            "/v1/email/send",
            Some(&admin(tenant)),
            Some(json!({ "template": template, "to": to, "context": context })),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::ACCEPTED,
        "{tenant} sends to {to}: {body}"
    );
    let id = body["message_id"].as_str().expect("message_id");
    assert!(
        id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()),
        "{body}"
    );
    body
}

fn id_of(sent: &Value) -> String {
    sent["message_id"].as_str().expect("message_id").to_owned()
}

/// The tenant's delivery log entry for message `id`.
async fn message(server: &Server, tenant: &str, id: &str) -> Value {
    let (status, body) = server
        .get(tenant, &format!("/v1/email/messages/{id}"), &member(tenant))
        .await;
    assert_eq!(status, StatusCode::OK, "{tenant} message {id}: {body}");
    body["message"].clone()
}

/// Waits until message `id` of `tenant` is in `state`; returns it.
async fn wait_for_state(server: &Server, tenant: &str, id: &str, state: &str) -> Value {
    let mut last = Value::Null;
    let found = server
        .eventually(WAIT, async |s| {
            last = message(s, tenant, id).await;
            (last["state"] == state).then(|| last.clone())
        })
        .await;
    found.unwrap_or_else(|| panic!("{tenant} message {id} never reached {state}: {last}"))
}

async fn job(server: &Server, tenant: &str, id: i64) -> Value {
    let (status, body) = server
        .get(tenant, &format!("/v1/jobs/{id}"), &member(tenant))
        .await;
    assert_eq!(status, StatusCode::OK, "{tenant} job {id}: {body}");
    body["job"].clone()
}

async fn wait_for_job(server: &Server, tenant: &str, id: i64, state: &str) -> Value {
    let mut last = Value::Null;
    let found = server
        .eventually(WAIT, async |s| {
            last = job(s, tenant, id).await;
            (last["state"] == state).then(|| last.clone())
        })
        .await;
    found.unwrap_or_else(|| panic!("{tenant} job {id} never reached {state}: {last}"))
}

async fn suppressed(server: &Server, tenant: &str) -> Vec<String> {
    let (status, body) = server
        .get(tenant, "/v1/email/suppressions", &member(tenant))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["suppressions"]
        .as_array()
        .expect("suppressions")
        .iter()
        .filter_map(|s| s["address"].as_str().map(str::to_owned))
        .collect()
}

/// POSTs a bounce to the platform host.
async fn post_bounce(
    server: &Server,
    host: &str,
    token: Option<&str>,
    content_type: &str,
    body: String,
) -> (StatusCode, Value) {
    let mut request = server
        .request(Method::POST, host, "/v1/email/bounces")
        .header("content-type", content_type)
        .body(body);
    if let Some(token) = token {
        request = request.header("x-veneer-bounce-token", token);
    }
    let response = request.send().await.expect("bounce is answered");
    let status = response.status();
    let text = response.text().await.expect("body");
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// An RFC 3464 report, as an MTA sends it back to the VERP address of the
/// message it could not deliver.
fn dsn(verp: &str, recipient: &str, message_id_header: &str) -> String {
    let boundary = "4B1D2.1736848802/mx.recipient.example";
    format!(
        "Return-Path: <>\r\n\
Delivered-To: {verp}\r\n\
Received: by mx.veneer.test (Postfix) id 4B1D2; Tue, 14 Jan 2025 10:00:02 +0000\r\n\
Date: Tue, 14 Jan 2025 10:00:02 +0000 (UTC)\r\n\
From: MAILER-DAEMON@mx.recipient.example (Mail Delivery System)\r\n\
Subject: Undelivered Mail Returned to Sender\r\n\
To: {verp}\r\n\
Auto-Submitted: auto-replied\r\n\
MIME-Version: 1.0\r\n\
Content-Type: multipart/report; report-type=delivery-status;\r\n\
\tboundary=\"{boundary}\"\r\n\
Content-Transfer-Encoding: 7bit\r\n\
Message-Id: <20250114100002.4B1D2@mx.recipient.example>\r\n\
\r\n\
This is a MIME-encapsulated message.\r\n\
\r\n\
--{boundary}\r\n\
Content-Description: Notification\r\n\
Content-Type: text/plain; charset=us-ascii\r\n\
\r\n\
I'm sorry to have to inform you that your message could not\r\n\
be delivered to one or more recipients.\r\n\
\r\n\
<{recipient}>: host mx.recipient.example[192.0.2.7] said: 550\r\n\
    5.1.1 <{recipient}>: Recipient address rejected: User unknown\r\n\
\r\n\
--{boundary}\r\n\
Content-Description: Delivery report\r\n\
Content-Type: message/delivery-status\r\n\
\r\n\
Reporting-MTA: dns; mx.recipient.example\r\n\
X-Postfix-Queue-ID: 4B1D2\r\n\
X-Postfix-Sender: rfc822; {verp}\r\n\
Arrival-Date: Tue, 14 Jan 2025 10:00:01 +0000 (UTC)\r\n\
\r\n\
Final-Recipient: rfc822; {recipient}\r\n\
Original-Recipient: rfc822;{recipient}\r\n\
Action: failed\r\n\
Status: 5.1.1\r\n\
Remote-MTA: dns; mx.recipient.example\r\n\
Diagnostic-Code: smtp; 550 5.1.1 <{recipient}>: Recipient address\r\n\
\x20   rejected: User unknown\r\n\
\r\n\
--{boundary}\r\n\
Content-Description: Undelivered Message Headers\r\n\
Content-Type: text/rfc822-headers\r\n\
\r\n\
Return-Path: <{verp}>\r\n\
From: \"Acme Orders\" <orders@acme.example>\r\n\
To: {recipient}\r\n\
Subject: Welcome\r\n\
Message-ID: {message_id_header}\r\n\
\r\n\
--{boundary}--\r\n"
    )
}

fn verp(tenant: &str, id: &str) -> String {
    format!("bounce+{tenant}.{id}@{BOUNCE_DOMAIN}")
}

// ---------------------------------------------------------------------------
// Just enough MIME to read what the relay received.

/// A message as received: unfolded headers (names lowercased) and the decoded
/// text and HTML parts of its multipart/alternative body.
#[derive(Debug)]
pub(super) struct Parsed {
    headers: Vec<(String, String)>,
    content_type: String,
    text: String,
    html: String,
}

impl Parsed {
    pub(super) fn header(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    pub(super) fn one(&self, name: &str) -> &str {
        match self.header(name).as_slice() {
            [value] => value,
            other => panic!("expected one {name} header, got {other:?}"),
        }
    }
}

fn split_head(raw: &str) -> (&str, &str) {
    raw.split_once("\r\n\r\n")
        .or_else(|| raw.split_once("\n\n"))
        .unwrap_or((raw, ""))
}

fn headers(head: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for line in head.lines() {
        if line.starts_with([' ', '\t']) {
            if let Some((_, value)) = out.last_mut() {
                value.push(' ');
                value.push_str(line.trim());
            }
        } else if let Some((name, value)) = line.split_once(':') {
            out.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
        }
    }
    out
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> &'a str {
    headers
        .iter()
        .find(|(n, _)| n == name)
        .map_or("", |(_, v)| v.as_str())
}

fn boundary(content_type: &str) -> String {
    let at = content_type
        .to_ascii_lowercase()
        .find("boundary=")
        .unwrap_or_else(|| panic!("no boundary in {content_type}"));
    let rest = &content_type[at + "boundary=".len()..];
    match rest.strip_prefix('"') {
        Some(quoted) => quoted.split('"').next().unwrap_or_default().to_owned(),
        None => rest.split(';').next().unwrap_or_default().trim().to_owned(),
    }
}

fn decode_quoted_printable(body: &str) -> Vec<u8> {
    let bytes = body.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'=' if bytes.get(i + 1) == Some(&b'\r') && bytes.get(i + 2) == Some(&b'\n') => i += 3,
            b'=' if bytes.get(i + 1) == Some(&b'\n') => i += 2,
            b'=' => {
                let hex = body.get(i + 1..i + 3).unwrap_or("");
                let byte = u8::from_str_radix(hex, 16)
                    .unwrap_or_else(|_| panic!("bad quoted-printable escape `={hex}`"));
                out.push(byte);
                i += 3;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    out
}

fn decode_part(part: &str) -> (String, String) {
    let (head, body) = split_head(part);
    let headers = headers(head);
    let content_type = header(&headers, "content-type").to_ascii_lowercase();
    let encoding = header(&headers, "content-transfer-encoding").to_ascii_lowercase();
    let bytes = match encoding.as_str() {
        "base64" => {
            let compact: String = body.chars().filter(|c| !c.is_whitespace()).collect();
            base64::engine::general_purpose::STANDARD
                .decode(compact)
                .expect("base64 part")
        }
        "quoted-printable" => decode_quoted_printable(body),
        _ => body.as_bytes().to_vec(),
    };
    // Line ends as written by the templates (they travel as CRLF).
    let text = String::from_utf8(bytes).expect("a UTF-8 part");
    (content_type, text.replace("\r\n", "\n"))
}

pub(super) fn parse(mail: &ReceivedMail) -> Parsed {
    let raw = mail.text();
    let (head, body) = split_head(&raw);
    let headers = headers(head);
    let content_type = header(&headers, "content-type").to_owned();
    assert!(
        content_type
            .to_ascii_lowercase()
            .starts_with("multipart/alternative"),
        "both parts as alternatives: {raw}"
    );
    let delimiter = format!("--{}", boundary(&content_type));
    let mut text = None;
    let mut html = None;
    for chunk in body.split(delimiter.as_str()).skip(1) {
        if chunk.starts_with("--") {
            break;
        }
        let chunk = chunk.strip_prefix("\r\n").unwrap_or(chunk);
        let chunk = chunk.strip_suffix("\r\n").unwrap_or(chunk);
        let (part_type, decoded) = decode_part(chunk);
        if part_type.starts_with("text/plain") {
            assert!(text.replace(decoded).is_none(), "one text part: {raw}");
        } else if part_type.starts_with("text/html") {
            assert!(html.replace(decoded).is_none(), "one HTML part: {raw}");
        } else {
            panic!("unexpected part {part_type}: {raw}");
        }
    }
    Parsed {
        headers,
        content_type,
        text: text.unwrap_or_else(|| panic!("a text/plain part: {raw}")),
        html: html.unwrap_or_else(|| panic!("a text/html part: {raw}")),
    }
}

// ---------------------------------------------------------------------------

/// A tenant cannot send as a domain it has not proven: until its sending
/// domain is verified, mail through the platform relay goes from the
/// platform's no-reply address with the tenant's name and its Reply-To; the
/// settings say so. Verified, mail goes as the tenant's own address.
async fn unproven_sending_domain(db: Db) {
    let smtp = SmtpServer::start().await;
    let server = server_with(db, &smtp).await;
    server
        .configure_email(
            "acme",
            settings("google.example", "Acme Orders", "help@acme.example"),
        )
        .await;
    let (status, body) = server
        .get("acme", "/v1/email/settings", &member("acme"))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let sending_as = &body["sending_as"];
    assert_eq!(sending_as["own_domain"], false, "{body}");
    assert_eq!(
        sending_as["from_address"],
        format!("no-reply@{BOUNCE_DOMAIN}")
    );
    assert!(
        sending_as["why"]
            .as_str()
            .unwrap_or("")
            .contains("not verified"),
        "{body}"
    );
    let first = send(
        &server,
        "acme",
        "welcome",
        "ann@example.com",
        json!({ "customer_name": "Ann" }),
    )
    .await;
    let received = smtp.wait_for_messages(1, Duration::from_secs(WAIT)).await;
    let parsed = parse(&received[0]);
    assert_eq!(
        parsed.one("from"),
        format!("\"Acme Orders\" <no-reply@{BOUNCE_DOMAIN}>"),
        "never as google.example"
    );
    assert_eq!(parsed.one("reply-to"), "help@acme.example");
    assert!(!parsed.one("message-id").contains("google.example"));
    let _ = first;

    // A routing claim of the domain is not enough: mail goes as it only
    // once its DKIM record verifies (and is then signed).
    server.verify_domain("acme", "google.example").await;
    let (status, body) = server
        .get("acme", "/v1/email/settings", &member("acme"))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["sending_as"]["own_domain"], false, "{body}");

    // Proven: its own address.
    server.verify_sending_domain("acme", "google.example").await;
    let (_, body) = server
        .get("acme", "/v1/email/settings", &member("acme"))
        .await;
    assert_eq!(body["sending_as"]["own_domain"], true, "{body}");
    send(
        &server,
        "acme",
        "welcome",
        "ann@example.com",
        json!({ "customer_name": "Ann" }),
    )
    .await;
    let received = smtp.wait_for_messages(2, Duration::from_secs(WAIT)).await;
    assert_eq!(
        parse(&received[1]).one("from"),
        "\"Acme Orders\" <orders@google.example>"
    );
}
both_backends!(
    an_unproven_sending_domain_sends_from_the_platform,
    unproven_sending_domain
);

async fn delivered_as_configured(db: Db) {
    let smtp = SmtpServer::start().await;
    let server = server_with(db, &smtp).await;
    let token = admin("acme");
    configure(
        &server,
        "acme",
        settings("acme.example", "Acme Orders", "help@acme.example"),
    )
    .await;
    let hostile_name = "<script>x</script>";
    let context = json!({ "customer_name": hostile_name, "store_name": "Acme Boutique", "order_id": "A-1001" });

    // With the demo plugin (it leaves emails alone): the settings' sender.
    let first = send(
        &server,
        "acme",
        "order-confirmation",
        "Ann@Example.com",
        context.clone(),
    )
    .await;
    let first_id = id_of(&first);
    assert_eq!(
        first["message_id_header"],
        format!("<{first_id}@acme.example>")
    );
    let received = smtp.wait_for_messages(1, Duration::from_secs(WAIT)).await;
    assert_eq!(received.len(), 1, "{received:?}");
    let mail = &received[0];
    assert_eq!(mail.from, verp("acme", &first_id), "VERP envelope sender");
    assert_eq!(mail.to, ["ann@example.com"]);
    let parsed = parse(mail);
    assert_eq!(parsed.one("from"), "\"Acme Orders\" <orders@acme.example>");
    assert_eq!(parsed.one("reply-to"), "help@acme.example");
    assert_eq!(
        parsed.one("message-id"),
        format!("<{first_id}@acme.example>")
    );
    assert_eq!(parsed.one("to"), "ann@example.com");
    assert_eq!(
        parsed.one("subject"),
        "Your Acme Boutique order A-1001 is confirmed"
    );
    assert!(parsed.header("return-path").is_empty(), "{parsed:?}");
    assert!(!parsed.html.contains("veneer:email-rebrand"));
    let sent = wait_for_state(&server, "acme", &first_id, "sent").await;
    assert!(
        sent["smtp_reply"]
            .as_str()
            .unwrap_or_default()
            .starts_with("250"),
        "{sent}"
    );

    // The email-rebrand plugin, with the tenant's brand.
    server
        .install(
            "acme",
            &token,
            read(built_plugins::EMAIL_REBRAND),
            json!({
                "brand_name": "Acme",
                "primary_color": "#0a0a0a",
                "accent_color": "#c9a227",
                "reply_to": "care@acme.example",
                "from_name": "Acme Care",
                "footer_text": "Acme Ltd",
            }),
        )
        .await;

    let second = send(
        &server,
        "acme",
        "order-confirmation",
        "ann@example.com",
        context,
    )
    .await;
    let second_id = id_of(&second);
    assert_eq!(second["source"], "plugin", "{second}");
    let received = smtp.wait_for_messages(2, Duration::from_secs(WAIT)).await;
    assert_eq!(received.len(), 2, "{received:?}");
    let mail = &received[1];
    assert_eq!(mail.from, verp("acme", &second_id));
    assert_eq!(
        mail.from,
        format!("bounce+acme.{second_id}@bounces.veneer.test")
    );
    assert_eq!(mail.to, ["ann@example.com"]);
    let parsed = parse(mail);
    assert_eq!(
        parsed.one("from"),
        "\"Acme Care\" <orders@acme.example>",
        "the plugin's name, the tenant's address"
    );
    assert_eq!(parsed.one("reply-to"), "care@acme.example");
    assert_eq!(
        parsed.one("message-id"),
        format!("<{second_id}@acme.example>")
    );
    assert_eq!(
        second["message_id_header"],
        format!("<{second_id}@acme.example>")
    );
    assert!(
        parsed
            .content_type
            .to_ascii_lowercase()
            .starts_with("multipart/alternative")
    );

    // The plugin's customisation, in both parts.
    for needle in [
        "veneer:email-rebrand",
        "background-color:#0a0a0a",
        "border-bottom:4px solid #c9a227",
        "border-top:2px solid #c9a227",
        ">Acme Ltd</div>",
    ] {
        assert!(parsed.html.contains(needle), "{needle} in {}", parsed.html);
    }
    assert!(
        parsed.text.contains("\n-- \nAcme Ltd"),
        "footer in the text part: {}",
        parsed.text
    );
    assert!(parsed.text.contains("Thank you for your order"));

    // User data is escaped in the HTML part, and only there.
    assert!(
        !parsed.html.contains(hostile_name) && !parsed.html.contains("<script"),
        "{}",
        parsed.html
    );
    assert!(
        parsed
            .html
            .contains("Thank you for your order, &lt;script&gt;x&lt;&#x2f;script&gt;!"),
        "{}",
        parsed.html
    );
    assert!(
        parsed
            .text
            .contains("Thank you for your order, <script>x</script>!"),
        "{}",
        parsed.text
    );

    // The delivery log.
    wait_for_state(&server, "acme", &second_id, "sent").await;
    let (status, log) = server
        .get("acme", "/v1/email/messages", &member("acme"))
        .await;
    assert_eq!(status, StatusCode::OK, "{log}");
    let rows = log["messages"].as_array().expect("messages");
    assert_eq!(rows.len(), 2, "{log}");
    for (row, id) in rows.iter().zip([&second_id, &first_id]) {
        assert_eq!(row["id"], id.as_str(), "newest first: {log}");
        assert_eq!(row["state"], "sent", "{row}");
        assert_eq!(row["to_address"], "ann@example.com");
        assert_eq!(row["template_id"], "order-confirmation");
        assert_eq!(row["message_id"], format!("<{id}@acme.example>"));
        assert_eq!(row["attempts"], 1, "{row}");
        assert!(row["sent_at"].as_i64().is_some(), "{row}");
        assert!(
            row["smtp_reply"]
                .as_str()
                .unwrap_or_default()
                .starts_with("250"),
            "{row}"
        );
    }
    let job = wait_for_job(
        &server,
        "acme",
        second["job"].as_i64().expect("job"),
        "done",
    )
    .await;
    assert_eq!(job["kind"], "email.send");

    // Another tenant sees none of it.
    let (status, _) = server
        .get(
            "globex",
            &format!("/v1/email/messages/{second_id}"),
            &member("globex"),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, log) = server
        .get("globex", "/v1/email/messages", &member("globex"))
        .await;
    assert_eq!(status, StatusCode::OK, "{log}");
    assert_eq!(log["messages"], json!([]), "{log}");
}
both_backends!(
    a_message_carries_the_tenants_sender_brand_and_verp,
    delivered_as_configured
);

async fn relay_down_then_back(db: Db) {
    let smtp = SmtpServer::start().await;
    let server = server_with(db, &smtp).await;
    configure(
        &server,
        "acme",
        settings("acme.example", "Acme Orders", "help@acme.example"),
    )
    .await;
    smtp.stop().await;

    let mut sent = Vec::new();
    for n in 0..5 {
        sent.push(
            send(
                &server,
                "acme",
                "welcome",
                &format!("customer{n}@example.com"),
                json!({ "customer_name": format!("Customer {n}") }),
            )
            .await,
        );
    }
    let ids: BTreeSet<String> = sent.iter().map(id_of).collect();
    assert_eq!(ids.len(), 5);
    let job_ids: Vec<i64> = sent
        .iter()
        .map(|s| s["job"].as_i64().expect("job"))
        .collect();

    // Every job fails at least once and stays in the queue with the reason.
    let waiting = server
        .eventually(WAIT, async |s| {
            let mut jobs = Vec::new();
            for &id in &job_ids {
                let job = job(s, "acme", id).await;
                if job["last_error"].is_null() {
                    return None;
                }
                jobs.push(job);
            }
            Some(jobs)
        })
        .await
        .expect("every send is tried and fails while the relay is down");
    for job in &waiting {
        assert!(
            job["state"] == "queued" || job["state"] == "running",
            "waiting for a retry, not dead: {job}"
        );
        assert!(job["attempts"].as_u64().unwrap_or(0) >= 1, "{job}");
        let error = job["last_error"].as_str().unwrap_or_default();
        assert!(
            error.contains("127.0.0.1") || error.contains("relay"),
            "the error says what failed: {job}"
        );
    }
    for id in &ids {
        let message = message(&server, "acme", id).await;
        assert_eq!(message["state"], "queued", "{message}");
    }
    let (status, queued) = server
        .get("acme", "/v1/jobs?state=queued", &member("acme"))
        .await;
    assert_eq!(status, StatusCode::OK, "{queued}");
    assert!(
        !queued["jobs"].as_array().expect("jobs").is_empty(),
        "{queued}"
    );
    // The failures above are the relay's absence: nothing listens on its port
    // (the server was stopped before the first send, so its own record of
    // received mail proves nothing here).
    assert!(
        tokio::net::TcpStream::connect(("127.0.0.1", smtp.port()))
            .await
            .is_err(),
        "the relay is down while the sends fail"
    );

    // The relay comes back: all five go out, once each.
    smtp.restart()
        .await
        .expect("the relay restarts on its port");
    for id in &ids {
        let message = wait_for_state(&server, "acme", id, "sent").await;
        assert!(message["attempts"].as_u64().unwrap_or(0) >= 2, "{message}");
        assert!(
            message["smtp_reply"]
                .as_str()
                .unwrap_or_default()
                .starts_with("250"),
            "{message}"
        );
    }
    for &id in &job_ids {
        wait_for_job(&server, "acme", id, "done").await;
    }
    // Every job is done, so nothing more can be sent.
    let received = smtp.messages();
    assert_eq!(received.len(), 5, "exactly five messages: {received:?}");
    let got: BTreeSet<String> = received
        .iter()
        .map(|m| {
            let header = parse(m).one("message-id").to_owned();
            header
                .strip_prefix('<')
                .and_then(|h| h.strip_suffix("@acme.example>"))
                .unwrap_or_else(|| panic!("one of ours: {header}"))
                .to_owned()
        })
        .collect();
    assert_eq!(got, ids, "one per message, none twice, none lost");
    let envelopes: BTreeSet<String> = received.iter().map(|m| m.from.clone()).collect();
    let expected: BTreeSet<String> = ids.iter().map(|id| verp("acme", id)).collect();
    assert_eq!(envelopes, expected);
    let recipients: BTreeSet<String> = received.iter().map(|m| m.to.join(",")).collect();
    assert_eq!(recipients.len(), 5, "{recipients:?}");
}
both_backends!(
    a_relay_outage_delays_but_loses_and_duplicates_nothing,
    relay_down_then_back
);

async fn bounce_suppresses_for_one_tenant(db: Db) {
    let smtp = SmtpServer::start().await;
    let server = server_with(db, &smtp).await;
    configure(
        &server,
        "acme",
        settings("acme.example", "Acme Orders", "help@acme.example"),
    )
    .await;
    configure(
        &server,
        "globex",
        settings("globex.example", "Globex", "help@globex.example"),
    )
    .await;
    let address = "gone@recipient.example";
    let welcome = || json!({ "customer_name": "Gone" });

    let first = send(&server, "acme", "welcome", address, welcome()).await;
    let first_id = id_of(&first);
    wait_for_state(&server, "acme", &first_id, "sent").await;
    assert_eq!(smtp.messages().len(), 1);

    // The recipient's MTA reports a hard failure to the VERP address.
    let header = first["message_id_header"].as_str().expect("header");
    let report = dsn(&verp("acme", &first_id), address, header);
    let (status, body) = post_bounce(
        &server,
        "",
        Some(BOUNCE_TOKEN),
        "message/rfc822",
        report.clone(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["bounces"],
        json!([{
            "recipient": address, "result": "recorded", "tenant": "acme",
            "message_id": first_id, "hard": true, "suppressed": address,
        }]),
        "{body}"
    );
    let bounced = message(&server, "acme", &first_id).await;
    assert_eq!(bounced["state"], "bounced", "{bounced}");
    assert_eq!(bounced["bounce_type"], "hard");
    let diagnostic = bounced["bounce_diagnostic"].as_str().unwrap_or_default();
    assert!(
        diagnostic.contains("5.1.1") && diagnostic.contains("User unknown"),
        "{bounced}"
    );

    // Suppressed for acme only.
    assert_eq!(suppressed(&server, "acme").await, [address]);
    assert!(suppressed(&server, "globex").await.is_empty());
    let (status, list) = server
        .get("acme", "/v1/email/suppressions", &member("acme"))
        .await;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert_eq!(
        list["suppressions"][0]["source_message_id"],
        first_id.as_str()
    );

    // acme's next send to it is skipped; nothing reaches the relay.
    let skipped = send(
        &server,
        "acme",
        "welcome",
        "GONE@recipient.example",
        welcome(),
    )
    .await;
    let skipped_id = id_of(&skipped);
    let skipped_row = wait_for_state(&server, "acme", &skipped_id, "skipped_suppressed").await;
    assert!(skipped_row["sent_at"].is_null(), "{skipped_row}");
    wait_for_job(
        &server,
        "acme",
        skipped["job"].as_i64().expect("job"),
        "done",
    )
    .await;
    assert_eq!(
        smtp.messages().len(),
        1,
        "nothing sent to a suppressed address"
    );

    // globex still sends to the same address.
    let globex = send(&server, "globex", "welcome", address, welcome()).await;
    let globex_id = id_of(&globex);
    wait_for_state(&server, "globex", &globex_id, "sent").await;
    let received = smtp.messages();
    assert_eq!(received.len(), 2);
    assert_eq!(received[1].from, verp("globex", &globex_id));
    assert_eq!(received[1].to, [address]);
    assert_eq!(
        parse(&received[1]).one("from"),
        "Globex <orders@globex.example>"
    );

    // A soft bounce (JSON form) marks globex's message without suppressing.
    let (status, body) = post_bounce(
        &server,
        "",
        Some(BOUNCE_TOKEN),
        "application/json",
        json!({
            "type": "bounce", "bounce_type": "soft", "recipient": address,
            "verp": verp("globex", &globex_id), "status": "4.2.2",
            "diagnostic": "452 4.2.2 Mailbox full",
        })
        .to_string(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["bounces"][0]["result"], "recorded", "{body}");
    assert_eq!(body["bounces"][0]["tenant"], "globex", "{body}");
    assert_eq!(body["bounces"][0]["hard"], false, "{body}");
    assert_eq!(
        message(&server, "globex", &globex_id).await["bounce_type"],
        "soft"
    );
    assert!(suppressed(&server, "globex").await.is_empty());
    assert_eq!(suppressed(&server, "acme").await, [address]);

    // The metrics count each tenant's sends, the skipped one, bounces and
    // suppressions.
    for (tenant, event, want) in [
        ("acme", "sent", 1.0),
        ("acme", "skipped", 1.0),
        ("acme", "bounced", 1.0),
        ("acme", "suppressed", 1.0),
        ("globex", "sent", 1.0),
        ("globex", "bounced", 1.0),
        ("globex", "suppressed", 0.0),
    ] {
        super::metrics::wait_for_counter(
            &server,
            "veneer_emails_total",
            &[("tenant", tenant), ("event", event)],
            want,
        )
        .await;
    }

    // The same report replayed under another tenant's name is not attributed.
    let forged = dsn(&verp("globex", &first_id), address, header);
    let (status, body) =
        post_bounce(&server, "", Some(BOUNCE_TOKEN), "message/rfc822", forged).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["bounces"][0]["result"], "unattributed", "{body}");
    assert!(suppressed(&server, "globex").await.is_empty());

    // Lifting the suppression: members cannot, admins can, once.
    let path = format!("/v1/email/suppressions/{address}");
    let (status, _) = server
        .call(Method::DELETE, "acme", &path, Some(&member("acme")), None)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = server
        .call(
            Method::DELETE,
            "globex",
            &path,
            Some(&admin("globex")),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "not on globex's list");
    assert_eq!(suppressed(&server, "acme").await, [address]);
    let (status, body) = server
        .call(Method::DELETE, "acme", &path, Some(&admin("acme")), None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    assert!(suppressed(&server, "acme").await.is_empty());
    let (status, _) = server
        .call(Method::DELETE, "acme", &path, Some(&admin("acme")), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let again = send(&server, "acme", "welcome", address, welcome()).await;
    let again_id = id_of(&again);
    wait_for_state(&server, "acme", &again_id, "sent").await;
    let received = smtp.messages();
    assert_eq!(received.len(), 3);
    assert_eq!(received[2].from, verp("acme", &again_id));

    // A spam complaint (ARF, RFC 5965) about it suppresses the address for
    // acme again, and leaves the message delivered; globex is untouched.
    let arf = format!(
        "From: <abuse@mailbox.example>\r\nTo: <{}>\r\nSubject: complaint\r\nMIME-Version: 1.0\r\n\
Content-Type: multipart/report; report-type=feedback-report; boundary=\"b1\"\r\n\r\n\
--b1\r\nContent-Type: text/plain\r\n\r\nAn abuse report.\r\n\
--b1\r\nContent-Type: message/feedback-report\r\n\r\n\
Feedback-Type: abuse\r\nVersion: 1\r\nOriginal-Mail-From: <{}>\r\nOriginal-Rcpt-To: <{address}>\r\n\r\n\
--b1\r\nContent-Type: text/rfc822-headers\r\n\r\nTo: {address}\r\nSubject: Welcome\r\n\r\n--b1--\r\n",
        verp("acme", &again_id),
        verp("acme", &again_id)
    );
    let (status, body) = post_bounce(&server, "", Some(BOUNCE_TOKEN), "message/rfc822", arf).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["bounces"][0]["result"], "recorded", "{body}");
    assert_eq!(body["bounces"][0]["suppressed"], address, "{body}");
    assert_eq!(suppressed(&server, "acme").await, [address]);
    assert!(suppressed(&server, "globex").await.is_empty());
    assert_eq!(message(&server, "acme", &again_id).await["state"], "sent");
    // The JSON form of a complaint, for globex's message.
    let (status, body) = post_bounce(
        &server,
        "",
        Some(BOUNCE_TOKEN),
        "application/json",
        json!({ "type": "complaint", "recipient": address, "verp": verp("globex", &globex_id) })
            .to_string(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(suppressed(&server, "globex").await, [address]);
}
both_backends!(
    a_hard_bounce_suppresses_the_address_for_its_tenant_only,
    bounce_suppresses_for_one_tenant
);

async fn refusals(db: Db) {
    let smtp = SmtpServer::start().await;
    let server = server_with(db, &smtp).await;
    let token = admin("acme");
    let welcome = json!({ "template": "welcome", "to": "ann@example.com", "context": {} });

    // Sending before the settings exist.
    let (status, body) = server
        .call(
            Method::POST,
            "acme",
            "/v1/email/send",
            Some(&token),
            Some(welcome.clone()),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"]["code"], "email_not_configured", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("/v1/email/settings"),
        "{body}"
    );

    // A from address outside the sending domain, a subdomain included.
    for from in ["orders@other.example", "orders@mail.acme.example"] {
        let mut bad = settings("acme.example", "Acme", "help@acme.example");
        bad["from_address"] = json!(from);
        let (status, body) = server
            .call(
                Method::PUT,
                "acme",
                "/v1/email/settings",
                Some(&token),
                Some(bad),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{from}: {body}");
        assert_eq!(body["error"]["code"], "invalid_email_settings", "{body}");
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert!(
            message.starts_with("from_address")
                && message.contains(from)
                && message.contains("outside the sending domain `acme.example`"),
            "names the field and the fix: {body}"
        );
    }
    let (status, stored) = server
        .get("acme", "/v1/email/settings", &member("acme"))
        .await;
    assert_eq!(status, StatusCode::OK, "{stored}");
    assert_eq!(stored["configured"], false, "nothing stored: {stored}");
    // Members cannot change them.
    let (status, _) = server
        .call(
            Method::PUT,
            "acme",
            "/v1/email/settings",
            Some(&member("acme")),
            Some(settings("acme.example", "Acme", "help@acme.example")),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    configure(
        &server,
        "acme",
        settings("acme.example", "Acme", "help@acme.example"),
    )
    .await;
    let (status, stored) = server
        .get("acme", "/v1/email/settings", &member("acme"))
        .await;
    assert_eq!(status, StatusCode::OK, "{stored}");
    assert_eq!(stored["configured"], true, "{stored}");
    assert_eq!(stored["settings"]["from_address"], "orders@acme.example");

    // Invalid recipients.
    for to in [
        "",
        "ann",
        "ann@",
        "@example.com",
        "ann@localhost",
        "ann@example.com, bob@example.com",
        "ann@example.com\r\nBcc: victim@evil.example",
        "Ann <ann@example.com>",
    ] {
        let mut request = welcome.clone();
        request["to"] = json!(to);
        let (status, body) = server
            .call(
                Method::POST,
                "acme",
                "/v1/email/send",
                Some(&token),
                Some(request),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{to:?}: {body}");
        assert_eq!(body["error"]["code"], "invalid_recipient", "{to:?}: {body}");
    }
    let (status, log) = server
        .get("acme", "/v1/email/messages", &member("acme"))
        .await;
    assert_eq!(status, StatusCode::OK, "{log}");
    assert_eq!(log["messages"], json!([]), "nothing queued: {log}");

    // Bounces need the platform host and the token.
    let report = dsn(
        &verp("acme", "0123456789abcdef0123456789abcdef"),
        "ann@example.com",
        "<0123456789abcdef0123456789abcdef@acme.example>",
    );
    for token in [None, Some("wrong-token"), Some("test-bounce-token-x")] {
        let (status, body) =
            post_bounce(&server, "", token, "message/rfc822", report.clone()).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{token:?}: {body}");
        assert_eq!(body["error"]["code"], "invalid_bounce_token", "{body}");
    }
    let (status, _) = post_bounce(
        &server,
        "acme",
        Some(BOUNCE_TOKEN),
        "message/rfc822",
        report.clone(),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "not on a tenant's host");
    let (status, body) = post_bounce(
        &server,
        "",
        Some(BOUNCE_TOKEN),
        "text/plain",
        "Subject: hello\r\n\r\nnot a report\r\n".into(),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["error"]["code"], "invalid_bounce", "{body}");
    // A report for no message of ours changes nothing.
    let (status, body) =
        post_bounce(&server, "", Some(BOUNCE_TOKEN), "message/rfc822", report).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["bounces"][0]["result"], "unattributed", "{body}");
    assert!(suppressed(&server, "acme").await.is_empty());
    assert!(smtp.messages().is_empty());
}
both_backends!(bad_settings_recipients_and_bounces_are_refused, refusals);

async fn permanent_failure(db: Db) {
    let smtp = SmtpServer::start().await;
    let server = server_with(db, &smtp).await;
    configure(
        &server,
        "acme",
        settings("acme.example", "Acme", "help@acme.example"),
    )
    .await;
    let reply = "5.7.1 <orders@acme.example>: Sender address rejected: not permitted";
    smtp.fail_next(1, 550, reply);

    let sent = send(
        &server,
        "acme",
        "welcome",
        "ann@example.com",
        json!({ "customer_name": "Ann" }),
    )
    .await;
    let id = id_of(&sent);
    let failed = wait_for_state(&server, "acme", &id, "failed").await;
    let stored = failed["smtp_reply"].as_str().unwrap_or_default();
    assert!(
        stored.starts_with("550") && stored.contains(reply),
        "the server's reply in the delivery log: {failed}"
    );
    assert_eq!(failed["attempts"], 1, "not retried: {failed}");
    assert!(failed["sent_at"].is_null(), "{failed}");

    let job = wait_for_job(&server, "acme", sent["job"].as_i64().expect("job"), "dead").await;
    let error = job["last_error"].as_str().unwrap_or_default();
    assert!(
        error.contains("550") && error.contains(reply),
        "the reply as the job's error: {job}"
    );
    assert_eq!(
        job["attempts"], 1,
        "a permanent failure is not retried: {job}"
    );
    let (status, dead) = server
        .get("acme", "/v1/jobs?state=dead", &member("acme"))
        .await;
    assert_eq!(status, StatusCode::OK, "{dead}");
    assert_eq!(dead["jobs"].as_array().map(Vec::len), Some(1), "{dead}");
    assert!(smtp.messages().is_empty(), "nothing was accepted");

    // The relay takes the next one.
    let next = send(
        &server,
        "acme",
        "welcome",
        "ann@example.com",
        json!({ "customer_name": "Ann" }),
    )
    .await;
    wait_for_state(&server, "acme", &id_of(&next), "sent").await;
    assert_eq!(smtp.messages().len(), 1);
    assert_eq!(message(&server, "acme", &id).await["state"], "failed");

    // A temporary refusal, by contrast, is retried until the relay takes it.
    smtp.fail_next(2, 451, "4.3.0 Try again later");
    let later = send(
        &server,
        "acme",
        "welcome",
        "bob@example.com",
        json!({ "customer_name": "Bob" }),
    )
    .await;
    let later_row = wait_for_state(&server, "acme", &id_of(&later), "sent").await;
    assert_eq!(
        later_row["attempts"], 3,
        "two refusals, then sent: {later_row}"
    );
    let later_job =
        wait_for_job(&server, "acme", later["job"].as_i64().expect("job"), "done").await;
    assert_eq!(later_job["attempts"], 3, "{later_job}");
    assert!(
        later_job["last_error"]
            .as_str()
            .unwrap_or_default()
            .contains("451"),
        "{later_job}"
    );
    let received = smtp.messages();
    assert_eq!(received.len(), 2, "one copy of the retried message");
    assert_eq!(received[1].to, ["bob@example.com"]);
}
both_backends!(
    a_permanent_refusal_fails_the_message_and_dead_letters_the_job,
    permanent_failure
);

// ---------------------------------------------------------------------------
// Hostile: template bombs and relays that point inside the platform.

/// A member's preview of `template` as `tenant`; asserts 200.
async fn preview(server: &Server, tenant: &str, template: &str) -> Value {
    let (status, body) = server
        .call(
            Method::POST,
            tenant,
            "/v1/email/preview",
            Some(&member(tenant)),
            Some(json!({ "template": template })),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::OK,
        "{tenant} previews {template}: {body}"
    );
    body
}

/// The rendered subject of `template` from the base alone.
async fn base_subject(server: &Server, template: &str) -> String {
    let body = preview(server, "globex", template).await;
    body["rendered"]["subject"]
        .as_str()
        .expect("subject")
        .to_owned()
}

/// Waits until `tenant`'s run log holds an `invalid_output` email run whose
/// message contains `needle`.
async fn wait_for_invalid_run(server: &Server, tenant: &str, needle: &str) {
    let mut last = Value::Null;
    let found = server
        .eventually(WAIT, async |s| {
            let (status, runs) = s.get(tenant, "/v1/runs?limit=500", &member(tenant)).await;
            assert_eq!(status, StatusCode::OK, "{runs}");
            last = runs.clone();
            runs["runs"]
                .as_array()
                .is_some_and(|r| {
                    r.iter().any(|run| {
                        run["hook"] == "email"
                            && run["outcome"] == "invalid_output"
                            && run["message"].as_str().unwrap_or_default().contains(needle)
                    })
                })
                .then_some(())
        })
        .await;
    assert!(
        found.is_some(),
        "an invalid_output run naming {needle:?}: {last}"
    );
}

/// Polls `/healthz` while `work` runs; every answer must be a 200 within a
/// generous 10 s (a frozen server never answers). Returns the work's result.
async fn while_healthy<T>(server: &Server, work: impl Future<Output = T>) -> T {
    let done = std::sync::atomic::AtomicBool::new(false);
    let probe = async {
        let mut answered = 0;
        // At least once, however fast the work ends; then until it has.
        while answered == 0 || !done.load(std::sync::atomic::Ordering::Relaxed) {
            let response = tokio::time::timeout(
                Duration::from_secs(10),
                server.request(Method::GET, "", "/healthz").send(),
            )
            .await
            .expect("/healthz answers while templates render")
            .expect("/healthz is answered");
            assert_eq!(response.status(), StatusCode::OK);
            answered += 1;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        answered
    };
    let work = async {
        let out = work.await;
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        out
    };
    let (out, answered) = tokio::join!(work, probe);
    assert!(answered >= 1, "/healthz was probed");
    out
}

async fn template_bombs(db: Db) {
    let smtp = SmtpServer::start().await;
    let server = server_with(db, &smtp).await;
    let token = admin("acme");
    // The base's subjects, from a tenant without the bombs.
    let mut base = std::collections::BTreeMap::new();
    for template in ["welcome", "order-confirmation", "item-sold", "payout-sent"] {
        base.insert(template, base_subject(&server, template).await);
    }

    let nested_ranges =
        "{% for a in range(100000) %}{% for b in range(100000) %}x{% endfor %}{% endfor %}";
    let fuel = "{% for a in range(1000) %}{% for b in range(1000) %}{% for c in range(1000) %}\
                {% if c == -1 %}x{% endif %}{% endfor %}{% endfor %}{% endfor %}";
    let replace =
        |path: &str, value: &str| json!([{ "op": "replace", "path": path, "value": value }]);
    // Bombs the template checks see in the plugin's output are refused when
    // the release is created: nothing of them is ever served.
    server
        .install(
            "acme",
            &token,
            read(built_plugins::DECLARATIVE_OVERRIDES),
            json!({}),
        )
        .await;
    let sha = server
        .get("acme", "/v1/installations", &token)
        .await
        .1["installations"][0]["live"]["plugin"]
        .as_str()
        .expect("the declarative plugin is live")
        .to_owned();
    for (template, bomb, needle) in [
        ("item-sold", "{{ 'x' * 100000000 }}", "the `*` operator"),
        (
            "payout-sent",
            "{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}",
            "a macro",
        ),
    ] {
        let (status, body) = server
            .call(
                Method::POST,
                "acme",
                "/v1/installations/commission/releases",
                Some(&token),
                Some(json!({ "plugin": sha, "settings": { "email": { template: replace("/subject", bomb) } } })),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(body["error"]["code"], "release_rejected", "{body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains(needle) && m.contains(template)),
            "{template}: {body}"
        );
    }
    // Those only rendering reveals go live, and are bounded when rendered.
    server
        .set_settings(
            "acme",
            &token,
            json!({ "email": {
                "welcome": replace("/subject", nested_ranges),
                "order-confirmation": replace("/subject", fuel),
            }}),
        )
        .await;

    // Two concurrent previews of each bomb, by a member, while /healthz is
    // probed: each is answered with the base and an invalid_output.
    let bombs = [
        ("welcome", "range() has too many items"),
        ("order-confirmation", "instructions"),
    ];
    let answers = while_healthy(&server, async {
        let mut calls = tokio::task::JoinSet::new();
        for (index, (template, _)) in bombs.iter().chain(bombs.iter()).enumerate() {
            let request = server
                .request(Method::POST, "acme", "/v1/email/preview")
                .bearer_auth(member("acme"))
                .json(&json!({ "template": template }));
            calls.spawn(async move {
                let response = request.send().await.expect("the preview is answered");
                let status = response.status();
                let body: Value = response.json().await.expect("a JSON body");
                assert_eq!(status, StatusCode::OK, "{body}");
                (index, body)
            });
        }
        let mut answers = vec![Value::Null; bombs.len() * 2];
        while let Some(done) = calls.join_next().await {
            let (index, body) = done.expect("the preview task ends");
            answers[index] = body;
        }
        answers
    })
    .await;
    for ((template, needle), body) in bombs.iter().chain(bombs.iter()).zip(&answers) {
        assert_eq!(body["source"], "base", "{template}: {body}");
        assert_eq!(body["outcome"], "invalid_output", "{template}: {body}");
        let message = body["message"].as_str().unwrap_or_default();
        assert!(
            message.contains(needle),
            "{template} names {needle:?}: {body}"
        );
        assert_eq!(
            body["rendered"]["subject"],
            base[template].as_str(),
            "{body}"
        );
    }
    for (_, needle) in bombs {
        wait_for_invalid_run(&server, "acme", needle).await;
    }

    // A huge output through repeated loops, and a forged sender name.
    let output = "{{ unsubscribe_url }} {{ postal_address }}\n\
                  {% for a in range(1000) %}{% for b in range(1000) %}{{ postal_address }}{% endfor %}{% endfor %}";
    let (status, body) = server
        .call(
            Method::POST,
            "acme",
            "/v1/installations/commission/releases",
            Some(&token),
            Some(json!({ "plugin": sha, "settings": { "email": {
                "order-confirmation": [{ "op": "add", "path": "/from_name", "value": "\"Bank\" <ceo@bank.example>" }],
            }}})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["error"]["code"], "release_rejected", "{body}");
    server
        .set_settings(
            "acme",
            &token,
            json!({ "email": { "welcome": replace("/text", output) } }),
        )
        .await;
    let body = while_healthy(&server, preview(&server, "acme", "welcome")).await;
    assert_eq!(
        (&body["source"], &body["outcome"]),
        (&json!("base"), &json!("invalid_output")),
        "{body}"
    );
    assert!(
        body["message"]
            .as_str()
            .unwrap_or_default()
            .contains("larger than"),
        "{body}"
    );
    assert!(
        body["rendered"]["text"].as_str().unwrap_or_default().len() < 10_000,
        "{body}"
    );
    let body = preview(&server, "acme", "order-confirmation").await;
    assert!(body["rendered"]["from_name"].is_null(), "{body}");

    // The send path is bounded the same way: the base goes out.
    configure(
        &server,
        "acme",
        settings("acme.example", "Acme", "help@acme.example"),
    )
    .await;
    let sent = send(&server, "acme", "welcome", "ann@example.com", json!({})).await;
    assert_eq!(sent["source"], "base", "{sent}");
    let received = smtp.wait_for_messages(1, Duration::from_secs(WAIT)).await;
    assert_eq!(received.len(), 1);
    assert!(parse(&received[0]).text.len() < 10_000);
    wait_for_invalid_run(&server, "acme", "larger than").await;

    // Another tenant is served normally (its plugin leaves emails alone).
    let body = preview(&server, "globex", "welcome").await;
    assert!(body["outcome"] != "invalid_output", "{body}");
    assert_eq!(body["rendered"]["subject"], base["welcome"].as_str());

    // A caller's context is bounded too.
    let (status, body) = server
        .call(
            Method::POST,
            "globex",
            "/v1/email/preview",
            Some(&member("globex")),
            Some(json!({ "template": "welcome", "context": { "customer_name": "x".repeat(70_000) } })),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["code"], "context_too_large", "{body}");
}
both_backends!(
    a_template_bomb_is_invalid_output_with_the_base_served,
    template_bombs
);

/// Custom relay settings for `acme.example` pointing at `host:port`, in clear.
fn custom_relay(host: &str, port: u16) -> Value {
    json!({
        "sending_domain": "acme.example",
        "from_name": "Acme",
        "from_address": "orders@acme.example",
        "relay": "custom",
        "smtp_host": host,
        "smtp_port": port,
        "smtp_tls": "none",
    })
}

/// PUTs `acme`'s email settings; returns status and body.
async fn put_settings(server: &Server, tenant: &str, settings: Value) -> (StatusCode, Value) {
    server
        .call(
            Method::PUT,
            tenant,
            "/v1/email/settings",
            Some(&admin(tenant)),
            Some(settings),
        )
        .await
}

async fn relay_ssrf(db: Db) {
    let platform = SmtpServer::start().await;
    // A relay the platform lets tenants use on loopback (the flag tests and
    // operators use), and one it does not.
    let allowed = SmtpServer::start().await;
    let internal = SmtpServer::start().await;
    let (allowed_port, internal_port) = (allowed.port(), internal.port());
    let server = Server::start_with_dns(db, |config| {
        config.smtp_host = "127.0.0.1".into();
        config.smtp_port = platform.port();
        config.smtp_tls = "none".into();
        config.job_backoff_ms = 50;
        config.smtp_relay_allow = vec![format!("127.0.0.1:{allowed_port}").parse().expect("allow")];
        // The internal relay's port counts as a submission port here, so only
        // the address rule stands between a tenant and it.
        config.smtp_relay_ports.push(internal_port);
    })
    .await;
    let good_call = async || {
        configure(
            &server,
            "globex",
            settings("globex.example", "Globex", "help@globex.example"),
        )
        .await;
    };

    // Internal targets, by address or by a name that resolves to one.
    for host in [
        "127.0.0.1",
        "::1",
        "::ffff:127.0.0.1",
        "10.0.0.1",
        "169.254.169.254",
        "localhost",
    ] {
        let (status, body) = put_settings(&server, "acme", custom_relay(host, 587)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{host}: {body}");
        assert_eq!(
            body["error"]["code"], "relay_address_not_allowed",
            "{host}: {body}"
        );
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert!(
            message.starts_with("smtp_host") && message.contains("address, which a tenant"),
            "{host}: {body}"
        );
        good_call().await;
    }
    // The NATS port of the report, and the discard port: not submission ports.
    for port in [4222, 9] {
        let (status, body) = put_settings(&server, "acme", custom_relay("127.0.0.1", port)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{port}: {body}");
        assert_eq!(
            body["error"]["code"], "relay_port_not_allowed",
            "{port}: {body}"
        );
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap_or_default()
                .contains("587"),
            "names the allowed ports: {body}"
        );
        good_call().await;
    }
    // A display name that forges a sender.
    let mut forged = settings("acme.example", "Acme", "help@acme.example");
    forged["from_name"] = json!("\"Bank\" <ceo@bank.example>");
    let (status, body) = put_settings(&server, "acme", forged).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["code"], "invalid_from_name", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .starts_with("from_name"),
        "{body}"
    );
    good_call().await;
    let (status, stored) = server
        .get("acme", "/v1/email/settings", &member("acme"))
        .await;
    assert_eq!(status, StatusCode::OK, "{stored}");
    assert_eq!(stored["configured"], false, "nothing was stored: {stored}");

    // The allowed relay is taken; when it fails, the tenant reads a generic
    // reason and the relay's words stay in the server log.
    let (status, body) =
        put_settings(&server, "acme", custom_relay("127.0.0.1", allowed_port)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let banner =
        "INFO {\"server_id\":\"NBX7\",\"server_name\":\"nats-internal-1\",\"version\":\"2.10.4\"}";
    allowed.fail_next(1, 554, banner);
    let sent = send(&server, "acme", "welcome", "ann@example.com", json!({})).await;
    let failed = wait_for_state(&server, "acme", &id_of(&sent), "failed").await;
    let job = wait_for_job(&server, "acme", sent["job"].as_i64().expect("job"), "dead").await;
    for shown in [&failed["smtp_reply"], &job["last_error"]] {
        let shown = shown.as_str().unwrap_or_default();
        assert!(
            shown.starts_with("the relay refused or could not be reached"),
            "{shown}"
        );
        for secret in ["nats", "NBX7", "127.0.0.1", "refused (os error"] {
            assert!(!shown.contains(secret), "{secret} leaked: {shown}");
        }
    }
    // The same relay, working, delivers.
    let sent = send(&server, "acme", "welcome", "ann@example.com", json!({})).await;
    wait_for_state(&server, "acme", &id_of(&sent), "sent").await;
    assert_eq!(allowed.messages().len(), 1);

    // Settings stored before the rule (or a name whose DNS changed since):
    // checked again at connect time, and nothing reaches the internal relay.
    let stale = veneer::storage::EmailSettings {
        sending_domain: "acme.example".into(),
        from_name: "Acme".into(),
        from_address: "orders@acme.example".into(),
        reply_to: None,
        relay: veneer::storage::EmailRelay::Custom,
        smtp_host: Some("127.0.0.1".into()),
        smtp_port: Some(u32::from(internal_port)),
        smtp_tls: veneer::storage::EmailTls::None,
        smtp_username: None,
        smtp_password_enc: None,
    };
    server
        .state
        .storage
        .tenant(&veneer::tenancy::TenantId::new("acme").expect("id"))
        .email_set_settings(&stale)
        .await
        .expect("stored directly");
    let sent = send(&server, "acme", "welcome", "ann@example.com", json!({})).await;
    let failed = wait_for_state(&server, "acme", &id_of(&sent), "failed").await;
    let reason = failed["smtp_reply"].as_str().unwrap_or_default();
    assert!(
        reason.contains("loopback address") && reason.contains("fix the email settings"),
        "{failed}"
    );
    assert!(
        internal.messages().is_empty(),
        "the internal relay was never reached"
    );

    // Another tenant's mail goes out through the platform relay meanwhile.
    let sent = send(&server, "globex", "welcome", "bob@example.com", json!({})).await;
    wait_for_state(&server, "globex", &id_of(&sent), "sent").await;
    assert_eq!(platform.messages().len(), 1);
}
both_backends!(
    a_tenant_relay_cannot_reach_internal_addresses_or_read_their_replies,
    relay_ssrf
);
