//! Trace export (`veneer serve --otlp-endpoint`): a real server process
//! exports its spans to an OpenTelemetry collector's trace endpoint on
//! loopback (`veneer::test_support::otlp_receiver`, decoding the protocol's
//! protobuf): the request span with its tenant, route, status and request id,
//! the plugin call under it with its installation, release, outcome and fuel,
//! the host calls under that; a caller's W3C `traceparent` is continued; the
//! last spans are posted when the server stops. Without the flag nothing is
//! sent, whatever `OTEL_*` says; a collector that hangs or is down costs no
//! request.

use std::io::{BufRead as _, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use veneer::test_support::otlp_receiver::{OtlpReceiver, ReceivedSpan};

/// A `veneer serve --dev` process on a fresh SQLite database and a free
/// loopback port; killed when dropped.
struct Served {
    child: Child,
    addr: String,
    /// The demo tenant `acme`'s admin token, as the server printed it.
    token: String,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Served {
    /// Starts the server with `args` on top of the demo's (and `env`, with
    /// `RUST_LOG` and `OTEL_*` unset unless given), and waits until it
    /// listens.
    async fn start(args: &[&str], env: &[(&str, &str)]) -> Self {
        let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        tokio::task::spawn_blocking(move || Self::spawn(&args, &env))
            .await
            .expect("the server started")
    }

    fn spawn(args: &[String], env: &[(String, String)]) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = format!("sqlite://{}", dir.path().join("traces.db").display());
        let log = dir.path().join("stderr.log");
        let mut command = Command::new(env!("CARGO_BIN_EXE_veneer"));
        command
            .args([
                "serve",
                "--dev",
                "--listen",
                "127.0.0.1:0",
                "--database-url",
            ])
            .arg(&db)
            // The suite's shared artifacts (each demo plugin compiled once);
            // no purge sweep, which would clear other servers' artifacts.
            .arg("--artifact-dir")
            .arg(std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("e2e-artifacts"))
            .args(["--tenant-purge-interval-secs", "0"])
            .args(args);
        for (name, _) in std::env::vars() {
            if name == "RUST_LOG" || name.starts_with("OTEL_") || name.starts_with("VENEER_") {
                command.env_remove(name);
            }
        }
        let mut child = command
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::piped())
            .stderr(Stdio::from(std::fs::File::create(&log).expect("log file")))
            .spawn()
            .expect("veneer serve starts");
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let (mut addr, mut token) = (None, None);
        for line in lines.by_ref() {
            let line = line.expect("utf-8 output");
            if let Some(rest) = line.strip_prefix("veneer listening on http://") {
                addr = rest.split_whitespace().next().map(str::to_owned);
            }
            if let Some(t) = line.trim().strip_prefix("export ACME_TOKEN=") {
                token = Some(t.to_owned());
            }
            if line.contains("/v1/admin/tenants") {
                break;
            }
        }
        // Drained to the end: a closed pipe would end the server.
        std::thread::spawn(move || lines.count());
        let log_text = std::fs::read_to_string(&log).unwrap_or_default();
        Self {
            addr: addr.unwrap_or_else(|| panic!("the server prints its address: {log_text}")),
            token: token.expect("the server prints acme's token"),
            child,
            log,
            _dir: dir,
        }
    }

    /// A commission quote as acme (a plugin call: acme's demo plugin has the
    /// commission hook), with `headers`; the status and how long it took.
    async fn quote(&self, headers: &[(&str, &str)]) -> (u16, Duration) {
        let mut request = reqwest::Client::new()
            .post(format!("http://{}/v1/commission/quote", self.addr))
            .header("host", "acme.localhost")
            .bearer_auth(&self.token)
            .json(
                &json!({ "order_id": "o-1", "sku": "W-1", "category_id": "watches",
                "unit_price": 800_000, "quantity": 1, "currency": "EUR" }),
            );
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let started = Instant::now();
        let response = request.send().await.expect("answered");
        let status = response.status().as_u16();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        if status == 200 {
            assert!(body["fuel_used"].as_u64() > Some(0), "a plugin ran: {body}");
        }
        (status, started.elapsed())
    }

    /// SIGTERM (the graceful stop), then waits up to `limit` for the exit.
    async fn stop(&mut self, limit: Duration) -> (ExitStatus, Duration) {
        let started = Instant::now();
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -TERM");
        loop {
            if let Some(exit) = self.child.try_wait().expect("wait") {
                return (exit, started.elapsed());
            }
            assert!(
                started.elapsed() < limit,
                "the server did not stop within {limit:?}:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// The `request` span of the request with id `id`.
fn request_span<'a>(spans: &'a [ReceivedSpan], id: &str) -> Option<&'a ReceivedSpan> {
    spans
        .iter()
        .find(|s| s.name == "request" && s.attr("request_id") == Some(id))
}

fn children<'a>(
    spans: &'a [ReceivedSpan],
    parent: &ReceivedSpan,
    name: &str,
) -> Vec<&'a ReceivedSpan> {
    spans
        .iter()
        .filter(|s| s.name == name && s.parent_span_id == parent.span_id)
        .collect()
}

const CALLER_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_plugin_call_and_host_call_spans_reach_an_otlp_collector() {
    let receiver = OtlpReceiver::start().await;
    let endpoint = receiver.endpoint();
    let mut server = Served::start(
        &[
            "--otlp-endpoint",
            &endpoint,
            "--otlp-service-name",
            "veneer-e2e",
        ],
        &[],
    )
    .await;

    let (status, _) = server.quote(&[("x-request-id", "quote-1")]).await;
    assert_eq!(status, 200);
    let config = reqwest::Client::new()
        .get(format!("http://{}/v1/config/categories", server.addr))
        .header("host", "acme.localhost")
        .header("x-request-id", "config-1")
        .bearer_auth(&server.token)
        .send()
        .await
        .expect("answered");
    assert_eq!(config.status(), 200);
    let traceparent = format!("00-{CALLER_TRACE}-{CALLER_SPAN}-01");
    let (status, _) = server
        .quote(&[
            ("x-request-id", "continued-1"),
            ("traceparent", &traceparent),
        ])
        .await;
    assert_eq!(status, 200);
    // The caller decided not to sample this trace: it is not exported.
    let unsampled = format!("00-{CALLER_TRACE}-{CALLER_SPAN}-00");
    let (status, _) = server
        .quote(&[("x-request-id", "unsampled-1"), ("traceparent", &unsampled)])
        .await;
    assert_eq!(status, 200);
    let unauthorized = reqwest::Client::new()
        .get(format!("http://{}/v1/config/categories", server.addr))
        .header("host", "acme.localhost")
        .header("x-request-id", "no-token-1")
        .send()
        .await
        .expect("answered");
    assert_eq!(unauthorized.status(), 401);

    // Posted by the batch processor's timer, while the server runs.
    let spans = receiver
        .wait_for(Duration::from_secs(20), |spans| {
            (request_span(spans, "quote-1").is_some()
                && request_span(spans, "no-token-1").is_some())
            .then(|| spans.to_vec())
        })
        .await
        .unwrap_or_else(|| {
            panic!(
                "spans received: {:#?}\nserver log:\n{}",
                receiver.spans(),
                server.log()
            )
        });

    let request = request_span(&spans, "quote-1").expect("the quote's request span");
    assert_eq!(request.attr("tenant"), Some("acme"), "{request:#?}");
    assert_eq!(request.attr("route"), Some("/v1/commission/quote"));
    assert_eq!(request.attr("method"), Some("POST"));
    assert_eq!(request.attr("status"), Some("200"));
    assert_eq!(request.kind, 2, "a server span: {request:#?}");
    assert_eq!(request.parent_span_id, "", "a root span");
    assert_eq!(
        request.resource.get("service.name").map(String::as_str),
        Some("veneer-e2e")
    );
    assert_eq!(request.trace_id.len(), 32);

    let calls = children(&spans, request, "plugin_call");
    assert_eq!(
        calls.len(),
        1,
        "one plugin call under the request: {spans:#?}"
    );
    let call = calls[0];
    assert_eq!(call.trace_id, request.trace_id);
    assert_eq!(call.attr("hook"), Some("commission"), "{call:#?}");
    assert!(
        call.attr("installation").is_some_and(|i| !i.is_empty()),
        "{call:#?}"
    );
    assert!(
        call.attr("release")
            .and_then(|r| r.parse::<i64>().ok())
            .is_some_and(|r| r > 0),
        "{call:#?}"
    );
    assert_eq!(call.attr("outcome"), Some("ok"), "{call:#?}");
    assert!(
        call.attr("fuel")
            .and_then(|f| f.parse::<u64>().ok())
            .is_some_and(|f| f > 0),
        "{call:#?}"
    );
    assert_ne!(call.status_code, 2, "a clean run is no error");

    // The plugin's host calls (its log line, its settings) sit under its
    // plugin call, named.
    let host_calls: Vec<&ReceivedSpan> = spans.iter().filter(|s| s.name == "host_call").collect();
    assert!(!host_calls.is_empty(), "{spans:#?}");
    for host_call in &host_calls {
        let parent = spans
            .iter()
            .find(|s| s.span_id == host_call.parent_span_id)
            .unwrap_or_else(|| panic!("the parent of {host_call:#?}"));
        assert_eq!(parent.name, "plugin_call");
        assert_eq!(parent.trace_id, host_call.trace_id);
        assert!(
            matches!(
                host_call.attr("function"),
                Some("settings.get" | "kv.get" | "kv.list-keys" | "log.write")
            ),
            "{host_call:#?}"
        );
    }

    // A request that failed (no token) is exported too, with its status.
    let refused = request_span(&spans, "no-token-1").expect("the 401's span");
    assert_eq!(refused.attr("status"), Some("401"));
    assert_eq!(refused.attr("route"), Some("/v1/config/{section}"));

    // The caller's trace is continued: same trace id, its span the parent.
    let continued = request_span(&spans, "continued-1").expect("the continued request");
    assert_eq!(continued.trace_id, CALLER_TRACE);
    assert_eq!(continued.parent_span_id, CALLER_SPAN);
    let call = children(&spans, continued, "plugin_call");
    assert_eq!(call.len(), 1, "{spans:#?}");
    assert_eq!(call[0].trace_id, CALLER_TRACE);

    // The last request, then a graceful stop: its spans are posted on the
    // way out, not lost with the queue.
    let (status, _) = server.quote(&[("x-request-id", "last-1")]).await;
    assert_eq!(status, 200);
    let (exit, _) = server.stop(Duration::from_secs(30)).await;
    assert!(exit.success(), "{exit:?}\n{}", server.log());
    let spans = receiver.spans();
    let last = request_span(&spans, "last-1")
        .unwrap_or_else(|| panic!("the last request's span was flushed: {spans:#?}"));
    assert_eq!(children(&spans, last, "plugin_call").len(), 1);
    assert!(
        request_span(&spans, "unsampled-1").is_none(),
        "an unsampled caller's request is not exported"
    );
    assert_eq!(receiver.refused(), 0, "every post was OTLP protobuf");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_flag_nothing_is_exported_whatever_the_otel_environment_says() {
    let receiver = OtlpReceiver::start().await;
    let endpoint = receiver.endpoint();
    let traces = format!("{endpoint}/v1/traces");
    let mut server = Served::start(
        &[],
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", &traces),
        ],
    )
    .await;
    for _ in 0..3 {
        let (status, _) = server.quote(&[]).await;
        assert_eq!(status, 200);
    }
    // A stop would post whatever an exporter had queued.
    let (exit, _) = server.stop(Duration::from_secs(30)).await;
    assert!(exit.success(), "{exit:?}\n{}", server.log());
    assert_eq!(receiver.posts(), 0, "no exporter without --otlp-endpoint");
}

/// A collector that accepts connections and never answers: every post waits
/// for the export timeout.
async fn hanging_collector() -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("address");
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    (addr, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_collector_that_hangs_or_is_down_costs_no_request() {
    let (hanging, task) = hanging_collector().await;
    let mut server = Served::start(&["--otlp-endpoint", &format!("http://{hanging}")], &[]).await;
    // Past the first export (5 s after start), so requests run while the
    // exporter waits on the collector.
    let started = Instant::now();
    let mut slowest = Duration::ZERO;
    let mut sent = 0;
    while started.elapsed() < Duration::from_secs(7) && sent < 300 {
        let (status, took) = server.quote(&[]).await;
        assert_eq!(status, 200, "{}", server.log());
        slowest = slowest.max(took);
        sent += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(sent >= 20, "only {sent} requests in 7 s");
    assert!(
        slowest < Duration::from_secs(2),
        "a request waited on the exporter: {slowest:?}"
    );
    // The stop waits for the last post at most the shutdown timeout.
    let (exit, took) = server.stop(Duration::from_secs(30)).await;
    assert!(exit.success(), "{exit:?}\n{}", server.log());
    assert!(took < Duration::from_secs(15), "stopped in {took:?}");
    task.abort();

    // Nobody listening at all: the same, and the failure is logged.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port");
    let mut server = Served::start(&["--otlp-endpoint", &format!("http://{closed}")], &[]).await;
    for _ in 0..5 {
        let (status, took) = server.quote(&[]).await;
        assert_eq!(status, 200);
        assert!(took < Duration::from_secs(2), "{took:?}");
    }
    let (exit, took) = server.stop(Duration::from_secs(30)).await;
    assert!(exit.success(), "{exit:?}\n{}", server.log());
    assert!(took < Duration::from_secs(15), "stopped in {took:?}");
}
