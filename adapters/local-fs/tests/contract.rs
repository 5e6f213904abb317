//! The blob store contract on a real folder, plus what only the file system has: the staging
//! area, crash leftovers, path escapes and a root that disappears. Each test works in a fresh
//! folder under the system's temporary folder, removed at the end.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::future::Future;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use filegate_adapter_local_fs::{LocalFsError, LocalFsSettings, LocalFsStore};
use filegate_application::ports::{BlobError, BlobStore};
use filegate_contract_tests::blobs;
use filegate_domain::{BlobPath, BlockIndex, TotalBlocks};
use futures::StreamExt;

/// A folder of its own, removed when the test ends (passing or not).
struct TestDir(PathBuf);

impl TestDir {
    fn new() -> Self {
        let dir = std::env::temp_dir().join(format!(
            "filegate-local-fs-{}",
            uuid::Uuid::new_v4().simple()
        ));
        fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    fn root(&self) -> PathBuf {
        self.0.join("blobs")
    }

    fn settings(&self) -> LocalFsSettings {
        LocalFsSettings {
            root: self.root(),
            ..LocalFsSettings::default()
        }
    }

    fn store(&self) -> LocalFsStore {
        LocalFsStore::new(&self.settings()).unwrap()
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn total_of(total: i64) -> TotalBlocks {
    TotalBlocks::new(total).unwrap()
}

fn index(total: i64, i: i64) -> BlockIndex {
    TotalBlocks::new(total).unwrap().index(i).unwrap()
}

async fn stage(
    store: &LocalFsStore,
    path: &BlobPath,
    upload: &str,
    total: i64,
    i: i64,
    data: &'static [u8],
) -> String {
    store
        .stage_block(
            path,
            upload,
            index(total, i),
            total_of(total),
            Bytes::from_static(data).into(),
        )
        .await
        .unwrap()
        .part_id
}

async fn read_all(store: &LocalFsStore, path: &BlobPath) -> Vec<u8> {
    let mut read = store.read(path, None).await.unwrap();
    let mut bytes = Vec::new();
    while let Some(piece) = read.stream.next().await {
        bytes.extend_from_slice(&piece.unwrap());
    }
    bytes
}

/// Every entry of a folder, by name.
fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .map(|entries| {
            entries
                .map(|e| e.unwrap().file_name().into_string().unwrap())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// Hands a case a store on a fresh folder, removed when the case ends.
async fn run<F, Fut>(case: F)
where
    F: FnOnce(LocalFsStore) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let dir = TestDir::new();
    case(dir.store()).await;
}

/// The same, with nothing flushed (`sync_blocks` and `sync_commits` off).
async fn run_unsynced<F, Fut>(case: F)
where
    F: FnOnce(LocalFsStore) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let dir = TestDir::new();
    let settings = LocalFsSettings {
        sync_blocks: false,
        sync_commits: false,
        ..dir.settings()
    };
    case(LocalFsStore::new(&settings).unwrap()).await;
}

filegate_contract_tests::blob_store_suite!(run);
filegate_contract_tests::blob_store_suite!(blob_store_unsynced, run_unsynced);

#[tokio::test]
async fn new_creates_the_root_and_its_staging_folder_and_resolves_it() {
    let dir = TestDir::new();
    let nested = dir.0.join("a").join("b").join("blobs");
    let store = LocalFsStore::new(&LocalFsSettings {
        root: nested.join("..").join("blobs"),
        ..LocalFsSettings::default()
    })
    .unwrap();
    assert_eq!(store.root(), fs::canonicalize(&nested).unwrap());
    assert!(store.root().is_absolute());
    assert!(nested.join(".staging").is_dir());
    // Opening it again is fine.
    LocalFsStore::new(&LocalFsSettings {
        root: nested,
        ..LocalFsSettings::default()
    })
    .unwrap();
}

#[tokio::test]
async fn a_root_that_is_a_file_is_refused() {
    let dir = TestDir::new();
    fs::write(dir.root(), b"not a folder").unwrap();
    let err = LocalFsStore::new(&dir.settings()).unwrap_err();
    assert!(matches!(err, LocalFsError::NotAFolder(_)), "{err:?}");
    assert!(err.to_string().contains("not a folder"), "{err}");
}

#[tokio::test]
async fn there_is_no_shared_url_and_the_location_is_a_file_url() {
    let dir = TestDir::new();
    let store = dir.store();
    let path = blobs::committed(&store, "report 1.pdf", &[Bytes::from_static(b"x")]).await;
    assert_eq!(store.share_url(&path).await.unwrap(), None);
    let location = store.location(&path);
    let expected = format!(
        "file://{}/{}",
        store.root().display(),
        path.as_str().replace(' ', "%20")
    );
    assert_eq!(location, expected);
}

/// Blocks of even size are written in place into one file per upload, which the commit links
/// into place: every byte is written once, whatever order the blocks after block 0 came in.
#[cfg(unix)]
#[tokio::test]
async fn an_evenly_chunked_file_is_written_once() {
    use std::os::unix::fs::MetadataExt;
    let dir = TestDir::new();
    let store = dir.store();
    let path = blobs::fresh_path("even.bin");
    let upload = store.begin(&path).await.unwrap();
    let staging = store.root().join(".staging").join(&upload);
    let blocks: [&'static [u8]; 4] = [b"aaaa", b"bbbb", b"cccc", b"dd"];
    let mut parts = vec![String::new(); 4];
    for i in [0usize, 3, 1, 2] {
        parts[i] = stage(&store, &path, &upload, 4, i as i64, blocks[i]).await;
    }
    assert_eq!(parts, ["r0_4", "r4_4", "r8_4", "r12_2"]);
    assert_eq!(
        names_in(&staging),
        [
            "00000.claim",
            "00001.claim",
            "00002.claim",
            "00003.claim",
            "blocks"
        ]
    );
    let assembly = fs::metadata(staging.join("blocks")).unwrap();
    store.commit(&path, &upload, parts, 14).await.unwrap();
    assert_eq!(read_all(&store, &path).await, b"aaaabbbbccccdd");
    let target = fs::metadata(store.root().join(path.as_str())).unwrap();
    assert_eq!(
        target.ino(),
        assembly.ino(),
        "the file is the assembly file, not a copy"
    );
    assert!(staging.is_dir(), "the staging stays until it is discarded");
    store.discard_staging(&upload).await.unwrap();
    assert!(!staging.exists(), "discarding removes the staging folder");
    assert_eq!(
        fs::metadata(store.root().join(path.as_str()))
            .unwrap()
            .nlink(),
        1,
        "the staging name is gone"
    );
    assert_eq!(read_all(&store, &path).await, b"aaaabbbbccccdd");
}

/// A re-sent index goes to a part of its own and never writes over the place of the block
/// sent first, which may be recorded: either version commits to its own bytes.
#[tokio::test]
async fn a_resent_index_never_overwrites_the_first_one() {
    let dir = TestDir::new();
    let store = dir.store();
    let path = blobs::fresh_path("resent.bin");
    let upload = store.begin(&path).await.unwrap();
    let zero = stage(&store, &path, &upload, 2, 0, b"zero").await;
    let first = stage(&store, &path, &upload, 2, 1, b"one!").await;
    let again = stage(&store, &path, &upload, 2, 1, b"ONE?").await;
    assert_eq!(first, "r4_4");
    assert!(again.starts_with("00001-"), "{again}");
    store
        .commit(&path, &upload, vec![zero.clone(), first], 8)
        .await
        .unwrap();
    assert_eq!(read_all(&store, &path).await, b"zeroone!");
    // The metadata store did not record that commit (a crash): the client re-sent block 1,
    // and the new list commits over it.
    store
        .commit(&path, &upload, vec![zero, again], 8)
        .await
        .unwrap();
    assert_eq!(read_all(&store, &path).await, b"zeroONE?");
}

/// A replaced part of its own is freed on demand; a block in place keeps its bytes (its place
/// is never written again), and discarding either twice is no error.
#[tokio::test]
async fn a_replaced_part_is_freed() {
    let dir = TestDir::new();
    let store = dir.store();
    let path = blobs::fresh_path("freed.bin");
    let upload = store.begin(&path).await.unwrap();
    let staging = store.root().join(".staging").join(&upload);
    stage(&store, &path, &upload, 2, 0, b"zero").await;
    let in_place = stage(&store, &path, &upload, 2, 1, b"one!").await;
    let part = stage(&store, &path, &upload, 2, 1, b"ONE?").await;
    assert!(staging.join(&part).exists());
    for _ in 0..2 {
        store.discard_part(&path, &upload, &part).await.unwrap();
        store.discard_part(&path, &upload, &in_place).await.unwrap();
    }
    assert!(!staging.join(&part).exists(), "the replaced part is gone");
    assert_eq!(
        fs::metadata(staging.join("blocks")).unwrap().len(),
        8,
        "blocks in place stay"
    );
    let err = store.discard_part(&path, &upload, "../escape").await;
    assert!(matches!(err, Err(BlobError::Unknown(_))), "{err:?}");
}

/// A block longer than block 0 (and so than its place) is kept whole as a part of its own.
#[tokio::test]
async fn a_block_longer_than_its_place_becomes_a_part() {
    let dir = TestDir::new();
    let store = dir.store();
    let path = blobs::fresh_path("long.bin");
    let upload = store.begin(&path).await.unwrap();
    let zero = stage(&store, &path, &upload, 2, 0, b"ab").await;
    let body = futures::stream::iter([b"c", b"d", b"e"].map(|p| Ok(Bytes::from_static(p)))).boxed();
    let one = store
        .stage_block(
            &path,
            &upload,
            index(2, 1),
            total_of(2),
            filegate_application::ports::ChunkBody::new(body),
        )
        .await
        .unwrap();
    assert!(one.part_id.starts_with("00001-"), "{one:?}");
    assert_eq!(one.size, 3);
    store
        .commit(&path, &upload, vec![zero, one.part_id], 5)
        .await
        .unwrap();
    assert_eq!(read_all(&store, &path).await, b"abcde");
}

/// Blocks that are not all in place are copied together when the commit is prepared, outside
/// the session's lock; the commit then links that copy into place instead of copying again.
#[tokio::test]
async fn a_prepared_commit_of_uneven_blocks_is_linked_not_copied() {
    use std::os::unix::fs::MetadataExt;
    let dir = TestDir::new();
    let store = dir.store();
    let path = blobs::fresh_path("uneven.bin");
    let upload = store.begin(&path).await.unwrap();
    let staging = store.root().join(".staging").join(&upload);
    let zero = stage(&store, &path, &upload, 3, 0, b"ab").await;
    let one = stage(&store, &path, &upload, 3, 1, b"cde").await;
    let two = stage(&store, &path, &upload, 3, 2, b"f").await;
    let parts = vec![zero, one, two];
    assert!(
        parts[1].starts_with("00001-"),
        "an over-long block: {parts:?}"
    );
    store
        .prepare_commit(&path, &upload, &parts, 6)
        .await
        .unwrap();
    let prepared: Vec<String> = names_in(&staging)
        .into_iter()
        .filter(|n| n.starts_with(".prepared-"))
        .collect();
    assert_eq!(prepared.len(), 1, "{:?}", names_in(&staging));
    let prepared = fs::metadata(staging.join(&prepared[0])).unwrap();
    assert_eq!(prepared.len(), 6);
    // Preparing the same parts again finds the copy made.
    store
        .prepare_commit(&path, &upload, &parts, 6)
        .await
        .unwrap();
    store.commit(&path, &upload, parts, 6).await.unwrap();
    assert_eq!(read_all(&store, &path).await, b"abcdef");
    let target = fs::metadata(store.root().join(path.as_str())).unwrap();
    assert_eq!(
        target.ino(),
        prepared.ino(),
        "the file is the prepared copy"
    );
    store.discard_staging(&upload).await.unwrap();
    assert_eq!(read_all(&store, &path).await, b"abcdef");
}

/// A copy prepared for parts that changed before the commit (a block sent again) is never
/// taken for the file: the commit copies the parts it commits, and a new preparation replaces
/// the stale copy.
#[tokio::test]
async fn a_commit_of_other_parts_than_prepared_copies_its_own() {
    let dir = TestDir::new();
    let store = dir.store();
    let path = blobs::fresh_path("changed.bin");
    let upload = store.begin(&path).await.unwrap();
    let staging = store.root().join(".staging").join(&upload);
    let zero = stage(&store, &path, &upload, 2, 0, b"ab").await;
    let one = stage(&store, &path, &upload, 2, 1, b"cde").await;
    store
        .prepare_commit(&path, &upload, &[zero.clone(), one], 5)
        .await
        .unwrap();
    let again = stage(&store, &path, &upload, 2, 1, b"CDE").await;
    store
        .commit(&path, &upload, vec![zero.clone(), again.clone()], 5)
        .await
        .unwrap();
    assert_eq!(read_all(&store, &path).await, b"abCDE");
    store
        .prepare_commit(&path, &upload, &[zero, again], 5)
        .await
        .unwrap();
    let prepared = names_in(&staging)
        .into_iter()
        .filter(|n| n.starts_with(".prepared-"))
        .count();
    assert_eq!(
        prepared,
        1,
        "the stale copy is gone: {:?}",
        names_in(&staging)
    );
}

/// Parts that do not add up to the size are not prepared, and leave nothing behind.
#[tokio::test]
async fn a_preparation_of_the_wrong_size_keeps_nothing() {
    let dir = TestDir::new();
    let store = dir.store();
    let path = blobs::fresh_path("short.bin");
    let upload = store.begin(&path).await.unwrap();
    let staging = store.root().join(".staging").join(&upload);
    let zero = stage(&store, &path, &upload, 2, 0, b"ab").await;
    let one = stage(&store, &path, &upload, 2, 1, b"cde").await;
    let err = store
        .prepare_commit(&path, &upload, &[zero.clone(), one.clone()], 9)
        .await;
    assert!(err.is_err(), "{err:?}");
    assert!(
        names_in(&staging).iter().all(|n| !n.starts_with('.')),
        "{:?}",
        names_in(&staging)
    );
    store
        .commit(&path, &upload, vec![zero, one], 5)
        .await
        .unwrap();
    assert_eq!(read_all(&store, &path).await, b"abcde");
}

#[tokio::test]
async fn after_a_discard_the_staging_folder_is_gone() {
    let dir = TestDir::new();
    let store = dir.store();
    let path = blobs::fresh_path("done.bin");
    let upload = store.begin(&path).await.unwrap();
    let staging = store.root().join(".staging").join(&upload);
    assert!(
        staging.is_dir(),
        "begin creates the upload's staging folder"
    );
    let parts = vec![
        stage(&store, &path, &upload, 2, 0, b"ab").await,
        stage(&store, &path, &upload, 2, 1, b"cd").await,
    ];
    store.commit(&path, &upload, parts, 4).await.unwrap();
    store.discard_staging(&upload).await.unwrap();
    assert_eq!(
        names_in(&store.root().join(".staging")),
        Vec::<String>::new()
    );
    assert_eq!(read_all(&store, &path).await, b"abcd");
    // Only the file itself is in its folder: no temporary file is left.
    let folder = store
        .root()
        .join(path.as_str())
        .parent()
        .unwrap()
        .to_path_buf();
    let name = path.as_str().rsplit('/').next().unwrap().to_owned();
    assert_eq!(names_in(&folder), vec![name]);
}

#[tokio::test]
async fn a_commit_whose_parts_do_not_add_up_publishes_nothing_and_can_be_retried() {
    let dir = TestDir::new();
    let store = dir.store();
    let path = blobs::fresh_path("short.bin");
    let upload = store.begin(&path).await.unwrap();
    let parts = vec![
        stage(&store, &path, &upload, 2, 0, b"12345").await,
        stage(&store, &path, &upload, 2, 1, b"678").await,
    ];
    for wrong in [7, 9, 0] {
        let err = store
            .commit(&path, &upload, parts.clone(), wrong)
            .await
            .unwrap_err();
        assert!(matches!(err, BlobError::Unknown(_)), "{err:?}");
        assert!(format!("{err:#}").contains("8 bytes"), "{err:#}");
        let err = store.read(&path, None).await.unwrap_err();
        assert!(matches!(err, BlobError::NotFound(_)), "{err:?}");
    }
    let target = store.root().join(path.as_str());
    if let Some(folder) = target.parent().filter(|f| f.exists()) {
        assert_eq!(
            names_in(folder),
            Vec::<String>::new(),
            "no temporary file may be left"
        );
    }
    // The staged parts are still there: the right commit goes through.
    store.commit(&path, &upload, parts, 8).await.unwrap();
    assert_eq!(read_all(&store, &path).await, b"12345678");
}

#[tokio::test]
async fn a_commit_interrupted_before_its_rename_is_never_visible() {
    let dir = TestDir::new();
    let store = dir.store();
    let path = blobs::fresh_path("crashed.bin");
    let target = store.root().join(path.as_str());
    let folder = target.parent().unwrap();
    // What a crash in the middle of a commit leaves: a partial hidden file next to the final
    // location, and the staging folder.
    fs::create_dir_all(folder).unwrap();
    let leftover = folder.join(".filegate-commit-0123456789abcdef0123456789abcdef.tmp");
    fs::write(&leftover, b"partial").unwrap();

    let err = store.read(&path, None).await.unwrap_err();
    assert!(matches!(err, BlobError::NotFound(_)), "{err:?}");
    let leftover_as_blob = BlobPath::from_stored(format!(
        "{}/.filegate-commit-0123456789abcdef0123456789abcdef.tmp",
        path.as_str().rsplit_once('/').unwrap().0
    ));
    let err = store.read(&leftover_as_blob, None).await.unwrap_err();
    assert!(
        matches!(err, BlobError::Unknown(_)),
        "a hidden file is no blob: {err:?}"
    );

    // The retried upload commits normally, beside the leftover.
    let upload = store.begin(&path).await.unwrap();
    // A block write interrupted before its rename leaves a hidden file in the staging folder.
    fs::write(
        store
            .root()
            .join(".staging")
            .join(&upload)
            .join(".00000-dead.tmp"),
        b"half a block",
    )
    .unwrap();
    let parts = vec![
        stage(&store, &path, &upload, 2, 0, b"whole ").await,
        stage(&store, &path, &upload, 2, 1, b"file").await,
    ];
    store.commit(&path, &upload, parts, 10).await.unwrap();
    assert_eq!(read_all(&store, &path).await, b"whole file");
}

#[tokio::test]
async fn concurrent_blocks_are_committed_in_index_order() {
    let dir = TestDir::new();
    let store = dir.store();
    let path = blobs::fresh_path("parallel.bin");
    let upload = store.begin(&path).await.unwrap();
    let total = 24i64;
    let tasks: Vec<_> = (0..total)
        .map(|i| {
            let (store, path, upload) = (store.clone(), path.clone(), upload.clone());
            tokio::spawn(async move {
                let data = Bytes::from(vec![i as u8; 1000 + i as usize]);
                store
                    .stage_block(
                        &path,
                        &upload,
                        index(total, i),
                        total_of(total),
                        data.into(),
                    )
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut parts = Vec::new();
    for task in tasks {
        parts.push(task.await.unwrap().part_id);
    }
    let size: u64 = (0..total).map(|i| 1000 + i as u64).sum();
    store.commit(&path, &upload, parts, size).await.unwrap();
    let expected: Vec<u8> = (0..total)
        .flat_map(|i| std::iter::repeat_n(i as u8, 1000 + i as usize))
        .collect();
    assert!(read_all(&store, &path).await == expected);
}

#[tokio::test]
async fn ranges_behave_as_on_azure() {
    let dir = TestDir::new();
    let store = dir.store();
    let path = blobs::committed(&store, "ranges.bin", &[Bytes::from_static(b"0123456789")]).await;
    let read = |range: std::ops::Range<u64>| {
        let (store, path) = (store.clone(), path.clone());
        async move {
            let mut read = store.read(&path, Some(range)).await?;
            let mut bytes = Vec::new();
            while let Some(piece) = read.stream.next().await {
                bytes.extend_from_slice(&piece?);
            }
            Ok::<_, BlobError>((read.size, read.range, bytes))
        }
    };
    // An end past the end is cut to it.
    assert_eq!(read(7..100).await.unwrap(), (10, 7..10, b"789".to_vec()));
    // Empty ranges answer no bytes, at the start or at the end when the start is past it.
    assert_eq!(read(4..4).await.unwrap(), (10, 4..4, Vec::new()));
    #[allow(clippy::reversed_empty_ranges)] // reversed on purpose: an empty range
    let reversed = 6..2;
    assert_eq!(read(reversed).await.unwrap(), (10, 6..6, Vec::new()));
    assert_eq!(read(50..50).await.unwrap(), (10, 10..10, Vec::new()));
    // A range starting at or past the end is refused (Azure answers 416).
    for range in [10..11, 12..20] {
        let err = read(range.clone()).await.unwrap_err();
        assert!(matches!(err, BlobError::Unknown(_)), "{range:?}: {err:?}");
    }

    // An empty file reads as nothing.
    let empty = blobs::fresh_path("empty.bin");
    let upload = store.begin(&empty).await.unwrap();
    let part = stage(&store, &empty, &upload, 1, 0, b"").await;
    store.commit(&empty, &upload, vec![part], 0).await.unwrap();
    let read = store.read(&empty, None).await.unwrap();
    assert_eq!((read.size, read.range.clone()), (0, 0..0));
    assert_eq!(read.stream.count().await, 0);
}

/// A read of several pieces gives every byte once, from the range's start, whole or in part;
/// a file cut short while it is read ends the stream with an error, never quietly.
#[tokio::test]
async fn reads_span_pieces_and_a_file_cut_short_is_an_error() {
    let dir = TestDir::new();
    let store = dir.store();
    // Over three pieces of 128 KiB, bytes that tell their offset.
    let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let path = blobs::committed(&store, "pieces.bin", &[Bytes::from(data.clone())]).await;
    assert!(read_all(&store, &path).await == data);
    let mut read = store.read(&path, Some(100_000..290_001)).await.unwrap();
    let mut bytes = Vec::new();
    while let Some(piece) = read.stream.next().await {
        bytes.extend_from_slice(&piece.unwrap());
    }
    assert!(
        bytes == data[100_000..290_001],
        "the range's bytes, in order"
    );

    let mut read = store.read(&path, None).await.unwrap();
    let first = read.stream.next().await.unwrap().unwrap();
    assert_eq!(&first[..], &data[..first.len()]);
    let file = fs::OpenOptions::new()
        .write(true)
        .open(store.root().join(path.as_str()))
        .unwrap();
    file.set_len(first.len() as u64 + 10).unwrap();
    let mut rest = Vec::new();
    while let Some(piece) = read.stream.next().await {
        rest.push(piece);
    }
    let Some(Err(BlobError::Unknown(e))) = rest.pop() else {
        panic!("the stream must end with an error: {rest:?}");
    };
    assert!(rest.is_empty(), "nothing before the error: {rest:?}");
    assert!(
        e.to_string()
            .contains(&format!("ended after {} of 300000 bytes", first.len() + 10)),
        "{e}"
    );
}

#[tokio::test]
async fn a_folder_is_not_a_blob() {
    let dir = TestDir::new();
    let store = dir.store();
    let path = blobs::committed(&store, "inside.bin", &[Bytes::from_static(b"x")]).await;
    let folder = BlobPath::from_stored(path.as_str().rsplit_once('/').unwrap().0.to_owned());
    let err = store.read(&folder, None).await.unwrap_err();
    assert!(matches!(err, BlobError::NotFound(_)), "{err:?}");
    store.delete(&folder).await.unwrap();
    // A path through a file is not found either.
    let through = BlobPath::from_stored(format!("{path}/deeper"));
    let err = store.read(&through, None).await.unwrap_err();
    assert!(matches!(err, BlobError::NotFound(_)), "{err:?}");
    assert_eq!(read_all(&store, &path).await, b"x");
}

#[tokio::test]
async fn paths_and_ids_that_lead_out_of_the_root_are_refused() {
    let dir = TestDir::new();
    let store = dir.store();
    // A file right beside the root, and a staged part inside its staging area.
    let outside = dir.0.join("outside");
    fs::write(&outside, b"precious").unwrap();
    let path = blobs::fresh_path("ok.bin");
    let upload = store.begin(&path).await.unwrap();
    let part = stage(&store, &path, &upload, 1, 0, b"staged").await;

    let escapes = [
        "../outside".to_owned(),
        "a/../../outside".to_owned(),
        format!("{}/outside", dir.0.display()),
        format!(".staging/{upload}/{part}"),
        "a/./b".to_owned(),
        "a//b".to_owned(),
        "a\\..\\..\\outside".to_owned(),
        "a/b\0".to_owned(),
        String::new(),
    ];
    for text in escapes {
        let bad = BlobPath::from_stored(text.clone());
        let refused = |r: Result<(), BlobError>| {
            assert!(matches!(r, Err(BlobError::Unknown(_))), "{text:?}: {r:?}");
        };
        refused(store.read(&bad, None).await.map(|_| ()));
        refused(store.delete(&bad).await);
        refused(store.begin(&bad).await.map(|_| ()));
        refused(
            store
                .stage_block(
                    &bad,
                    &upload,
                    index(1, 0),
                    total_of(1),
                    Bytes::from_static(b"evil").into(),
                )
                .await
                .map(|_| ()),
        );
        refused(store.commit(&bad, &upload, vec![part.clone()], 6).await);
    }
    let err = store
        .read(&BlobPath::from_stored("../outside".into()), None)
        .await
        .unwrap_err();
    assert!(
        format!("{err:#}").contains("refusing the blob path"),
        "{err:#}"
    );

    // Upload and part ids must be plain names too.
    for bad_upload in [
        "../..",
        "..",
        "",
        "a/b",
        ".staging",
        &format!("{upload}/.."),
    ] {
        let r = store
            .stage_block(
                &path,
                bad_upload,
                index(1, 0),
                total_of(1),
                Bytes::from_static(b"evil").into(),
            )
            .await;
        assert!(
            matches!(r, Err(BlobError::Unknown(_))),
            "{bad_upload:?}: {r:?}"
        );
        let r = store.commit(&path, bad_upload, vec![part.clone()], 6).await;
        assert!(
            matches!(r, Err(BlobError::Unknown(_))),
            "{bad_upload:?}: {r:?}"
        );
    }
    for bad_part in ["../../../outside", "..", "", ".00000-x.tmp", "a/b"] {
        let r = store
            .commit(&path, &upload, vec![bad_part.to_owned()], 8)
            .await;
        assert!(
            matches!(r, Err(BlobError::Unknown(_))),
            "{bad_part:?}: {r:?}"
        );
    }
    let err = store.read(&path, None).await.unwrap_err();
    assert!(
        matches!(err, BlobError::NotFound(_)),
        "nothing was committed: {err:?}"
    );

    assert_eq!(fs::read(&outside).unwrap(), b"precious");
    assert_eq!(
        names_in(&dir.0),
        vec!["blobs".to_owned(), "outside".to_owned()]
    );
    // The upload is untouched and still commits.
    store.commit(&path, &upload, vec![part], 6).await.unwrap();
    assert_eq!(read_all(&store, &path).await, b"staged");
}

#[tokio::test]
async fn a_missing_root_is_container_missing_and_is_not_recreated() {
    let dir = TestDir::new();
    let store = dir.store();
    let path = blobs::fresh_path("late.bin");
    let upload = store.begin(&path).await.unwrap();
    let part = stage(&store, &path, &upload, 1, 0, b"late").await;
    fs::remove_dir_all(dir.root()).unwrap();

    match store.ping().await {
        Err(BlobError::ContainerMissing(message)) => {
            assert!(
                message.contains(&store.root().display().to_string()),
                "{message}"
            );
            assert!(message.contains("restart"), "{message}");
        }
        other => panic!("expected ContainerMissing, got {other:?}"),
    }
    let missing = |r: Result<(), BlobError>, what: &str| {
        assert!(
            matches!(r, Err(BlobError::ContainerMissing(_))),
            "{what}: {r:?}"
        );
    };
    missing(store.begin(&path).await.map(|_| ()), "begin");
    missing(
        store
            .stage_block(
                &path,
                &upload,
                index(1, 0),
                total_of(1),
                Bytes::from_static(b"x").into(),
            )
            .await
            .map(|_| ()),
        "stage_block",
    );
    missing(store.commit(&path, &upload, vec![part], 4).await, "commit");
    missing(store.read(&path, None).await.map(|_| ()), "read");
    missing(store.delete(&path).await, "delete");
    assert!(
        !dir.root().exists(),
        "a missing root must not be recreated behind the operator's back"
    );

    // Once the folder is back, so is the store (the staging area is made again).
    fs::create_dir(dir.root()).unwrap();
    store.ping().await.unwrap();
    blobs::committed(&store, "back.bin", &[Bytes::from_static(b"back")]).await;
}

#[tokio::test]
async fn a_lost_staging_folder_is_made_again() {
    let dir = TestDir::new();
    let store = dir.store();
    fs::remove_dir_all(dir.root().join(".staging")).unwrap();
    store.ping().await.unwrap();
    fs::remove_dir_all(dir.root().join(".staging")).unwrap();
    let path = blobs::committed(&store, "again.bin", &[Bytes::from_static(b"again")]).await;
    assert_eq!(read_all(&store, &path).await, b"again");
}

#[tokio::test]
async fn staging_into_an_unknown_upload_is_not_found() {
    let dir = TestDir::new();
    let store = dir.store();
    let path = blobs::fresh_path("nobody.bin");
    let r = store
        .stage_block(
            &path,
            "0123456789abcdef0123456789abcdef",
            index(1, 0),
            total_of(1),
            Bytes::from_static(b"x").into(),
        )
        .await;
    assert!(matches!(r, Err(BlobError::NotFound(_))), "{r:?}");
}

/// What a process killed mid-write leaves (a commit's hidden temporary file next to its final
/// path, a block's temporary file in staging) is removed once it is old; a fresh one (a write in
/// progress), the committed files and the staged parts stay.
#[tokio::test]
async fn leftovers_of_a_crash_are_removed_once_they_are_old() {
    use std::time::{Duration, SystemTime};
    let dir = TestDir::new();
    let store = dir.store();
    let path = blobs::committed(&store, "kept.pdf", &[Bytes::from_static(b"kept")]).await;
    let folder = store.root().join(path.as_str());
    let folder = folder.parent().unwrap();
    let staged = blobs::fresh_path("open.bin");
    let upload = store.begin(&staged).await.unwrap();
    stage(&store, &staged, &upload, 2, 0, b"part").await;
    let staging = store.root().join(".staging").join(&upload);

    let old = SystemTime::now() - Duration::from_secs(3600);
    let make = |path: PathBuf, aged: bool| {
        let file = fs::File::create(&path).unwrap();
        if aged {
            file.set_modified(old).unwrap();
        }
        path
    };
    let stale_commit = make(folder.join(".filegate-commit-0123abcd.tmp"), true);
    let stale_block = make(staging.join(".00001-0123abcd.tmp"), true);
    let fresh_commit = make(folder.join(".filegate-commit-4567cdef.tmp"), false);

    let removed = store.remove_leftovers(Duration::from_secs(600)).unwrap();
    assert_eq!(removed, 2);
    assert!(!stale_commit.exists() && !stale_block.exists());
    assert!(fresh_commit.exists(), "a write in progress is left alone");
    assert!(staging.join("blocks").exists(), "staged blocks stay");
    assert_eq!(read_all(&store, &path).await, b"kept");
}

/// The sweep's candidates: upload folders whose folder and assembly file are both older than
/// the threshold; a fresh upload, or one whose assembly file is still being written, is not.
#[tokio::test]
async fn stale_staging_lists_only_uploads_left_alone_long_enough() {
    use std::time::{Duration, SystemTime};
    let dir = TestDir::new();
    let store = dir.store();
    let path = blobs::fresh_path("stale.bin");
    let staging = store.root().join(".staging");
    let old = SystemTime::now() - Duration::from_secs(7200);
    let age = |p: &Path| {
        fs::File::open(p).unwrap().set_modified(old).unwrap();
    };
    let stale = store.begin(&path).await.unwrap();
    stage(&store, &path, &stale, 2, 0, b"old").await;
    age(&staging.join(&stale).join("blocks"));
    age(&staging.join(&stale));
    let written = store.begin(&path).await.unwrap();
    stage(&store, &path, &written, 2, 0, b"new").await;
    age(&staging.join(&written));
    let fresh = store.begin(&path).await.unwrap();
    let listed = store
        .stale_staging(Duration::from_secs(3600))
        .await
        .unwrap();
    assert_eq!(listed, vec![stale.clone()], "only the upload left alone");
    assert!(!listed.contains(&fresh), "a fresh upload is not stale");
    store.discard_staging(&stale).await.unwrap();
    assert!(
        store
            .stale_staging(Duration::from_secs(3600))
            .await
            .unwrap()
            .is_empty()
    );
}
