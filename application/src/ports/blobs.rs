//! The blob store port: block staging and committed blobs.

use std::future::Future;
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use filegate_domain::{BlobPath, BlockIndex, TotalBlocks};
use futures::stream::BoxStream;

use futures::StreamExt;

use super::{BlobError, StagedPart};

/// Why a chunk's bytes stopped arriving, as the driving adapter saw it. The blob store passes
/// it on untouched ([`BlobError::Body`]), so that the client learns what it did.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    /// More bytes than a limit allows (the chunk limit, the mode's size cap).
    #[error("{0}")]
    TooLarge(String),
    /// The body broke a rule of the form (malformed framing, an empty chunk, a field after the
    /// file).
    #[error("{0}")]
    Invalid(String),
    /// No byte arrived for longer than the idle timeout.
    #[error("no byte of the request body arrived for {0} seconds")]
    Stalled(u64),
    /// The connection broke before the body was complete.
    #[error("the request body was cut off: {0}")]
    Broken(String),
    /// Holding these bytes would pass the server's budget of request bytes held in memory
    /// across all requests: the same request may succeed shortly.
    #[error("the server holds as many request bytes as it may; retry shortly")]
    OverBudget,
}

/// The bytes of request bodies held in memory at once, across all requests: a body that must
/// be buffered (a File sent before its fields, a store that takes a block as one payload)
/// reserves its bytes here, and is refused ([`BodyError::OverBudget`]) rather than let memory
/// grow with the load. Cloning shares the budget.
#[derive(Debug, Clone)]
pub struct ByteBudget(Arc<BudgetState>);

#[derive(Debug)]
struct BudgetState {
    limit: u64,
    held: AtomicU64,
}

impl ByteBudget {
    pub fn new(limit: u64) -> Self {
        Self(Arc::new(BudgetState {
            limit,
            held: AtomicU64::new(0),
        }))
    }

    /// No limit: for tests and tools that buffer nothing of strangers.
    pub fn unlimited() -> Self {
        Self::new(u64::MAX)
    }

    /// Bytes held now.
    pub fn held(&self) -> u64 {
        self.0.held.load(Ordering::Acquire)
    }

    /// An empty reservation, to grow as bytes arrive.
    pub fn reservation(&self) -> Reservation {
        Reservation {
            budget: self.clone(),
            held: 0,
        }
    }
}

/// Bytes held against a [`ByteBudget`], given back when dropped.
#[derive(Debug)]
pub struct Reservation {
    budget: ByteBudget,
    held: u64,
}

impl Reservation {
    /// Holds `n` more bytes, or answers [`BodyError::OverBudget`] and holds nothing more.
    pub fn grow(&mut self, n: u64) -> Result<(), BodyError> {
        let state = &self.budget.0;
        state
            .held
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |held| {
                held.checked_add(n).filter(|&total| total <= state.limit)
            })
            .map_err(|_| BodyError::OverBudget)?;
        self.held += n;
        Ok(())
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.budget.0.held.fetch_sub(self.held, Ordering::AcqRel);
    }
}

/// A chunk's bytes as they arrive from the client. A store reads it as it stages, so that a
/// request holds a bounded buffer rather than the whole chunk; a store that must hold the whole
/// block ([`ChunkBody::collect`]) holds it against the body's [`ByteBudget`].
pub struct ChunkBody {
    stream: BoxStream<'static, Result<Bytes, BodyError>>,
    budget: ByteBudget,
    expected_len: Option<u64>,
}

impl ChunkBody {
    pub fn new(stream: BoxStream<'static, Result<Bytes, BodyError>>) -> Self {
        Self {
            stream,
            budget: ByteBudget::unlimited(),
            expected_len: None,
        }
    }

    /// How long the body will be if the request ends as clients write it, when that can be told
    /// before the body arrives (a form's Content-Length, the File part last). A hint, never a
    /// promise: a store may start a request of that length before the bytes are all here (Put
    /// Block needs its Content-Length first), but must still take the body as it turns out.
    pub fn expected_len(&self) -> Option<u64> {
        self.expected_len
    }

    /// The body with a hint of its length (see [`ChunkBody::expected_len`]).
    pub fn with_expected_len(mut self, len: Option<u64>) -> Self {
        self.expected_len = len;
        self
    }

    /// The budget this body's buffered bytes are held against, for a store that buffers it in
    /// blocks of its own.
    pub fn budget(&self) -> &ByteBudget {
        &self.budget
    }

    /// The budget that buffering this body is held against.
    pub fn with_budget(mut self, budget: ByteBudget) -> Self {
        self.budget = budget;
        self
    }

    /// A body already in memory, held against a budget until the body is dropped.
    pub fn buffered(data: Bytes, held: Reservation) -> Self {
        let budget = held.budget.clone();
        let len = data.len() as u64;
        let stream = futures::stream::iter([Ok(data)]).map(move |piece| {
            // The reservation lives as long as the stream that holds the bytes.
            let _ = &held;
            piece
        });
        Self {
            stream: stream.boxed(),
            budget,
            expected_len: Some(len),
        }
    }

    /// The next piece; `None` once the body is complete.
    pub async fn next(&mut self) -> Option<Result<Bytes, BodyError>> {
        self.stream.next().await
    }

    /// The body with `first` put back in front of what is left of it, keeping the budget: for a
    /// store that read a piece before deciding where the block goes.
    pub fn prepend(self, first: Bytes) -> Self {
        self.map_stream(|rest| {
            futures::stream::once(async move { Ok(first) })
                .chain(rest)
                .boxed()
        })
    }

    /// The body's first `n` bytes (all of it when shorter), read ahead and put back in front:
    /// for a rule decided from a file's first bytes before any of them is stored. At most `n`
    /// bytes and one piece are held while reading ahead.
    pub async fn peek(mut self, n: usize) -> Result<(Bytes, Self), BodyError> {
        let mut pieces = Vec::new();
        let mut len = 0usize;
        let mut ended = false;
        // The read-ahead window is held against the budget until the body (which replays it)
        // is dropped. The piece that crosses the window is not counted past it: any streamed
        // request holds one piece in flight, and counting it would refuse what streams.
        let mut held = self.budget.reservation();
        while len < n {
            match self.next().await {
                Some(piece) => {
                    let piece = piece?;
                    held.grow(piece.len().min(n - len) as u64)?;
                    len += piece.len();
                    pieces.push(piece);
                }
                None => {
                    ended = true;
                    break;
                }
            }
        }
        let prefix = match pieces.as_slice() {
            [] => Bytes::new(),
            [one] => one.slice(..one.len().min(n)),
            many => {
                let mut joined = bytes::BytesMut::with_capacity(len.min(n));
                for piece in many {
                    let room = n - joined.len();
                    joined.extend_from_slice(&piece[..piece.len().min(room)]);
                }
                joined.freeze()
            }
        };
        let ahead = futures::stream::iter(pieces.into_iter().map(Ok)).map(move |piece| {
            let _ = &held;
            piece
        });
        let body = self.map_stream(|rest| match ended {
            // A finished stream is not polled again.
            true => ahead.boxed(),
            false => ahead.chain(rest).boxed(),
        });
        Ok((prefix, body))
    }

    /// Wraps the pieces (to count or cut them), keeping the budget.
    pub fn map_stream(
        self,
        f: impl FnOnce(
            BoxStream<'static, Result<Bytes, BodyError>>,
        ) -> BoxStream<'static, Result<Bytes, BodyError>>,
    ) -> Self {
        Self {
            stream: f(self.stream),
            budget: self.budget,
            expected_len: self.expected_len,
        }
    }

    /// The whole body in one buffer, for stores that take a block as one payload, held
    /// against the body's budget until the answered [`Reservation`] is dropped; at most `limit`
    /// bytes are collected (a longer body is [`BodyError::TooLarge`]). A body that arrives as
    /// one piece is handed on without a copy.
    pub async fn collect(mut self, limit: usize) -> Result<(Bytes, Reservation), BodyError> {
        let mut held = self.budget.reservation();
        let mut first: Option<Bytes> = None;
        let mut joined: Option<bytes::BytesMut> = None;
        let mut len = 0usize;
        while let Some(piece) = self.next().await {
            let piece = piece?;
            held.grow(piece.len() as u64)?;
            len += piece.len();
            if len > limit {
                return Err(BodyError::TooLarge(format!(
                    "the chunk is larger than {limit} bytes"
                )));
            }
            match (&first, &mut joined) {
                (None, _) => first = Some(piece),
                (Some(head), None) => {
                    let mut buf = bytes::BytesMut::with_capacity(len);
                    buf.extend_from_slice(head);
                    buf.extend_from_slice(&piece);
                    joined = Some(buf);
                }
                (Some(_), Some(buf)) => buf.extend_from_slice(&piece),
            }
        }
        let whole = match joined {
            Some(buf) => buf.freeze(),
            None => first.unwrap_or_default(),
        };
        Ok((whole, held))
    }
}

impl From<Bytes> for ChunkBody {
    fn from(data: Bytes) -> Self {
        Self::new(futures::stream::once(async move { Ok(data) }).boxed())
    }
}

impl From<&'static [u8]> for ChunkBody {
    fn from(data: &'static [u8]) -> Self {
        Bytes::from_static(data).into()
    }
}

impl std::fmt::Debug for ChunkBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ChunkBody")
    }
}

/// A blob being read: its full size and the requested bytes as a stream.
pub struct BlobRead {
    pub size: u64,
    pub range: Range<u64>,
    pub stream: BoxStream<'static, Result<Bytes, BlobError>>,
}

impl std::fmt::Debug for BlobRead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlobRead")
            .field("size", &self.size)
            .field("range", &self.range)
            .finish()
    }
}

/// A committed blob as the store lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedBlob {
    pub path: BlobPath,
    pub size: u64,
    /// When it was last written.
    pub modified: chrono::DateTime<chrono::Utc>,
}

/// Block staging and committed blobs.
pub trait BlobStore: Clone + Send + Sync + 'static {
    /// Answers whether the store is reachable and its container exists.
    fn ping(&self) -> impl Future<Output = Result<(), BlobError>> + Send;

    /// Prepares staging for a new file; answers the store's upload id (may be empty).
    fn begin(&self, path: &BlobPath) -> impl Future<Output = Result<String, BlobError>> + Send;

    /// Stages one block from its bytes as they arrive and answers its part id and size. A
    /// block is durable once this answers; when the body fails ([`BlobError::Body`]) or the
    /// store does, nothing of the block is kept under a part id anyone was given. Every call
    /// answers a part id of its own, never one an earlier block had, so that a list of part
    /// ids names exactly which bytes it holds (a running checksum relies on it). `total` is
    /// the file's number of blocks: a store that splits a block into blocks of its own may make
    /// at most [`TotalBlocks::store_blocks_per_block`] of them.
    fn stage_block(
        &self,
        path: &BlobPath,
        upload_id: &str,
        index: BlockIndex,
        total: TotalBlocks,
        body: ChunkBody,
    ) -> impl Future<Output = Result<StagedPart, BlobError>> + Send;

    /// Writes the blob at `path` whole, from its bytes as they arrive, and answers its size:
    /// one request for a file sent as one chunk (Put Blob on Azure; one write, flush and
    /// rename locally), with nothing staged to commit or discard. The blob appears whole or not
    /// at all; when the body fails ([`BlobError::Body`]) or the store does, there is none.
    fn put(
        &self,
        path: &BlobPath,
        body: ChunkBody,
    ) -> impl Future<Output = Result<u64, BlobError>> + Send;

    /// Gets the commit of these parts (in index order, `size` bytes in all) ready ahead of
    /// time, because the block just staged may be the last one: whatever a store would do with
    /// the bytes at the commit (flush them, copy them together) it does now, outside the
    /// session's lock, so that the commit itself is short and other uploads do not wait behind
    /// it. Only a head start, prepared from a snapshot: the commit takes it only for exactly
    /// the parts it commits, and otherwise does the work itself.
    fn prepare_commit(
        &self,
        _path: &BlobPath,
        _upload_id: &str,
        _part_ids: &[String],
        _size: u64,
    ) -> impl Future<Output = Result<(), BlobError>> + Send {
        async { Ok(()) }
    }

    /// Commits the staged parts in the given order as the blob at `path`, atomically: the blob
    /// either appears whole or not at all. `size` is the expected total, used to recognise a
    /// commit that already happened before a crash.
    fn commit(
        &self,
        path: &BlobPath,
        upload_id: &str,
        part_ids: Vec<String>,
        size: u64,
    ) -> impl Future<Output = Result<(), BlobError>> + Send;

    /// Drops what was staged for an upload that is over: committed (once the metadata store
    /// has recorded the commit, so that a commit cut short can run again), abandoned or
    /// deleted. Nothing staged is no error. A store that cannot delete staged blocks does
    /// nothing (Azure drops uncommitted blocks by itself after 7 days, and a commit never
    /// includes them).
    fn discard_staging(
        &self,
        upload_id: &str,
    ) -> impl Future<Output = Result<(), BlobError>> + Send;

    /// The uploads whose staging has not changed for `older_than`, for the sweep of leftovers
    /// (the staging of uploads that were committed, abandoned, or never got a session). A
    /// store without a staging area of its own answers none.
    fn stale_staging(
        &self,
        _older_than: std::time::Duration,
    ) -> impl Future<Output = Result<Vec<String>, BlobError>> + Send {
        async { Ok(Vec::new()) }
    }

    /// Removes the temporary files that writes killed mid-way (a crash) left behind, of those
    /// older than `older_than`, and answers how many went. A store whose writes leave no
    /// temporary files (Azure: an uncommitted block is not a file) answers 0.
    fn sweep_temporaries(
        &self,
        _older_than: std::time::Duration,
    ) -> impl Future<Output = Result<usize, BlobError>> + Send {
        async { Ok(0) }
    }

    /// Frees the bytes of a staged part that nothing refers to any more (an index was sent
    /// again and the new part recorded in its place). A part already gone is no error; a store
    /// that cannot free a part on its own does nothing, and its bytes go with the staging.
    fn discard_part(
        &self,
        path: &BlobPath,
        upload_id: &str,
        part_id: &str,
    ) -> impl Future<Output = Result<(), BlobError>> + Send;

    /// Every committed blob (not the staging, nor temporary files), for `filegate check`.
    fn list_blobs(&self) -> impl Future<Output = Result<Vec<ListedBlob>, BlobError>> + Send;

    /// Streams a committed blob, whole or a byte range of it.
    fn read(
        &self,
        path: &BlobPath,
        range: Option<Range<u64>>,
    ) -> impl Future<Output = Result<BlobRead, BlobError>> + Send;

    fn delete(&self, path: &BlobPath) -> impl Future<Output = Result<(), BlobError>> + Send;

    /// The blob's plain address, stored in the file record.
    fn location(&self, path: &BlobPath) -> String;

    /// The address handed to clients: the plain one, or a read-only signed one with an expiry
    /// when the container is private. `None` when the store has no address of its own that a
    /// client could use (the local file system): clients then read the file through the
    /// service's content route.
    fn share_url(
        &self,
        path: &BlobPath,
    ) -> impl Future<Output = Result<Option<String>, BlobError>> + Send;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pieces(sizes: &[usize]) -> ChunkBody {
        let pieces: Vec<Result<Bytes, BodyError>> = sizes
            .iter()
            .map(|&n| Ok(Bytes::from(vec![1u8; n])))
            .collect();
        ChunkBody::new(futures::stream::iter(pieces).boxed())
    }

    #[test]
    fn a_reservation_holds_until_dropped_and_refuses_past_the_limit() {
        let budget = ByteBudget::new(100);
        let mut first = budget.reservation();
        first.grow(60).unwrap();
        let mut second = budget.reservation();
        assert_eq!(second.grow(50), Err(BodyError::OverBudget));
        second.grow(40).unwrap();
        assert_eq!(budget.held(), 100);
        drop(first);
        assert_eq!(budget.held(), 40);
        drop(second);
        assert_eq!(budget.held(), 0);
    }

    /// A body of numbered bytes in pieces of `sizes`, which panics if polled after its end.
    fn numbered(sizes: &[usize]) -> ChunkBody {
        let mut next = 0u8;
        let pieces: Vec<Bytes> = sizes
            .iter()
            .map(|&n| {
                Bytes::from(
                    (0..n)
                        .map(|_| {
                            next = next.wrapping_add(1);
                            next
                        })
                        .collect::<Vec<u8>>(),
                )
            })
            .collect();
        let stream = futures::stream::unfold(pieces.into_iter(), |mut rest| async move {
            rest.next().map(|piece| (Ok(piece), rest))
        });
        ChunkBody::new(stream.boxed())
    }

    #[tokio::test]
    async fn peeking_reads_ahead_and_puts_every_byte_back() {
        for (sizes, n) in [
            (&[10, 20, 30][..], 25usize),
            (&[100][..], 25),
            (&[5, 5][..], 25),
            (&[][..], 4),
        ] {
            let (whole, _) = numbered(sizes).collect(10_000).await.unwrap();
            let (prefix, body) = numbered(sizes).peek(n).await.unwrap();
            assert_eq!(prefix, whole.slice(..whole.len().min(n)), "{sizes:?}");
            let (again, _) = body.collect(10_000).await.unwrap();
            assert_eq!(again, whole, "{sizes:?}");
        }
        let failing = ChunkBody::new(
            futures::stream::iter([Ok(Bytes::from_static(b"ab")), Err(BodyError::Stalled(3))])
                .boxed(),
        );
        assert_eq!(failing.peek(10).await.err(), Some(BodyError::Stalled(3)));
    }

    #[tokio::test]
    async fn a_peeked_window_is_held_against_the_budget_until_the_body_goes() {
        let budget = ByteBudget::new(1000);
        // One piece larger than the budget still streams: only the window is counted.
        let (prefix, body) = pieces(&[5000])
            .with_budget(budget.clone())
            .peek(600)
            .await
            .unwrap();
        assert_eq!(prefix.len(), 600);
        assert_eq!(budget.held(), 600);
        // A second window that does not fit is refused.
        let refused = pieces(&[300, 300])
            .with_budget(budget.clone())
            .peek(600)
            .await;
        assert_eq!(refused.err(), Some(BodyError::OverBudget));
        assert_eq!(budget.held(), 600);
        drop(body);
        assert_eq!(budget.held(), 0);
    }

    #[tokio::test]
    async fn collecting_a_body_holds_its_bytes_against_the_budget() {
        let budget = ByteBudget::new(1000);
        let (whole, held) = pieces(&[300, 200])
            .with_budget(budget.clone())
            .collect(10_000)
            .await
            .unwrap();
        assert_eq!(whole.len(), 500);
        assert_eq!(budget.held(), 500);
        // A second body that would pass the budget is refused, and holds nothing after.
        let refused = pieces(&[400, 400])
            .with_budget(budget.clone())
            .collect(10_000)
            .await;
        assert_eq!(refused.err(), Some(BodyError::OverBudget));
        assert_eq!(budget.held(), 500);
        drop(held);
        assert_eq!(budget.held(), 0);
    }

    #[tokio::test]
    async fn a_buffered_body_gives_its_bytes_back_when_dropped() {
        let budget = ByteBudget::new(1000);
        let mut held = budget.reservation();
        held.grow(700).unwrap();
        let mut body = ChunkBody::buffered(Bytes::from(vec![0u8; 700]), held);
        assert_eq!(body.next().await.unwrap().unwrap().len(), 700);
        assert!(body.next().await.is_none());
        assert_eq!(budget.held(), 700);
        drop(body);
        assert_eq!(budget.held(), 0);
    }

    #[tokio::test]
    async fn collecting_more_than_the_limit_is_too_large() {
        let refused = pieces(&[600, 600]).collect(1000).await;
        assert!(matches!(refused, Err(BodyError::TooLarge(_))));
    }
}
