//! A chunk sent on to Azure as blocks of its own while it arrives: the reader that cuts the
//! body into blocks, and the Put Block under way while the next block fills.

use std::sync::Arc;

use bytes::Bytes;
use filegate_application::ports::{BodyError, ChunkBody, Reservation};
use filegate_domain::BlockIndex;
use object_store::MultipartId;
use object_store::PutPayload;
use object_store::azure::MicrosoftAzure;
use object_store::multipart::MultipartStore;
use object_store::path::Path;
use tracing::Instrument;

use crate::streaming::Streamed;

/// The size of the Azure blocks a chunk is sent as (the last one of a chunk may be shorter,
/// or longer when the chunk may have no more blocks). Put Block takes a whole payload, so this
/// is what a request holds twice at most: one block being sent, one being filled. 8 MiB, the
/// chunk size that `filegate upload` and the uploader send, so that such a chunk is one Put
/// Block, as a client writing straight to Azure sends it: measured faster than 4 MiB blocks in
/// two A/B runs (docs/decisions.md, "Azure blocks of a chunk").
pub(crate) const SUB_BLOCK_BYTES: usize = 8 * 1024 * 1024;

/// Joins the Azure block ids of one chunk into its part id, in order. Block ids are hex.
pub(crate) const PART_SEPARATOR: &str = ",";

/// The Azure block ids a part id names, in order (one for a chunk sent as one block).
pub(crate) fn block_ids(part_id: &str) -> impl Iterator<Item = &str> {
    part_id.split(PART_SEPARATOR)
}

/// A chunk's body read in blocks: a piece that crosses a block's end is split, and its rest
/// starts the next block.
pub(crate) struct Pieces {
    body: ChunkBody,
    rest: Option<Bytes>,
}

impl Pieces {
    pub(crate) fn new(body: ChunkBody) -> Self {
        Self { body, rest: None }
    }

    /// The next `max` bytes (fewer only at the body's end), held against the body's budget
    /// until the answered reservation is dropped; `None` once the body has ended. The block is
    /// the body's pieces themselves (shared, not copied: Put Block sends them one after the
    /// other). A Put Block already streaming is fed each piece as it arrives.
    pub(crate) async fn next_block(
        &mut self,
        max: usize,
        mut streamed: Option<Streamed>,
    ) -> Result<Option<Block>, BodyError> {
        let mut held = self.body.budget().reservation();
        let mut block = Vec::new();
        let mut len = 0usize;
        while len < max {
            let mut piece = match self.rest.take() {
                Some(rest) => rest,
                None => match self.body.next().await {
                    Some(piece) => piece?,
                    None => break,
                },
            };
            let room = max - len;
            if piece.len() > room {
                self.rest = Some(piece.split_off(room));
            }
            held.grow(piece.len() as u64)?;
            if let Some(streamed) = &mut streamed {
                streamed.feed(&piece).await;
            }
            len += piece.len();
            block.push(piece);
        }
        if len == 0 {
            return Ok(None);
        }
        if let Some(streamed) = &mut streamed {
            streamed.close();
        }
        Ok(Some(Block {
            data: block.into_iter().collect(),
            held,
            streamed,
        }))
    }
}

/// One Azure block of a chunk: its bytes, held against the budget until Azure has them, and
/// the Put Block that may already be sending them.
pub(crate) struct Block {
    pub(crate) data: PutPayload,
    pub(crate) held: Reservation,
    pub(crate) streamed: Option<Streamed>,
}

/// A Put Block under way, in a task of its own so that it goes on while the request reads the
/// next block; aborted when dropped unfinished (a failed body, a failed earlier block).
pub(crate) struct Sending(tokio::task::JoinHandle<Result<String, object_store::Error>>);

impl Sending {
    /// Sends `block`: the streamed Put Block's id when it succeeds, else a Put Block of the
    /// kept bytes (an empty block when there is none).
    pub(crate) fn start(
        store: &Arc<MicrosoftAzure>,
        location: &Path,
        upload_id: &MultipartId,
        index: BlockIndex,
        block: Option<Block>,
    ) -> Self {
        let (store, location, upload_id) = (store.clone(), location.clone(), upload_id.clone());
        let put = async move {
            let (data, held) = match block {
                Some(Block {
                    data,
                    held,
                    streamed,
                }) => {
                    if let Some(streamed) = streamed
                        && let Some(id) = streamed.finish().await
                    {
                        return Ok(id);
                    }
                    (data, Some(held))
                }
                None => (PutPayload::new(), None),
            };
            // The bytes stay held against the budget until Azure has them.
            let _held = held;
            store
                .put_part(&location, &upload_id, index.get() as usize, data)
                .await
                .map(|part| part.content_id)
        };
        // In the request's span, so that what it logs stays in the request's trace.
        Self(tokio::spawn(put.instrument(tracing::Span::current())))
    }

    /// The block's id, once Azure has it.
    pub(crate) async fn finish(mut self) -> Result<String, object_store::Error> {
        match (&mut self.0).await {
            Ok(result) => result,
            Err(e) => Err(object_store::Error::Generic {
                store: "MicrosoftAzure",
                source: Box::new(e),
            }),
        }
    }
}

impl Drop for Sending {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use filegate_application::ports::ByteBudget;
    use futures::StreamExt;

    use super::*;

    fn body(pieces: &[usize]) -> ChunkBody {
        let mut next = 0u8;
        let pieces: Vec<Result<Bytes, BodyError>> = pieces
            .iter()
            .map(|&n| {
                let piece: Vec<u8> = (0..n)
                    .map(|_| {
                        next = next.wrapping_add(1);
                        next
                    })
                    .collect();
                Ok(Bytes::from(piece))
            })
            .collect();
        ChunkBody::new(futures::stream::iter(pieces).boxed())
    }

    #[tokio::test]
    async fn blocks_are_cut_at_their_size_whatever_the_pieces() {
        let whole = body(&[3, 10, 1, 7]).collect(100).await.unwrap().0;
        let mut pieces = Pieces::new(body(&[3, 10, 1, 7]));
        let mut blocks = Vec::new();
        while let Some(block) = pieces.next_block(5, None).await.unwrap() {
            blocks.push(block.data);
        }
        let sizes: Vec<usize> = blocks.iter().map(PutPayload::content_length).collect();
        assert_eq!(sizes, [5, 5, 5, 5, 1]);
        let joined: Vec<u8> = blocks
            .iter()
            .flat_map(|b| b.iter().flatten().copied())
            .collect();
        assert_eq!(joined, whole.to_vec());
    }

    #[tokio::test]
    async fn the_last_block_allowed_takes_the_rest() {
        let mut pieces = Pieces::new(body(&[4, 4, 4]));
        assert_eq!(
            pieces
                .next_block(5, None)
                .await
                .unwrap()
                .unwrap()
                .data
                .content_length(),
            5
        );
        assert_eq!(
            pieces
                .next_block(usize::MAX, None)
                .await
                .unwrap()
                .unwrap()
                .data
                .content_length(),
            7
        );
        assert!(pieces.next_block(5, None).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn a_block_is_held_against_the_budget_until_it_is_dropped() {
        let budget = ByteBudget::new(8);
        let mut pieces = Pieces::new(body(&[6, 6]).with_budget(budget.clone()));
        let first = pieces.next_block(6, None).await.unwrap().unwrap();
        assert_eq!(budget.held(), 6);
        assert_eq!(
            pieces.next_block(6, None).await.err(),
            Some(BodyError::OverBudget),
            "two blocks do not fit a budget of 8"
        );
        drop(first);
        assert_eq!(budget.held(), 0);
    }
}
