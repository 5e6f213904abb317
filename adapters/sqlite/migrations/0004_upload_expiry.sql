-- An open upload that no chunk reached for its mode's expiry time is expired by the sweeper
-- (UploadStore::expire_idle): the time it was expired, encoded as created_at is. A session reads
-- as expired while this is set; its state column stays 'open', so that the state check of 0001
-- still holds without rebuilding the table.
ALTER TABLE upload_sessions ADD COLUMN expired_at TEXT;
