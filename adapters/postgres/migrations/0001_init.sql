-- The metadata of filegate: API keys, upload sessions with their staged blocks, and the files
-- they produced. Rules that the domain enforces are repeated here as CHECKs so that a row
-- written by hand, or by a buggy release, cannot hold a value the service would refuse to read.

CREATE TABLE api_keys (
    id          uuid        PRIMARY KEY,
    -- SHA-256 of the whole key, lower-case hex; the key itself is never stored.
    key_hash    text        NOT NULL UNIQUE,
    firm_id     uuid        NOT NULL,
    user_id     uuid        NOT NULL,
    created_at  timestamptz NOT NULL,
    revoked_at  timestamptz NULL
);

CREATE TABLE upload_sessions (
    file_id         uuid        PRIMARY KEY,
    firm_id         uuid        NOT NULL,
    user_id         uuid        NOT NULL,
    mode            text        NOT NULL
        CHECK (mode IN ('Firm', 'Profile', 'Contact', 'Message', 'Template', 'Import')),
    total_blocks    integer     NOT NULL CHECK (total_blocks BETWEEN 1 AND 50000),
    -- How many distinct block indices are staged, maintained under the session's row lock so
    -- that recording a block of a 50,000-block file does not count 50,000 rows.
    received_blocks integer     NOT NULL DEFAULT 0,
    file_name       text        NOT NULL,
    content_type    text        NOT NULL,
    blob_path       text        NOT NULL,
    upload_id       text        NOT NULL,
    state           text        NOT NULL CHECK (state IN ('open', 'committed')),
    created_at      timestamptz NOT NULL,
    completed_at    timestamptz NULL,
    CHECK (received_blocks BETWEEN 0 AND total_blocks),
    CHECK ((state = 'committed') = (completed_at IS NOT NULL))
);

-- Sessions are always looked up by file id and firm; the firm index serves listings and
-- per-firm clean-ups.
CREATE INDEX upload_sessions_firm_id_idx ON upload_sessions (firm_id);

CREATE TABLE staged_blocks (
    file_id     uuid        NOT NULL REFERENCES upload_sessions (file_id) ON DELETE CASCADE,
    block_index integer     NOT NULL CHECK (block_index BETWEEN 0 AND 49999),
    part_id     text        NOT NULL,
    size        bigint      NOT NULL CHECK (size >= 0),
    staged_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (file_id, block_index)
);

CREATE TABLE files (
    id           uuid        PRIMARY KEY REFERENCES upload_sessions (file_id),
    firm_id      uuid        NOT NULL,
    user_id      uuid        NOT NULL,
    mode         text        NOT NULL
        CHECK (mode IN ('Firm', 'Profile', 'Contact', 'Message', 'Template', 'Import')),
    blob_path    text        NOT NULL,
    url          text        NOT NULL,
    file_name    text        NOT NULL,
    content_type text        NOT NULL,
    size         bigint      NOT NULL CHECK (size >= 0),
    created_at   timestamptz NOT NULL
);
