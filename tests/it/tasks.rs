//! Tasks read API on its three path families, over the real tasks table.

use flex::{
    model::{CommandType, TaskState},
    store::NewTask,
};
use serde_json::{Value, json};

use crate::{
    support::builders::task,
    support::{Backend, TestServer, error_body},
};

const TASK_FAMILIES: [&str; 3] = ["/flex/api/v1/ocie", "/api/echo/v1", "/api/ocie/v1"];

async fn tasks_read_on_every_family(backend: Backend) {
    let server = TestServer::start(backend).await;
    for family in TASK_FAMILIES {
        let empty = server.get(&format!("{family}/tasks")).await;
        assert_eq!(empty.status(), 200, "an empty task list is 200 []");
        assert_eq!(empty.json::<Value>().await.unwrap(), json!([]));
    }
    let store = server.db.store().await;
    let mut done = task(
        "Fj3U7QTsDDWL45ikk0bvk2tsanfC3H",
        TaskState::Completed,
        CommandType::CreateClone,
        "ADD62kMoLB",
    );
    done.result = Some(
        json!({"db_snapshot": {"id": "primary__5__1735025906"}, "cloned_dbs": [{
            "id": "7", "name": "dev_db_copy_01", "host_id": "host02",
            "source_host_id": "host01", "source_db_id": 5, "source_db_name": "dev_db"}]})
        .to_string(),
    );
    done.location = "/api/ocie/v1/tasks/Fj3U7QTsDDWL45ikk0bvk2tsanfC3H".into();
    let running = task(
        "KscTYPMYiMUjCjJleHLauR0y",
        TaskState::Running,
        // From the seed document; not a type this executor runs, so it stays running.
        CommandType::Deploy,
        "bjGP9ygRMew",
    );
    for record in [&done, &running] {
        store
            .insert_task(&NewTask {
                record: record.clone(),
                host_ids: vec![],
            })
            .await
            .unwrap();
    }
    for family in TASK_FAMILIES {
        let one: Value = server
            .get(&format!("{family}/tasks/{}", done.request_id))
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(
            one,
            json!({
                "state": "completed",
                "create_ts": done.create_ts,
                "update_ts": done.update_ts,
                "request_id": done.request_id,
                "owner": "ocie-0",
                "command_type": "CreateCloneCommand",
                "ref_id": "ADD62kMoLB",
                "error": "",
                "result": serde_json::from_str::<Value>(done.result.as_deref().unwrap()).unwrap(),
                "location": "/api/ocie/v1/tasks/Fj3U7QTsDDWL45ikk0bvk2tsanfC3H",
                // Additive (issue 14): the hosts its request names (this one's is not readable).
                "hosts": [],
                // Additive (issue 13): where the task is in its workflow; done, here.
                "progress": {"step": "record_echo_dbs", "done": 12, "total": 12, "phase": "forward"},
            })
        );
        let still_running: Value = server
            .get(&format!("{family}/tasks/{}", running.request_id))
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(still_running["result"], Value::Null);
        assert_eq!(still_running["state"], "running");

        let missing = server.get(&format!("{family}/tasks/nope")).await;
        assert_eq!(missing.status(), 404);
        assert_eq!(error_body(missing).await["code"], "TASK_NOT_FOUND");

        let all: Value = server
            .get(&format!("{family}/tasks"))
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(all.as_array().unwrap().len(), 2);
    }
    // The location a task carries resolves.
    let location = server.get(&done.location).await;
    assert_eq!(location.status(), 200);
}

async fn task_list_filters(backend: Backend) {
    let server = TestServer::start(backend).await;
    let store = server.db.store().await;
    let records = [
        task(
            "a1",
            TaskState::Completed,
            CommandType::CreateClone,
            "pipeA",
        ),
        task("a2", TaskState::Running, CommandType::Deploy, "pipeA"),
        task("b1", TaskState::Failed, CommandType::Delete, "pipeB"),
    ];
    for record in &records {
        store
            .insert_task(&NewTask {
                record: record.clone(),
                host_ids: vec![],
            })
            .await
            .unwrap();
    }
    let ids = |body: Value| -> Vec<String> {
        body.as_array()
            .unwrap()
            .iter()
            .map(|t| t["request_id"].as_str().unwrap().to_owned())
            .collect()
    };
    let server = &server;
    let query = |q: &'static str| async move {
        let response = server.get(&format!("/api/echo/v1/tasks{q}")).await;
        assert_eq!(response.status(), 200, "{q}");
        ids(response.json().await.unwrap())
    };
    assert_eq!(query("").await, ["a1", "a2", "b1"]);
    assert_eq!(query("?ref_id=pipeA").await, ["a1", "a2"]);
    assert_eq!(query("?state=running").await, ["a2"]);
    assert_eq!(
        query("?command_type=DeleteCommand&state=failed").await,
        ["b1"]
    );
    assert_eq!(
        query("?ref_id=pipeA&state=failed").await,
        Vec::<String>::new()
    );
    assert_eq!(query("?unrelated=1").await, ["a1", "a2", "b1"]);
    // Opt-in pages, newest first (same second here: the request id breaks the tie).
    assert_eq!(query("?limit=2").await, ["b1", "a2"]);
    assert_eq!(query("?limit=2&before=a2").await, ["a1"]);
    assert_eq!(query("?limit=5&ref_id=pipeA").await, ["a2", "a1"]);
    assert_eq!(
        query("?before=b1").await,
        ["a2", "a1"],
        "a cursor alone pages too"
    );
    assert_eq!(
        query("?before=").await,
        ["a1", "a2", "b1"],
        "an empty one is none"
    );
    let out_of_range = "?limit=1001&command_type=NotAFlexCommand";
    for bad in [
        "?limit=0",
        "?limit=1001",
        "?limit=x&before=a2",
        out_of_range,
    ] {
        let response = server.get(&format!("/api/echo/v1/tasks{bad}")).await;
        assert_eq!(response.status(), 400, "{bad}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["code"], "INVALID_QUERY", "{bad}");
    }
}

/// Lists are kept rendered: a change to what a task shows, committed anywhere (here, straight
/// into the shared database, as another replica or the executor would), shows in the very next
/// list, whole or paged, while a lease claimed or extended moves nothing a list shows.
async fn a_kept_task_list_shows_every_change_at_once(backend: Backend) {
    let server = TestServer::start(backend).await;
    let store = server.db.store().await;
    // A command type the server's own executor does not run: only this test moves it.
    let first = task("k1", TaskState::Running, CommandType::Deploy, "kept");
    store
        .insert_task(&NewTask {
            record: first.clone(),
            host_ids: vec![],
        })
        .await
        .unwrap();
    let server = &server;
    let list = |q: &'static str| async move {
        let response = server.get(&format!("/api/echo/v1/tasks{q}")).await;
        assert_eq!(response.status(), 200, "{q}");
        assert_eq!(response.headers()["content-type"], "application/json");
        response.json::<Value>().await.unwrap()
    };
    let whole = list("").await;
    assert_eq!(whole[0]["state"], "running");
    assert_eq!(list("").await, whole, "served as kept");
    assert_eq!(list("?limit=1").await, whole);

    let generation = store.task_list_generation().await.unwrap();
    let claimed = store
        .claim_task(
            "elsewhere",
            60_000,
            flex::clock::now_ms(),
            &[CommandType::Deploy],
        )
        .await
        .unwrap()
        .expect("the task is free");
    assert!(
        store
            .extend_lease("k1", claimed.epoch, flex::clock::now_ms() + 90_000)
            .await
            .unwrap()
    );
    assert_eq!(
        store.task_list_generation().await.unwrap(),
        generation,
        "a lease is not part of any list"
    );
    assert_eq!(list("").await, whole);

    assert!(
        store
            .finish_task("k1", claimed.epoch, TaskState::Failed, "it broke", None)
            .await
            .unwrap()
    );
    let ended = list("").await;
    assert_eq!(ended[0]["state"], "failed");
    assert_eq!(ended[0]["error"], "it broke");
    assert_eq!(list("?state=running").await, json!([]));
    assert_eq!(list("?limit=1").await, ended, "a kept page moves too");

    store
        .insert_task(&NewTask {
            record: task("k2", TaskState::Running, CommandType::Deploy, "kept"),
            host_ids: vec![],
        })
        .await
        .unwrap();
    let ids: Vec<Value> = list("")
        .await
        .as_array()
        .unwrap()
        .iter()
        .map(|task| task["request_id"].clone())
        .collect();
    assert_eq!(ids, [json!("k1"), json!("k2")]);
    assert_eq!(list("?state=running").await[0]["request_id"], "k2");
}

crate::on_both_backends!(
    tasks_read_on_every_family,
    task_list_filters,
    a_kept_task_list_shows_every_change_at_once
);
