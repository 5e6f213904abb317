-- The SHA-256 of each complete file's bytes, 64 lower-case hex digits: set in the commit's
-- transaction when the blocks arrived in order, later otherwise (after the commit, or by
-- `filegate check --repair` for the files stored before this column existed). NULL: not known
-- yet.
ALTER TABLE files ADD COLUMN sha256 text CHECK (sha256 ~ '^[0-9a-f]{64}$');
-- What the checksum filler reads every round: only the files still without one.
CREATE INDEX files_without_checksum ON files (created_at) WHERE sha256 IS NULL;
