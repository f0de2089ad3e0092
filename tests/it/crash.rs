//! The crash matrix: `flex serve` as a real process, killed (abort, no cleanup) right after each
//! step of a clone, once before the step's checkpoint and once after; then restarted on the
//! same database. The task must finish, and the SDP ledger and the array must agree: no
//! orphaned and no duplicate object.

use std::time::Duration;

use flex::{
    emulators::{
        agent::{AgentEmulator, AgentEmulatorConfig},
        sdp::{SdpEmulator, SdpEmulatorConfig},
    },
    sdp::SdpConfig,
    store::Store,
};
use serde_json::{Value, json};

use crate::support::{
    ADMIN_TOKEN, Backend, TestDb,
    builders::sales,
    processes::{FlexServe, Process, free_port, http_client, wait_ready},
    rig::assert_ledger_matches,
};

const CLONE_STEPS: [&str; 12] = [
    "resolve_source_volumes",
    "freeze_databases",
    "snapshot_volume_groups",
    "thaw_databases",
    "record_db_snapshot",
    "plan_clone",
    "ensure_sdp_hosts",
    "clone_volumes",
    "map_clones",
    "rescan_disks",
    "attach_databases",
    "record_echo_dbs",
];

/// `flex serve` as the matrix runs it: its own process, the rig's array, quick heartbeats.
fn spawn_flex(port: u16, database_url: &str, sdp_url: &str, crash_at: Option<&str>) -> Process {
    let serve = FlexServe::new(port, database_url)
        .sdp(sdp_url)
        .env("FLEX_AGENT_HEARTBEAT_SECS", "1")
        .silent();
    match crash_at {
        Some(point) => serve.crash_at(point),
        None => serve,
    }
    .spawn()
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Workflow {
    Clone,
    Delete,
    Refresh,
}

const DELETE_STEPS: [&str; 6] = [
    "load_echo_db",
    "detach_database",
    "unmap_clones",
    "delete_clones",
    "release_sdp_hosts",
    "forget_echo_db",
];

const REFRESH_STEPS: [&str; 11] = [
    "plan_refresh",
    "detach_old_databases",
    "unmap_old_clones",
    "delete_old_clones",
    "forget_old_echo_dbs",
    "ensure_sdp_hosts",
    "clone_volumes",
    "map_clones",
    "rescan_disks",
    "attach_databases",
    "record_echo_dbs",
];

async fn call(http: &reqwest::Client, method: reqwest::Method, url: &str, body: Value) -> Value {
    http.request(method, url)
        .bearer_auth(ADMIN_TOKEN)
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap_or_default()
}

async fn wait_task(http: &reqwest::Client, base: &str, task: &Value) -> Value {
    let location = format!("{base}{}", task["location"].as_str().unwrap());
    let mut done = Value::Null;
    for _ in 0..800 {
        done = call(http, reqwest::Method::GET, &location, Value::Null).await;
        if done["state"] != "running" && !done["state"].is_null() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    done
}

async fn wait_agents(agents: &[AgentEmulator]) {
    for _ in 0..400 {
        if agents.iter().all(AgentEmulator::is_connected) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the agents did not reconnect");
}

/// One cell of the matrix: set up (for delete and refresh, a clone to act on) with a healthy
/// process; restart it with the crash point armed; run the workflow until the process aborts;
/// restart it plainly; check. Returns the final state.
async fn crash_and_resume(backend: Backend, workflow: Workflow, step: &str, point: &str) -> String {
    let db = TestDb::new(backend).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let sdp = SdpEmulator::start(SdpEmulatorConfig::default(), listener)
        .await
        .unwrap();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let http = http_client();
    let crash_at = format!("{workflow:?} {step}:{point}");
    let setup = spawn_flex(port, &db.url, &sdp.url, None);
    wait_ready(&http, &base).await;

    let mut agents = Vec::new();
    for (host_id, databases) in [("src-01", vec![sales(256)]), ("dev-01", vec![])] {
        let answer = call(
            &http,
            reqwest::Method::PUT,
            &format!("{base}/api/v1/hosts/{host_id}"),
            json!({"db_vendor": "mssql"}),
        )
        .await;
        let mut config =
            AgentEmulatorConfig::new(&base, host_id, answer["token"].as_str().unwrap());
        config.sdp = Some(SdpConfig::new(&sdp.url, "admin", "admin"));
        config.databases = databases;
        config.reconnect_delay = Duration::from_millis(100);
        agents.push(AgentEmulator::start(config).await.unwrap());
    }
    for _ in 0..200 {
        let dbs = call(
            &http,
            reqwest::Method::GET,
            &format!("{base}/api/v1/hosts/src-01/databases"),
            Value::Null,
        )
        .await;
        if agents.iter().all(AgentEmulator::is_connected)
            && dbs.as_array().is_some_and(|d| d.len() == 1)
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let clone_body = json!({"source_host_id": "src-01", "destinations": [{"host_id": "dev-01", "db_id": "5", "db_name": "sales_copy"}]});
    let mut echo_id = String::new();
    let mut newer_snapshot = String::new();
    if workflow != Workflow::Clone {
        let task = call(
            &http,
            reqwest::Method::POST,
            &format!("{base}/api/echo/v1/echo_dbs"),
            clone_body.clone(),
        )
        .await;
        let done = wait_task(&http, &base, &task).await;
        assert_eq!(done["state"], "completed", "setup clone: {done}");
        echo_id = done["result"]["cloned_dbs"][0]["id"]
            .as_str()
            .unwrap()
            .to_owned();
        if workflow == Workflow::Refresh {
            let task = call(&http, reqwest::Method::POST, &format!("{base}/api/echo/v1/db_snapshots"), json!({"source_host_id": "src-01", "database_ids": ["5"], "consistency_level": "crash"})).await;
            let done = wait_task(&http, &base, &task).await;
            done["result"]["db_snapshot"]["id"]
                .as_str()
                .unwrap()
                .clone_into(&mut newer_snapshot);
        }
    }
    drop(setup);
    let mut armed = spawn_flex(port, &db.url, &sdp.url, Some(&format!("{step}:{point}")));
    wait_ready(&http, &base).await;
    wait_agents(&agents).await;

    let (method, path, body) = match workflow {
        Workflow::Clone => (reqwest::Method::POST, "echo_dbs", clone_body),
        Workflow::Delete => (
            reqwest::Method::DELETE,
            "echo_dbs",
            json!({"host_id": "dev-01", "database_id": echo_id}),
        ),
        Workflow::Refresh => (
            reqwest::Method::POST,
            "hosts/dev-01/databases/_refresh",
            json!({"snapshot_id": newer_snapshot, "db_names": ["sales_copy"]}),
        ),
    };
    let task = call(&http, method, &format!("{base}/api/echo/v1/{path}"), body).await;
    assert!(task["location"].is_string(), "{crash_at}: {task}");

    // The process dies at the chosen point.
    let mut crashed = false;
    for _ in 0..400 {
        if let Some(status) = armed.exited() {
            assert!(!status.success(), "{crash_at}: the process was aborted");
            crashed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(crashed, "{crash_at}: the crash point was never reached");
    drop(armed);

    let _resumed = spawn_flex(port, &db.url, &sdp.url, None);
    wait_ready(&http, &base).await;
    let done = wait_task(&http, &base, &task).await;
    let state = done["state"].as_str().unwrap_or("unknown").to_owned();
    assert_eq!(state, "completed", "{crash_at}: {done}");

    let array = sdp.snapshot_state();
    let clones = array.volumes.values().filter(|v| v.is_thin_clone).count();
    let dest_dbs: Vec<String> = agents[1].databases().into_iter().map(|d| d.name).collect();
    let acted = |name: &str| {
        agents[1]
            .stats()
            .commands_acted
            .get(name)
            .copied()
            .unwrap_or(0)
    };
    match workflow {
        Workflow::Clone => {
            assert_eq!(
                array.snapshots.len(),
                1,
                "{crash_at}: one VG snapshot, not two"
            );
            assert_eq!(clones, 2, "{crash_at}: no duplicate clone");
            assert_eq!(array.mappings.len(), 2, "{crash_at}");
            assert_eq!(array.hosts.len(), 1, "{crash_at}");
            assert_eq!(dest_dbs, ["sales_copy"], "{crash_at}");
            assert_eq!(acted("attach"), 1, "{crash_at}: attached once");
        }
        Workflow::Delete => {
            assert_eq!(clones, 0, "{crash_at}: the clones are gone");
            assert_eq!(array.mappings.len(), 0, "{crash_at}");
            assert_eq!(
                array.hosts.len(),
                0,
                "{crash_at}: the host object Flex made is gone"
            );
            assert!(dest_dbs.is_empty(), "{crash_at}");
            assert_eq!(acted("detach"), 1, "{crash_at}: detached once");
        }
        Workflow::Refresh => {
            assert_eq!(array.snapshots.len(), 2, "{crash_at}");
            assert_eq!(clones, 2, "{crash_at}: only the new clones");
            assert_eq!(array.mappings.len(), 2, "{crash_at}");
            assert_eq!(array.hosts.len(), 1, "{crash_at}");
            assert_eq!(dest_dbs, ["sales_copy"], "{crash_at}");
            assert_eq!(
                acted("attach"),
                2,
                "{crash_at}: setup and refresh, once each"
            );
            assert_eq!(acted("detach"), 1, "{crash_at}");
        }
    }
    let store = Store::connect(&db.url).await.unwrap();
    assert_ledger_matches(&store, &array).await;
    store.close().await;
    for agent in agents {
        agent.stop();
    }
    state
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_workflow_survives_a_crash_after_every_step() {
    crate::support::init_tracing();
    let mut matrix = Vec::new();
    for (workflow, command, steps) in [
        (Workflow::Clone, "CreateCloneCommand", &CLONE_STEPS[..]),
        (Workflow::Delete, "DeleteCommand", &DELETE_STEPS[..]),
        (Workflow::Refresh, "ReplaceDBCommand", &REFRESH_STEPS[..]),
    ] {
        for step in steps {
            for point in ["before_checkpoint", "after_checkpoint"] {
                let outcome = crash_and_resume(Backend::Sqlite, workflow, step, point).await;
                matrix.push(format!(
                    "{command:<18} × {step:<24} × {point:<17} → {outcome}"
                ));
            }
        }
    }
    println!("crash matrix (SQLite):\n{}", matrix.join("\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workflows_survive_a_crash_on_postgres() {
    crate::support::init_tracing();
    for (workflow, step, point) in [
        (Workflow::Clone, "clone_volumes", "before_checkpoint"),
        (Workflow::Clone, "attach_databases", "before_checkpoint"),
        (Workflow::Refresh, "delete_old_clones", "before_checkpoint"),
    ] {
        crash_and_resume(Backend::Postgres, workflow, step, point).await;
    }
}
