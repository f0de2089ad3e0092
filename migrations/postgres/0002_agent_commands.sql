-- The agent command outbox: the executor enqueues, the replica holding the host's socket
-- delivers, the first reply is stored and wakes the waiter. Times in unix milliseconds.
CREATE TABLE agent_commands (
    id              TEXT    PRIMARY KEY NOT NULL,
    host_id         TEXT    NOT NULL,
    name            TEXT    NOT NULL,
    args            TEXT    NOT NULL,
    ref_id          TEXT    NOT NULL DEFAULT '',
    state           TEXT    NOT NULL CHECK (state IN ('pending', 'delivered', 'done', 'expired')),
    reply           TEXT    NULL,
    created_ms      BIGINT  NOT NULL,
    deadline_ms     BIGINT  NOT NULL,
    delivered_count BIGINT  NOT NULL DEFAULT 0,
    replied_ms      BIGINT  NULL
);
CREATE INDEX agent_commands_open ON agent_commands (host_id, state);
