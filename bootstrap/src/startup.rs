//! Wiring: builds the adapters named by the configuration, hands them to the use cases, and
//! runs the HTTP server with a graceful shutdown.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use poem::Server;
use poem::listener::{Acceptor, Listener, TcpListener};
use secrecy::ExposeSecret;
use uuid::Uuid;

use filegate_adapter_azure_blob::AzureBlobStore;
use filegate_adapter_http::{FilesService, HttpOptions};
use filegate_adapter_postgres::PgStore;
use filegate_application::system::{RandomIds, SystemClock};
use filegate_application::{CreatedKey, Filegate};
use filegate_domain::{ApiKeyId, FirmId, UserId};

use crate::config::{BlobKind, Settings};

type App = Filegate<PgStore, AzureBlobStore, SystemClock, RandomIds>;

async fn metadata_store(settings: &Settings) -> anyhow::Result<PgStore> {
    PgStore::connect(
        settings.database.url.expose_secret(),
        settings.database.max_connections,
    )
    .await
    .context("cannot connect to the metadata store (database.url)")
}

fn blob_store(settings: &Settings) -> anyhow::Result<AzureBlobStore> {
    match settings.blob.kind {
        BlobKind::Azure => AzureBlobStore::new(&settings.blob.azure)
            .context("invalid Azure blob settings (blob.azure)"),
    }
}

pub async fn migrate(settings: &Settings) -> anyhow::Result<()> {
    metadata_store(settings)
        .await?
        .migrate()
        .await
        .context("migration failed")?;
    tracing::info!("migrations applied");
    Ok(())
}

async fn app(settings: &Settings) -> anyhow::Result<App> {
    let store = metadata_store(settings).await?;
    if settings.database.migrate_on_start {
        store.migrate().await.context("migration failed")?;
    }
    Ok(Filegate::new(
        store,
        blob_store(settings)?,
        SystemClock,
        RandomIds,
    ))
}

fn http_options(settings: &Settings) -> HttpOptions {
    HttpOptions {
        max_chunk_bytes: settings.http.max_chunk_bytes,
        public_url: settings.http.public_url.clone(),
    }
}

pub fn openapi(settings: &Settings) -> String {
    filegate_adapter_http::spec_json(&http_options(settings))
}

pub async fn create_key(settings: &Settings, firm: Uuid, user: Uuid) -> anyhow::Result<CreatedKey> {
    let app = app(settings).await?;
    Ok(app
        .keys
        .create(FirmId::from_uuid(firm), UserId::from_uuid(user))
        .await?)
}

pub async fn revoke_key(settings: &Settings, key_id: Uuid) -> anyhow::Result<()> {
    let app = app(settings).await?;
    Ok(app.keys.revoke(ApiKeyId::from_uuid(key_id)).await?)
}

pub async fn serve(settings: Settings) -> anyhow::Result<()> {
    // object_store and sqlx both use rustls with aws-lc-rs; installing it explicitly keeps
    // rustls from guessing should another provider ever be compiled in.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let app = app(&settings).await?;
    let readiness = app.readiness().await;
    if !readiness.is_ready() {
        tracing::warn!(
            ?readiness,
            "starting, but a backend is not ready; /health/ready will say so"
        );
    }
    let service: Arc<dyn FilesService> = Arc::new(app);
    let endpoint = filegate_adapter_http::app(service, http_options(&settings));

    let acceptor = TcpListener::bind(settings.http.addr)
        .into_acceptor()
        .await
        .with_context(|| format!("cannot listen on {}", settings.http.addr))?;
    let local = acceptor
        .local_addr()
        .into_iter()
        .find_map(|a| a.as_socket_addr().copied())
        .context("the listener has no socket address")?;
    tracing::info!(addr = %local, "listening");
    println!("filegate listening on http://{local}");

    let grace = Duration::from_secs(settings.http.shutdown_grace_secs);
    Server::new_with_acceptor(acceptor)
        .run_with_graceful_shutdown(endpoint, shutdown_signal(), Some(grace))
        .await
        .context("the HTTP server failed")?;
    tracing::info!("stopped");
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
