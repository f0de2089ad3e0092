-- A counter that every change to what a task list shows moves, in the change's own
-- transaction: a replica may serve a list it rendered at generation N for as long as the
-- counter still reads N. Only the columns a task's view is made of count: a lease claimed or
-- renewed (`lease_owner`, `lease_expires_ms`, `epoch`) changes no list.
CREATE TABLE task_list_generation (
    id  INTEGER PRIMARY KEY CHECK (id = 1),
    n   INTEGER NOT NULL
);
INSERT INTO task_list_generation (id, n) VALUES (1, 0);

CREATE TRIGGER tasks_inserted_task_list AFTER INSERT ON tasks
BEGIN UPDATE task_list_generation SET n = n + 1; END;
CREATE TRIGGER tasks_updated_task_list
    AFTER UPDATE OF request_id, state, create_ts, update_ts, owner, command_type, ref_id,
                    error, result, location, request, step_index, phase ON tasks
BEGIN UPDATE task_list_generation SET n = n + 1; END;
CREATE TRIGGER tasks_deleted_task_list AFTER DELETE ON tasks
BEGIN UPDATE task_list_generation SET n = n + 1; END;
