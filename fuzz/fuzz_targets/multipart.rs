//! The chunk form's multipart parser (adapters/http/src/chunk.rs), the File's stream drained.
//!
//! Byte 0 chooses how the rest is read. Even: a raw body after a 3-byte header (byte 1: the
//! chunk limit in 16-byte steps, byte 2: the length of the pieces the body arrives in, 0 for
//! one piece, byte 3: the budget of request bytes in 16-byte steps, 255 for none), with a
//! content type chosen by byte 0's other bits (boundary `X-BOUNDARY` mostly), so that seeds
//! are readable multipart text. Odd: a well-formed form built from structured input, so that
//! every field is reached, with the fields in any order.
//!
//! Checks, always: no panic; the File's bytes never exceed the chunk limit; an error is a 400,
//! a 413, or a 503 only when a budget is set; nothing stays held against the budget once the
//! request is over. Raw bodies with no budget: the outcome does not depend on how the body is
//! cut into pieces. Built forms: what was sent comes back (fields and the File's bytes), and
//! the only errors are 413 for a File over the limit, 503 for a buffered File over the budget,
//! and 400 for a known field sent after a streamed File.

#![no_main]

use std::cell::RefCell;

use arbitrary::{Arbitrary, Unstructured};
use bytes::Bytes;
use filegate_adapter_http::fuzzing::{Outcome, ParsedChunk, parse_chunk_form_with};
use libfuzzer_sys::fuzz_target;

thread_local! {
    static RUNTIME: RefCell<Option<tokio::runtime::Runtime>> = const { RefCell::new(None) };
}

fn run(content_type: &str, pieces: Vec<Bytes>, max_chunk_bytes: usize, budget: u64) -> Outcome {
    RUNTIME.with(|rt| {
        let mut rt = rt.borrow_mut();
        let rt = rt.get_or_insert_with(|| {
            tokio::runtime::Builder::new_current_thread()
                .build()
                .expect("a current-thread runtime")
        });
        rt.block_on(parse_chunk_form_with(
            content_type,
            pieces,
            max_chunk_bytes,
            budget,
        ))
    })
}

/// `body` cut into pieces of `len` bytes (one piece when 0).
fn cut(body: &[u8], len: usize) -> Vec<Bytes> {
    if len == 0 || body.is_empty() {
        return vec![Bytes::copy_from_slice(body)];
    }
    body.chunks(len).map(Bytes::copy_from_slice).collect()
}

fn status(error: &str) -> u16 {
    error
        .get(..3)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("an error without a status: {error:?}"))
}

/// What holds for every outcome.
fn check_common(outcome: &Outcome, max_chunk_bytes: usize, budget: u64) {
    assert_eq!(outcome.held_after, 0, "bytes left held after the request");
    match &outcome.result {
        Ok(parsed) => assert!(
            parsed.data.len() <= max_chunk_bytes,
            "{} bytes passed a limit of {max_chunk_bytes}",
            parsed.data.len()
        ),
        Err(e) => match status(e) {
            400 | 413 => {}
            503 => assert!(budget != u64::MAX, "503 without a budget: {e}"),
            other => panic!("unexpected status {other}: {e}"),
        },
    }
}

const RAW_CONTENT_TYPES: [&str; 8] = [
    "multipart/form-data; boundary=X-BOUNDARY",
    "multipart/form-data; boundary=X-BOUNDARY",
    "multipart/form-data; boundary=X-BOUNDARY",
    "multipart/form-data; boundary=\"X-BOUNDARY\"",
    "Multipart/Form-Data; Boundary=X-BOUNDARY; charset=utf-8",
    "multipart/form-data",
    "multipart/form-data; boundary=",
    "text/plain; boundary=X-BOUNDARY",
];

fn raw(selector: u8, header: &[u8], body: &[u8]) {
    let content_type = RAW_CONTENT_TYPES[usize::from(selector >> 1) % RAW_CONTENT_TYPES.len()];
    let max_chunk_bytes = usize::from(header[0]) * 16;
    let piece_len = usize::from(header[1]);
    let budget = match header[2] {
        255 => u64::MAX,
        b => u64::from(b) * 16,
    };
    let outcome = run(content_type, cut(body, piece_len), max_chunk_bytes, budget);
    check_common(&outcome, max_chunk_bytes, budget);
    if budget == u64::MAX && piece_len != 0 {
        let whole = run(content_type, cut(body, 0), max_chunk_bytes, budget);
        assert_eq!(
            outcome.result, whole.result,
            "the outcome depends on how the body is cut (pieces of {piece_len})"
        );
    }
}

/// How the block is numbered.
#[derive(Debug, Arbitrary)]
enum Index {
    Block(u32),
    /// The deprecated one-based `CurrentBlock` (the value + 1).
    Current(u32),
    Both(u32),
}

#[derive(Debug, Arbitrary)]
struct Form {
    max_chunk: u16,
    budget: Option<u16>,
    piece_len: u8,
    index: Index,
    total_blocks: u16,
    mode: u8,
    file_id: Option<[u8; 16]>,
    chunk_sha256: Option<[u8; 32]>,
    upper_hex: bool,
    file_name: Option<Vec<u8>>,
    content_type: Option<u8>,
    /// Where the File goes among the other parts.
    file_position: u8,
    /// Spaces around the text values (trimmed by the parser).
    padded: bool,
    /// One bit a part: its name in upper case.
    upper_names: u16,
    extras: Vec<(u8, Vec<u8>)>,
    data: Vec<u8>,
}

const MODES: [(&str, &str); 12] = [
    ("Firm", "Firm"),
    ("profile", "Profile"),
    ("User", "Profile"),
    ("CONTACT", "Contact"),
    ("Message", "Message"),
    ("WhatsappMedia", "Message"),
    ("whatsappmedia", "Message"),
    ("Template", "Template"),
    ("Import", "Import"),
    ("iMPORT", "Import"),
    ("Profile", "Profile"),
    ("Contact", "Contact"),
];

const PART_TYPES: [&str; 6] = [
    "application/octet-stream",
    "image/png",
    "text/plain; charset=utf-8",
    "image/jpeg",
    "application/pdf",
    "video/mp4",
];

const EXTRA_NAMES: [&str; 4] = ["Extra", "note", "Files", "block_index"];

const NAME_ALPHABET: &[u8] = b"abcXYZ0129 ._-()";

/// A text or file part of a multipart body.
struct Part {
    name: String,
    file_name: Option<String>,
    content_type: Option<&'static str>,
    value: Vec<u8>,
    /// A field the parser knows (not an extra).
    known: bool,
}

fn hex(bytes: &[u8], upper: bool) -> String {
    bytes
        .iter()
        .map(|b| {
            if upper {
                format!("{b:02X}")
            } else {
                format!("{b:02x}")
            }
        })
        .collect()
}

fn uuid(bytes: &[u8; 16]) -> String {
    let h = hex(bytes, false);
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

fn structured(u: &mut Unstructured<'_>) {
    let Ok(form) = Form::arbitrary(u) else {
        return;
    };
    let max_chunk_bytes = 256 + usize::from(form.max_chunk % 2048);
    let budget = form.budget.map_or(u64::MAX, u64::from);
    let pad = |v: String| if form.padded { format!(" {v}\t") } else { v };

    let (mode_sent, mode) = MODES[usize::from(form.mode) % MODES.len()];
    let (block_index, mut parts) = {
        let text = |name: &str, value: String| Part {
            name: name.to_owned(),
            file_name: None,
            content_type: None,
            value: pad(value).into_bytes(),
            known: true,
        };
        let mut parts = vec![
            text("TotalBlocks", form.total_blocks.to_string()),
            text("Mode", mode_sent.to_owned()),
        ];
        let index = match form.index {
            Index::Block(i) => {
                parts.push(text("BlockIndex", i.to_string()));
                i64::from(i)
            }
            Index::Current(i) => {
                parts.push(text("CurrentBlock", (i64::from(i) + 1).to_string()));
                i64::from(i)
            }
            Index::Both(i) => {
                parts.push(text("CurrentBlock", (i64::from(i) + 1).to_string()));
                parts.push(text("BlockIndex", i.to_string()));
                i64::from(i)
            }
        };
        if let Some(id) = &form.file_id {
            parts.push(text("FileId", uuid(id)));
        }
        if let Some(sha) = &form.chunk_sha256 {
            parts.push(text("ChunkSha256", hex(sha, form.upper_hex)));
        }
        (index, parts)
    };
    for (name, value) in form.extras.iter().take(3) {
        parts.push(Part {
            name: EXTRA_NAMES[usize::from(*name) % EXTRA_NAMES.len()].to_owned(),
            file_name: None,
            content_type: None,
            value: value.iter().copied().take(200).collect(),
            known: false,
        });
    }
    let file_name: Option<String> = form.file_name.as_ref().map(|raw| {
        raw.iter()
            .take(64)
            .map(|b| char::from(NAME_ALPHABET[usize::from(*b) % NAME_ALPHABET.len()]))
            .collect()
    });
    let part_type = form
        .content_type
        .map(|t| PART_TYPES[usize::from(t) % PART_TYPES.len()]);
    let file_at = usize::from(form.file_position) % (parts.len() + 1);
    parts.insert(
        file_at,
        Part {
            name: "File".to_owned(),
            file_name: file_name.clone(),
            content_type: part_type,
            value: form.data.clone(),
            known: true,
        },
    );
    let known_after_file = parts[file_at + 1..].iter().any(|p| p.known);
    for (i, part) in parts.iter_mut().enumerate() {
        if form.upper_names & (1 << (i % 16)) != 0 {
            part.name = part.name.to_ascii_uppercase();
        }
    }

    // A boundary that no value contains.
    let boundary = (0u32..)
        .map(|n| format!("fgB{n}"))
        .find(|b| {
            !parts
                .iter()
                .any(|p| p.value.windows(b.len()).any(|w| w == b.as_bytes()))
        })
        .unwrap_or_default();
    let mut body = Vec::new();
    for part in &parts {
        body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        let mut disposition = format!("Content-Disposition: form-data; name=\"{}\"", part.name);
        if let Some(name) = &part.file_name {
            disposition.push_str(&format!("; filename=\"{name}\""));
        }
        body.extend_from_slice(disposition.as_bytes());
        body.extend_from_slice(b"\r\n");
        if let Some(t) = part.content_type {
            body.extend_from_slice(format!("Content-Type: {t}\r\n").as_bytes());
        }
        body.extend_from_slice(b"\r\n");
        body.extend_from_slice(&part.value);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());

    let content_type = format!("multipart/form-data; boundary={boundary}");
    let outcome = run(
        &content_type,
        cut(&body, usize::from(form.piece_len)),
        max_chunk_bytes,
        budget,
    );
    check_common(&outcome, max_chunk_bytes, budget);

    let data_len = form.data.len();
    match outcome.result {
        Ok(parsed) => {
            let expected = ParsedChunk {
                file_id: form.file_id.as_ref().map(uuid),
                block_index,
                total_blocks: i64::from(form.total_blocks),
                mode,
                file_name,
                content_type: part_type.map(|t| t.split(';').next().unwrap_or(t).to_owned()),
                chunk_sha256: form.chunk_sha256.as_ref().map(|s| hex(s, false)),
                data: form.data,
            };
            assert_eq!(parsed, expected, "the form did not come back as sent");
        }
        Err(e) => {
            let ok = match status(&e) {
                413 => data_len > max_chunk_bytes,
                503 => data_len as u64 > budget,
                400 => known_after_file && e.contains("must come before File"),
                _ => false,
            };
            assert!(
                ok,
                "a well-formed form was refused: {e} ({data_len} bytes, limit {max_chunk_bytes}, \
                 budget {budget}, File at {file_at} of {})",
                parts.len()
            );
        }
    }
}

fuzz_target!(|data: &[u8]| {
    match data {
        [selector, rest @ ..] if selector % 2 == 1 => structured(&mut Unstructured::new(rest)),
        [selector, a, b, c, body @ ..] => raw(*selector, &[*a, *b, *c], body),
        _ => {}
    }
});
