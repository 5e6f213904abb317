//! The `/metrics` pages of `serve` and `worker`: the Prometheus registry of the process, with
//! the gauges read just before each render, and the listener of their own that
//! `telemetry.metrics_addr` asks for.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use futures::FutureExt;
use futures::future::BoxFuture;
use poem::Server;
use poem::listener::TcpListener;

use filegate_adapter_http::{MetricsPage, OpenConnections};
use filegate_adapter_metrics::{Gauges, PrometheusMetrics};
use filegate_application::ports::{ByteBudget, InventoryStore};

/// How long a render waits for the metadata store's counts before it shows the last ones.
const COUNTS_TIMEOUT: Duration = Duration::from_secs(2);
/// How long the store's counts are reused: `/metrics` may be public (on the API port), and a
/// flood of scrapes must not become a flood of queries.
const COUNTS_TTL: Duration = Duration::from_secs(5);

/// `serve`'s page: events, plus open uploads and the outbox backlog from the store, request
/// bytes in memory and open connections.
pub struct ServePage<M> {
    pub metrics: Arc<PrometheusMetrics>,
    pub store: M,
    pub budget: ByteBudget,
    pub connections: OpenConnections,
    /// The store's counts and when they were read; one query at a time.
    pub counted: tokio::sync::Mutex<Option<std::time::Instant>>,
}

impl<M: InventoryStore> ServePage<M> {
    pub fn new(
        metrics: Arc<PrometheusMetrics>,
        store: M,
        budget: ByteBudget,
        connections: OpenConnections,
    ) -> Self {
        Self {
            metrics,
            store,
            budget,
            connections,
            counted: tokio::sync::Mutex::new(None),
        }
    }

    /// Sets the store's gauges, unless they were set less than [`COUNTS_TTL`] ago.
    async fn refresh_counts(&self) {
        let mut counted = self.counted.lock().await;
        if counted.is_some_and(|at| at.elapsed() < COUNTS_TTL) {
            return;
        }
        match tokio::time::timeout(COUNTS_TIMEOUT, self.store.counts()).await {
            Ok(Ok(counts)) => {
                self.metrics.set_gauges(Gauges {
                    open_uploads: Some(counts.open_uploads),
                    outbox_backlog: Some(counts.outbox_backlog),
                    ..Gauges::default()
                });
                *counted = Some(std::time::Instant::now());
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "metrics: the store's counts are unavailable");
            }
            Err(_) => tracing::warn!("metrics: the store's counts took too long"),
        }
    }
}

impl<M: InventoryStore> MetricsPage for ServePage<M> {
    fn render(&self) -> BoxFuture<'_, String> {
        async move {
            self.refresh_counts().await;
            self.metrics.set_gauges(Gauges {
                inflight_bytes: Some(self.budget.held()),
                open_connections: Some(self.connections.get()),
                ..Gauges::default()
            });
            self.metrics.render()
        }
        .boxed()
    }

    fn content_type(&self) -> &'static str {
        PrometheusMetrics::CONTENT_TYPE
    }
}

/// The worker's page: its events only.
pub struct WorkerPage(pub Arc<PrometheusMetrics>);

impl MetricsPage for WorkerPage {
    fn render(&self) -> BoxFuture<'_, String> {
        futures::future::ready(self.0.render()).boxed()
    }

    fn content_type(&self) -> &'static str {
        PrometheusMetrics::CONTENT_TYPE
    }
}

/// Serves `GET /metrics` alone at `addr`, in the background, for as long as the process runs.
pub async fn spawn_metrics_listener(
    addr: SocketAddr,
    page: Arc<dyn MetricsPage>,
) -> anyhow::Result<()> {
    use poem::listener::{Acceptor, Listener};
    let acceptor = TcpListener::bind(addr)
        .into_acceptor()
        .await
        .with_context(|| format!("cannot listen for metrics on {addr}"))?;
    let local = acceptor
        .local_addr()
        .into_iter()
        .find_map(|a| a.as_socket_addr().copied())
        .context("the metrics listener has no socket address")?;
    println!("filegate metrics on http://{local}/metrics");
    tokio::spawn(async move {
        let app = filegate_adapter_http::metrics_app(page);
        if let Err(e) = Server::new_with_acceptor(acceptor).run(app).await {
            tracing::error!(error = %e, "the metrics listener failed");
        }
    });
    Ok(())
}
