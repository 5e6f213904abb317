//! Byte ranges of a committed file, as a client asks for them (`Range: bytes=...`). Only single
//! ranges are modelled; the rules of RFC 9110 section 14.1.2 decide what each form means for a
//! file of a given size.

use std::ops::Range;

/// One range as written by the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeSpec {
    /// `bytes=a-b`, both inclusive.
    FromTo(u64, u64),
    /// `bytes=a-`.
    From(u64),
    /// `bytes=-n`: the last `n` bytes.
    Suffix(u64),
}

/// The range asks for nothing that exists in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the range is outside the file of {size} bytes")]
pub struct Unsatisfiable {
    pub size: u64,
}

impl RangeSpec {
    /// Parses a `Range` header value. Anything but one well-formed byte range is `None`, which
    /// RFC 9110 lets a server answer with the whole file.
    pub fn parse(header: &str) -> Option<Self> {
        // The range unit is case-insensitive (RFC 9110, section 14.1).
        let header = header.trim();
        let (unit, spec) = header.split_once('=')?;
        if !unit.trim().eq_ignore_ascii_case("bytes") {
            return None;
        }
        let spec = spec.trim();
        if spec.contains(',') {
            return None;
        }
        let (start, end) = spec.split_once('-')?;
        let (start, end) = (start.trim(), end.trim());
        match (start.is_empty(), end.is_empty()) {
            (true, false) => end.parse().ok().map(RangeSpec::Suffix),
            (false, true) => start.parse().ok().map(RangeSpec::From),
            (false, false) => {
                let (a, b) = (start.parse().ok()?, end.parse().ok()?);
                (a <= b).then_some(RangeSpec::FromTo(a, b))
            }
            (true, true) => None,
        }
    }

    /// The half-open byte range this spec selects in a file of `size` bytes.
    pub fn resolve(self, size: u64) -> Result<Range<u64>, Unsatisfiable> {
        let range = match self {
            RangeSpec::FromTo(a, b) => a..b.saturating_add(1).min(size),
            RangeSpec::From(a) => a..size,
            RangeSpec::Suffix(n) => size.saturating_sub(n)..size,
        };
        if range.start >= size || range.is_empty() {
            return Err(Unsatisfiable { size });
        }
        Ok(range)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The unit is case-insensitive; another unit is not a byte range.
    #[test]
    fn the_unit_is_read_in_any_case() {
        assert_eq!(RangeSpec::parse("BYTES=0-1"), Some(RangeSpec::FromTo(0, 1)));
        assert_eq!(RangeSpec::parse(" Bytes = 5-"), Some(RangeSpec::From(5)));
        assert_eq!(RangeSpec::parse("items=0-1"), None);
        assert_eq!(RangeSpec::parse("bytes0-1"), None);
    }

    #[test]
    fn the_three_forms_parse() {
        assert_eq!(
            RangeSpec::parse("bytes=0-99"),
            Some(RangeSpec::FromTo(0, 99))
        );
        assert_eq!(RangeSpec::parse("bytes=100-"), Some(RangeSpec::From(100)));
        assert_eq!(RangeSpec::parse("bytes=-5"), Some(RangeSpec::Suffix(5)));
    }

    #[test]
    fn several_ranges_or_garbage_mean_the_whole_file() {
        assert_eq!(RangeSpec::parse("bytes=0-1,5-6"), None);
        assert_eq!(RangeSpec::parse("items=0-1"), None);
        assert_eq!(RangeSpec::parse("bytes=5-1"), None);
        assert_eq!(RangeSpec::parse("bytes=-"), None);
    }

    #[test]
    fn ranges_are_clamped_to_the_file_or_unsatisfiable() {
        assert_eq!(RangeSpec::FromTo(0, 99).resolve(10), Ok(0..10));
        assert_eq!(RangeSpec::Suffix(50).resolve(10), Ok(0..10));
        assert_eq!(
            RangeSpec::From(10).resolve(10),
            Err(Unsatisfiable { size: 10 })
        );
        assert_eq!(
            RangeSpec::Suffix(0).resolve(10),
            Err(Unsatisfiable { size: 10 })
        );
        assert_eq!(
            RangeSpec::From(0).resolve(0),
            Err(Unsatisfiable { size: 0 })
        );
    }

    proptest! {
        #[test]
        fn a_resolved_range_is_inside_the_file(a in 0u64..1000, b in 0u64..1000, size in 0u64..1000) {
            for spec in [RangeSpec::FromTo(a.min(b), a.max(b)), RangeSpec::From(a), RangeSpec::Suffix(a)] {
                if let Ok(r) = spec.resolve(size) {
                    prop_assert!(r.start < r.end && r.end <= size);
                }
            }
        }
    }
}
