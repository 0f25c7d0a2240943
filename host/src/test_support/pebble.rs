//! Pebble, Let's Encrypt's ACME test server, run as a child process for the
//! HTTPS tests: installed with apt when missing (Debian's `pebble`), given an
//! HTTPS certificate of its own (a throwaway CA made here with rcgen: the
//! package ships none), free loopback ports, HTTP-01 validation against the
//! host's HTTP port, and the test's DNS server to resolve the names it
//! validates (publish A records of 127.0.0.1 there). It issues from a root
//! regenerated at every launch ([`Pebble::issuing_root`]); stopping it (for
//! "the CA is down") leaves that root valid for what it issued.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};

/// A running pebble; killed when dropped.
pub struct Pebble {
    /// The ACME directory URL (`--acme-directory`).
    pub directory: String,
    /// The PEM file of the CA of pebble's own HTTPS certificate (`--acme-ca-root`).
    pub https_root: PathBuf,
    management: SocketAddr,
    client: reqwest::Client,
    child: Option<Child>,
    _dir: tempfile::TempDir,
}

impl std::fmt::Debug for Pebble {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pebble")
            .field("directory", &self.directory)
            .finish_non_exhaustive()
    }
}

impl Drop for Pebble {
    fn drop(&mut self) {
        self.stop();
    }
}

static INSTALL: Mutex<()> = Mutex::new(());

/// The pebble binary, installed with `apt-get install -y pebble` if missing.
pub fn ensure_installed() -> PathBuf {
    let _once = INSTALL.lock().unwrap_or_else(|p| p.into_inner());
    let found = |name: &str| {
        Command::new("which")
            .arg(name)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()))
    };
    if let Some(path) = found("pebble") {
        return path;
    }
    let status = Command::new("apt-get")
        .args(["install", "-y", "pebble"])
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status()
        .expect("apt-get runs");
    assert!(status.success(), "apt-get install -y pebble failed");
    found("pebble").expect("pebble installed")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

impl Pebble {
    /// Starts pebble validating HTTP-01 on `http_port` of the addresses
    /// `dns` gives, issuing certificates valid `validity` long, and waits
    /// until its directory answers.
    pub async fn start(dns: SocketAddr, http_port: u16, validity: Duration) -> Self {
        let binary = ensure_installed();
        let dir = tempfile::tempdir().expect("temp dir");

        // Pebble's own HTTPS certificate, from a CA made for the test.
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "veneer test: pebble's HTTPS CA");
        let ca_key = KeyPair::generate().expect("ca key");
        let ca_cert = ca_params.self_signed(&ca_key).expect("ca cert");
        let issuer = Issuer::new(ca_params, ca_key);
        let leaf_key = KeyPair::generate().expect("leaf key");
        let leaf = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
            .expect("leaf params")
            .signed_by(&leaf_key, &issuer)
            .expect("leaf cert");
        let https_root = dir.path().join("https-root.pem");
        std::fs::write(&https_root, ca_cert.pem()).expect("write root");
        let cert = dir.path().join("cert.pem");
        let key = dir.path().join("key.pem");
        std::fs::write(&cert, leaf.pem()).expect("write cert");
        std::fs::write(&key, leaf_key.serialize_pem()).expect("write key");

        let (listen, management) = (free_port(), free_port());
        let config = serde_json::json!({
            "pebble": {
                "listenAddress": format!("127.0.0.1:{listen}"),
                "managementListenAddress": format!("127.0.0.1:{management}"),
                "certificate": cert,
                "privateKey": key,
                "httpPort": http_port,
                "tlsPort": free_port(),
                "ocspResponderURL": "",
                "externalAccountBindingRequired": false,
                "certificateValidityPeriod": validity.as_secs().max(1),
            }
        });
        let config_path = dir.path().join("pebble.json");
        std::fs::write(&config_path, config.to_string()).expect("write config");
        let log = std::fs::File::create(dir.path().join("pebble.log")).expect("log file");
        let child = Command::new(binary)
            .arg("-config")
            .arg(&config_path)
            .arg("-dnsserver")
            .arg(dns.to_string())
            .env("PEBBLE_VA_NOSLEEP", "1")
            .env("PEBBLE_WFE_NONCEREJECT", "0")
            .env("PEBBLE_AUTHZREUSE", "0")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("pebble starts");
        let client = reqwest::Client::builder()
            .tls_certs_only([
                reqwest::Certificate::from_pem(ca_cert.pem().as_bytes()).expect("root")
            ])
            .timeout(Duration::from_secs(5))
            .build()
            .expect("client");
        let pebble = Self {
            directory: format!("https://127.0.0.1:{listen}/dir"),
            https_root,
            management: SocketAddr::from(([127, 0, 0, 1], management)),
            client,
            child: Some(child),
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Ok(response) = pebble.client.get(&pebble.directory).send().await
                && response.status().is_success()
            {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "pebble's directory never answered; its log: {}",
                pebble.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        pebble
    }

    /// What pebble logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self._dir.path().join("pebble.log")).unwrap_or_default()
    }

    /// The PEM of the root pebble issues from (this launch's).
    pub async fn issuing_root(&self) -> String {
        let response = self
            .client
            .get(format!("https://{}/roots/0", self.management))
            .send()
            .await
            .expect("pebble's management answers");
        assert!(response.status().is_success(), "{}", response.status());
        response.text().await.expect("a PEM")
    }

    /// Stops it (the CA is down from now on).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
