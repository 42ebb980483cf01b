//! Logging and tracing set-up, W3C trace-context propagation, and the one
//! sanctioned way to run blocking work.
//!
//! Logs go to stderr as text (default) or JSON lines. Spans are exported over
//! OTLP/gRPC only when the standard `OTEL_EXPORTER_OTLP_ENDPOINT` (or
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set; `OTEL_SERVICE_NAME`,
//! `OTEL_RESOURCE_ATTRIBUTES` and `OTEL_TRACES_SAMPLER` are honoured by the
//! SDK. Trace context travels as `traceparent`/`tracestate`: HTTP headers
//! into the API, AMQP headers (or the in-process queue's carrier) into the
//! conductor, so one operator request is one trace.
//!
//! Invariants: blocking work (diesel queries, IPMI) runs through
//! [`spawn_blocking`], which re-enters the caller's span so logs and traces
//! stay attached to the request that caused them; the exporter's own
//! transport crates (and lapin's connection loop) never produce spans.

use std::collections::HashMap;
use std::io::IsTerminal;

use opentelemetry::propagation::TextMapPropagator as _;
use opentelemetry::trace::{TraceContextExt as _, TracerProvider as _};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Readable text (colours on a terminal only).
    Text,
    /// One JSON object per line, with the current span's fields.
    Json,
}

/// Keeps the span exporter running; flushes and stops it when dropped.
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take() {
            let _ = provider.shutdown();
        }
    }
}

/// Installs the global subscriber: logs on stderr filtered by `RUST_LOG`
/// (default `default_filter`), plus OTLP span export when configured.
/// `service` names this process when `OTEL_SERVICE_NAME` is unset. Called
/// once, from `main`, inside the tokio runtime.
pub fn init(default_filter: &str, format: LogFormat, service: &str) -> Telemetry {
    let (provider, export_error) = match otlp_provider(service) {
        Ok(provider) => (provider, None),
        Err(e) => (None, Some(e)),
    };
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let logs = match format {
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            // Colours for a terminal only, never in a file or a pipe.
            .with_ansi(std::io::stderr().is_terminal())
            .boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .with_writer(std::io::stderr)
            .boxed(),
    };
    let spans = provider.as_ref().map(|p| otel_layer(p.tracer("ferric")));
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(logs)
        .with(spans)
        .try_init();
    if let Some(e) = export_error {
        tracing::warn!(error = %e, "OTLP span export is configured but could not start");
    }
    Telemetry { provider }
}

/// The layer that turns `tracing` spans into OpenTelemetry spans of
/// `tracer`, leaving out the crates that carry the export itself.
pub fn otel_layer<S>(tracer: opentelemetry_sdk::trace::Tracer) -> impl Layer<S>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_filter(tracing_subscriber::filter::filter_fn(|meta| {
            ![
                "lapin",
                "h2",
                "hyper",
                "tonic",
                "tower",
                "opentelemetry",
                "reqwest",
            ]
            .iter()
            .any(|noisy| meta.target().starts_with(noisy))
        }))
}

fn otlp_provider(service: &str) -> Result<Option<SdkTracerProvider>, String> {
    let configured = [
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    ]
    .iter()
    .any(|key| std::env::var_os(key).is_some_and(|v| !v.is_empty()));
    if !configured {
        return Ok(None);
    }
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .build()
        .map_err(|e| e.to_string())?;
    let mut resource = opentelemetry_sdk::Resource::builder();
    if std::env::var_os("OTEL_SERVICE_NAME").is_none() {
        resource = resource.with_service_name(service.to_owned());
    }
    Ok(Some(
        SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(resource.build())
            .build(),
    ))
}

/// The current span's trace context as `traceparent`/`tracestate` pairs
/// (empty when nothing is traced).
pub fn trace_context() -> HashMap<String, String> {
    let mut carrier = HashMap::new();
    let context = tracing::Span::current().context();
    if context.span().span_context().is_valid() {
        TraceContextPropagator::new().inject_context(&context, &mut carrier);
    }
    carrier
}

/// The current span's trace id, when it is traced.
pub fn current_trace_id() -> Option<String> {
    let context = tracing::Span::current().context();
    let span = context.span();
    let own = span.span_context();
    own.is_valid().then(|| own.trace_id().to_string())
}

/// Makes `span` a child of the remote span named by `traceparent` (and
/// `tracestate`), as `get` finds them, then records its trace id in the
/// span's `trace_id` field (declared `Empty` by the caller) so its log
/// lines carry it. Spans are only traced when an exporter is installed.
pub fn set_remote_parent(span: &tracing::Span, get: impl Fn(&str) -> Option<String>) {
    let mut carrier = HashMap::new();
    for key in ["traceparent", "tracestate"] {
        if let Some(value) = get(key) {
            carrier.insert(key.to_owned(), value);
        }
    }
    if !carrier.is_empty() {
        let parent = TraceContextPropagator::new().extract(&carrier);
        if parent.span().span_context().is_valid() {
            let _ = span.set_parent(parent);
        }
    }
    let context = span.context();
    let own = context.span().span_context().clone();
    if own.is_valid() {
        span.record("trace_id", own.trace_id().to_string());
    }
}

/// Runs `f` on tokio's blocking pool inside the current span.
pub fn spawn_blocking<F, R>(f: F) -> tokio::task::JoinHandle<R>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    let span = tracing::Span::current();
    #[expect(
        clippy::disallowed_methods,
        reason = "this is the wrapper that keeps the span"
    )]
    tokio::task::spawn_blocking(move || span.in_scope(f))
}
