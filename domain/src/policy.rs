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

/// How long an open upload may go without a chunk before the sweeper expires it: one time for
/// every mode, unless a mode has its own (imports are typically retried within the hour,
/// profile pictures never come back).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpiryPolicy {
    default: std::time::Duration,
    by_mode: Vec<(Mode, std::time::Duration)>,
}

impl ExpiryPolicy {
    pub fn new(default: std::time::Duration) -> Self {
        Self {
            default,
            by_mode: Vec::new(),
        }
    }

    /// The same policy with `mode`'s own time.
    pub fn with_mode(mut self, mode: Mode, after: std::time::Duration) -> Self {
        self.by_mode.retain(|(m, _)| *m != mode);
        self.by_mode.push((mode, after));
        self
    }

    /// How long an upload of `mode` may stay idle.
    pub fn after(&self, mode: Mode) -> std::time::Duration {
        self.by_mode
            .iter()
            .find(|(m, _)| *m == mode)
            .map_or(self.default, |(_, after)| *after)
    }
}

impl Default for ExpiryPolicy {
    /// A day, for every mode.
    fn default() -> Self {
        Self::new(std::time::Duration::from_secs(86_400))
    }
}

#[cfg(test)]
mod expiry_tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_mode_of_its_own_overrides_the_default() {
        let policy = ExpiryPolicy::new(Duration::from_secs(100))
            .with_mode(Mode::Import, Duration::from_secs(10))
            .with_mode(Mode::Import, Duration::from_secs(20));
        assert_eq!(policy.after(Mode::Import), Duration::from_secs(20));
        assert_eq!(policy.after(Mode::Message), Duration::from_secs(100));
        assert_eq!(
            ExpiryPolicy::default().after(Mode::Firm),
            Duration::from_secs(86_400)
        );
    }
}
