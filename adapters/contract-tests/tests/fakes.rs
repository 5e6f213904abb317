//! The in-memory fakes of the application's unit tests run the same suites as the real
//! adapters: a fake that broke a promise would let a use case's test pass for the wrong reason.

use std::future::Future;

use filegate_application::fakes::{InMemoryBlobs, InMemoryStore};

async fn store<F, Fut>(case: F)
where
    F: FnOnce(InMemoryStore) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    case(InMemoryStore::default()).await;
}

async fn blobs<F, Fut>(case: F)
where
    F: FnOnce(InMemoryBlobs) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    case(InMemoryBlobs::default()).await;
}

filegate_contract_tests::metadata_store_suites!(store);
filegate_contract_tests::blob_store_suite!(blobs);
