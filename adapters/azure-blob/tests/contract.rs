//! The blob store contract against a real Azurite (or Azure account), plus what only Azure has:
//! a missing container, a dead endpoint, signed URLs and the commit-recovery size check.
//!
//! Needs `FILEGATE_TEST_AZURE_CONNECTION_STRING` (and optionally `FILEGATE_TEST_AZURE_CONTAINER`,
//! default `uploads`, which must exist). `scripts/test` starts Azurite, creates the container and
//! sets both. Without them the tests fail rather than skip, so a green run always means the
//! adapter was exercised.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::future::Future;
use std::net::TcpListener;
use std::time::{Duration, Instant};

use bytes::Bytes;
use filegate_adapter_azure_blob::{AzureBlobSettings, AzureBlobStore, UrlMode};
use filegate_application::ports::{BlobError, BlobStore, BodyError, ChunkBody};
use filegate_contract_tests::blobs;
use filegate_tcp_proxy::TcpProxy;
use futures::StreamExt;
use tokio::sync::mpsc;

const CONNECTION_STRING_VAR: &str = "FILEGATE_TEST_AZURE_CONNECTION_STRING";
const CONTAINER_VAR: &str = "FILEGATE_TEST_AZURE_CONTAINER";

fn settings() -> AzureBlobSettings {
    let connection_string = std::env::var(CONNECTION_STRING_VAR).unwrap_or_else(|_| {
        panic!(
            "{CONNECTION_STRING_VAR} is not set: run the tests through `scripts/test`, which starts Azurite \
             and sets it (or set it to an Azurite/Azure connection string whose container exists)"
        )
    });
    let mut settings = AzureBlobSettings::from_connection_string(connection_string);
    if let Ok(container) = std::env::var(CONTAINER_VAR) {
        settings.container = container;
    }
    settings
}

/// A store on the test account whose `ping` is known to pass, or a failure telling what to do.
async fn store_with(settings: &AzureBlobSettings) -> AzureBlobStore {
    let store = AzureBlobStore::new(settings).expect("the test settings build a store");
    if let Err(e) = store.ping().await {
        panic!(
            "the test Azure Blob endpoint is not usable ({e}; {e:?}): run the tests through `scripts/test`, \
             which starts Azurite and creates the container"
        );
    }
    store
}

/// Hands a case a store on the test container (each case writes under paths of its own).
async fn run<F, Fut>(case: F)
where
    F: FnOnce(AzureBlobStore) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    case(store_with(&settings()).await).await;
}

filegate_contract_tests::blob_store_suite!(run);

#[tokio::test]
async fn a_repeated_commit_with_another_size_is_refused() {
    let store = store_with(&settings()).await;
    let path = blobs::fresh_path("resized.bin");
    let upload = store.begin(&path).await.unwrap();
    let index = filegate_domain::TotalBlocks::new(1)
        .unwrap()
        .index(0)
        .unwrap();
    let part = store
        .stage_block(
            &path,
            &upload,
            index,
            one(),
            Bytes::from_static(b"12345").into(),
        )
        .await
        .unwrap()
        .part_id;
    store
        .commit(&path, &upload, vec![part.clone()], 5)
        .await
        .unwrap();
    let err = store
        .commit(&path, &upload, vec![part], 6)
        .await
        .unwrap_err();
    assert!(
        !matches!(err, BlobError::Unavailable(_)),
        "a refused block list is not an outage: {err:?}"
    );
}

/// A chunk goes on as Azure blocks of 8 MiB, as many as the file's share of Azure's 50,000
/// committed blocks allows (the last takes the rest): 17 MiB is 3 blocks in a file of 2 chunks,
/// 2 in a file of 25,000, and 1 in a file of 50,000.
#[tokio::test]
async fn a_chunk_is_sent_as_azure_blocks_within_the_files_share() {
    let store = store_with(&settings()).await;
    let data = Bytes::from(vec![7u8; 17 * 1024 * 1024]);
    for (total, blocks) in [(2, 3), (25_000, 2), (50_000, 1)] {
        let path = blobs::fresh_path("shared.bin");
        let upload = store.begin(&path).await.unwrap();
        let total = filegate_domain::TotalBlocks::new(total).unwrap();
        let staged = store
            .stage_block(
                &path,
                &upload,
                total.index(0).unwrap(),
                total,
                data.clone().into(),
            )
            .await
            .unwrap();
        assert_eq!(staged.size, data.len() as u64);
        assert_eq!(
            staged.part_id.split(',').count(),
            blocks,
            "{total} blocks: {}",
            staged.part_id
        );
    }
}

const MIB: usize = 1024 * 1024;

/// A proxy in front of the test account's blob endpoint, and settings that go through it.
async fn proxied(settings: &AzureBlobSettings) -> (TcpProxy, AzureBlobSettings) {
    let connection_string = std::env::var(CONNECTION_STRING_VAR).unwrap();
    let endpoint = connection_string
        .split(';')
        .find_map(|pair| pair.trim().strip_prefix("BlobEndpoint="))
        .expect("the test connection string names its BlobEndpoint");
    let mut url = url::Url::parse(endpoint).unwrap();
    let upstream = url.socket_addrs(|| None).unwrap()[0];
    let proxy = TcpProxy::start(upstream).await.unwrap();
    url.set_ip_host(proxy.addr().ip()).unwrap();
    url.set_port(Some(proxy.addr().port())).unwrap();
    let mut settings = settings.clone();
    settings.endpoint = Some(url.to_string());
    (proxy, settings)
}

/// A body fed by the test, piece by piece, with a length hint.
fn fed_body(expected: Option<u64>) -> (mpsc::Sender<Result<Bytes, BodyError>>, ChunkBody) {
    let (tx, mut rx) = mpsc::channel(1);
    let stream = futures::stream::poll_fn(move |cx| rx.poll_recv(cx)).boxed();
    (tx, ChunkBody::new(stream).with_expected_len(expected))
}

/// `data` as a body arriving in pieces of 700 KiB, with a length hint.
fn in_pieces(data: &Bytes, hint: Option<u64>) -> (ChunkBody, tokio::task::JoinHandle<()>) {
    let (tx, body) = fed_body(hint);
    let data = data.clone();
    let feeder = tokio::spawn(async move {
        for at in (0..data.len()).step_by(700 * 1024) {
            let piece = data.slice(at..(at + 700 * 1024).min(data.len()));
            tx.send(Ok(piece)).await.unwrap();
        }
    });
    (body, feeder)
}

/// Whether the first half of a 6 MiB body reaches Azure before the second half exists, when
/// the body's length is known ahead (a form whose File is last): staged as a block (`put` =
/// false) or written as a whole blob. A payload sent only once complete would wait for all
/// of it. The blob that results holds the body.
async fn leaves_while_it_arrives(put: bool) {
    let (proxy, settings) = proxied(&settings()).await;
    let store = store_with(&settings).await;
    let path = blobs::fresh_path("streamed.bin");
    let upload = store.begin(&path).await.unwrap();
    let half = Bytes::from(vec![5u8; 3 * MIB]);
    let (tx, body) = fed_body(Some(6 * MIB as u64));
    let before = proxy.bytes_to_upstream();
    let sending = tokio::spawn({
        let (store, path, upload) = (store.clone(), path.clone(), upload.clone());
        async move {
            if put {
                return store.put(&path, body).await.map(|size| (size, None));
            }
            let index = one().index(0).unwrap();
            let staged = store
                .stage_block(&path, &upload, index, one(), body)
                .await?;
            Ok((staged.size, Some(staged.part_id)))
        }
    });
    tx.send(Ok(half.clone())).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while proxy.bytes_to_upstream() - before < half.len() as u64 {
        assert!(
            Instant::now() < deadline,
            "only {} bytes reached Azure while the first 3 MiB waited there",
            proxy.bytes_to_upstream() - before
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tx.send(Ok(half.clone())).await.unwrap();
    drop(tx);
    let (size, part) = sending.await.unwrap().unwrap();
    assert_eq!(size, 6 * MIB as u64);
    if let Some(part) = part {
        assert_eq!(part.split(',').count(), 1, "{part}");
        store
            .commit(&path, &upload, vec![part], size)
            .await
            .unwrap();
    }
    let back = blobs::read_all(&store, &path, None).await.1;
    assert_eq!(back.len(), 6 * MIB);
    assert!(back.iter().all(|&b| b == 5));
}

#[tokio::test]
async fn a_chunk_of_known_length_leaves_for_azure_while_it_arrives() {
    leaves_while_it_arrives(false).await;
}

#[tokio::test]
async fn a_whole_file_of_known_length_leaves_for_azure_while_it_arrives() {
    leaves_while_it_arrives(true).await;
}

/// The length hint is a guess from the form's Content-Length: when the body turns out shorter
/// or longer (an epilogue, a missing final CRLF), the streamed Put Block is cut off and the
/// block goes again from memory, so that what is committed is always the body as it came, in
/// the blocks the file's share allows.
#[tokio::test]
async fn a_wrong_length_hint_still_stages_the_body_as_it_came() {
    let store = store_with(&settings()).await;
    let len = 9 * MIB + 5;
    let data: Bytes = (0..len)
        .map(|i| (i % 251) as u8)
        .collect::<Vec<u8>>()
        .into();
    let hints = [
        None,
        Some(len as u64),
        Some(len as u64 - 2),
        Some(len as u64 + 2),
        Some(len as u64 / 2),
        Some(3 * len as u64),
    ];
    for total in [1, 50_000] {
        let total = filegate_domain::TotalBlocks::new(total).unwrap();
        for hint in hints {
            let path = blobs::fresh_path("hinted.bin");
            let upload = store.begin(&path).await.unwrap();
            let (body, feeder) = in_pieces(&data, hint);
            let staged = store
                .stage_block(&path, &upload, total.index(0).unwrap(), total, body)
                .await
                .unwrap_or_else(|e| panic!("{total} blocks, hint {hint:?}: {e}"));
            feeder.await.unwrap();
            assert_eq!(staged.size, len as u64, "hint {hint:?}");
            let blocks = if total.get() == 1 { 2 } else { 1 };
            assert_eq!(
                staged.part_id.split(',').count(),
                blocks,
                "{total} blocks, hint {hint:?}: {}",
                staged.part_id
            );
            store
                .commit(&path, &upload, vec![staged.part_id], staged.size)
                .await
                .unwrap();
            let back = blobs::read_all(&store, &path, None).await.1;
            assert!(
                back == data,
                "{total} blocks, hint {hint:?}: the blob differs from the body"
            );
        }
    }
    for hint in hints {
        let path = blobs::fresh_path("hinted-whole.bin");
        let (body, feeder) = in_pieces(&data, hint);
        let size = store.put(&path, body).await.unwrap();
        feeder.await.unwrap();
        assert_eq!(size, len as u64, "Put Blob, hint {hint:?}");
        let back = blobs::read_all(&store, &path, None).await.1;
        assert!(
            back == data,
            "Put Blob, hint {hint:?}: the blob differs from the body"
        );
    }
}

#[tokio::test]
async fn a_missing_container_makes_ping_answer_container_missing() {
    let mut settings = settings();
    settings.container = format!("missing-{}", uuid::Uuid::new_v4().simple());
    let store = AzureBlobStore::new(&settings).unwrap();
    match store.ping().await {
        Err(BlobError::ContainerMissing(message)) => {
            assert!(message.contains(&settings.container), "{message}");
            assert!(message.contains("create it"), "{message}");
        }
        other => panic!("expected ContainerMissing, got {other:?}"),
    }
    // Staging into it says the same, rather than "not found".
    let path = blobs::fresh_path("nowhere.bin");
    let index = filegate_domain::TotalBlocks::new(1)
        .unwrap()
        .index(0)
        .unwrap();
    let err = store
        .stage_block(&path, "", index, one(), Bytes::from_static(b"x").into())
        .await
        .unwrap_err();
    assert!(matches!(err, BlobError::ContainerMissing(_)), "{err:?}");
}

#[tokio::test]
async fn a_closed_port_makes_ping_answer_unavailable_within_seconds() {
    // A port that was free a moment ago: nothing listens there.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let settings = AzureBlobSettings::from_connection_string(format!(
        "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;\
         AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;\
         BlobEndpoint=http://127.0.0.1:{port}/devstoreaccount1;"
    ));
    let store = AzureBlobStore::new(&settings).unwrap();
    let started = Instant::now();
    let result = tokio::time::timeout(Duration::from_secs(20), store.ping())
        .await
        .expect("ping must not hang");
    let elapsed = started.elapsed();
    assert!(
        matches!(result, Err(BlobError::Unavailable(_))),
        "expected Unavailable, got {result:?}"
    );
    assert!(
        elapsed < Duration::from_secs(8),
        "a dead endpoint must be reported within seconds, took {elapsed:?}"
    );
}

#[tokio::test]
async fn sas_mode_hands_out_a_signed_read_only_url() {
    let mut settings = settings();
    settings.url_mode = UrlMode::Sas;
    settings.sas_ttl_secs = 300;
    let store = store_with(&settings).await;
    let url = blobs::share_url_answers_the_bytes(&store).await;
    assert!(url.contains("sig="), "a SAS URL carries a signature: {url}");
    assert!(url.contains("sp=r"), "the SAS must grant read only: {url}");

    // The signature does not allow writing.
    let response = reqwest::Client::new()
        .put(&url)
        .header("x-ms-blob-type", "BlockBlob")
        .body("overwritten")
        .send()
        .await
        .unwrap();
    assert!(
        !response.status().is_success(),
        "a read-only SAS must not allow a PUT, got {}",
        response.status()
    );
}

#[tokio::test]
async fn public_mode_hands_out_the_plain_location() {
    let store = store_with(&settings()).await;
    let path = blobs::fresh_path("plain.pdf");
    assert_eq!(
        store.share_url(&path).await.unwrap(),
        Some(store.location(&path))
    );
    assert!(!store.location(&path).contains('?'));
}

fn one() -> filegate_domain::TotalBlocks {
    filegate_domain::TotalBlocks::new(1).unwrap()
}
