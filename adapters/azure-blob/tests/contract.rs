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
use filegate_application::ports::{BlobError, BlobStore};
use filegate_contract_tests::blobs;

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
