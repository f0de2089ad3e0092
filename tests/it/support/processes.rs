//! `flex serve` as a real process of its own (for the crash matrix, a second replica, and the
//! benchmarks), and what talks to one: readiness, host registration, its memory. Depends on
//! nothing else in `support`, so the benchmarks include this file as it is.

#![allow(dead_code)]

use std::{
    process::{Child, Command, Stdio},
    time::Duration,
};

/// The administrator token every test and benchmark server is started with.
pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789";

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A child process, killed (without a chance to clean up) when dropped.
pub struct Process(pub Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Process {
    pub fn pid(&self) -> u32 {
        self.0.id()
    }

    /// True once the process has ended; its exit status then.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.0.try_wait().unwrap()
    }
}

/// How to start `flex serve`: on a loopback port, over a database, quiet, with the admin
/// token set; the rest is added.
pub struct FlexServe {
    command: Command,
}

impl FlexServe {
    pub fn new(port: u16, database_url: &str) -> FlexServe {
        let mut command = Command::new(env!("CARGO_BIN_EXE_flex"));
        command
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .args(["--database-url", database_url])
            .env("FLEX_ADMIN_TOKEN", ADMIN_TOKEN)
            .env("FLEX_LOG", "error")
            .env_remove("FLEX_CRASH_AT")
            .stdout(Stdio::null());
        FlexServe { command }
    }

    /// The same, pinned to a CPU (with `taskset`) so a benchmark's load runs beside it.
    pub fn pinned(port: u16, database_url: &str, cpu: &str) -> FlexServe {
        let mut serve = FlexServe::new(port, database_url);
        let mut pinned = Command::new("taskset");
        pinned.args(["-c", cpu]).arg(serve.command.get_program());
        pinned.args(serve.command.get_args());
        for (name, value) in serve.command.get_envs() {
            match value {
                Some(value) => pinned.env(name, value),
                None => pinned.env_remove(name),
            };
        }
        pinned.stdout(Stdio::null());
        serve.command = pinned;
        serve
    }

    /// The array Flex drives (the emulator's credentials).
    pub fn sdp(mut self, url: &str) -> FlexServe {
        self.command
            .env("FLEX_SDP_URL", url)
            .env("FLEX_SDP_USER", "admin")
            .env("FLEX_SDP_PASSWORD", "admin");
        self
    }

    /// Aborts the process at `step:before_checkpoint` or `step:after_checkpoint`.
    pub fn crash_at(mut self, point: &str) -> FlexServe {
        self.command.env("FLEX_CRASH_AT", point);
        self
    }

    pub fn env(mut self, name: &str, value: &str) -> FlexServe {
        self.command.env(name, value);
        self
    }

    /// Hides what the process logs (tests read its API, not its log).
    pub fn silent(mut self) -> FlexServe {
        self.command.stderr(Stdio::null());
        self
    }

    /// Sends what the process logs to `file`.
    pub fn stderr(mut self, file: std::fs::File) -> FlexServe {
        self.command.stderr(file);
        self
    }

    pub fn spawn(mut self) -> Process {
        Process(self.command.spawn().expect("start flex serve"))
    }
}

/// A client that gives up on a request after 30 s, so a server that never answers fails the
/// test with a message instead of hanging it.
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
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
    let response = http
        .put(format!("{base}/api/v1/hosts/{host_id}"))
        .bearer_auth(ADMIN_TOKEN)
        .body(r#"{"db_vendor":"mssql"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201, "registering {host_id}");
    let answer: serde_json::Value = response.json().await.unwrap();
    answer["token"].as_str().expect("an agent token").to_owned()
}

/// CPU time a process has used so far, user and system, in seconds: `/proc/PID/stat`'s
/// `utime` and `stime`, counted in the kernel's fixed 100 ticks a second. `pid` may be
/// `"self"`.
pub fn cpu_secs(pid: &str) -> f64 {
    let ticks = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            // The command name may hold spaces: the fields are counted after its `)`.
            let (_, fields) = stat.rsplit_once(')')?;
            let fields: Vec<&str> = fields.split_whitespace().collect();
            let (user, system) = (fields.get(11)?, fields.get(12)?);
            Some(user.parse::<u64>().ok()? + system.parse::<u64>().ok()?)
        })
        .unwrap_or(0);
    ticks as f64 / 100.0
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
