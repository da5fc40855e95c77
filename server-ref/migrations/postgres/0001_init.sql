-- meterline-server schema on PostgreSQL, version 1: the SQLite schema of migrations/0001 to
-- 0006 in one step (same tables, columns and keys; DESIGN §4, §5, §6). Text columns hold the
-- same strings as on SQLite: RFC 3339 times, compact JSON exactly as sent.

CREATE TABLE projects (
    id                 BIGSERIAL PRIMARY KEY,
    name               TEXT    NOT NULL UNIQUE,
    strict_types       BOOLEAN NOT NULL DEFAULT FALSE,
    client_event_types TEXT    NOT NULL DEFAULT '[]',
    allowed_origins    TEXT    NOT NULL DEFAULT '[]',
    created_at         TEXT    NOT NULL
);

-- Only the SHA-256 of a key's secret part is stored; the key itself is shown once.
CREATE TABLE api_keys (
    id                TEXT   PRIMARY KEY,
    project_id        BIGINT NOT NULL REFERENCES projects(id),
    kind              TEXT   NOT NULL CHECK (kind IN ('secret', 'publishable', 'admin')),
    secret_hash       BYTEA  NOT NULL,
    token_signing_key BYTEA,
    created_at        TEXT   NOT NULL,
    revoked_at        TEXT
);
CREATE INDEX api_keys_project ON api_keys (project_id);
CREATE INDEX api_keys_revoked ON api_keys (revoked_at) WHERE revoked_at IS NOT NULL;

-- One row per stored CloudEvent; (project, source, id) is the idempotency key: a resend,
-- through any node, is an `ON CONFLICT DO NOTHING` that stores nothing.
CREATE TABLE events (
    seq             BIGSERIAL PRIMARY KEY,
    project_id      BIGINT NOT NULL REFERENCES projects(id),
    source          TEXT   NOT NULL,
    id              TEXT   NOT NULL,
    type            TEXT   NOT NULL,
    subject         TEXT   NOT NULL,
    time            TEXT,
    time_us         BIGINT NOT NULL,
    datacontenttype TEXT,
    received_at     TEXT   NOT NULL,
    data            TEXT,
    UNIQUE (project_id, source, id)
);
CREATE INDEX events_type ON events (project_id, type, seq);

CREATE TABLE schemas (
    project_id BIGINT NOT NULL REFERENCES projects(id),
    type       TEXT   NOT NULL,
    schema     TEXT   NOT NULL,
    updated_at TEXT   NOT NULL,
    PRIMARY KEY (project_id, type)
);

-- The project's current stream seq and how far the log has been pruned. Taking a seq
-- updates this row, and the row lock is held to commit: see docs/decisions.md
-- ("PostgreSQL: stream seq under the project's row lock").
CREATE TABLE stream_seq (
    project_id     BIGINT PRIMARY KEY REFERENCES projects(id),
    seq            BIGINT NOT NULL DEFAULT 0,
    pruned_through BIGINT NOT NULL DEFAULT 0
);

CREATE TABLE stream_log (
    project_id    BIGINT NOT NULL REFERENCES projects(id),
    seq           BIGINT NOT NULL,
    subject       TEXT,
    frame         TEXT   NOT NULL,
    created_at_ms BIGINT NOT NULL,
    PRIMARY KEY (project_id, seq)
);
CREATE INDEX stream_log_created ON stream_log (created_at_ms);

CREATE TABLE features (
    project_id  BIGINT NOT NULL REFERENCES projects(id),
    key         TEXT   NOT NULL,
    kind        TEXT   NOT NULL,
    event_type  TEXT,
    property    TEXT,
    definition  TEXT   NOT NULL,
    updated_at  TEXT   NOT NULL,
    PRIMARY KEY (project_id, key)
);
CREATE INDEX features_meter ON features (project_id, event_type, property);

CREATE TABLE plans (
    project_id  BIGINT NOT NULL REFERENCES projects(id),
    key         TEXT   NOT NULL,
    definition  TEXT   NOT NULL,
    updated_at  TEXT   NOT NULL,
    PRIMARY KEY (project_id, key)
);

CREATE TABLE customers (
    project_id  BIGINT NOT NULL REFERENCES projects(id),
    subject     TEXT   NOT NULL,
    plan        TEXT,
    definition  TEXT   NOT NULL,
    created_at  TEXT   NOT NULL,
    updated_at  TEXT   NOT NULL,
    PRIMARY KEY (project_id, subject)
);
CREATE INDEX customers_plan ON customers (project_id, plan);

CREATE TABLE entitlement_versions (
    project_id BIGINT NOT NULL REFERENCES projects(id),
    subject    TEXT   NOT NULL,
    version    BIGINT NOT NULL,
    PRIMARY KEY (project_id, subject)
);

CREATE TABLE catalog_versions (
    project_id BIGINT PRIMARY KEY REFERENCES projects(id),
    version    BIGINT NOT NULL
);

-- Usage per UTC day of every counter some metered feature reads. Writers add to a row with
-- `ON CONFLICT … DO UPDATE SET value = usage_daily.value + excluded.value`: the update takes
-- the row lock and adds to the latest committed value, so two nodes counting the same
-- customer at once both count.
CREATE TABLE usage_daily (
    project_id BIGINT           NOT NULL,
    subject    TEXT             NOT NULL,
    event_type TEXT             NOT NULL,
    property   TEXT             NOT NULL,
    day        BIGINT           NOT NULL,
    value      DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (project_id, event_type, property, subject, day)
);

CREATE TABLE stream_relay (
    project_id BIGINT NOT NULL,
    seq        BIGINT NOT NULL,
    PRIMARY KEY (project_id, seq)
);
