-- meterline-server schema, version 1: projects, API keys, events, event-type schemas.
-- Later migrations add features, plans and customers (DESIGN §4).

CREATE TABLE projects (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    name         TEXT    NOT NULL UNIQUE,
    strict_types INTEGER NOT NULL DEFAULT 0,
    created_at   TEXT    NOT NULL
);

-- Only the SHA-256 of a key's secret part is stored; the key itself is shown once.
CREATE TABLE api_keys (
    id          TEXT    PRIMARY KEY,
    project_id  INTEGER NOT NULL REFERENCES projects(id),
    kind        TEXT    NOT NULL CHECK (kind IN ('secret', 'publishable', 'admin')),
    secret_hash BLOB    NOT NULL,
    created_at  TEXT    NOT NULL,
    revoked_at  TEXT
);
CREATE INDEX api_keys_project ON api_keys (project_id);

-- One row per stored CloudEvent; (project, source, id) is the idempotency key.
-- `time` and `datacontenttype` are kept exactly as sent (NULL when absent), so
-- GET /v1/events gives back what arrived; `time_us` (the event time, or the receive time
-- when the event has none, in microseconds since the Unix epoch) serves the from/to filters.
CREATE TABLE events (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    project_id      INTEGER NOT NULL REFERENCES projects(id),
    source          TEXT    NOT NULL,
    id              TEXT    NOT NULL,
    type            TEXT    NOT NULL,
    subject         TEXT    NOT NULL,
    time            TEXT,
    time_us         INTEGER NOT NULL,
    datacontenttype TEXT,
    received_at     TEXT    NOT NULL,
    data            TEXT,
    UNIQUE (project_id, source, id)
);
CREATE INDEX events_type_subject ON events (project_id, type, subject, seq);

CREATE TABLE schemas (
    project_id INTEGER NOT NULL REFERENCES projects(id),
    type       TEXT    NOT NULL,
    schema     TEXT    NOT NULL,
    updated_at TEXT    NOT NULL,
    PRIMARY KEY (project_id, type)
);
