//! Checksums computed as the bytes pass: the SHA-256 a client declares for a chunk
//! (`ChunkSha256`), checked before the block is recorded, and the SHA-256 of a whole file,
//! kept running while its blocks arrive in order, so that a file uploaded in order never has to
//! be read back for its checksum.
//!
//! The running digests live in this process. A block that arrives out of order, again, or
//! while another block of the same upload is being hashed ends the upload's running digest (or
//! leaves it behind, to be ended by the next block); such a file is hashed after its commit
//! instead. What a digest covered is pinned by the ids of the parts it hashed, and the commit
//! takes it only when they are exactly the parts it commits: a block re-sent to another
//! server, which this process never sees, can then never leave a wrong checksum.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use filegate_domain::{FileId, Sha256Digest};
use futures::{SinkExt, StreamExt};
use sha2::{Digest, Sha256};

use crate::ports::ChunkBody;

/// How many uploads may have a running digest at once: each holds a few hundred bytes, and an
/// upload past this many is simply hashed after its commit.
const MAX_RUNNING: usize = 10_000;

/// The running digests of this process's uploads. Cloning shares them.
#[derive(Debug, Clone, Default)]
pub(crate) struct RunningDigests(Arc<Mutex<HashMap<FileId, Slot>>>);

#[derive(Debug)]
enum Slot {
    /// The digest of blocks `0..next`, ready for block `next`.
    Ready(Box<Running>),
    /// A block is being hashed into it.
    Busy,
}

/// The digest of an upload's first blocks, in order: their bytes, and their part ids.
#[derive(Debug, Clone)]
pub(crate) struct Running {
    /// The index of the next block it takes.
    next: u32,
    bytes: Sha256,
    parts: Sha256,
}

/// A file's digest as the last block left it, with the parts it covered.
#[derive(Debug, Clone)]
pub(crate) struct Candidate {
    pub(crate) digest: Sha256Digest,
    parts: [u8; 32],
}

impl Candidate {
    /// Whether the digest covered exactly these parts, in this order.
    pub(crate) fn covers(&self, part_ids: &[String]) -> bool {
        let mut parts = Sha256::new();
        for id in part_ids {
            add_part(&mut parts, id);
        }
        <[u8; 32]>::from(parts.finalize()) == self.parts
    }
}

fn add_part(parts: &mut Sha256, part_id: &str) {
    parts.update((part_id.len() as u64).to_le_bytes());
    parts.update(part_id.as_bytes());
}

impl Running {
    fn fresh() -> Self {
        Self {
            next: 0,
            bytes: Sha256::new(),
            parts: Sha256::new(),
        }
    }

    /// Counts the block just hashed as staged under `part_id`.
    pub(crate) fn staged_as(&mut self, part_id: &str) {
        add_part(&mut self.parts, part_id);
        self.next += 1;
    }

    /// The file's digest, when the blocks hashed are all `total` of them.
    pub(crate) fn candidate(&self, total: u32) -> Option<Candidate> {
        (self.next == total).then(|| Candidate {
            digest: Sha256Digest::from_bytes(self.bytes.clone().finalize().into()),
            parts: self.parts.clone().finalize().into(),
        })
    }
}

impl RunningDigests {
    fn lock(&self) -> MutexGuard<'_, HashMap<FileId, Slot>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A new digest for a new upload's first block, unless too many are running.
    pub(crate) fn start(&self, file: FileId) -> Option<Running> {
        let mut slots = self.lock();
        if slots.len() >= MAX_RUNNING {
            return None;
        }
        slots.insert(file, Slot::Busy);
        Some(Running::fresh())
    }

    /// The upload's digest if `index` is the block it waits for; a block out of order (or sent
    /// again) ends it.
    pub(crate) fn resume(&self, file: FileId, index: u32) -> Option<Running> {
        let mut slots = self.lock();
        match slots.remove(&file) {
            Some(Slot::Ready(running)) if running.next == index => {
                slots.insert(file, Slot::Busy);
                Some(*running)
            }
            // Left busy: the block being hashed finds out from the next block's index.
            Some(Slot::Busy) => {
                slots.insert(file, Slot::Busy);
                None
            }
            Some(Slot::Ready(_)) | None => None,
        }
    }

    /// Puts the digest back for the upload's next block, once its block is recorded.
    pub(crate) fn carry_on(&self, file: FileId, running: Running) {
        let mut slots = self.lock();
        if let Some(slot @ Slot::Busy) = slots.get_mut(&file) {
            *slot = Slot::Ready(Box::new(running));
        }
    }

    /// Ends the upload's digest: it is committed, failed a block, expired or was deleted.
    pub(crate) fn forget(&self, file: FileId) {
        self.lock().remove(&file);
    }

    /// How many uploads have a digest running (or being fed).
    #[cfg(test)]
    pub(crate) fn running(&self) -> usize {
        self.lock().len()
    }
}

/// What the tap saw of a chunk's bytes.
#[derive(Debug, Default)]
pub(crate) struct Tapped {
    /// The chunk's own digest, when one was asked for.
    pub(crate) chunk: Option<Sha256Digest>,
    /// The file's running digest, with the chunk's bytes added.
    pub(crate) file: Option<Running>,
}

/// The hashers a body feeds as it passes.
#[derive(Debug, Default)]
pub(crate) struct Hashers {
    chunk: Option<Sha256>,
    file: Option<Running>,
}

impl Hashers {
    fn feed(&mut self, bytes: &[u8]) {
        if let Some(chunk) = &mut self.chunk {
            chunk.update(bytes);
        }
        if let Some(file) = &mut self.file {
            file.bytes.update(bytes);
        }
    }

    fn finish(self) -> Tapped {
        Tapped {
            chunk: self
                .chunk
                .map(|h| Sha256Digest::from_bytes(h.finalize().into())),
            file: self.file,
        }
    }
}

/// Where a body's bytes are hashed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Hashing {
    /// In the request's own task, piece by piece: for a file of one chunk, mostly small,
    /// where a thread would cost more than the hashing.
    Inline,
    /// On a thread of its own, fed the pieces (shared, not copied) through a short queue:
    /// hashing a large chunk then overlaps with receiving and writing it instead of adding to
    /// it, which on the in-order path costs about a third of the throughput otherwise.
    Offloaded,
}

/// How many batches may wait for the hashing thread before the body waits for it.
const BATCHES_AHEAD: usize = 8;
/// The bytes handed to the hashing thread at a time: pieces arrive in 16 to 64 KiB, and
/// waking a thread for each would cost more than hashing it. The batch holds the pieces
/// themselves (shared, not copied).
const BATCH_BYTES: usize = 1024 * 1024;

/// A tap on a chunk's bytes, read once the store has taken them all.
#[derive(Debug)]
pub(crate) enum Tap {
    Idle,
    Inline(Arc<Mutex<Hashers>>),
    Offloaded(futures::channel::oneshot::Receiver<Hashers>),
}

impl Tap {
    /// What the body fed it: to read after the store answered, when every byte has passed.
    pub(crate) async fn take(self) -> Tapped {
        match self {
            Tap::Idle => Tapped::default(),
            Tap::Inline(hashers) => {
                let mut hashers = hashers.lock().unwrap_or_else(|p| p.into_inner());
                std::mem::take(&mut *hashers).finish()
            }
            // Canceled only if the thread died: nothing is known then.
            Tap::Offloaded(done) => done.await.map(Hashers::finish).unwrap_or_default(),
        }
    }
}

/// The body, feeding its bytes to a chunk digest (when `chunk` is set) and to the file's
/// running digest (when there is one) as they pass. Without either it is the body as it was.
pub(crate) fn tap(
    body: ChunkBody,
    chunk: bool,
    file: Option<Running>,
    how: Hashing,
) -> (ChunkBody, Tap) {
    let hashers = Hashers {
        chunk: chunk.then(Sha256::new),
        file,
    };
    if hashers.chunk.is_none() && hashers.file.is_none() {
        return (body, Tap::Idle);
    }
    match how {
        Hashing::Inline => inline(body, hashers),
        Hashing::Offloaded => offloaded(body, hashers),
    }
}

/// [`tap`] with the hashing in the body's own stream.
fn inline(body: ChunkBody, hashers: Hashers) -> (ChunkBody, Tap) {
    let shared = Arc::new(Mutex::new(hashers));
    let feed = Arc::clone(&shared);
    let body = body.map_stream(move |stream| {
        stream
            .map(move |piece| {
                if let Ok(bytes) = &piece {
                    feed.lock().unwrap_or_else(|p| p.into_inner()).feed(bytes);
                }
                piece
            })
            .boxed()
    });
    (body, Tap::Inline(shared))
}

/// The body's side of an offloaded tap: the pieces not yet handed over.
struct Feeder {
    stream: futures::stream::BoxStream<'static, Result<Bytes, crate::ports::BodyError>>,
    batches: futures::channel::mpsc::Sender<Vec<Bytes>>,
    batch: Vec<Bytes>,
    batched: usize,
}

impl Feeder {
    async fn flush(&mut self) {
        if self.batch.is_empty() {
            return;
        }
        self.batched = 0;
        // A closed queue means the thread is gone; the digests are then unknown.
        let _ = self.batches.send(std::mem::take(&mut self.batch)).await;
    }
}

/// [`tap`] with the hashing on a thread of its own; inline if no thread can be had.
fn offloaded(body: ChunkBody, hashers: Hashers) -> (ChunkBody, Tap) {
    let (batches, mut queue) = futures::channel::mpsc::channel::<Vec<Bytes>>(BATCHES_AHEAD);
    let (done, finished) = futures::channel::oneshot::channel();
    let handed = Arc::new(Mutex::new(Some(hashers)));
    let thread_hashers = Arc::clone(&handed);
    let spawned = std::thread::Builder::new()
        .name("filegate-hash".into())
        .stack_size(256 * 1024)
        .spawn(move || {
            let taken = thread_hashers
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .take();
            let Some(mut hashers) = taken else { return };
            while let Some(batch) = futures::executor::block_on(queue.next()) {
                for piece in batch {
                    hashers.feed(&piece);
                }
            }
            // The tap was dropped (a failed block): nobody wants the digests.
            let _ = done.send(hashers);
        });
    if spawned.is_err() {
        let hashers = handed.lock().unwrap_or_else(|p| p.into_inner()).take();
        return match hashers {
            Some(hashers) => inline(body, hashers),
            None => (body, Tap::Idle),
        };
    }
    // The queue's one sender lives in the stream's state and goes with it when the body
    // ends, which lets the thread finish; the last batch goes before the end is passed on.
    let body = body.map_stream(move |stream| {
        let state = Feeder {
            stream,
            batches,
            batch: Vec::new(),
            batched: 0,
        };
        futures::stream::unfold(state, |mut state| async move {
            let piece = state.stream.next().await;
            match &piece {
                Some(Ok(bytes)) => {
                    state.batched += bytes.len();
                    state.batch.push(bytes.clone());
                    if state.batched >= BATCH_BYTES {
                        state.flush().await;
                    }
                }
                Some(Err(_)) => {}
                None => {
                    state.flush().await;
                    return None;
                }
            }
            Some((piece?, state))
        })
        .boxed()
    });
    (body, Tap::Offloaded(finished))
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    fn sha(data: &[u8]) -> Sha256Digest {
        Sha256Digest::from_bytes(Sha256::digest(data).into())
    }

    /// Block 0 hashed inline, block 1 on a thread: both give the same digest.
    fn how(index: usize) -> Hashing {
        if index == 0 {
            Hashing::Inline
        } else {
            Hashing::Offloaded
        }
    }

    async fn drain(mut body: ChunkBody) {
        while let Some(piece) = body.next().await {
            piece.unwrap();
        }
    }

    /// Blocks hashed in order give the file's digest, pinned to their parts; any other list
    /// of parts is refused.
    #[tokio::test]
    async fn blocks_in_order_give_the_files_digest_for_exactly_their_parts() {
        let digests = RunningDigests::default();
        let file = FileId::from_uuid(Uuid::from_u128(1));
        let mut running = digests.start(file).unwrap();
        for (index, data) in [&b"hello "[..], b"world"].into_iter().enumerate() {
            if index > 0 {
                running = digests.resume(file, index as u32).unwrap();
            }
            let (body, tap) = tap(
                Bytes::from_static(data).into(),
                true,
                Some(running),
                how(index),
            );
            drain(body).await;
            let tapped = tap.take().await;
            assert_eq!(tapped.chunk, Some(sha(data)));
            running = tapped.file.unwrap();
            running.staged_as(&format!("part{index}"));
            if index == 0 {
                assert!(running.candidate(2).is_none(), "one block of two");
                digests.carry_on(file, running.clone());
            }
        }
        let candidate = running.candidate(2).unwrap();
        assert_eq!(candidate.digest, sha(b"hello world"));
        assert!(candidate.covers(&["part0".into(), "part1".into()]));
        assert!(!candidate.covers(&["part0".into(), "other".into()]));
        assert!(!candidate.covers(&["part1".into(), "part0".into()]));
        assert!(!candidate.covers(&["part0part1".into()]));
    }

    /// A block out of order or sent again ends the digest; a block arriving while another is
    /// hashed gets none, and the next block after both ends it.
    #[tokio::test]
    async fn a_block_out_of_order_ends_the_running_digest() {
        let digests = RunningDigests::default();
        let file = FileId::from_uuid(Uuid::from_u128(2));
        let mut running = digests.start(file).unwrap();
        assert!(digests.resume(file, 1).is_none(), "block 0 is still busy");
        running.staged_as("p0");
        digests.carry_on(file, running);
        // Block 1 went by unhashed (the parallel one); block 2 finds the digest at 1.
        assert!(digests.resume(file, 2).is_none());
        assert_eq!(digests.running(), 0, "ended");

        let again = FileId::from_uuid(Uuid::from_u128(3));
        let mut running = digests.start(again).unwrap();
        running.staged_as("p0");
        digests.carry_on(again, running);
        assert!(digests.resume(again, 0).is_none(), "block 0 again ends it");
        assert!(digests.resume(again, 1).is_none());

        let failed = FileId::from_uuid(Uuid::from_u128(4));
        digests.start(failed).unwrap();
        digests.forget(failed);
        assert_eq!(digests.running(), 0);
    }

    #[tokio::test]
    async fn an_idle_tap_leaves_the_body_alone() {
        let (body, tap) = tap(
            Bytes::from_static(b"x").into(),
            false,
            None,
            Hashing::Offloaded,
        );
        assert!(matches!(tap, Tap::Idle), "nothing to hash: no thread");
        drain(body).await;
        let tapped = tap.take().await;
        assert!(tapped.chunk.is_none() && tapped.file.is_none());
    }
}
