-- The metadata of filegate in SQLite, for the embedded profile: the same tables, columns and
-- rules as the Postgres schema (adapters/postgres/migrations/0001_init.sql), in SQLite's types.
-- Rules that the domain enforces are repeated here as CHECKs so that a row written by hand, or by
-- a buggy release, cannot hold a value the service would refuse to read. The tables are STRICT,
-- so a column holds values of its declared type only.
--
-- Encodings (SQLite has no uuid or timestamp type):
-- * A uuid is TEXT in its canonical form, hyphenated and lower-case
--   (`0190f5c4-8a1b-7c3d-9e0f-123456789abc`). Lookups compare text, so another spelling of the
--   same uuid would be another key: the CHECKs (8-4-4-4-12 shape, lower-case hex digits only)
--   refuse it.
-- * A timestamp is TEXT in RFC 3339, UTC, with exactly six fractional digits and a `Z`
--   (`2024-05-01T12:34:56.123456Z`): microseconds, the precision the service's clock produces
--   and Postgres keeps, so a value reads back exactly. The fixed width makes text order time
--   order; the text is readable in the `sqlite3` shell and understood by SQLite's date functions.

CREATE TABLE api_keys (
    id          TEXT    NOT NULL PRIMARY KEY
        CHECK (id GLOB '????????-????-????-????-????????????'
               AND id NOT GLOB '*[^0-9a-f-]*' AND length(replace(id, '-', '')) = 32),
    -- SHA-256 of the whole key, lower-case hex; the key itself is never stored.
    key_hash    TEXT    NOT NULL UNIQUE,
    firm_id     TEXT    NOT NULL
        CHECK (firm_id GLOB '????????-????-????-????-????????????'
               AND firm_id NOT GLOB '*[^0-9a-f-]*' AND length(replace(firm_id, '-', '')) = 32),
    user_id     TEXT    NOT NULL
        CHECK (user_id GLOB '????????-????-????-????-????????????'
               AND user_id NOT GLOB '*[^0-9a-f-]*' AND length(replace(user_id, '-', '')) = 32),
    created_at  TEXT    NOT NULL
        CHECK (created_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9][0-9][0-9][0-9]Z'),
    revoked_at  TEXT    NULL
        CHECK (revoked_at IS NULL OR revoked_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9][0-9][0-9][0-9]Z')
) STRICT;

CREATE TABLE upload_sessions (
    file_id         TEXT    NOT NULL PRIMARY KEY
        CHECK (file_id GLOB '????????-????-????-????-????????????'
               AND file_id NOT GLOB '*[^0-9a-f-]*' AND length(replace(file_id, '-', '')) = 32),
    firm_id         TEXT    NOT NULL
        CHECK (firm_id GLOB '????????-????-????-????-????????????'
               AND firm_id NOT GLOB '*[^0-9a-f-]*' AND length(replace(firm_id, '-', '')) = 32),
    user_id         TEXT    NOT NULL
        CHECK (user_id GLOB '????????-????-????-????-????????????'
               AND user_id NOT GLOB '*[^0-9a-f-]*' AND length(replace(user_id, '-', '')) = 32),
    mode            TEXT    NOT NULL
        CHECK (mode IN ('Firm', 'Profile', 'Contact', 'Message', 'Template', 'Import')),
    total_blocks    INTEGER NOT NULL CHECK (total_blocks BETWEEN 1 AND 50000),
    -- How many distinct block indices are staged, maintained while `record_block` holds the
    -- database's write lock, so that recording a block of a 50,000-block file does not count
    -- 50,000 rows.
    received_blocks INTEGER NOT NULL DEFAULT 0,
    file_name       TEXT    NOT NULL,
    content_type    TEXT    NOT NULL,
    blob_path       TEXT    NOT NULL,
    upload_id       TEXT    NOT NULL,
    state           TEXT    NOT NULL CHECK (state IN ('open', 'committed')),
    created_at      TEXT    NOT NULL
        CHECK (created_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9][0-9][0-9][0-9]Z'),
    completed_at    TEXT    NULL
        CHECK (completed_at IS NULL OR completed_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9][0-9][0-9][0-9]Z'),
    CHECK (received_blocks BETWEEN 0 AND total_blocks),
    CHECK ((state = 'committed') = (completed_at IS NOT NULL))
) STRICT;

-- Sessions are always looked up by file id and firm; the firm index serves listings and
-- per-firm clean-ups.
CREATE INDEX upload_sessions_firm_id_idx ON upload_sessions (firm_id);

-- WITHOUT ROWID: rows are stored in primary-key order, so a file's blocks sit together and come
-- out in index order without a separate index.
CREATE TABLE staged_blocks (
    file_id     TEXT    NOT NULL REFERENCES upload_sessions (file_id) ON DELETE CASCADE,
    block_index INTEGER NOT NULL CHECK (block_index BETWEEN 0 AND 49999),
    part_id     TEXT    NOT NULL,
    size        INTEGER NOT NULL CHECK (size >= 0),
    -- The default is SQLite's clock, which has milliseconds, padded to the format's six digits.
    staged_at   TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f', 'now') || '000Z')
        CHECK (staged_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9][0-9][0-9][0-9]Z'),
    PRIMARY KEY (file_id, block_index)
) STRICT, WITHOUT ROWID;

CREATE TABLE files (
    id           TEXT    NOT NULL PRIMARY KEY REFERENCES upload_sessions (file_id),
    firm_id      TEXT    NOT NULL
        CHECK (firm_id GLOB '????????-????-????-????-????????????'
               AND firm_id NOT GLOB '*[^0-9a-f-]*' AND length(replace(firm_id, '-', '')) = 32),
    user_id      TEXT    NOT NULL
        CHECK (user_id GLOB '????????-????-????-????-????????????'
               AND user_id NOT GLOB '*[^0-9a-f-]*' AND length(replace(user_id, '-', '')) = 32),
    mode         TEXT    NOT NULL
        CHECK (mode IN ('Firm', 'Profile', 'Contact', 'Message', 'Template', 'Import')),
    blob_path    TEXT    NOT NULL,
    url          TEXT    NOT NULL,
    file_name    TEXT    NOT NULL,
    content_type TEXT    NOT NULL,
    size         INTEGER NOT NULL CHECK (size >= 0),
    created_at   TEXT    NOT NULL
        CHECK (created_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9][0-9][0-9][0-9]Z')
) STRICT;
