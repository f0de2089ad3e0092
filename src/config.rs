//! Configuration of `flex serve`: flags with `FLEX_*` environment equivalents, and defaults that
//! run Flex with no set-up at all (an SQLite file in the working directory). The defaults
//! themselves live in `crate::defaults`.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use clap::Args;

use crate::{
    defaults,
    executor::{CrashPoint, ExecutorConfig},
    sdp::SdpConfig,
    server::Limits,
};

/// Everything the running server needs besides its listening socket.
#[derive(Clone, Debug)]
pub struct Config {
    pub database_url: String,
    /// How long a request waits for a database connection before it is answered 503.
    pub db_acquire_timeout: Duration,
    /// Name of this replica: the `owner` of the tasks it runs.
    pub instance_id: String,
    /// A chosen administrator token; when `None`, one is generated at first start.
    pub admin_token: Option<String>,
    /// The bootstrap user of `POST /api/v1/auth/local/login`; login is refused when unset.
    pub admin_user: Option<String>,
    pub admin_password: Option<String>,
    /// Serve HTTPS with this certificate chain and key (PEM files).
    pub tls: Option<TlsFiles>,
    /// After this long without hearing from an agent, its host shows `is_connected: false`.
    pub agent_silence: Duration,
    /// How often Flex pings each agent and checks that its host still exists.
    pub agent_heartbeat: Duration,
    /// The array Flex drives; `None` runs Flex without one (hosts, tasks and topology only).
    pub sdp: Option<SdpConfig>,
    /// Longest time databases stay frozen for an application-consistent snapshot.
    pub freeze_window: Duration,
    /// How tasks are run.
    pub executor: ExecutorConfig,
    /// When set, `/readyz` also waits for this to turn true (the demo sets it once its
    /// emulated hosts are connected).
    pub ready_gate: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
    /// What bounds the connections the server holds.
    pub limits: Limits,
    /// How often expired echo DBs and due snapshot schedules are looked for.
    pub expiry_check: Duration,
    /// How long events are kept (streams and webhooks resume within it).
    pub event_retention: Duration,
    /// How long the audit trail keeps each request.
    pub audit_retention: Duration,
    /// The first retry of a failed webhook delivery waits this long.
    pub webhook_retry_base: Duration,
}

#[derive(Clone, Debug)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl Config {
    /// Defaults for a given database; what tests and embedders start from.
    pub fn new(database_url: impl Into<String>) -> Config {
        Config {
            database_url: database_url.into(),
            db_acquire_timeout: defaults::DB_ACQUIRE_TIMEOUT,
            instance_id: defaults::INSTANCE_ID.to_owned(),
            admin_token: None,
            admin_user: None,
            admin_password: None,
            tls: None,
            agent_silence: defaults::AGENT_SILENCE,
            agent_heartbeat: defaults::AGENT_HEARTBEAT,
            sdp: None,
            freeze_window: defaults::FREEZE_WINDOW,
            executor: ExecutorConfig::default(),
            ready_gate: None,
            limits: Limits {
                max_connections: defaults::MAX_CONNECTIONS,
                header_read_timeout: defaults::HEADER_READ_TIMEOUT,
            },
            expiry_check: defaults::EXPIRY_CHECK,
            event_retention: Duration::from_secs(defaults::EVENT_RETENTION_DAYS * 86_400),
            audit_retention: Duration::from_secs(defaults::AUDIT_RETENTION_DAYS * 86_400),
            webhook_retry_base: defaults::WEBHOOK_RETRY_BASE,
        }
    }
}

#[derive(Args, Debug, Clone)]
pub struct DatabaseArgs {
    /// `sqlite://PATH` (created if missing) or `postgres://USER@HOST:PORT/DB`.
    #[arg(long, env = "FLEX_DATABASE_URL", default_value = defaults::DATABASE_URL)]
    pub database_url: String,
}

#[derive(Args, Debug, Clone)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "FLEX_LISTEN", default_value = defaults::LISTEN)]
    pub listen: SocketAddr,

    #[command(flatten)]
    pub database: DatabaseArgs,

    /// Milliseconds a request waits for a database connection before it is answered 503
    /// (what bounds a request while the database is down or overloaded).
    #[arg(long, env = "FLEX_DB_ACQUIRE_TIMEOUT_MS", default_value_t = millis(defaults::DB_ACQUIRE_TIMEOUT))]
    pub db_acquire_timeout_ms: u64,

    /// Name of this replica; the `owner` of the tasks it runs.
    #[arg(long, env = "FLEX_INSTANCE_ID", default_value = defaults::INSTANCE_ID)]
    pub instance_id: String,

    /// Administrator token. When absent and none is stored, one is generated and printed once.
    #[arg(long, env = "FLEX_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,

    /// User name accepted by `POST /api/v1/auth/local/login`.
    #[arg(long, env = "FLEX_ADMIN_USER")]
    pub admin_user: Option<String>,

    /// Password of that user.
    #[arg(long, env = "FLEX_ADMIN_PASSWORD", hide_env_values = true)]
    pub admin_password: Option<String>,

    /// PEM certificate chain; with --tls-key, serve HTTPS.
    #[arg(long, env = "FLEX_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// PEM private key of --tls-cert.
    #[arg(long, env = "FLEX_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// Serve plain HTTP on a non-loopback address (without it, and without --tls-cert, Flex
    /// serves HTTPS there with a self-signed certificate kept beside the database).
    #[arg(long, env = "FLEX_PLAIN_HTTP", conflicts_with = "tls_cert")]
    pub plain_http: bool,

    /// Seconds without a heartbeat after which a host's agent counts as disconnected.
    #[arg(long, env = "FLEX_AGENT_SILENCE_SECS", default_value_t = defaults::AGENT_SILENCE.as_secs())]
    pub agent_silence_secs: u64,

    /// Seconds between pings to each agent (also how often a revoked host is noticed).
    #[arg(long, env = "FLEX_AGENT_HEARTBEAT_SECS", default_value_t = defaults::AGENT_HEARTBEAT.as_secs())]
    pub agent_heartbeat_secs: u64,

    #[command(flatten)]
    pub sdp: SdpArgs,

    /// Tasks this process runs at once.
    #[arg(long, env = "FLEX_WORKERS", default_value_t = defaults::WORKERS)]
    pub workers: usize,

    /// Seconds a claimed task stays owned without a heartbeat (then another replica resumes it).
    #[arg(long, env = "FLEX_TASK_LEASE_SECS", default_value_t = defaults::TASK_LEASE.as_secs())]
    pub task_lease_secs: u64,

    /// Seconds after creation at which a still-running task fails and compensates.
    #[arg(long, env = "FLEX_TASK_DEADLINE_SECS", default_value_t = defaults::TASK_DEADLINE.as_secs())]
    pub task_deadline_secs: u64,

    /// Longest time databases stay frozen for an application-consistent snapshot, in ms.
    #[arg(long, env = "FLEX_FREEZE_WINDOW_MS", default_value_t = millis(defaults::FREEZE_WINDOW))]
    pub freeze_window_ms: u64,

    /// On SIGTERM, seconds running steps get to reach their checkpoint before they are
    /// cancelled and their tasks left to a restart or another replica.
    #[arg(long, env = "FLEX_DRAIN_TIMEOUT_SECS", default_value_t = defaults::DRAIN_TIMEOUT.as_secs())]
    pub drain_timeout_secs: u64,

    /// Connections served at once (agent sockets included); more are closed on arrival.
    #[arg(long, env = "FLEX_MAX_CONNECTIONS", default_value_t = defaults::MAX_CONNECTIONS)]
    pub max_connections: usize,

    /// Seconds within which a request's headers must have arrived.
    #[arg(long, env = "FLEX_HEADER_READ_TIMEOUT_SECS", default_value_t = defaults::HEADER_READ_TIMEOUT.as_secs())]
    pub header_read_timeout_secs: u64,

    /// Seconds between looks for expired echo DBs and due snapshot schedules.
    #[arg(long, env = "FLEX_EXPIRY_CHECK_SECS", default_value_t = defaults::EXPIRY_CHECK.as_secs())]
    pub expiry_check_secs: u64,

    /// Days events are kept for streams (`Last-Event-ID`) and webhooks to catch up from.
    #[arg(long, env = "FLEX_EVENT_RETENTION_DAYS", default_value_t = defaults::EVENT_RETENTION_DAYS)]
    pub event_retention_days: u64,

    /// Days the audit trail keeps each request.
    #[arg(long, env = "FLEX_AUDIT_RETENTION_DAYS", default_value_t = defaults::AUDIT_RETENTION_DAYS)]
    pub audit_retention_days: u64,

    /// Milliseconds before a failed webhook delivery is first retried (then backing off).
    #[arg(long, env = "FLEX_WEBHOOK_RETRY_BASE_MS", default_value_t = millis(defaults::WEBHOOK_RETRY_BASE))]
    pub webhook_retry_base_ms: u64,
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

#[derive(Args, Debug, Clone)]
pub struct SdpArgs {
    /// Base URL of the SDP REST API (`https://sdp.example`; `http://` only for loopback).
    #[arg(long, env = "FLEX_SDP_URL")]
    pub sdp_url: Option<String>,

    /// SDP user (HTTP Basic).
    #[arg(long, env = "FLEX_SDP_USER", default_value = defaults::SDP_USER)]
    pub sdp_user: String,

    /// SDP password.
    #[arg(
        long,
        env = "FLEX_SDP_PASSWORD",
        hide_env_values = true,
        default_value = ""
    )]
    pub sdp_password: String,

    /// Trust only this CA certificate (PEM) for the SDP's HTTPS.
    #[arg(long, env = "FLEX_SDP_CA_FILE")]
    pub sdp_ca_file: Option<PathBuf>,

    /// Do not verify the SDP's certificate (self-signed arrays).
    #[arg(long, env = "FLEX_SDP_INSECURE")]
    pub sdp_insecure: bool,

    /// Seconds to wait for an SDP answer.
    #[arg(long, env = "FLEX_SDP_TIMEOUT_SECS", default_value_t = defaults::SDP_TIMEOUT.as_secs())]
    pub sdp_timeout_secs: u64,
}

impl SdpArgs {
    pub fn into_config(self) -> Option<SdpConfig> {
        let url = self.sdp_url.filter(|u| !u.is_empty())?;
        let mut config = SdpConfig::new(&url, &self.sdp_user, &self.sdp_password);
        config.ca_file = self.sdp_ca_file;
        config.insecure = self.sdp_insecure;
        config.request_timeout = Duration::from_secs(self.sdp_timeout_secs.max(1));
        Some(config)
    }
}

impl ServeArgs {
    pub fn into_config(self) -> Config {
        Config {
            database_url: self.database.database_url,
            db_acquire_timeout: Duration::from_millis(self.db_acquire_timeout_ms.max(100)),
            instance_id: self.instance_id,
            admin_token: self.admin_token.filter(|t| !t.is_empty()),
            admin_user: self.admin_user.filter(|u| !u.is_empty()),
            admin_password: self.admin_password,
            tls: match (self.tls_cert, self.tls_key) {
                (Some(cert), Some(key)) => Some(TlsFiles { cert, key }),
                _ => None,
            },
            agent_silence: Duration::from_secs(self.agent_silence_secs),
            agent_heartbeat: Duration::from_secs(self.agent_heartbeat_secs.max(1)),
            sdp: self.sdp.into_config(),
            freeze_window: Duration::from_millis(self.freeze_window_ms.max(100)),
            executor: ExecutorConfig {
                workers: self.workers.max(1),
                lease: Duration::from_secs(self.task_lease_secs.max(3)),
                task_deadline: Duration::from_secs(self.task_deadline_secs.max(1)),
                drain_timeout: Duration::from_secs(self.drain_timeout_secs),
                crash_at: std::env::var("FLEX_CRASH_AT")
                    .ok()
                    .and_then(|spec| CrashPoint::parse(&spec)),
                ..ExecutorConfig::default()
            },
            ready_gate: None,
            limits: Limits {
                max_connections: self.max_connections.max(1),
                header_read_timeout: Duration::from_secs(self.header_read_timeout_secs.max(1)),
            },
            expiry_check: Duration::from_secs(self.expiry_check_secs.max(1)),
            event_retention: Duration::from_secs(self.event_retention_days.max(1) * 86_400),
            audit_retention: Duration::from_secs(self.audit_retention_days.max(1) * 86_400),
            webhook_retry_base: Duration::from_millis(self.webhook_retry_base_ms.max(10)),
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Args;

    use super::ServeArgs;

    /// The README's configuration table, row by row: (flags, variables, defaults).
    fn readme_rows() -> Vec<(String, String, String)> {
        include_str!("../README.md")
            .lines()
            .filter(|line| line.starts_with("| `--"))
            .map(|line| {
                let cells: Vec<&str> = line.split('|').map(str::trim).collect();
                (
                    cells[1].to_owned(),
                    cells[2].to_owned(),
                    cells[3].to_owned(),
                )
            })
            .collect()
    }

    /// Every flag of `flex serve` is in the README's table, with its variable and default.
    #[test]
    fn the_readme_tells_every_flag_its_variable_and_default() {
        let command = ServeArgs::augment_args(clap::Command::new("serve"));
        let rows = readme_rows();
        for arg in command.get_arguments() {
            let Some(long) = arg.get_long() else {
                continue;
            };
            let flag = format!("`--{long}`");
            let (_, variables, defaults) = rows
                .iter()
                .find(|(flags, _, _)| flags.split(", ").any(|f| f == flag))
                .unwrap_or_else(|| panic!("the README's table lacks {flag}"));
            let variable = arg.get_env().unwrap().to_str().unwrap();
            assert!(
                variables.contains(&format!("`{variable}`")),
                "{flag}: the README says {variables}, the code {variable}"
            );
            for default in arg.get_default_values() {
                let default = default.to_str().unwrap();
                if !default.is_empty() {
                    assert!(
                        defaults.contains(&format!("`{default}`")),
                        "{flag}: the README's default is {defaults}, the code's `{default}`"
                    );
                }
            }
        }
    }
}
