//! The promises of [`BlobStore`], as cases an adapter runs against a real backend.
//!
//! Every case writes under a path of its own (random firm and file ids), so the cases can share
//! one container or folder and run in parallel. A case panics, naming the promise, when the
//! store breaks it. [`crate::blob_store_suite`] lists every case that needs nothing but the
//! store; [`share_url_answers_the_bytes`] needs a store whose shared URLs are readable by anyone
//! holding them (a public container, or signed URLs), so the adapter calls it itself.
//!
//! Decisions the cases pin down, for every adapter alike:
//! - deleting a blob that does not exist succeeds (delete is idempotent), reading it is
//!   `BlobError::NotFound`;
//! - committing again, with the same parts and size, a file that is already committed succeeds
//!   and leaves the blob as it was: that is how a commit that happened just before a crash is
//!   recognised; with another size it must not change the blob (real stores refuse it);
//! - a commit naming a part that was never staged fails and leaves no blob.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fmt::Debug;
use std::ops::Range;

use bytes::Bytes;
use filegate_application::ports::{BlobError, BlobRead, BlobStore, BodyError, ChunkBody};
use filegate_domain::{BlobPath, FileId, FileName, FirmId, Mode, TotalBlocks, UserId};
use futures::StreamExt;
use rand::RngCore;
use uuid::Uuid;

/// Bigger than the 2-3 MiB at which some HTTP stacks and proxies start chopping bodies.
const LARGE_BLOCK: usize = 3 * 1024 * 1024 + 17;

/// The backend is reachable and its container exists.
pub async fn ping_answers_ok<B: BlobStore>(store: &B) {
    ok(store.ping().await, "ping on a healthy store");
}

/// Blocks staged in the order 2, 0, 1 and committed in index order read back as 0, 1, 2.
pub async fn blocks_staged_out_of_order_are_committed_in_the_given_order<B: BlobStore>(store: &B) {
    let path = fresh_path("ordered.bin");
    let blocks = [random_bytes(1000), random_bytes(1500), random_bytes(700)];
    let upload = ok(store.begin(&path).await, "begin");
    let mut parts = vec![String::new(); 3];
    for i in [2usize, 0, 1] {
        parts[i] = stage(store, &path, &upload, 3, i, blocks[i].clone()).await;
    }
    ok(
        store.commit(&path, &upload, parts, total(&blocks)).await,
        "commit of three staged blocks",
    );
    let (read, bytes) = read_all(store, &path, None).await;
    assert_eq!(
        bytes,
        concat(&blocks),
        "a committed blob must be its blocks in the committed order"
    );
    assert_eq!(
        read.size,
        total(&blocks),
        "BlobRead::size must be the blob's size"
    );
    assert_eq!(
        read.range,
        0..total(&blocks),
        "a whole read must report the whole range"
    );
}

/// An index staged twice gets a new part id; committing that one gives the new bytes.
pub async fn a_restaged_index_wins_when_its_new_part_is_committed<B: BlobStore>(store: &B) {
    let path = fresh_path("restaged.bin");
    let upload = ok(store.begin(&path).await, "begin");
    let first = stage(store, &path, &upload, 2, 0, Bytes::from_static(b"old-zero")).await;
    let second = stage(store, &path, &upload, 2, 0, Bytes::from_static(b"new-zero")).await;
    assert_ne!(first, second, "re-staging an index must give a new part id");
    let one = stage(store, &path, &upload, 2, 1, Bytes::from_static(b"-one")).await;
    ok(
        store.commit(&path, &upload, vec![second, one], 12).await,
        "commit with a re-staged block",
    );
    let (_, bytes) = read_all(store, &path, None).await;
    assert_eq!(
        bytes, b"new-zero-one",
        "the part id given to commit must decide the bytes"
    );
}

/// A byte range reads just those bytes, across block boundaries, and still tells the full size.
pub async fn a_range_reads_just_those_bytes<B: BlobStore>(store: &B) {
    let blocks = [random_bytes(10), random_bytes(10), random_bytes(10)];
    let path = committed(store, "ranged.bin", &blocks).await;
    let whole = concat(&blocks);
    for range in [5..13u64, 0..1, 29..30, 10..30, 0..30] {
        let (read, bytes) = read_all(store, &path, Some(range.clone())).await;
        assert_eq!(
            read.size, 30,
            "a ranged read must still report the blob's full size"
        );
        assert_eq!(
            read.range, range,
            "a ranged read must report the range it answers"
        );
        assert_eq!(
            bytes,
            whole[range.start as usize..range.end as usize],
            "range {range:?}"
        );
    }
}

/// A block of more than 3 MiB is stored and read back byte for byte.
pub async fn a_large_block_comes_back_whole<B: BlobStore>(store: &B) {
    let blocks = [random_bytes(LARGE_BLOCK), random_bytes(4096)];
    let path = committed(store, "large.bin", &blocks).await;
    let (read, bytes) = read_all(store, &path, None).await;
    assert_eq!(read.size, total(&blocks));
    assert!(
        bytes == concat(&blocks),
        "a {LARGE_BLOCK}-byte block must come back unchanged"
    );
    let boundary = LARGE_BLOCK as u64;
    let (_, bytes) = read_all(store, &path, Some(boundary - 3..boundary + 3)).await;
    assert_eq!(
        bytes,
        concat(&blocks)[LARGE_BLOCK - 3..LARGE_BLOCK + 3],
        "a range across the large block's end"
    );
}

/// A block of 9 MiB arriving in uneven pieces is staged and read back byte for byte, both in a
/// file of few blocks (a store may send it on in blocks of its own) and in a file of the most
/// blocks (where it may not split it), next to a small block.
pub async fn a_block_of_several_mebibytes_in_pieces_comes_back_whole<B: BlobStore>(store: &B) {
    for of in [2usize, 50_000] {
        let big = random_bytes(9 * 1024 * 1024 + 5);
        let small = random_bytes(777);
        let path = fresh_path("big.bin");
        let upload = ok(store.begin(&path).await, "begin");
        let total = TotalBlocks::new(of as i64).expect("a valid total");
        let index = total.index(0).expect("index 0");
        // Pieces of 100,000 bytes: none ends where an 8 MiB block would.
        let pieces: Vec<Result<Bytes, BodyError>> = big
            .chunks(100_000)
            .map(|p| Ok(Bytes::copy_from_slice(p)))
            .collect();
        let staged = ok(
            store
                .stage_block(
                    &path,
                    &upload,
                    index,
                    total,
                    ChunkBody::new(futures::stream::iter(pieces).boxed()),
                )
                .await,
            "stage_block of 9 MiB in pieces",
        );
        assert_eq!(staged.size, big.len() as u64);
        let last = stage(store, &path, &upload, of, 1, small.clone()).await;
        let size = (big.len() + small.len()) as u64;
        ok(
            store
                .commit(&path, &upload, vec![staged.part_id, last], size)
                .await,
            "commit",
        );
        let (read, bytes) = read_all(store, &path, None).await;
        assert_eq!(read.size, size, "{of} blocks");
        assert!(
            bytes == concat(&[big, small]),
            "the 9 MiB block must come back unchanged ({of} blocks)"
        );
    }
}

/// Every character a sanitized file name may hold survives the trip to the backend and back.
pub async fn unusual_file_names_round_trip<B: BlobStore>(store: &B) {
    let name = "Résumé [final] (v2) +copy, @home.pdf";
    assert_eq!(
        FileName::sanitize(name).as_str(),
        name,
        "the name used here must already be sanitized"
    );
    let path = committed(store, name, &[Bytes::from_static(b"named")]).await;
    let (_, bytes) = read_all(store, &path, None).await;
    assert_eq!(bytes, b"named");
}

/// The recovery path: the backend committed, the metadata store did not record it, and the
/// retried commit (same parts, same size) must succeed without touching the blob.
pub async fn committing_a_committed_file_again_succeeds_and_changes_nothing<B: BlobStore>(
    store: &B,
) {
    let path = fresh_path("twice.bin");
    let blocks = [random_bytes(300), random_bytes(200)];
    let upload = ok(store.begin(&path).await, "begin");
    let parts = vec![
        stage(store, &path, &upload, 2, 0, blocks[0].clone()).await,
        stage(store, &path, &upload, 2, 1, blocks[1].clone()).await,
    ];
    ok(
        store.commit(&path, &upload, parts.clone(), 500).await,
        "first commit",
    );
    ok(
        store.commit(&path, &upload, parts, 500).await,
        "a repeated commit with the same parts and size",
    );
    let (read, bytes) = read_all(store, &path, None).await;
    assert_eq!(
        (read.size, bytes),
        (500, concat(&blocks).to_vec()),
        "a repeated commit must leave the blob as it was"
    );
}

/// A repeated commit is recognised by its size: with another size it should fail (the fakes
/// may accept it), and it must never change the blob.
pub async fn a_repeated_commit_with_another_size_never_changes_the_blob<B: BlobStore>(store: &B) {
    let path = fresh_path("resized.bin");
    let upload = ok(store.begin(&path).await, "begin");
    let parts = vec![stage(store, &path, &upload, 1, 0, Bytes::from_static(b"12345")).await];
    ok(
        store.commit(&path, &upload, parts.clone(), 5).await,
        "first commit",
    );
    // The in-memory fake commits staged parts again whatever the size; a real store cannot.
    if store.commit(&path, &upload, parts, 6).await.is_ok() {
        let (_, bytes) = read_all(store, &path, None).await;
        assert_eq!(
            bytes, b"12345",
            "an accepted repeated commit must not change the blob"
        );
    }
}

/// A commit naming a part that was never staged fails, and no blob appears.
pub async fn committing_an_unknown_part_fails_and_leaves_no_blob<B: BlobStore>(store: &B) {
    let path = fresh_path("unknown-part.bin");
    let upload = ok(store.begin(&path).await, "begin");
    let staged = stage(store, &path, &upload, 2, 0, Bytes::from_static(b"zero")).await;
    let never_staged = format!("{:032x}", Uuid::new_v4().as_u128());
    let result = store
        .commit(&path, &upload, vec![staged, never_staged], 8)
        .await;
    assert!(
        result.is_err(),
        "a commit naming a part that was never staged must fail"
    );
    let err = store.read(&path, None).await.err();
    assert!(
        matches!(err, Some(BlobError::NotFound(_))),
        "a failed commit must leave no blob, got {err:?}"
    );
}

/// Reading a blob that was never written is `NotFound`; deleting it succeeds.
pub async fn a_missing_blob_is_not_found_and_deleting_it_succeeds<B: BlobStore>(store: &B) {
    let path = fresh_path("never-written.bin");
    let err = store.read(&path, None).await.err();
    assert!(
        matches!(err, Some(BlobError::NotFound(_))),
        "reading a missing blob must be NotFound, got {err:?}"
    );
    let err = store.read(&path, Some(0..4)).await.err();
    assert!(
        matches!(err, Some(BlobError::NotFound(_))),
        "a ranged read of a missing blob must be NotFound, got {err:?}"
    );
    ok(
        store.delete(&path).await,
        "deleting a missing blob (delete is idempotent)",
    );
}

/// A deleted blob is gone.
pub async fn a_deleted_blob_is_not_found<B: BlobStore>(store: &B) {
    let path = committed(store, "deleted.bin", &[Bytes::from_static(b"bye")]).await;
    ok(store.delete(&path).await, "delete");
    let err = store.read(&path, None).await.err();
    assert!(
        matches!(err, Some(BlobError::NotFound(_))),
        "a deleted blob must be NotFound, got {err:?}"
    );
    ok(store.delete(&path).await, "deleting a blob twice");
}

/// The stored address names the blob's path, and is the same every time it is asked for.
pub async fn the_location_names_the_path<B: BlobStore>(store: &B) {
    let path = fresh_path("located.pdf");
    let location = store.location(&path);
    assert!(
        location.contains(path.as_str()),
        "location {location} must contain the path {path}"
    );
    assert_eq!(location, store.location(&path), "location must be stable");
}

/// The URL handed to clients answers a plain GET with the blob's bytes. For a store whose
/// shared URLs are readable (a public container or signed URLs); answers the URL so that the
/// adapter can check more (e.g. a signature).
pub async fn share_url_answers_the_bytes<B: BlobStore>(store: &B) -> String {
    let blocks = [random_bytes(2048), random_bytes(100)];
    let path = committed(store, "shared.bin", &blocks).await;
    let url = ok(store.share_url(&path).await, "share_url")
        .expect("this store must hand out URLs of its own");
    let response = reqwest::get(&url)
        .await
        .unwrap_or_else(|e| panic!("GET {url} failed: {e}"));
    assert!(
        response.status().is_success(),
        "GET on the shared URL answered {}",
        response.status()
    );
    let body = response.bytes().await.expect("the shared URL's body");
    assert!(
        body == concat(&blocks),
        "the shared URL must answer the blob's bytes"
    );
    url
}

/// A block whose bytes arrive in many pieces is staged whole, in order, with its full size.
pub async fn a_block_arriving_in_pieces_is_staged_whole<B: BlobStore>(store: &B) {
    let path = fresh_path("pieces.bin");
    let upload = ok(store.begin(&path).await, "begin");
    let whole = random_bytes(300 * 1024 + 7);
    let pieces: Vec<Result<Bytes, BodyError>> = whole
        .chunks(8 * 1024 + 3)
        .map(|p| Ok(Bytes::copy_from_slice(p)))
        .collect();
    let body = ChunkBody::new(futures::stream::iter(pieces).boxed());
    let index = TotalBlocks::new(1)
        .expect("a valid total")
        .index(0)
        .expect("index 0");
    let staged = ok(
        store
            .stage_block(&path, &upload, index, single(), body)
            .await,
        "stage_block of a body in pieces",
    );
    assert_eq!(staged.size, whole.len() as u64);
    ok(
        store
            .commit(&path, &upload, vec![staged.part_id], whole.len() as u64)
            .await,
        "commit",
    );
    let (_, bytes) = read_all(store, &path, None).await;
    assert!(
        bytes == whole,
        "the staged block must hold every piece, in order"
    );
}

/// A body that fails while it is being staged (the client stalled or sent too much) is
/// answered with that body error, untouched, so that the client learns what it did.
pub async fn a_body_that_fails_midway_is_answered_with_its_error<B: BlobStore>(store: &B) {
    let path = fresh_path("cut.bin");
    let upload = ok(store.begin(&path).await, "begin");
    let pieces: Vec<Result<Bytes, BodyError>> = vec![
        Ok(random_bytes(4096)),
        Err(BodyError::Stalled(30)),
        Ok(random_bytes(4096)),
    ];
    let body = ChunkBody::new(futures::stream::iter(pieces).boxed());
    let index = TotalBlocks::new(1)
        .expect("a valid total")
        .index(0)
        .expect("index 0");
    match store
        .stage_block(&path, &upload, index, single(), body)
        .await
    {
        Err(BlobError::Body(BodyError::Stalled(30))) => {}
        other => panic!("a failing body must be answered with its error, got {other:?}"),
    }
}

/// Blocks of uneven sizes (a middle block shorter than block 0, a last one longer, an index
/// re-sent longer than before) commit whole and in order: clients do not all chunk evenly.
pub async fn blocks_of_uneven_sizes_are_committed_whole<B: BlobStore>(store: &B) {
    let path = fresh_path("uneven.bin");
    let blocks = [
        random_bytes(1000),
        random_bytes(400),
        random_bytes(1000),
        random_bytes(2500),
    ];
    let upload = ok(store.begin(&path).await, "begin");
    let mut parts = Vec::new();
    for (i, block) in blocks.iter().enumerate() {
        parts.push(stage(store, &path, &upload, 5, i, block.clone()).await);
    }
    let longer = random_bytes(1700);
    parts[2] = stage(store, &path, &upload, 5, 2, longer.clone()).await;
    let last = random_bytes(10);
    parts.push(stage(store, &path, &upload, 5, 4, last.clone()).await);
    let expected = [
        blocks[0].clone(),
        blocks[1].clone(),
        longer,
        blocks[3].clone(),
        last,
    ];
    ok(
        store.commit(&path, &upload, parts, total(&expected)).await,
        "commit of uneven blocks",
    );
    let (_, bytes) = read_all(store, &path, None).await;
    assert!(
        bytes == concat(&expected),
        "uneven blocks must commit whole and in order"
    );
}

/// A block whose body failed midway can be sent again, and the retry's bytes are the ones
/// committed, also where the failed attempt had already written some.
pub async fn a_block_that_failed_midway_can_be_sent_again<B: BlobStore>(store: &B) {
    let path = fresh_path("retried.bin");
    let upload = ok(store.begin(&path).await, "begin");
    let first = random_bytes(4096);
    let second = random_bytes(4096);
    let zero = stage(store, &path, &upload, 2, 0, first.clone()).await;
    let index = TotalBlocks::new(2)
        .expect("a valid total")
        .index(1)
        .expect("index 1");
    let pieces: Vec<Result<Bytes, BodyError>> = vec![
        Ok(random_bytes(3000)),
        Err(BodyError::Broken("reset".into())),
    ];
    let failed = store
        .stage_block(
            &path,
            &upload,
            index,
            TotalBlocks::new(2).expect("a valid total"),
            ChunkBody::new(futures::stream::iter(pieces).boxed()),
        )
        .await;
    assert!(
        matches!(failed, Err(BlobError::Body(BodyError::Broken(_)))),
        "a failing body must be answered with its error, got {failed:?}"
    );
    let one = stage(store, &path, &upload, 2, 1, second.clone()).await;
    ok(
        store.commit(&path, &upload, vec![zero, one], 8192).await,
        "commit after a retried block",
    );
    let (_, bytes) = read_all(store, &path, None).await;
    assert!(
        bytes == concat(&[first, second]),
        "the retried block's bytes must be the ones committed"
    );
}

/// Once the metadata store has recorded a commit, the staging is discarded: the blob stays,
/// a repeated commit (the recovery path) still succeeds, and discarding again is no error.
pub async fn discarding_the_staging_keeps_the_blob<B: BlobStore>(store: &B) {
    let path = fresh_path("discarded.bin");
    let blocks = [random_bytes(2048), random_bytes(100)];
    let upload = ok(store.begin(&path).await, "begin");
    let parts = vec![
        stage(store, &path, &upload, 2, 0, blocks[0].clone()).await,
        stage(store, &path, &upload, 2, 1, blocks[1].clone()).await,
    ];
    ok(
        store
            .commit(&path, &upload, parts.clone(), total(&blocks))
            .await,
        "commit",
    );
    ok(store.discard_staging(&upload).await, "discard_staging");
    ok(
        store.commit(&path, &upload, parts, total(&blocks)).await,
        "a repeated commit after the staging was discarded",
    );
    ok(
        store.discard_staging(&upload).await,
        "a second discard_staging",
    );
    let (_, bytes) = read_all(store, &path, None).await;
    assert!(
        bytes == concat(&blocks),
        "discarding the staging must leave the blob as committed"
    );
}

/// A blob written whole (one request, no staging) reads back whole, however its bytes
/// arrived; a body that fails midway is answered with its error and leaves no blob.
pub async fn a_blob_put_whole_reads_back_and_a_failed_put_leaves_none<B: BlobStore>(store: &B) {
    // Small, and larger than a store may gather before it writes (the local store: 1 MiB).
    for (name, len, piece) in [
        ("whole.png", 200 * 1024 + 3, 16 * 1024),
        ("large.png", 3 * 1024 * 1024 + 5, 64 * 1024),
    ] {
        let path = fresh_path(name);
        let whole = random_bytes(len);
        let size = ok(store.put(&path, in_pieces(&whole, piece, None)).await, name);
        assert_eq!(size, whole.len() as u64, "put must answer the blob's size");
        let (_, bytes) = read_all(store, &path, None).await;
        assert!(
            bytes == whole,
            "a blob put whole must read back whole ({name})"
        );
    }

    // A body failing early, and one failing after more than a store may gather.
    for (name, before) in [("failed.png", 4096), ("failed-late.png", 2 * 1024 * 1024)] {
        let failed_path = fresh_path(name);
        let body = in_pieces(
            &random_bytes(before),
            64 * 1024,
            Some(BodyError::Stalled(30)),
        );
        match store.put(&failed_path, body).await {
            Err(BlobError::Body(BodyError::Stalled(30))) => {}
            other => panic!(
                "a body failing after {before} bytes must be answered with its error, got {other:?}"
            ),
        }
        let err = store.read(&failed_path, None).await.err();
        assert!(
            matches!(err, Some(BlobError::NotFound(_))),
            "a failed put must leave no blob, got {err:?}"
        );
    }
}

/// `bytes` as a body arriving in pieces of `piece` bytes, then failing with `then` if given.
fn in_pieces(bytes: &[u8], piece: usize, then: Option<BodyError>) -> ChunkBody {
    let pieces: Vec<Result<Bytes, BodyError>> = bytes
        .chunks(piece)
        .map(|p| Ok(Bytes::copy_from_slice(p)))
        .chain(then.map(Err))
        .collect();
    ChunkBody::new(futures::stream::iter(pieces).boxed())
}

/// The listing holds committed blobs, with their size and a recent time, under the path they
/// were written at (odd names included), and neither a blob only staged nor a deleted one.
/// Other cases share the container, so only these blobs are looked for.
pub async fn committed_blobs_are_listed_and_staging_is_not<B: BlobStore>(store: &B) {
    let blocks = [random_bytes(1000), random_bytes(10)];
    let listed_path = committed(store, "listed [1] été.pdf", &blocks).await;
    let staged_only = fresh_path("staged.pdf");
    let upload = ok(store.begin(&staged_only).await, "begin");
    stage(store, &staged_only, &upload, 2, 0, blocks[0].clone()).await;
    let deleted = committed(store, "deleted.pdf", &blocks).await;
    ok(store.delete(&deleted).await, "delete");

    let listing = ok(store.list_blobs().await, "list_blobs");
    let found = listing
        .iter()
        .find(|b| b.path == listed_path)
        .unwrap_or_else(|| panic!("{listed_path} is not in the listing"));
    assert_eq!(found.size, 1010);
    let age = chrono::Utc::now() - found.modified;
    assert!(
        age < chrono::Duration::minutes(5) && age > chrono::Duration::minutes(-5),
        "written just now: {}",
        found.modified
    );
    assert!(
        !listing.iter().any(|b| b.path == staged_only),
        "staging is no blob"
    );
    assert!(
        !listing.iter().any(|b| b.path == deleted),
        "a deleted blob is gone"
    );
    ok(store.discard_staging(&upload).await, "discard_staging");
}

/// A path no other case or run uses.
pub fn fresh_path(name: &str) -> BlobPath {
    BlobPath::for_file(
        Mode::Message,
        FirmId::from_uuid(Uuid::new_v4()),
        UserId::from_uuid(Uuid::new_v4()),
        FileId::from_uuid(Uuid::new_v4()),
        &FileName::sanitize(name),
    )
}

/// Stages and commits `blocks` under a fresh path.
pub async fn committed<B: BlobStore>(store: &B, name: &str, blocks: &[Bytes]) -> BlobPath {
    let path = fresh_path(name);
    let upload = ok(store.begin(&path).await, "begin");
    let mut parts = Vec::with_capacity(blocks.len());
    for (i, block) in blocks.iter().enumerate() {
        parts.push(stage(store, &path, &upload, blocks.len(), i, block.clone()).await);
    }
    ok(
        store.commit(&path, &upload, parts, total(blocks)).await,
        "commit",
    );
    path
}

/// Reads a blob (or a range of it) to the end.
pub async fn read_all<B: BlobStore>(
    store: &B,
    path: &BlobPath,
    range: Option<Range<u64>>,
) -> (BlobRead, Vec<u8>) {
    let mut read = ok(store.read(path, range.clone()).await, "read");
    let mut bytes = Vec::new();
    while let Some(chunk) = read.stream.next().await {
        bytes.extend_from_slice(&ok(chunk, "a chunk of a read"));
    }
    let expected = read.range.end - read.range.start;
    assert_eq!(
        bytes.len() as u64,
        expected,
        "the stream of {path} ({range:?}) must hold the reported range"
    );
    read.stream = futures::stream::empty().boxed();
    (read, bytes)
}

async fn stage<B: BlobStore>(
    store: &B,
    path: &BlobPath,
    upload: &str,
    of: usize,
    index: usize,
    data: Bytes,
) -> String {
    let total = TotalBlocks::new(of as i64).expect("a valid total");
    let index = total.index(index as i64).expect("a valid index");
    let size = data.len() as u64;
    let staged = ok(
        store
            .stage_block(path, upload, index, total, data.into())
            .await,
        "stage_block",
    );
    assert_eq!(
        staged.size, size,
        "stage_block must answer the block's size"
    );
    staged.part_id
}

fn random_bytes(len: usize) -> Bytes {
    let mut buf = vec![0u8; len];
    rand::rng().fill_bytes(&mut buf);
    Bytes::from(buf)
}

fn total(blocks: &[Bytes]) -> u64 {
    blocks.iter().map(|b| b.len() as u64).sum()
}

fn concat(blocks: &[Bytes]) -> Vec<u8> {
    blocks.iter().flat_map(|b| b.iter().copied()).collect()
}

fn ok<T, E: Debug>(result: Result<T, E>, what: &str) -> T {
    match result {
        Ok(v) => v,
        Err(e) => panic!("{what} failed: {e:?}"),
    }
}

fn single() -> TotalBlocks {
    TotalBlocks::new(1).expect("a valid total")
}
