//! The SHA-256 of a chunk or a file, as clients send it (`ChunkSha256`), stores keep it and
//! answers show it: 32 bytes, written as 64 lower-case hex digits. Computing one is I/O's
//! business; here is only the value and its one spelling.

use std::fmt;
use std::str::FromStr;

/// A SHA-256 digest.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Sha256Digest([u8; 32]);

/// Why a text is not a SHA-256 in hex.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("is not a SHA-256 in hex: expected 64 hex digits, got {0}")]
pub struct NotASha256(String);

impl Sha256Digest {
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The 64 lower-case hex digits: the form stored and answered.
    pub fn to_hex(&self) -> String {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut out = String::with_capacity(64);
        for byte in self.0 {
            out.push(char::from(DIGITS[usize::from(byte >> 4)]));
            out.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
        }
        out
    }
}

impl FromStr for Sha256Digest {
    type Err = NotASha256;

    /// 64 hex digits, either case; surrounding white space is ignored.
    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        let text = raw.trim();
        let refuse = || {
            let shown: String = text.chars().take(80).collect();
            NotASha256(if shown.is_empty() {
                "nothing".into()
            } else {
                format!("`{shown}`")
            })
        };
        if text.len() != 64 {
            return Err(refuse());
        }
        let mut bytes = [0u8; 32];
        for (byte, pair) in bytes.iter_mut().zip(text.as_bytes().chunks_exact(2)) {
            let digit = |c: u8| char::from(c).to_digit(16).ok_or_else(refuse);
            *byte = u8::try_from(digit(pair[0])? * 16 + digit(pair[1])?).map_err(|_| refuse())?;
        }
        Ok(Self(bytes))
    }
}

impl fmt::Display for Sha256Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for Sha256Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sha256Digest({})", self.to_hex())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EMPTY: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn hex_reads_in_either_case_and_writes_lower_case() {
        let digest: Sha256Digest = EMPTY.parse().unwrap();
        assert_eq!(digest.to_hex(), EMPTY);
        assert_eq!(digest.as_bytes()[0], 0xe3);
        let upper: Sha256Digest = format!(" {} ", EMPTY.to_uppercase()).parse().unwrap();
        assert_eq!(upper, digest);
        assert_eq!(Sha256Digest::from_bytes(*digest.as_bytes()), digest);
    }

    #[test]
    fn anything_but_64_hex_digits_is_refused_and_shown() {
        for bad in [
            "",
            "abc",
            &EMPTY[..63],
            &format!("{EMPTY}0"),
            &EMPTY.replace('e', "g"),
        ] {
            let err = bad.parse::<Sha256Digest>().unwrap_err();
            assert!(err.to_string().contains("64 hex digits"), "{err}");
        }
        assert!(
            "".parse::<Sha256Digest>()
                .unwrap_err()
                .to_string()
                .ends_with("got nothing")
        );
        // A multi-byte character of the right byte length is no hex digit.
        let odd = format!("é{}", &EMPTY[2..]);
        assert_eq!(odd.len(), 64);
        assert!(odd.parse::<Sha256Digest>().is_err());
    }
}
