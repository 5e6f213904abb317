//! Per-mode size caps (contract section 6). A file over its mode's cap is refused with 413 as
//! soon as the bytes received show it, and at the latest when it would be committed.

use crate::mode::Mode;

const MIB: u64 = 1024 * 1024;
const MB: u64 = 1_000_000;

/// The largest file each mode accepts, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SizeCaps {
    pub firm: u64,
    pub profile: u64,
    pub contact: u64,
    pub message: u64,
    pub template: u64,
    pub import: u64,
}

impl Default for SizeCaps {
    /// Images for logos and pictures 5 MiB; WhatsApp media and templates up to Meta's largest
    /// (documents, 100 MB); CSV imports 50 MiB.
    fn default() -> Self {
        Self {
            firm: 5 * MIB,
            profile: 5 * MIB,
            contact: 5 * MIB,
            message: 100 * MB,
            template: 100 * MB,
            import: 50 * MIB,
        }
    }
}

/// A file larger than its mode allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the file has at least {size} bytes; {mode} files may have at most {cap} bytes")]
pub struct FileTooLarge {
    pub mode: Mode,
    pub size: u64,
    pub cap: u64,
}

impl SizeCaps {
    pub fn cap(&self, mode: Mode) -> u64 {
        match mode {
            Mode::Firm => self.firm,
            Mode::Profile => self.profile,
            Mode::Contact => self.contact,
            Mode::Message => self.message,
            Mode::Template => self.template,
            Mode::Import => self.import,
        }
    }

    /// Checks that `size` bytes (all or part of a file) fit the mode's cap.
    pub fn check(&self, mode: Mode, size: u64) -> Result<(), FileTooLarge> {
        let cap = self.cap(mode);
        if size > cap {
            Err(FileTooLarge { mode, size, cap })
        } else {
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pictures_are_capped_at_five_mib_and_imports_at_fifty() {
        let caps = SizeCaps::default();
        assert_eq!(caps.check(Mode::Profile, 5 * MIB), Ok(()));
        assert_eq!(
            caps.check(Mode::Profile, 5 * MIB + 1),
            Err(FileTooLarge {
                mode: Mode::Profile,
                size: 5 * MIB + 1,
                cap: 5 * MIB
            })
        );
        assert!(caps.check(Mode::Import, 50 * MIB + 1).is_err());
        assert!(caps.check(Mode::Message, 100 * MB).is_ok());
    }
}
