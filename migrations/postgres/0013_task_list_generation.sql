-- A number that every change to what a task list shows moves, in the change's own
-- transaction: a replica may serve a list it rendered at generation N for as long as the
-- number still reads N. Only the columns a task's view is made of count: a lease claimed or
-- renewed (`lease_owner`, `lease_expires_ms`, `epoch`) changes no list.
--
-- Sharded by writer connection and moved at commit, once per transaction, for the reasons
-- migration 0012 gives for the topology's generation.
CREATE TABLE task_list_generation (
    shard  INTEGER PRIMARY KEY,
    n      BIGINT  NOT NULL
);

CREATE FUNCTION move_task_list_generation() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('flex.task_list_moved', true) IS DISTINCT FROM 'yes' THEN
        PERFORM set_config('flex.task_list_moved', 'yes', true);
        INSERT INTO task_list_generation (shard, n) VALUES (pg_backend_pid() % 64, 1)
            ON CONFLICT (shard) DO UPDATE SET n = task_list_generation.n + 1;
    END IF;
    RETURN NULL;
END
$$;

CREATE CONSTRAINT TRIGGER tasks_inserted_or_deleted_task_list
    AFTER INSERT OR DELETE ON tasks
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION move_task_list_generation();
CREATE CONSTRAINT TRIGGER tasks_updated_task_list
    AFTER UPDATE OF request_id, state, create_ts, update_ts, owner, command_type, ref_id,
                    error, result, location, request, step_index, phase ON tasks
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION move_task_list_generation();
