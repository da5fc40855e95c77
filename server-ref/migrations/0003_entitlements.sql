-- meterline-server schema, version 3: the entitlement catalog and usage counters (DESIGN §4).
-- Definitions are stored as canonical JSON (the validated, normalised admin body), so an
-- identical PUT is recognised by comparing them.

CREATE TABLE features (
    project_id  INTEGER NOT NULL REFERENCES projects(id),
    key         TEXT    NOT NULL,
    kind        TEXT    NOT NULL,
    -- Metered features only: the counter they read (usage_daily.event_type, .property;
    -- property '' counts events).
    event_type  TEXT,
    property    TEXT,
    definition  TEXT    NOT NULL,
    updated_at  TEXT    NOT NULL,
    PRIMARY KEY (project_id, key)
);
CREATE INDEX features_meter ON features (project_id, event_type, property);

CREATE TABLE plans (
    project_id  INTEGER NOT NULL REFERENCES projects(id),
    key         TEXT    NOT NULL,
    definition  TEXT    NOT NULL,
    updated_at  TEXT    NOT NULL,
    PRIMARY KEY (project_id, key)
);

CREATE TABLE customers (
    project_id  INTEGER NOT NULL REFERENCES projects(id),
    subject     TEXT    NOT NULL,
    plan        TEXT,
    definition  TEXT    NOT NULL,
    created_at  TEXT    NOT NULL,
    updated_at  TEXT    NOT NULL,
    PRIMARY KEY (project_id, subject)
);
CREATE INDEX customers_plan ON customers (project_id, plan);

-- The `version` of a subject's entitlement answer: the seq of its latest
-- entitlements.updated message. Kept apart from `customers` so it survives a delete.
CREATE TABLE entitlement_versions (
    project_id INTEGER NOT NULL REFERENCES projects(id),
    subject    TEXT    NOT NULL,
    version    INTEGER NOT NULL,
    PRIMARY KEY (project_id, subject)
);

-- Bumped by every feature or plan change; the event writer reloads its copy of a project's
-- features and plans when it sees a new value (read inside its own transaction, so changes
-- made by the CLI are seen too).
CREATE TABLE catalog_versions (
    project_id INTEGER PRIMARY KEY REFERENCES projects(id),
    version    INTEGER NOT NULL
);

-- Usage per UTC day (days since the Unix epoch of the event time) of every counter some
-- metered feature reads: property '' counts events, any other sums numeric data.<property>.
CREATE TABLE usage_daily (
    project_id INTEGER NOT NULL,
    subject    TEXT    NOT NULL,
    event_type TEXT    NOT NULL,
    property   TEXT    NOT NULL,
    day        INTEGER NOT NULL,
    value      REAL    NOT NULL,
    PRIMARY KEY (project_id, event_type, property, subject, day)
) WITHOUT ROWID;

-- Stream messages appended by another process (the admin CLI), which the server relays to
-- its live subscribers; rows are deleted once relayed.
CREATE TABLE stream_relay (
    project_id INTEGER NOT NULL,
    seq        INTEGER NOT NULL,
    PRIMARY KEY (project_id, seq)
);
