-- `filegate check` asks, for every blob in the store, whether the metadata answers for its path
-- (InventoryStore::blob_path_known): one index lookup each, not a scan.
CREATE INDEX upload_sessions_blob_path ON upload_sessions (blob_path);
