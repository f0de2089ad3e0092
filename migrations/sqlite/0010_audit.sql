-- The audit trail: who asked for what, from where, and how it was answered. A request that
-- changed something writes its row in the transaction of that change (status filled in
-- when the answer is known, so NULL means the change committed and the answer was lost);
-- one that changed nothing writes its row once answered. Tokens appear by id, never in full.
CREATE TABLE audit (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    ts_ms       INTEGER NOT NULL,
    token_id    TEXT    NOT NULL DEFAULT '',
    token_name  TEXT    NOT NULL DEFAULT '',
    role        TEXT    NOT NULL DEFAULT '',
    user_name   TEXT    NOT NULL DEFAULT '',
    client_addr TEXT    NOT NULL DEFAULT '',
    method      TEXT    NOT NULL,
    path        TEXT    NOT NULL,
    status      INTEGER NULL,
    ref_id      TEXT    NOT NULL,
    task_id     TEXT    NULL
);
CREATE INDEX audit_by_time ON audit (ts_ms);
CREATE INDEX audit_by_ref_id ON audit (ref_id);
-- Login throttling counts recent failures by user name and by address.
CREATE INDEX audit_failed_logins_by_user ON audit (user_name, ts_ms) WHERE status = 401;
CREATE INDEX audit_failed_logins_by_addr ON audit (client_addr, ts_ms) WHERE status = 401;
