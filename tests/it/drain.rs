//! Stopping gracefully (SIGTERM): a step in flight reaches its checkpoint, the task's lease is
//! released at once so a restart or another replica resumes it without waiting for the lease
//! to expire, and the resumed task finishes with nothing done twice.

use std::time::Duration;

use flex::model::{CommandType, StepDirection, TaskState};

use crate::support::{Backend, Echo, Options};

async fn a_stop_drains_running_steps_and_frees_their_leases(backend: Backend) {
    let options = Options {
        // Long enough to stop the server while the destination is still answering.
        dest_reply_delay: Duration::from_millis(1500),
        lease: Duration::from_secs(30),
        ..Options::default()
    };
    let mut echo = Echo::start(backend, options).await;
    let task = echo.start_clone_until_thin_clones_exist().await;
    let request_id = task["request_id"].as_str().unwrap().to_owned();
    // The rescan has reached the destination, which answers in 1.5 s.
    for _ in 0..400 {
        if echo.agents[1].stats().commands_received > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        echo.agents[1].stats().commands_received > 0,
        "no command reached dev-01"
    );
    echo.stop_server().await.unwrap();

    let store = echo.server.db.store().await;
    let stopped = store.get_task(&request_id).await.unwrap().unwrap();
    assert_eq!(
        stopped.state,
        TaskState::Running,
        "a stop leaves tasks to resume"
    );
    let steps = store.task_steps(&request_id).await.unwrap();
    let names: Vec<&str> = steps.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names.last(),
        Some(&"rescan_disks"),
        "the step in flight reached its checkpoint: {names:?}"
    );
    assert!(steps.iter().all(|s| s.direction == StepDirection::Do));
    // Its lease is free now: anyone may take the task at once.
    let now = flex::clock::now_ms();
    let claim = store
        .claim_task("another-replica", 1, now, &[CommandType::CreateClone])
        .await
        .unwrap();
    assert_eq!(claim.map(|t| t.request_id), Some(request_id.clone()));
    // Give it back (that claim's lease of 1 ms has already expired), and restart.
    tokio::time::sleep(Duration::from_millis(5)).await;
    echo.start_again(&Options::default()).await;
    let done = echo.wait(&task).await;
    assert_eq!(done["state"], "completed", "{done}");
    let attached = echo.agents[1].stats().commands_acted.get("attach").copied();
    assert_eq!(attached, Some(1), "attached once");
    assert_eq!(echo.dest_databases("dev-01").await, ["sales_copy"]);
    echo.assert_ledger_matches_array().await;
}

crate::on_both_backends!(a_stop_drains_running_steps_and_frees_their_leases);
