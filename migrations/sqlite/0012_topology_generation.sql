-- A counter that every change to what the topology shows moves, in the change's own
-- transaction: a replica may serve a topology it rendered at generation N for as long as the
-- counter still reads N. Hosts are not counted: their rows are read on every request (an
-- agent's `last_seen_ts` moves every few seconds), only their databases are kept rendered.
CREATE TABLE topology_generation (
    id  INTEGER PRIMARY KEY CHECK (id = 1),
    n   INTEGER NOT NULL
);
INSERT INTO topology_generation (id, n) VALUES (1, 0);

CREATE TRIGGER databases_inserted_topology AFTER INSERT ON databases
BEGIN UPDATE topology_generation SET n = n + 1; END;
CREATE TRIGGER databases_updated_topology AFTER UPDATE ON databases
BEGIN UPDATE topology_generation SET n = n + 1; END;
CREATE TRIGGER databases_deleted_topology AFTER DELETE ON databases
BEGIN UPDATE topology_generation SET n = n + 1; END;

CREATE TRIGGER db_snapshots_inserted_topology AFTER INSERT ON db_snapshots
BEGIN UPDATE topology_generation SET n = n + 1; END;
CREATE TRIGGER db_snapshots_updated_topology AFTER UPDATE ON db_snapshots
BEGIN UPDATE topology_generation SET n = n + 1; END;
CREATE TRIGGER db_snapshots_deleted_topology AFTER DELETE ON db_snapshots
BEGIN UPDATE topology_generation SET n = n + 1; END;

CREATE TRIGGER echo_dbs_inserted_topology AFTER INSERT ON echo_dbs
BEGIN UPDATE topology_generation SET n = n + 1; END;
CREATE TRIGGER echo_dbs_updated_topology AFTER UPDATE ON echo_dbs
BEGIN UPDATE topology_generation SET n = n + 1; END;
CREATE TRIGGER echo_dbs_deleted_topology AFTER DELETE ON echo_dbs
BEGIN UPDATE topology_generation SET n = n + 1; END;
