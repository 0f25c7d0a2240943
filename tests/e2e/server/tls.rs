//! HTTPS with certificates ordered from a real ACME server (pebble) over a
//! real DNS server on loopback: two tenants' verified domains are each served
//! their own certificate by SNI, the base domain its own, a name that is not
//! served gets no tenant's; plain HTTP redirects except the ACME challenge
//! path; HSTS is sent; a certificate is renewed before it expires; with the CA
//! down, the order fails visibly per domain, is retried, and the old
//! certificate is still served; an operator's PEM serves the base domain and
//! the tenants' subdomains. The API calls of the set-up run in process on
//! the same state; what is under test runs over the sockets.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use serde_json::Value;
use tokio_rustls::TlsConnector;
use veneer::both_backends;
use veneer::config::TlsConfig;
use veneer::test_support::api::Api;
use veneer::test_support::dns_server::DnsServer;
use veneer::test_support::pebble::Pebble;
use x509_cert::der::Decode;

use super::harness::{BASE, Db, Server, admin, member, platform_admin};

const ACME_SHOP: &str = "shop.acme.example";
const GLOBEX_SHOP: &str = "shop.globex.example";
const UNPROVEN: &str = "unproven.example";

/// A server with `--tls` ordering from a fresh pebble issuing certificates
/// valid `validity` long.
async fn start(db: Db, validity: Duration) -> (Server, Pebble) {
    let dns = DnsServer::start().await;
    for name in [BASE, ACME_SHOP, GLOBEX_SHOP, UNPROVEN] {
        dns.set_a(name, Ipv4Addr::LOCALHOST);
    }
    let http_port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port();
    let pebble = Pebble::start(dns.addr, http_port, validity).await;
    let (directory, root) = (pebble.directory.clone(), pebble.https_root.clone());
    let dns_addr = dns.addr;
    let mut server = Server::start_with(db, |config| {
        config.secret_key = Some(secret_key(1));
        config.listen = SocketAddr::from(([127, 0, 0, 1], http_port));
        config.dns_server = Some(dns_addr);
        config.job_backoff_ms = 50;
        config.tls = TlsConfig {
            enabled: true,
            tls_listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            acme_directory: directory,
            acme_ca_root: Some(root),
            acme_contact: Some("ops@veneer.test".into()),
            hsts_max_age: 600,
            acme_retry_secs: 1,
            tls_tick_ms: 200,
            ..TlsConfig::default()
        };
    })
    .await;
    // The set-up's API calls in process (the HTTP listener redirects).
    server.api = Api::InProcess(veneer::router(server.state.clone()));
    server.dns = Some(dns);
    (server, pebble)
}

/// A secrets key `k<n>` (32 bytes of `n`).
fn secret_key(n: u8) -> String {
    use base64::Engine;
    format!(
        "k{n}:{}",
        base64::engine::general_purpose::STANDARD.encode([n; 32])
    )
}

fn tls_addr(server: &Server) -> SocketAddr {
    server.running().tls_addr.expect("serving HTTPS")
}

async fn certificate(server: &Server, tenant: &str, domain: &str) -> Value {
    let (status, body) = server
        .get(tenant, &format!("/v1/domains/{domain}"), &member(tenant))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["domain"]["certificate"].clone()
}

async fn until_issued(server: &Server, tenant: &str, domain: &str) -> Value {
    let issued = server
        .eventually(30, async |s| {
            let cert = certificate(s, tenant, domain).await;
            (cert["status"] == "issued").then_some(cert)
        })
        .await;
    issued.unwrap_or_else(|| panic!("no certificate issued for {domain}"))
}

/// Accepts any certificate: to see what is served for a name, right or not.
#[derive(Debug)]
struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// The leaf served for SNI `name` (None: the handshake failed), verified
/// against `root` when given.
async fn served_leaf(addr: SocketAddr, name: &str, root: Option<&str>) -> Option<Vec<u8>> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap();
    let config = match root {
        Some(pem) => {
            let mut roots = rustls::RootCertStore::empty();
            roots.add(root_der(pem)).unwrap();
            builder.with_root_certificates(roots).with_no_client_auth()
        }
        None => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
            .with_no_client_auth(),
    };
    let connector = TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let server_name = ServerName::try_from(name.to_owned()).unwrap();
    let stream = tokio::time::timeout(Duration::from_secs(5), connector.connect(server_name, tcp))
        .await
        .expect("the handshake ends")
        .ok()?;
    let (_, session) = stream.get_ref();
    Some(session.peer_certificates()?.first()?.to_vec())
}

fn root_der(pem: &str) -> CertificateDer<'static> {
    use rustls::pki_types::pem::PemObject;
    CertificateDer::from_pem_slice(pem.as_bytes()).expect("a PEM root")
}

/// The DNS names a certificate is for.
fn names(leaf: &[u8]) -> Vec<String> {
    use x509_cert::ext::pkix::SubjectAltName;
    use x509_cert::ext::pkix::name::GeneralName;
    let cert = x509_cert::Certificate::from_der(leaf).expect("a certificate");
    let mut names = Vec::new();
    for ext in cert.tbs_certificate.extensions.unwrap_or_default() {
        if ext.extn_id == const_oid_san() {
            let san = SubjectAltName::from_der(ext.extn_value.as_bytes()).expect("a SAN");
            for name in san.0 {
                if let GeneralName::DnsName(dns) = name {
                    names.push(dns.to_string());
                }
            }
        }
    }
    names
}

fn const_oid_san() -> x509_cert::der::oid::ObjectIdentifier {
    x509_cert::der::oid::ObjectIdentifier::new_unwrap("2.5.29.17")
}

/// An HTTPS client trusting only `root`, reaching `names` at the server.
fn https_client(server: &Server, root: &str, names: &[&str]) -> reqwest::Client {
    let mut builder = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(root.as_bytes()).unwrap()])
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10));
    for name in names {
        builder = builder.resolve(name, tls_addr(server));
    }
    builder.build().unwrap()
}

async fn served_by_sni(db: Db) {
    let (server, pebble) = start(db, Duration::from_secs(3_600)).await;
    server.verify_domain("acme", ACME_SHOP).await;
    server.verify_domain("globex", GLOBEX_SHOP).await;
    // globex claims a name it never proves.
    let (status, body) = server
        .call(
            Method::POST,
            "globex",
            "/v1/domains",
            Some(&admin("globex")),
            Some(serde_json::json!({ "domain": UNPROVEN })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    let acme = until_issued(&server, "acme", ACME_SHOP).await;
    until_issued(&server, "globex", GLOBEX_SHOP).await;
    assert!(acme["not_after"].as_i64().unwrap() > acme["issued_at"].as_i64().unwrap());
    assert_eq!(acme["last_error"], Value::Null);
    let (status, body) = server
        .get("", "/v1/admin/tenants/acme/domains", &platform_admin())
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["domains"][0]["certificate"]["status"], "issued",
        "{body}"
    );
    assert_eq!(certificate(&server, "globex", UNPROVEN).await, Value::Null);

    let root = pebble.issuing_root().await;
    let addr = tls_addr(&server);
    // Wait for this node's reload of what was stored.
    let loaded = server
        .eventually(10, async |_| {
            served_leaf(addr, GLOBEX_SHOP, Some(&root)).await
        })
        .await;
    assert!(loaded.is_some(), "globex's certificate is served");
    for (tenant, domain) in [("acme", ACME_SHOP), ("globex", GLOBEX_SHOP)] {
        let leaf = served_leaf(addr, domain, Some(&root))
            .await
            .unwrap_or_else(|| panic!("{domain}: a certificate pebble's root trusts"));
        assert_eq!(names(&leaf), vec![domain.to_owned()], "{domain}: its own");

        let client = https_client(&server, &root, &[domain]);
        let response = client
            .get(format!(
                "https://{domain}:{}/v1/config/categories",
                addr.port()
            ))
            .bearer_auth(admin(tenant))
            .send()
            .await
            .expect("served over HTTPS");
        assert_eq!(response.status(), StatusCode::OK, "{domain}");
        assert_eq!(
            response.headers()["strict-transport-security"],
            "max-age=600"
        );
        // The Host routes: acme's domain does not take globex's token.
        let other = if tenant == "acme" { "globex" } else { "acme" };
        let response = client
            .get(format!(
                "https://{domain}:{}/v1/config/categories",
                addr.port()
            ))
            .bearer_auth(admin(other))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{domain}");
    }

    // The base domain has a certificate of its own, ordered too (in its turn:
    // a node orders one certificate at a time).
    let base = server
        .eventually(30, async |_| served_leaf(addr, BASE, Some(&root)).await)
        .await
        .expect("the base domain's certificate");
    assert_eq!(names(&base), vec![BASE.to_owned()]);

    // Other names: no handshake, or the base's certificate; never a tenant's.
    for name in [
        UNPROVEN,
        "acme.veneer.test",
        "nobody.example",
        "shop.acme.example.evil",
    ] {
        if let Some(leaf) = served_leaf(addr, name, None).await {
            assert_eq!(names(&leaf), vec![BASE.to_owned()], "{name}");
        }
    }
    assert!(served_leaf(addr, UNPROVEN, None).await.is_none());
    assert!(served_leaf(addr, "nobody.example", None).await.is_none());

    // Plain HTTP: a 308 to HTTPS, but for the ACME challenge path.
    let plain = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let response = plain
        .post(server.url("/v1/config/categories?x=1"))
        .header("host", ACME_SHOP)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::PERMANENT_REDIRECT);
    assert_eq!(
        response.headers()["location"],
        format!(
            "https://{ACME_SHOP}:{}/v1/config/categories?x=1",
            addr.port()
        )
        .as_str()
    );
    let response = plain
        .get(server.url("/.well-known/acme-challenge/unknown-token"))
        .header("host", ACME_SHOP)
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        StatusCode::NOT_FOUND,
        "answered, not redirected"
    );
    let response = plain.get(server.url("/healthz")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);

    // A TLS proxy's `ask`: yes for what is served, no for the rest.
    for (name, want) in [
        (ACME_SHOP, StatusCode::OK),
        (GLOBEX_SHOP, StatusCode::OK),
        ("acme.veneer.test", StatusCode::OK),
        (BASE, StatusCode::OK),
        (UNPROVEN, StatusCode::NOT_FOUND),
        ("nobody.veneer.test", StatusCode::NOT_FOUND),
        ("nobody.example", StatusCode::NOT_FOUND),
    ] {
        let (status, body) = server
            .call(
                Method::GET,
                "",
                &format!("/v1/tls/ask?domain={name}"),
                None,
                None,
            )
            .await;
        assert_eq!(status, want, "{name}: {body}");
    }
    let (status, body) = server
        .call(
            Method::GET,
            "acme",
            "/v1/tls/ask?domain=shop.acme.example",
            None,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "platform host only: {body}");
    assert_eq!(body["error"]["code"], "unknown_host");

    // `veneer secrets rotate` re-encrypts the certificate keys (acme's,
    // globex's, the base's) and the ACME account under the new key.
    let (k1, k2) = (secret_key(1), secret_key(2));
    let out = server
        .veneer(
            &["secrets", "rotate"],
            &[("VENEER_SECRET_KEY", &k2), ("VENEER_SECRET_OLD_KEYS", &k1)],
        )
        .await;
    let text = &out.stdout;
    assert_eq!(out.code, Some(0), "{text}");
    assert!(
        text.contains("Certificate keys: 3 re-encrypted under key `k2`"),
        "{text}"
    );
    assert!(
        text.contains("ACME accounts: 1 re-encrypted under key `k2`"),
        "{text}"
    );
    let k2 =
        veneer::secrets::SecretBox::from_env_or_dev(Some(&secret_key(2)), &[], false).expect("k2");
    let stored = server
        .state
        .storage
        .platform()
        .served_certificate(ACME_SHOP)
        .await
        .expect("read")
        .expect("acme's certificate");
    let key = k2
        .decrypt(
            &stored.key_sealed,
            &veneer::app::certificates::key_aad(ACME_SHOP),
        )
        .expect("opens under k2 alone");
    assert!(String::from_utf8_lossy(&key).contains("PRIVATE KEY"));

    // The operator's list shows when each certificate expires.
    let out = server
        .veneer(&["domains", "list", "--tenant", "acme"], &[])
        .await;
    let text = &out.stdout;
    assert_eq!(out.code, Some(0), "{text}");
    let line = text
        .lines()
        .find(|l| l.starts_with(ACME_SHOP))
        .unwrap_or_else(|| panic!("{ACME_SHOP} listed: {text}"));
    assert!(line.contains("expires in"), "{line}");
}

both_backends!(
    https_serves_each_verified_domain_its_own_certificate,
    served_by_sni
);

async fn renewal_and_ca_down(db: Db) {
    let (mut server, mut pebble) = start(db, Duration::from_secs(15)).await;
    server.verify_domain("acme", ACME_SHOP).await;
    let first = until_issued(&server, "acme", ACME_SHOP).await;
    let root = pebble.issuing_root().await;
    let addr = tls_addr(&server);
    let leaf = server
        .eventually(10, async |_| {
            served_leaf(addr, ACME_SHOP, Some(&root)).await
        })
        .await
        .expect("served");

    // Renewed at two thirds of its lifetime, before it expires.
    let renewed = server
        .eventually(20, async |_| {
            let now = served_leaf(addr, ACME_SHOP, Some(&root)).await?;
            (now != leaf).then_some(now)
        })
        .await
        .expect("a renewed certificate is served");
    let now_ms = i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap();
    assert!(
        now_ms < first["not_after"].as_i64().unwrap(),
        "before expiry"
    );
    assert_eq!(names(&renewed), vec![ACME_SHOP.to_owned()]);
    let second = certificate(&server, "acme", ACME_SHOP).await;
    assert!(
        second["not_after"].as_i64() > first["not_after"].as_i64(),
        "{second}"
    );

    // The CA goes down; an order now fails, is recorded, and retried later.
    pebble.stop();
    let (status, body) = server
        .call(
            Method::POST,
            "acme",
            &format!("/v1/domains/{ACME_SHOP}/certificate/retry"),
            Some(&admin("acme")),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let failed = server
        .eventually(15, async |s| {
            let cert = certificate(s, "acme", ACME_SHOP).await;
            (cert["attempts"].as_u64() >= Some(2)).then_some(cert)
        })
        .await
        .expect("the failed order is retried");
    assert_eq!(failed["status"], "issued", "{failed}");
    assert!(
        failed["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("ACME")),
        "{failed}"
    );
    assert!(
        failed["next_attempt_at"].as_i64().unwrap() > now_ms,
        "{failed}"
    );
    assert_eq!(
        served_leaf(addr, ACME_SHOP, Some(&root)).await,
        Some(renewed),
        "the last certificate is still served"
    );

    // A name with no certificate ordered cannot be retried.
    let (status, body) = server
        .call(
            Method::POST,
            "acme",
            "/v1/domains/nothing.example/certificate/retry",
            Some(&admin("acme")),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    server.dns.take();
}

both_backends!(
    a_certificate_is_renewed_and_survives_the_ca_going_down,
    renewal_and_ca_down
);

/// The operator's PEM (a wildcard from a CA made here) answers for the base
/// domain and every tenant subdomain; other names get nothing, and a key
/// that does not fit the certificate stops the start with a clear error.
async fn base_pem(db: Db) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_key = KeyPair::generate().unwrap();
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec![format!("*.{BASE}"), BASE.to_owned()])
        .unwrap()
        .signed_by(&key, &issuer)
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (cert_path, key_path) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert_path, cert.pem()).unwrap();
    std::fs::write(&key_path, key.serialize_pem()).unwrap();
    let tls = TlsConfig {
        enabled: true,
        tls_listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        tls_cert: Some(cert_path.clone()),
        tls_key: Some(key_path),
        tls_tick_ms: 200,
        ..TlsConfig::default()
    };
    let server = Server::start_with(db, |config| config.tls = tls.clone()).await;
    let addr = tls_addr(&server);
    let root = ca.pem();
    for name in [BASE, "acme.veneer.test"] {
        let leaf = served_leaf(addr, name, Some(&root)).await;
        assert_eq!(
            names(&leaf.unwrap_or_else(|| panic!("{name} served"))),
            vec![format!("*.{BASE}"), BASE.to_owned()]
        );
    }
    assert!(served_leaf(addr, "nobody.example", None).await.is_none());
    let client = https_client(&server, &root, &["acme.veneer.test"]);
    let response = client
        .get(format!(
            "https://acme.veneer.test:{}/v1/config/categories",
            addr.port()
        ))
        .bearer_auth(admin("acme"))
        .send()
        .await
        .expect("served over HTTPS");
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response
            .headers()
            .get("strict-transport-security")
            .is_none(),
        "no HSTS unless asked for"
    );

    let stranger = dir.path().join("stranger.pem");
    std::fs::write(&stranger, KeyPair::generate().unwrap().serialize_pem()).unwrap();
    let mut config = server.state.config.clone();
    config.listen = SocketAddr::from(([127, 0, 0, 1], 0));
    config.tls.tls_key = Some(stranger);
    let err = veneer::server::start(config)
        .await
        .expect_err("a key that does not fit is refused");
    let text = format!("{err:#}");
    assert!(text.contains("does not fit the certificate"), "{text}");
}

both_backends!(
    the_operators_certificate_serves_the_base_and_its_subdomains,
    base_pem
);
