-- Which running tasks use, or are taking away, an object other tasks share: the SDP host
-- object a Flex host is mapped through, or a db snapshot (its VG snapshots) that imports clone
-- from. A user claims before it relies on the object, a releaser before it removes it; each is
-- refused while another running task holds the other kind, so a release never removes what
-- another task is about to use, and nobody starts using what is being removed. Rows go when
-- their task ends.
CREATE TABLE resource_claims (
    resource   TEXT    NOT NULL,
    task_id    TEXT    NOT NULL,
    kind       TEXT    NOT NULL CHECK (kind IN ('use', 'release')),
    created_ms BIGINT  NOT NULL,
    PRIMARY KEY (resource, task_id, kind)
);
CREATE INDEX resource_claims_by_task ON resource_claims (task_id);
