//! The tracer provider: OTLP over http/protobuf when an endpoint is configured, otherwise spans
//! that only carry ids (for propagation and logs) and go nowhere.

use std::time::Duration;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{SpanExporter, WithExportConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider};
use tracing::Subscriber;
use tracing_opentelemetry::OpenTelemetryLayer;
use tracing_subscriber::registry::LookupSpan;

/// How long a shutdown waits for the last batch to reach the collector.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);

/// Where traces go and what they call the service.
#[derive(Debug, Clone, Default)]
pub struct TracingOptions {
    /// `telemetry.otlp_endpoint`: the collector's OTLP/HTTP base URL (as
    /// `OTEL_EXPORTER_OTLP_ENDPOINT`: `/v1/traces` is appended). It wins over the environment;
    /// without it, `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` or `OTEL_EXPORTER_OTLP_ENDPOINT` turn
    /// export on, and nothing else does.
    pub endpoint: Option<String>,
    /// `service.name`, unless `OTEL_SERVICE_NAME` or `OTEL_RESOURCE_ATTRIBUTES` names one.
    pub service_name: String,
}

/// The OTLP exporter could not be built (a malformed endpoint, most often).
#[derive(Debug, thiserror::Error)]
#[error("cannot export traces: {0}")]
pub struct ExportError(String);

/// The process's tracer provider. Keep it until the end, then [`Tracing::shutdown`] it so that
/// the spans still buffered are exported.
#[derive(Debug)]
pub struct Tracing {
    provider: SdkTracerProvider,
    endpoint: Option<String>,
}

impl Tracing {
    pub fn start(options: &TracingOptions) -> Result<Self, ExportError> {
        let mut builder = SdkTracerProvider::builder().with_resource(resource(options));
        let endpoint = export_endpoint(options);
        if let Some(endpoint) = &endpoint {
            let exporter = SpanExporter::builder().with_http();
            let exporter = match endpoint {
                Endpoint::Configured(url) => exporter.with_endpoint(url.clone()),
                Endpoint::FromEnvironment => exporter,
            };
            let exporter = exporter.build().map_err(|e| ExportError(e.to_string()))?;
            // The batch processor exports from a thread of its own (hence the blocking client),
            // every OTEL_BSP_SCHEDULE_DELAY (default 5 s).
            builder = builder.with_batch_exporter(exporter);
        }
        Ok(Self {
            provider: builder.build(),
            endpoint: endpoint.map(|e| e.describe()),
        })
    }

    /// Where spans are exported, for the start-up log; `None` when they are not.
    pub fn endpoint(&self) -> Option<&str> {
        self.endpoint.as_deref()
    }

    /// The `tracing` layer that makes OpenTelemetry spans of `tracing` spans.
    pub fn layer<S>(&self) -> OpenTelemetryLayer<S, SdkTracer>
    where
        S: Subscriber + for<'span> LookupSpan<'span>,
    {
        tracing_opentelemetry::layer()
            .with_tracer(self.provider.tracer("filegate"))
            // Busy/idle time attributes on every span cost a clock read per poll; the span's
            // own duration is what an operator reads.
            .with_tracked_inactivity(false)
    }

    /// Exports what is still buffered and stops the exporter (on SIGTERM and at every other
    /// end of the process). Errors are the collector's problem, not the process's: reported.
    pub fn shutdown(self) {
        let result = self.provider.shutdown_with_timeout(SHUTDOWN_TIMEOUT);
        if let (Err(e), Some(_)) = (result, &self.endpoint) {
            eprintln!("filegate: the last traces may not have been exported: {e}");
        }
    }
}

enum Endpoint {
    Configured(String),
    FromEnvironment,
}

impl Endpoint {
    fn describe(&self) -> String {
        match self {
            Self::Configured(url) => url.clone(),
            Self::FromEnvironment => env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
                .or_else(|| env("OTEL_EXPORTER_OTLP_ENDPOINT"))
                .unwrap_or_default(),
        }
    }
}

/// `OTEL_SDK_DISABLED=true`: no OpenTelemetry at all, not even span ids (the standard switch;
/// it also takes the small cost of the spans off every request).
pub fn sdk_disabled() -> bool {
    env("OTEL_SDK_DISABLED").is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

fn export_endpoint(options: &TracingOptions) -> Option<Endpoint> {
    if let Some(base) = options.endpoint.as_deref().filter(|e| !e.trim().is_empty()) {
        return Some(Endpoint::Configured(format!(
            "{}/v1/traces",
            base.trim().trim_end_matches('/')
        )));
    }
    if sdk_disabled() {
        return None;
    }
    (env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT").is_some()
        || env("OTEL_EXPORTER_OTLP_ENDPOINT").is_some())
    .then_some(Endpoint::FromEnvironment)
}

/// The SDK's resource (which reads `OTEL_SERVICE_NAME` and `OTEL_RESOURCE_ATTRIBUTES`), named
/// after the process unless the environment named it.
fn resource(options: &TracingOptions) -> Resource {
    let named = env("OTEL_SERVICE_NAME").is_some()
        || env("OTEL_RESOURCE_ATTRIBUTES").is_some_and(|attrs| {
            attrs
                .split(',')
                .any(|kv| kv.trim().starts_with("service.name="))
        });
    let builder = Resource::builder();
    if named || options.service_name.is_empty() {
        builder.build()
    } else {
        builder
            .with_service_name(options.service_name.clone())
            .build()
    }
}
