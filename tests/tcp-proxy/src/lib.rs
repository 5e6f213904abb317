//! Test support: a TCP proxy to put between a client and a real backend (RabbitMQ, Postgres,
//! ...) so that a test can cut the network without touching the backend, which other tests
//! and other people share. [`TcpProxy::cut`] closes every open connection and closes each new
//! one as soon as it is accepted, which a client sees as a broker that went away (its socket
//! ends, reconnects are refused at once rather than hanging); [`TcpProxy::restore`] lets
//! connections through again. Dropping the proxy stops it and closes what it still carries.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// A running proxy from `127.0.0.1:{port}` to one upstream address. Needs a Tokio runtime with
/// the I/O and time drivers (any `#[tokio::test]`).
#[derive(Debug)]
pub struct TcpProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept_loop: JoinHandle<()>,
}

#[derive(Debug)]
struct Shared {
    upstream: SocketAddr,
    /// Set while cut: accepted sockets are closed at once.
    cut: AtomicBool,
    /// Bumped by every cut and by `Drop`; a connection ends when the generation it was accepted
    /// in is over. A counter rather than a flag, so that a cut quickly followed by a restore
    /// still ends every connection that was open before the cut.
    generation: watch::Sender<u64>,
    /// Connections currently carried, for tests that want to wait for a client to reconnect.
    open: AtomicUsize,
    /// Bytes passed on to the upstream so far, over all connections.
    to_upstream: AtomicU64,
}

impl TcpProxy {
    /// Listens on `127.0.0.1:0` and forwards every connection to `upstream`, both ways.
    pub async fn start(upstream: SocketAddr) -> std::io::Result<TcpProxy> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            upstream,
            cut: AtomicBool::new(false),
            generation: watch::Sender::new(0),
            open: AtomicUsize::new(0),
            to_upstream: AtomicU64::new(0),
        });
        let accept_loop = tokio::spawn(accept_loop(listener, Arc::clone(&shared)));
        Ok(TcpProxy {
            addr,
            shared,
            accept_loop,
        })
    }

    /// How many bytes clients have sent through to the upstream so far: for a test that must
    /// see a request's body leave before the whole of it exists.
    pub fn bytes_to_upstream(&self) -> u64 {
        self.shared.to_upstream.load(Ordering::SeqCst)
    }

    /// The address clients connect to instead of the upstream.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The upstream address connections are forwarded to.
    pub fn upstream(&self) -> SocketAddr {
        self.shared.upstream
    }

    /// Closes every open connection, and every new one as soon as it is accepted, until
    /// [`restore`](Self::restore).
    pub fn cut(&self) {
        self.shared.cut.store(true, Ordering::SeqCst);
        self.shared.generation.send_modify(|g| *g += 1);
        tracing::debug!(proxy = %self.addr, "cut");
    }

    /// Lets new connections through again (the ones closed by the cut stay closed).
    pub fn restore(&self) {
        self.shared.cut.store(false, Ordering::SeqCst);
        tracing::debug!(proxy = %self.addr, "restored");
    }

    /// Whether the proxy is cut.
    pub fn is_cut(&self) -> bool {
        self.shared.cut.load(Ordering::SeqCst)
    }

    /// How many connections the proxy carries right now (accepted, not yet closed).
    pub fn open_connections(&self) -> usize {
        self.shared.open.load(Ordering::SeqCst)
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.accept_loop.abort();
        self.shared.cut.store(true, Ordering::SeqCst);
        self.shared.generation.send_modify(|g| *g += 1);
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let (client, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(err) => {
                // Out of descriptors and the like: try again rather than stop proxying.
                tracing::warn!(%err, "the proxy could not accept a connection");
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            }
        };
        // Subscribed before the check: a cut that lands after it changes the generation this
        // connection watches, and one that landed before it is seen by the check.
        let generation = shared.generation.subscribe();
        if shared.cut.load(Ordering::SeqCst) {
            drop(client);
            continue;
        }
        tokio::spawn(carry(client, peer, generation, Arc::clone(&shared)));
    }
}

/// Forwards one connection until either side closes it or the proxy is cut.
async fn carry(
    mut client: TcpStream,
    peer: SocketAddr,
    mut generation: watch::Receiver<u64>,
    shared: Arc<Shared>,
) {
    shared.open.fetch_add(1, Ordering::SeqCst);
    let outcome = tokio::select! {
        res = async {
            let mut upstream = TcpStream::connect(shared.upstream).await?;
            let _ = client.set_nodelay(true);
            let _ = upstream.set_nodelay(true);
            let (mut client_read, mut client_write) = client.split();
            let (mut upstream_read, mut upstream_write) = upstream.split();
            let up = async {
                let mut buf = vec![0u8; 64 * 1024];
                loop {
                    let n = client_read.read(&mut buf).await?;
                    if n == 0 {
                        return upstream_write.shutdown().await;
                    }
                    upstream_write.write_all(&buf[..n]).await?;
                    shared.to_upstream.fetch_add(n as u64, Ordering::SeqCst);
                }
            };
            let down = async {
                tokio::io::copy(&mut upstream_read, &mut client_write).await?;
                client_write.shutdown().await
            };
            tokio::try_join!(up, down).map(|_| ())
        } => res,
        _ = generation.changed() => Ok(()),
    };
    if let Err(err) = outcome {
        tracing::debug!(%peer, %err, "a proxied connection ended with an error");
    }
    shared.open.fetch_sub(1, Ordering::SeqCst);
    // Both sockets are dropped here, which closes them.
}
