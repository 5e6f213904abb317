//! Entry points for the fuzz targets in `fuzz/` (feature `fuzzing`, off in every build of the
//! service): the chunk form's parser run on a request built from raw bytes, without a router,
//! a use case or a store. Not an API: nothing outside `fuzz/` may call it.

use bytes::Bytes;
use poem::Request;

use filegate_application::UploadChunkError;
use filegate_application::ports::ByteBudget;

use crate::chunk::{ChunkLimits, parse};
use crate::envelope::ApiError;

/// What the parser made of a chunk form, with the File's bytes drained from its stream.
#[doc(hidden)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedChunk {
    pub file_id: Option<String>,
    pub block_index: i64,
    pub total_blocks: i64,
    /// The mode's canonical name.
    pub mode: &'static str,
    pub file_name: Option<String>,
    pub content_type: Option<String>,
    /// The declared SHA-256, as lower-case hex.
    pub chunk_sha256: Option<String>,
    /// The File's bytes, as the use case would have read them.
    pub data: Vec<u8>,
}

/// The outcome of [`parse_chunk_form_with`].
#[doc(hidden)]
#[derive(Debug)]
pub struct Outcome {
    /// The parsed form, or the answer the client would get: `"<status> <message>"`, a body
    /// error mapped to its status as the routes map it.
    pub result: Result<ParsedChunk, String>,
    /// Bytes still held against the request-byte budget once the request and its chunk are
    /// gone (a reservation that is never given back would show here).
    pub held_after: u64,
}

/// Parses `body` as the chunk route would, sent in one piece with `content_type`, with the
/// chunk limit `max_chunk_bytes` and no budget of request bytes.
#[doc(hidden)]
pub async fn parse_chunk_form(
    content_type: &str,
    body: Bytes,
    max_chunk_bytes: usize,
) -> Result<ParsedChunk, String> {
    parse_chunk_form_with(content_type, vec![body], max_chunk_bytes, u64::MAX)
        .await
        .result
}

/// Parses the concatenation of `pieces` as the chunk route would, the body arriving piece by
/// piece (as network reads cut it), with the chunk limit `max_chunk_bytes` and at most
/// `budget` request bytes held in memory.
#[doc(hidden)]
pub async fn parse_chunk_form_with(
    content_type: &str,
    pieces: Vec<Bytes>,
    max_chunk_bytes: usize,
    budget: u64,
) -> Outcome {
    let budget = ByteBudget::new(budget);
    let stream = futures::stream::iter(pieces.into_iter().map(Ok::<_, std::io::Error>));
    let request = Request::builder()
        .header(poem::http::header::CONTENT_TYPE, content_type)
        .body(poem::Body::from_bytes_stream(stream));
    let (request, mut body) = request.split();
    let limits = ChunkLimits { max_chunk_bytes };
    let result = match parse(&request, &mut body, limits, budget.clone()).await {
        Err(e) => Err(answer(&e)),
        Ok(command) => {
            let mut data = Vec::new();
            let mut chunk = command.data;
            let mut failed = None;
            while let Some(piece) = chunk.next().await {
                match piece {
                    Ok(piece) => data.extend_from_slice(&piece),
                    Err(e) => {
                        failed = Some(answer(&ApiError::from(UploadChunkError::Body(e))));
                        break;
                    }
                }
            }
            match failed {
                Some(e) => Err(e),
                None => Ok(ParsedChunk {
                    file_id: command.file_id.map(|id| id.to_string()),
                    block_index: command.block_index,
                    total_blocks: command.total_blocks,
                    mode: command.mode.as_str(),
                    file_name: command.file_name,
                    content_type: command.content_type,
                    chunk_sha256: command.chunk_sha256.map(|d| d.to_hex()),
                    data,
                }),
            }
        }
    };
    drop((request, body));
    Outcome {
        result,
        held_after: budget.held(),
    }
}

fn answer(e: &ApiError) -> String {
    format!("{} {}", e.status.as_u16(), e.message)
}
