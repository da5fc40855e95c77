-- meterline-server schema, version 5: the events' secondary index no longer holds `subject`.
--
-- `events_type_subject (project_id, type, subject, seq)` put each commit's events into one
-- index position per (type, subject) pair: with 1,000 customers a commit of a few thousand
-- events dirtied (and wrote to the WAL) about as many index pages as it had events, which
-- capped durable ingest at a third of the same inserts without it (docs/decisions.md,
-- "Ingest: no subject index"). `(project_id, type, seq)` grows at one position per event
-- type. It serves the usage-counter rebuild (project + type) and `GET /v1/events?type=`;
-- a `subject` filter is answered by walking events in seq order (by this index when a
-- type is given, else by seq) and stops at the page size.
DROP INDEX IF EXISTS events_type_subject;
CREATE INDEX events_type ON events (project_id, type, seq);
