//! Put Block with its body sent while the chunk arrives.
//!
//! `object_store`'s Put Block takes a whole payload, so a block used to reach Azure only once
//! all of it had arrived: an 8 MiB chunk waited for its last byte before its first byte left,
//! which costs a chunk's receive time per chunk where Azure is across a network (on the
//! benchmark's one machine, where Azurite is short of CPU, it made no measurable difference:
//! docs/decisions.md). Put Block needs its
//! Content-Length first, and a form's length is known from its Content-Length when the File is
//! its last part ([`ChunkBody::expected_len`](filegate_application::ports::ChunkBody)); so a
//! block of that length is started at once and fed as the pieces arrive. The guess may be
//! wrong (an epilogue after the form, a missing final CRLF): then the request is cut off, and
//! the block goes again from the bytes kept for it through `object_store` (with its retries).
//! The same fallback covers any failure of the streamed request, so a block's bytes are kept
//! until Azure has them, as before: memory per request is unchanged. A body longer than
//! guessed may let the streamed request finish before the extra bytes show: Azure then holds a
//! block no commit names, or a Put Blob that the fallback's Put Blob overwrites (the path is a
//! new file's, which nothing points to yet).

use std::io;
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use http::header::{CONTENT_LENGTH, HeaderName, HeaderValue};
use object_store::azure::{AzureAuthorizer, MicrosoftAzure};
use object_store::client::{HttpRequest, HttpRequestBody};
use object_store::path::Path;
use tokio::sync::mpsc;
use tracing::Instrument;
use url::Url;

/// The smallest block or blob sent while it arrives. Below it, waiting for the whole body
/// costs next to nothing, and `object_store`'s one request (its pooled connections, its
/// retries) is simpler than a streamed one.
pub(crate) const STREAM_FROM: u64 = 1024 * 1024;

/// Pieces waiting for the request to take them: little, so that a slow Azure slows the client
/// rather than filling memory (the pieces are shared with the block's kept copy anyway).
const QUEUED_PIECES: usize = 2;

/// Put Blob's header naming the kind of blob it writes.
const BLOB_TYPE: HeaderName = HeaderName::from_static("x-ms-blob-type");

/// What starts streamed Put Blocks: its own HTTP client, `object_store`'s credentials.
#[derive(Clone)]
pub(crate) struct BlockStreamer {
    client: reqwest::Client,
    store: Arc<MicrosoftAzure>,
    account: Arc<str>,
    /// `{endpoint}/{container}`.
    base: Arc<Url>,
}

impl BlockStreamer {
    pub(crate) fn new(
        client: reqwest::Client,
        store: Arc<MicrosoftAzure>,
        account: Arc<str>,
        base: Arc<Url>,
    ) -> Self {
        Self {
            client,
            store,
            account,
            base,
        }
    }

    /// Starts a Put Block of exactly `len` bytes to `location` under a new block id; its bytes
    /// are whatever [`Streamed::feed`] is given.
    pub(crate) fn start_block(&self, location: &Path, len: u64) -> Streamed {
        let content_id = new_block_id();
        let mut url = self.url(location);
        url.query_pairs_mut()
            .append_pair("comp", "block")
            .append_pair("blockid", &BASE64.encode(&content_id));
        self.start(url, len, None, content_id)
    }

    /// Starts a Put Blob of exactly `len` bytes to `location` (a whole block blob in one
    /// request, replacing any blob there); [`Streamed::finish`] then answers an empty id.
    pub(crate) fn start_blob(&self, location: &Path, len: u64) -> Streamed {
        let blob_type = (BLOB_TYPE, HeaderValue::from_static("BlockBlob"));
        self.start(self.url(location), len, Some(blob_type), String::new())
    }

    fn url(&self, location: &Path) -> Url {
        let mut url = (*self.base).clone();
        if let Ok(mut segments) = url.path_segments_mut() {
            segments.extend(location.parts());
        }
        url
    }

    fn start(
        &self,
        url: Url,
        len: u64,
        header: Option<(HeaderName, HeaderValue)>,
        id: String,
    ) -> Streamed {
        let (tx, rx) = mpsc::channel(QUEUED_PIECES);
        let this = self.clone();
        let put = async move { this.put(url, len, header, rx).await };
        Streamed {
            id,
            declared: len,
            fed: 0,
            body: Some(tx),
            request: Some(tokio::spawn(put.instrument(tracing::Span::current()))),
        }
    }

    async fn put(
        &self,
        url: Url,
        len: u64,
        header: Option<(HeaderName, HeaderValue)>,
        mut rx: mpsc::Receiver<Result<Bytes, io::Error>>,
    ) -> anyhow::Result<()> {
        let credential = self.store.credentials().get_credential().await?;
        let mut request = HttpRequest::new(HttpRequestBody::empty());
        *request.method_mut() = http::Method::PUT;
        *request.uri_mut() = url.as_str().parse()?;
        request
            .headers_mut()
            .insert(CONTENT_LENGTH, HeaderValue::from(len));
        if let Some((name, value)) = header {
            request.headers_mut().insert(name, value);
        }
        AzureAuthorizer::new(&credential, &self.account).try_authorize(&mut request)?;
        let (head, _) = request.into_parts();
        let body = futures::stream::poll_fn(move |cx| rx.poll_recv(cx));
        let response = self
            .client
            .request(head.method, head.uri.to_string())
            .headers(head.headers)
            .body(reqwest::Body::wrap_stream(body))
            .send()
            .await?;
        let status = response.status();
        if !status.is_success() {
            let text = response.text().await.unwrap_or_default();
            anyhow::bail!("Azure answered {status}: {text}");
        }
        Ok(())
    }
}

/// A block id as `object_store` makes them (Azure wants every id of a blob the same length).
fn new_block_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// A Put Block under way, fed piece by piece. Dropped unfinished (or [`Streamed::abandon`]ed),
/// it cuts the request off before its declared length, so Azure keeps nothing of it.
pub(crate) struct Streamed {
    /// The block id (empty for a whole blob).
    id: String,
    declared: u64,
    fed: u64,
    /// Closed once `declared` bytes have been fed: the request's body is complete.
    body: Option<mpsc::Sender<Result<Bytes, io::Error>>>,
    request: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl Streamed {
    /// Sends `piece` on; a piece past the declared length means the guess was wrong, and the
    /// request is given up (the block goes again from its kept bytes).
    pub(crate) async fn feed(&mut self, piece: &Bytes) {
        if self.request.is_none() {
            return;
        }
        let fed = self.fed + piece.len() as u64;
        if fed > self.declared {
            self.abandon();
            return;
        }
        self.fed = fed;
        if let Some(body) = &self.body {
            // A closed channel means the request has already failed; `finish` tells why.
            let _ = body.send(Ok(piece.clone())).await;
        }
        if fed == self.declared {
            self.body = None;
        }
    }

    /// The block has all its bytes: a request fed fewer than it declared is given up.
    pub(crate) fn close(&mut self) {
        if self.fed != self.declared {
            self.abandon();
        }
    }

    /// Cuts the request off: the body fails before its declared length, so Azure stages
    /// nothing, and the task is aborted.
    pub(crate) fn abandon(&mut self) {
        if let Some(body) = self.body.take() {
            let _ = body.try_send(Err(io::Error::other("the block was not what was declared")));
        }
        if let Some(request) = self.request.take() {
            request.abort();
        }
    }

    /// The block's id (empty for a whole blob) once Azure has the bytes; `None` when the
    /// request was given up or failed (the reason is logged: the caller sends the bytes again).
    pub(crate) async fn finish(mut self) -> Option<String> {
        self.close();
        let request = self.request.take()?;
        match request.await {
            Ok(Ok(())) => Some(std::mem::take(&mut self.id)),
            Ok(Err(e)) => {
                tracing::warn!(error = %format!("{e:#}"), "a streamed Put Block or Put Blob failed; sending its bytes again from memory");
                None
            }
            Err(e) => {
                tracing::warn!(error = %e, "a streamed Put Block or Put Blob did not finish; sending its bytes again from memory");
                None
            }
        }
    }
}

impl Drop for Streamed {
    fn drop(&mut self) {
        self.abandon();
    }
}
