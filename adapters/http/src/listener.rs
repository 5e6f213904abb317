//! Bounds on connections, applied where they are accepted: how many may be open at once, and
//! how long a new one may take to send its first request head.
//!
//! poem's `Server` keeps hyper's connection builder to itself, so hyper's own
//! `header_read_timeout` (which needs a timer poem does not give it) cannot be set; and
//! hyper's protocol sniffing, which reads the first bytes before any HTTP/1 timer exists, would
//! wait forever on a client that sends nothing. The deadline therefore lives in the socket: it
//! starts at accept and is met by the first empty line, the end of an HTTP/1 head (and of the
//! h2c preface). A connection that misses it fails its next read, and hyper closes it. Later
//! heads on a kept-alive connection are bounded by the server's idle timeout instead.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use poem::http::uri::Scheme;
use poem::listener::Acceptor;
use poem::web::{LocalAddr, RemoteAddr};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Sleep;

/// A pause after a failed accept (out of file descriptors, say): poem's accept loop retries at
/// once, and without the pause it would spin on the error.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// What [`BoundedAcceptor`] enforces.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionBounds {
    /// Connections open at once; more wait in the kernel's backlog, unaccepted.
    pub max_connections: usize,
    /// Time from accept to the end of the first request head.
    pub header_timeout: Duration,
}

/// Wraps an acceptor: takes a permit before each accept, so that at most
/// `max_connections` connections are open and the rest wait in the kernel's backlog (the
/// kernel pushes back, nothing is accepted only to be dropped); the permit goes with the
/// connection and returns when it closes.
#[derive(Debug)]
pub struct BoundedAcceptor<A> {
    inner: A,
    permits: Arc<Semaphore>,
    header_timeout: Duration,
    open: OpenConnections,
}

/// How many accepted connections are open now, for metrics.
#[derive(Debug, Clone, Default)]
pub struct OpenConnections(Arc<std::sync::atomic::AtomicUsize>);

impl OpenConnections {
    pub fn get(&self) -> u64 {
        self.0.load(std::sync::atomic::Ordering::Relaxed) as u64
    }

    fn opened(&self) -> OpenGuard {
        self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        OpenGuard(self.clone())
    }
}

/// Counts its connection as open until dropped.
struct OpenGuard(OpenConnections);

impl Drop for OpenGuard {
    fn drop(&mut self) {
        (self.0)
            .0
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

impl<A> BoundedAcceptor<A> {
    pub fn new(inner: A, bounds: ConnectionBounds) -> Self {
        Self {
            inner,
            permits: Arc::new(Semaphore::new(bounds.max_connections.max(1))),
            header_timeout: bounds.header_timeout,
            open: OpenConnections::default(),
        }
    }

    /// Reads how many of this acceptor's connections are open.
    pub fn open_connections(&self) -> OpenConnections {
        self.open.clone()
    }
}

/// The first request head did not arrive within the header timeout.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("no request head arrived within {} s of the connection", .0.as_secs())]
pub struct HeadTimedOut(pub Duration);

impl<A: Acceptor> Acceptor for BoundedAcceptor<A> {
    type Io = BoundedIo<A::Io>;

    fn local_addr(&self) -> Vec<LocalAddr> {
        self.inner.local_addr()
    }

    async fn accept(&mut self) -> io::Result<(Self::Io, LocalAddr, RemoteAddr, Scheme)> {
        let permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| io::Error::other("the connection permits were closed"))?;
        match self.inner.accept().await {
            Ok((io, local, remote, scheme)) => Ok((
                BoundedIo::new(io, permit, self.header_timeout, self.open.opened()),
                local,
                remote,
                scheme,
            )),
            Err(e) => {
                tracing::warn!(error = %e, "accepting a connection failed");
                tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                Err(e)
            }
        }
    }
}

/// Where a connection stands with its first request head.
enum Head {
    /// Not complete yet; the deadline is running.
    Awaited(Pin<Box<Sleep>>),
    /// Complete: no deadline any more.
    Arrived,
    /// The deadline passed: every read fails.
    TimedOut,
}

/// An accepted connection: holds its permit, and fails its reads once the first request head
/// is late.
pub struct BoundedIo<T> {
    inner: T,
    /// An envelope answer that replaced one of hyper's empty rejections, and how much of it is
    /// written; it goes out before anything else is written, flushed or shut down.
    replaced: Option<(Vec<u8>, usize)>,
    /// Whether anything was written yet: only the first write of a connection may be one of
    /// hyper's rejections (a later one could be the body of a download that looks like one).
    wrote_any: bool,
    head: Head,
    scan: EndOfHead,
    timeout: Duration,
    _permit: OwnedSemaphorePermit,
    _open: OpenGuard,
}

impl<T> std::fmt::Debug for BoundedIo<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BoundedIo").finish_non_exhaustive()
    }
}

impl<T> BoundedIo<T> {
    fn new(inner: T, permit: OwnedSemaphorePermit, timeout: Duration, open: OpenGuard) -> Self {
        Self {
            inner,
            replaced: None,
            wrote_any: false,
            head: Head::Awaited(Box::pin(tokio::time::sleep(timeout))),
            scan: EndOfHead::default(),
            timeout,
            _permit: permit,
            _open: open,
        }
    }

    fn timed_out(&self) -> io::Error {
        io::Error::new(io::ErrorKind::TimedOut, HeadTimedOut(self.timeout))
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for BoundedIo<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if let Head::TimedOut = this.head {
            return Poll::Ready(Err(this.timed_out()));
        }
        let before = buf.filled().len();
        let read = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let Head::Awaited(deadline) = &mut this.head {
            match read {
                Poll::Ready(Ok(())) if this.scan.feed(&buf.filled()[before..]) => {
                    this.head = Head::Arrived;
                }
                // Bytes that keep trickling in do not extend the deadline: the reader polls
                // again, and a late head fails on the next poll that finds nothing to read.
                Poll::Pending if deadline.as_mut().poll(cx).is_ready() => {
                    tracing::debug!(
                        timeout_secs = this.timeout.as_secs(),
                        "closing a connection whose first request head was late"
                    );
                    this.head = Head::TimedOut;
                    return Poll::Ready(Err(this.timed_out()));
                }
                _ => {}
            }
        }
        read
    }
}

impl<T: AsyncWrite + Unpin> BoundedIo<T> {
    /// Writes what is left of a replaced answer; ready once all of it is written.
    fn poll_replaced(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while let Some((bytes, written)) = self.replaced.as_mut() {
            if *written == bytes.len() {
                self.replaced = None;
                break;
            }
            match Pin::new(&mut self.inner).poll_write(cx, &bytes[*written..]) {
                Poll::Ready(Ok(0)) => {
                    return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
                }
                Poll::Ready(Ok(n)) => *written += n,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for BoundedIo<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        std::task::ready!(this.poll_replaced(cx))?;
        let first = !this.wrote_any;
        this.wrote_any = true;
        if let Some(envelope) = first.then(|| crate::rejections::rewrite(buf)).flatten() {
            // Taken whole: hyper sees its bytes written, the client gets the envelope.
            this.replaced = Some((envelope, 0));
            // Whatever is not written now goes out on the next write, flush or shutdown.
            if let Poll::Ready(Err(e)) = this.poll_replaced(cx) {
                return Poll::Ready(Err(e));
            }
            return Poll::Ready(Ok(buf.len()));
        }
        Pin::new(&mut this.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        std::task::ready!(self.poll_replaced(cx))?;
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        std::task::ready!(self.poll_replaced(cx))?;
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        std::task::ready!(self.poll_replaced(cx))?;
        // hyper writes a rejection's head as one slice, as the connection's first write.
        if let [only] = bufs
            && !self.wrote_any
        {
            return self.poll_write(cx, only);
        }
        self.wrote_any = true;
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// Finds the empty line that ends a head, across reads, with CRLF or bare LF line ends (both
/// of which hyper's parser accepts).
#[derive(Debug, Default)]
struct EndOfHead {
    at_line_start: bool,
    saw_cr: bool,
}

impl EndOfHead {
    /// Feeds the bytes just read; true once the empty line has gone by.
    fn feed(&mut self, bytes: &[u8]) -> bool {
        for &b in bytes {
            match b {
                b'\n' if self.at_line_start => return true,
                b'\n' => {
                    self.at_line_start = true;
                    self.saw_cr = false;
                }
                b'\r' if self.at_line_start && !self.saw_cr => self.saw_cr = true,
                _ => {
                    self.at_line_start = false;
                    self.saw_cr = false;
                }
            }
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    fn ends(pieces: &[&[u8]]) -> bool {
        let mut scan = EndOfHead::default();
        pieces.iter().any(|p| scan.feed(p))
    }

    #[test]
    fn the_end_of_a_head_is_found_across_reads() {
        assert!(ends(&[b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"]));
        assert!(ends(&[b"GET / HTTP/1.1\r\nHost: x\r", b"\n\r", b"\n"]));
        assert!(ends(&[b"GET / HTTP/1.1\nHost: x\n\n"]));
        assert!(ends(&[b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"]));
        assert!(!ends(&[b"GET / HTTP/1.1\r\nHost: x\r\n"]));
        assert!(!ends(&[b"GET / HTTP/1.1\r\n\rX: y\r\n"]));
        assert!(!ends(&[b"GET / HTTP/1.1\r\nA: \r\r\n"]));
    }

    fn permit() -> OwnedSemaphorePermit {
        Arc::new(Semaphore::new(1))
            .try_acquire_owned()
            .expect("a fresh semaphore has a permit")
    }

    #[tokio::test]
    async fn a_connection_that_sends_nothing_fails_its_read_after_the_timeout() {
        let (_client, server) = tokio::io::duplex(64);
        let mut io = BoundedIo::new(
            server,
            permit(),
            Duration::from_millis(50),
            OpenConnections::default().opened(),
        );
        let mut buf = [0u8; 16];
        let err = tokio::time::timeout(Duration::from_secs(5), io.read(&mut buf))
            .await
            .expect("the deadline ends the read well before 5 s")
            .expect_err("a late head is an error");
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert!(err.get_ref().is_some_and(|e| e.is::<HeadTimedOut>()));
    }

    /// hyper's rejection is rewritten as the first write of a connection, and bytes that look
    /// like one later (a download's body) are written as they are.
    #[tokio::test]
    async fn only_a_first_write_that_is_hypers_rejection_becomes_an_envelope() {
        let rejection: &[u8] =
            b"HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\n\r\n";
        for (first, expect_rewrite) in [(rejection, true), (&b"HTTP/1.1 200 OK\r\n\r\n"[..], false)]
        {
            let (mut client, server) = tokio::io::duplex(4096);
            let mut io = BoundedIo::new(
                server,
                permit(),
                Duration::from_secs(5),
                OpenConnections::default().opened(),
            );
            io.write_all(first).await.unwrap();
            if !expect_rewrite {
                // A body piece that looks like a rejection, after the head.
                io.write_all(rejection).await.unwrap();
            }
            io.shutdown().await.unwrap();
            drop(io);
            let mut out = Vec::new();
            client.read_to_end(&mut out).await.unwrap();
            let text = String::from_utf8(out).unwrap();
            if expect_rewrite {
                assert!(text.contains("\"isSuccess\":false"), "{text}");
            } else {
                let mut expected = first.to_vec();
                expected.extend_from_slice(rejection);
                assert_eq!(text.as_bytes(), expected.as_slice());
            }
        }
    }

    #[tokio::test]
    async fn a_connection_whose_head_arrived_is_left_alone() {
        let (mut client, server) = tokio::io::duplex(64);
        let mut io = BoundedIo::new(
            server,
            permit(),
            Duration::from_millis(50),
            OpenConnections::default().opened(),
        );
        client.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
        let mut buf = [0u8; 64];
        let n = io.read(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"GET / HTTP/1.1\r\n\r\n");
        tokio::time::sleep(Duration::from_millis(100)).await;
        client.write_all(b"body").await.unwrap();
        let n = io.read(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"body", "reads after the head are not timed");
    }

    #[tokio::test]
    async fn a_head_that_trickles_in_too_slowly_fails() {
        let (mut client, server) = tokio::io::duplex(64);
        let mut io = BoundedIo::new(
            server,
            permit(),
            Duration::from_millis(100),
            OpenConnections::default().opened(),
        );
        let trickle = tokio::spawn(async move {
            for b in b"GET / HTTP/1.1\r\nX: aaaaaaaaaaaaaaaaaaaa" {
                if client.write_all(&[*b]).await.is_err() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        });
        let mut buf = [0u8; 64];
        let outcome = tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                if let Err(e) = io.read(&mut buf).await {
                    return e;
                }
            }
        })
        .await
        .expect("the deadline ends the trickle well before 5 s");
        assert_eq!(outcome.kind(), io::ErrorKind::TimedOut);
        trickle.abort();
    }
}
