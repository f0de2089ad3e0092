//! Waiting without polling: `GET …/tasks/{id}?wait_secs=N` answers as soon as the task ends
//! (also when another replica ended it), or after N seconds with the task as it is; and every
//! task says where it is in its workflow (`progress`).

use std::time::{Duration, Instant};

use flex::{
    model::{CommandType, TaskState},
    store::NewTask,
};
use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::support::{
    ADMIN_TOKEN, Backend, Echo, Options, TestServer, builders::task, error_body, rig::sales_copy,
};

async fn a_long_poll_answers_as_the_task_ends(backend: Backend) {
    let echo = Echo::start(backend, Options::default()).await;
    let created: Value = echo
        .send(Method::POST, "/api/echo/v1/echo_dbs", sales_copy())
        .await
        .json()
        .await
        .unwrap();
    let location = created["location"].as_str().unwrap().to_owned();
    let server = &echo.server;
    let long_poll = async {
        let answer: Value = server
            .get(&format!("{location}?wait_secs=30"))
            .await
            .json()
            .await
            .unwrap();
        (answer, Instant::now())
    };
    // Beside it, a client polling every 10 ms notes when it first sees the end.
    let fast_poll = async {
        loop {
            let now: Value = server.get(&location).await.json().await.unwrap();
            if now["state"] != "running" {
                return Instant::now();
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    let ((answer, answered), seen) = tokio::join!(long_poll, fast_poll);
    assert_eq!(answer["state"], "completed", "{answer}");
    assert!(
        answered <= seen + Duration::from_millis(100),
        "the long-poll answered {:?} after the end was seen",
        answered.saturating_duration_since(seen)
    );
    let progress = &answer["progress"];
    assert_eq!(progress["done"], 12, "{answer}");
    assert_eq!(progress["total"], 12);
    assert_eq!(progress["step"], "record_echo_dbs");
    assert_eq!(progress["phase"], "forward");
    assert!(
        answer.get("steps").is_none(),
        "steps only when asked: {answer}"
    );

    // With ?steps=true, every step of the workflow and what the step log says of it.
    let detailed: Value = server
        .get(&format!("{location}?steps=true"))
        .await
        .json()
        .await
        .unwrap();
    let steps = detailed["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 12, "{detailed}");
    assert_eq!(steps[0]["name"], "resolve_source_volumes");
    assert_eq!(steps[11]["name"], "record_echo_dbs");
    let mut previous_end = 0;
    for step in steps {
        assert_eq!(step["state"], "completed", "{step}");
        assert_eq!(step["attempts"], 1, "{step}");
        let (started, ended) = (
            step["started_ms"].as_i64().unwrap(),
            step["ended_ms"].as_i64().unwrap(),
        );
        assert!(previous_end <= started && started <= ended, "{step}");
        previous_end = ended;
        assert!(step["waited_ms"].as_f64().unwrap() >= 0.0, "{step}");
    }

    // A task that does not end: the answer comes after the wait, as it is now.
    let store = server.db.store().await;
    let stuck = task("stuck-task", TaskState::Running, CommandType::Deploy, "ref");
    store
        .insert_task(&NewTask {
            record: stuck,
            host_ids: vec![],
        })
        .await
        .unwrap();
    for family in ["/flex/api/v1/ocie", "/api/echo/v1", "/api/ocie/v1"] {
        let started = Instant::now();
        let now: Value = server
            .get(&format!("{family}/tasks/stuck-task?wait_secs=1"))
            .await
            .json()
            .await
            .unwrap();
        let waited = started.elapsed();
        assert_eq!(now["state"], "running", "{now}");
        assert!(now.get("progress").is_none(), "Deploy is not Flex's: {now}");
        let detailed: Value = server
            .get(&format!("{family}/tasks/stuck-task?steps=true"))
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(detailed["steps"], serde_json::json!([]), "{detailed}");
        assert!(
            (Duration::from_secs(1)..Duration::from_secs(3)).contains(&waited),
            "{family}: waited {waited:?}"
        );
    }
    for bad in ["61", "-1", "soon"] {
        let refused = server
            .get(&format!("/api/echo/v1/tasks/stuck-task?wait_secs={bad}"))
            .await;
        assert_eq!(refused.status(), StatusCode::BAD_REQUEST, "{bad}");
        assert_eq!(error_body(refused).await["code"], "INVALID_QUERY");
    }
}

crate::on_both_backends!(a_long_poll_answers_as_the_task_ends);

/// A task ended by another process on the same Postgres database wakes a long-poll here.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_ended_by_another_replica_wakes_the_long_poll() {
    let server = TestServer::start(Backend::Postgres).await;
    let other = flex::store::Store::connect(&server.db.url).await.unwrap();
    let record = task("elsewhere", TaskState::Running, CommandType::Deploy, "ref");
    other
        .insert_task(&NewTask {
            record,
            host_ids: vec![],
        })
        .await
        .unwrap();
    let url = server.url("/api/echo/v1/tasks/elsewhere?wait_secs=20");
    let waiting = tokio::spawn(async move {
        let client = reqwest::Client::new();
        let answer: Value = client
            .get(url)
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        (answer, Instant::now())
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let ended_at = Instant::now();
    assert!(
        other
            .finish_task("elsewhere", 0, TaskState::Completed, "", None)
            .await
            .unwrap()
    );
    let (answer, answered) = waiting.await.unwrap();
    assert_eq!(answer["state"], "completed", "{answer}");
    let after = answered.duration_since(ended_at);
    assert!(
        after < Duration::from_secs(1),
        "woken {after:?} after the end"
    );
    other.close().await;
}
