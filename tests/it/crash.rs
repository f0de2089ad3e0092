//! The crash matrix: `flex serve` as a real process, killed (abort, no cleanup) at each step of
//! every workflow: before the step's checkpoint, after it, and after an abort was asked for
//! while the step ran; then restarted on the same database. The task must end as the abort
//! semantics say, the SDP ledger and the array must agree (no orphaned and no duplicate
//! object), and every echo DB Flex holds must be one the host reports.

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

const IMPORT_STEPS: [&str; 7] = [
    "plan_import",
    "ensure_sdp_hosts",
    "clone_volumes",
    "map_clones",
    "rescan_disks",
    "attach_databases",
    "record_echo_dbs",
];

const DELETE_SNAPSHOT_STEPS: [&str; 2] = ["check_snapshot_unused", "delete_volume_group_snapshots"];

/// `flex serve` as the matrix runs it: its own process, the rig's array, quick heartbeats.
fn spawn_flex(port: u16, database_url: &str, sdp_url: &str, crash_at: Option<&str>) -> Process {
    let serve = FlexServe::new(port, database_url)
        .sdp(sdp_url)
        .env("FLEX_AGENT_HEARTBEAT_SECS", "1")
        .env("FLEX_EXPIRY_CHECK_SECS", "1")
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
    Import,
    Delete,
    /// The delete Flex starts by itself when an echo DB expires.
    Expiry,
    Refresh,
    DeleteSnapshot,
}

impl Workflow {
    fn steps(self) -> &'static [&'static str] {
        match self {
            Workflow::Clone => &CLONE_STEPS,
            Workflow::Import => &IMPORT_STEPS,
            Workflow::Delete | Workflow::Expiry => &DELETE_STEPS,
            Workflow::Refresh => &REFRESH_STEPS,
            Workflow::DeleteSnapshot => &DELETE_SNAPSHOT_STEPS,
        }
    }

    /// Whether its set-up makes an echo DB (that it then works on).
    fn starts_with_an_echo_db(self) -> bool {
        matches!(
            self,
            Workflow::Delete | Workflow::Expiry | Workflow::Refresh | Workflow::DeleteSnapshot
        )
    }
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
    if workflow.starts_with_an_echo_db() {
        let task = call(
            &http,
            reqwest::Method::POST,
            &format!("{base}/api/echo/v1/echo_dbs"),
            clone_body.clone(),
        )
        .await;
        let done = wait_task(&http, &base, &task).await;
        assert_eq!(done["state"], "completed", "setup clone: {done}");
        done["result"]["cloned_dbs"][0]["id"]
            .as_str()
            .unwrap()
            .clone_into(&mut echo_id);
    }
    if !matches!(
        workflow,
        Workflow::Clone | Workflow::Delete | Workflow::Expiry
    ) {
        let task = call(&http, reqwest::Method::POST, &format!("{base}/api/echo/v1/db_snapshots"), json!({"source_host_id": "src-01", "database_ids": ["5"], "consistency_level": "crash"})).await;
        let done = wait_task(&http, &base, &task).await;
        assert_eq!(done["state"], "completed", "setup snapshot: {done}");
        done["result"]["db_snapshot"]["id"]
            .as_str()
            .unwrap()
            .clone_into(&mut newer_snapshot);
    }
    drop(setup);
    let mut armed = spawn_flex(port, &db.url, &sdp.url, Some(&format!("{step}:{point}")));
    wait_ready(&http, &base).await;
    wait_agents(&agents).await;

    let started = if workflow == Workflow::Expiry {
        expire_now(&http, &base, &db, &echo_id).await
    } else {
        None
    };
    let (method, path, body) = match workflow {
        Workflow::Clone => (reqwest::Method::POST, "echo_dbs".to_owned(), clone_body),
        Workflow::Import => (
            reqwest::Method::POST,
            format!("db_snapshots/{newer_snapshot}/echo_db"),
            json!({"destinations": [{"host_id": "dev-01", "db_id": "5", "db_name": "sales_copy"}]}),
        ),
        Workflow::Delete | Workflow::Expiry => (
            reqwest::Method::DELETE,
            "echo_dbs".to_owned(),
            json!({"host_id": "dev-01", "database_id": echo_id}),
        ),
        Workflow::Refresh => (
            reqwest::Method::POST,
            "hosts/dev-01/databases/_refresh".to_owned(),
            json!({"snapshot_id": newer_snapshot, "db_names": ["sales_copy"]}),
        ),
        Workflow::DeleteSnapshot => (
            reqwest::Method::DELETE,
            format!("db_snapshots/{newer_snapshot}"),
            Value::Null,
        ),
    };
    let task = match started {
        Some(task) => task,
        None => call(&http, method, &format!("{base}/api/echo/v1/{path}"), body).await,
    };
    assert!(task["location"].is_string(), "{crash_at}: {task}");

    let crashes = point != "abort_requested";
    let _resumed = if crashes {
        // The process dies at the chosen point; a plain one takes over.
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
        let resumed = spawn_flex(port, &db.url, &sdp.url, None);
        wait_ready(&http, &base).await;
        resumed
    } else {
        armed
    };
    let done = wait_task(&http, &base, &task).await;
    let state = done["state"].as_str().unwrap_or("unknown").to_owned();
    let expected = expected_end(workflow, step, point);
    assert_eq!(state, expected.as_str(), "{crash_at}: {done}");

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
    let aborted = expected == End::Aborted;
    let listed = call(
        &http,
        reqwest::Method::GET,
        &format!("{base}/api/echo/v1/db_snapshots"),
        Value::Null,
    )
    .await;
    let db_snapshots = listed.as_array().map_or(usize::MAX, Vec::len);
    // What the task started from is there, untouched: an abort honoured before anything
    // was taken away.
    let kept_before_removal = aborted && workflow.starts_with_an_echo_db() && !removal_begun(step);
    match workflow {
        Workflow::Clone | Workflow::Import if aborted => {
            // An import keeps the snapshot it was given; a clone undoes the one it took.
            let kept = usize::from(workflow == Workflow::Import);
            assert_eq!(array.snapshots.len(), kept, "{crash_at}: the VG snapshot");
            assert_eq!(db_snapshots, kept, "{crash_at}: the db snapshot: {listed}");
            assert_eq!(clones, 0, "{crash_at}: the clones are undone");
            assert_eq!(array.mappings.len(), 0, "{crash_at}");
            assert_eq!(array.hosts.len(), 0, "{crash_at}");
            assert!(dest_dbs.is_empty(), "{crash_at}");
            assert_eq!(
                acted("attach"),
                acted("detach"),
                "{crash_at}: attached, then detached"
            );
        }
        Workflow::Clone | Workflow::Import => {
            assert_eq!(
                array.snapshots.len(),
                1,
                "{crash_at}: one VG snapshot, not two"
            );
            assert_eq!(db_snapshots, 1, "{crash_at}: {listed}");
            assert_eq!(clones, 2, "{crash_at}: no duplicate clone");
            assert_eq!(array.mappings.len(), 2, "{crash_at}");
            assert_eq!(array.hosts.len(), 1, "{crash_at}");
            assert_eq!(dest_dbs, ["sales_copy"], "{crash_at}");
            assert_eq!(acted("attach"), 1, "{crash_at}: attached once");
        }
        Workflow::DeleteSnapshot => {
            let kept = if aborted { 2 } else { 1 };
            assert_eq!(array.snapshots.len(), kept, "{crash_at}: VG snapshots");
            assert_eq!(db_snapshots, kept, "{crash_at}: {listed}");
            assert_eq!(clones, 2, "{crash_at}: the echo DB's clones are kept");
            assert_eq!(dest_dbs, ["sales_copy"], "{crash_at}: still attached");
        }
        _ if kept_before_removal => {
            assert_eq!(clones, 2, "{crash_at}: the echo DB's clones are kept");
            assert_eq!(array.mappings.len(), 2, "{crash_at}");
            assert_eq!(dest_dbs, ["sales_copy"], "{crash_at}: still attached");
            assert_eq!(acted("detach"), 0, "{crash_at}: never detached");
        }
        Workflow::Delete | Workflow::Expiry => {
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
        Workflow::Refresh if aborted => {
            // Aborted once the old copy was gone: neither the old nor a new one is left.
            assert_eq!(clones, 0, "{crash_at}: old and new clones are gone");
            assert_eq!(array.mappings.len(), 0, "{crash_at}");
            assert!(dest_dbs.is_empty(), "{crash_at}");
            assert_eq!(
                acted("attach"),
                acted("detach"),
                "{crash_at}: every copy attached is detached again"
            );
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
    // Nothing is out of sight: every echo DB Flex holds is one the host reports.
    let held: Vec<String> = store
        .list_echo_dbs()
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.name)
        .collect();
    assert_eq!(held, dest_dbs, "{crash_at}: Flex's echo DBs are the host's");
    if workflow == Workflow::Expiry {
        let expiries = call(
            &http,
            reqwest::Method::GET,
            &format!("{base}/api/echo/v1/tasks?ref_id=expiry"),
            Value::Null,
        )
        .await;
        let count = expiries.as_array().map_or(0, Vec::len);
        assert_eq!(
            count, 1,
            "{crash_at}: expired once, resumed, not again: {expiries}"
        );
    }
    store.close().await;
    for agent in agents {
        agent.stop();
    }
    state
}

/// Makes the echo DB expire now, and returns the delete task Flex starts for it (read from
/// the database: the process may be dead at its crash point by the time it is looked for).
async fn expire_now(
    http: &reqwest::Client,
    base: &str,
    db: &TestDb,
    echo_id: &str,
) -> Option<Value> {
    let patched = call(
        http,
        reqwest::Method::PATCH,
        &format!("{base}/api/echo/v1/hosts/dev-01/databases/{echo_id}"),
        json!({"expires_ts": 0}),
    )
    .await;
    assert_eq!(patched["expires_ts"], 0, "{patched}");
    let store = Store::connect(&db.url).await.unwrap();
    let filter = flex::store::TaskFilter {
        ref_id: Some("expiry".into()),
        ..Default::default()
    };
    for _ in 0..400 {
        if let Some(task) = store.list_tasks(&filter).await.unwrap().first() {
            store.close().await;
            return Some(json!({"location": task.location, "request_id": task.request_id}));
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the expired echo DB was never deleted");
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum End {
    Completed,
    Aborted,
}

impl End {
    fn as_str(self) -> &'static str {
        match self {
            End::Completed => "completed",
            End::Aborted => "aborted",
        }
    }
}

/// Whether the taking away (of an echo DB: its detach and what follows; of a snapshot: its VG
/// snapshots) has begun once `step` ran.
fn removal_begun(step: &str) -> bool {
    !matches!(
        step,
        "load_echo_db" | "plan_refresh" | "check_snapshot_unused"
    )
}

/// How a task ends when the matrix does `point` at `step`: a crash is ridden out; an abort
/// undoes a clone, stops a delete or refresh that has not begun to take its echo DB away, and
/// otherwise waits until the taking away is done: a delete then completes, a refresh ends
/// aborted without its new copy.
fn expected_end(workflow: Workflow, step: &str, point: &str) -> End {
    let last_step = workflow.steps().last();
    // An abort asked for while the last step runs, and honoured after its checkpoint, comes
    // too late: the task is done. One that beats the checkpoint (the crash) undoes the step.
    if !point.starts_with("abort") || (point == "abort_requested" && last_step == Some(&step)) {
        return End::Completed;
    }
    match workflow {
        Workflow::Clone | Workflow::Import | Workflow::Refresh => End::Aborted,
        Workflow::Delete | Workflow::Expiry | Workflow::DeleteSnapshot if !removal_begun(step) => {
            End::Aborted
        }
        Workflow::Delete | Workflow::Expiry | Workflow::DeleteSnapshot => End::Completed,
    }
}

/// Every step of `workflow` × every point, on SQLite; prints the matrix.
async fn every_step_survives_a_crash(workflow: Workflow, command: &str) {
    crate::support::init_tracing();
    let mut matrix = Vec::new();
    for step in workflow.steps() {
        for point in ["before_checkpoint", "after_checkpoint", "abort_then_crash"] {
            let outcome = crash_and_resume(Backend::Sqlite, workflow, step, point).await;
            matrix.push(format!(
                "{command:<18} × {step:<29} × {point:<17} → {outcome}"
            ));
        }
    }
    println!("crash matrix (SQLite):\n{}", matrix.join("\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clone_survives_a_crash_at_every_step() {
    every_step_survives_a_crash(Workflow::Clone, "CreateCloneCommand").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_import_survives_a_crash_at_every_step() {
    every_step_survives_a_crash(Workflow::Import, "ImportDBSnapshotCommand").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delete_survives_a_crash_at_every_step() {
    every_step_survives_a_crash(Workflow::Delete, "DeleteCommand").await;
}

/// The expiry delete is the delete workflow, started by Flex rather than by a client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expiry_delete_survives_a_crash_at_every_step() {
    every_step_survives_a_crash(Workflow::Expiry, "DeleteCommand").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refresh_survives_a_crash_at_every_step() {
    every_step_survives_a_crash(Workflow::Refresh, "ReplaceDBCommand").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_delete_survives_a_crash_at_every_step() {
    every_step_survives_a_crash(Workflow::DeleteSnapshot, "DeleteDBSnapshotCommand").await;
}

/// An abort arriving while each step of a refresh runs: the refresh either stops before it
/// takes anything away (the echo DB as it was) or, once it has begun, goes through the removal
/// and then stops (no echo DB, nothing left on the array). Never an echo DB out of sight.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refresh_aborted_at_every_step_leaves_what_an_api_call_can_see() {
    crate::support::init_tracing();
    let mut matrix = Vec::new();
    for step in REFRESH_STEPS {
        let outcome =
            crash_and_resume(Backend::Sqlite, Workflow::Refresh, step, "abort_requested").await;
        matrix.push(format!("ReplaceDBCommand × {step:<24} × abort → {outcome}"));
    }
    println!("abort matrix (SQLite):\n{}", matrix.join("\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workflows_survive_a_crash_on_postgres() {
    crate::support::init_tracing();
    for (workflow, step, point) in [
        (Workflow::Clone, "clone_volumes", "before_checkpoint"),
        (Workflow::Clone, "attach_databases", "before_checkpoint"),
        (Workflow::Refresh, "delete_old_clones", "before_checkpoint"),
        (
            Workflow::Clone,
            "snapshot_volume_groups",
            "abort_then_crash",
        ),
        (Workflow::Delete, "unmap_clones", "abort_then_crash"),
        (Workflow::Refresh, "unmap_old_clones", "abort_then_crash"),
        (Workflow::Clone, "attach_databases", "abort_then_crash"),
        (Workflow::Import, "clone_volumes", "abort_then_crash"),
        (
            Workflow::DeleteSnapshot,
            "delete_volume_group_snapshots",
            "before_checkpoint",
        ),
        (Workflow::Refresh, "plan_refresh", "abort_requested"),
        (Workflow::Refresh, "detach_old_databases", "abort_requested"),
    ] {
        crash_and_resume(Backend::Postgres, workflow, step, point).await;
    }
}
