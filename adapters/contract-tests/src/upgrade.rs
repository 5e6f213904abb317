//! Upgrading a database that an earlier release made: its rows, written as that release wrote
//! them, read back through today's ports after today's migrations. The adapter migrates a
//! fresh database to [`RELEASE_BEFORE_LIFECYCLE`], runs [`OLD_ROWS`] on it (plain literals,
//! which both Postgres and SQLite read as their types), migrates to the end, and hands the
//! store to [`old_rows_read_back`].

#![allow(clippy::unwrap_used, clippy::expect_used)]

use chrono::{DateTime, Utc};
use filegate_application::ports::{
    ChecksumStore, DeletionStore, InventoryStore, KeyStore, UploadStore,
};
use filegate_domain::{FileId, FirmId, Mode, SessionState};
use uuid::Uuid;

use crate::support::ok;

/// The last migration of the release before issue 10 (expiry, deletion, quotas, checksums).
pub const RELEASE_BEFORE_LIFECYCLE: i64 = 3;

const FIRM: Uuid = Uuid::from_u128(0x0190_0000_0000_4000_8000_0000_0000_0f13);
const OPEN: Uuid = Uuid::from_u128(0x0190_0000_0000_4000_8000_0000_0000_0001);
const DONE: Uuid = Uuid::from_u128(0x0190_0000_0000_4000_8000_0000_0000_0002);

/// An API key, an open upload with one of its two blocks staged, and a complete file, as the
/// release before issue 10 wrote them.
pub const OLD_ROWS: &str = "
INSERT INTO api_keys (id, key_hash, firm_id, user_id, created_at) VALUES
  ('01900000-0000-4000-8000-0000000000aa', 'old-key-hash', '01900000-0000-4000-8000-000000000f13',
   '01900000-0000-4000-8000-0000000000bb', '2026-11-01T10:00:00.000000Z');
INSERT INTO upload_sessions (file_id, firm_id, user_id, mode, total_blocks, received_blocks,
                             file_name, content_type, blob_path, upload_id, state, created_at,
                             completed_at) VALUES
  ('01900000-0000-4000-8000-000000000001', '01900000-0000-4000-8000-000000000f13',
   '01900000-0000-4000-8000-0000000000bb', 'Import', 2, 1, 'old.csv', 'text/csv',
   'imports/01900000-0000-4000-8000-000000000f13/01900000-0000-4000-8000-000000000001/old.csv',
   'upload-old', 'open', '2026-11-01T10:00:00.000000Z', NULL),
  ('01900000-0000-4000-8000-000000000002', '01900000-0000-4000-8000-000000000f13',
   '01900000-0000-4000-8000-0000000000bb', 'Message', 1, 1, 'old.pdf', 'application/pdf',
   'messages/01900000-0000-4000-8000-000000000f13/01900000-0000-4000-8000-000000000002/old.pdf',
   '', 'committed', '2026-11-01T10:00:00.000000Z', '2026-11-01T10:00:01.000000Z');
INSERT INTO staged_blocks (file_id, block_index, part_id, size, staged_at) VALUES
  ('01900000-0000-4000-8000-000000000001', 0, 'p0', 10, '2026-11-01T10:00:00.500000Z');
INSERT INTO files (id, firm_id, user_id, mode, blob_path, url, file_name, content_type, size,
                   created_at) VALUES
  ('01900000-0000-4000-8000-000000000002', '01900000-0000-4000-8000-000000000f13',
   '01900000-0000-4000-8000-0000000000bb', 'Message',
   'messages/01900000-0000-4000-8000-000000000f13/01900000-0000-4000-8000-000000000002/old.pdf',
   'https://blobs.example/old.pdf', 'old.pdf', 'application/pdf', 42,
   '2026-11-01T10:00:01.000000Z');
";

fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .unwrap()
        .with_timezone(&Utc)
}

/// The old rows, after today's migrations: the open upload reads as open with its block and
/// its last activity, counts against the quota, can expire; the complete file reads back
/// without a checksum, is listed for one (what `check --repair` fills) and gets one; the key
/// still authenticates; the file can be deleted.
pub async fn old_rows_read_back<M>(store: M)
where
    M: UploadStore + KeyStore + ChecksumStore + InventoryStore + DeletionStore,
{
    let firm = FirmId::from_uuid(FIRM);
    let (open, done) = (FileId::from_uuid(OPEN), FileId::from_uuid(DONE));
    let key = ok(store.find_api_key("old-key-hash").await, "find_api_key");
    assert!(key.is_some(), "the old key still authenticates");

    let snapshot =
        ok(store.find_session(firm, open).await, "find_session").expect("the open upload");
    assert_eq!(snapshot.session.state, SessionState::Open);
    assert_eq!(snapshot.received.received().collect::<Vec<_>>(), vec![0]);
    assert_eq!(snapshot.last_activity, at("2026-11-01T10:00:00.500000Z"));
    assert_eq!(
        ok(
            store.count_open_uploads(firm, 10).await,
            "count_open_uploads"
        ),
        1
    );

    let file = ok(store.find_session(firm, done).await, "find_session")
        .and_then(|s| s.file)
        .expect("the complete file");
    assert_eq!(file.size, 42);
    assert_eq!(file.sha256, None, "an old file has no checksum yet");
    let unhashed = ok(
        store.files_without_checksum(10).await,
        "files_without_checksum",
    );
    assert_eq!(
        unhashed.iter().map(|f| f.id).collect::<Vec<_>>(),
        vec![done]
    );
    let live = ok(store.live_files(None, 10).await, "live_files");
    assert_eq!(live.len(), 1);
    let digest = filegate_domain::Sha256Digest::from_bytes([9; 32]);
    assert!(ok(store.set_checksum(done, &digest).await, "set_checksum"));

    let expired = ok(
        store.expire_idle(Mode::Import, Utc::now()).await,
        "expire_idle",
    );
    assert_eq!(
        expired.len(),
        1,
        "the old open upload expires like a new one"
    );
    let snapshot = ok(store.find_session(firm, open).await, "find_session").unwrap();
    assert_eq!(snapshot.session.state, SessionState::Expired);
    let session = ok(store.find_session(firm, done).await, "find_session")
        .unwrap()
        .session;
    let event = filegate_application::events::file_deleted(&session);
    assert!(ok(
        store.mark_deleted(firm, done, &event).await,
        "mark_deleted"
    ));
    let gone = ok(store.find_session(firm, done).await, "find_session").unwrap();
    assert_eq!(gone.session.state, SessionState::Deleted);
}
