-- The quota of open uploads per firm (limits.open_uploads_per_firm) counts a firm's open
-- sessions when it opens a new one: this partial index holds exactly those rows, so the count
-- reads only them.
CREATE INDEX upload_sessions_open_by_firm ON upload_sessions (firm_id)
    WHERE state = 'open' AND expired_at IS NULL AND deleted_at IS NULL;
