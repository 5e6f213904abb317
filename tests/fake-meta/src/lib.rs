//! A fake of the Meta Graph API calls filegate's media worker makes, served over real HTTP on
//! loopback, for tests. It speaks the Resumable Upload API (`/{app-id}/uploads`,
//! `/upload:...`), WhatsApp's `/{phone-number-id}/media` and `/messages`, and
//! `/{waba-id}/message_templates`, checks what Meta checks (token, parameters, types and size
//! caps, offsets, that media ids and header handles are ones it issued), answers errors in
//! Meta's JSON shape, and records every byte and payload it accepted so that a test can compare
//! them with what it sent. Faults (dropped connections mid-body, 429, 500, delays, stalls) are
//! injected per operation, through [`FakeMeta::inject`] or `POST /_fake/faults`; `GET
//! /_fake/state` gives the recordings to a test driving a fake in another process. It is built
//! on hyper itself, not poem, because a fault must be able to drop a connection without
//! answering. It prints nothing.

mod body;
mod control;
mod faults;
mod graph;
mod graph_error;
mod options;
mod rules;
mod state;
mod util;

use std::fmt;
use std::future::Future;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::{JoinHandle, JoinSet};

pub use faults::{Fault, FaultAction, FaultTarget, Operation};
pub use options::{DEFAULT_ACCESS_TOKEN, DEFAULT_API_VERSION, FakeMetaOptions};
pub use state::{
    CreatedTemplate, FakeState, MediaRecord, MediaSummary, SentMessage, UploadSession,
    UploadSummary,
};

use state::{Shared, session_key};

/// The answer a handler gives up on: hyper closes the connection without a response.
#[derive(Debug)]
pub(crate) struct Hangup;

impl fmt::Display for Hangup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("connection closed without an answer")
    }
}

impl std::error::Error for Hangup {}

/// A running fake. Dropping it stops the server and closes its connections.
pub struct FakeMeta {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl fmt::Debug for FakeMeta {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FakeMeta")
            .field("addr", &self.addr)
            .field("api_version", &self.shared.options.api_version)
            .finish_non_exhaustive()
    }
}

impl FakeMeta {
    /// Starts a fake on `127.0.0.1` and a free port.
    pub async fn start(options: FakeMetaOptions) -> io::Result<Self> {
        Self::start_at(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)), options).await
    }

    /// Starts a fake on the given address.
    pub async fn start_at(addr: SocketAddr, options: FakeMetaOptions) -> io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared::new(options));
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(accept_loop(listener, shared.clone(), async {
            let _ = stopped.await;
        }));
        Ok(Self {
            addr,
            shared,
            stop: Some(stop),
            task,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:{port}`: what a client takes as Graph's base URL.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn options(&self) -> &FakeMetaOptions {
        &self.shared.options
    }

    pub fn access_token(&self) -> &str {
        &self.shared.options.access_token
    }

    /// Queues a fault for the next matching request(s).
    pub fn inject(&self, fault: Fault) {
        self.shared.faults().push(fault);
    }

    /// The faults not used up yet.
    pub fn pending_faults(&self) -> Vec<Fault> {
        self.shared.faults().pending()
    }

    pub fn clear_faults(&self) {
        self.shared.faults().clear();
    }

    /// Forgets every recording and fault.
    pub fn reset(&self) {
        self.shared.reset();
    }

    /// The bytes a resumable upload session received so far, by its id (with or without
    /// `?sig=`).
    pub fn uploaded_bytes(&self, session: &str) -> Option<Vec<u8>> {
        self.upload(session).map(|s| s.bytes)
    }

    /// A resumable upload session, by its id (with or without `?sig=`).
    pub fn upload(&self, session: &str) -> Option<UploadSession> {
        let rec = self.shared.recorded();
        rec.session(session_key(session)).map(|s| s.session.clone())
    }

    /// Every resumable upload session, in the order they were opened.
    pub fn uploads(&self) -> Vec<UploadSession> {
        let rec = self.shared.recorded();
        rec.uploads.iter().map(|s| s.session.clone()).collect()
    }

    /// A file uploaded to `/media`, by the media id the fake answered.
    pub fn media(&self, media_id: &str) -> Option<MediaRecord> {
        self.shared.recorded().media(media_id).cloned()
    }

    /// How many files `/media` accepted.
    pub fn media_count(&self) -> usize {
        self.shared.recorded().media.len()
    }

    /// Every accepted message, in order.
    pub fn messages(&self) -> Vec<SentMessage> {
        self.shared.recorded().messages.clone()
    }

    /// Every created template, in order.
    pub fn templates(&self) -> Vec<CreatedTemplate> {
        self.shared.recorded().templates.clone()
    }

    /// Requests received for an operation, failed and faulted ones included.
    pub fn requests_count(&self, op: Operation) -> u64 {
        self.shared
            .recorded()
            .requests
            .get(&op)
            .copied()
            .unwrap_or(0)
    }

    /// Everything recorded, as `GET /_fake/state` answers it.
    pub fn state(&self) -> FakeState {
        self.shared.state()
    }

    /// Stops accepting, closes every connection and waits for the server task.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = (&mut self.task).await;
    }
}

impl Drop for FakeMeta {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Runs a fake on `addr` until `shutdown` completes. Use [`serve`] to learn a port-0 address
/// before serving, as the `filegate-fake-meta` binary does.
pub async fn run(
    addr: SocketAddr,
    options: FakeMetaOptions,
    shutdown: impl Future<Output = ()> + Send,
) -> io::Result<()> {
    let listener = TcpListener::bind(addr).await?;
    serve(listener, options, shutdown).await
}

/// Runs a fake on a bound listener until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    options: FakeMetaOptions,
    shutdown: impl Future<Output = ()> + Send,
) -> io::Result<()> {
    accept_loop(listener, Arc::new(Shared::new(options)), shutdown).await;
    Ok(())
}

async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    shutdown: impl Future<Output = ()> + Send,
) {
    // Dropping the set at the end aborts the connections still open.
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else {
                    // Out of file descriptors and the like: wait a little, then go on.
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                    continue;
                };
                let shared = shared.clone();
                connections.spawn(async move {
                    let service = service_fn(move |req| graph::handle(shared.clone(), req));
                    // An error here is a connection that broke or that a fault dropped.
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}
