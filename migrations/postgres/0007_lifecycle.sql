-- Clone lifecycle: an echo DB may expire (expires_ts, epoch seconds; ttl_secs is what a
-- keep-alive adds) and may be protected from every delete. expiry_task_id is the delete Flex
-- started when it expired: replicas swap it compare-and-set, so one of them starts it.
ALTER TABLE echo_dbs ADD COLUMN expires_ts BIGINT NULL;
ALTER TABLE echo_dbs ADD COLUMN ttl_secs BIGINT NULL;
ALTER TABLE echo_dbs ADD COLUMN protected BIGINT NOT NULL DEFAULT 0;
ALTER TABLE echo_dbs ADD COLUMN expiry_task_id TEXT NULL;
CREATE INDEX echo_dbs_by_expiry ON echo_dbs (expires_ts);

-- The schedule a db snapshot was taken for (its retention counts it), if any.
ALTER TABLE db_snapshots ADD COLUMN schedule_id TEXT NULL;
CREATE INDEX db_snapshots_by_schedule ON db_snapshots (schedule_id);

-- Idempotency-Key of a task-creating request (and the keys Flex's own automation uses): the
-- first request's task, and a digest of what was asked, for 24 hours.
CREATE TABLE idempotency_keys (
    key          TEXT    PRIMARY KEY NOT NULL,
    fingerprint  TEXT    NOT NULL,
    request_id   TEXT    NOT NULL,
    created_ms   BIGINT  NOT NULL
);

-- Snapshot schedules: every interval_secs or on a 5-field cron (UTC), a db snapshot of the
-- databases, keeping the keep_last newest. next_run_ts moves compare-and-set with the task
-- it starts, so a due run starts once across replicas.
CREATE TABLE snapshot_schedules (
    id                TEXT    PRIMARY KEY NOT NULL,
    source_host_id    TEXT    NOT NULL,
    -- JSON: ["db id", …]
    database_ids      TEXT    NOT NULL,
    interval_secs     BIGINT  NULL,
    cron              TEXT    NULL,
    consistency_level TEXT    NOT NULL,
    name_prefix       TEXT    NOT NULL,
    keep_last         BIGINT  NOT NULL,
    next_run_ts       BIGINT  NOT NULL,
    last_run_ts       BIGINT  NULL,
    last_task_id      TEXT    NULL,
    created_ts        BIGINT  NOT NULL
);
