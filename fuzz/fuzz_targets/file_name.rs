//! `FileName::sanitize` on any text: the result is always one safe path segment (the
//! promises of domain/src/file_name.rs), sanitizing is idempotent, a stored name reads back,
//! the storage segment needs no URL encoding, and a name that is already safe is kept as is.

#![no_main]

use filegate_domain::FileName;
use libfuzzer_sys::fuzz_target;

/// `file_name::MAX_LEN` (private there).
const MAX_LEN: usize = 200;

fn allowed(c: char) -> bool {
    (c.is_alphanumeric() && !c.is_control())
        || matches!(
            c,
            '-' | '_' | '.' | '(' | ')' | '[' | ']' | '+' | ',' | '@' | ' '
        )
}

fuzz_target!(|data: &[u8]| {
    let raw = String::from_utf8_lossy(data);
    let name = FileName::sanitize(&raw);
    let s = name.as_str();

    // One safe segment.
    assert!(!s.is_empty(), "empty name from {raw:?}");
    assert!(s.len() <= MAX_LEN, "{} bytes from {raw:?}", s.len());
    assert!(!s.contains(['/', '\\']), "separator in {s:?}");
    assert!(!s.chars().any(char::is_control), "control in {s:?}");
    assert!(s.chars().all(allowed), "disallowed character in {s:?}");
    assert!(s != "." && s != "..");
    assert!(!s.starts_with(['.', ' ']), "leading dot or space in {s:?}");
    assert!(!s.ends_with(['.', ' ']), "trailing dot or space in {s:?}");
    assert_eq!(name.to_string(), s);

    // Idempotent, and what is stored reads back.
    assert_eq!(
        FileName::sanitize(s),
        name,
        "sanitizing {s:?} again changed it"
    );
    assert_eq!(FileName::from_stored(s.to_owned()), Some(name.clone()));

    // The storage segment: plain ASCII, unreserved only, one character for each of the name's.
    let segment = name.storage_segment();
    assert!(!segment.is_empty());
    assert!(
        segment
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')),
        "segment {segment:?} needs encoding"
    );
    assert!(segment.len() <= MAX_LEN);
    assert_eq!(segment.chars().count(), s.chars().count());
    assert!(!segment.starts_with('.') && segment != "." && segment != "..");

    // The extension is the name's last dotted part, lower-cased.
    if let Some(ext) = name.extension() {
        assert!(!ext.is_empty() && !ext.contains('.'));
        let (stem, tail) = s.rsplit_once('.').expect("an extension follows a dot");
        assert!(!stem.is_empty());
        assert_eq!(tail.to_ascii_lowercase(), ext);
    }

    // A name that is already one safe segment is kept unchanged.
    let last = raw.rsplit(['/', '\\']).next().unwrap_or_default();
    if !last.is_empty()
        && last.len() <= MAX_LEN
        && last.chars().all(allowed)
        && !last.starts_with(['.', ' '])
        && !last.ends_with(['.', ' '])
    {
        assert_eq!(s, last, "a safe name was changed");
    }
    // A shortened name keeps a short extension.
    if last.len() > MAX_LEN
        && let Some((stem, ext)) = last.rsplit_once('.')
    {
        let clean = |t: &str| t.chars().all(allowed) && !t.ends_with(['.', ' ']);
        let stem_ok = stem
            .chars()
            .next()
            .is_some_and(|c| allowed(c) && c != '.' && c != ' ');
        if !ext.is_empty() && ext.len() <= 16 && clean(ext) && stem_ok {
            assert!(s.ends_with(&format!(".{ext}")), "{s:?} lost .{ext}");
        }
    }
});
