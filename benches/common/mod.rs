//! What every benchmark binary needs: its options and figures, and (from the tests' own
//! support module, so there is one copy) `flex serve` as a pinned process, host registration,
//! memory readings and the emulated source databases. Each bench includes this with `#[path]`.

#![allow(dead_code)]

use std::str::FromStr;

#[path = "../../tests/it/support/builders.rs"]
pub mod builders;
#[path = "../../tests/it/support/processes.rs"]
pub mod processes;

#[allow(unused_imports)]
pub use processes::{
    ADMIN_TOKEN, FlexServe, Process, cpu_secs, free_port, memory_kib, register_host, wait_ready,
};

/// `--name VALUE` from the command line, or `default`.
pub fn arg<T: FromStr>(name: &str, default: T) -> T {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// `flex serve` on `port` over `database_url`, pinned to `cpu` when given; `env` adds
/// settings. Its log (errors only) goes to the benchmark's stderr.
pub fn spawn_flex(
    port: u16,
    database_url: &str,
    cpu: Option<&str>,
    env: &[(&str, &str)],
) -> Process {
    let mut serve = match cpu {
        Some(cpu) => FlexServe::pinned(port, database_url, cpu),
        None => FlexServe::new(port, database_url),
    };
    for (name, value) in env {
        serve = serve.env(name, value);
    }
    serve.spawn()
}

/// The `p` quantile of already sorted values.
#[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // an index in 0..len
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}
