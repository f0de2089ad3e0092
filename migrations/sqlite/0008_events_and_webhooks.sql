-- The event log: what happened to tasks, echo DBs, db snapshots and hosts, written in the
-- transaction of the change itself. seq is the event id streams and webhooks resume from; it
-- only grows, and on SQLite (one writer) commits in seq order.
CREATE TABLE events (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    ts_ms       INTEGER NOT NULL,
    event_type  TEXT    NOT NULL,
    -- The ref id of the task behind the change ('' when no task was).
    ref_id      TEXT    NOT NULL,
    -- JSON: the object as it was after the change.
    subject     TEXT    NOT NULL
);
CREATE INDEX events_by_ts ON events (ts_ms);

-- Webhook endpoints. delivered_seq is the endpoint's cursor: every event up to it has been
-- delivered (or did not match); attempts and next_attempt_ms concern the event after it. One
-- replica at a time delivers to an endpoint, under its lease.
CREATE TABLE webhooks (
    id                TEXT    PRIMARY KEY NOT NULL,
    url               TEXT    NOT NULL,
    -- JSON: ["task.completed", …]
    event_types       TEXT    NOT NULL,
    description       TEXT    NOT NULL,
    secret            TEXT    NOT NULL,
    created_ts        INTEGER NOT NULL,
    delivered_seq     INTEGER NOT NULL,
    attempts          INTEGER NOT NULL DEFAULT 0,
    next_attempt_ms   INTEGER NOT NULL DEFAULT 0,
    lease_owner       TEXT    NULL,
    lease_expires_ms  INTEGER NOT NULL DEFAULT 0
);

-- Every attempt to deliver an event to an endpoint, and how it went.
CREATE TABLE webhook_deliveries (
    webhook_id   TEXT    NOT NULL,
    event_seq    INTEGER NOT NULL,
    attempt      INTEGER NOT NULL,
    ts_ms        INTEGER NOT NULL,
    -- The HTTP status the endpoint answered, NULL when it did not answer.
    status       INTEGER NULL,
    error        TEXT    NOT NULL,
    duration_ms  INTEGER NOT NULL,
    PRIMARY KEY (webhook_id, event_seq, attempt)
);
