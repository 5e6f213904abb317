//! `sniff` on any first bytes with a hint chosen from a fixed list. Input: byte 0 picks the
//! declared content type, byte 1 the file name, the rest is the prefix. Checks: no panic; a
//! detected format's stored content type names it again in every mode; the hint only decides
//! what the bytes leave open (MP4 video or audio, which legacy or OOXML Office kind), and only
//! towards a format it names; a few formats' defining bytes are really there.

#![no_main]

use filegate_domain::{Format, Hint, Mode, sniff};
use libfuzzer_sys::fuzz_target;

const DECLARED: [Option<&str>; 16] = [
    None,
    Some("application/octet-stream"),
    Some("image/png"),
    Some("image/jpeg"),
    Some("audio/mp4"),
    Some("video/mp4"),
    Some("application/msword"),
    Some("application/vnd.ms-excel"),
    Some("application/vnd.ms-powerpoint"),
    Some("application/vnd.openxmlformats-officedocument.wordprocessingml.document"),
    Some("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
    Some("Application/VND.openxmlformats-officedocument.presentationml.presentation; x=1"),
    Some("text/csv"),
    Some("text/html"),
    Some("AUDIO/M4A"),
    Some(""),
];

const NAMES: [&str; 16] = [
    "",
    "file",
    "photo.jpg",
    "voice.m4a",
    "clip.MP4",
    "letter.doc",
    "sheet.xls",
    "deck.ppt",
    "letter.docx",
    "sheet.XLSX",
    "deck.pptx",
    "contacts.csv",
    "a.b.c",
    ".xlsx",
    "noext.",
    "archive.zip",
];

/// The formats the hint may choose where the bytes cannot, and what they would be without it.
fn hint_may_change(plain: Option<Format>, hinted: Option<Format>) -> bool {
    use Format::*;
    matches!(
        (plain, hinted),
        (Some(Mp4), Some(Mp4Audio)) | (None, Some(Doc | Xls | Ppt | Docx | Xlsx | Pptx))
    )
}

fuzz_target!(|data: &[u8]| {
    let (declared, file_name, prefix) = match data {
        [d, n, rest @ ..] => (
            DECLARED[usize::from(*d) % DECLARED.len()],
            NAMES[usize::from(*n) % NAMES.len()],
            rest,
        ),
        _ => (None, "", data),
    };
    let hint = Hint {
        declared,
        file_name,
    };
    let hinted = sniff(prefix, hint);
    let plain = sniff(prefix, Hint::default());

    if hinted != plain {
        assert!(
            hint_may_change(plain, hinted),
            "the hint {hint:?} turned {plain:?} into {hinted:?}"
        );
        // And only towards a format the hint names.
        let mut named = declared
            .and_then(Format::from_content_type)
            .into_iter()
            .chain(
                file_name
                    .rsplit_once('.')
                    .and_then(|(_, ext)| Format::from_extension(ext)),
            );
        assert!(
            named.any(|f| Some(f) == hinted),
            "{hinted:?} is not what {hint:?} names"
        );
    }

    for format in [plain, hinted].into_iter().flatten() {
        for mode in Mode::ALL {
            let content_type = format.content_type(mode);
            assert_eq!(
                Format::from_content_type(content_type),
                Some(format),
                "{format:?} stored as {content_type} in {mode:?} does not read back"
            );
        }
        assert!(!format.describe().is_empty());
        match format {
            Format::Png => assert!(prefix.starts_with(b"\x89PNG")),
            Format::Jpeg => assert!(prefix.starts_with(b"\xFF\xD8\xFF")),
            Format::Pdf => assert!(prefix.starts_with(b"%PDF-")),
            Format::Webp => assert!(prefix.starts_with(b"RIFF")),
            Format::Mp4 | Format::Mp4Audio | Format::ThreeGpp => {
                assert!(prefix.len() >= 12 && &prefix[4..8] == b"ftyp");
            }
            Format::Doc | Format::Xls | Format::Ppt => {
                assert!(prefix.starts_with(&[0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1]));
            }
            Format::Docx | Format::Xlsx | Format::Pptx => {
                assert!(prefix.starts_with(b"PK\x03\x04"));
            }
            Format::Text => {
                // UTF-8 with no control character but tab, line breaks and form feed, and no
                // markup: in UTF-8 those bytes only ever stand for themselves.
                let body = prefix.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(prefix);
                assert!(
                    !body
                        .iter()
                        .any(|&b| matches!(b, 0..=8 | 0x0B | 0x0E..=0x1F | 0x7F)),
                    "text with a control byte: {prefix:?}"
                );
                if let Err(e) = std::str::from_utf8(body) {
                    assert!(
                        e.error_len().is_none(),
                        "text that is not UTF-8: {prefix:?}"
                    );
                }
                let valid = match std::str::from_utf8(body) {
                    Ok(t) => t,
                    Err(e) => std::str::from_utf8(&body[..e.valid_up_to()]).unwrap_or_default(),
                };
                assert!(!valid.trim_start().starts_with('<'), "markup as text");
            }
            _ => {}
        }
    }
});
