-- A deleted file's session is kept as a tombstone (DELETE /api/v1/Files/{fileId}): the time it was
-- deleted. It reads as the state 'deleted'; the state column keeps its value, so that the state
-- check of 0001 still holds.
ALTER TABLE upload_sessions ADD COLUMN deleted_at TEXT;
