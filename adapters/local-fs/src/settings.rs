//! Where the adapter keeps its files, as read from the configuration.

use std::path::PathBuf;

use serde::Deserialize;

/// The local file system settings. An unknown key is refused: a misspelt setting would otherwise
/// fall back to its default without a word.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LocalFsSettings {
    /// The folder holding every file (under `{mode prefix}/{file id}/{name}`) and, in its
    /// `.staging` subfolder, the blocks of uploads in progress. Created at startup when missing;
    /// a relative path is taken from the working directory. Default: `./filegate-data/blobs`.
    pub root: PathBuf,
    /// Flush each staged block to the disk (`fsync`) before answering, so that a block the
    /// metadata store has recorded survives a power loss. `false` is faster but a power loss
    /// may then lose recorded blocks, and the upload cannot be completed. Default: `true`.
    pub sync_blocks: bool,
    /// Flush a committed file and its folders to the disk before the commit is recorded, so
    /// that a file reported complete survives a power loss. `false` leaves the writing to the
    /// operating system, as tus servers do: a power loss may then lose or cut files reported
    /// complete. Default: `true`.
    pub sync_commits: bool,
    /// Readiness fails (`unavailable`) while the root's file system has fewer bytes free for
    /// the service than this: a load balancer then sends uploads elsewhere before writes fail.
    /// Default 1 GiB; 0 turns the check off.
    pub min_free_bytes: u64,
}

impl Default for LocalFsSettings {
    fn default() -> Self {
        Self {
            root: PathBuf::from("./filegate-data/blobs"),
            sync_blocks: true,
            sync_commits: true,
            min_free_bytes: 1024 * 1024 * 1024,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn settings_deserialize_with_defaults() {
        let settings: LocalFsSettings = serde_json::from_str("{}").unwrap();
        assert_eq!(settings, LocalFsSettings::default());
        assert_eq!(settings.root, PathBuf::from("./filegate-data/blobs"));
        assert!(settings.sync_blocks && settings.sync_commits);

        let settings: LocalFsSettings = serde_json::from_str(
            r#"{"root": "/srv/files", "sync_blocks": false, "sync_commits": false}"#,
        )
        .unwrap();
        assert_eq!(settings.root, PathBuf::from("/srv/files"));
        assert!(!settings.sync_blocks && !settings.sync_commits);
    }
}
