-- The media worker's task records, and the transactional outbox of the events filegate
-- publishes. As in 0001, the rules the service relies on are repeated as CHECKs.

-- One row per media task (a file forwarded to Meta as message media or as a template header),
-- claimed by one delivery at a time through its lease, and holding every step's result so that
-- a retry or a redelivery resumes after the last recorded step instead of repeating it.
CREATE TABLE media_tasks (
    id             uuid        PRIMARY KEY,
    firm_id        uuid        NOT NULL,
    file_id        uuid        NOT NULL,
    kind           text        NOT NULL CHECK (kind IN ('message', 'template')),
    status         text        NOT NULL CHECK (status IN ('pending', 'succeeded', 'failed')),
    -- Deliveries that worked on the task.
    attempts       integer     NOT NULL CHECK (attempts >= 0),
    -- Message media: the id from `POST /{phone}/media`.
    media_id       text        NULL,
    -- Template media: the resumable upload session (`upload:...`), and then the handle `h`.
    upload_session text        NULL,
    handle         text        NULL,
    -- Message: Meta's message id (`wamid...`); template: the template id.
    result_id      text        NULL,
    last_error     text        NULL,
    -- Until when the current delivery holds the task; NULL when no delivery holds it.
    lease_until    timestamptz NULL,
    created_at     timestamptz NOT NULL,
    updated_at     timestamptz NOT NULL
);

-- Tasks are claimed and saved by id (the primary key); this serves the operator's questions
-- ("which tasks failed, which are still pending, since when").
CREATE INDEX media_tasks_status_idx ON media_tasks (status, updated_at);

-- Events written in the transaction that makes them true, and published from here (at least
-- once). The id is the event's own (`file.completed` uses the file id), so a second write of
-- the same event is a no-op (`ON CONFLICT DO NOTHING`) rather than a failed commit.
CREATE TABLE outbox (
    id           text        PRIMARY KEY CHECK (id <> ''),
    routing_key  text        NOT NULL CHECK (routing_key <> ''),
    -- The event's JSON, as the bytes that are published.
    payload      bytea       NOT NULL,
    created_at   timestamptz NOT NULL,
    published_at timestamptz NULL
);

-- The publisher reads the oldest unpublished events; published rows stay out of this index, so
-- it stays as small as the backlog however long the table grows.
CREATE INDEX outbox_unpublished_idx ON outbox (created_at, id) WHERE published_at IS NULL;
