//! `send` against a real SMTP server on loopback (`test_support`'s, the one the
//! e2e suite uses): accepted, refused for now, refused for good,
//! unreachable, silent.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::*;
use crate::base::EmailTemplate;
use crate::outbound::OutboundPolicy;
use crate::storage::EmailRelay;
use crate::tenancy::TenantId;

use crate::test_support::smtp_server::SmtpServer;

fn settings() -> EmailSettings {
    EmailSettings {
        sending_domain: "acme.example".into(),
        from_name: "Acme Store".into(),
        from_address: "orders@acme.example".into(),
        reply_to: None,
        relay: EmailRelay::Platform,
        smtp_host: None,
        smtp_port: None,
        smtp_tls: EmailTls::None,
        smtp_username: None,
        smtp_password_enc: None,
    }
}

/// A message with a fresh id, and that id.
fn message(to: &str) -> (lettre::Message, String) {
    let template = EmailTemplate {
        id: "welcome".into(),
        subject: "Welcome, {{ name }}".into(),
        html: "<p>Hello {{ name }}</p>\n.\n..leading dots".into(),
        text: "Hello {{ name }}\n.\n..leading dots".into(),
        from_name: None,
        reply_to: None,
    };
    let ctx = BTreeMap::from([("name".to_owned(), "Ann".to_owned())]);
    let rendered = render(&template, &ctx).unwrap();
    let id = new_message_id();
    let verp = bounce_address(
        "bounces.veneer.example",
        &TenantId::new("acme").unwrap(),
        &id,
    );
    (
        build_message(&settings(), &rendered, to, &id, &verp).unwrap(),
        id,
    )
}

fn config(server: &SmtpServer) -> SmtpConfig {
    SmtpConfig {
        timeout: Duration::from_secs(5),
        hello_name: Some("veneer.test".into()),
        ..SmtpConfig::plain("127.0.0.1", server.port())
    }
}

#[tokio::test]
async fn an_accepted_message_arrives_with_its_envelope() {
    let server = SmtpServer::start().await;
    let (message, id) = message("ann@example.com");
    let outcome = send(&config(&server), &message).await.unwrap();
    assert_eq!(outcome.code, 250);
    assert_eq!(outcome.reply, "250 2.0.0 Ok: queued as TEST1");

    let received = server.messages();
    assert_eq!(received.len(), 1);
    let mail = &received[0];
    assert_eq!(mail.helo, "veneer.test");
    assert_eq!(
        mail.from,
        format!("bounce+acme.{id}@bounces.veneer.example")
    );
    assert_eq!(mail.to, ["ann@example.com"]);
    let text = mail.text();
    assert!(
        text.contains(&format!("Message-ID: <{id}@acme.example>")),
        "{text}"
    );
    assert!(text.contains("Subject: Welcome, Ann"), "{text}");
    assert!(
        text.contains("text/plain") && text.contains("text/html"),
        "{text}"
    );
    // Lines made only of dots survive dot-stuffing both ways.
    assert!(text.contains("\r\n.\r\n..leading dots"), "{text}");
    assert_eq!(
        parse_bounce_address(&mail.from),
        Some((TenantId::new("acme").unwrap(), id))
    );
    server.stop().await;
}

#[tokio::test]
async fn a_4xx_is_temporary_and_keeps_the_reply() {
    let server = SmtpServer::start().await;
    server.fail_next(1, 451, "4.3.0 Try again later");
    let (message, _) = message("ann@example.com");
    let err = send(&config(&server), &message).await.unwrap_err();
    assert_eq!(
        err,
        SendError::Temporary("451 4.3.0 Try again later".into())
    );
    assert!(err.is_temporary());
    assert!(server.messages().is_empty());

    // 421 closes the connection too; still temporary.
    server.fail_next(1, 421, "4.3.2 Service shutting down");
    let err = send(&config(&server), &message).await.unwrap_err();
    assert_eq!(
        err,
        SendError::Temporary("421 4.3.2 Service shutting down".into())
    );

    // The failures were used up: the retry goes through.
    send(&config(&server), &message).await.unwrap();
    assert_eq!(server.messages().len(), 1);
}

#[tokio::test]
async fn a_5xx_is_permanent_with_the_servers_words() {
    let server = SmtpServer::start().await;
    server.fail_next(
        2,
        550,
        "5.1.1 <ann@example.com>: Recipient address rejected",
    );
    let (message, _) = message("ann@example.com");
    for _ in 0..2 {
        let err = send(&config(&server), &message).await.unwrap_err();
        assert_eq!(
            err,
            SendError::Permanent("550 5.1.1 <ann@example.com>: Recipient address rejected".into())
        );
        assert_eq!(
            err.reply(),
            "550 5.1.1 <ann@example.com>: Recipient address rejected"
        );
    }
    assert!(server.messages().is_empty());
}

#[tokio::test]
async fn a_relay_that_is_down_is_temporary_until_it_is_back() {
    let server = SmtpServer::start().await;
    let port = server.port();
    server.stop().await;
    let (message, _) = message("ann@example.com");
    let err = send(&config(&server), &message).await.unwrap_err();
    assert!(
        matches!(&err, SendError::Temporary(why) if why.contains("cannot reach")),
        "{err:?}"
    );

    server.restart().await.unwrap();
    assert_eq!(server.port(), port);
    send(&config(&server), &message).await.unwrap();
    assert_eq!(server.messages().len(), 1);

    // A fresh server on the same port, as `start_on` gives it.
    server.stop().await;
    let again = SmtpServer::start_on(server.addr()).await.unwrap();
    send(&config(&again), &message).await.unwrap();
    assert_eq!(
        again
            .wait_for_messages(1, Duration::from_secs(1))
            .await
            .len(),
        1
    );
}

#[tokio::test]
async fn a_silent_relay_times_out_as_temporary() {
    // Accepts connections and never says a word.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let held = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            open.push(stream);
        }
    });
    let config = SmtpConfig {
        timeout: Duration::from_millis(300),
        ..SmtpConfig::plain("127.0.0.1", port)
    };
    let (message, _) = message("ann@example.com");
    let started = Instant::now();
    let err = send(&config, &message).await.unwrap_err();
    assert!(
        matches!(&err, SendError::Temporary(why) if why.contains("did not finish")),
        "{err:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    held.abort();
}

#[tokio::test]
async fn required_starttls_on_a_plain_relay_sends_nothing() {
    let server = SmtpServer::start().await;
    let config = SmtpConfig {
        tls: EmailTls::Starttls,
        username: Some("acme".into()),
        password: Some("hunter2".into()),
        ..config(&server)
    };
    assert!(!format!("{config:?}").contains("hunter2"));
    let (message, _) = message("ann@example.com");
    let err = send(&config, &message).await.unwrap_err();
    assert!(
        matches!(&err, SendError::Permanent(why) if why.contains("STARTTLS")),
        "{err:?}"
    );
    assert!(server.messages().is_empty());
}

#[test]
fn the_relay_is_the_platforms_or_the_tenants_own() {
    let platform = SmtpConfig::plain("relay.platform.example", 25);
    assert_eq!(
        relay_config(&settings(), &platform, None, &OutboundPolicy::default()).unwrap(),
        platform
    );
    let custom = EmailSettings {
        relay: EmailRelay::Custom,
        smtp_host: Some("smtp.acme.example".into()),
        smtp_port: Some(465),
        smtp_tls: EmailTls::Tls,
        smtp_username: Some("acme".into()),
        smtp_password_enc: Some("v1:opaque".into()),
        ..settings()
    };
    let config = relay_config(
        &custom,
        &platform,
        Some("secret".into()),
        &OutboundPolicy::default(),
    )
    .unwrap();
    assert_eq!(
        config.policy,
        Some(OutboundPolicy::default()),
        "a tenant's relay is restricted"
    );
    assert_eq!(
        (config.host.as_str(), config.port, config.tls),
        ("smtp.acme.example", 465, EmailTls::Tls)
    );
    assert_eq!(config.password.as_deref(), Some("secret"));
    let incomplete = EmailSettings {
        smtp_port: None,
        ..custom
    };
    assert_eq!(
        relay_config(&incomplete, &platform, None, &OutboundPolicy::default())
            .unwrap_err()
            .field,
        "smtp_port"
    );
}

/// `config(server)` as a tenant's own relay, with the test server's address
/// allowed by the platform.
fn tenant_relay(server: &SmtpServer) -> SmtpConfig {
    SmtpConfig {
        policy: Some(OutboundPolicy {
            allow: vec![format!("127.0.0.1:{}", server.port()).parse().unwrap()],
            ..OutboundPolicy::default()
        }),
        ..config(server)
    }
}

#[tokio::test]
async fn a_tenant_relay_reaches_only_checked_addresses() {
    let server = SmtpServer::start().await;
    let (message, _) = message("ann@example.com");
    // Allowed by the platform: sent, to the address that was checked.
    let outcome = send(&tenant_relay(&server), &message).await.unwrap();
    assert_eq!(outcome.code, 250);
    assert_eq!(server.messages().len(), 1);

    // Without the exception the same relay is refused before any connection,
    // whether named by address or by a name that resolves to loopback.
    for host in ["127.0.0.1", "localhost", "::ffff:127.0.0.1"] {
        let config = SmtpConfig {
            host: host.into(),
            policy: Some(OutboundPolicy {
                ports: vec![server.port()],
                allow: Vec::new(),
            }),
            ..config(&server)
        };
        let err = send(&config, &message).await.unwrap_err();
        assert!(
            matches!(&err, SendError::Permanent(why) if why.contains("loopback address") && why.contains("fix the email settings")),
            "{host}: {err:?}"
        );
    }
    assert_eq!(server.messages().len(), 1, "nothing more reached the relay");
}

#[tokio::test]
async fn a_tenant_relay_failure_reads_generic() {
    let server = SmtpServer::start().await;
    let banner = "5.7.1 INFO {\"server_id\":\"NATS-internal\",\"version\":\"2.10\"}";
    server.fail_next(1, 550, banner);
    let (message, _) = message("ann@example.com");
    let err = send(&tenant_relay(&server), &message).await.unwrap_err();
    assert_eq!(
        err,
        SendError::Permanent(
            "the relay refused or could not be reached (reply code 550); the details are in the server log".into()
        )
    );
    server.fail_next(1, 451, banner);
    let err = send(&tenant_relay(&server), &message).await.unwrap_err();
    assert!(err.is_temporary(), "{err:?}");
    assert!(!err.reply().contains("NATS"), "{err:?}");

    // Down: no "connection refused" for a port scan to read.
    let relay = tenant_relay(&server);
    server.stop().await;
    let err = send(&relay, &message).await.unwrap_err();
    assert_eq!(
        err,
        SendError::Temporary(
            "the relay refused or could not be reached; the details are in the server log; will retry".into()
        )
    );
    // The platform's relay keeps the server's words (the operator's own).
    let err = send(&config(&server), &message).await.unwrap_err();
    assert!(err.reply().contains("cannot reach"), "{err:?}");
}

#[tokio::test]
async fn a_silent_tenant_relay_times_out_generically() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let held = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            open.push(stream);
        }
    });
    let config = SmtpConfig {
        timeout: Duration::from_millis(300),
        policy: Some(OutboundPolicy {
            allow: vec![format!("127.0.0.1:{port}").parse().unwrap()],
            ..OutboundPolicy::default()
        }),
        ..SmtpConfig::plain("127.0.0.1", port)
    };
    let (message, _) = message("ann@example.com");
    let err = send(&config, &message).await.unwrap_err();
    assert_eq!(
        err,
        SendError::Temporary("the relay refused or could not be reached; will retry".into())
    );
    held.abort();
}
