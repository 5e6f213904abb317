//! Logging and tracing through `tracing`: text for people, JSON (with trace and span ids) for
//! pipelines, and OpenTelemetry spans exported when a collector is configured. `RUST_LOG` wins
//! over the configured level so that an operator can turn on debug output without editing
//! files. The level filters log lines only: spans go to OpenTelemetry at `info` whatever the
//! log level, so that quieter logs never cost the traces.

use filegate_adapter_otel::{JsonWithTrace, Tracing, TracingOptions};
use tracing::Dispatch;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::config::{LogFormat, LogSettings, TelemetrySettings};

/// Sets up logs and traces for the process; keep the answer until the end and shut it down
/// then, so that buffered spans are exported. `None` when the tracer could not be set up (the
/// reason is printed, and logs still work).
pub fn init(log: &LogSettings, telemetry: &TelemetrySettings, service: &str) -> Option<Tracing> {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&log.level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let options = TracingOptions {
        endpoint: telemetry.otlp_endpoint.clone(),
        service_name: service.to_owned(),
    };
    let tracing = match filegate_adapter_otel::sdk_disabled() {
        true => None,
        false => match Tracing::start(&options) {
            Ok(t) => Some(t),
            Err(e) => {
                eprintln!("filegate: {e}; traces are off");
                None
            }
        },
    };
    let otel = tracing
        .as_ref()
        .map(|t| t.layer().with_filter(LevelFilter::INFO));
    let registry = tracing_subscriber::registry().with(otel);
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let dispatch = match log.format {
        LogFormat::Text => Dispatch::new(registry.with(fmt.with_filter(filter))),
        LogFormat::Json => {
            let format = JsonWithTrace::new(tracing_subscriber::fmt::format().json());
            let attachment = format.attachment();
            let dispatch =
                Dispatch::new(registry.with(fmt.json().event_format(format).with_filter(filter)));
            attachment.attach(&dispatch);
            dispatch
        }
    };
    if let Err(e) = dispatch.try_init() {
        eprintln!("filegate: logging was already set up: {e}");
    }
    if let Some(endpoint) = tracing.as_ref().and_then(Tracing::endpoint) {
        tracing::info!(endpoint, "exporting traces over OTLP/HTTP");
    }
    tracing
}
