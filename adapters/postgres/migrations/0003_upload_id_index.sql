-- The sweep of leftover staging asks, per upload id, whether an open session stages under it
-- (UploadStore::upload_is_open).
CREATE INDEX upload_sessions_upload_id_idx ON upload_sessions (upload_id);
