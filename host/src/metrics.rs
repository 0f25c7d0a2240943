//! Prometheus metrics: the one [`Metrics`] registry the server keeps, the
//! methods the middleware, the use cases and the worker call to count what
//! happened (one line at each call site), and the label policy that keeps the
//! number of series bounded however many tenants there are. It owns every
//! metric name, label and bucket; it reads nothing itself (no database, no
//! HTTP types: callers hand it plain values) and decides nothing about serving.
//!
//! **The bound.** Only counters with small fixed label sets, and one coarse
//! latency histogram, carry the `tenant` label; every other histogram and
//! gauge has fixed labels only (route group, hook, job kind). No label is ever
//! a path, a sha256, a user, an installation name or any other free text.
//! The `tenant` label takes at most `max_tenants` distinct values per process
//! (`--metrics-max-tenants`): the first tenants seen get their own value, every
//! later one is counted under [`OTHER`]. Requests that named no existing tenant
//! (the platform's host, an unknown host) are counted under [`NONE`]. So the
//! series count is at most [`series_bound`]`(max_tenants)` — computed from the
//! label sets below, and checked by the tests with 10,000 tenants.

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::runtime::{Hook, OutcomeKind, RunStats};
use crate::tenancy::TenantId;

/// The `tenant` label of tenants seen after the first `max_tenants`.
pub const OTHER: &str = "_other";
/// The `tenant` label of requests that named no existing tenant.
pub const NONE: &str = "_none";
/// Default of `--metrics-max-tenants`.
pub const DEFAULT_MAX_TENANTS: usize = 2_000;

/// The content type of [`Metrics::encode`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Route groups: the `group` label of request metrics, from the matched route
/// (never the raw path). Fixed: adding one changes [`series_bound`].
pub const ROUTE_GROUPS: [&str; 10] = [
    "config",
    "commission",
    "plugins",
    "data",
    "email",
    "shopify",
    "domains",
    "admin",
    "health",
    "other",
];

/// Status classes: the `class` label of request metrics.
pub const STATUS_CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// Buckets of the request latency histogram per route group, in seconds.
const LATENCY_BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];
/// Buckets of the coarse per-tenant latency histogram, in seconds.
const TENANT_LATENCY_BUCKETS: [f64; 3] = [0.1, 0.5, 2.5];
/// Buckets of plugin fuel per run.
const FUEL_BUCKETS: [f64; 7] = [1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10];
/// Buckets of plugin peak memory per run, in bytes (64 KiB to 256 MiB).
const MEMORY_BUCKETS: [f64; 7] = [
    65_536.0,
    262_144.0,
    1_048_576.0,
    4_194_304.0,
    16_777_216.0,
    67_108_864.0,
    268_435_456.0,
];
/// Buckets of plugin wall time per run, in seconds.
const WALL_BUCKETS: [f64; 11] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
];

/// The `cache` label of cache lookups.
pub const CACHES: [&str; 2] = ["state", "effective"];

/// Job kinds with a label of their own; any other kind is `other`.
pub const JOB_KINDS: [&str; 5] = [
    crate::app::jobs::WEBHOOK_JOB,
    crate::app::jobs::SEND_JOB,
    crate::app::jobs::DOMAIN_JOB,
    crate::app::jobs::SENDING_DOMAIN_JOB,
    "other",
];

/// What became of one job attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobOutcome {
    /// Finished.
    Done,
    /// Failed, queued again.
    Retry,
    /// Failed for good (dead-lettered).
    Dead,
}

impl JobOutcome {
    /// Every outcome.
    pub const ALL: [JobOutcome; 3] = [JobOutcome::Done, JobOutcome::Retry, JobOutcome::Dead];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            JobOutcome::Done => "done",
            JobOutcome::Retry => "retry",
            JobOutcome::Dead => "dead",
        }
    }
}

/// Something that happened to a tenant's email.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmailEvent {
    /// Handed to the relay.
    Sent,
    /// Given up on (permanent refusal, attempts used up, no settings).
    Failed,
    /// Not sent: the address is on the tenant's suppression list.
    Skipped,
    /// A bounce was recorded for a sent message.
    Bounced,
    /// An address was put on the suppression list (hard bounce, complaint).
    Suppressed,
}

impl EmailEvent {
    /// Every event.
    pub const ALL: [EmailEvent; 5] = [
        EmailEvent::Sent,
        EmailEvent::Failed,
        EmailEvent::Skipped,
        EmailEvent::Bounced,
        EmailEvent::Suppressed,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            EmailEvent::Sent => "sent",
            EmailEvent::Failed => "failed",
            EmailEvent::Skipped => "skipped",
            EmailEvent::Bounced => "bounced",
            EmailEvent::Suppressed => "suppressed",
        }
    }
}

/// What became of a webhook delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebhookResult {
    /// Authenticated and queued.
    Accepted,
    /// Authenticated, seen before.
    Duplicate,
    /// Refused (signature, shop, headers, body).
    Rejected,
}

impl WebhookResult {
    /// Every result.
    pub const ALL: [WebhookResult; 3] = [
        WebhookResult::Accepted,
        WebhookResult::Duplicate,
        WebhookResult::Rejected,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            WebhookResult::Accepted => "accepted",
            WebhookResult::Duplicate => "duplicate",
            WebhookResult::Rejected => "rejected",
        }
    }
}

/// Every plugin outcome (the `outcome` label of plugin runs).
pub const OUTCOMES: [OutcomeKind; 9] = [
    OutcomeKind::Ok,
    OutcomeKind::PluginError,
    OutcomeKind::OutOfFuel,
    OutcomeKind::OutOfMemory,
    OutcomeKind::Deadline,
    OutcomeKind::Trap,
    OutcomeKind::InvalidOutput,
    OutcomeKind::Rejected,
    OutcomeKind::PolicyViolation,
];

/// A `tenant` label value, shared: counting clones a pointer, not a string.
#[derive(Debug, Clone, Hash, PartialEq, Eq)]
struct TenantLabel(Arc<str>);

impl EncodeLabelValue for TenantLabel {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        std::fmt::Write::write_str(encoder, &self.0)
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    tenant: TenantLabel,
    group: &'static str,
    class: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct GroupLabels {
    group: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TenantLabels {
    tenant: TenantLabel,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RunLabels {
    tenant: TenantLabel,
    hook: &'static str,
    outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HookLabels {
    hook: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CacheLabels {
    tenant: TenantLabel,
    cache: &'static str,
    result: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct JobLabels {
    tenant: TenantLabel,
    kind: &'static str,
    outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EmailLabels {
    tenant: TenantLabel,
    event: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WebhookLabels {
    tenant: TenantLabel,
    result: &'static str,
}

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;
type FloatGauge = Gauge<f64, AtomicU64>;

/// The series one tenant label value can have at most: requests (group ×
/// class), its latency histogram (buckets, +Inf, sum, count), rate-limited
/// requests, plugin runs (hook × outcome), breaker pauses, cache lookups
/// (cache × hit/miss), jobs (kind × outcome), emails (event), webhooks (result).
pub const SERIES_PER_TENANT: usize = ROUTE_GROUPS.len() * STATUS_CLASSES.len()
    + (TENANT_LATENCY_BUCKETS.len() + 3)
    + 1
    + Hook::ALL.len() * OUTCOMES.len()
    + 1
    + CACHES.len() * 2
    + JOB_KINDS.len() * JobOutcome::ALL.len()
    + EmailEvent::ALL.len()
    + WebhookResult::ALL.len();

/// The series without a tenant label: the per-group latency histogram, the
/// per-hook fuel, memory and wall-time histograms, the queue gauges per job
/// kind, and the count of tenant label values.
pub const SERIES_FIXED: usize = ROUTE_GROUPS.len() * (LATENCY_BUCKETS.len() + 3)
    + Hook::ALL.len() * (FUEL_BUCKETS.len() + MEMORY_BUCKETS.len() + WALL_BUCKETS.len() + 9)
    + JOB_KINDS.len() * 3
    + 1;

/// The most series the registry can hold with `max_tenants` tenant label
/// values: each of them and [`OTHER`] with every per-tenant series, [`NONE`]
/// with the request series, and the fixed ones.
pub const fn series_bound(max_tenants: usize) -> usize {
    (max_tenants + 1) * SERIES_PER_TENANT
        + ROUTE_GROUPS.len() * STATUS_CLASSES.len()
        + (TENANT_LATENCY_BUCKETS.len() + 3)
        + SERIES_FIXED
}

/// The server's metrics. One per process, owned by the application state.
pub struct Metrics {
    registry: Registry,
    max_tenants: usize,
    labelled: RwLock<HashMap<TenantId, TenantLabel>>,
    other: TenantLabel,
    none: TenantLabel,
    tenant_labels: Gauge,
    requests: Family<RequestLabels, Counter>,
    latency: Histograms<GroupLabels>,
    tenant_latency: Histograms<TenantLabels>,
    rate_limited: Family<TenantLabels, Counter>,
    runs: Family<RunLabels, Counter>,
    fuel: Histograms<HookLabels>,
    memory: Histograms<HookLabels>,
    wall: Histograms<HookLabels>,
    breaker_pauses: Family<TenantLabels, Counter>,
    cache: Family<CacheLabels, Counter>,
    jobs: Family<JobLabels, Counter>,
    queued: Family<KindLabels, Gauge>,
    running: Family<KindLabels, Gauge>,
    oldest: Family<KindLabels, FloatGauge>,
    emails: Family<EmailLabels, Counter>,
    webhooks: Family<WebhookLabels, Counter>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics")
            .field("max_tenants", &self.max_tenants)
            .finish_non_exhaustive()
    }
}

fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS)
}
fn tenant_latency_histogram() -> Histogram {
    Histogram::new(TENANT_LATENCY_BUCKETS)
}
fn fuel_histogram() -> Histogram {
    Histogram::new(FUEL_BUCKETS)
}
fn memory_histogram() -> Histogram {
    Histogram::new(MEMORY_BUCKETS)
}
fn wall_histogram() -> Histogram {
    Histogram::new(WALL_BUCKETS)
}

impl Metrics {
    /// Empty metrics giving at most `max_tenants` tenants a label of their own.
    pub fn new(max_tenants: usize) -> Self {
        let mut registry = Registry::default();
        let m = Self {
            max_tenants,
            labelled: RwLock::new(HashMap::new()),
            other: TenantLabel(Arc::from(OTHER)),
            none: TenantLabel(Arc::from(NONE)),
            tenant_labels: Gauge::default(),
            requests: Family::default(),
            latency: Family::new_with_constructor(latency_histogram),
            tenant_latency: Family::new_with_constructor(tenant_latency_histogram),
            rate_limited: Family::default(),
            runs: Family::default(),
            fuel: Family::new_with_constructor(fuel_histogram),
            memory: Family::new_with_constructor(memory_histogram),
            wall: Family::new_with_constructor(wall_histogram),
            breaker_pauses: Family::default(),
            cache: Family::default(),
            jobs: Family::default(),
            queued: Family::default(),
            running: Family::default(),
            oldest: Family::default(),
            emails: Family::default(),
            webhooks: Family::default(),
            registry: Registry::default(),
        };
        registry.register(
            "veneer_metrics_tenant_labels",
            "Tenants with a tenant label of their own (at most --metrics-max-tenants; later ones are counted as _other)",
            m.tenant_labels.clone(),
        );
        registry.register(
            "veneer_http_requests",
            "HTTP requests by tenant, route group and status class",
            m.requests.clone(),
        );
        registry.register(
            "veneer_http_request_duration_seconds",
            "HTTP request latency by route group (until the response head)",
            m.latency.clone(),
        );
        registry.register(
            "veneer_tenant_request_duration_seconds",
            "HTTP request latency by tenant, in a few coarse buckets",
            m.tenant_latency.clone(),
        );
        registry.register(
            "veneer_rate_limited",
            "Requests refused for the tenant's request rate (429)",
            m.rate_limited.clone(),
        );
        registry.register(
            "veneer_plugin_runs",
            "Plugin runs by tenant, hook and outcome",
            m.runs.clone(),
        );
        registry.register(
            "veneer_plugin_fuel",
            "Fuel (instructions) used per plugin run, by hook",
            m.fuel.clone(),
        );
        registry.register(
            "veneer_plugin_memory_bytes",
            "Peak linear memory per plugin run, by hook",
            m.memory.clone(),
        );
        registry.register(
            "veneer_plugin_wall_seconds",
            "Wall time per plugin run (instantiation and hook), by hook",
            m.wall.clone(),
        );
        registry.register(
            "veneer_plugin_breaker_pauses",
            "Pauses of a tenant's plugin by its breaker after repeated runs into its limits",
            m.breaker_pauses.clone(),
        );
        registry.register(
            "veneer_cache_lookups",
            "Cache lookups by tenant, cache (state, effective) and result (hit, miss)",
            m.cache.clone(),
        );
        registry.register(
            "veneer_jobs",
            "Job attempts by tenant, kind and outcome (done, retry, dead)",
            m.jobs.clone(),
        );
        registry.register(
            "veneer_jobs_queued",
            "Queued jobs by kind, in the whole database (every node reports the same figure)",
            m.queued.clone(),
        );
        registry.register(
            "veneer_jobs_running",
            "Running jobs by kind, in the whole database",
            m.running.clone(),
        );
        registry.register(
            "veneer_jobs_oldest_ready_age_seconds",
            "How long the oldest due queued job of a kind has waited past its run time (0: none waiting)",
            m.oldest.clone(),
        );
        registry.register(
            "veneer_emails",
            "Email events by tenant: sent, failed, skipped (suppressed address), bounced, suppressed",
            m.emails.clone(),
        );
        registry.register(
            "veneer_webhooks",
            "Webhook deliveries by tenant and result (accepted, duplicate, rejected)",
            m.webhooks.clone(),
        );
        Self { registry, ..m }
    }

    /// The `tenant` label value of `tenant`: its id while fewer than
    /// `max_tenants` tenants have one, else [`OTHER`].
    fn tenant(&self, tenant: &TenantId) -> TenantLabel {
        {
            let labelled = self.labelled.read().unwrap_or_else(|p| p.into_inner());
            if let Some(label) = labelled.get(tenant) {
                return label.clone();
            }
            if labelled.len() >= self.max_tenants {
                return self.other.clone();
            }
        }
        let mut labelled = self.labelled.write().unwrap_or_else(|p| p.into_inner());
        if let Some(label) = labelled.get(tenant) {
            return label.clone();
        }
        if labelled.len() >= self.max_tenants {
            return self.other.clone();
        }
        let label = TenantLabel(Arc::from(tenant.as_str()));
        labelled.insert(tenant.clone(), label.clone());
        self.tenant_labels
            .set(i64::try_from(labelled.len()).unwrap_or(i64::MAX));
        label
    }

    /// One HTTP request: its tenant (`None`: it named no existing tenant), the
    /// route it matched (`None`: no route), its status and latency.
    pub fn request(
        &self,
        tenant: Option<&TenantId>,
        route: Option<&str>,
        status: u16,
        latency: Duration,
    ) {
        let tenant = tenant.map_or_else(|| self.none.clone(), |t| self.tenant(t));
        let group = route_group(route);
        let seconds = latency.as_secs_f64();
        self.latency
            .get_or_create(&GroupLabels { group })
            .observe(seconds);
        self.tenant_latency
            .get_or_create(&TenantLabels {
                tenant: tenant.clone(),
            })
            .observe(seconds);
        self.requests
            .get_or_create(&RequestLabels {
                tenant,
                group,
                class: status_class(status),
            })
            .inc();
    }

    /// A request refused for the tenant's request rate.
    pub fn rate_limited(&self, tenant: &TenantId) {
        self.rate_limited
            .get_or_create(&TenantLabels {
                tenant: self.tenant(tenant),
            })
            .inc();
    }

    /// One plugin run.
    pub fn plugin_run(
        &self,
        tenant: &TenantId,
        hook: Hook,
        outcome: OutcomeKind,
        stats: &RunStats,
    ) {
        self.runs
            .get_or_create(&RunLabels {
                tenant: self.tenant(tenant),
                hook: hook.as_str(),
                outcome: outcome.as_str(),
            })
            .inc();
        let hook = HookLabels {
            hook: hook.as_str(),
        };
        // Precision lost above 2^53 fuel units does not matter in a bucket.
        #[allow(clippy::cast_precision_loss)]
        {
            self.fuel
                .get_or_create(&hook)
                .observe(stats.fuel_used as f64);
            self.memory
                .get_or_create(&hook)
                .observe(stats.peak_memory_bytes as f64);
        }
        self.wall
            .get_or_create(&hook)
            .observe(stats.wall_time.as_secs_f64());
    }

    /// A breaker paused one of the tenant's plugins.
    pub fn breaker_pause(&self, tenant: &TenantId) {
        self.breaker_pauses
            .get_or_create(&TenantLabels {
                tenant: self.tenant(tenant),
            })
            .inc();
    }

    /// A lookup in one of the per-tenant caches ([`CACHES`]).
    pub fn cache(&self, tenant: &TenantId, cache: &'static str, hit: bool) {
        self.cache
            .get_or_create(&CacheLabels {
                tenant: self.tenant(tenant),
                cache,
                result: if hit { "hit" } else { "miss" },
            })
            .inc();
    }

    /// One job attempt's outcome.
    pub fn job(&self, tenant: &TenantId, kind: &str, outcome: JobOutcome) {
        self.jobs
            .get_or_create(&JobLabels {
                tenant: self.tenant(tenant),
                kind: job_kind(kind),
                outcome: outcome.as_str(),
            })
            .inc();
    }

    /// Something that happened to the tenant's email.
    pub fn email(&self, tenant: &TenantId, event: EmailEvent) {
        self.emails
            .get_or_create(&EmailLabels {
                tenant: self.tenant(tenant),
                event: event.as_str(),
            })
            .inc();
    }

    /// A webhook delivery to the tenant.
    pub fn webhook(&self, tenant: &TenantId, result: WebhookResult) {
        self.webhooks
            .get_or_create(&WebhookLabels {
                tenant: self.tenant(tenant),
                result: result.as_str(),
            })
            .inc();
    }

    /// The queue now, per job kind as stored: queued and running jobs, and
    /// how long the oldest due queued one has waited. Kinds without their
    /// own label are summed into `other`; kinds not listed are set to 0.
    pub fn set_queue<'a>(&self, kinds: impl IntoIterator<Item = QueueFigures<'a>>) {
        let mut figures = [(0i64, 0i64, 0f64); JOB_KINDS.len()];
        for kind in kinds {
            let label = job_kind(kind.kind);
            let Some(slot) = JOB_KINDS.iter().position(|k| *k == label) else {
                continue;
            };
            let entry = &mut figures[slot];
            entry.0 = entry
                .0
                .saturating_add(i64::try_from(kind.queued).unwrap_or(i64::MAX));
            entry.1 = entry
                .1
                .saturating_add(i64::try_from(kind.running).unwrap_or(i64::MAX));
            entry.2 = entry.2.max(kind.oldest_ready_age.as_secs_f64());
        }
        for (kind, (queued, running, oldest)) in JOB_KINDS.into_iter().zip(figures) {
            let labels = KindLabels { kind };
            self.queued.get_or_create(&labels).set(queued);
            self.running.get_or_create(&labels).set(running);
            self.oldest.get_or_create(&labels).set(oldest);
        }
    }

    /// Everything, in the OpenMetrics text format ([`CONTENT_TYPE`]).
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// One job kind's figures for [`Metrics::set_queue`].
#[derive(Debug, Clone, Copy)]
pub struct QueueFigures<'a> {
    /// The stored kind.
    pub kind: &'a str,
    /// Queued jobs (due or not).
    pub queued: u64,
    /// Running jobs.
    pub running: u64,
    /// How long the oldest due queued job has waited past its run time.
    pub oldest_ready_age: Duration,
}

/// The status class label of a status code.
fn status_class(status: u16) -> &'static str {
    match status {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

/// The job kind label of a stored kind.
fn job_kind(kind: &str) -> &'static str {
    JOB_KINDS
        .iter()
        .find(|k| **k == kind)
        .copied()
        .unwrap_or("other")
}

/// The route group of a matched route template (`/v1/config/{section}`), or
/// `other` without one.
pub fn route_group(route: Option<&str>) -> &'static str {
    let Some(route) = route else { return "other" };
    let Some(rest) = route.strip_prefix("/v1/") else {
        return match route {
            "/healthz" | "/readyz" => "health",
            _ => "other",
        };
    };
    let first = rest.split('/').next().unwrap_or_default();
    match first {
        "config" => "config",
        "commission" => "commission",
        "plugins" | "installations" | "installation-order" | "rollout" | "catalogue" | "policy"
        | "quota" => "plugins",
        "kv" | "records" | "runs" | "usage" | "audit" | "jobs" => "data",
        "email" => "email",
        "shopify" => "shopify",
        "domains" => "domains",
        "admin" => "admin",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> TenantId {
        TenantId::new(s).unwrap()
    }

    fn series(text: &str) -> Vec<&str> {
        text.lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .collect()
    }

    fn value(text: &str, series: &str) -> Option<f64> {
        text.lines().find_map(|l| {
            l.strip_prefix(series)
                .and_then(|rest| rest.strip_prefix(' '))
                .and_then(|v| v.parse().ok())
        })
    }

    #[test]
    fn requests_are_counted_by_tenant_group_and_class() {
        let m = Metrics::new(10);
        let acme = id("acme");
        for _ in 0..3 {
            m.request(
                Some(&acme),
                Some("/v1/config"),
                200,
                Duration::from_millis(3),
            );
        }
        m.request(Some(&acme), Some("/v1/kv/{key}"), 404, Duration::ZERO);
        m.request(None, None, 404, Duration::ZERO);
        let text = m.encode();
        assert_eq!(
            value(
                &text,
                r#"veneer_http_requests_total{tenant="acme",group="config",class="2xx"}"#
            ),
            Some(3.0),
            "{text}"
        );
        assert_eq!(
            value(
                &text,
                r#"veneer_http_requests_total{tenant="acme",group="data",class="4xx"}"#
            ),
            Some(1.0)
        );
        assert_eq!(
            value(
                &text,
                r#"veneer_http_requests_total{tenant="_none",group="other",class="4xx"}"#
            ),
            Some(1.0)
        );
        assert_eq!(
            value(
                &text,
                r#"veneer_tenant_request_duration_seconds_count{tenant="acme"}"#
            ),
            Some(4.0)
        );
        assert!(text.ends_with("# EOF\n"));
    }

    #[test]
    fn tenants_past_the_cap_are_counted_as_other() {
        let m = Metrics::new(2);
        for t in ["a1", "b2", "c3", "d4"] {
            m.rate_limited(&id(t));
        }
        m.rate_limited(&id("a1"));
        let text = m.encode();
        assert_eq!(
            value(&text, r#"veneer_rate_limited_total{tenant="a1"}"#),
            Some(2.0)
        );
        assert_eq!(
            value(&text, r#"veneer_rate_limited_total{tenant="b2"}"#),
            Some(1.0)
        );
        assert_eq!(
            value(&text, r#"veneer_rate_limited_total{tenant="_other"}"#),
            Some(2.0)
        );
        assert_eq!(value(&text, "veneer_metrics_tenant_labels"), Some(2.0));
        assert!(!text.contains("c3"), "{text}");
    }

    #[test]
    fn route_groups_come_from_route_templates() {
        assert_eq!(route_group(Some("/v1/config/{section}")), "config");
        assert_eq!(
            route_group(Some("/v1/installations/{name}/releases/{id}")),
            "plugins"
        );
        assert_eq!(route_group(Some("/v1/shopify/webhooks")), "shopify");
        assert_eq!(route_group(Some("/v1/admin/tenants/{id}")), "admin");
        assert_eq!(route_group(Some("/healthz")), "health");
        assert_eq!(route_group(Some("/v1/nonsense")), "other");
        assert_eq!(route_group(None), "other");
        for group in ROUTE_GROUPS {
            assert!(!group.is_empty());
        }
    }

    #[test]
    fn queue_figures_fold_unknown_kinds_into_other() {
        let m = Metrics::new(1);
        m.set_queue([
            QueueFigures {
                kind: "email.send",
                queued: 4,
                running: 1,
                oldest_ready_age: Duration::from_secs(7),
            },
            QueueFigures {
                kind: "mystery",
                queued: 2,
                running: 0,
                oldest_ready_age: Duration::from_secs(1),
            },
        ]);
        let text = m.encode();
        assert_eq!(
            value(&text, r#"veneer_jobs_queued{kind="email.send"}"#),
            Some(4.0)
        );
        assert_eq!(
            value(&text, r#"veneer_jobs_queued{kind="other"}"#),
            Some(2.0)
        );
        assert_eq!(
            value(
                &text,
                r#"veneer_jobs_oldest_ready_age_seconds{kind="email.send"}"#
            ),
            Some(7.0)
        );
        assert_eq!(
            value(&text, r#"veneer_jobs_queued{kind="shopify.webhook"}"#),
            Some(0.0)
        );
    }

    /// Every label combination of every metric, for 10,000 tenants: the
    /// series count reaches the documented bound for the default cap and no
    /// more.
    #[test]
    fn ten_thousand_tenants_stay_under_the_documented_bound() {
        let m = Metrics::new(DEFAULT_MAX_TENANTS);
        let stats = RunStats::default();
        let routes = [
            "/v1/config",
            "/v1/commission/quote",
            "/v1/plugins",
            "/v1/kv",
            "/v1/email/send",
            "/v1/shopify",
            "/v1/domains",
            "/v1/admin/tenants",
            "/healthz",
            "/bench/static-config",
        ];
        let statuses = [101, 200, 304, 404, 500];
        let drive = |tenant: Option<&TenantId>| {
            for route in routes {
                for status in statuses {
                    m.request(tenant, Some(route), status, Duration::from_millis(7));
                }
            }
        };
        drive(None);
        for n in 0..10_000 {
            let t = id(&format!("tenant-{n}"));
            drive(Some(&t));
            m.rate_limited(&t);
            m.breaker_pause(&t);
            for hook in Hook::ALL {
                for outcome in OUTCOMES {
                    m.plugin_run(&t, hook, outcome, &stats);
                }
            }
            for cache in CACHES {
                m.cache(&t, cache, true);
                m.cache(&t, cache, false);
            }
            for kind in JOB_KINDS {
                for outcome in JobOutcome::ALL {
                    m.job(&t, kind, outcome);
                }
            }
            for event in EmailEvent::ALL {
                m.email(&t, event);
            }
            for result in WebhookResult::ALL {
                m.webhook(&t, result);
            }
        }
        m.set_queue([]);
        let text = m.encode();
        let count = series(&text).len();
        assert_eq!(
            count,
            series_bound(DEFAULT_MAX_TENANTS),
            "every combination"
        );
        // The figure docs/operations.md quotes.
        assert_eq!(SERIES_PER_TENANT, 130);
        assert_eq!(series_bound(DEFAULT_MAX_TENANTS), 260_522);
        assert!(count <= 275_000);
        assert_eq!(value(&text, "veneer_metrics_tenant_labels"), Some(2_000.0));
        assert_eq!(
            value(&text, r#"veneer_rate_limited_total{tenant="_other"}"#),
            Some(8_000.0)
        );
    }
}
