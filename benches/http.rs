//! Read throughput, p50 and p99 of Flex's API against a minimal axum handler serving the same
//! bytes from memory, measured in the same run on the same machine: the server (Flex or the
//! baseline) pinned to CPU 0, the load generator to CPU 1.
//!
//! Run: `cargo bench --bench http` (options: `--seconds N`, `--connections N`, `--only <name part>`).

#[path = "common/mod.rs"]
mod common;

use std::{
    process::{Command, Stdio},
    sync::Arc,
    time::{Duration, Instant},
};

use common::{ADMIN_TOKEN, Process, arg, free_port, spawn_flex, wait_ready};

use flex::{
    model::{CommandType, TaskState},
    store::{NewTask, Store, TaskRecord},
};
use serde_json::json;

const HOSTS: usize = 1000;
const DATABASES_PER_HOST: usize = 10;
const SNAPSHOTS_PER_HOST: usize = 10;
const TASKS: usize = 1000;

/// The baseline: this same binary, re-run as a minimal axum server that answers every GET
/// with the bytes of the file it was given.
fn baseline_server(port: u16, body_file: &str) {
    let body = bytes::Bytes::from(std::fs::read(body_file).unwrap());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let app = axum::Router::new().fallback(move || {
            let body = body.clone();
            async move {
                (
                    [(axum::http::header::CONTENT_TYPE, "application/json")],
                    body,
                )
            }
        });
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .unwrap();
        axum::serve(listener, app).await.unwrap();
    });
}

async fn seed(url: &str) -> String {
    let store = Store::connect(url).await.unwrap();
    store.migrate().await.unwrap();
    let now = flex::clock::now_ts();
    common::builders::seed_estate(&store, HOSTS, DATABASES_PER_HOST, SNAPSHOTS_PER_HOST).await;
    let mut first_task = String::new();
    for t in 0..TASKS {
        let request_id = format!("task{t:05}abcdefghijklmnopqrstu");
        if t == 0 {
            first_task = request_id.clone();
        }
        store
            .insert_task(&NewTask {
                record: TaskRecord {
                    request_id: request_id.clone(),
                    state: TaskState::Completed,
                    create_ts: now,
                    update_ts: now,
                    owner: "ocie-0".into(),
                    command_type: CommandType::Deploy,
                    ref_id: "bench".into(),
                    error: String::new(),
                    result: Some(json!({"db_snapshot": {"id": "snap_0000_0"}}).to_string()),
                    location: format!("/api/echo/v1/tasks/{request_id}"),
                    request: "{}".into(),
                    position: flex::store::StepPosition::default(),
                },
                host_ids: vec![],
            })
            .await
            .unwrap();
    }
    store.close().await;
    first_task
}

struct Figures {
    requests_per_sec: f64,
    p50_ms: f64,
    p99_ms: f64,
}

/// `connections` clients hammer `url` for `seconds`; every answer must be 200.
async fn load(url: &str, connections: u64, seconds: u64, token: bool) -> Figures {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(usize::try_from(connections).unwrap_or(usize::MAX))
        .build()
        .unwrap();
    let url = Arc::new(url.to_owned());
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut workers = Vec::new();
    for _ in 0..connections {
        let (client, url) = (client.clone(), url.clone());
        workers.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            while Instant::now() < deadline {
                let started = Instant::now();
                let mut request = client.get(url.as_str());
                if token {
                    request = request.bearer_auth(ADMIN_TOKEN);
                }
                let response = request.send().await.unwrap();
                assert_eq!(response.status(), 200, "{url}");
                let _ = response.bytes().await.unwrap();
                latencies.push(started.elapsed());
            }
            latencies
        }));
    }
    let mut all = Vec::new();
    for worker in workers {
        all.extend(worker.await.unwrap());
    }
    all.sort();
    let p99 = all[all.len() * 99 / 100].as_secs_f64() * 1000.0;
    Figures {
        requests_per_sec: all.len() as f64 / seconds as f64,
        p50_ms: all[all.len() / 2].as_secs_f64() * 1000.0,
        p99_ms: p99,
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--baseline-server") {
        baseline_server(args[i + 1].parse().unwrap(), &args[i + 2]);
        return;
    }
    let _ = rustls::crypto::ring::default_provider().install_default();
    let seconds = arg("--seconds", 5u64);
    let connections = arg("--connections", 32u64);
    // The load generator on CPU 1; servers on CPU 0.
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
        let dir = std::env::temp_dir().join(format!("flex-bench-http-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let url = format!("sqlite://{}", dir.join("flex.db").display());
        let started = Instant::now();
        let first_task = seed(&url).await;
        println!("seeded {HOSTS} hosts × {DATABASES_PER_HOST} databases × {SNAPSHOTS_PER_HOST} snapshots and {TASKS} tasks in {:.1?}", started.elapsed());

        let port = free_port();
        let _flex = spawn_flex(port, &url, Some("0"), &[]);
        let base = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        wait_ready(&http, &base).await;
        let endpoints = [
            ("GET host", "/api/v1/hosts/host0500".to_owned()),
            ("GET task", format!("/api/echo/v1/tasks/{first_task}")),
            ("list tasks (1,000)", "/api/echo/v1/tasks".to_owned()),
            ("topology (1,000 × 10 × 10)", "/api/echo/v1/topology".to_owned()),
        ];
        println!("| endpoint | Flex req/s | Flex p50 / p99 | baseline req/s | baseline p50 / p99 | ratio | body |");
        println!("|---|---|---|---|---|---|---|");
        let only: String = arg("--only", String::new());
        for (name, path) in endpoints.into_iter().filter(|(name, _)| name.contains(only.as_str())) {
            let body = http.get(format!("{base}{path}")).bearer_auth(ADMIN_TOKEN).send().await.unwrap().bytes().await.unwrap();
            let body_file = dir.join("body.json");
            std::fs::write(&body_file, &body).unwrap();
            // Topology is heavy: fewer seconds of load are plenty to see its p99.
            let (conns, secs) = if path.ends_with("topology") { (4, seconds) } else { (connections, seconds) };
            let flex = load(&format!("{base}{path}"), conns, secs, true).await;
            let baseline_port = free_port();
            let _baseline = Process(
                Command::new("taskset")
                    .args(["-c", "0", std::env::current_exe().unwrap().to_str().unwrap(), "--baseline-server", &baseline_port.to_string(), body_file.to_str().unwrap()])
                    .stdout(Stdio::null())
                    .spawn()
                    .unwrap(),
            );
            let baseline_url = format!("http://127.0.0.1:{baseline_port}{path}");
            for _ in 0..400 {
                if http.get(&baseline_url).send().await.is_ok() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            let baseline = load(&baseline_url, conns, secs, false).await;
            println!(
                "| {name} | {:.0} | {:.2} / {:.2} ms | {:.0} | {:.2} / {:.2} ms | {:.2}× | {} KiB |",
                flex.requests_per_sec,
                flex.p50_ms,
                flex.p99_ms,
                baseline.requests_per_sec,
                baseline.p50_ms,
                baseline.p99_ms,
                flex.requests_per_sec / baseline.requests_per_sec,
                body.len() / 1024
            );
        }
        let _ = std::fs::remove_dir_all(dir);
    });
}
