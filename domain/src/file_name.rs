//! The file name a blob is stored under, derived from the client's part filename. Clients send
//! whatever their OS or a malicious script gives them (`C:\Users\x\a.png`, `../../etc/passwd`,
//! control characters), so the name is reduced to a conservative character set that is safe as
//! one segment of a blob path and of a local file path.

use std::fmt;

/// Longest name kept, in bytes: well under Azure's 1,024-character blob name limit once the
/// prefix and the file id are added, and under the 255 bytes of common file systems.
const MAX_LEN: usize = 200;
/// Longest extension kept when a long name is shortened.
const MAX_EXTENSION: usize = 16;
const FALLBACK: &str = "file";

/// A sanitized file name: one path segment, never empty, never `.`/`..`, no hidden-file dot.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FileName(String);

impl FileName {
    /// Keeps the last path component of `raw` (either separator), replaces every character
    /// outside letters, digits and `-_.()[]+,@ ` by `_`, drops leading dots and surrounding
    /// spaces, and shortens it to `MAX_LEN` bytes keeping the extension. Falls back to `file`.
    pub fn sanitize(raw: &str) -> Self {
        let last = raw.rsplit(['/', '\\']).next().unwrap_or_default();
        let mapped: String = last
            .chars()
            .map(|c| if Self::is_allowed(c) { c } else { '_' })
            .collect();
        let trimmed = mapped
            .trim_start_matches([' ', '.'])
            .trim_end_matches([' ', '.']);
        let shortened = Self::shorten(trimmed);
        if shortened.is_empty() {
            return Self(FALLBACK.to_owned());
        }
        Self(shortened)
    }

    /// Reads a stored name back. Only sanitized names are ever written and sanitizing is
    /// idempotent, so a name that sanitizing would change did not come from this service: `None`.
    pub fn from_stored(stored: String) -> Option<Self> {
        let name = Self::sanitize(&stored);
        (name.0 == stored).then_some(name)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The name as one segment of a storage path: ASCII letters, digits, `-`, `_` and `.` only,
    /// everything else `_`. Blob URLs carry the path percent-encoded, and signed URLs of names
    /// that need encoding are refused by some storage implementations (Azurite refuses SAS URLs
    /// with a space); an unreserved-only segment needs no encoding anywhere. The display name
    /// (`as_str`) keeps the client's characters.
    pub fn storage_segment(&self) -> String {
        self.0
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                    c
                } else {
                    '_'
                }
            })
            .collect()
    }

    /// The lower-cased extension without its dot, if any.
    pub fn extension(&self) -> Option<String> {
        self.0
            .rsplit_once('.')
            .filter(|(stem, ext)| !stem.is_empty() && !ext.is_empty())
            .map(|(_, ext)| ext.to_ascii_lowercase())
    }

    fn is_allowed(c: char) -> bool {
        c.is_alphanumeric() && !c.is_control()
            || matches!(
                c,
                '-' | '_' | '.' | '(' | ')' | '[' | ']' | '+' | ',' | '@' | ' '
            )
    }

    fn shorten(name: &str) -> String {
        if name.len() <= MAX_LEN {
            return name.to_owned();
        }
        let (stem, ext) = match name.rsplit_once('.') {
            Some((stem, ext)) if !stem.is_empty() && ext.len() <= MAX_EXTENSION => {
                (stem, Some(ext))
            }
            _ => (name, None),
        };
        let budget = MAX_LEN - ext.map_or(0, |e| e.len() + 1);
        let mut cut = budget.min(stem.len());
        while !stem.is_char_boundary(cut) {
            cut -= 1;
        }
        let stem = stem[..cut].trim_end_matches([' ', '.']);
        match ext {
            Some(ext) => format!("{stem}.{ext}"),
            None => stem.to_owned(),
        }
    }
}

impl fmt::Display for FileName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn directories_of_either_os_are_dropped() {
        assert_eq!(
            FileName::sanitize("C:\\Users\\me\\logo.png").as_str(),
            "logo.png"
        );
        assert_eq!(
            FileName::sanitize("/home/me/photo.jpeg").as_str(),
            "photo.jpeg"
        );
    }

    #[test]
    fn path_tricks_fall_back_or_lose_their_dots() {
        assert_eq!(FileName::sanitize("../../etc/passwd").as_str(), "passwd");
        assert_eq!(FileName::sanitize("..").as_str(), "file");
        assert_eq!(FileName::sanitize(".").as_str(), "file");
        assert_eq!(FileName::sanitize("").as_str(), "file");
        assert_eq!(FileName::sanitize(".bashrc").as_str(), "bashrc");
        assert_eq!(FileName::sanitize("dir/").as_str(), "file");
    }

    #[test]
    fn control_and_odd_characters_become_underscores() {
        assert_eq!(FileName::sanitize("a\u{0}b\nc?.txt").as_str(), "a_b_c_.txt");
        assert_eq!(
            FileName::sanitize("résumé 2024.pdf").as_str(),
            "résumé 2024.pdf"
        );
    }

    #[test]
    fn only_sanitized_names_read_back() {
        assert_eq!(
            FileName::from_stored("a.png".into())
                .map(|n| n.to_string())
                .as_deref(),
            Some("a.png")
        );
        assert_eq!(FileName::from_stored("../a.png".into()), None);
    }

    #[test]
    fn the_storage_segment_is_plain_ascii() {
        assert_eq!(
            FileName::sanitize("résumé 2024 (1).pdf").storage_segment(),
            "r_sum__2024__1_.pdf"
        );
        assert_eq!(FileName::sanitize("logo.png").storage_segment(), "logo.png");
    }

    #[test]
    fn a_long_name_keeps_its_extension() {
        let long = format!("{}.pdf", "x".repeat(500));
        let name = FileName::sanitize(&long);
        assert_eq!(name.as_str().len(), MAX_LEN);
        assert_eq!(name.extension().as_deref(), Some("pdf"));
    }

    proptest! {
        #[test]
        fn a_sanitized_name_is_always_one_safe_segment(raw in any::<String>()) {
            let name = FileName::sanitize(&raw);
            let s = name.as_str();
            prop_assert!(!s.is_empty());
            prop_assert!(s.len() <= MAX_LEN);
            prop_assert!(!s.contains('/') && !s.contains('\\'));
            prop_assert!(!s.chars().any(char::is_control));
            prop_assert!(!s.starts_with('.'));
            prop_assert!(s != "." && s != "..");
            prop_assert!(!s.starts_with(' ') && !s.ends_with(' ') && !s.ends_with('.'));
        }

        #[test]
        fn a_storage_segment_needs_no_url_encoding(raw in any::<String>()) {
            let segment = FileName::sanitize(&raw).storage_segment();
            prop_assert!(!segment.is_empty() && !segment.starts_with('.'));
            prop_assert!(segment.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')));
            prop_assert!(segment != "." && segment != "..");
        }

        #[test]
        fn sanitizing_twice_changes_nothing(raw in any::<String>()) {
            let once = FileName::sanitize(&raw);
            prop_assert_eq!(FileName::sanitize(once.as_str()), once);
        }

        #[test]
        fn plain_names_pass_unchanged(stem in "[A-Za-z0-9_-]{1,40}", ext in "[a-z]{1,5}") {
            let raw = format!("{stem}.{ext}");
            let name = FileName::sanitize(&raw);
            prop_assert_eq!(name.as_str(), raw.as_str());
        }
    }
}
