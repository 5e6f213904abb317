//! The events filegate publishes. `file.completed` tells other services (the import module, for
//! one) that a file is committed; it is written to the outbox in the transaction that commits
//! the file and published from there, so it is never lost and never announces a file that is
//! not there.

use filegate_domain::FileRecord;

use crate::media_ports::OutgoingEvent;

/// The version of the event payload; bumped on any incompatible change.
pub const FILE_COMPLETED_VERSION: u32 = 1;

/// The `file.completed` event of a committed file: routing key `file.completed.<mode>` (mode
/// lower-case), id equal to the file id (consumers drop duplicates by it).
pub fn file_completed(file: &FileRecord) -> OutgoingEvent {
    let payload = serde_json::json!({
        "version": FILE_COMPLETED_VERSION,
        "type": "file.completed",
        "fileId": file.id.to_string(),
        "firmId": file.firm.to_string(),
        "userId": file.user.to_string(),
        "mode": file.mode.as_str(),
        "fileName": file.file_name.as_str(),
        "contentType": file.content_type,
        "size": file.size,
        "blobPath": file.blob_path.as_str(),
        "createdAt": file.created_at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
    });
    OutgoingEvent {
        id: file.id.to_string(),
        routing_key: format!("file.completed.{}", file.mode.as_str().to_ascii_lowercase()),
        payload: payload.to_string().into_bytes(),
    }
}
