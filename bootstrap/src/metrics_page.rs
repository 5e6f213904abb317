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

/// `serve`'s page: events, plus open uploads and the outbox backlog from the store, request
/// bytes in memory and open connections.
pub struct ServePage<M> {
    pub metrics: Arc<PrometheusMetrics>,
    pub store: M,
    pub budget: ByteBudget,
    pub connections: OpenConnections,
}

impl<M: InventoryStore> MetricsPage for ServePage<M> {
    fn render(&self) -> BoxFuture<'_, String> {
        async move {
            let counts = tokio::time::timeout(COUNTS_TIMEOUT, self.store.counts()).await;
            let counts = match counts {
                Ok(Ok(counts)) => Some(counts),
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "metrics: the store's counts are unavailable");
                    None
                }
                Err(_) => {
                    tracing::warn!("metrics: the store's counts took too long");
                    None
                }
            };
            self.metrics.set_gauges(Gauges {
                open_uploads: counts.map(|c| c.open_uploads),
                outbox_backlog: counts.map(|c| c.outbox_backlog),
                inflight_bytes: Some(self.budget.held()),
                open_connections: Some(self.connections.get()),
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
