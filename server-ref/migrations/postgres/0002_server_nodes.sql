-- meterline-server schema on PostgreSQL, version 2: the running server nodes (DR-115). Each
-- node upserts its row every second; the nodes seen within the live window divide the rate
-- limits between them. Times are the database's clock, so the nodes' clocks do not matter.
-- A node deletes its row when it stops; rows of nodes that died are ignored once stale and
-- pruned later.
CREATE TABLE server_nodes (
    node_id    TEXT        PRIMARY KEY,
    started_at TIMESTAMPTZ NOT NULL,
    last_seen  TIMESTAMPTZ NOT NULL
);
