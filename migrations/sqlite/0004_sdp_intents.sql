-- Names Flex is about to create on the SDP, per task. Some objects are named after the Flex
-- host rather than the task (an SDP host and its initiator), so after a create whose answer
-- was lost (a 502, a timeout, a crash) the name alone cannot tell Flex's object from one an
-- operator made. An intent recorded before the create can: the object found by that name is
-- the task's own, and goes into the ledger. Rows go when the object is recorded or the task
-- ends.
CREATE TABLE sdp_intents (
    kind        TEXT    NOT NULL,
    name        TEXT    NOT NULL,
    task_id     TEXT    NOT NULL,
    created_ms  INTEGER  NOT NULL,
    PRIMARY KEY (kind, name, task_id)
);
