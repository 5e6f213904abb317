//! Connection and time bounds, from outside: plain TCP clients that connect and send nothing,
//! bodies that stall, more connections than the server takes. Timeouts are set to a second so
//! that the tests are quick; every loop is bounded in count and in time.

use std::time::{Duration, Instant};

use filegate_tests::{Profile, TestApp, TestAppOptions};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long any single wait in these tests may take before it counts as "never".
const PATIENCE: Duration = Duration::from_secs(15);

async fn spawn_with(profile: Profile, env: &[(&str, &str)]) -> TestApp {
    let mut options = TestAppOptions::new(profile);
    options
        .env
        .extend(env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
    TestApp::spawn_with(options).await
}

fn addr(app: &TestApp) -> String {
    app.base
        .strip_prefix("http://")
        .expect("the base URL is plain http")
        .to_owned()
}

/// Waits until the server closes `stream` (end of file or a reset) and answers what it sent
/// before that.
async fn read_until_closed(stream: &mut TcpStream) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return got,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
}

/// True when nothing arrives on `stream` and it stays open for `wait`.
async fn stays_open_and_quiet(stream: &mut TcpStream, wait: Duration) -> bool {
    let mut buf = [0u8; 1];
    tokio::time::timeout(wait, stream.read(&mut buf))
        .await
        .is_err()
}

pub async fn idle_connections_are_closed_after_the_header_timeout(profile: Profile) {
    let app = spawn_with(
        profile,
        &[
            ("FILEGATE_HTTP__HEADER_TIMEOUT_SECS", "2"),
            ("FILEGATE_HTTP__IDLE_TIMEOUT_SECS", "60"),
        ],
    )
    .await;
    let addr = addr(&app);
    let mut idle = Vec::with_capacity(300);
    for _ in 0..300 {
        idle.push(TcpStream::connect(&addr).await.expect("connect"));
    }
    let started = Instant::now();
    // The last one connected, so that a slow machine's time spent connecting the others does
    // not eat into its deadline.
    let newest = idle.last_mut().expect("300 connections");
    assert!(
        stays_open_and_quiet(newest, Duration::from_millis(500)).await,
        "a new connection is not closed before the header timeout"
    );
    let closed = tokio::time::timeout(
        PATIENCE,
        futures::future::join_all(idle.iter_mut().map(read_until_closed)),
    )
    .await
    .expect("all 300 idle connections are closed well within 15 s");
    assert!(
        closed.iter().all(Vec::is_empty),
        "an idle connection was sent something before it was closed"
    );
    assert!(
        started.elapsed() < Duration::from_secs(12),
        "closed by the 2 s header timeout, not by the 60 s idle timeout: {:?}",
        started.elapsed()
    );
    let live = app.http.get(app.url("/health/live")).send().await.unwrap();
    assert_eq!(live.status().as_u16(), 200, "the server still serves");
}

pub async fn a_head_that_trickles_in_is_closed_after_the_header_timeout(profile: Profile) {
    let app = spawn_with(profile, &[("FILEGATE_HTTP__HEADER_TIMEOUT_SECS", "1")]).await;
    let mut stream = TcpStream::connect(addr(&app)).await.expect("connect");
    let started = Instant::now();
    let head =
        b"GET /health/live HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    let mut closed_early = false;
    for b in head {
        // One byte every 100 ms keeps the connection busy but never finishes the head.
        if stream.write_all(&[*b]).await.is_err() {
            closed_early = true;
            break;
        }
        if !stays_open_and_quiet(&mut stream, Duration::from_millis(100)).await {
            closed_early = true;
            break;
        }
    }
    assert!(
        closed_early,
        "a head still unfinished after {:?} was not cut off",
        started.elapsed()
    );
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "cut off by the 1 s header timeout: {:?}",
        started.elapsed()
    );
}

pub async fn a_chunk_body_that_stalls_gets_408_after_the_idle_timeout(profile: Profile) {
    let app = spawn_with(profile, &[("FILEGATE_HTTP__IDLE_TIMEOUT_SECS", "1")]).await;
    let mut stream = TcpStream::connect(addr(&app)).await.expect("connect");
    let boundary = "XyZ";
    let part = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"File\"; filename=\"a.bin\"\r\nContent-Type: application/octet-stream\r\n\r\n"
    );
    let head = format!(
        "POST /api/v1/Files/chunk HTTP/1.1\r\nHost: 127.0.0.1\r\nX-API-Key: {}\r\nContent-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: 100000\r\n\r\n",
        app.key
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(part.as_bytes()).await.unwrap();
    stream.write_all(&[7u8; 50_000]).await.unwrap();
    let started = Instant::now();
    // Most of the body is sent; the rest never comes.
    let answer = tokio::time::timeout(PATIENCE, read_until_closed(&mut stream))
        .await
        .expect("the stalled request is answered and closed well within 15 s");
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.starts_with("HTTP/1.1 408"),
        "a stalled body gets 408, after {:?}: {answer}",
        started.elapsed()
    );
    assert!(
        answer.contains("\"isSuccess\":false"),
        "in the envelope: {answer}"
    );
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "not before the idle timeout: {:?}",
        started.elapsed()
    );
}

pub async fn a_kept_alive_connection_that_goes_quiet_is_closed_after_the_idle_timeout(
    profile: Profile,
) {
    let app = spawn_with(profile, &[("FILEGATE_HTTP__IDLE_TIMEOUT_SECS", "1")]).await;
    let mut stream = TcpStream::connect(addr(&app)).await.expect("connect");
    stream
        .write_all(b"GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let started = Instant::now();
    let answer = tokio::time::timeout(PATIENCE, read_until_closed(&mut stream))
        .await
        .expect("the quiet connection is closed well within 15 s");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "kept alive until the idle timeout: {:?}",
        started.elapsed()
    );
}

pub async fn a_full_server_serves_a_newcomer_once_idle_connections_time_out(profile: Profile) {
    let app = spawn_with(
        profile,
        &[
            ("FILEGATE_HTTP__MAX_CONNECTIONS", "8"),
            ("FILEGATE_HTTP__HEADER_TIMEOUT_SECS", "1"),
        ],
    )
    .await;
    let addr = addr(&app);
    let mut idle = Vec::with_capacity(20);
    for _ in 0..20 {
        // Connections beyond the eight accepted wait in the kernel's backlog: connect succeeds.
        idle.push(TcpStream::connect(&addr).await.expect("connect"));
    }
    let started = Instant::now();
    let client = reqwest::Client::builder()
        .timeout(PATIENCE)
        .build()
        .unwrap();
    let live = client.get(app.url("/health/live")).send().await.unwrap();
    assert_eq!(live.status().as_u16(), 200);
    // The newcomer queued behind twenty idle connections, eight at a time: at least two rounds
    // of the header timeout went by before it was accepted.
    assert!(
        started.elapsed() >= Duration::from_millis(1900),
        "served after the idle connections timed out, not beside them: {:?}",
        started.elapsed()
    );
    drop(idle);
}

/// The head of a chunk request whose File part comes last, after the fields of a first block:
/// the server streams its bytes to storage as they arrive.
fn streamed_chunk_head(app: &TestApp, boundary: &str, file_len: usize) -> (String, String) {
    let mut fields = String::new();
    for (name, value) in [
        ("BlockIndex", "0"),
        ("TotalBlocks", "1"),
        ("Mode", "Import"),
    ] {
        fields.push_str(&format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
        ));
    }
    fields.push_str(&format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"File\"; filename=\"a.csv\"\r\nContent-Type: text/csv\r\n\r\n"
    ));
    let tail_len = format!("\r\n--{boundary}--\r\n").len();
    let head = format!(
        "POST /api/v1/Files/chunk HTTP/1.1\r\nHost: 127.0.0.1\r\nX-API-Key: {}\r\nContent-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: {}\r\n\r\n",
        app.key,
        fields.len() + file_len + tail_len
    );
    (head, fields)
}

/// A File that streams to storage and then stalls gets 408 too, and is not recorded.
pub async fn a_streamed_chunk_that_stalls_gets_408_after_the_idle_timeout(profile: Profile) {
    let app = spawn_with(profile, &[("FILEGATE_HTTP__IDLE_TIMEOUT_SECS", "1")]).await;
    let mut stream = TcpStream::connect(addr(&app)).await.expect("connect");
    let (head, fields) = streamed_chunk_head(&app, "XyZ", 100_000);
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(fields.as_bytes()).await.unwrap();
    stream.write_all(&[b'a'; 50_000]).await.unwrap();
    let answer = tokio::time::timeout(PATIENCE, read_until_closed(&mut stream))
        .await
        .expect("the stalled request is answered and closed well within 15 s");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("\"isSuccess\":false"), "{answer}");
    let mut db = app.db().await;
    let sessions = db
        .count(
            "SELECT count(*) FROM upload_sessions",
            "SELECT count(*) FROM upload_sessions",
            None,
        )
        .await;
    assert_eq!(
        sessions, 0,
        "a first chunk that never arrived opens no upload"
    );
}

/// The server's peak resident memory, in KiB.
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc status")
}

/// Many clients that each send most of a large chunk and then stall do not grow the server's
/// memory with what they sent: a File sent last streams to storage (the local store: the peak
/// stays near the idle server's) or is held against the memory budget (the Azure store, which
/// sends a block as one payload: the peak stays within the budget and the 400 MiB), and
/// another client is still served meanwhile.
pub async fn stalled_large_chunks_keep_the_servers_memory_bounded(profile: Profile) {
    const CLIENTS: usize = 48;
    const CHUNK: usize = 4 * 1024 * 1024;
    let app = spawn_with(
        profile,
        &[
            ("FILEGATE_HTTP__IDLE_TIMEOUT_SECS", "60"),
            (
                "FILEGATE_HTTP__MAX_CHUNK_BYTES",
                &(8 * 1024 * 1024).to_string(),
            ),
        ],
    )
    .await;
    let bound_mib = match profile {
        Profile::Embedded => 150,
        Profile::Azure => 400,
    };
    let before = peak_rss_kib(app.pid());
    let data = vec![b'x'; CHUNK - 1000];
    let mut stalled = Vec::with_capacity(CLIENTS);
    for _ in 0..CLIENTS {
        let mut stream = TcpStream::connect(addr(&app)).await.expect("connect");
        let (head, fields) = streamed_chunk_head(&app, "StAlL", CHUNK);
        stream.write_all(head.as_bytes()).await.unwrap();
        stream.write_all(fields.as_bytes()).await.unwrap();
        // A client refused for the memory budget is answered at once; keep it anyway.
        let _ = tokio::time::timeout(PATIENCE, stream.write_all(&data)).await;
        stalled.push(stream);
    }
    // Another client is served while they hang.
    let served = app
        .post_chunk(filegate_tests::Chunk::new(b"a,b\n1,2\n", 0, 1, "Import"))
        .await;
    let status = served.status();
    let answer = served.text().await.unwrap_or_default();
    assert_eq!(status, 200, "a newcomer is served: {answer}");
    let sent_mib = (CLIENTS * CHUNK) >> 20;
    let peak_mib = peak_rss_kib(app.pid()) >> 10;
    assert!(
        peak_mib <= bound_mib,
        "{CLIENTS} stalled chunks ({sent_mib} MiB sent) took the server's peak RSS from {} MiB to {peak_mib} MiB",
        before >> 10
    );
    drop(stalled);
}
