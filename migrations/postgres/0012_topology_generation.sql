-- A number that every change to what the topology shows moves, in the change's own
-- transaction: a replica may serve a topology it rendered at generation N for as long as the
-- number still reads N. Hosts are not counted: their rows are read on every request (an
-- agent's `last_seen_ts` moves every few seconds), only their databases are kept rendered.
--
-- The generation is the sum of the shards' counts. Each transaction adds one to the shard of
-- its connection (its backend's pid, modulo 64): a connection runs one transaction at a time,
-- so concurrent writers seldom share a row, and a writer waits on no other writer's commit.
-- The sum only grows, and a change is counted in the very commit that makes it visible.
CREATE TABLE topology_generation (
    shard  INTEGER PRIMARY KEY,
    n      BIGINT  NOT NULL
);

-- Moving a shard at commit (a deferred trigger), once per transaction, keeps the shard's
-- row lock to the commit itself: a transaction holding it waits for nothing else, so it
-- cannot be part of a deadlock.
CREATE FUNCTION move_topology_generation() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('flex.topology_moved', true) IS DISTINCT FROM 'yes' THEN
        PERFORM set_config('flex.topology_moved', 'yes', true);
        INSERT INTO topology_generation (shard, n) VALUES (pg_backend_pid() % 64, 1)
            ON CONFLICT (shard) DO UPDATE SET n = topology_generation.n + 1;
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
