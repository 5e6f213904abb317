//! Where a file lives and what is known about it once committed (the seed's `AzureFileObj`).

use chrono::{DateTime, Utc};
use std::fmt;

use crate::file_name::FileName;
use crate::ids::{FileId, FirmId, UserId};
use crate::mode::Mode;

/// The path of a file inside the container: `{prefix}/{fileId}/{safe file name}`, the name in
/// its storage form (plain ASCII). The file id segment makes every path unique, so two uploads
/// never write to the same blob.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BlobPath(String);

impl BlobPath {
    pub fn for_file(mode: Mode, firm: FirmId, user: UserId, file: FileId, name: &FileName) -> Self {
        Self(format!(
            "{}/{file}/{}",
            mode.blob_prefix(firm, user),
            name.storage_segment()
        ))
    }

    /// Rebuilds a path read back from the metadata store, which only ever stores paths made by
    /// [`BlobPath::for_file`].
    pub fn from_stored(path: String) -> Self {
        Self(path)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for BlobPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A committed file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileRecord {
    pub id: FileId,
    pub firm: FirmId,
    pub user: UserId,
    pub mode: Mode,
    pub blob_path: BlobPath,
    /// The blob's address without any signature; a signed URL is made when it is handed out,
    /// since a stored signature would expire.
    pub url: String,
    pub file_name: FileName,
    pub content_type: String,
    pub size: u64,
    pub created_at: DateTime<Utc>,
    /// The SHA-256 of the file's bytes; `None` until it is known (an upload whose blocks did
    /// not arrive in order is hashed after its commit, and files stored before checksums
    /// existed get one from `filegate check --repair`).
    pub sha256: Option<crate::Sha256Digest>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    #[test]
    fn the_path_is_prefix_then_file_id_then_name() {
        let firm = FirmId::from_uuid(Uuid::from_u128(7));
        let user = UserId::from_uuid(Uuid::from_u128(8));
        let file = FileId::from_uuid(Uuid::from_u128(9));
        let path = BlobPath::for_file(Mode::Import, firm, user, file, &FileName::sanitize("c.csv"));
        assert_eq!(path.as_str(), format!("imports/{firm}/{file}/c.csv"));
    }
}
