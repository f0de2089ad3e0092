-- The durable executor (leases, epochs, checkpoints, steps), db snapshots, echo DBs, and the
-- ledger of every object Flex creates on an SDP. Times in unix milliseconds unless *_ts.

ALTER TABLE tasks ADD COLUMN lease_owner TEXT NULL;
ALTER TABLE tasks ADD COLUMN lease_expires_ms BIGINT  NOT NULL DEFAULT 0;
ALTER TABLE tasks ADD COLUMN epoch BIGINT  NOT NULL DEFAULT 0;
ALTER TABLE tasks ADD COLUMN step_index BIGINT  NOT NULL DEFAULT 0;
ALTER TABLE tasks ADD COLUMN checkpoint TEXT NOT NULL DEFAULT '{}';
ALTER TABLE tasks ADD COLUMN phase TEXT NOT NULL DEFAULT 'forward';
ALTER TABLE tasks ADD COLUMN abort_requested BIGINT  NOT NULL DEFAULT 0;
ALTER TABLE tasks ADD COLUMN deadline_ms BIGINT  NOT NULL DEFAULT 0;
ALTER TABLE tasks ADD COLUMN next_run_ms BIGINT  NOT NULL DEFAULT 0;
CREATE INDEX tasks_runnable ON tasks (state, next_run_ms);

CREATE TABLE task_steps (
    request_id  TEXT    NOT NULL REFERENCES tasks (request_id) ON DELETE CASCADE,
    seq         BIGINT  NOT NULL,
    name        TEXT    NOT NULL,
    direction   TEXT    NOT NULL CHECK (direction IN ('do', 'undo')),
    started_ms  BIGINT  NOT NULL,
    finished_ms BIGINT  NOT NULL,
    detail      TEXT    NOT NULL DEFAULT '{}',
    PRIMARY KEY (request_id, seq)
);

CREATE TABLE db_snapshots (
    id                TEXT    PRIMARY KEY NOT NULL,
    host_id           TEXT    NOT NULL,
    host_name         TEXT    NOT NULL DEFAULT '',
    sdp_id            TEXT    NOT NULL DEFAULT '',
    consistency_level TEXT    NOT NULL,
    db_engine_version TEXT    NOT NULL DEFAULT '',
    is_vss_based      BIGINT  NOT NULL DEFAULT 0,
    created_ts        BIGINT  NOT NULL,
    task_id           TEXT    NOT NULL,
    -- JSON: [{"vg_id", "sdp_snapshot_id"}]
    vg_snapshots      TEXT    NOT NULL,
    -- JSON: [{"db_id", "db_name", "files": [{"name", "kind", "path", "size_mb", "volume_id", "vg_id", "serial"}]}]
    databases         TEXT    NOT NULL
);
CREATE INDEX db_snapshots_by_host ON db_snapshots (host_id);

CREATE TABLE echo_dbs (
    host_id      TEXT    NOT NULL,
    db_id        TEXT    NOT NULL,
    name         TEXT    NOT NULL,
    snapshot_id  TEXT    NOT NULL,
    src_host_id  TEXT    NOT NULL,
    src_db_id    TEXT    NOT NULL,
    src_db_name  TEXT    NOT NULL,
    task_id      TEXT    NOT NULL,
    created_ts   BIGINT  NOT NULL,
    -- JSON: [{"volume_id", "serial", "mapping_id", "sdp_host_id"}]
    volumes      TEXT    NOT NULL,
    PRIMARY KEY (host_id, db_id)
);
CREATE INDEX echo_dbs_by_snapshot ON echo_dbs (snapshot_id);

CREATE TABLE sdp_ledger (
    kind        TEXT    NOT NULL,
    sdp_id      BIGINT  NOT NULL,
    name        TEXT    NOT NULL,
    task_id     TEXT    NOT NULL,
    created_ms  BIGINT  NOT NULL,
    deleted_ms  BIGINT  NULL,
    PRIMARY KEY (kind, sdp_id)
);
