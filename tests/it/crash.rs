//! The crash matrix: `flex serve` as a real process, killed (abort, no cleanup) right after each
//! step of a clone, once before the step's checkpoint and once after; then restarted on the
//! same database. The task must finish, and the SDP ledger and the array must agree: no
//! orphaned and no duplicate object.

use std::{
    process::{Child, Command, Stdio},
    time::Duration,
};

use flex::{
    emulators::{
        agent::{AgentEmulator, AgentEmulatorConfig, DatabaseSpec, FileSpec},
        sdp::{ArrayState, SdpEmulator, SdpEmulatorConfig},
    },
    sdp::SdpConfig,
    store::Store,
};
use serde_json::{Value, json};

use crate::common::{ADMIN_TOKEN, Backend, TestDb};

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

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub struct Flex(pub Child);

impl Drop for Flex {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn_flex(port: u16, database_url: &str, sdp_url: &str, crash_at: Option<&str>) -> Flex {
    spawn_flex_with(port, database_url, sdp_url, crash_at, &[])
}

/// `flex serve` as its own process; `env` adds settings (instance id, lease, …).
pub fn spawn_flex_with(
    port: u16,
    database_url: &str,
    sdp_url: &str,
    crash_at: Option<&str>,
    env: &[(&str, &str)],
) -> Flex {
    let mut command = Command::new(env!("CARGO_BIN_EXE_flex"));
    command.envs(env.iter().copied());
    command
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .args(["--database-url", database_url])
        .env("FLEX_ADMIN_TOKEN", ADMIN_TOKEN)
        .env("FLEX_SDP_URL", sdp_url)
        .env("FLEX_SDP_USER", "admin")
        .env("FLEX_SDP_PASSWORD", "admin")
        .env("FLEX_AGENT_HEARTBEAT_SECS", "1")
        .env("FLEX_LOG", "error")
        .env_remove("FLEX_CRASH_AT")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if let Some(point) = crash_at {
        command.env("FLEX_CRASH_AT", point);
    }
    Flex(command.spawn().unwrap())
}

pub async fn wait_ready(http: &reqwest::Client, base: &str) {
    for _ in 0..400 {
        if http
            .get(format!("{base}/readyz"))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("flex at {base} never became ready");
}

fn source_databases() -> Vec<DatabaseSpec> {
    let file = |name: &str, kind: &str, volume: &str, vg: &str| FileSpec {
        name: name.into(),
        kind: kind.into(),
        volume: volume.into(),
        volume_group: vg.into(),
        size_mb: 256,
    };
    vec![DatabaseSpec {
        id: "5".into(),
        name: "sales".into(),
        files: vec![
            file("sales_data", "data", "src-sales-data", "src-vg-1"),
            file("sales_log", "log", "src-sales-log", "src-vg-1"),
        ],
    }]
}

/// Every object Flex made on the array is in its ledger as live, and the other way round.
pub async fn assert_ledger_matches(store: &Store, array: &ArrayState) {
    let live = store.ledger_live().await.unwrap();
    for entry in &live {
        let id = entry.sdp_id as u64;
        let exists = match entry.kind.as_str() {
            "vg_snapshot" => array.snapshots.contains_key(&id),
            "volume" => array.volumes.contains_key(&id),
            "mapping" => array.mappings.contains_key(&id),
            "host" => array.hosts.contains_key(&id),
            "host_iqn" => array.host_iqns.contains_key(&id),
            other => panic!("unknown ledger kind {other}"),
        };
        assert!(
            exists,
            "ledger lists {entry:?}, which the array does not have"
        );
    }
    let made = array.snapshots.len()
        + array.mappings.len()
        + array.hosts.len()
        + array.host_iqns.len()
        + array.volumes.values().filter(|v| v.is_thin_clone).count();
    assert_eq!(
        made,
        live.len(),
        "every object on the array is in the ledger once"
    );
}

/// One cell of the matrix: crash at `step:point`, restart, check. Returns the final state.
async fn crash_and_resume(backend: Backend, step: &str, point: &str) -> String {
    let db = TestDb::new(backend).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let sdp = SdpEmulator::start(SdpEmulatorConfig::default(), listener)
        .await
        .unwrap();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let crash_at = format!("{step}:{point}");
    let first = spawn_flex(port, &db.url, &sdp.url, Some(&crash_at));
    wait_ready(&http, &base).await;

    let mut agents = Vec::new();
    for (host_id, databases) in [("src-01", source_databases()), ("dev-01", vec![])] {
        let answer: Value = http
            .put(format!("{base}/api/v1/hosts/{host_id}"))
            .bearer_auth(ADMIN_TOKEN)
            .body(r#"{"db_vendor":"mssql"}"#)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let mut config =
            AgentEmulatorConfig::new(&base, host_id, answer["token"].as_str().unwrap());
        config.sdp = Some(SdpConfig::new(&sdp.url, "admin", "admin"));
        config.databases = databases;
        config.reconnect_delay = Duration::from_millis(100);
        agents.push(AgentEmulator::start(config).await.unwrap());
    }
    for _ in 0..200 {
        let dbs: Value = http
            .get(format!("{base}/api/v1/hosts/src-01/databases"))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap_or_default();
        if agents.iter().all(AgentEmulator::is_connected)
            && dbs.as_array().is_some_and(|d| d.len() == 1)
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }

    let task: Value = http
        .post(format!("{base}/api/echo/v1/echo_dbs"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({"source_host_id": "src-01", "destinations": [{"host_id": "dev-01", "db_id": "5", "db_name": "sales_copy"}]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let location = format!("{base}{}", task["location"].as_str().unwrap());

    // The process dies at the chosen point.
    let mut first = first;
    let mut crashed = false;
    for _ in 0..400 {
        if let Some(status) = first.0.try_wait().unwrap() {
            assert!(!status.success(), "{crash_at}: the process was aborted");
            crashed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(crashed, "{crash_at}: the crash point was never reached");
    drop(first);

    let _second = spawn_flex(port, &db.url, &sdp.url, None);
    wait_ready(&http, &base).await;
    let mut done = Value::Null;
    for _ in 0..800 {
        done = http
            .get(&location)
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap_or_default();
        if done["state"] != "running" && !done["state"].is_null() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let state = done["state"].as_str().unwrap_or("unknown").to_owned();
    assert_eq!(state, "completed", "{crash_at}: {done}");

    let array = sdp.snapshot_state();
    assert_eq!(
        array.snapshots.len(),
        1,
        "{crash_at}: one VG snapshot, not two"
    );
    assert_eq!(
        array.volumes.values().filter(|v| v.is_thin_clone).count(),
        2,
        "{crash_at}: no duplicate clone"
    );
    assert_eq!(array.mappings.len(), 2, "{crash_at}");
    assert_eq!(array.hosts.len(), 1, "{crash_at}");
    let store = Store::connect(&db.url).await.unwrap();
    assert_ledger_matches(&store, &array).await;
    let agent_dbs: Vec<String> = agents[1].databases().into_iter().map(|d| d.name).collect();
    assert_eq!(agent_dbs, ["sales_copy"], "{crash_at}: attached once");
    assert_eq!(
        agents[1].stats().commands_acted.get("attach"),
        Some(&1),
        "{crash_at}"
    );
    store.close().await;
    for agent in agents {
        agent.stop();
    }
    state
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clone_survives_a_crash_after_every_step() {
    crate::common::init_tracing();
    let mut matrix = Vec::new();
    for step in CLONE_STEPS {
        for point in ["before_checkpoint", "after_checkpoint"] {
            let outcome = crash_and_resume(Backend::Sqlite, step, point).await;
            matrix.push(format!(
                "CreateCloneCommand × {step:<24} × {point:<17} → {outcome}"
            ));
        }
    }
    println!("crash matrix (SQLite):\n{}", matrix.join("\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clone_survives_a_crash_on_postgres() {
    crate::common::init_tracing();
    for (step, point) in [
        ("clone_volumes", "before_checkpoint"),
        ("attach_databases", "before_checkpoint"),
    ] {
        crash_and_resume(Backend::Postgres, step, point).await;
    }
}
