//! An upload session: opened by block 0, fed by the other blocks in any order, committed once.

use chrono::{DateTime, Utc};

use crate::blocks::TotalBlocks;
use crate::file_name::FileName;
use crate::ids::{FileId, FirmId, UserId};
use crate::mode::Mode;
use crate::record::BlobPath;

/// Where a session stands. `Committed` is final: no chunk is accepted after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionState {
    Open,
    Committed,
    /// No chunk arrived for the mode's expiry time; the sweeper expired it and its staged
    /// bytes are gone. A chunk or a status request for it is answered 410 Gone.
    Expired,
    /// Deleted by its firm: a tombstone. Everything about it answers 404.
    Deleted,
}

impl SessionState {
    pub const fn as_str(&self) -> &'static str {
        match self {
            SessionState::Open => "open",
            SessionState::Committed => "committed",
            SessionState::Expired => "expired",
            SessionState::Deleted => "deleted",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "open" => Some(SessionState::Open),
            "committed" => Some(SessionState::Committed),
            "expired" => Some(SessionState::Expired),
            "deleted" => Some(SessionState::Deleted),
            _ => None,
        }
    }
}

/// Why a chunk cannot join a session (all of them are a conflict, 409, for the client).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChunkMismatch {
    #[error("the file is already complete; start a new upload without FileId")]
    AlreadyCommitted,
    #[error("TotalBlocks is {sent} but the upload was started with {expected}")]
    TotalBlocksDiffers { expected: u32, sent: u32 },
    #[error("Mode is {sent} but the upload was started with {expected}")]
    ModeDiffers { expected: Mode, sent: Mode },
    /// Block 0 sent again with bytes of another format than the upload was opened with.
    #[error("block 0 was first sent as {expected}; this copy of it is {sent}")]
    FormatDiffers {
        expected: &'static str,
        sent: &'static str,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadSession {
    pub file_id: FileId,
    pub firm: FirmId,
    pub user: UserId,
    pub mode: Mode,
    pub total_blocks: TotalBlocks,
    pub file_name: FileName,
    /// The content type of the format block 0's bytes showed; the stored type of the file.
    /// (Sessions opened before formats were checked keep the type their client declared.)
    pub content_type: String,
    pub blob_path: BlobPath,
    /// The blob store's handle for the staged blocks (empty for stores that need none).
    pub upload_id: String,
    pub state: SessionState,
    pub created_at: DateTime<Utc>,
}

impl UploadSession {
    /// The format of the stored content type (`None` for a session opened before formats
    /// were checked, whose type is whatever its client declared).
    pub fn format(&self) -> Option<crate::content::Format> {
        crate::content::Format::from_content_type(&self.content_type)
    }

    /// Checks that a later chunk belongs to this session as it was opened: same mode, same
    /// total, and the session still open. Mode and total never change after block 0.
    pub fn admit(&self, mode: Mode, total: TotalBlocks) -> Result<(), ChunkMismatch> {
        if self.state == SessionState::Committed {
            return Err(ChunkMismatch::AlreadyCommitted);
        }
        if self.total_blocks != total {
            return Err(ChunkMismatch::TotalBlocksDiffers {
                expected: self.total_blocks.get(),
                sent: total.get(),
            });
        }
        if self.mode != mode {
            return Err(ChunkMismatch::ModeDiffers {
                expected: self.mode,
                sent: mode,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    fn session(state: SessionState) -> UploadSession {
        let firm = FirmId::from_uuid(Uuid::from_u128(1));
        let user = UserId::from_uuid(Uuid::from_u128(2));
        let file_id = FileId::from_uuid(Uuid::from_u128(3));
        let name = FileName::sanitize("a.png");
        UploadSession {
            file_id,
            firm,
            user,
            mode: Mode::Contact,
            total_blocks: TotalBlocks::new(3).unwrap(),
            blob_path: BlobPath::for_file(Mode::Contact, firm, user, file_id, &name),
            file_name: name,
            content_type: "image/png".into(),
            upload_id: String::new(),
            state,
            created_at: DateTime::<Utc>::UNIX_EPOCH,
        }
    }

    #[test]
    fn a_chunk_matching_the_session_is_admitted() {
        assert_eq!(
            session(SessionState::Open).admit(Mode::Contact, TotalBlocks::new(3).unwrap()),
            Ok(())
        );
    }

    #[test]
    fn a_committed_session_admits_nothing() {
        let s = session(SessionState::Committed);
        assert_eq!(
            s.admit(Mode::Contact, TotalBlocks::new(3).unwrap()),
            Err(ChunkMismatch::AlreadyCommitted)
        );
    }

    #[test]
    fn total_and_mode_are_fixed_by_block_zero() {
        let s = session(SessionState::Open);
        assert_eq!(
            s.admit(Mode::Contact, TotalBlocks::new(4).unwrap()),
            Err(ChunkMismatch::TotalBlocksDiffers {
                expected: 3,
                sent: 4
            })
        );
        assert_eq!(
            s.admit(Mode::Import, TotalBlocks::new(3).unwrap()),
            Err(ChunkMismatch::ModeDiffers {
                expected: Mode::Contact,
                sent: Mode::Import
            })
        );
    }
}
