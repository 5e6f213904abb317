//! Reading a request body the way the faults need: cut after N bytes, pause after N bytes, and
//! tell a body the client cut short from one that ended.

use std::fmt;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures::Stream;
use http_body_util::BodyExt;
use hyper::body::Incoming;

/// Why the body stopped before its end; either way the connection is closed without an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cut {
    /// A `drop_connection` fault reached its byte count.
    Dropped,
    /// The client closed the connection (or sent a broken body) before the end.
    Broken,
}

impl fmt::Display for Cut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Cut::Dropped => f.write_str("connection dropped on purpose by a fault"),
            Cut::Broken => f.write_str("the client ended the body early"),
        }
    }
}

impl std::error::Error for Cut {}

/// A request body read chunk by chunk, with the byte limits of a fault.
pub(crate) struct BodyReader {
    body: Incoming,
    read: u64,
    drop_after: Option<u64>,
    stall: Option<(u64, Duration)>,
    /// Bytes of a frame beyond a limit, handed out after it.
    pending: Option<Bytes>,
    cut: Option<Cut>,
}

impl BodyReader {
    pub(crate) fn new(body: Incoming) -> Self {
        Self {
            body,
            read: 0,
            drop_after: None,
            stall: None,
            pending: None,
            cut: None,
        }
    }

    /// Reading stops with [`Cut::Dropped`] once `bytes` bytes were handed out.
    pub(crate) fn drop_after(&mut self, bytes: u64) {
        self.drop_after = Some(bytes);
    }

    /// Reading pauses for `pause` once `bytes` bytes were handed out.
    pub(crate) fn stall_at(&mut self, bytes: u64, pause: Duration) {
        self.stall = Some((bytes, pause));
    }

    /// Why reading stopped early, if it did.
    pub(crate) fn cut(&self) -> Option<Cut> {
        self.cut
    }

    /// The next piece of the body; `Ok(None)` at its end.
    pub(crate) async fn next_chunk(&mut self) -> Result<Option<Bytes>, Cut> {
        if let Some(cut) = self.cut {
            return Err(cut);
        }
        loop {
            if self.drop_after.is_some_and(|limit| self.read >= limit) {
                self.cut = Some(Cut::Dropped);
                return Err(Cut::Dropped);
            }
            if let Some((at, pause)) = self.stall
                && self.read >= at
            {
                self.stall = None;
                tokio::time::sleep(pause).await;
            }
            let chunk = match self.pending.take() {
                Some(chunk) => chunk,
                None => match self.body.frame().await {
                    None => return Ok(None),
                    Some(Err(_)) => {
                        self.cut = Some(Cut::Broken);
                        return Err(Cut::Broken);
                    }
                    Some(Ok(frame)) => match frame.into_data() {
                        Ok(data) => data,
                        // Trailers carry no bytes.
                        Err(_) => continue,
                    },
                },
            };
            if chunk.is_empty() {
                continue;
            }
            let boundary = [self.drop_after, self.stall.map(|(at, _)| at)]
                .into_iter()
                .flatten()
                .min();
            let mut chunk = chunk;
            if let Some(boundary) = boundary {
                let room = boundary.saturating_sub(self.read);
                if (chunk.len() as u64) > room {
                    // `room` is below the chunk's length, so it fits in usize.
                    let rest = chunk.split_off(usize::try_from(room).unwrap_or(chunk.len()));
                    self.pending = Some(rest);
                }
            }
            self.read += chunk.len() as u64;
            return Ok(Some(chunk));
        }
    }

    /// The whole body, or `None` when it is longer than `limit` (the rest is still read, so
    /// that the client gets the answer).
    pub(crate) async fn read_all(&mut self, limit: usize) -> Result<Option<Bytes>, Cut> {
        let mut buf = BytesMut::new();
        let mut too_long = false;
        while let Some(chunk) = self.next_chunk().await? {
            if too_long || buf.len() + chunk.len() > limit {
                too_long = true;
                continue;
            }
            buf.extend_from_slice(&chunk);
        }
        Ok((!too_long).then(|| buf.freeze()))
    }

    /// Reads and forgets the rest of the body, so that an early answer reaches a client that is
    /// still sending (a server that closes instead makes the client see a broken pipe).
    pub(crate) async fn drain(&mut self) -> Result<(), Cut> {
        while self.next_chunk().await?.is_some() {}
        Ok(())
    }
}

/// The body as a stream, for the multipart parser.
pub(crate) fn stream(
    reader: &mut BodyReader,
) -> impl Stream<Item = Result<Bytes, Cut>> + Send + '_ {
    futures::stream::unfold(reader, |r| async move {
        match r.next_chunk().await {
            Ok(Some(chunk)) => Some((Ok(chunk), r)),
            Ok(None) => None,
            Err(cut) => Some((Err(cut), r)),
        }
    })
}
