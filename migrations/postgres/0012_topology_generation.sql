-- A counter that every change to what the topology shows moves, in the change's own
-- transaction: a replica may serve a topology it rendered at generation N for as long as the
-- counter still reads N. Hosts are not counted: their rows are read on every request (an
-- agent's `last_seen_ts` moves every few seconds), only their databases are kept rendered.
CREATE TABLE topology_generation (
    id  INTEGER PRIMARY KEY CHECK (id = 1),
    n   BIGINT  NOT NULL
);
INSERT INTO topology_generation (id, n) VALUES (1, 0);

-- The counter's row is locked by whoever moves it until they commit. Moving it at commit
-- (a deferred trigger), once per transaction, keeps that lock to the commit itself: a
-- transaction holding it waits for nothing else, so it cannot be part of a deadlock.
CREATE FUNCTION move_topology_generation() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('flex.topology_moved', true) IS DISTINCT FROM 'yes' THEN
        PERFORM set_config('flex.topology_moved', 'yes', true);
        UPDATE topology_generation SET n = n + 1;
    END IF;
    RETURN NULL;
END
$$;

CREATE CONSTRAINT TRIGGER databases_topology
    AFTER INSERT OR UPDATE OR DELETE ON databases
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION move_topology_generation();
CREATE CONSTRAINT TRIGGER db_snapshots_topology
    AFTER INSERT OR UPDATE OR DELETE ON db_snapshots
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION move_topology_generation();
CREATE CONSTRAINT TRIGGER echo_dbs_topology
    AFTER INSERT OR UPDATE OR DELETE ON echo_dbs
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION move_topology_generation();
