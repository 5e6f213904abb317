//! OpenTelemetry for filegate, kept at the edge: the core only makes `tracing` spans, and this
//! crate turns them into OpenTelemetry spans (exported over OTLP/HTTP when configured), carries
//! W3C trace context across process boundaries (HTTP requests in, AMQP messages in and out, the
//! outbox in between), and puts trace and span ids into JSON logs. Spans get trace ids even when
//! nothing is exported, so that logs, events and tasks can still be correlated with the traces
//! of the CRM that called us.

mod export;
mod logs;
mod propagation;

pub use export::{ExportError, Tracing, TracingOptions, sdk_disabled};
pub use logs::{Attachment, JsonWithTrace};
pub use propagation::{
    TRACEPARENT, TRACESTATE, continue_trace, current_traceparent, traceparent_of,
};
