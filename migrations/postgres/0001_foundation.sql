-- Foundation schema: hosts, their tokens, API tokens, agent inventory and tasks.
-- Times are unix seconds. JSON documents are stored as TEXT.

CREATE TABLE hosts (
    host_id           TEXT    PRIMARY KEY NOT NULL,
    db_vendor         TEXT    NOT NULL,
    created_ts        BIGINT  NOT NULL,
    last_seen_ts      BIGINT  NOT NULL,
    host_name         TEXT    NOT NULL DEFAULT '',
    host_iqn          TEXT    NOT NULL DEFAULT '',
    host_os           TEXT    NOT NULL DEFAULT '',
    host_os_version   TEXT    NOT NULL DEFAULT '',
    agent_version     TEXT    NOT NULL DEFAULT '',
    cloud_vendor      TEXT    NOT NULL DEFAULT 'UNKNOWN',
    db_engine_version TEXT    NOT NULL DEFAULT '',
    -- instance id of the replica holding the agent's socket; NULL while disconnected
    connected_by      TEXT    NULL,
    -- further facts reported by the agent (vm_id, cidrs, instance_type, ...)
    facts             TEXT    NOT NULL DEFAULT '{}'
);

CREATE TABLE tokens (
    id          TEXT    PRIMARY KEY NOT NULL,
    kind        TEXT    NOT NULL CHECK (kind IN ('admin', 'app', 'session', 'host')),
    host_id     TEXT    NULL REFERENCES hosts (host_id) ON DELETE CASCADE,
    app_name    TEXT    NOT NULL DEFAULT '',
    description TEXT    NOT NULL DEFAULT '',
    token_hash  TEXT    NOT NULL,
    created_ts  BIGINT  NOT NULL,
    ttl         BIGINT  NULL,
    expire_ts   BIGINT  NULL
);
CREATE UNIQUE INDEX tokens_one_per_host ON tokens (host_id) WHERE kind = 'host';
CREATE INDEX tokens_kind ON tokens (kind);

CREATE TABLE databases (
    host_id      TEXT    NOT NULL REFERENCES hosts (host_id) ON DELETE CASCADE,
    db_id        TEXT    NOT NULL,
    name         TEXT    NOT NULL,
    vendor       TEXT    NOT NULL DEFAULT 'mssql',
    status       TEXT    NOT NULL DEFAULT 'ONLINE',
    files        TEXT    NOT NULL DEFAULT '[]',
    mount_points TEXT    NOT NULL DEFAULT '[]',
    updated_ts   BIGINT  NOT NULL,
    PRIMARY KEY (host_id, db_id)
);

CREATE TABLE tasks (
    request_id   TEXT    PRIMARY KEY NOT NULL,
    state        TEXT    NOT NULL CHECK (state IN ('running', 'completed', 'failed', 'aborted')),
    create_ts    BIGINT  NOT NULL,
    update_ts    BIGINT  NOT NULL,
    owner        TEXT    NOT NULL,
    command_type TEXT    NOT NULL,
    ref_id       TEXT    NOT NULL,
    error        TEXT    NOT NULL DEFAULT '',
    result       TEXT    NULL,
    location     TEXT    NOT NULL,
    request      TEXT    NOT NULL DEFAULT '{}'
);
CREATE INDEX tasks_by_create ON tasks (create_ts, request_id);
CREATE INDEX tasks_by_state ON tasks (state);
CREATE INDEX tasks_by_ref ON tasks (ref_id);

-- Which hosts a task touches: unregistering a host is refused while one of its tasks runs.
CREATE TABLE task_hosts (
    request_id TEXT NOT NULL REFERENCES tasks (request_id) ON DELETE CASCADE,
    host_id    TEXT NOT NULL,
    PRIMARY KEY (request_id, host_id)
);
CREATE INDEX task_hosts_by_host ON task_hosts (host_id);
