//! Prometheus metrics: the application's [`Metrics`] port counted in a `prometheus-client`
//! registry, and rendered in the Prometheus text format for `GET /metrics`. The numbers that are
//! states rather than events (open uploads, the outbox backlog, request bytes in memory, open
//! connections) are gauges that whoever serves `/metrics` sets just before rendering. Labels are
//! modes, routes, statuses, outcomes, Meta calls and Meta's error codes only: never an id.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use filegate_application::ports::{Metrics, TaskCount};
use filegate_domain::Mode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ModeLabel {
    mode: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AnswerLabels {
    route: &'static str,
    status: u16,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabel {
    outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallLabel {
    call: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallErrorLabels {
    call: &'static str,
    code: i64,
}

/// The gauges set at scrape time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Gauges {
    pub open_uploads: Option<u64>,
    pub outbox_backlog: Option<u64>,
    pub inflight_bytes: Option<u64>,
    pub open_connections: Option<u64>,
}

/// One process's metrics (`serve` and `worker` each have their own).
#[derive(Debug)]
pub struct PrometheusMetrics {
    registry: Registry,
    uploads_opened: Family<ModeLabel, Counter>,
    uploads_completed: Family<ModeLabel, Counter>,
    uploads_expired: Family<ModeLabel, Counter>,
    bytes_received: Family<ModeLabel, Counter>,
    chunk_seconds: Histogram,
    answers: Family<AnswerLabels, Counter>,
    tasks: Family<OutcomeLabel, Counter>,
    meta_seconds: Family<CallLabel, Histogram>,
    meta_errors: Family<CallErrorLabels, Counter>,
    open_uploads: Gauge<u64, AtomicU64>,
    outbox_backlog: Gauge<u64, AtomicU64>,
    inflight_bytes: Gauge<u64, AtomicU64>,
    open_connections: Gauge<u64, AtomicU64>,
}

impl Default for PrometheusMetrics {
    fn default() -> Self {
        Self::new()
    }
}

/// Durations from 1 ms to about 65 s, doubling.
fn seconds_buckets() -> impl Iterator<Item = f64> {
    exponential_buckets(0.001, 2.0, 17)
}

impl PrometheusMetrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("filegate");
        let uploads_opened = Family::<ModeLabel, Counter>::default();
        registry.register(
            "uploads_opened",
            "Uploads started (a file's first chunk recorded), by mode",
            uploads_opened.clone(),
        );
        let uploads_completed = Family::<ModeLabel, Counter>::default();
        registry.register(
            "uploads_completed",
            "Files committed, by mode",
            uploads_completed.clone(),
        );
        let uploads_expired = Family::<ModeLabel, Counter>::default();
        registry.register(
            "uploads_expired",
            "Idle uploads expired by the sweeper, by mode",
            uploads_expired.clone(),
        );
        let bytes_received = Family::<ModeLabel, Counter>::default();
        registry.register(
            "received_bytes",
            "Bytes of chunks staged and recorded, by mode",
            bytes_received.clone(),
        );
        let chunk_seconds = Histogram::new(seconds_buckets());
        registry.register(
            "chunk_duration_seconds",
            "Time to take one chunk, from its parsed fields to its answer",
            chunk_seconds.clone(),
        );
        let answers = Family::<AnswerLabels, Counter>::default();
        registry.register(
            "http_answers",
            "HTTP answers, by route and status",
            answers.clone(),
        );
        let tasks = Family::<OutcomeLabel, Counter>::default();
        registry.register(
            "tasks",
            "Media task deliveries, by outcome (sent, retried, dead)",
            tasks.clone(),
        );
        let meta_seconds = Family::<CallLabel, Histogram>::new_with_constructor(|| {
            Histogram::new(seconds_buckets())
        });
        registry.register(
            "meta_call_duration_seconds",
            "Calls to Meta's Graph API, by call",
            meta_seconds.clone(),
        );
        let meta_errors = Family::<CallErrorLabels, Counter>::default();
        registry.register(
            "meta_errors",
            "Failed calls to Meta's Graph API, by call and Meta's error code (else the HTTP status, else 0)",
            meta_errors.clone(),
        );
        let open_uploads = Gauge::<u64, AtomicU64>::default();
        registry.register(
            "open_uploads",
            "Uploads open now (several chunks, not complete, not expired or deleted)",
            open_uploads.clone(),
        );
        let outbox_backlog = Gauge::<u64, AtomicU64>::default();
        registry.register(
            "outbox_backlog",
            "File events waiting in the outbox to be published",
            outbox_backlog.clone(),
        );
        let inflight_bytes = Gauge::<u64, AtomicU64>::default();
        registry.register(
            "inflight_bytes",
            "Request bytes held in memory now (against http.max_inflight_bytes)",
            inflight_bytes.clone(),
        );
        let open_connections = Gauge::<u64, AtomicU64>::default();
        registry.register(
            "open_connections",
            "Client connections open now (against http.max_connections)",
            open_connections.clone(),
        );
        Self {
            registry,
            uploads_opened,
            uploads_completed,
            uploads_expired,
            bytes_received,
            chunk_seconds,
            answers,
            tasks,
            meta_seconds,
            meta_errors,
            open_uploads,
            outbox_backlog,
            inflight_bytes,
            open_connections,
        }
    }

    /// Sets the gauges that are known (`None` leaves a gauge as it was).
    pub fn set_gauges(&self, gauges: Gauges) {
        let pairs = [
            (&self.open_uploads, gauges.open_uploads),
            (&self.outbox_backlog, gauges.outbox_backlog),
            (&self.inflight_bytes, gauges.inflight_bytes),
            (&self.open_connections, gauges.open_connections),
        ];
        for (gauge, value) in pairs {
            if let Some(value) = value {
                gauge.set(value);
            }
        }
    }

    /// The Prometheus text format (OpenMetrics), as `GET /metrics` answers it.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    /// The content type of [`PrometheusMetrics::render`]'s text.
    pub const CONTENT_TYPE: &'static str =
        "application/openmetrics-text; version=1.0.0; charset=utf-8";

    /// This, as the application's port.
    pub fn port(self: &Arc<Self>) -> Arc<dyn Metrics> {
        self.clone()
    }
}

fn mode(mode: Mode) -> ModeLabel {
    ModeLabel {
        mode: mode.as_str(),
    }
}

impl Metrics for PrometheusMetrics {
    fn upload_opened(&self, m: Mode) {
        self.uploads_opened.get_or_create(&mode(m)).inc();
    }

    fn upload_completed(&self, m: Mode) {
        self.uploads_completed.get_or_create(&mode(m)).inc();
    }

    fn upload_expired(&self, m: Mode) {
        self.uploads_expired.get_or_create(&mode(m)).inc();
    }

    fn chunk_received(&self, m: Mode, bytes: u64, seconds: f64) {
        self.bytes_received.get_or_create(&mode(m)).inc_by(bytes);
        self.chunk_seconds.observe(seconds);
    }

    fn http_answer(&self, route: &'static str, status: u16) {
        self.answers
            .get_or_create(&AnswerLabels { route, status })
            .inc();
    }

    fn task_finished(&self, outcome: TaskCount) {
        let outcome = match outcome {
            TaskCount::Sent => "sent",
            TaskCount::Retried => "retried",
            TaskCount::Dead => "dead",
        };
        self.tasks.get_or_create(&OutcomeLabel { outcome }).inc();
    }

    fn meta_call(&self, call: &'static str, seconds: f64, error_code: Option<i64>) {
        self.meta_seconds
            .get_or_create(&CallLabel { call })
            .observe(seconds);
        if let Some(code) = error_code {
            self.meta_errors
                .get_or_create(&CallErrorLabels { call, code })
                .inc();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_and_gauges_render_as_prometheus_text() {
        let metrics = PrometheusMetrics::new();
        metrics.upload_opened(Mode::Message);
        metrics.upload_completed(Mode::Message);
        metrics.chunk_received(Mode::Message, 1234, 0.02);
        metrics.http_answer("chunk", 200);
        metrics.task_finished(TaskCount::Dead);
        metrics.meta_call("send_message", 0.1, Some(131_056));
        metrics.set_gauges(Gauges {
            open_uploads: Some(3),
            ..Gauges::default()
        });
        let text = metrics.render();
        for line in [
            "filegate_uploads_opened_total{mode=\"Message\"} 1",
            "filegate_uploads_completed_total{mode=\"Message\"} 1",
            "filegate_received_bytes_total{mode=\"Message\"} 1234",
            "filegate_chunk_duration_seconds_count 1",
            "filegate_http_answers_total{route=\"chunk\",status=\"200\"} 1",
            "filegate_tasks_total{outcome=\"dead\"} 1",
            "filegate_meta_call_duration_seconds_count{call=\"send_message\"} 1",
            "filegate_meta_errors_total{call=\"send_message\",code=\"131056\"} 1",
            "filegate_open_uploads 3",
            "# EOF",
        ] {
            assert!(text.contains(line), "`{line}` missing from:\n{text}");
        }
    }
}
