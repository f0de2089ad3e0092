//! Clone lifecycle as a pipeline lives it: a clone with a ttl deletes itself once its
//! pipeline stops sending keep-alives, a protected clone survives every delete path and never
//! expires, an idempotent POST retried (also concurrently) makes one task, and a snapshot
//! schedule keeps its newest snapshots, never deleting one in use, across a restart.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::{Backend, Echo, Options, error_body};

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        .try_into()
        .unwrap()
}

fn clone_body(extra: &Value) -> Value {
    let mut body = crate::support::rig::sales_copy();
    for (key, value) in extra.as_object().unwrap() {
        body[key] = value.clone();
    }
    body
}

/// The echo DB called `name` on dev-01 as `GET …/databases` lists it, if it is there.
async fn listed(echo: &Echo, name: &str) -> Option<Value> {
    let databases = echo.databases("dev-01").await;
    databases.into_iter().find(|d| d["name"] == name)
}

async fn tasks(echo: &Echo, query: &str) -> Vec<Value> {
    let tasks: Value = echo
        .server
        .get(&format!("/api/echo/v1/tasks?{query}"))
        .await
        .json()
        .await
        .unwrap();
    tasks.as_array().unwrap().clone()
}

/// Waits until `done` holds, up to `limit`.
async fn eventually<F: AsyncFn() -> bool>(limit: Duration, what: &str, done: F) {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if done().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{what}: not within {limit:?}");
}

/// Deletes the snapshot a clone task took, then checks nothing is left on the array.
async fn delete_snapshot_and_check_clean(echo: &Echo, task: &Value) {
    let snapshot = task["result"]["db_snapshot"]["id"].as_str().unwrap();
    let path = format!("/api/echo/v1/db_snapshots/{snapshot}");
    let gone = echo.run(Method::DELETE, &path, Value::Null, 200).await;
    assert_eq!(gone["state"], "completed", "{gone}");
    echo.assert_nothing_left().await;
}

async fn keepalive(echo: &Echo, db_id: &str, body: Value) -> reqwest::Response {
    let path = format!("/api/echo/v1/hosts/dev-01/databases/{db_id}/_keepalive");
    echo.send(Method::POST, &path, body).await
}

async fn a_clone_with_a_ttl_expires_unless_kept_alive(backend: Backend) {
    let echo = Echo::start(backend, Options::default()).await;
    let task = echo
        .run(
            Method::POST,
            "/api/echo/v1/echo_dbs",
            clone_body(&json!({"ttl_secs": 3})),
            200,
        )
        .await;
    assert_eq!(task["state"], "completed", "{task}");
    let db_id = task["result"]["cloned_dbs"][0]["id"].as_str().unwrap();
    let shown = listed(&echo, "sales_copy").await.unwrap();
    assert_eq!(shown["ttl_secs"], 3, "{shown}");
    assert_eq!(shown["protected"], false);
    let expires = shown["expires_ts"].as_i64().unwrap();
    assert!((now() + 1..=now() + 3).contains(&expires), "{shown}");
    let topology: Value = echo
        .server
        .get("/api/echo/v1/topology")
        .await
        .json()
        .await
        .unwrap();
    let in_topology = topology.as_array().unwrap().iter().find_map(|entry| {
        let databases = entry["databases"].as_array()?;
        databases
            .iter()
            .find(|d| d["name"] == "sales_copy")
            .cloned()
    });
    assert_eq!(in_topology.unwrap()["expires_ts"], expires);
    let source = &topology[2]["databases"][0];
    assert!(
        source.get("expires_ts").is_none(),
        "only echo DBs: {source}"
    );

    // A pipeline that runs for twice the ttl, sending keep-alives.
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(6) {
        let response = keepalive(&echo, db_id, Value::Null).await;
        assert_eq!(response.status(), 200);
        let kept: Value = response.json().await.unwrap();
        assert!(kept["expires_ts"].as_i64().unwrap() >= now() + 2, "{kept}");
        tokio::time::sleep(Duration::from_millis(700)).await;
    }
    assert!(listed(&echo, "sales_copy").await.is_some(), "kept alive");
    let longer = keepalive(&echo, db_id, json!({"ttl_secs": 2})).await;
    let longer: Value = longer.json().await.unwrap();
    assert_eq!(longer["ttl_secs"], 3, "a keep-alive's ttl is for this once");
    assert!(longer["expires_ts"].as_i64().unwrap() <= now() + 2);

    // The pipeline dies: the clone goes by itself, exactly as a user's delete would.
    eventually(Duration::from_secs(30), "the clone expires", async || {
        listed(&echo, "sales_copy").await.is_none()
    })
    .await;
    let expiries = tasks(&echo, "ref_id=expiry").await;
    assert_eq!(expiries.len(), 1, "{expiries:?}");
    let expiry = echo.wait(&expiries[0]).await;
    assert_eq!(expiry["state"], "completed", "{expiry}");
    assert_eq!(expiry["command_type"], "DeleteCommand");
    let gone = keepalive(&echo, db_id, Value::Null).await;
    assert_eq!(gone.status(), 404);
    delete_snapshot_and_check_clean(&echo, &task).await;
}

async fn a_protected_clone_refuses_every_delete_and_never_expires(backend: Backend) {
    let echo = Echo::start(backend, Options::default()).await;
    let task = echo
        .run(
            Method::POST,
            "/api/echo/v1/echo_dbs",
            clone_body(&json!({"ttl_secs": 1, "protected": true})),
            200,
        )
        .await;
    assert_eq!(task["state"], "completed", "{task}");
    let db_id = task["result"]["cloned_dbs"][0]["id"].as_str().unwrap();
    let snapshot = task["result"]["db_snapshot"]["id"].as_str().unwrap();
    let target = json!({"host_id": "dev-01", "database_id": db_id});
    for path in ["/api/echo/v1/echo_dbs", "/flex/api/v1/ocie/clone"] {
        let refused = echo.send(Method::DELETE, path, target.clone()).await;
        assert_eq!(refused.status(), StatusCode::CONFLICT, "{path}");
        assert_eq!(error_body(refused).await["code"], "ECHO_DB_PROTECTED");
    }
    let verdict: Value = echo
        .send(
            Method::DELETE,
            "/api/echo/v1/echo_dbs/__validate",
            target.clone(),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(verdict["valid"], false);
    assert_eq!(verdict["issues"][0]["issue_type"], "ECHO_DB_PROTECTED");
    let refresh = json!({"snapshot_id": snapshot, "db_names": ["sales_copy"]});
    let path = "/api/echo/v1/hosts/dev-01/databases/_refresh";
    let refused = echo.send(Method::POST, path, refresh.clone()).await;
    assert_eq!(refused.status(), StatusCode::CONFLICT);
    assert_eq!(error_body(refused).await["code"], "ECHO_DB_PROTECTED");
    let verdict: Value = echo
        .send(Method::POST, &format!("{path}/__validate"), refresh)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(verdict["issues"][0]["issue_type"], "ECHO_DB_PROTECTED");
    let snapshot_delete = echo
        .send(
            Method::DELETE,
            &format!("/api/echo/v1/db_snapshots/{snapshot}"),
            Value::Null,
        )
        .await;
    assert_eq!(snapshot_delete.status(), StatusCode::CONFLICT);

    // Its ttl ran out long ago, and several expiry checks passed.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(listed(&echo, "sales_copy").await.is_some());
    assert!(tasks(&echo, "ref_id=expiry").await.is_empty());

    // Unprotected, it expires at the next check.
    let patched: Value = echo
        .send(
            Method::PATCH,
            &format!("/api/echo/v1/hosts/dev-01/databases/{db_id}"),
            json!({"protected": false}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(patched["protected"], false, "{patched}");
    eventually(Duration::from_secs(30), "the clone expires", async || {
        listed(&echo, "sales_copy").await.is_none()
    })
    .await;
    let expiries = tasks(&echo, "ref_id=expiry").await;
    assert_eq!(expiries.len(), 1);
    assert_eq!(echo.wait(&expiries[0]).await["state"], "completed");
    delete_snapshot_and_check_clean(&echo, &task).await;
}

async fn patch_and_refresh_set_and_keep_the_expiry(backend: Backend) {
    let echo = Echo::start(backend, Options::default()).await;
    let task = echo.clone_sales_copy().await;
    let db_id = task["result"]["cloned_dbs"][0]["id"].as_str().unwrap();
    let shown = listed(&echo, "sales_copy").await.unwrap();
    assert_eq!(
        shown["expires_ts"],
        Value::Null,
        "no ttl, no expiry: {shown}"
    );
    let not_expiring = keepalive(&echo, db_id, Value::Null).await;
    assert_eq!(not_expiring.status(), StatusCode::CONFLICT);
    assert_eq!(
        error_body(not_expiring).await["code"],
        "ECHO_DB_NOT_EXPIRING"
    );

    let path = format!("/api/echo/v1/hosts/dev-01/databases/{db_id}");
    let patch = async |body: Value| echo.send(Method::PATCH, &path, body).await;
    let patched: Value = patch(json!({"ttl_secs": 3600})).await.json().await.unwrap();
    let expires = patched["expires_ts"].as_i64().unwrap();
    assert!(
        (now() + 3590..=now() + 3600).contains(&expires),
        "{patched}"
    );
    let both: Value = patch(json!({"ttl_secs": 60, "expires_ts": expires + 10}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        both["expires_ts"],
        expires + 10,
        "expires_ts says when: {both}"
    );
    assert_eq!(
        both["ttl_secs"], 60,
        "ttl_secs what a keep-alive adds: {both}"
    );
    let patched: Value = patch(json!({"ttl_secs": 3600})).await.json().await.unwrap();
    let expires = patched["expires_ts"].as_i64().unwrap();
    for bad in [json!({"ttl_secs": 0}), json!({"protect": true})] {
        let refused = patch(bad.clone()).await;
        assert_eq!(refused.status(), StatusCode::BAD_REQUEST, "{bad}");
    }
    let missing = echo
        .send(
            Method::PATCH,
            "/api/echo/v1/hosts/dev-01/databases/999",
            json!({}),
        )
        .await;
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);

    // A refresh keeps the expiry; one that gives a ttl sets a new one.
    let newer = echo
        .run(
            Method::POST,
            "/api/echo/v1/db_snapshots",
            json!({"source_host_id": "src-01", "database_ids": ["5"]}),
            200,
        )
        .await;
    let newer = newer["result"]["db_snapshot"]["id"].as_str().unwrap();
    let refresh = "/api/echo/v1/hosts/dev-01/databases/_refresh";
    let refreshed = echo
        .run(
            Method::POST,
            refresh,
            json!({"snapshot_id": newer, "db_names": ["sales_copy"]}),
            200,
        )
        .await;
    assert_eq!(refreshed["state"], "completed", "{refreshed}");
    let shown = listed(&echo, "sales_copy").await.unwrap();
    assert_eq!(shown["expires_ts"], expires, "{shown}");
    let refreshed = echo
        .run(
            Method::POST,
            refresh,
            json!({"snapshot_id": newer, "db_names": ["sales_copy"], "ttl_secs": 7200}),
            200,
        )
        .await;
    assert_eq!(refreshed["state"], "completed", "{refreshed}");
    let shown = listed(&echo, "sales_copy").await.unwrap();
    assert_eq!(shown["ttl_secs"], 7200, "{shown}");
    let id = shown["id"].as_str().unwrap();
    let path = format!("/api/echo/v1/hosts/dev-01/databases/{id}");
    let never: Value = echo
        .send(Method::PATCH, &path, json!({"expires_ts": null}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(never["expires_ts"], Value::Null, "{never}");
    assert_eq!(never["ttl_secs"], Value::Null);
}

async fn an_idempotent_request_repeated_creates_one_task(backend: Backend) {
    let echo = Echo::start(backend, Options::default()).await;
    let post = async |key: &str, body: Value| {
        echo.server
            .admin(Method::POST, "/api/echo/v1/echo_dbs")
            .header("Idempotency-Key", key)
            .json(&body)
            .send()
            .await
            .unwrap()
    };
    let first: Value = post("pipeline-42-clone", crate::support::rig::sales_copy())
        .await
        .json()
        .await
        .unwrap();
    let done = echo.wait(&first).await;
    assert_eq!(done["state"], "completed", "{done}");
    // The retry of a POST whose answer was lost: the name is taken now, yet the retry gets
    // the first task, as it is now.
    let again = post("pipeline-42-clone", crate::support::rig::sales_copy()).await;
    assert_eq!(again.status(), 200);
    let again: Value = again.json().await.unwrap();
    assert_eq!(again["request_id"], first["request_id"]);
    assert_eq!(again["state"], "completed");
    let other = post(
        "pipeline-42-clone",
        clone_body(&json!({"destinations": [{"host_id": "dev-02", "db_id": "5", "db_name": "x"}]})),
    )
    .await;
    assert_eq!(other.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(error_body(other).await["code"], "IDEMPOTENCY_KEY_REUSED");
    for bad in ["", "caf\u{e9}", &"k".repeat(256)] {
        let response = echo
            .server
            .admin(Method::POST, "/api/echo/v1/echo_dbs")
            .header(
                "Idempotency-Key",
                reqwest::header::HeaderValue::from_bytes(bad.as_bytes()).unwrap(),
            )
            .json(&crate::support::rig::sales_copy())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{bad:?}");
    }
    assert_eq!(
        tasks(&echo, "command_type=CreateCloneCommand").await.len(),
        1
    );

    // Eight at once, as two replicas or an impatient client would send them.
    let snapshot = json!({"source_host_id": "src-01", "database_ids": ["5"]});
    let sends = (0..8).map(|_| async {
        echo.server
            .admin(Method::POST, "/api/echo/v1/db_snapshots")
            .header("Idempotency-Key", "nightly-snapshot")
            .json(&snapshot)
            .send()
            .await
            .unwrap()
            .json::<Value>()
            .await
            .unwrap()
    });
    let answers = futures_util::future::join_all(sends).await;
    for answer in &answers {
        assert_eq!(answer["request_id"], answers[0]["request_id"], "{answer}");
    }
    let snapshots = tasks(&echo, "command_type=CreateDBSnapshotCommand").await;
    assert_eq!(snapshots.len(), 1, "{snapshots:?}");
    let taken = echo.wait(&answers[0]).await;
    assert_eq!(taken["state"], "completed", "{taken}");
}

async fn schedule(echo: &Echo, id: &str) -> Value {
    echo.server
        .get(&format!("/api/echo/v1/snapshot_schedules/{id}"))
        .await
        .json()
        .await
        .unwrap()
}

/// Waits until no task runs (so the array and the store are quiet).
async fn quiet(echo: &Echo) {
    eventually(Duration::from_mins(1), "running tasks end", async || {
        tasks(echo, "state=running").await.is_empty()
    })
    .await;
}

async fn a_schedule_keeps_its_newest_snapshots_never_one_in_use(backend: Backend) {
    let mut echo = Echo::start(backend, Options::default()).await;
    let created = echo
        .send(
            Method::POST,
            "/api/echo/v1/snapshot_schedules",
            json!({"source_host_id": "src-01", "database_ids": ["5"], "interval_secs": 2,
                   "keep_last": 2, "consistency_level": "crash", "name_prefix": "nightly"}),
        )
        .await;
    assert_eq!(created.status(), StatusCode::CREATED);
    let created: Value = created.json().await.unwrap();
    let id = created["id"].as_str().unwrap().to_owned();
    assert!(
        created["next_run_ts"].as_i64().unwrap() > now(),
        "{created}"
    );
    let listed: Value = echo
        .server
        .get("/api/echo/v1/snapshot_schedules")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(listed[0]["id"], id.as_str());

    // The first snapshot is cloned from: it stays, whatever retention does.
    eventually(Duration::from_secs(30), "a first run", async || {
        !schedule(&echo, &id).await["snapshot_ids"]
            .as_array()
            .unwrap()
            .is_empty()
    })
    .await;
    let first = schedule(&echo, &id).await["snapshot_ids"][0]
        .as_str()
        .unwrap()
        .to_owned();
    let import = echo
        .run(
            Method::POST,
            &format!("/api/echo/v1/db_snapshots/{first}/echo_db"),
            json!({"destinations": [{"host_id": "dev-01", "db_id": "5", "db_name": "kept"}]}),
            200,
        )
        .await;
    assert_eq!(import["state"], "completed", "{import}");

    let runs = async |echo: &Echo| tasks(echo, "ref_id=schedule").await.len();
    let at_least = runs(&echo).await + 3;
    eventually(Duration::from_mins(1), "three more runs", async || {
        runs(&echo).await >= at_least
    })
    .await;
    // A restart in the middle: the schedule goes on from the store.
    echo.stop_server().await.unwrap();
    echo.start_again(&Options::default()).await;
    let at_least = runs(&echo).await + 3;
    eventually(
        Duration::from_mins(1),
        "runs after the restart",
        async || runs(&echo).await >= at_least,
    )
    .await;
    // Each run records its snapshot, then retires the oldest: between the two there is one more.
    eventually(
        Duration::from_secs(30),
        "retention catches up",
        async || {
            let kept = schedule_snapshots(&echo, &id).await;
            assert!(kept.contains(&first), "the snapshot in use stays: {kept:?}");
            assert!(kept.len() <= 4, "{kept:?}");
            kept.len() <= 3
        },
    )
    .await;
    let deleted = echo
        .server
        .admin(
            Method::DELETE,
            &format!("/api/echo/v1/snapshot_schedules/{id}"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    quiet(&echo).await;

    let kept = schedule_snapshots(&echo, &id).await;
    assert!(kept.contains(&first), "the snapshot in use stays: {kept:?}");
    // A run that started before the schedule was deleted keeps its snapshot: a deleted
    // schedule's snapshots are the operator's.
    assert!(
        kept.len() <= 4,
        "the two newest, the one in use, a last run: {kept:?}"
    );
    let runs = tasks(&echo, "ref_id=schedule").await;
    for run in &runs {
        assert_eq!(run["state"], "completed", "{run}");
    }
    let retired = tasks(&echo, "ref_id=retention").await;
    assert!(retired.len() + kept.len() >= runs.len(), "{retired:?}");
    for delete in &retired {
        assert_eq!(delete["state"], "completed", "{delete}");
    }
    let gone = echo
        .server
        .get(&format!("/api/echo/v1/snapshot_schedules/{id}"))
        .await;
    assert_eq!(gone.status(), StatusCode::NOT_FOUND);
    echo.assert_ledger_matches_array().await;
}

/// The ids of the db snapshots a schedule took (the schedule itself may be gone).
async fn schedule_snapshots(echo: &Echo, schedule_id: &str) -> Vec<String> {
    let snapshots: Value = echo
        .server
        .get("/api/echo/v1/db_snapshots")
        .await
        .json()
        .await
        .unwrap();
    snapshots
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["schedule_id"] == schedule_id)
        .map(|s| s["id"].as_str().unwrap().to_owned())
        .collect()
}

async fn schedules_are_validated(backend: Backend) {
    let echo = Echo::start(backend, Options::default()).await;
    let create = async |body: Value| {
        echo.send(Method::POST, "/api/echo/v1/snapshot_schedules", body)
            .await
    };
    let base = json!({"source_host_id": "src-01", "database_ids": ["5"]});
    let with = |extra: Value| {
        let mut body = base.clone();
        for (key, value) in extra.as_object().unwrap() {
            body[key] = value.clone();
        }
        body
    };
    for (body, status, field) in [
        (with(json!({})), 400, "interval_secs"),
        (
            with(json!({"interval_secs": 60, "cron": "0 2 * * *"})),
            400,
            "cron",
        ),
        (with(json!({"cron": "0 2 * *"})), 400, "cron"),
        (with(json!({"cron": "0 25 * * *"})), 400, "cron"),
        (with(json!({"interval_secs": 0})), 400, "interval_secs"),
        (
            with(json!({"interval_secs": 60, "keep_last": 0})),
            400,
            "keep_last",
        ),
        (
            with(json!({"interval_secs": 60, "name_prefix": "X"})),
            400,
            "name_prefix",
        ),
        (
            json!({"source_host_id": "nope", "database_ids": ["5"], "interval_secs": 60}),
            404,
            "nope",
        ),
        (
            with(json!({"database_ids": ["77"], "interval_secs": 60})),
            404,
            "77",
        ),
    ] {
        let response = create(body.clone()).await;
        assert_eq!(response.status().as_u16(), status, "{body}");
        let error = error_body(response).await;
        assert!(
            error["message"].as_str().unwrap().contains(field),
            "{body}: {error}"
        );
    }
    let daily = create(with(json!({"cron": "0 2 * * *"}))).await;
    assert_eq!(daily.status(), StatusCode::CREATED);
    let daily: Value = daily.json().await.unwrap();
    let next = daily["next_run_ts"].as_i64().unwrap();
    assert!(next > now() && next <= now() + 86_400, "{daily}");
    assert_eq!(next % 3600, 7200 % 3600, "on the hour, UTC: {daily}");
    assert_eq!(daily["keep_last"], 7);
    assert_eq!(daily["interval_secs"], Value::Null);
    let missing = echo
        .server
        .get("/api/echo/v1/snapshot_schedules/sch_nope")
        .await;
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    assert_eq!(error_body(missing).await["code"], "SCHEDULE_NOT_FOUND");
}

crate::on_both_backends!(
    a_clone_with_a_ttl_expires_unless_kept_alive,
    a_protected_clone_refuses_every_delete_and_never_expires,
    patch_and_refresh_set_and_keep_the_expiry,
    an_idempotent_request_repeated_creates_one_task,
    a_schedule_keeps_its_newest_snapshots_never_one_in_use,
    schedules_are_validated,
);

/// Two replicas on one Postgres database, each checking every second: one expiry delete per
/// expired clone, one task per due schedule run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_expire_and_run_schedules_once() {
    let echo = Echo::start(Backend::Postgres, Options::default()).await;
    let mut config = flex::Config::new(echo.server.db.url.clone());
    config.admin_token = Some(crate::support::ADMIN_TOKEN.into());
    crate::support::rig::server_config(&mut config, &echo.sdp.url, &Options::default());
    config.instance_id = "replica-2".into();
    let second = crate::support::TestServer::start_on(echo.server.db.share(), config).await;

    let clones: Vec<Value> = futures_util::future::join_all((0..3).map(|n| {
        let body = json!({"source_host_id": "src-01", "ttl_secs": 1, "destinations":
            [{"host_id": "dev-01", "db_id": "5", "db_name": format!("short{n}")}]});
        echo.run(Method::POST, "/api/echo/v1/echo_dbs", body, 200)
    }))
    .await;
    for task in &clones {
        assert_eq!(task["state"], "completed", "{task}");
    }
    let created = second
        .admin(Method::POST, "/api/echo/v1/snapshot_schedules")
        .json(
            &json!({"source_host_id": "src-01", "database_ids": ["6"], "interval_secs": 1,
                      "keep_last": 1, "consistency_level": "crash"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    let schedule_id = created.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();

    eventually(Duration::from_mins(1), "the clones expire", async || {
        echo.databases("dev-01").await.is_empty()
    })
    .await;
    let runs = async || tasks(&echo, "ref_id=schedule").await.len();
    eventually(Duration::from_mins(1), "five runs", async || {
        runs().await >= 5
    })
    .await;
    second
        .admin(
            Method::DELETE,
            &format!("/api/echo/v1/snapshot_schedules/{schedule_id}"),
        )
        .send()
        .await
        .unwrap();
    quiet(&echo).await;

    let expiries = tasks(&echo, "ref_id=expiry").await;
    assert_eq!(expiries.len(), 3, "one delete per clone: {expiries:?}");
    let mut owners: Vec<&str> = expiries
        .iter()
        .map(|t| t["owner"].as_str().unwrap())
        .collect();
    owners.dedup();
    let runs = tasks(&echo, "ref_id=schedule").await;
    let mut started: Vec<i64> = runs
        .iter()
        .map(|t| t["create_ts"].as_i64().unwrap())
        .collect();
    started.sort_unstable();
    for pair in started.windows(2) {
        assert!(pair[1] > pair[0], "two runs in one second: {started:?}");
    }
    for task in expiries.iter().chain(&runs) {
        assert_eq!(task["state"], "completed", "{task}");
    }
    tracing::info!(?owners, runs = runs.len(), "replicas shared the work");
    second.stop().await.unwrap();
}
