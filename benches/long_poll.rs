//! What 1,000 clients waiting on tasks cost: long-polling (`?wait_secs=`) against the same
//! clients polling once a second, measured in the same run on the same server (`flex serve` on
//! Postgres, pinned to CPU 0; the clients on CPU 1). Figures: the server's CPU time per second
//! of waiting, the database's transactions per second (`pg_stat_database`), and how long after
//! the tasks end the waiters have their answer.
//!
//! Run: `cargo bench --bench long_poll` (options: `--clients N`, `--seconds N`).

#[path = "common/mod.rs"]
mod common;

use std::{
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use common::{ADMIN_TOKEN, arg, builders::task, free_port, percentile, spawn_flex, wait_ready};
use flex::{
    model::{CommandType, TaskState},
    store::{NewTask, Store},
};

/// User plus system CPU time of a process, in seconds.
fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap()
        .split_whitespace()
        .collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    ticks / 100.0
}

async fn transactions(admin: &mut sqlx::PgConnection, name: &str) -> f64 {
    let sql = format!(
        "SELECT (xact_commit + xact_rollback)::float8 FROM pg_stat_database WHERE datname = '{name}'"
    );
    // The statistics collector publishes with a delay; ask for a fresh snapshot.
    let _ = sqlx::Executor::execute(&mut *admin, "SELECT pg_stat_clear_snapshot()").await;
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
        .fetch_one(admin)
        .await
        .unwrap()
}

struct Figures {
    cpu_per_sec: f64,
    transactions_per_sec: f64,
}

/// `clients` clients wait `seconds` on their own running task: long-polling, or polling every
/// second.
async fn wait(
    base: &str,
    pid: u32,
    admin: &mut sqlx::PgConnection,
    name: &str,
    clients: usize,
    seconds: u64,
    long_poll: bool,
) -> Figures {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(clients)
        .build()
        .unwrap();
    let (cpu, xacts, started) = (
        cpu_secs(pid),
        transactions(admin, name).await,
        Instant::now(),
    );
    let until = started + Duration::from_secs(seconds);
    let waiters = (0..clients).map(|n| {
        let http = http.clone();
        let url = format!("{base}/api/echo/v1/tasks/wait{n:05}");
        async move {
            while Instant::now() < until {
                let left = until
                    .saturating_duration_since(Instant::now())
                    .as_secs()
                    .max(1);
                let url = if long_poll {
                    format!("{url}?wait_secs={left}")
                } else {
                    url.clone()
                };
                let answer = http
                    .get(&url)
                    .bearer_auth(ADMIN_TOKEN)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(answer.status(), 200);
                if !long_poll {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    });
    futures_util::future::join_all(waiters).await;
    let elapsed = started.elapsed().as_secs_f64();
    Figures {
        cpu_per_sec: (cpu_secs(pid) - cpu) / elapsed,
        transactions_per_sec: (transactions(admin, name).await - xacts) / elapsed,
    }
}

fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let clients = arg("--clients", 1000usize);
    let seconds = arg("--seconds", 10u64);
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
        let admin_url = std::env::var("FLEX_TEST_POSTGRES_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
        let name = format!("flex_bench_wait_{}", std::process::id());
        let mut admin = <sqlx::PgConnection as sqlx::Connection>::connect(&admin_url)
            .await
            .unwrap();
        sqlx::Executor::execute(
            &mut admin,
            sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")),
        )
        .await
        .unwrap();
        let url = format!("{}/{name}", admin_url.rsplit_once('/').unwrap().0);
        let store = Store::connect(&url).await.unwrap();
        store.migrate().await.unwrap();
        // Tasks no executor runs (Deploy), so they stay running until the bench ends them.
        for n in 0..clients {
            let record = task(
                &format!("wait{n:05}"),
                TaskState::Running,
                CommandType::Deploy,
                "bench",
            );
            store
                .insert_task(&NewTask {
                    record,
                    host_ids: vec![],
                })
                .await
                .unwrap();
        }
        let port = free_port();
        let base = format!("http://127.0.0.1:{port}");
        let server = spawn_flex(port, &url, Some("0"), &[("FLEX_MAX_CONNECTIONS", "20000")]);
        wait_ready(&reqwest::Client::new(), &base).await;
        let pid = server.pid();

        let polling = wait(&base, pid, &mut admin, &name, clients, seconds, false).await;
        let waiting = wait(&base, pid, &mut admin, &name, clients, seconds, true).await;

        // Every waiter on its task; then all the tasks end at once.
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(clients)
            .build()
            .unwrap();
        let answers = (0..clients).map(|n| {
            let http = http.clone();
            let url = format!("{base}/api/echo/v1/tasks/wait{n:05}?wait_secs=60");
            async move {
                http.get(&url)
                    .bearer_auth(ADMIN_TOKEN)
                    .send()
                    .await
                    .unwrap();
                Instant::now()
            }
        });
        let answered = tokio::spawn(futures_util::future::join_all(answers));
        tokio::time::sleep(Duration::from_secs(3)).await;
        let ended = Instant::now();
        for n in 0..clients {
            store
                .finish_task(&format!("wait{n:05}"), 0, TaskState::Completed, "", None)
                .await
                .unwrap();
        }
        let ending = ended.elapsed();
        let mut after: Vec<f64> = answered
            .await
            .unwrap()
            .iter()
            .map(|at| at.duration_since(ended).as_secs_f64() * 1000.0)
            .collect();
        after.sort_by(f64::total_cmp);

        println!("{clients} clients waiting {seconds} s on running tasks (Postgres):");
        println!("| | server CPU | database transactions/s |");
        println!("|---|---|---|");
        println!(
            "| polling every 1 s | {:.1} % | {:.0} |",
            polling.cpu_per_sec * 100.0,
            polling.transactions_per_sec
        );
        println!(
            "| long-poll (`wait_secs`) | {:.1} % | {:.0} |",
            waiting.cpu_per_sec * 100.0,
            waiting.transactions_per_sec
        );
        println!(
            "ratio (long-poll / polling): CPU {:.2}, transactions {:.2}",
            waiting.cpu_per_sec / polling.cpu_per_sec,
            waiting.transactions_per_sec / polling.transactions_per_sec
        );
        println!(
            "answers after the ends: p50 {:.0} ms, p99 {:.0} ms, last {:.0} ms \
             (ending {clients} tasks took {:.0} ms)",
            percentile(&after, 0.5),
            percentile(&after, 0.99),
            after.last().copied().unwrap_or_default(),
            ending.as_secs_f64() * 1000.0
        );
        store.close().await;
        drop(server);
        let _ = sqlx::Executor::execute(
            &mut admin,
            sqlx::AssertSqlSafe(format!("DROP DATABASE {name} WITH (FORCE)")),
        )
        .await;
    });
}
