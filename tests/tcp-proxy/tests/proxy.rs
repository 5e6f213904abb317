//! The proxy against a local echo server.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::time::Duration;

use filegate_tcp_proxy::TcpProxy;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// An echo server on a free port; it lives as long as the test's runtime.
async fn echo_server() -> SocketAddr {
    let listener = TcpListener::bind(("127.0.0.1", 0)).await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let (mut r, mut w) = socket.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    addr
}

async fn round_trip(stream: &mut TcpStream, message: &[u8]) -> Vec<u8> {
    stream.write_all(message).await.unwrap();
    let mut buf = vec![0; message.len()];
    tokio::time::timeout(Duration::from_secs(5), stream.read_exact(&mut buf))
        .await
        .expect("no echo within 5 s")
        .unwrap();
    buf
}

/// The connection ends (EOF or reset) within a second, without any data.
async fn assert_closed(stream: &mut TcpStream) {
    let mut buf = [0u8; 16];
    let read = tokio::time::timeout(Duration::from_secs(1), stream.read(&mut buf))
        .await
        .expect("the connection was not closed");
    match read {
        Ok(0) | Err(_) => {}
        Ok(n) => panic!("read {n} bytes from a connection that should be closed"),
    }
}

#[tokio::test]
async fn forwards_both_ways() {
    let proxy = TcpProxy::start(echo_server().await).await.unwrap();
    let mut a = TcpStream::connect(proxy.addr()).await.unwrap();
    let mut b = TcpStream::connect(proxy.addr()).await.unwrap();
    assert_eq!(round_trip(&mut a, b"hello").await, b"hello");
    assert_eq!(round_trip(&mut b, b"world").await, b"world");
    let big = vec![7u8; 1 << 20];
    assert_eq!(round_trip(&mut a, &big).await, big);
    assert_eq!(proxy.open_connections(), 2);
}

#[tokio::test]
async fn cut_closes_open_connections_and_refuses_new_ones_until_restored() {
    let proxy = TcpProxy::start(echo_server().await).await.unwrap();
    let mut open = TcpStream::connect(proxy.addr()).await.unwrap();
    assert_eq!(round_trip(&mut open, b"before").await, b"before");

    proxy.cut();
    assert!(proxy.is_cut());
    assert_closed(&mut open).await;

    // A new connection is accepted by the kernel, then closed by the proxy at once.
    let mut refused = TcpStream::connect(proxy.addr()).await.unwrap();
    let _ = refused.write_all(b"anyone?").await;
    assert_closed(&mut refused).await;

    proxy.restore();
    assert!(!proxy.is_cut());
    let mut again = TcpStream::connect(proxy.addr()).await.unwrap();
    assert_eq!(round_trip(&mut again, b"after").await, b"after");
}

#[tokio::test]
async fn a_quick_cut_and_restore_still_ends_the_old_connections() {
    let proxy = TcpProxy::start(echo_server().await).await.unwrap();
    let mut open = TcpStream::connect(proxy.addr()).await.unwrap();
    assert_eq!(round_trip(&mut open, b"x").await, b"x");
    proxy.cut();
    proxy.restore();
    assert_closed(&mut open).await;
}

#[tokio::test]
async fn dropping_the_proxy_closes_everything() {
    let proxy = TcpProxy::start(echo_server().await).await.unwrap();
    let addr = proxy.addr();
    let mut open = TcpStream::connect(addr).await.unwrap();
    assert_eq!(round_trip(&mut open, b"x").await, b"x");
    drop(proxy);
    assert_closed(&mut open).await;
    // The listener is gone: nothing answers on its port any more.
    tokio::time::sleep(Duration::from_millis(50)).await;
    match TcpStream::connect(addr).await {
        Err(_) => {}
        Ok(mut late) => assert_closed(&mut late).await,
    }
}

#[tokio::test]
async fn an_unreachable_upstream_closes_the_client_connection() {
    // A port that was free a moment ago: nothing listens there.
    let free = TcpListener::bind(("127.0.0.1", 0)).await.unwrap();
    let upstream = free.local_addr().unwrap();
    drop(free);
    let proxy = TcpProxy::start(upstream).await.unwrap();
    assert_eq!(proxy.upstream(), upstream);
    let mut client = TcpStream::connect(proxy.addr()).await.unwrap();
    assert_closed(&mut client).await;
}
