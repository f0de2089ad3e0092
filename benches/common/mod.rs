//! What every benchmark binary needs: its options, `flex serve` as a separate (optionally
//! pinned) process, and the server's memory. Each bench includes this with `#[path]`.

#![allow(dead_code)]

use std::{
    process::{Child, Command, Stdio},
    str::FromStr,
    time::Duration,
};

pub const ADMIN_TOKEN: &str = "bench-admin-token";

/// `--name VALUE` from the command line, or `default`.
pub fn arg<T: FromStr>(name: &str, default: T) -> T {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A child process, killed when dropped.
pub struct Server(pub Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Server {
    pub fn pid(&self) -> u32 {
        self.0.id()
    }
}

/// `flex serve` on `port` with `database_url`, pinned to `cpu` when given (with `taskset`),
/// the admin token set and logging quiet; `env` adds settings.
pub fn spawn_flex(
    port: u16,
    database_url: &str,
    cpu: Option<&str>,
    env: &[(&str, &str)],
) -> Server {
    let flex = env!("CARGO_BIN_EXE_flex");
    let mut command = match cpu {
        Some(cpu) => {
            let mut command = Command::new("taskset");
            command.args(["-c", cpu, flex]);
            command
        }
        None => Command::new(flex),
    };
    command
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .args(["--database-url", database_url])
        .env("FLEX_ADMIN_TOKEN", ADMIN_TOKEN)
        .env("FLEX_LOG", "error")
        .stdout(Stdio::null());
    for (name, value) in env {
        command.env(name, value);
    }
    Server(command.spawn().expect("start flex serve"))
}

/// Waits until `/readyz` answers 200.
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

/// Registers a host through the API; returns its agent token.
pub async fn register_host(http: &reqwest::Client, base: &str, host_id: &str) -> String {
    let answer: serde_json::Value = http
        .put(format!("{base}/api/v1/hosts/{host_id}"))
        .bearer_auth(ADMIN_TOKEN)
        .body(r#"{"db_vendor":"mssql"}"#)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    answer["token"].as_str().expect("an agent token").to_owned()
}

/// A memory figure of a process from `/proc/PID/status`, in KiB: `VmRSS` (now) or `VmHWM`
/// (the peak).
pub fn memory_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// The `p` quantile of already sorted values.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}
