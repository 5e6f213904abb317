//! Wiring: builds the adapters that the configuration names, hands them to the use cases, and
//! runs the HTTP server with a graceful shutdown. Adapters are picked at run time but the use
//! cases stay generic: each combination of metadata store and blob store is its own
//! monomorphized application, reached through one `match` per port.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use poem::Server;
use poem::listener::{Acceptor, Listener, TcpListener};
use secrecy::ExposeSecret;
use uuid::Uuid;

use filegate_adapter_azure_blob::AzureBlobStore;
use filegate_adapter_http::{
    BoundedAcceptor, ConnectionBounds, CorsPolicy, DrainLimits, FilesService, HostPolicy,
    HttpOptions, MetricsPage,
};
use filegate_adapter_local_fs::LocalFsStore;
use filegate_adapter_meta::MetaHttpClient;
use filegate_adapter_metrics::PrometheusMetrics;
use filegate_adapter_postgres::{PgKeyChanges, PgStore};
use filegate_adapter_rabbitmq::{RabbitPublisher, run_worker};
use filegate_adapter_sqlite::SqliteStore;
use filegate_application::check::CheckReport;
use filegate_application::checksums::fill_checksums;
use filegate_application::events::{OutboxRelay, purge_old_events};
use filegate_application::housekeeping::sweep_leftovers;
use filegate_application::media::{MeteredMeta, SendMedia};
use filegate_application::media_ports::TaskHandler;
use filegate_application::ports::{BlobStore, ByteBudget, MetadataStore, Metrics, NoMetrics};
use filegate_application::system::{RandomIds, SystemClock};
use filegate_application::uploads::Uploads;
use filegate_application::{ApiKeys, CreatedKey, Filegate, KeyCache, follow_key_changes};
use filegate_domain::{ApiKeyId, FirmId, UserId};
use futures::StreamExt;

use crate::config::{BlobKind, DatabaseKind, Settings};
use crate::metrics_page::{ServePage, WorkerPage, spawn_metrics_listener};

/// The metadata store the configuration names.
enum AnyStore {
    Postgres(PgStore),
    Sqlite(SqliteStore),
}

/// Runs `$body` with `$store` bound to the concrete metadata store.
macro_rules! with_store {
    ($any:expr, |$store:ident| $body:expr) => {
        match $any {
            AnyStore::Postgres($store) => $body,
            AnyStore::Sqlite($store) => $body,
        }
    };
}

async fn metadata_store(settings: &Settings) -> anyhow::Result<AnyStore> {
    let url = settings.database.url.expose_secret();
    let max = settings.database.max_connections;
    let kind = settings.database.kind().map_err(anyhow::Error::msg)?;
    let store = match kind {
        DatabaseKind::Postgres => AnyStore::Postgres(
            PgStore::connect(url, max)
                .await
                .context("cannot connect to Postgres (database.url)")?,
        ),
        DatabaseKind::Sqlite => AnyStore::Sqlite(
            SqliteStore::connect(url, max)
                .await
                .context("cannot open the SQLite database (database.url)")?,
        ),
    };
    if settings.database.migrate_on_start {
        migrate_store(&store).await?;
    }
    Ok(store)
}

async fn migrate_store(store: &AnyStore) -> anyhow::Result<()> {
    with_store!(store, |s| s.migrate().await.context("migration failed"))
}

pub async fn migrate(settings: &Settings) -> anyhow::Result<()> {
    let store = metadata_store(settings).await?;
    migrate_store(&store).await?;
    tracing::info!("migrations applied");
    Ok(())
}

fn keys<M: MetadataStore>(store: M) -> ApiKeys<M, SystemClock, RandomIds> {
    ApiKeys::new(store, SystemClock, RandomIds)
}

pub async fn create_key(settings: &Settings, firm: Uuid, user: Uuid) -> anyhow::Result<CreatedKey> {
    let (firm, user) = (FirmId::from_uuid(firm), UserId::from_uuid(user));
    let store = metadata_store(settings).await?;
    Ok(with_store!(store, |s| keys(s).create(firm, user).await)?)
}

pub async fn revoke_key(settings: &Settings, key_id: Uuid) -> anyhow::Result<()> {
    let store = metadata_store(settings).await?;
    Ok(with_store!(store, |s| keys(s)
        .revoke(ApiKeyId::from_uuid(key_id))
        .await)?)
}

fn http_options(
    settings: &Settings,
    metrics: Arc<dyn Metrics>,
    metrics_page: Option<Arc<dyn MetricsPage>>,
    budget: ByteBudget,
) -> HttpOptions {
    HttpOptions {
        max_chunk_bytes: settings.http.max_chunk_bytes,
        budget,
        public_url: settings.http.public_url.clone(),
        body_idle_timeout: Some(idle_timeout(settings)),
        hosts: host_policy(settings),
        rate: settings.rate.limit(),
        drain: DrainLimits {
            max_bytes: settings.http.drain_max_bytes,
            timeout: Duration::from_secs(settings.http.drain_timeout_secs),
        },
        metrics,
        metrics_page,
        cors: CorsPolicy {
            allowed_origins: settings.http.cors_allowed_origins.clone(),
        },
    }
}

/// Which request headers may name the service in the URLs it builds: only on a blob store
/// without URLs of its own, only listed hosts (and the listen address), forwarded headers only
/// from listed proxies.
fn host_policy(settings: &Settings) -> HostPolicy {
    let mut allowed_hosts = settings.http.allowed_hosts.clone();
    let ip = settings.http.addr.ip();
    if !ip.is_unspecified() {
        allowed_hosts.push(match ip {
            std::net::IpAddr::V4(v4) => v4.to_string(),
            std::net::IpAddr::V6(v6) => format!("[{v6}]"),
        });
    }
    HostPolicy {
        public_url: settings.http.public_url.clone(),
        allowed_hosts,
        trusted_proxies: settings.http.trusted_proxies.clone(),
        urls_from_requests: settings.blob.kind == BlobKind::Local,
    }
}

fn idle_timeout(settings: &Settings) -> Duration {
    Duration::from_secs(settings.http.idle_timeout_secs.max(1))
}

/// Concurrent requests on one h2c connection. Each may buffer a whole chunk, so one connection
/// must not be able to open hundreds (hyper's default when poem passes no limit is none at
/// all); 32 is well above the uploader's parallelism and what browsers use per origin.
const HTTP2_MAX_CONCURRENT_STREAMS: u32 = 32;

/// File descriptors kept for everything but client connections: the listener, the database
/// pool (counted apart), blob-store and broker connections, log output, the runtime.
const RESERVED_FDS: u64 = 128;

/// The connections that fit the process's file-descriptor limit. The soft limit is raised
/// toward the hard one first, since distributions start processes at 1024, below the default
/// `max_connections`; only when the hard limit is too low are connections fewer than asked.
fn connection_budget(settings: &Settings) -> usize {
    let wanted = settings.http.max_connections.max(1);
    let reserved = RESERVED_FDS + u64::from(settings.database.max_connections);
    let needed = wanted as u64 + reserved;
    match rlimit::increase_nofile_limit(needed) {
        Ok(limit) => {
            let budget = fit_connections(wanted, reserved, limit);
            if budget < wanted {
                tracing::warn!(
                    http.max_connections = wanted,
                    allowed = budget,
                    fd_limit = limit,
                    "the file-descriptor limit cannot be raised enough; serving fewer connections"
                );
            } else {
                tracing::debug!(fd_limit = limit, "file-descriptor limit");
            }
            budget
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot read or raise the file-descriptor limit; keeping http.max_connections");
            wanted
        }
    }
}

/// The connections that `limit` descriptors allow after `reserved`, at most `wanted`, at least
/// one.
fn fit_connections(wanted: usize, reserved: u64, limit: u64) -> usize {
    let room = usize::try_from(limit.saturating_sub(reserved)).unwrap_or(usize::MAX);
    wanted.min(room).max(1)
}

pub fn openapi(settings: &Settings) -> String {
    let options = http_options(
        settings,
        Arc::new(NoMetrics),
        None,
        ByteBudget::new(settings.http.max_inflight_bytes),
    );
    filegate_adapter_http::spec_json(&options)
}

pub async fn serve(settings: Settings) -> anyhow::Result<()> {
    // object_store and sqlx both use rustls with aws-lc-rs; installing it explicitly keeps
    // rustls from guessing should another provider ever be compiled in.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let store = metadata_store(&settings).await?;
    let keys = key_cache(&store, &settings);
    let cache = keys.as_ref().map(|(cache, _)| cache.clone());
    let served = with_store!(store, |s| serve_with_store(s, cache, settings).await);
    if let Some((_, follower)) = keys {
        follower.abort();
    }
    served
}

/// Verified API keys kept in memory, where the store tells of every key change (Postgres:
/// `LISTEN`), with the task that follows those changes; none on SQLite, or when
/// `database.key_cache_secs` is 0.
fn key_cache(
    store: &AnyStore,
    settings: &Settings,
) -> Option<(KeyCache, tokio::task::JoinHandle<()>)> {
    let ttl = Duration::from_secs(settings.database.key_cache_secs);
    match store {
        AnyStore::Postgres(pg) if !ttl.is_zero() => {
            let cache = KeyCache::new(ttl);
            let follower = tokio::spawn(follow_key_changes(cache.clone(), PgKeyChanges::new(pg)));
            Some((cache, follower))
        }
        AnyStore::Postgres(_) | AnyStore::Sqlite(_) => None,
    }
}

/// Runs `$body` with `$blobs` bound to the blob store the configuration names.
macro_rules! with_blobs {
    ($settings:expr, |$blobs:ident| $body:expr) => {
        match $settings.blob.kind {
            BlobKind::Azure => {
                let $blobs = AzureBlobStore::new(&$settings.blob.azure)
                    .context("invalid Azure blob settings (blob.azure)")?;
                $body
            }
            BlobKind::Local => {
                let $blobs = LocalFsStore::new(&$settings.blob.local)
                    .context("cannot use the local blob folder (blob.local)")?;
                $body
            }
        }
    };
}

/// `filegate check`: the metadata store held against the blob store (see
/// [`filegate_application::check`]).
pub async fn check(settings: &Settings, repair: bool) -> anyhow::Result<CheckReport> {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let store = metadata_store(settings).await?;
    with_store!(store, |s| check_with_store(s, settings, repair).await)
}

async fn check_with_store<M: MetadataStore>(
    store: M,
    settings: &Settings,
    repair: bool,
) -> anyhow::Result<CheckReport> {
    with_blobs!(settings, |blobs| Ok(filegate_application::check::check(
        &store,
        &blobs,
        repair,
        chrono::Utc::now()
    )
    .await
    .context("the check could not finish")?))
}

async fn serve_with_store<M: MetadataStore>(
    store: M,
    keys: Option<KeyCache>,
    settings: Settings,
) -> anyhow::Result<()> {
    with_blobs!(settings, |blobs| serve_app(store, blobs, keys, settings)
        .await)
}

/// At start and then every `uploads.sweep_interval_secs`: expires the open uploads that no
/// chunk reached for their mode's time (and discards their blocks), removes leftovers (staging
/// no open upload uses, temporary files of cut-off writes), and purges the outbox's events
/// older than `events.retain_secs`. Each round logs what it did; a failed step is retried at
/// the next round.
fn spawn_housekeeping<M: MetadataStore, B: BlobStore>(
    uploads: Uploads<M, B, SystemClock, RandomIds>,
    store: M,
    blobs: B,
    settings: &Settings,
) {
    let every = Duration::from_secs(settings.uploads.sweep_interval_secs.get());
    let retain = Duration::from_secs(settings.events.retain_secs.get());
    let events_enabled = settings.events.enabled;
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            match uploads.sweep_expired().await {
                Ok(0) => {}
                Ok(expired) => tracing::info!(expired, "expired idle uploads"),
                Err(e) => tracing::warn!(error = %e, "could not sweep expired uploads"),
            }
            fill_checksums_logged(&store, &blobs).await;
            match sweep_leftovers(&store, &blobs).await {
                Ok(removed) if removed.is_empty() => {}
                Ok(removed) => tracing::info!(
                    staging = removed.staging,
                    temporaries = removed.temporaries,
                    "removed leftovers"
                ),
                Err(e) => tracing::warn!(error = %e, "could not sweep leftovers"),
            }
            let now = chrono::Utc::now();
            match purge_old_events(&store, now, retain, events_enabled).await {
                Ok(0) => {}
                Ok(purged) => tracing::info!(purged, "purged old outbox events"),
                Err(e) => tracing::warn!(error = %e, "could not purge old outbox events"),
            }
        }
    });
}

/// How many files one pass of the checksum filler hashes: the newest first, so a file just
/// committed is never behind a backlog (the files of an upgraded store are filled a batch per
/// sweeper round, not all at start, which would hold up the round's other work for hours).
const CHECKSUM_BATCH: u32 = 100;

/// Hashes one batch of the complete files whose checksum is not known yet; logs what it did.
async fn fill_checksums_logged<M: MetadataStore, B: BlobStore>(store: &M, blobs: &B) {
    match fill_checksums(store, blobs, CHECKSUM_BATCH).await {
        Ok(done) if done.filled == 0 && done.failed == 0 => {}
        Ok(done) => tracing::info!(
            filled = done.filled,
            failed = done.failed,
            "filled in file checksums"
        ),
        Err(e) => tracing::warn!(error = %e, "could not fill in file checksums"),
    }
}

/// Hashes the files committed without a checksum (their blocks did not arrive in order) as
/// soon as the use case says there is one: a wake-up, not a list, since the store knows which.
fn spawn_checksum_filler<M: MetadataStore, B: BlobStore>(
    store: M,
    blobs: B,
) -> futures::channel::mpsc::Sender<()> {
    let (wakeups, mut woken) = futures::channel::mpsc::channel(1);
    tokio::spawn(async move {
        while woken.next().await.is_some() {
            fill_checksums_logged(&store, &blobs).await;
        }
    });
    wakeups
}

async fn serve_app<M: MetadataStore, B: BlobStore>(
    store: M,
    blobs: B,
    keys: Option<KeyCache>,
    settings: Settings,
) -> anyhow::Result<()> {
    let wakeups = spawn_checksum_filler(store.clone(), blobs.clone());
    let metrics = Arc::new(PrometheusMetrics::new());
    let mut app = Filegate::new(store.clone(), blobs.clone(), SystemClock, RandomIds);
    if let Some(cache) = keys {
        app = app.with_key_cache(cache);
    }
    let app = app
        .with_metrics(metrics.port())
        .with_checksum_wakeups(wakeups)
        .with_caps(settings.limits.caps())
        .with_expiry(settings.uploads.expiry())
        .with_open_upload_limit(settings.limits.open_uploads());
    spawn_housekeeping(app.uploads.clone(), app.store().clone(), blobs, &settings);
    if settings.database.create_first_key {
        create_first_key(&app.keys).await?;
    }
    let readiness = app.readiness().await;
    if !readiness.is_ready() {
        tracing::warn!(
            ?readiness,
            "starting, but a backend is not ready; /health/ready will say so"
        );
    }
    let relay = match settings.events.enabled {
        true => Some(spawn_outbox_relay(app.store().clone(), &settings)?),
        false => None,
    };
    let service: Arc<dyn FilesService> = Arc::new(app);

    let bounds = ConnectionBounds {
        max_connections: connection_budget(&settings),
        header_timeout: Duration::from_secs(settings.http.header_timeout_secs.max(1)),
    };
    let acceptor = TcpListener::bind(settings.http.addr)
        .into_acceptor()
        .await
        .with_context(|| format!("cannot listen on {}", settings.http.addr))?;
    let acceptor = BoundedAcceptor::new(acceptor, bounds);
    let budget = ByteBudget::new(settings.http.max_inflight_bytes);
    let page: Arc<dyn MetricsPage> = Arc::new(ServePage::new(
        metrics.clone(),
        store,
        budget.clone(),
        acceptor.open_connections(),
    ));
    // On a listener of its own when one is configured, else on the API port.
    let page_on_api = match settings.telemetry.metrics_addr {
        Some(addr) => {
            spawn_metrics_listener(addr, page).await?;
            None
        }
        None => Some(page),
    };
    let options = http_options(&settings, metrics.port(), page_on_api, budget);
    let endpoint = filegate_adapter_http::app(service, options);
    let local = acceptor
        .local_addr()
        .into_iter()
        .find_map(|a| a.as_socket_addr().copied())
        .context("the listener has no socket address")?;
    tracing::info!(addr = %local, "listening");
    println!("filegate listening on http://{local}");

    let grace = Duration::from_secs(settings.http.shutdown_grace_secs);
    Server::new_with_acceptor(acceptor)
        .idle_timeout(idle_timeout(&settings))
        .http2_max_concurrent_streams(HTTP2_MAX_CONCURRENT_STREAMS)
        .run_with_graceful_shutdown(endpoint, shutdown_signal(), Some(grace))
        .await
        .context("the HTTP server failed")?;
    if let Some(relay) = relay {
        relay.abort();
    }
    tracing::info!("stopped");
    Ok(())
}

/// Publishes the outbox in the background: as fast as events come while there are any, every
/// `poll_interval_ms` when there are none, and with a growing pause while the broker is away.
fn spawn_outbox_relay<M: MetadataStore>(
    store: M,
    settings: &Settings,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let bus = RabbitPublisher::new(settings.rabbitmq.clone())
        .context("invalid RabbitMQ settings (rabbitmq)")?;
    let relay = OutboxRelay::new(store, bus);
    let batch = settings.events.batch.max(1);
    let idle = Duration::from_millis(settings.events.poll_interval_ms.max(10));
    Ok(tokio::spawn(async move {
        let mut pause = idle;
        loop {
            match relay.publish_pending(batch).await {
                Ok(n) if n == batch as usize => continue,
                Ok(n) => {
                    if n > 0 {
                        tracing::debug!(published = n, "outbox published");
                    }
                    pause = idle;
                }
                Err(e) => {
                    tracing::warn!(error = %e, retry_in_ms = pause.as_millis() as u64, "outbox not published; will retry");
                    pause = (pause * 2).min(Duration::from_secs(30));
                }
            }
            tokio::time::sleep(pause).await;
        }
    }))
}

pub async fn worker(settings: Settings) -> anyhow::Result<()> {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let store = metadata_store(&settings).await?;
    with_store!(store, |s| worker_with_store(s, settings).await)
}

async fn worker_with_store<M: MetadataStore>(store: M, settings: Settings) -> anyhow::Result<()> {
    with_blobs!(settings, |blobs| worker_app(store, blobs, settings).await)
}

async fn worker_app<M: MetadataStore, B: BlobStore>(
    store: M,
    blobs: B,
    settings: Settings,
) -> anyhow::Result<()> {
    let meta = MetaHttpClient::new(&settings.meta).context("invalid Meta settings (meta)")?;
    let lease = Duration::from_secs(settings.worker.lease_secs.max(1));
    let metrics = Arc::new(PrometheusMetrics::new());
    if let Some(addr) = settings.telemetry.metrics_addr {
        spawn_metrics_listener(addr, Arc::new(WorkerPage(metrics.clone()))).await?;
    }
    let meta = MeteredMeta::new(meta, metrics.port());
    let handler: Arc<dyn TaskHandler> = Arc::new(
        SendMedia::new(store, blobs, SystemClock, meta, lease).with_metrics(metrics.port()),
    );
    let topology = settings.rabbitmq.topology();
    tracing::info!(queue = %topology.queue, dead_queue = %topology.dead_queue, "worker starting");
    println!("filegate worker consuming {}", topology.queue);
    run_worker(settings.rabbitmq.clone(), handler, shutdown_signal())
        .await
        .context("the worker failed")?;
    tracing::info!("worker stopped");
    Ok(())
}

/// On a store without any key, creates one for a development firm and user and prints it
/// once, so that a newcomer's first request works.
async fn create_first_key<M: MetadataStore>(
    keys: &ApiKeys<M, SystemClock, RandomIds>,
) -> anyhow::Result<()> {
    if keys.any().await? {
        return Ok(());
    }
    let (firm, user) = (Uuid::new_v4(), Uuid::new_v4());
    let created = keys
        .create(FirmId::from_uuid(firm), UserId::from_uuid(user))
        .await?;
    println!("================================================================");
    println!(" No API key existed, so filegate created one for a dev firm.");
    println!(" It is shown this once; send it as the X-API-Key header.");
    println!("   firm:   {firm}");
    println!("   user:   {user}");
    println!("   key id: {}", created.id);
    println!("   key:    {}", created.secret);
    println!("================================================================");
    Ok(())
}

/// Resolves on Ctrl-C or SIGTERM, whichever comes first.
async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutting down: finishing in-flight requests");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_fit_the_descriptors_left_after_the_reserve() {
        assert_eq!(fit_connections(4096, 144, 1_048_576), 4096);
        assert_eq!(fit_connections(4096, 144, 1024), 880);
        assert_eq!(fit_connections(4096, 144, 100), 1, "never zero");
    }
}
