//! W3C trace context (`traceparent`, `tracestate`) in and out of `tracing` spans.

use std::collections::HashMap;

use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::TraceContextExt;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The W3C header (and AMQP header) that carries a trace's id and its parent span.
pub const TRACEPARENT: &str = "traceparent";
/// The W3C header with vendor-specific trace state, passed along unchanged.
pub const TRACESTATE: &str = "tracestate";

/// Makes `span` a child of the remote span that `traceparent` names. A missing or malformed
/// header leaves the span where it was (a new trace of its own): a caller's bad header must
/// never fail its request. Call it before the span is first entered.
pub fn continue_trace(span: &Span, traceparent: Option<&str>, tracestate: Option<&str>) {
    let Some(traceparent) = traceparent else {
        return;
    };
    let mut carrier = HashMap::with_capacity(2);
    carrier.insert(TRACEPARENT.to_owned(), traceparent.to_owned());
    if let Some(state) = tracestate {
        carrier.insert(TRACESTATE.to_owned(), state.to_owned());
    }
    let cx = TraceContextPropagator::new().extract(&carrier);
    if cx.span().span_context().is_valid() {
        // Only fails when the span was already started or tracing is off: then there is
        // nothing to continue.
        let _ = span.set_parent(cx);
    }
}

/// The `traceparent` that names `span`, for the next hop; `None` when the span has no trace
/// (tracing off, or the span disabled by the log filter).
pub fn traceparent_of(span: &Span) -> Option<String> {
    let cx = span.context();
    if !cx.span().span_context().is_valid() {
        return None;
    }
    let mut carrier = HashMap::with_capacity(2);
    TraceContextPropagator::new().inject_context(&cx, &mut carrier);
    carrier.remove(TRACEPARENT)
}

/// [`traceparent_of`] the current span.
pub fn current_traceparent() -> Option<String> {
    traceparent_of(&Span::current())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Tracing, TracingOptions};
    use tracing_subscriber::layer::SubscriberExt;

    const PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    fn with_tracing(body: impl FnOnce()) {
        let tracing = Tracing::start(&TracingOptions::default()).expect("no export starts");
        let subscriber = tracing_subscriber::registry().with(tracing.layer());
        tracing::subscriber::with_default(subscriber, body);
    }

    #[test]
    fn a_span_continues_the_callers_trace_and_names_itself_as_the_next_parent() {
        with_tracing(|| {
            let span = tracing::info_span!("request");
            continue_trace(&span, Some(PARENT), None);
            let next = traceparent_of(&span).expect("a traceparent");
            assert!(
                next.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"),
                "{next}"
            );
            assert!(
                !next.contains("00f067aa0ba902b7"),
                "the span is a new one: {next}"
            );
            let child = span.in_scope(|| {
                let child = tracing::info_span!("use case");
                child.in_scope(current_traceparent)
            });
            let child = child.expect("the child's traceparent");
            assert_eq!(child[..36], next[..36], "one trace");
            assert_ne!(child, next, "another span");
        });
    }

    #[test]
    fn a_malformed_traceparent_starts_a_trace_of_its_own() {
        with_tracing(|| {
            for bad in [
                "",
                "garbage",
                "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            ] {
                let span = tracing::info_span!("request");
                continue_trace(&span, Some(bad), None);
                let own = traceparent_of(&span).expect("a trace of its own");
                assert!(!own.contains("4bf92f35"), "{own}");
                assert_ne!(&own[3..35], "00000000000000000000000000000000");
            }
        });
    }

    #[test]
    fn without_the_layer_there_is_no_trace_to_pass_on() {
        let span = tracing::info_span!("request");
        continue_trace(&span, Some(PARENT), None);
        assert_eq!(traceparent_of(&span), None);
    }
}
