//! Many clone workflows at once against a slow array: 1,000 concurrent clones with 200 ms of
//! latency on every SDP call. All must finish, none twice, and Flex's memory must stay
//! bounded; reported are the wall time, each clone's time end to end, and the server's
//! resident memory idle, at its peak (`VmHWM`) and after.
//!
//! `flex serve` (SQLite) runs as its own process pinned to CPU 0; the SDP emulator, the
//! emulated hosts (one source, `--hosts` destinations) and the load generator share CPU 1.
//!
//! Run: `cargo bench --bench clones` (options: `--clones 1000`, `--latency-ms 200`,
//! `--hosts 20`, `--workers 1000`).

#[path = "common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::{
    ADMIN_TOKEN, arg, cpu_secs, free_port, memory_kib, percentile, register_host, spawn_flex,
    wait_ready,
};
use flex::{
    emulators::{
        agent::{AgentEmulator, AgentEmulatorConfig},
        sdp::{SdpEmulator, SdpEmulatorConfig},
    },
    model::TaskState,
    sdp::SdpConfig,
    store::{Store, TaskFilter},
};
use futures_util::{StreamExt, stream};
use serde_json::{Value, json};

async fn run(clones: usize, latency_ms: u64, hosts: usize, workers: usize) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let sdp = SdpEmulator::start(SdpEmulatorConfig::default(), listener)
        .await
        .unwrap();
    let dir = std::env::temp_dir().join(format!("flex-bench-clones-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let database_url = format!("sqlite://{}", dir.join("flex.db").display());
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let workers_setting = workers.to_string();
    let server = spawn_flex(
        port,
        &database_url,
        Some("0"),
        &[
            ("FLEX_SDP_URL", &sdp.url),
            ("FLEX_SDP_USER", "admin"),
            ("FLEX_SDP_PASSWORD", "admin"),
            ("FLEX_WORKERS", &workers_setting),
        ],
    );
    let pid = server.pid();
    let http = reqwest::Client::new();
    wait_ready(&http, &base).await;

    let destinations: Vec<String> = (0..hosts).map(|n| format!("dev-{n:02}")).collect();
    let mut agents = Vec::new();
    for host_id in std::iter::once("src-01").chain(destinations.iter().map(String::as_str)) {
        let token = register_host(&http, &base, host_id).await;
        let mut config = AgentEmulatorConfig::new(&base, host_id, &token);
        config.sdp = Some(SdpConfig::new(&sdp.url, "admin", "admin"));
        if host_id == "src-01" {
            config.databases = vec![common::builders::sales(1024)];
        }
        agents.push(AgentEmulator::start(config).await.unwrap());
    }
    while !agents.iter().all(AgentEmulator::is_connected) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let latency = http
        .put(format!("{}/emulator/latency", sdp.url))
        .basic_auth("admin", Some("admin"))
        .json(&json!({"ms": latency_ms}))
        .send()
        .await
        .unwrap();
    assert!(latency.status().is_success());
    let idle_kib = memory_kib(pid, "VmRSS:");
    let calls_before: u64 = sdp.calls().values().sum();
    let log_before = sdp.call_log().len();

    let cpu_before = (cpu_secs(&pid.to_string()), cpu_secs("self"));
    let started = Instant::now();
    let created: Vec<String> = stream::iter(0..clones)
        .map(|n| {
            let (http, base) = (http.clone(), base.clone());
            let host_id = destinations[n % hosts].clone();
            async move {
                let response = http
                    .post(format!("{base}/api/echo/v1/echo_dbs"))
                    .bearer_auth(ADMIN_TOKEN)
                    .json(&json!({
                        "source_host_id": "src-01",
                        "consistency_level": "crash",
                        "destinations": [{"host_id": host_id, "db_id": "5", "db_name": format!("copy{n:04}")}],
                    }))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(response.status(), 200);
                let task: Value = response.json().await.unwrap();
                task["request_id"].as_str().unwrap().to_owned()
            }
        })
        .buffer_unordered(64)
        .collect()
        .await;
    let submitted = started.elapsed();
    println!("{} clones requested in {submitted:.2?}", created.len());

    let store = Store::connect(&database_url).await.unwrap();
    let mut last_report = Instant::now();
    loop {
        let running = store.running_tasks().await.unwrap().len();
        if running == 0 {
            break;
        }
        if last_report.elapsed() > Duration::from_secs(10) {
            println!(
                "  {running} still running after {:.0?}; flex RSS {} MiB",
                started.elapsed(),
                memory_kib(pid, "VmRSS:") / 1024
            );
            last_report = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let all_done = started.elapsed();
    let flex_cpu = cpu_secs(&pid.to_string()) - cpu_before.0;
    let emulators_cpu = cpu_secs("self") - cpu_before.1;
    let peak_kib = memory_kib(pid, "VmHWM:");
    let after_kib = memory_kib(pid, "VmRSS:");

    let count = |state: TaskState| {
        let store = store.clone();
        async move {
            store
                .list_tasks(&TaskFilter {
                    state: Some(state),
                    ..Default::default()
                })
                .await
                .unwrap()
                .len()
        }
    };
    let (completed, failed) = (
        count(TaskState::Completed).await,
        count(TaskState::Failed).await,
    );
    let mut durations = Vec::new();
    let mut step_times: Vec<(String, Vec<f64>)> = Vec::new();
    for id in &created {
        let steps = store.task_steps(id).await.unwrap();
        if let (Some(first), Some(last)) = (steps.first(), steps.last()) {
            durations.push((last.finished_ms - first.started_ms) as f64 / 1000.0);
        }
        for step in &steps {
            let took = (step.finished_ms - step.started_ms) as f64 / 1000.0;
            match step_times.iter_mut().find(|(name, _)| *name == step.name) {
                Some((_, times)) => times.push(took),
                None => step_times.push((step.name.clone(), vec![took])),
            }
        }
    }
    if clones > 1 {
        println!("  {:<24} {:>8} {:>8}", "step", "p50 s", "p99 s");
        for (name, times) in &mut step_times {
            times.sort_by(f64::total_cmp);
            println!(
                "  {name:<24} {:>8.2} {:>8.2}",
                percentile(times, 0.5),
                percentile(times, 0.99)
            );
        }
    }
    durations.sort_by(f64::total_cmp);
    let sdp_calls = sdp.calls().values().sum::<u64>() - calls_before;
    println!(
        "  SDP calls: {sdp_calls} in all, {:.1} per clone",
        sdp_calls as f64 / clones as f64
    );
    if clones == 1 {
        let log = sdp.call_log();
        let steps = store.task_steps(&created[0]).await.unwrap();
        round_trips_per_step(&log[log_before..], &steps, latency_ms);
    }
    let array = sdp.snapshot_state();
    let thin_clones = array.volumes.values().filter(|v| v.is_thin_clone).count();
    let live = store.ledger_live().await.unwrap();

    println!(
        "{clones} concurrent clones, SDP latency {latency_ms} ms, {hosts} destination hosts, {workers} workers:"
    );
    println!(
        "  all ended in {all_done:.1?}: {completed} completed, {failed} failed; per clone p50 {:.1} s, p99 {:.1} s, max {:.1} s",
        percentile(&durations, 0.5),
        percentile(&durations, 0.99),
        durations.last().copied().unwrap_or(0.0)
    );
    println!(
        "  array: {thin_clones} thin clones, {} snapshots, {} mappings; ledger: {} live objects",
        array.snapshots.len(),
        array.mappings.len(),
        live.len()
    );
    println!(
        "  flex RSS: idle {:.1} MiB, peak {:.1} MiB, after {:.1} MiB",
        idle_kib as f64 / 1024.0,
        peak_kib as f64 / 1024.0,
        after_kib as f64 / 1024.0
    );
    // Which side the run waited on: each process has one core, so a share near 100 % is
    // that side's bound.
    let wall = all_done.as_secs_f64();
    println!(
        "  CPU over the run: flex {flex_cpu:.1} s ({:.0} % of its core), emulators and load generator {emulators_cpu:.1} s ({:.0} % of theirs)",
        100.0 * flex_cpu / wall,
        100.0 * emulators_cpu / wall
    );
    assert_eq!(completed, clones, "every clone completes");
    assert_eq!(thin_clones, 2 * clones, "two thin clones each, none twice");
    store.close().await;
    for agent in agents {
        agent.stop();
    }
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The fewest sequential SDP round trips each step of a clone needs (crash-consistent, one
/// destination whose SDP host object is new), as the workflow is designed:
/// - the source's volumes come from its inventory's join, and the array's id is known;
/// - one snapshot per volume group, all at once;
/// - the host object: look up the initiator and the name together, create the host, then its
///   initiator (each needs the one before); 1 when the object exists;
/// - a thin clone is created, then listed before it can be mapped (all volumes at once);
/// - every mapping at once;
/// - the rescan asks the host's own disks, not the array;
/// - the attach's new inventory is joined: the clones' serials and the initiator together, then
///   the initiator's host object.
const CLONE_MINIMUM: &[(&str, usize)] = &[
    ("resolve_source_volumes", 0),
    ("snapshot_volume_groups", 1),
    ("record_db_snapshot", 0),
    ("ensure_sdp_hosts", 3),
    ("clone_volumes", 2),
    ("map_clones", 1),
    ("rescan_disks", 0),
    ("attach_databases", 2),
];

/// Prints, per step of the one clone, its time, its SDP calls and how many of them were in a
/// row (calls that arrive within half the latency of each other went out together).
fn round_trips_per_step(
    log: &[flex::emulators::sdp::CallRecord],
    steps: &[flex::store::StepLogEntry],
    latency_ms: u64,
) {
    let together_within = i64::try_from(latency_ms / 2).unwrap_or(i64::MAX).max(1);
    println!(
        "  {:<24} {:>8} {:>6} {:>12} {:>8}",
        "step", "took ms", "calls", "round trips", "minimum"
    );
    let (mut total_calls, mut total_trips, mut total_minimum) = (0, 0, 0);
    for step in steps {
        let mut arrivals: Vec<i64> = log
            .iter()
            .filter(|call| step.started_ms <= call.at_ms && call.at_ms <= step.finished_ms)
            .map(|call| call.at_ms)
            .collect();
        arrivals.sort_unstable();
        let mut trips = 0;
        let mut batch_start = None;
        for at in &arrivals {
            if batch_start.is_none_or(|start| at - start >= together_within) {
                trips += 1;
                batch_start = Some(*at);
            }
        }
        let minimum = CLONE_MINIMUM
            .iter()
            .find(|(name, _)| *name == step.name)
            .map_or(0, |(_, minimum)| *minimum);
        total_calls += arrivals.len();
        total_trips += trips;
        total_minimum += minimum;
        println!(
            "  {:<24} {:>8} {:>6} {:>12} {:>8}",
            step.name,
            step.finished_ms - step.started_ms,
            arrivals.len(),
            trips,
            minimum
        );
    }
    println!(
        "  {:<24} {:>8} {total_calls:>6} {total_trips:>12} {total_minimum:>8}",
        "all steps", ""
    );
}

fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let clones = arg("--clones", 1000usize);
    let latency_ms = arg("--latency-ms", 200u64);
    let hosts = arg("--hosts", 20usize).max(1);
    let workers = arg("--workers", 1000usize);
    let _ = std::process::Command::new("taskset")
        .args(["-a", "-p", "-c", "1", &std::process::id().to_string()])
        .stdout(std::process::Stdio::null())
        .status();
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap()
        .block_on(run(clones, latency_ms, hosts, workers));
}
