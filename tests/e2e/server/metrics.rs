//! Prometheus metrics: known traffic from two tenants and an unknown host,
//! then `GET /metrics` on the metrics listener counts exactly that, per
//! tenant; and a real Prometheus (Debian's package, installed if missing)
//! scraping a running server answers one tenant's request count and error
//! ratio as sent, evaluates the shipped alert rules without error, and runs
//! every query of the shipped Grafana dashboard.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use super::harness::{Db, Server, member, platform_admin};
use veneer::both_backends;
use veneer::test_support::prometheus::{Prometheus, check_rules};

/// One sample of the exposition: name, labels, value.
type Sample = (String, BTreeMap<String, String>, f64);

fn parse(text: &str) -> Vec<Sample> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|line| {
            let (series, value) = line.rsplit_once(' ').expect("a value");
            let (name, labels) = match series.split_once('{') {
                Some((name, rest)) => (name, rest.trim_end_matches('}')),
                None => (series, ""),
            };
            let labels = labels
                .split("\",")
                .filter(|p| !p.is_empty())
                .map(|pair| {
                    let (k, v) = pair.split_once("=\"").expect("label=\"value\"");
                    (k.to_owned(), v.trim_end_matches('"').to_owned())
                })
                .collect();
            (name.to_owned(), labels, value.parse().expect("a number"))
        })
        .collect()
}

/// The sum of `name`'s samples whose labels include every pair of `with`.
fn sum(samples: &[Sample], name: &str, with: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|(n, labels, _)| {
            n == name
                && with
                    .iter()
                    .all(|(k, v)| labels.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|(_, _, v)| v)
        .sum()
}

/// The sum of `name`'s series with `labels`, read from the server's state
/// (for the tests of other areas: no metrics listener needed).
pub(super) fn counter(server: &Server, name: &str, labels: &[(&str, &str)]) -> f64 {
    sum(&parse(&server.state.metrics.encode()), name, labels)
}

/// Waits up to 20 s for [`counter`] to be `want` (what a worker counts lands
/// just after what the tests see of its work).
pub(super) async fn wait_for_counter(
    server: &Server,
    name: &str,
    labels: &[(&str, &str)],
    want: f64,
) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let value = counter(server, name, labels);
        if value == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{name}{labels:?} is {value}, not {want}:\n{}",
            server.state.metrics.encode()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn scrape(client: &reqwest::Client, addr: SocketAddr) -> (String, Vec<Sample>) {
    let response = client
        .get(format!("http://{addr}/metrics"))
        .send()
        .await
        .expect("the metrics listener answers");
    assert_eq!(response.status(), StatusCode::OK);
    let content_type = response.headers()["content-type"]
        .to_str()
        .expect("text")
        .to_owned();
    assert!(
        content_type.starts_with("application/openmetrics-text"),
        "{content_type}"
    );
    let text = response.text().await.expect("text");
    let samples = parse(&text);
    (text, samples)
}

fn class(status: StatusCode) -> &'static str {
    match status.as_u16() {
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

/// What the test sent: requests by (tenant, group, class).
#[derive(Default)]
struct Tally(HashMap<(String, &'static str, &'static str), u64>);

impl Tally {
    fn add(&mut self, tenant: &str, group: &'static str, status: StatusCode) {
        *self
            .0
            .entry((tenant.to_owned(), group, class(status)))
            .or_default() += 1;
    }

    fn tenant(&self, tenant: &str) -> u64 {
        self.0
            .iter()
            .filter(|((t, _, _), _)| t == tenant)
            .map(|(_, n)| n)
            .sum()
    }

    fn errors(&self, tenant: &str) -> u64 {
        self.0
            .iter()
            .filter(|((t, _, c), _)| t == tenant && (*c == "4xx" || *c == "5xx"))
            .map(|(_, n)| n)
            .sum()
    }
}

async fn get(server: &Server, host: &str, path: &str, token: Option<&str>) -> StatusCode {
    let mut request = server.request(Method::GET, host, path);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.expect("answered").status()
}

/// Known traffic: acme's configuration with and without a token, globex's,
/// an unknown host's, and globex past its request rate.
async fn send_traffic(server: &Server, tally: &mut Tally) {
    for _ in 0..5 {
        let status = get(server, "acme", "/v1/config", Some(&member("acme"))).await;
        assert_eq!(status, StatusCode::OK);
        tally.add("acme", "config", status);
    }
    for _ in 0..3 {
        let status = get(server, "acme", "/v1/config", None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        tally.add("acme", "config", status);
    }
    for _ in 0..4 {
        let status = get(server, "globex", "/v1/config", Some(&member("globex"))).await;
        assert_eq!(status, StatusCode::OK);
        tally.add("globex", "config", status);
    }
    for _ in 0..2 {
        let status = get(server, "nosuch", "/v1/config", Some(&member("acme"))).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        tally.add("_none", "config", status);
    }
}

async fn rate_limit_globex(server: &Server, tally: &mut Tally) -> u64 {
    let (status, body) = server
        .call(
            Method::PATCH,
            "",
            "/v1/admin/tenants/globex",
            Some(&platform_admin()),
            Some(json!({ "rate_limit_per_sec": 1, "rate_limit_burst": 2 })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    tally.add("_none", "admin", status);
    let mut limited = 0;
    for _ in 0..8 {
        let status = get(server, "globex", "/v1/quota", Some(&member("globex"))).await;
        assert!(
            status == StatusCode::OK || status == StatusCode::TOO_MANY_REQUESTS,
            "{status}"
        );
        limited += u64::from(status == StatusCode::TOO_MANY_REQUESTS);
        tally.add("globex", "plugins", status);
    }
    assert!(limited > 0, "globex went past its rate");
    limited
}

fn with_metrics(config: &mut veneer::config::ServeConfig) {
    config.metrics_listen = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
}

async fn counts_match_the_traffic(db: Db) {
    let server = Server::start_with(db, with_metrics).await;
    let addr = server
        .running()
        .metrics_addr
        .expect("the metrics listener is bound");

    // Nothing counted yet but the fixed series.
    let (_, before) = scrape(&server.client, addr).await;
    assert_eq!(sum(&before, "veneer_http_requests_total", &[]), 0.0);

    let mut tally = Tally::default();
    send_traffic(&server, &mut tally).await;
    let limited = rate_limit_globex(&server, &mut tally).await;

    let (text, samples) = scrape(&server.client, addr).await;
    // Every request series is exactly what was sent, and nothing else.
    let mut counted = HashMap::new();
    for (name, labels, value) in &samples {
        if name == "veneer_http_requests_total" {
            let key = (
                labels["tenant"].clone(),
                labels["group"].clone(),
                labels["class"].clone(),
            );
            counted.insert(key, *value);
        }
    }
    let sent: HashMap<_, _> = tally
        .0
        .iter()
        .map(|((t, g, c), n)| ((t.clone(), (*g).to_owned(), (*c).to_owned()), *n as f64))
        .collect();
    assert_eq!(counted, sent, "{text}");
    assert_eq!(
        sum(
            &samples,
            "veneer_http_requests_total",
            &[("tenant", "acme"), ("class", "4xx")]
        ),
        3.0
    );
    assert_eq!(
        sum(
            &samples,
            "veneer_tenant_request_duration_seconds_count",
            &[("tenant", "acme")]
        ),
        tally.tenant("acme") as f64
    );
    assert_eq!(
        sum(
            &samples,
            "veneer_rate_limited_total",
            &[("tenant", "globex")]
        ),
        limited as f64
    );
    assert_eq!(
        sum(&samples, "veneer_rate_limited_total", &[("tenant", "acme")]),
        0.0
    );
    // An unknown host makes no tenant label; only the two tenants have one.
    assert!(!text.contains("nosuch"), "{text}");
    assert_eq!(sum(&samples, "veneer_metrics_tenant_labels", &[]), 2.0);

    // acme's configuration ran its plugins once, then came from the cache.
    let acme_runs = sum(&samples, "veneer_plugin_runs_total", &[("tenant", "acme")]);
    assert!(acme_runs > 0.0, "{text}");
    assert_eq!(
        acme_runs,
        sum(
            &samples,
            "veneer_plugin_runs_total",
            &[("tenant", "acme"), ("outcome", "ok")]
        )
    );
    assert_eq!(
        sum(&samples, "veneer_plugin_runs_total", &[]),
        sum(&samples, "veneer_plugin_fuel_count", &[]),
        "every run is in the fuel histogram"
    );
    assert_eq!(
        sum(&samples, "veneer_plugin_runs_total", &[]),
        sum(&samples, "veneer_plugin_wall_seconds_count", &[])
    );
    assert_eq!(
        sum(
            &samples,
            "veneer_cache_lookups_total",
            &[("tenant", "acme"), ("cache", "effective")]
        ),
        5.0,
        "one lookup per authenticated configuration request"
    );
    assert!(
        sum(
            &samples,
            "veneer_cache_lookups_total",
            &[
                ("tenant", "acme"),
                ("cache", "effective"),
                ("result", "hit")
            ]
        ) >= 4.0
    );
    // The queue's gauges, read from the database at scrape time.
    for kind in veneer::metrics::JOB_KINDS {
        assert!(
            samples
                .iter()
                .any(|(n, l, _)| n == "veneer_jobs_queued" && l["kind"] == kind),
            "{kind}: {text}"
        );
    }

    // The listener serves the metrics and nothing else.
    let response = server
        .client
        .get(format!("http://{addr}/v1/config"))
        .send()
        .await
        .expect("answered");
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
}

both_backends!(
    metrics_count_known_traffic_per_tenant,
    counts_match_the_traffic
);

fn docs(file: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../docs")
        .join(file)
}

/// Polls `expr` until it equals `want` (within 30 s of scrapes).
async fn until_equal(prometheus: &Prometheus, expr: &str, want: f64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut last = None;
    while Instant::now() < deadline {
        last = Some(prometheus.scalar(expr).await);
        if let Some(Ok(Some(value))) = last
            && value == want
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    panic!(
        "{expr}: wanted {want}, Prometheus answers {last:?}; its log:\n{}",
        prometheus.log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_prometheus_scrapes_one_tenants_requests_and_error_ratio() {
    let alerts = docs("prometheus-alerts.yml");
    if let Err(out) = check_rules(&alerts) {
        panic!("promtool check rules {}: {out}", alerts.display());
    }
    let server = Server::start_with(Db::Sqlite, with_metrics).await;
    let addr = server.running().metrics_addr.expect("metrics listener");
    let prometheus = Prometheus::start(addr, std::slice::from_ref(&alerts)).await;
    // The target is up before any traffic.
    until_equal(&prometheus, r#"up{job="veneer"}"#, 1.0).await;

    let mut tally = Tally::default();
    send_traffic(&server, &mut tally).await;
    until_equal(
        &prometheus,
        r#"sum(veneer_http_requests_total{tenant="acme"})"#,
        tally.tenant("acme") as f64,
    )
    .await;
    // More after Prometheus has seen the first part: a rate to compute.
    for _ in 0..4 {
        let status = get(&server, "acme", "/v1/config", Some(&member("acme"))).await;
        assert_eq!(status, StatusCode::OK);
        tally.add("acme", "config", status);
    }
    let acme = tally.tenant("acme") as f64;
    let ratio = tally.errors("acme") as f64 / acme;
    assert_eq!((acme, ratio), (12.0, 0.25), "the traffic as planned");

    until_equal(
        &prometheus,
        r#"sum(veneer_http_requests_total{tenant="acme"})"#,
        acme,
    )
    .await;
    until_equal(
        &prometheus,
        r#"sum(veneer_http_requests_total{tenant="acme",class=~"4xx|5xx"}) / sum(veneer_http_requests_total{tenant="acme"})"#,
        ratio,
    )
    .await;
    until_equal(
        &prometheus,
        r#"sum(veneer_http_requests_total{tenant="globex"})"#,
        tally.tenant("globex") as f64,
    )
    .await;
    until_equal(
        &prometheus,
        r#"sum(increase(veneer_http_requests_total{tenant="acme"}[1h])) > bool 0"#,
        1.0,
    )
    .await;
    let rate = prometheus
        .scalar(r#"sum(rate(veneer_http_requests_total{tenant="acme"}[1m]))"#)
        .await
        .expect("a rate query");
    assert!(
        rate.is_some_and(|r| r > 0.0),
        "acme has a request rate: {rate:?}"
    );

    // Every shipped alert rule evaluates without error on real data.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let data = prometheus.api("rules", &[]).await.expect("rules");
        let rules: Vec<Value> = data["groups"]
            .as_array()
            .expect("groups")
            .iter()
            .flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default())
            .collect();
        assert!(rules.len() >= 3, "{data}");
        if rules.iter().all(|r| r["health"] == "ok") {
            break;
        }
        assert!(
            Instant::now() < deadline && !rules.iter().any(|r| r["health"] == "err"),
            "a rule does not evaluate: {data}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    // Every query of the shipped dashboard runs, for one tenant.
    let dashboard: Value = serde_json::from_str(
        &std::fs::read_to_string(docs("grafana-dashboard.json")).expect("dashboard"),
    )
    .expect("the dashboard is JSON");
    let mut exprs = Vec::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().into_iter().flatten() {
            exprs.push(target["expr"].as_str().expect("expr").to_owned());
        }
    }
    assert!(exprs.len() >= 5, "{exprs:?}");
    for expr in exprs {
        let expr = expr
            .replace("$tenant", "acme")
            .replace("$__rate_interval", "1m")
            .replace("$__range", "5m");
        if let Err(err) = prometheus.query(&expr).await {
            panic!("the dashboard's query {expr} fails: {err}");
        }
    }
}
