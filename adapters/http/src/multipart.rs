//! A streaming multipart/form-data reader that hands out a part's data as slices of the pieces
//! the body arrived in, not copies of them.
//!
//! multer, which this replaces on the chunk route, appends every piece of the body to a buffer
//! of its own before it cuts a field's data out of it: one copy of every byte of every chunk,
//! about a tenth of the server's CPU on an in-order upload. Here a piece is searched for the
//! part's closing delimiter where it lies and the data before it is passed on as a slice of it;
//! bytes are copied only where a delimiter could straddle two pieces (a piece that ends in what
//! may be the start of one), and for part headers, which are small. What it accepts is what
//! multer accepted: a preamble before the first boundary, transport padding after a boundary,
//! headers parsed by httparse, `name` and `filename` read from Content-Disposition the same
//! way, nothing read after the closing boundary.

use std::io;

use bytes::{Buf, Bytes, BytesMut};
use futures::StreamExt;
use futures::stream::BoxStream;
use memchr::memmem;

/// The most headers a part may have (as multer).
const MAX_HEADERS: usize = 32;
/// The most bytes a part's headers may take: a form's parts carry two or three short headers.
const MAX_HEADER_BYTES: usize = 8 * 1024;

/// Why a multipart body could not be read.
#[derive(Debug, thiserror::Error)]
pub(crate) enum MultipartError {
    /// Reading the body failed (a reset connection, a stall).
    #[error("{0}")]
    Read(io::Error),
    /// The body is longer than the whole-body limit.
    #[error("the body is larger than {0} bytes")]
    TooLarge(u64),
    /// The body ended before the form did.
    #[error("the body ended before the multipart form did")]
    Incomplete,
    /// The body is not multipart/form-data as it claims.
    #[error("{0}")]
    Malformed(String),
}

/// The headers of one part that a form needs.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct PartHead {
    /// Content-Disposition's `name`.
    pub(crate) name: Option<String>,
    /// Content-Disposition's `filename`.
    pub(crate) file_name: Option<String>,
    /// Content-Type's essence (`type/subtype`, no parameters), when it parses as a media type.
    pub(crate) content_type: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Before the first boundary.
    Preamble,
    /// Just after a boundary: `--` ends the form, anything else starts a part.
    Boundary,
    /// In a part's headers.
    Headers,
    /// In a part's data.
    Data,
    /// After the closing boundary.
    End,
}

/// A multipart body read part by part: [`Multipart::next_part`] gives a part's headers, then
/// [`Multipart::chunk`] its data, piece by piece, until `None`.
pub(crate) struct Multipart {
    stream: BoxStream<'static, Result<Bytes, io::Error>>,
    /// What has arrived and is not yet consumed.
    buf: Bytes,
    /// `\r\n--` + boundary: what ends a part's data.
    delimiter: Vec<u8>,
    finder: memmem::Finder<'static>,
    stage: Stage,
    received: u64,
    limit: u64,
    /// Set once the body has ended or failed: it is not read again.
    exhausted: bool,
}

impl Multipart {
    /// Reads `stream` as a form with `boundary`, refusing bodies longer than `limit` bytes.
    pub(crate) fn new(
        stream: BoxStream<'static, Result<Bytes, io::Error>>,
        boundary: &str,
        limit: u64,
    ) -> Self {
        let delimiter = format!("\r\n--{boundary}").into_bytes();
        let finder = memmem::Finder::new(&delimiter).into_owned();
        Self {
            stream,
            buf: Bytes::new(),
            delimiter,
            finder,
            stage: Stage::Preamble,
            received: 0,
            limit,
            exhausted: false,
        }
    }

    /// The next part's headers, the rest of the current part's data skipped; `None` after the
    /// closing boundary.
    pub(crate) async fn next_part(&mut self) -> Result<Option<PartHead>, MultipartError> {
        loop {
            match self.stage {
                Stage::Preamble => self.skip_preamble().await?,
                Stage::Data => while self.chunk().await?.is_some() {},
                Stage::Boundary => self.after_boundary().await?,
                Stage::Headers => return self.headers().await.map(Some),
                Stage::End => return Ok(None),
            }
        }
    }

    /// How long the current part's data is if it is the form's last part and the form ends as
    /// clients write it (`\r\n--boundary--\r\n`, nothing after), for a body of
    /// `content_length` bytes; `None` outside a part's data or when that cannot be. A guess from
    /// the Content-Length, for a store that must tell a length before the bytes arrive.
    pub(crate) fn data_len_if_last(&self, content_length: u64) -> Option<u64> {
        if self.stage != Stage::Data {
            return None;
        }
        let consumed = self.received - self.buf.len() as u64;
        let close = self.delimiter.len() as u64 + b"--\r\n".len() as u64;
        content_length.checked_sub(consumed)?.checked_sub(close)
    }

    /// The next piece of the current part's data; `None` at its end.
    pub(crate) async fn chunk(&mut self) -> Result<Option<Bytes>, MultipartError> {
        if self.stage != Stage::Data {
            return Ok(None);
        }
        loop {
            if let Some(at) = self.finder.find(&self.buf) {
                let data = self.buf.split_to(at);
                self.buf.advance(self.delimiter.len());
                self.stage = Stage::Boundary;
                return Ok((!data.is_empty()).then_some(data));
            }
            // What may be the start of the delimiter waits for the next piece; the rest is data.
            let ready = self.buf.len() - partial_match(&self.buf, &self.delimiter);
            if ready > 0 {
                return Ok(Some(self.buf.split_to(ready)));
            }
            if !self.fill().await? {
                return Err(MultipartError::Incomplete);
            }
        }
    }

    /// Reads the next piece of the body onto what is left; `false` at the body's end.
    async fn fill(&mut self) -> Result<bool, MultipartError> {
        if self.exhausted {
            return Ok(false);
        }
        loop {
            let piece = match self.stream.next().await {
                Some(Ok(piece)) => piece,
                Some(Err(e)) => {
                    self.exhausted = true;
                    return Err(MultipartError::Read(e));
                }
                None => {
                    self.exhausted = true;
                    return Ok(false);
                }
            };
            self.received += piece.len() as u64;
            if self.received > self.limit {
                self.exhausted = true;
                return Err(MultipartError::TooLarge(self.limit));
            }
            if piece.is_empty() {
                continue;
            }
            self.buf = if self.buf.is_empty() {
                piece
            } else {
                // Only a few bytes are left over whenever this happens in a part's data (what
                // may start a delimiter), or a part's headers.
                let mut joined = BytesMut::with_capacity(self.buf.len() + piece.len());
                joined.extend_from_slice(&self.buf);
                joined.extend_from_slice(&piece);
                joined.freeze()
            };
            return Ok(true);
        }
    }

    /// Drops everything up to and including the first `--boundary`.
    async fn skip_preamble(&mut self) -> Result<(), MultipartError> {
        // The delimiter without its leading CRLF: the first boundary may open the body.
        let dash_boundary = self.delimiter.len() - 2;
        loop {
            if let Some(at) = memmem::find(&self.buf, &self.delimiter[2..]) {
                self.buf.advance(at + dash_boundary);
                self.stage = Stage::Boundary;
                return Ok(());
            }
            let keep = partial_match(&self.buf, &self.delimiter[2..]);
            self.buf.advance(self.buf.len() - keep);
            if !self.fill().await? {
                return Err(MultipartError::Incomplete);
            }
        }
    }

    /// After a boundary: `--` closes the form; otherwise optional spaces or tabs, then CRLF,
    /// start a part's headers.
    async fn after_boundary(&mut self) -> Result<(), MultipartError> {
        while self.buf.len() < 2 {
            if !self.fill().await? {
                return Err(MultipartError::Incomplete);
            }
        }
        if self.buf.starts_with(b"--") {
            self.stage = Stage::End;
            return Ok(());
        }
        loop {
            let padding = self
                .buf
                .iter()
                .take_while(|&&b| b == b' ' || b == b'\t')
                .count();
            self.buf.advance(padding);
            if self.buf.len() >= 2 {
                break;
            }
            if !self.fill().await? {
                return Err(MultipartError::Incomplete);
            }
        }
        if !self.buf.starts_with(b"\r\n") {
            return Err(MultipartError::Malformed(
                "a boundary is not followed by a line break".into(),
            ));
        }
        self.buf.advance(2);
        self.stage = Stage::Headers;
        Ok(())
    }

    /// A part's headers, up to the blank line that ends them.
    async fn headers(&mut self) -> Result<PartHead, MultipartError> {
        // The blank line must come within the bound, whatever else arrived with it.
        let window = MAX_HEADER_BYTES + 4;
        let end = loop {
            let head = &self.buf[..self.buf.len().min(window)];
            if let Some(at) = memmem::find(head, b"\r\n\r\n") {
                break at + 4;
            }
            if self.buf.len() >= window {
                return Err(MultipartError::Malformed(format!(
                    "a part's headers are longer than {MAX_HEADER_BYTES} bytes"
                )));
            }
            if !self.fill().await? {
                return Err(MultipartError::Incomplete);
            }
        };
        let block = self.buf.split_to(end);
        self.stage = Stage::Data;
        parse_head(&block)
    }
}

/// The length of the longest end of `buf` that is the start of `pattern` (shorter than all of
/// it): the bytes that may be the first part of a `pattern` split across two pieces.
fn partial_match(buf: &[u8], pattern: &[u8]) -> usize {
    let longest = buf.len().min(pattern.len().saturating_sub(1));
    (1..=longest)
        .rev()
        .find(|&len| buf.ends_with(&pattern[..len]))
        .unwrap_or(0)
}

fn parse_head(block: &[u8]) -> Result<PartHead, MultipartError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let parsed = match httparse::parse_headers(block, &mut headers) {
        Ok(httparse::Status::Complete((_, parsed))) => parsed,
        Ok(httparse::Status::Partial) => {
            return Err(MultipartError::Malformed(
                "a part's headers are incomplete".into(),
            ));
        }
        Err(e) => {
            return Err(MultipartError::Malformed(format!(
                "a part's headers cannot be read: {e}"
            )));
        }
    };
    // As a header map would keep them: the last of a repeated header wins.
    let last = |name: &str| {
        parsed
            .iter()
            .rev()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value)
    };
    let disposition = last("content-disposition");
    Ok(PartHead {
        name: disposition.and_then(|v| disposition_param(v, b"name")),
        file_name: disposition.and_then(|v| disposition_param(v, b"filename")),
        content_type: last("content-type")
            .and_then(|v| std::str::from_utf8(v).ok())
            .and_then(|v| v.parse::<mime::Mime>().ok())
            .map(|m| m.essence_str().to_owned()),
    })
}

/// A parameter of a Content-Disposition value, read as multer reads it: the first `key` that
/// starts the value or follows whitespace or `;`, then `=`, then a quoted string (with `\"`
/// inside it) or a bare token up to `;` or a space.
fn disposition_param(mut value: &[u8], key: &[u8]) -> Option<String> {
    fn skip_ws(bytes: &[u8]) -> &[u8] {
        let start = bytes
            .iter()
            .position(|b| !b.is_ascii_whitespace())
            .unwrap_or(bytes.len());
        &bytes[start..]
    }
    fn then(bytes: &[u8], want: u8) -> Option<&[u8]> {
        match skip_ws(bytes) {
            [first, rest @ ..] if *first == want => Some(rest),
            _ => None,
        }
    }
    while let Some(at) = memmem::find(value, key) {
        let after = &value[at + key.len()..];
        if at > 0 && !(value[at - 1].is_ascii_whitespace() || value[at - 1] == b';') {
            value = after;
            continue;
        }
        let rest = then(after, b'=')?;
        let (raw, escaped) = if let Some(quoted) = then(rest, b'"') {
            let mut end = memchr::memchr(b'"', quoted)?;
            let mut escaped = false;
            while end > 0 && quoted[end - 1] == b'\\' {
                escaped = true;
                end = end + 1 + memchr::memchr(b'"', &quoted[end + 1..])?;
            }
            (&quoted[..end], escaped)
        } else {
            let bare = skip_ws(rest);
            let end = memchr::memchr2(b';', b' ', bare).unwrap_or(bare.len());
            (&bare[..end], false)
        };
        let text = std::str::from_utf8(raw).ok()?;
        return Some(if escaped {
            text.replace(r#"\""#, "\"")
        } else {
            text.to_owned()
        });
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reader(pieces: Vec<&[u8]>, boundary: &str) -> Multipart {
        let pieces: Vec<Result<Bytes, io::Error>> = pieces
            .into_iter()
            .map(|p| Ok(Bytes::copy_from_slice(p)))
            .collect();
        Multipart::new(futures::stream::iter(pieces).boxed(), boundary, u64::MAX)
    }

    /// Every part as (head, data), or the error that stopped the reading.
    async fn read_all(mut form: Multipart) -> Result<Vec<(PartHead, Vec<u8>)>, String> {
        let mut parts = Vec::new();
        while let Some(head) = form.next_part().await.map_err(|e| e.to_string())? {
            let mut data = Vec::new();
            while let Some(piece) = form.chunk().await.map_err(|e| e.to_string())? {
                assert!(!piece.is_empty(), "an empty piece is never handed out");
                data.extend_from_slice(&piece);
            }
            parts.push((head, data));
        }
        Ok(parts)
    }

    /// The same body read by multer, for comparison.
    async fn read_all_with_multer(
        pieces: Vec<&[u8]>,
        boundary: &str,
    ) -> Result<Vec<(PartHead, Vec<u8>)>, String> {
        let pieces: Vec<Result<Bytes, io::Error>> = pieces
            .into_iter()
            .map(|p| Ok(Bytes::copy_from_slice(p)))
            .collect();
        let mut form = multer::Multipart::new(futures::stream::iter(pieces), boundary);
        let mut parts = Vec::new();
        while let Some(mut field) = form.next_field().await.map_err(|e| e.to_string())? {
            let head = PartHead {
                name: field.name().map(str::to_owned),
                file_name: field.file_name().map(str::to_owned),
                content_type: field.content_type().map(|m| m.essence_str().to_owned()),
            };
            let mut data = Vec::new();
            while let Some(piece) = field.chunk().await.map_err(|e| e.to_string())? {
                data.extend_from_slice(&piece);
            }
            parts.push((head, data));
        }
        Ok(parts)
    }

    fn form(boundary: &str, parts: &[(&str, &[u8])]) -> Vec<u8> {
        let mut body = Vec::new();
        for (head, data) in parts {
            body.extend_from_slice(format!("--{boundary}\r\n{head}\r\n\r\n").as_bytes());
            body.extend_from_slice(data);
            body.extend_from_slice(b"\r\n");
        }
        body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
        body
    }

    #[tokio::test]
    async fn the_last_parts_length_is_told_from_the_content_length() {
        let data = vec![7u8; 10_000];
        let body = form(
            "XB",
            &[
                ("Content-Disposition: form-data; name=\"Mode\"", b"Message"),
                (
                    "Content-Disposition: form-data; name=\"File\"; filename=\"f\"",
                    &data,
                ),
            ],
        );
        // Pieces cut inside the File's data: the guess counts what waits in the buffer.
        let mut form = reader(vec![&body[..150], &body[150..4000], &body[4000..]], "XB");
        assert_eq!(
            form.data_len_if_last(body.len() as u64),
            None,
            "before any part"
        );
        form.next_part().await.unwrap().unwrap();
        form.next_part().await.unwrap().unwrap();
        assert_eq!(form.data_len_if_last(body.len() as u64), Some(10_000));
        let first = form.chunk().await.unwrap().unwrap();
        assert_eq!(
            form.data_len_if_last(body.len() as u64),
            Some(10_000 - first.len() as u64),
            "what has been handed out is no longer ahead"
        );
        assert_eq!(
            form.data_len_if_last(10),
            None,
            "a length too short for the form"
        );
    }

    #[tokio::test]
    async fn parts_come_back_as_sent_in_one_piece() {
        let body = form(
            "XB",
            &[
                ("Content-Disposition: form-data; name=\"Mode\"", b"Message"),
                (
                    "Content-Disposition: form-data; name=\"File\"; filename=\"a b.pdf\"\r\nContent-Type: application/pdf; x=1",
                    b"%PDF-\r\n--X not the boundary\r\n-XB nor this\r\n",
                ),
            ],
        );
        let parts = read_all(reader(vec![&body], "XB")).await.unwrap();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].0.name.as_deref(), Some("Mode"));
        assert_eq!(parts[0].1, b"Message");
        assert_eq!(parts[1].0.file_name.as_deref(), Some("a b.pdf"));
        assert_eq!(parts[1].0.content_type.as_deref(), Some("application/pdf"));
        assert_eq!(
            parts[1].1,
            b"%PDF-\r\n--X not the boundary\r\n-XB nor this\r\n"
        );
    }

    #[tokio::test]
    async fn data_is_handed_out_as_slices_of_the_pieces_it_came_in() {
        let data = vec![7u8; 100_000];
        let body = form(
            "b",
            &[("Content-Disposition: form-data; name=\"File\"", &data)],
        );
        let head_len = body.len() - data.len() - b"\r\n--b--\r\n".len();
        let (head, rest) = body.split_at(head_len);
        let piece = Bytes::copy_from_slice(&rest[..60_000]);
        let start = piece.as_ptr() as usize;
        let pieces: Vec<Result<Bytes, io::Error>> = vec![
            Ok(Bytes::copy_from_slice(head)),
            Ok(piece.clone()),
            Ok(Bytes::copy_from_slice(&rest[60_000..])),
        ];
        let mut form = Multipart::new(futures::stream::iter(pieces).boxed(), "b", u64::MAX);
        form.next_part().await.unwrap().unwrap();
        let first = form.chunk().await.unwrap().unwrap();
        assert_eq!(first.len(), 60_000);
        assert_eq!(
            first.as_ptr() as usize,
            start,
            "the piece itself, not a copy"
        );
    }

    #[tokio::test]
    async fn a_delimiter_split_anywhere_across_pieces_is_found() {
        let data: Vec<u8> = (0..300u32).map(|i| (i % 251) as u8).collect();
        let body = form(
            "----boundary42",
            &[
                ("Content-Disposition: form-data; name=\"a\"", b"\r\n\r\r\n-"),
                ("Content-Disposition: form-data; name=\"File\"", &data),
            ],
        );
        let whole = read_all(reader(vec![&body], "----boundary42"))
            .await
            .unwrap();
        assert_eq!(whole[0].1, b"\r\n\r\r\n-");
        assert_eq!(whole[1].1, data);
        for size in 1..=20 {
            let pieces: Vec<&[u8]> = body.chunks(size).collect();
            let cut = read_all(reader(pieces, "----boundary42")).await.unwrap();
            assert_eq!(cut, whole, "pieces of {size} bytes");
        }
        for at in 0..body.len() {
            let (a, b) = body.split_at(at);
            let cut = read_all(reader(vec![a, b], "----boundary42"))
                .await
                .unwrap();
            assert_eq!(cut, whole, "cut at {at}");
        }
    }

    #[tokio::test]
    async fn a_body_that_ends_early_is_incomplete() {
        let body = form(
            "b",
            &[("Content-Disposition: form-data; name=\"x\"", b"abc")],
        );
        for end in 0..body.len() - b"--\r\n".len() {
            let outcome = read_all(reader(vec![&body[..end]], "b")).await;
            assert_eq!(
                outcome.err().as_deref(),
                Some("the body ended before the multipart form did"),
                "cut at {end}"
            );
        }
    }

    #[tokio::test]
    async fn part_headers_are_bounded() {
        let long = format!(
            "--b\r\nContent-Disposition: form-data; name=\"x\"\r\nX-Pad: {}\r\n\r\nabc\r\n--b--",
            "p".repeat(MAX_HEADER_BYTES)
        );
        let outcome = read_all(reader(vec![long.as_bytes()], "b")).await;
        assert_eq!(
            outcome.err().as_deref(),
            Some("a part's headers are longer than 8192 bytes")
        );
        let fits = format!(
            "--b\r\nContent-Disposition: form-data; name=\"x\"\r\nX-Pad: {}\r\n\r\nabc\r\n--b--",
            "p".repeat(MAX_HEADER_BYTES - 100)
        );
        let parts = read_all(reader(fits.as_bytes().chunks(1000).collect(), "b"))
            .await
            .unwrap();
        assert_eq!(parts[0].1, b"abc");
    }

    #[tokio::test]
    async fn the_whole_body_limit_is_kept() {
        let body = form(
            "b",
            &[("Content-Disposition: form-data; name=\"x\"", &[1; 100])],
        );
        let pieces: Vec<Result<Bytes, io::Error>> = body
            .chunks(10)
            .map(|p| Ok(Bytes::copy_from_slice(p)))
            .collect();
        let mut form = Multipart::new(futures::stream::iter(pieces).boxed(), "b", 50);
        form.next_part().await.unwrap().unwrap();
        let mut result = Ok(None);
        for _ in 0..20 {
            result = form.chunk().await;
            if !matches!(result, Ok(Some(_))) {
                break;
            }
        }
        assert!(matches!(result, Err(MultipartError::TooLarge(50))));
    }

    #[tokio::test]
    async fn a_read_failure_is_passed_on() {
        let pieces: Vec<Result<Bytes, io::Error>> = vec![
            Ok(Bytes::from_static(
                b"--b\r\nContent-Disposition: form-data; name=\"x\"\r\n\r\nab",
            )),
            Err(io::Error::other("reset")),
        ];
        let mut form = Multipart::new(futures::stream::iter(pieces).boxed(), "b", u64::MAX);
        form.next_part().await.unwrap().unwrap();
        let mut last = form.chunk().await;
        while let Ok(Some(_)) = last {
            last = form.chunk().await;
        }
        assert!(matches!(last, Err(MultipartError::Read(e)) if e.to_string() == "reset"));
    }

    #[test]
    fn disposition_parameters_are_read_as_multer_reads_them() {
        let cases: [(&[u8], Option<&str>, Option<&str>); 6] = [
            (b"form-data; name=\"my_field\"", Some("my_field"), None),
            (b"form-data; name=my_field  ", Some("my_field"), None),
            (b"form-data; name  =  ", Some(""), None),
            (
                b"form-data; filename=\"a.txt\"; name=\"f\"",
                Some("f"),
                Some("a.txt"),
            ),
            (
                br#"form-data; name="x"; filename="say \"hi\".txt""#,
                Some("x"),
                Some("say \"hi\".txt"),
            ),
            (b"form-data; nickname=\"n\"", None, None),
        ];
        for (value, name, file_name) in cases {
            assert_eq!(disposition_param(value, b"name").as_deref(), name);
            assert_eq!(disposition_param(value, b"filename").as_deref(), file_name);
        }
    }

    /// Random forms, whole and broken, cut into random pieces: the same parts, data and errors
    /// (as error or not) as multer, which this reader replaced.
    #[tokio::test]
    async fn reads_what_multer_reads() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(0x6d75_6c74);
        let alphabet: &[u8] = b"\r\n-bB x\"=;:";
        let (mut read, mut refused) = (0, 0);
        for round in 0..3000 {
            let boundary = ["b", "XB", "----WebKitFormBoundaryAbC123"][round % 3];
            let mut parts: Vec<(String, Vec<u8>)> = Vec::new();
            for i in 0..rng.random_range(0..4) {
                let head = match rng.random_range(0..4) {
                    0 => format!("Content-Disposition: form-data; name=\"f{i}\""),
                    1 => format!(
                        "content-disposition: form-data; name=f{i}; filename=\"x{i}.bin\"\r\nContent-Type: image/png"
                    ),
                    2 => format!("Content-Disposition: form-data; name=\"f{i}\"\r\nX-Other: 1"),
                    _ => "Content-Type: text/plain; charset=utf-8\r\nContent-Disposition: form-data; name=\"t\"".to_owned(),
                };
                let len = rng.random_range(0..200);
                let data: Vec<u8> = (0..len)
                    .map(|_| {
                        if rng.random_bool(0.5) {
                            alphabet[rng.random_range(0..alphabet.len())]
                        } else {
                            rng.random()
                        }
                    })
                    .collect();
                parts.push((head, data));
            }
            let refs: Vec<(&str, &[u8])> = parts
                .iter()
                .map(|(h, d)| (h.as_str(), d.as_slice()))
                .collect();
            let mut body = form(boundary, &refs);
            if round % 2 == 1 {
                body.splice(0..0, b"preamble\r\n".iter().copied());
            }
            match rng.random_range(0..6) {
                0 => body.truncate(rng.random_range(0..=body.len())),
                1 if !body.is_empty() => {
                    let at = rng.random_range(0..body.len());
                    body[at] = alphabet[rng.random_range(0..alphabet.len())];
                }
                _ => {}
            }
            let mut pieces: Vec<&[u8]> = Vec::new();
            let mut rest = body.as_slice();
            while !rest.is_empty() {
                let (piece, tail) = rest.split_at(rng.random_range(1..=rest.len().min(40)));
                pieces.push(piece);
                rest = tail;
            }
            let ours = read_all(reader(pieces.clone(), boundary)).await;
            let theirs = read_all_with_multer(pieces, boundary).await;
            match (&ours, &theirs) {
                (Ok(a), Ok(b)) => {
                    assert_eq!(a, b, "round {round}: {:?}", String::from_utf8_lossy(&body));
                    read += 1;
                }
                (Err(_), Err(_)) => refused += 1,
                _ => panic!(
                    "round {round}: ours {ours:?}, multer {theirs:?}, body {:?}",
                    String::from_utf8_lossy(&body)
                ),
            }
        }
        // Both kinds of outcome are compared, many times each.
        assert!(
            read > 1000 && refused > 300,
            "read {read}, refused {refused}"
        );
    }
}
