//! Task throughput and orchestration overhead.
//!
//! `flex serve` runs as its own process pinned to CPU 0 (SQLite with `synchronous=FULL`, then
//! Postgres); the SDP emulator (zero latency), the emulated hosts and the load generator share
//! CPU 1. Reported: snapshot task creations per second, completed snapshot workflows per
//! second, and for application-consistent clones the time each step takes end to end (an upper
//! bound of Flex's own overhead, since the emulators answer in well under a millisecond) and
//! the freeze window overhead (time frozen minus the SDP snapshot calls).
//!
//! Run: `cargo bench --bench tasks` (options: `--tasks N`, `--clones N`).

#[path = "common/mod.rs"]
mod common;

use std::{
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use common::{ADMIN_TOKEN, arg, free_port, percentile, register_host, spawn_flex, wait_ready};

use flex::{
    emulators::{
        agent::{AgentEmulator, AgentEmulatorConfig},
        sdp::{SdpEmulator, SdpEmulatorConfig},
    },
    model::TaskState,
    sdp::SdpConfig,
    store::Store,
};
use futures_util::{StreamExt, stream};
use serde_json::{Value, json};

async fn bench_backend(label: &str, database_url: &str, tasks: usize, clones: usize) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let sdp = SdpEmulator::start(SdpEmulatorConfig::default(), listener)
        .await
        .unwrap();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let _server = spawn_flex(
        port,
        database_url,
        Some("0"),
        &[
            ("FLEX_SDP_URL", &sdp.url),
            ("FLEX_SDP_USER", "admin"),
            ("FLEX_SDP_PASSWORD", "admin"),
            ("FLEX_WORKERS", "8"),
        ],
    );
    let http = reqwest::Client::new();
    wait_ready(&http, &base).await;
    let mut agents = Vec::new();
    for (host_id, databases) in [
        ("src-01", vec![common::builders::sales(1024)]),
        ("dev-01", vec![]),
    ] {
        let token = register_host(&http, &base, host_id).await;
        let mut config = AgentEmulatorConfig::new(&base, host_id, &token);
        config.sdp = Some(SdpConfig::new(&sdp.url, "admin", "admin"));
        config.databases = databases;
        agents.push(AgentEmulator::start(config).await.unwrap());
    }
    while !agents.iter().all(AgentEmulator::is_connected) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;

    // Task creation: crash-consistent snapshot requests, 32 in flight.
    let started = Instant::now();
    let created: Vec<Value> = stream::iter(0..tasks)
        .map(|_| {
            let (http, base) = (http.clone(), base.clone());
            async move {
                let response = http
                    .post(format!("{base}/api/echo/v1/db_snapshots"))
                    .bearer_auth(ADMIN_TOKEN)
                    .json(&json!({"source_host_id": "src-01", "database_ids": ["5"], "consistency_level": "crash"}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(response.status(), 200);
                response.json::<Value>().await.unwrap()
            }
        })
        .buffer_unordered(32)
        .collect()
        .await;
    let creation = started.elapsed();
    let store = Store::connect(database_url).await.unwrap();
    loop {
        if store.running_tasks().await.unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let completion = started.elapsed();
    let completed = store
        .list_tasks(&flex::store::TaskFilter {
            state: Some(TaskState::Completed),
            ..Default::default()
        })
        .await
        .unwrap()
        .len();
    println!(
        "{label}: {} snapshot tasks created in {:.2?} → {:.0} creations/s; all ended in {:.2?} → {:.0} completed workflows/s ({completed} completed)",
        created.len(),
        creation,
        created.len() as f64 / creation.as_secs_f64(),
        completion,
        completed as f64 / completion.as_secs_f64()
    );

    // Application-consistent clones, one at a time: per-step time and freeze overhead.
    let mut step_ms: std::collections::BTreeMap<String, Vec<(f64, f64, f64)>> =
        std::collections::BTreeMap::default();
    let mut freeze_overhead = Vec::new();
    for n in 0..clones {
        let task: Value = http
            .post(format!("{base}/api/echo/v1/echo_dbs"))
            .bearer_auth(ADMIN_TOKEN)
            .json(&json!({"source_host_id": "src-01", "destinations": [{"host_id": "dev-01", "db_id": "5", "db_name": format!("copy{n}")}]}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let id = task["request_id"].as_str().unwrap().to_owned();
        loop {
            let now = store.get_task(&id).await.unwrap().unwrap();
            if now.state != TaskState::Running {
                assert_eq!(now.state, TaskState::Completed, "{now:?}");
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let mut sdp_ms = 0.0;
        let mut frozen_ms = 0.0;
        for step in store.task_steps(&id).await.unwrap() {
            let detail = &step.detail;
            if let Some(ms) = detail.sdp_ms {
                sdp_ms = ms as f64;
            }
            if let Some(ms) = detail.frozen_ms {
                frozen_ms = ms as f64;
            }
            let waited = detail.waited_ms.unwrap_or(0.0);
            let overhead = detail.overhead_ms.unwrap_or(0.0);
            step_ms
                .entry(step.name)
                .or_default()
                .push((waited + overhead, waited, overhead));
        }
        freeze_overhead.push(frozen_ms - sdp_ms);
    }
    println!(
        "{label}: per step over {clones} application-consistent clones (ms, end to end with zero-latency emulators):"
    );
    println!("| step | took p50 | took p99 | waited p50 | overhead p50 | overhead p99 |");
    println!("|---|---|---|---|---|---|");
    for (name, values) in step_ms {
        let column = |pick: fn(&(f64, f64, f64)) -> f64| {
            let mut column: Vec<f64> = values.iter().map(pick).collect();
            column.sort_by(f64::total_cmp);
            column
        };
        let (took, waited, overhead) = (column(|v| v.0), column(|v| v.1), column(|v| v.2));
        println!(
            "| {name} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} |",
            percentile(&took, 0.5),
            percentile(&took, 0.99),
            percentile(&waited, 0.5),
            percentile(&overhead, 0.5),
            percentile(&overhead, 0.99)
        );
    }
    freeze_overhead.sort_by(f64::total_cmp);
    println!(
        "{label}: freeze window overhead (frozen minus SDP snapshot calls): p50 {:.1} ms, p99 {:.1} ms",
        percentile(&freeze_overhead, 0.5),
        percentile(&freeze_overhead, 0.99)
    );
    store.close().await;
    for agent in agents {
        agent.stop();
    }
}

fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let tasks = arg("--tasks", 2000usize);
    let clones = arg("--clones", 50usize);
    let _ = Command::new("taskset")
        .args(["-a", "-p", "-c", "1", &std::process::id().to_string()])
        .stdout(Stdio::null())
        .status();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let dir = std::env::temp_dir().join(format!("flex-bench-tasks-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        bench_backend(
            "SQLite",
            &format!("sqlite://{}", dir.join("flex.db").display()),
            tasks,
            clones,
        )
        .await;
        let _ = std::fs::remove_dir_all(&dir);

        let admin = std::env::var("FLEX_TEST_POSTGRES_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
        let name = format!("flex_bench_{}", std::process::id());
        let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&admin)
            .await
            .unwrap();
        sqlx::Executor::execute(
            &mut conn,
            sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")),
        )
        .await
        .unwrap();
        let url = format!("{}/{name}", admin.rsplit_once('/').unwrap().0);
        bench_backend("Postgres", &url, tasks, clones).await;
        let _ = sqlx::Executor::execute(
            &mut conn,
            sqlx::AssertSqlSafe(format!("DROP DATABASE {name} WITH (FORCE)")),
        )
        .await;
    });
}
