//! Every configuration default, in one place: the flags of `flex serve` (`config.rs`), the
//! library's own `Config::new`, the executor, the SDP client and the store all read them from
//! here, and the README's configuration table shows them (a test keeps it true).

use std::time::Duration;

pub const LISTEN: &str = "0.0.0.0:8080";
pub const DATABASE_URL: &str = "sqlite://flex.db";
/// How long a request waits for a database connection before it is answered 503: a pipeline
/// retrying on 503 is better served than one hanging on an unreachable database.
pub const DB_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);
pub const INSTANCE_ID: &str = "ocie-0";
pub const AGENT_SILENCE: Duration = Duration::from_secs(30);
pub const AGENT_HEARTBEAT: Duration = Duration::from_secs(10);
pub const SDP_USER: &str = "admin";
pub const SDP_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
pub const SDP_TIMEOUT: Duration = Duration::from_secs(30);
pub const WORKERS: usize = 4;
pub const TASK_LEASE: Duration = Duration::from_secs(30);
pub const TASK_DEADLINE: Duration = Duration::from_hours(1);
pub const FREEZE_WINDOW: Duration = Duration::from_secs(10);
/// On SIGTERM, how long running steps get to reach their checkpoint.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections served at once: agents' sockets, pipelines and people together.
pub const MAX_CONNECTIONS: usize = 20_000;
/// How often each replica looks for expired echo DBs and due snapshot schedules.
pub const EXPIRY_CHECK: Duration = Duration::from_secs(30);
/// Events are kept this many days, then pruned.
pub const EVENT_RETENTION_DAYS: u64 = 7;
/// Audit rows are kept this many days, then pruned.
pub const AUDIT_RETENTION_DAYS: u64 = 90;
/// A failed webhook delivery is first retried after this long (then backing off).
pub const WEBHOOK_RETRY_BASE: Duration = Duration::from_secs(5);
/// A request's headers must arrive within this long (a client that trickles them is cut off).
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
