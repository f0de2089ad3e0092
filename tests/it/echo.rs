//! The Echo workflows end to end, the way a pipeline drives them: POST, poll `location` until
//! the task ends, then check the (emulated) array for exactly what should be there.

use std::time::Duration;

use flex::emulators::sdp::{FaultAction, FaultRule};
use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{
    Backend, Echo, Options, error_body,
    processes::{FlexServe, free_port, http_client, wait_ready},
};

async fn the_whole_lifecycle_leaves_nothing_behind(backend: Backend) {
    let echo = Echo::start(backend, Options::default()).await;

    // 1. An application-consistent snapshot of two databases on two volume groups (seed path).
    let task = echo
        .run(
            Method::POST,
            "/flex/api/v1/db_snapshots",
            json!({"source_host_id": "src-01", "database_ids": ["5", "6"]}),
            200,
        )
        .await;
    assert_eq!(task["state"], "completed", "{task}");
    assert_eq!(task["command_type"], "CreateDBSnapshotCommand");
    assert!(
        task["location"]
            .as_str()
            .unwrap()
            .starts_with("/flex/api/v1/ocie/tasks/")
    );
    let snap_a = task["result"]["db_snapshot"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(snap_a.starts_with("snap_"), "{snap_a}");
    assert_eq!(
        echo.array().snapshots.len(),
        2,
        "one SDP snapshot per volume group"
    );
    let steps = echo.task_steps(&task).await;
    let thaw = steps.iter().find(|s| s.name == "thaw_databases").unwrap();
    assert!(
        thaw.detail.frozen_ms.is_some(),
        "time frozen is recorded: {:?}",
        thaw.detail
    );
    let listed: Value = echo
        .server
        .get("/api/echo/v1/db_snapshots")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(listed[0]["id"], snap_a.as_str());
    assert_eq!(listed[0]["consistency_level"], "application");
    assert_eq!(listed[0]["databases"].as_array().unwrap().len(), 2);
    assert_eq!(listed[0]["vg_snapshot_ids"].as_array().unwrap().len(), 2);

    // 2. Clone one database of it onto dev-01 (seed path, db_id given).
    let task = echo
        .run(
            Method::POST,
            &format!("/flex/api/v1/db_snapshots/{snap_a}/clone"),
            json!({"destinations": [{"host_id": "dev-01", "db_id": "5", "db_name": "sales_copy"}]}),
            200,
        )
        .await;
    assert_eq!(task["state"], "completed", "{task}");
    assert_eq!(task["command_type"], "ImportDBSnapshotCommand");
    assert_eq!(task["hosts"], json!(["dev-01"]), "its destinations");
    let cloned = &task["result"]["cloned_dbs"][0];
    assert_eq!(cloned["name"], "sales_copy");
    assert_eq!(cloned["host_id"], "dev-01");
    assert_eq!(cloned["source_host_id"], "src-01");
    assert_eq!(cloned["source_db_id"], 5, "numeric ids are integers here");
    assert_eq!(cloned["source_db_name"], "sales");
    let sales_copy_id = cloned["id"].as_str().unwrap().to_owned();
    assert_eq!(echo.dest_databases("dev-01").await, ["sales_copy"]);
    let array = echo.array();
    assert_eq!(
        array.volumes.values().filter(|v| v.is_thin_clone).count(),
        2,
        "a clone per volume of sales"
    );
    assert_eq!(array.mappings.len(), 2);
    echo.assert_ledger_matches_array().await;

    // 3. Snapshot + clone in one call (current path, crash-consistent) onto dev-02.
    let task = echo
        .run(
            Method::POST,
            "/api/echo/v1/echo_dbs",
            json!({"source_host_id": "src-01", "destinations": [{"host_id": "dev-02", "db_id": "6", "db_name": "hr_copy"}], "consistency_level": "crash", "name_prefix": "nightly"}),
            200,
        )
        .await;
    assert_eq!(task["state"], "completed", "{task}");
    assert!(
        task["location"]
            .as_str()
            .unwrap()
            .starts_with("/api/echo/v1/tasks/")
    );
    let snap_b = task["result"]["db_snapshot"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(snap_b.starts_with("nightly_"));
    let hr_copy_id = task["result"]["cloned_dbs"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(echo.dest_databases("dev-02").await, ["hr_copy"]);

    // 4. Topology shows snapshots (not deletable while used) and the echo DBs' parents.
    let topology: Value = echo
        .server
        .get("/api/ocie/v1/topology")
        .await
        .json()
        .await
        .unwrap();
    let entry = |host: &str| {
        topology
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["host"]["id"] == host)
            .unwrap()
            .clone()
    };
    let sales = entry("src-01")["databases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == "sales")
        .unwrap()
        .clone();
    assert_eq!(sales["db_snapshots"][0]["id"], snap_a.as_str());
    assert_eq!(sales["db_snapshots"][0]["deletable"], false);
    assert_eq!(
        sales["db_snapshots"][0]["echo_dbs"],
        json!([{"host_id": "dev-01", "db_id": sales_copy_id, "name": "sales_copy"}]),
        "what makes it undeletable"
    );
    let taken_by = sales["db_snapshots"][0]["task_id"].as_str().unwrap();
    assert_eq!(
        taken_by.len(),
        30,
        "the snapshot task's request id: {taken_by}"
    );
    let copy = entry("dev-01")["databases"][0].clone();
    assert_eq!(
        entry("dev-01")["sdps"],
        json!([{"sdp_id": "134409", "host_name": "dev-01"}])
    );
    assert!(
        copy["files"][0]["volume_name"]
            .as_str()
            .unwrap()
            .starts_with("echo-"),
        "{copy}"
    );
    assert_eq!(
        copy["parent"],
        json!({"src_host_id": "src-01", "src_db_id": "5", "snap_id": snap_a})
    );

    // 5. The same name again is refused, by the dry run and by the request, before any task.
    let clash = json!({"source_host_id": "src-01", "destinations": [{"host_id": "dev-01", "db_id": "5", "db_name": "sales_copy"}]});
    let dry: Value = echo
        .send(
            Method::POST,
            "/api/echo/v1/echo_dbs/__validate",
            clash.clone(),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(dry["valid"], false);
    assert_eq!(dry["issues"][0]["issue_type"], "DB_NAME_IS_IN_USE");
    assert_eq!(
        dry["issues"][0]["description"],
        "host_id='dev-01'. db names already in use: sales_copy"
    );
    let refused = echo
        .send(Method::POST, "/api/echo/v1/echo_dbs", clash)
        .await;
    assert_eq!(refused.status(), 409);
    assert_eq!(error_body(refused).await["code"], "DB_NAME_IS_IN_USE");

    // 6. A snapshot in use cannot be deleted.
    let in_use = echo
        .send(
            Method::DELETE,
            &format!("/flex/api/v1/db_snapshots/{snap_a}"),
            json!({}),
        )
        .await;
    assert_eq!(in_use.status(), 409);
    assert_eq!(error_body(in_use).await["code"], "SNAPSHOT_IN_USE");
    let dry: Value = echo
        .send(
            Method::DELETE,
            &format!("/api/echo/v1/db_snapshots/{snap_a}/__validate"),
            json!({}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(dry["issues"][0]["issue_type"], "SNAPSHOT_IN_USE");

    // 7. Refresh sales_copy from a newer snapshot: same name, new clones, old ones gone.
    let task = echo
        .run(Method::POST, "/api/echo/v1/db_snapshots", json!({"source_host_id": "src-01", "database_ids": ["5"], "consistency_level": "crash"}), 200)
        .await;
    let snap_c = task["result"]["db_snapshot"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let record = echo
        .server
        .db
        .store()
        .await
        .get_echo_db("dev-01", &sales_copy_id)
        .await
        .unwrap()
        .unwrap();
    let old_clones: Vec<u64> = record.volumes.iter().map(|v| v.volume_id).collect();
    assert_eq!(old_clones.len(), 2);
    let task = echo
        .run(
            Method::POST,
            "/api/echo/v1/hosts/dev-01/databases/_refresh",
            json!({"snapshot_id": snap_c, "db_names": ["sales_copy"]}),
            200,
        )
        .await;
    assert_eq!(task["state"], "completed", "{task}");
    assert_eq!(task["command_type"], "ReplaceDBCommand");
    let refreshed_id = task["result"]["cloned_dbs"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // Detached and attached again, it gets its old database_id back, as on SQL Server.
    assert_eq!(refreshed_id, sales_copy_id);
    assert_eq!(echo.dest_databases("dev-01").await, ["sales_copy"]);
    let array = echo.array();
    assert!(
        old_clones.iter().all(|id| !array.volumes.contains_key(id)),
        "old clones deleted"
    );
    echo.assert_ledger_matches_array().await;

    // 8. Delete the echo DBs (seed path and current path): 202, then completed.
    let task = echo
        .run(
            Method::DELETE,
            "/flex/api/v1/ocie/clone",
            json!({"host_id": "dev-01", "database_id": refreshed_id}),
            202,
        )
        .await;
    assert_eq!(task["state"], "completed", "{task}");
    let task = echo
        .run(
            Method::DELETE,
            "/api/echo/v1/echo_dbs",
            json!({"host_id": "dev-02", "database_id": hr_copy_id}),
            202,
        )
        .await;
    assert_eq!(task["state"], "completed", "{task}");
    assert!(echo.dest_databases("dev-01").await.is_empty());
    assert!(echo.dest_databases("dev-02").await.is_empty());

    // 9. Delete the snapshots: synchronously on the seed path, as tasks on the current one.
    let deleted = echo
        .send(
            Method::DELETE,
            &format!("/flex/api/v1/db_snapshots/{snap_a}"),
            json!({}),
        )
        .await;
    assert_eq!(deleted.status(), 204);
    let gone = echo
        .send(
            Method::DELETE,
            &format!("/flex/api/v1/db_snapshots/{snap_a}"),
            json!({}),
        )
        .await;
    assert_eq!(gone.status(), 404);
    for snap in [&snap_b, &snap_c] {
        let task = echo
            .run(
                Method::DELETE,
                &format!("/api/echo/v1/db_snapshots/{snap}"),
                json!({}),
                200,
            )
            .await;
        assert_eq!(task["state"], "completed", "{task}");
        assert_eq!(task["command_type"], "DeleteDBSnapshotCommand");
    }
    let listed: Value = echo
        .server
        .get("/api/echo/v1/db_snapshots")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(listed, json!([]));
    echo.assert_nothing_left().await;

    // The one application-consistent snapshot's freeze shows in the metrics, and so does
    // every layer the tasks went through, labelled by route template, never by raw path.
    let response = echo
        .server
        .client
        .get(echo.server.url("/metrics"))
        .send()
        .await
        .unwrap();
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/openmetrics-text"),
    );
    let metrics = response.text().await.unwrap();
    for expected in [
        "flex_freeze_duration_seconds_count 1",
        "flex_tasks_finished_total{state=\"completed\"} 9",
        "flex_task_duration_seconds_count{command_type=\"CreateCloneCommand\",state=\"completed\"}",
        "flex_http_request_duration_seconds_count{method=\"GET\",route=\"/api/echo/v1/tasks/{request_id}\",status=\"200\"}",
        "flex_sdp_request_duration_seconds_count{method=\"POST\",collection=\"volumes\",outcome=\"ok\"}",
        "flex_agent_command_duration_seconds_count{command=\"freeze\",outcome=\"ok\"}",
        "flex_agents_connected 3",
        "flex_tasks_running 0",
        "flex_sdp_ledger_objects{kind=\"volume\"} 0",
        "# EOF",
    ] {
        assert!(
            metrics.contains(expected),
            "{expected} missing from {metrics}"
        );
    }
    assert!(
        !metrics.contains("route=\"/api/echo/v1/tasks/") || !metrics.contains("tasks/t"),
        "no raw ids in route labels"
    );
}

async fn requests_that_cannot_succeed_fail_fast(backend: Backend) {
    let echo = Echo::start(backend, Options::default()).await;
    let cases = [
        (
            "/flex/api/v1/db_snapshots",
            json!({"source_host_id": "ghost", "database_ids": ["5"]}),
            404,
            "HOST_NOT_FOUND",
        ),
        (
            "/flex/api/v1/db_snapshots",
            json!({"source_host_id": "src-01", "database_ids": ["99"]}),
            404,
            "DB_NOT_FOUND",
        ),
        (
            "/api/echo/v1/db_snapshots",
            json!({"source_host_id": "src-01", "database_ids": ["5"], "name_prefix": "X"}),
            400,
            "INVALID_NAME_PREFIX",
        ),
        (
            "/api/echo/v1/db_snapshots",
            json!({"source_host_id": "src-01", "database_ids": ["5"], "consistency_level": "maybe"}),
            400,
            "INVALID_CONSISTENCY_LEVEL",
        ),
        (
            "/api/echo/v1/db_snapshots/nope/echo_db",
            json!({"destinations": [{"host_id": "dev-01", "db_name": "x"}]}),
            404,
            "SNAPSHOT_NOT_FOUND",
        ),
        (
            "/api/echo/v1/echo_dbs",
            json!({"source_host_id": "src-01", "destinations": [{"host_id": "dev-09", "db_id": "5", "db_name": "x"}]}),
            404,
            "HOST_NOT_FOUND",
        ),
        (
            "/api/echo/v1/echo_dbs",
            json!({"source_host_id": "src-01", "destinations": [{"host_id": "dev-01", "db_id": "5", "db_name": "x"}], "target_state": "asleep"}),
            400,
            "INVALID_TARGET_STATE",
        ),
        (
            "/api/echo/v1/echo_dbs",
            json!({"source_host_id": "src-01", "destinations": [{"host_id": "dev-01", "db_id": "5", "db_name": "a"}, {"host_id": "dev-01", "db_id": "6", "db_name": "A"}]}),
            409,
            "DB_NAME_IS_IN_USE",
        ),
        (
            "/api/echo/v1/hosts/dev-01/databases/_refresh",
            json!({"snapshot_id": "nope", "db_names": ["x"]}),
            404,
            "SNAPSHOT_NOT_FOUND",
        ),
    ];
    for (path, body, status, code) in cases {
        let response = echo.send(Method::POST, path, body.clone()).await;
        assert_eq!(response.status(), status, "{path} {body}");
        assert_eq!(error_body(response).await["code"], code, "{path} {body}");
    }
    let missing_field = echo
        .send(
            Method::POST,
            "/api/echo/v1/echo_dbs",
            json!({"destinations": []}),
        )
        .await;
    assert_eq!(missing_field.status(), 400);
    assert!(
        error_body(missing_field).await["message"]
            .as_str()
            .unwrap()
            .contains("source_host_id")
    );
    let delete_unknown = echo
        .send(
            Method::DELETE,
            "/api/echo/v1/echo_dbs",
            json!({"host_id": "dev-01", "database_id": "77"}),
        )
        .await;
    assert_eq!(delete_unknown.status(), 404);
    assert_eq!(
        error_body(delete_unknown).await["code"],
        "ECHO_DB_NOT_FOUND"
    );
    let dry: Value = echo
        .send(
            Method::POST,
            "/api/echo/v1/db_snapshots/__validate",
            json!({"source_host_id": "src-01", "database_ids": ["5"]}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(dry, json!({"valid": true, "issues": []}));
    let tasks: Value = echo
        .server
        .get("/api/echo/v1/tasks")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(tasks, json!([]), "no task was created by a refused request");
}

async fn an_sdp_refusal_mid_clone_is_undone_completely(backend: Backend) {
    let echo = Echo::start(backend, Options::default()).await;
    echo.sdp.add_fault(FaultRule {
        method: Some("POST".into()),
        collection: Some("volumes".into()),
        status: Some(400),
        error_code: Some("MC_ERR_QUOTA".into()),
        error_msg: Some("volume group quota exceeded".into()),
        ..FaultRule::new(FaultAction::Error)
    });
    let task = echo.clone_sales_copy().await;
    assert_eq!(task["state"], "failed");
    assert!(
        task["error"].as_str().unwrap().contains("quota exceeded"),
        "{task}"
    );
    echo.assert_nothing_left().await;
    let snapshots: Value = echo
        .server
        .get("/api/echo/v1/db_snapshots")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        snapshots,
        json!([]),
        "the snapshot made for the clone was undone too"
    );
}

async fn transient_sdp_errors_are_retried(backend: Backend) {
    let echo = Echo::start(backend, Options::default()).await;
    for collection in ["snapshots", "mappings"] {
        echo.sdp.add_fault(FaultRule {
            method: Some("POST".into()),
            collection: Some(collection.into()),
            status: Some(503),
            times: Some(2),
            ..FaultRule::new(FaultAction::Error)
        });
    }
    // And a 502 after a thin clone was made: looked up, not made twice.
    echo.sdp.add_fault(FaultRule {
        method: Some("POST".into()),
        collection: Some("volumes".into()),
        ..FaultRule::new(FaultAction::AfterWrite)
    });
    let task = echo.clone_sales_copy().await;
    assert_eq!(task["state"], "completed", "{task}");
    let array = echo.array();
    assert_eq!(
        array.volumes.values().filter(|v| v.is_thin_clone).count(),
        2,
        "no duplicate clone"
    );
    assert_eq!(array.snapshots.len(), 1);
    echo.assert_ledger_matches_array().await;
}

/// The array answers slower than the window lasts: one round trip (the volume groups'
/// snapshots go out together) of 500 ms against a 300 ms window.
async fn an_expired_freeze_window_fails_the_snapshot(backend: Backend) {
    let echo = Echo::start(
        backend,
        Options {
            freeze_window: Duration::from_millis(300),
            ..Default::default()
        },
    )
    .await;
    let listener = &echo.sdp;
    let (status, ()) = {
        let response = reqwest::Client::new()
            .put(format!("{}/emulator/latency", listener.url))
            .basic_auth("admin", Some("admin"))
            .body(r#"{"ms": 500}"#)
            .send()
            .await
            .unwrap();
        (response.status(), ())
    };
    assert_eq!(status, 204);
    let task = echo
        .run(
            Method::POST,
            "/api/echo/v1/db_snapshots",
            json!({"source_host_id": "src-01", "database_ids": ["5", "6"]}),
            200,
        )
        .await;
    assert_eq!(task["state"], "failed", "{task}");
    assert!(
        task["error"].as_str().unwrap().contains("freeze window"),
        "{task}"
    );
    echo.assert_nothing_left().await;
}

async fn an_aborted_clone_ends_aborted_with_nothing_left(backend: Backend) {
    let echo = Echo::start(
        backend,
        Options {
            dest_reply_delay: Duration::from_millis(700),
            ..Default::default()
        },
    )
    .await;
    let task = echo.start_clone_until_thin_clones_exist().await;
    let request_id = task["request_id"].as_str().unwrap();
    let abort = echo
        .send(
            Method::POST,
            &format!("/api/echo/v1/tasks/{request_id}/abort"),
            json!({}),
        )
        .await;
    assert_eq!(abort.status(), 202);
    let done = echo.wait(&task).await;
    assert_eq!(done["state"], "aborted", "{done}");
    echo.assert_nothing_left().await;
    assert!(echo.dest_databases("dev-01").await.is_empty());
    let again = echo
        .send(
            Method::POST,
            &format!("/api/echo/v1/tasks/{request_id}/abort"),
            json!({}),
        )
        .await;
    assert_eq!(again.status(), 409);
}

async fn a_destination_agent_that_drops_mid_task_does_not_break_the_clone(backend: Backend) {
    let echo = Echo::start(
        backend,
        Options {
            dest_disconnect_after: Some(2),
            ..Default::default()
        },
    )
    .await;
    let task = echo.clone_sales_copy().await;
    assert_eq!(task["state"], "completed", "{task}");
    let stats = echo.agents[1].stats();
    assert_eq!(
        stats.connections, 2,
        "the destination's agent dropped once and came back"
    );
    assert_eq!(
        stats.commands_acted.get("attach"),
        Some(&1),
        "attached once"
    );
    assert_eq!(echo.dest_databases("dev-01").await, ["sales_copy"]);
    echo.assert_ledger_matches_array().await;
}

async fn a_task_past_its_deadline_fails_and_compensates(backend: Backend) {
    let echo = Echo::start(
        backend,
        Options {
            task_deadline: Duration::from_secs(2),
            ..Default::default()
        },
    )
    .await;
    // The array keeps refusing mappings as busy: retried until the deadline, then undone.
    echo.sdp.add_fault(FaultRule {
        method: Some("POST".into()),
        collection: Some("mappings".into()),
        status: Some(503),
        times: None,
        ..FaultRule::new(FaultAction::Error)
    });
    let task = echo.clone_sales_copy().await;
    assert_eq!(task["state"], "failed", "{task}");
    assert!(
        task["error"].as_str().unwrap().contains("deadline"),
        "{task}"
    );
    echo.sdp.clear_faults();
    echo.assert_nothing_left().await;
}

/// A permanent SDP refusal at each kind of object a clone creates: the task fails with the
/// array's message and compensation leaves nothing behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_sdp_refusal_at_each_create_is_undone() {
    for collection in ["snapshots", "hosts", "host_iqns", "volumes", "mappings"] {
        let echo = Echo::start(Backend::Sqlite, Options::default()).await;
        echo.sdp.add_fault(FaultRule {
            method: Some("POST".into()),
            collection: Some(collection.into()),
            status: Some(400),
            error_code: Some("MC_ERR_REFUSED".into()),
            error_msg: Some(format!("no more {collection} today")),
            ..FaultRule::new(FaultAction::Error)
        });
        let task = echo.clone_sales_copy().await;
        assert_eq!(task["state"], "failed", "{collection}: {task}");
        assert!(
            task["error"].as_str().unwrap().contains("today"),
            "{collection}: {task}"
        );
        echo.assert_nothing_left().await;
        assert!(echo.dest_databases("dev-01").await.is_empty());
    }
}

/// Two replicas on one Postgres database: tasks created on either complete, whichever replica
/// runs them and whichever holds the agents' sockets (commands cross through the outbox). The
/// second replica is a real process; when it dies holding a task (it aborts itself in the
/// middle of a clone), the first takes the task over once the lease expires and finishes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_share_the_work_and_take_over_a_dead_ones_tasks() {
    let options = Options {
        lease: Duration::from_secs(2),
        ..Default::default()
    };
    let echo = Echo::start(Backend::Postgres, options).await;
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let http = http_client();
    let mut replica = FlexServe::new(port, &echo.server.db.url)
        .sdp(&echo.sdp.url)
        .crash_at("clone_volumes:before_checkpoint")
        .env("FLEX_AGENT_HEARTBEAT_SECS", "1")
        .env("FLEX_INSTANCE_ID", "ocie-1")
        .env("FLEX_TASK_LEASE_SECS", "3")
        .silent()
        .spawn();
    wait_ready(&http, &base).await;

    // Agents are connected to the first replica only; snapshots created on the second work.
    let mut tasks = Vec::new();
    for base_url in [&echo.server.base, &base, &echo.server.base, &base] {
        let response = http
            .post(format!("{base_url}/api/echo/v1/db_snapshots"))
            .bearer_auth(crate::support::ADMIN_TOKEN)
            .json(&json!({"source_host_id": "src-01", "database_ids": ["5"], "consistency_level": "crash"}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        tasks.push(response.json::<Value>().await.unwrap());
    }
    for task in &tasks {
        assert_eq!(echo.wait(task).await["state"], "completed", "{task}");
    }

    // A clone created on the second replica: it claims it at once and dies mid-way.
    let response = http
        .post(format!("{base}/api/echo/v1/echo_dbs"))
        .bearer_auth(crate::support::ADMIN_TOKEN)
        .json(&json!({"source_host_id": "src-01", "destinations": [{"host_id": "dev-02", "db_id": "6", "db_name": "survivor"}]}))
        .send()
        .await
        .unwrap();
    let task: Value = response.json().await.unwrap();
    let done = echo.wait(&task).await;
    assert_eq!(done["state"], "completed", "{done}");
    let died = replica.exited().is_some();
    println!(
        "the second replica {} the clone",
        if died { "died in" } else { "did not claim" }
    );
    assert_eq!(echo.dest_databases("dev-02").await, ["survivor"]);
    echo.assert_ledger_matches_array().await;
}

crate::on_both_backends!(
    a_destination_agent_that_drops_mid_task_does_not_break_the_clone,
    a_task_past_its_deadline_fails_and_compensates,
    the_whole_lifecycle_leaves_nothing_behind,
    requests_that_cannot_succeed_fail_fast,
    an_sdp_refusal_mid_clone_is_undone_completely,
    transient_sdp_errors_are_retried,
    an_expired_freeze_window_fails_the_snapshot,
    an_aborted_clone_ends_aborted_with_nothing_left,
);
