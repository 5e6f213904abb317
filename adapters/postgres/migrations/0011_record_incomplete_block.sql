-- A chunk that leaves its upload incomplete (every chunk of a file but the last) recorded in one
-- round trip instead of six (BEGIN, the session's lock, its previous part, the upsert, the count,
-- COMMIT): each was a wake-up of a backend on a machine whose CPU the database shares with the
-- blob store and the server (docs/decisions.md, "A chunk that leaves its upload incomplete is one
-- round trip on Postgres"). The steps are the general path's, in the same order and under the
-- same row lock, so it serialises with every other writer of the session exactly as before. It
-- answers no row, having changed nothing, when the block is not such a block (no session, one
-- no longer open, or this block would complete it): the server then takes the general path.
CREATE FUNCTION filegate_record_incomplete_block(
    p_file uuid, p_index integer, p_part text, p_size bigint, p_at timestamptz)
RETURNS TABLE (received integer, replaced text)
LANGUAGE plpgsql AS $$
DECLARE
    v_total integer;
    v_received integer;
    v_previous text;
BEGIN
    -- Read committed: after waiting for another holder, the row is read again and must still
    -- be open.
    SELECT s.total_blocks, s.received_blocks INTO v_total, v_received
    FROM upload_sessions s
    WHERE s.file_id = p_file AND s.state = 'open'
      AND s.expired_at IS NULL AND s.deleted_at IS NULL
    FOR UPDATE;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    -- Each statement of a function sees what committed before it began, so this sees the
    -- blocks of every writer that held the lock before us.
    SELECT b.part_id INTO v_previous
    FROM staged_blocks b
    WHERE b.file_id = p_file AND b.block_index = p_index;
    IF NOT FOUND THEN
        v_received := v_received + 1;
    END IF;
    IF v_received >= v_total THEN
        RETURN;
    END IF;
    INSERT INTO staged_blocks (file_id, block_index, part_id, size, staged_at)
    VALUES (p_file, p_index, p_part, p_size, p_at)
    ON CONFLICT (file_id, block_index)
    DO UPDATE SET part_id = excluded.part_id, size = excluded.size, staged_at = excluded.staged_at;
    UPDATE upload_sessions SET received_blocks = v_received WHERE file_id = p_file;
    received := v_received;
    replaced := v_previous;
    RETURN NEXT;
END
$$;
