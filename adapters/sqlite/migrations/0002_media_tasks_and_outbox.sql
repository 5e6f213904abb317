-- The media worker's task records, and the transactional outbox of the events filegate
-- publishes: the same tables, columns and rules as the Postgres schema
-- (adapters/postgres/migrations/0002_media_tasks_and_outbox.sql), in SQLite's types, with the
-- encodings of 0001_init.sql (uuids as canonical lower-case text, timestamps as RFC 3339 UTC
-- text with exactly six fractional digits and a `Z`). The tables are STRICT.

-- One row per media task (a file forwarded to Meta as message media or as a template header),
-- claimed by one delivery at a time through its lease, and holding every step's result so that
-- a retry or a redelivery resumes after the last recorded step instead of repeating it.
CREATE TABLE media_tasks (
    id             TEXT    NOT NULL PRIMARY KEY
        CHECK (id GLOB '????????-????-????-????-????????????'
               AND id NOT GLOB '*[^0-9a-f-]*' AND length(replace(id, '-', '')) = 32),
    firm_id        TEXT    NOT NULL
        CHECK (firm_id GLOB '????????-????-????-????-????????????'
               AND firm_id NOT GLOB '*[^0-9a-f-]*' AND length(replace(firm_id, '-', '')) = 32),
    file_id        TEXT    NOT NULL
        CHECK (file_id GLOB '????????-????-????-????-????????????'
               AND file_id NOT GLOB '*[^0-9a-f-]*' AND length(replace(file_id, '-', '')) = 32),
    kind           TEXT    NOT NULL CHECK (kind IN ('message', 'template')),
    status         TEXT    NOT NULL CHECK (status IN ('pending', 'succeeded', 'failed')),
    -- Deliveries that worked on the task.
    attempts       INTEGER NOT NULL CHECK (attempts BETWEEN 0 AND 2147483647),
    -- Message media: the id from `POST /{phone}/media`.
    media_id       TEXT    NULL,
    -- Template media: the resumable upload session (`upload:...`), and then the handle `h`.
    upload_session TEXT    NULL,
    handle         TEXT    NULL,
    -- Message: Meta's message id (`wamid...`); template: the template id.
    result_id      TEXT    NULL,
    last_error     TEXT    NULL,
    -- Until when the current delivery holds the task; NULL when no delivery holds it.
    lease_until    TEXT    NULL
        CHECK (lease_until IS NULL OR lease_until GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9][0-9][0-9][0-9]Z'),
    created_at     TEXT    NOT NULL
        CHECK (created_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9][0-9][0-9][0-9]Z'),
    updated_at     TEXT    NOT NULL
        CHECK (updated_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9][0-9][0-9][0-9]Z')
) STRICT;

-- Tasks are claimed and saved by id (the primary key); this serves the operator's questions
-- ("which tasks failed, which are still pending, since when").
CREATE INDEX media_tasks_status_idx ON media_tasks (status, updated_at);

-- Events written in the transaction that makes them true, and published from here (at least
-- once). The id is the event's own (`file.completed` uses the file id), so a second write of
-- the same event is a no-op (`ON CONFLICT DO NOTHING`) rather than a failed commit.
CREATE TABLE outbox (
    id           TEXT    NOT NULL PRIMARY KEY CHECK (id <> ''),
    routing_key  TEXT    NOT NULL CHECK (routing_key <> ''),
    -- The event's JSON, as the bytes that are published.
    payload      BLOB    NOT NULL,
    created_at   TEXT    NOT NULL
        CHECK (created_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9][0-9][0-9][0-9]Z'),
    published_at TEXT    NULL
        CHECK (published_at IS NULL OR published_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9][0-9][0-9][0-9]Z')
) STRICT;

-- The publisher reads the oldest unpublished events; published rows stay out of this index, so
-- it stays as small as the backlog however long the table grows.
CREATE INDEX outbox_unpublished_idx ON outbox (created_at, id) WHERE published_at IS NULL;
