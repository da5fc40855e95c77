-- meterline-server schema, version 2: the realtime stream's retained message log (DESIGN §5).

-- The project's current stream seq and how far the log has been pruned: a resume with
-- `since` >= pruned_through is covered by the rows still in stream_log.
CREATE TABLE stream_seq (
    project_id     INTEGER PRIMARY KEY REFERENCES projects(id),
    seq            INTEGER NOT NULL DEFAULT 0,
    pruned_through INTEGER NOT NULL DEFAULT 0
);

-- One row per published message; `frame` is the exact JSON text frame sent to clients.
-- `subject` is NULL for project-wide messages (schema.updated).
CREATE TABLE stream_log (
    project_id    INTEGER NOT NULL REFERENCES projects(id),
    seq           INTEGER NOT NULL,
    subject       TEXT,
    frame         TEXT    NOT NULL,
    created_at_ms INTEGER NOT NULL,
    PRIMARY KEY (project_id, seq)
);
CREATE INDEX stream_log_created ON stream_log (created_at_ms);
