//! Sorting file system failures into what the caller can do about them.
//!
//! A missing file is `NotFound` (or, when the root folder itself is gone, `ContainerMissing`;
//! the store decides that, as it knows its root). `Unavailable` (503 with `Retry-After`) is what
//! the same request may pass later without the client changing anything: a busy or timed-out
//! (network) file system, the process or system out of file descriptors under load, and also a
//! full disk, a quota, a permission or a read-only file system: they need an operator, but the
//! client's request was right, and a 500 would tell it otherwise (issue 11). Everything else is
//! `Unknown`.

use std::io;

use filegate_application::ports::BlobError;

/// `ENFILE` and `EMFILE`: too many open files in the system or in this process. The same on
/// Linux, macOS and the BSDs.
#[cfg(unix)]
const TOO_MANY_OPEN_FILES: [i32; 2] = [23, 24];

/// Classifies a failure other than a missing file, with what was being done.
pub(crate) fn classify(err: io::Error, context: String) -> BlobError {
    let transient = is_transient(&err);
    let err = anyhow::Error::new(err).context(context);
    if transient {
        BlobError::Unavailable(err)
    } else {
        BlobError::Unknown(err)
    }
}

/// A failure the same request may not meet a moment later.
pub(crate) fn is_transient(err: &io::Error) -> bool {
    use io::ErrorKind::*;
    matches!(
        err.kind(),
        TimedOut
            | Interrupted
            | WouldBlock
            | ResourceBusy
            | StaleNetworkFileHandle
            | NetworkDown
            | NetworkUnreachable
            | HostUnreachable
            | StorageFull
            | QuotaExceeded
            | PermissionDenied
            | ReadOnlyFilesystem
    ) || too_many_open_files(err)
}

#[cfg(unix)]
fn too_many_open_files(err: &io::Error) -> bool {
    err.raw_os_error()
        .is_some_and(|code| TOO_MANY_OPEN_FILES.contains(&code))
}

#[cfg(not(unix))]
fn too_many_open_files(_err: &io::Error) -> bool {
    false
}

/// Whether a failure means that the file (or a folder on its way) does not exist.
pub(crate) fn is_missing(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_are_sorted_by_what_the_caller_can_do() {
        let e = classify(io::Error::from(io::ErrorKind::TimedOut), "reading".into());
        assert!(matches!(e, BlobError::Unavailable(_)));
        // The client's request was right; the operator has to act: 503, not 500.
        for kind in [
            io::ErrorKind::StorageFull,
            io::ErrorKind::QuotaExceeded,
            io::ErrorKind::PermissionDenied,
            io::ErrorKind::ReadOnlyFilesystem,
        ] {
            let e = classify(io::Error::from(kind), "writing".into());
            assert!(matches!(e, BlobError::Unavailable(_)), "{kind:?}");
        }
        let e = classify(
            io::Error::from(io::ErrorKind::InvalidData),
            "reading".into(),
        );
        assert!(matches!(e, BlobError::Unknown(_)));
        #[cfg(unix)]
        {
            let e = classify(io::Error::from_raw_os_error(24), "opening".into());
            assert!(matches!(e, BlobError::Unavailable(_)), "{e:?}");
        }
    }

    #[test]
    fn the_context_is_kept() {
        for kind in [io::ErrorKind::InvalidData, io::ErrorKind::PermissionDenied] {
            let e = classify(io::Error::from(kind), "staging a block of `a/b`".into());
            let chain = anyhow::Error::new(e);
            assert!(
                format!("{chain:#}").contains("staging a block of `a/b`"),
                "{kind:?}: {chain:#}"
            );
        }
    }

    #[test]
    fn a_missing_folder_on_the_way_is_a_missing_file() {
        assert!(is_missing(&io::Error::from(io::ErrorKind::NotFound)));
        assert!(is_missing(&io::Error::from(io::ErrorKind::NotADirectory)));
        assert!(!is_missing(&io::Error::from(
            io::ErrorKind::PermissionDenied
        )));
    }
}
