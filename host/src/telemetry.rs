//! Trace export over OTLP (`serve --otlp-endpoint`, off by default): the
//! `tracing` spans the host already makes — `request` (`http::access`),
//! `plugin_call` (`resolve`), `host_call` (the runtime) and the jobs' — become
//! OpenTelemetry spans through a `tracing-opentelemetry` layer that `cli` adds
//! beside the log layer, and are posted to a collector as OTLP/HTTP protobuf.
//! A request carrying a W3C `traceparent` continues its caller's trace
//! ([`continue_trace`]).
//!
//! On a request's path the layer only builds the spans and hands each
//! finished one to a bounded queue: the SDK's batch processor drains it on a
//! thread of its own and posts with reqwest's blocking client, so a slow or
//! absent collector costs spans (dropped once [`MAX_QUEUED_SPANS`] wait),
//! never a request's time or a runtime worker. Owns the exporter and its lifetime; the spans are
//! made where the work is, the log output is `cli`'s.

use std::time::Duration;

use anyhow::Context as _;
use axum::http::HeaderMap;
use opentelemetry::KeyValue;
use opentelemetry::propagation::TextMapPropagator as _;
use opentelemetry::trace::{TraceContextExt as _, TracerProvider as _};
use opentelemetry_otlp::{Protocol, WithExportConfig as _};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, Sampler, SdkTracerProvider,
};
use tracing::{Level, Metadata};
use tracing_opentelemetry::OpenTelemetrySpanExt as _;
use tracing_subscriber::Layer;
use tracing_subscriber::registry::LookupSpan;

use crate::config::OtlpConfig;

/// Finished spans waiting to be posted; past this, new ones are dropped (the
/// SDK logs the first drop, and the count at shutdown).
pub const MAX_QUEUED_SPANS: usize = 2_048;
/// Spans in one post at most.
pub const MAX_BATCH_SPANS: usize = 512;
/// How often the queue is posted, when it has not filled a batch before.
pub const EXPORT_EVERY: Duration = Duration::from_secs(5);
/// How long one post may take, retries included.
pub const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a stopping server waits for the last spans to be posted.
pub const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);

/// The layer that hands finished spans to the exporter, for a subscriber `S`.
pub type ExportLayer<S> = Box<dyn Layer<S> + Send + Sync>;

/// The running exporter; [`Telemetry::shutdown`] posts what is queued.
#[derive(Debug)]
pub struct Telemetry {
    provider: SdkTracerProvider,
}

/// The layer that exports spans, and the exporter behind it; `None` when
/// `--otlp-endpoint` is unset (then nothing is built). Call outside an async
/// runtime (the blocking HTTP client starts one of its own).
pub fn start<S>(config: &OtlpConfig) -> anyhow::Result<Option<(ExportLayer<S>, Telemetry)>>
where
    S: tracing::Subscriber + for<'span> LookupSpan<'span> + Send + Sync,
{
    let Some(url) = config.traces_url().map_err(anyhow::Error::msg)? else {
        return Ok(None);
    };
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(&url)
        .with_timeout(EXPORT_TIMEOUT)
        .build()
        .with_context(|| format!("cannot export traces to {url}"))?;
    let batches = BatchSpanProcessor::builder(exporter)
        .with_batch_config(
            BatchConfigBuilder::default()
                .with_max_queue_size(MAX_QUEUED_SPANS)
                .with_max_export_batch_size(MAX_BATCH_SPANS)
                .with_scheduled_delay(EXPORT_EVERY)
                .build(),
        )
        .build();
    let resource = Resource::builder()
        .with_service_name(config.otlp_service_name.clone())
        .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
        .build();
    let provider = SdkTracerProvider::builder()
        .with_span_processor(batches)
        .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
            config.otlp_sample_ratio,
        ))))
        .with_resource(resource)
        .build();
    let layer = tracing_opentelemetry::layer()
        .with_tracer(provider.tracer("veneer"))
        .with_filter(tracing_subscriber::filter::filter_fn(exported))
        .boxed();
    Ok(Some((layer, Telemetry { provider })))
}

/// The spans exported, by name (the host's own only): a request's, its plugin
/// calls' (debug) and their host calls' (trace), whatever the log filter
/// says, and each job's. Not the jobs worker's span, which lasts as long as
/// the process: under it every job would be one trace, ended at shutdown.
const EXPORTED_SPANS: [&str; 4] = ["request", "plugin_call", "host_call", "job"];

/// What the export layer sees: the [`EXPORTED_SPANS`], and warnings and
/// errors, which become events of the span they happen in. Never the
/// OpenTelemetry crates' own logs (a failing export must not make spans
/// about itself).
fn exported(meta: &Metadata<'_>) -> bool {
    if meta.target().starts_with("opentelemetry") {
        return false;
    }
    if meta.is_span() {
        meta.target().starts_with("veneer") && EXPORTED_SPANS.contains(&meta.name())
    } else {
        *meta.level() <= Level::WARN
    }
}

impl Telemetry {
    /// Posts the spans still queued (waiting at most [`SHUTDOWN_TIMEOUT`])
    /// and stops the exporter. Call once serving has stopped.
    pub fn shutdown(self) {
        if let Err(err) = self.provider.shutdown_with_timeout(SHUTDOWN_TIMEOUT) {
            tracing::warn!("trace export did not finish: {err}");
        }
    }
}

/// Makes `span` (a request's, not yet entered) a child of the trace named by
/// the request's W3C `traceparent` header, when it carries a valid one; its
/// sampled flag then decides whether the request is exported. Without an
/// exporter this does nothing.
pub fn continue_trace(span: &tracing::Span, headers: &HeaderMap) {
    if !headers.contains_key("traceparent") {
        return;
    }
    let parent =
        TraceContextPropagator::new().extract(&opentelemetry_http::HeaderExtractor(headers));
    if parent.span().span_context().is_remote() {
        let _ = span.set_parent(parent);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Collects the names of the spans it is shown.
    #[derive(Clone, Default)]
    struct Seen(std::sync::Arc<std::sync::Mutex<Vec<String>>>);

    impl<S: tracing::Subscriber> Layer<S> for Seen {
        fn on_new_span(
            &self,
            attrs: &tracing::span::Attributes<'_>,
            _: &tracing::span::Id,
            _: tracing_subscriber::layer::Context<'_, S>,
        ) {
            let meta = attrs.metadata();
            self.0
                .lock()
                .expect("lock")
                .push(format!("{}:{}", meta.target(), meta.name()));
        }
    }

    #[test]
    fn the_request_plugin_host_and_job_spans_are_exported_and_no_other() {
        use tracing_subscriber::layer::SubscriberExt as _;
        let seen = Seen::default();
        let subscriber = tracing_subscriber::registry().with(
            seen.clone()
                .with_filter(tracing_subscriber::filter::filter_fn(exported)),
        );
        tracing::subscriber::with_default(subscriber, || {
            let _a = tracing::info_span!(target: "veneer::http::access", "request").entered();
            let _b = tracing::debug_span!(target: "veneer::resolve", "plugin_call").entered();
            let _c = tracing::trace_span!(target: "veneer_runtime::state", "host_call").entered();
            let _d = tracing::info_span!(target: "veneer::jobs::worker", "job").entered();
            let _e = tracing::debug_span!(target: "tower_http::trace", "request").entered();
            let _f = tracing::debug_span!(target: "veneer::resolve", "other").entered();
            let _g = tracing::info_span!(target: "opentelemetry_sdk", "export").entered();
            let _h = tracing::info_span!(target: "hyper", "connection").entered();
            let _i = tracing::info_span!(target: "veneer::jobs::worker", "jobs_worker").entered();
        });
        assert_eq!(
            *seen.0.lock().expect("lock"),
            [
                "veneer::http::access:request",
                "veneer::resolve:plugin_call",
                "veneer_runtime::state:host_call",
                "veneer::jobs::worker:job",
            ]
        );
    }

    /// Keeps what it is given to export.
    #[derive(Debug, Clone, Default)]
    struct Kept(std::sync::Arc<std::sync::Mutex<Vec<opentelemetry_sdk::trace::SpanData>>>);

    impl opentelemetry_sdk::trace::SpanExporter for Kept {
        async fn export(
            &self,
            batch: Vec<opentelemetry_sdk::trace::SpanData>,
        ) -> opentelemetry_sdk::error::OTelSdkResult {
            self.0.lock().expect("lock").extend(batch);
            Ok(())
        }
    }

    #[test]
    fn a_job_is_a_trace_of_its_own_and_a_plugin_call_is_its_requests_child() {
        use tracing_subscriber::layer::SubscriberExt as _;
        let kept = Kept::default();
        let provider = SdkTracerProvider::builder()
            .with_simple_exporter(kept.clone())
            .build();
        let subscriber = tracing_subscriber::registry().with(
            tracing_opentelemetry::layer()
                .with_tracer(provider.tracer("test"))
                .with_filter(tracing_subscriber::filter::filter_fn(exported)),
        );
        tracing::subscriber::with_default(subscriber, || {
            let worker = tracing::info_span!(target: "veneer::jobs::worker", "jobs_worker");
            let _worker = worker.enter();
            tracing::info_span!(target: "veneer::jobs::worker", "job").in_scope(|| {});
            let request = tracing::info_span!(target: "veneer::http::access", "request");
            let _request = request.enter();
            tracing::debug_span!(target: "veneer::resolve", "plugin_call").in_scope(|| {});
        });
        drop(provider);
        let spans = kept.0.lock().expect("lock");
        let named = |name: &str| {
            spans
                .iter()
                .find(|s| s.name == name)
                .unwrap_or_else(|| panic!("{name} exported: {spans:?}"))
        };
        assert!(spans.iter().all(|s| s.name != "jobs_worker"));
        assert_eq!(
            named("job").parent_span_id,
            opentelemetry::trace::SpanId::INVALID,
            "a root"
        );
        let (request, call) = (named("request"), named("plugin_call"));
        assert_eq!(call.parent_span_id, request.span_context.span_id());
        assert_eq!(
            call.span_context.trace_id(),
            request.span_context.trace_id()
        );
    }

    #[test]
    fn a_traceparent_makes_the_request_span_a_child_of_the_callers_trace() {
        use tracing_subscriber::layer::SubscriberExt as _;
        let provider = SdkTracerProvider::builder().build();
        let subscriber = tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
        tracing::subscriber::with_default(subscriber, || {
            let mut headers = HeaderMap::new();
            headers.insert(
                "traceparent",
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
                    .parse()
                    .expect("header"),
            );
            let span = tracing::info_span!("request");
            continue_trace(&span, &headers);
            let context = span.context();
            let ours = context.span();
            let ours = ours.span_context();
            assert_eq!(
                ours.trace_id().to_string(),
                "4bf92f3577b34da6a3ce929d0e0e4736"
            );
            assert_ne!(ours.span_id().to_string(), "00f067aa0ba902b7");
            assert!(ours.is_sampled());

            // A malformed one starts a trace of its own.
            headers.insert("traceparent", "00-zz-00-01".parse().expect("header"));
            let span = tracing::info_span!("request");
            continue_trace(&span, &headers);
            let context = span.context();
            assert_ne!(
                context.span().span_context().trace_id().to_string(),
                "4bf92f3577b34da6a3ce929d0e0e4736"
            );
        });
    }
}
