//! JSON log lines with the trace and span ids of the span they were logged in, so that a log
//! line leads to its trace (and the other way round).

use std::fmt;
use std::sync::{Arc, OnceLock};

use opentelemetry::trace::TraceContextExt;
use tracing::dispatcher::WeakDispatch;
use tracing::{Dispatch, Event, Subscriber};
use tracing_opentelemetry::get_otel_context;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// Wraps a JSON event format (tracing-subscriber's) and adds `"trace_id"` and `"span_id"` to
/// each line logged inside a traced span.
#[derive(Debug, Clone)]
pub struct JsonWithTrace<F> {
    inner: F,
    /// The subscriber this format is part of. While an event is being logged, tracing hides
    /// the current dispatcher from nested lookups (a scoped one, at least), so the format keeps
    /// its own (weak: the subscriber owns the format) to ask for a span's trace.
    dispatch: Arc<OnceLock<WeakDispatch>>,
}

impl<F> JsonWithTrace<F> {
    pub fn new(inner: F) -> Self {
        Self {
            inner,
            dispatch: Arc::default(),
        }
    }

    /// A handle to tell the format, once the subscriber exists, which one it is part of.
    pub fn attachment(&self) -> Attachment {
        Attachment(self.dispatch.clone())
    }
}

/// See [`JsonWithTrace::attachment`].
#[derive(Debug, Clone)]
pub struct Attachment(Arc<OnceLock<WeakDispatch>>);

impl Attachment {
    /// Names the subscriber (as a dispatch) that the format was built into.
    pub fn attach(&self, dispatch: &Dispatch) {
        let _ = self.0.set(dispatch.downgrade());
    }
}

impl<S, N, F> FormatEvent<S, N> for JsonWithTrace<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut line = String::new();
        self.inner
            .format_event(ctx, Writer::new(&mut line), event)?;
        let ids = ctx
            .event_scope()
            .and_then(|mut scope| scope.next().map(|span| span.id()))
            .and_then(
                |id| match self.dispatch.get().and_then(WeakDispatch::upgrade) {
                    Some(dispatch) => get_otel_context(&id, &dispatch),
                    None => tracing::dispatcher::get_default(|d| get_otel_context(&id, d)),
                },
            )
            .map(|cx| cx.span().span_context().clone())
            .filter(|sc| sc.is_valid());
        match (ids, line.strip_suffix("}\n")) {
            (Some(sc), Some(object)) => writeln!(
                writer,
                "{object},\"trace_id\":\"{}\",\"span_id\":\"{}\"}}",
                sc.trace_id(),
                sc.span_id()
            ),
            _ => writer.write_str(&line),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io;
    use std::sync::{Arc, Mutex};

    use tracing_subscriber::layer::SubscriberExt;

    use super::*;
    use crate::{Tracing, TracingOptions, continue_trace};

    #[derive(Clone, Default)]
    struct Lines(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Lines {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().expect("lines").extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn lines_in_a_traced_span_carry_its_ids_and_others_none() {
        let lines = Lines::default();
        let tracing = Tracing::start(&TracingOptions::default()).expect("no export starts");
        let writer = lines.clone();
        let format = JsonWithTrace::new(tracing_subscriber::fmt::format().json());
        let attachment = format.attachment();
        let fmt = tracing_subscriber::fmt::layer()
            .json()
            .event_format(format)
            .with_writer(move || writer.clone());
        let dispatch = Dispatch::new(
            tracing_subscriber::registry()
                .with(tracing.layer())
                .with(fmt),
        );
        attachment.attach(&dispatch);
        tracing::dispatcher::with_default(&dispatch, || {
            tracing::info!(outside = true, "no span");
            let span = tracing::info_span!("request");
            continue_trace(
                &span,
                Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
                None,
            );
            span.in_scope(|| tracing::info!(inside = true, "in a span"));
        });
        let text = String::from_utf8(lines.0.lock().expect("lines").clone()).expect("utf-8");
        let parsed: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).expect("each line is JSON"))
            .collect();
        assert_eq!(parsed.len(), 2, "{text}");
        assert!(parsed[0].get("trace_id").is_none(), "{text}");
        assert_eq!(parsed[1]["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
        let span_id = parsed[1]["span_id"].as_str().expect("span_id");
        assert_eq!(span_id.len(), 16);
        assert_ne!(
            span_id, "00f067aa0ba902b7",
            "the span's own id, not its parent's"
        );
        assert_eq!(
            parsed[1]["fields"]["inside"], true,
            "the inner format's fields stay"
        );
    }
}
