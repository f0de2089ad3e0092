//! The client commands' command line: what `flex --help` shows, with an example per command.
//! Every option that names the server or how to talk to it has a `FLEX_` environment
//! equivalent, so a pipeline sets it once.

use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};

/// How to reach the server and how to answer; accepted before or after the command.
#[derive(Args, Clone, Debug)]
#[command(next_help_heading = "Client options")]
pub struct ClientArgs {
    /// The Flex server's base URL.
    #[arg(
        long,
        global = true,
        env = "FLEX_URL",
        hide_env_values = true,
        default_value = "http://127.0.0.1:8080"
    )]
    pub url: String,
    /// API token (default: the one `flex login` stored for this URL).
    #[arg(long, global = true, env = "FLEX_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// PEM file of the certificate authority (or self-signed certificate) to trust.
    #[arg(long, global = true, env = "FLEX_CA_FILE", hide_env_values = true)]
    pub ca_file: Option<PathBuf>,
    /// Accept the server's certificate without verifying it.
    #[arg(long, global = true, env = "FLEX_INSECURE", hide_env_values = true)]
    pub insecure: bool,
    /// table on a terminal, json otherwise; json puts only the result on stdout.
    #[arg(
        long,
        global = true,
        env = "FLEX_OUTPUT",
        value_enum,
        hide_env_values = true
    )]
    pub output: Option<OutputFormat>,
    /// Operation id sent as `hs-ref-id` (1 to 32 letters or digits; generated and printed
    /// when absent).
    #[arg(
        long = "ref-id",
        global = true,
        env = "FLEX_REF_ID",
        hide_env_values = true
    )]
    pub ref_id: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Table,
    Json,
}

#[derive(Subcommand, Debug)]
pub enum ClientCommand {
    /// Sign in as a user; keeps the session token for this URL (file mode 0600).
    #[command(after_help = "Example:\n  FLEX_PASSWORD=secret flex login --user admin")]
    Login(LoginArgs),
    /// Forget the token `flex login` stored for this URL.
    #[command(after_help = "Example:\n  flex logout")]
    Logout,
    /// List hosts, or register or unregister one.
    #[command(
        after_help = "Examples:\n  flex hosts\n  flex hosts register dev-03\n  flex hosts rm dev-03"
    )]
    Hosts(HostsArgs),
    /// A host's databases: source databases and echo DBs.
    #[command(after_help = "Example:\n  flex dbs src-01")]
    Dbs(DbsArgs),
    /// Every host, its databases, their db snapshots and the echo DBs made from them.
    #[command(after_help = "Example:\n  flex topology --output json")]
    Topology,
    /// Take a db snapshot of databases on one host.
    #[command(
        after_help = "Example:\n  flex snapshot --host src-01 --db sales --db hr --prefix nightly --wait"
    )]
    Snapshot(SnapshotArgs),
    /// List db snapshots, or delete one.
    #[command(
        after_help = "Examples:\n  flex snapshots --host src-01\n  flex snapshots rm 3f2a… --wait"
    )]
    Snapshots(SnapshotsArgs),
    /// Clone a database onto other hosts (from a new snapshot, or from --snapshot).
    #[command(
        after_help = "Example:\n  flex clone --source src-01 --db sales --to dev-01:sales_ci --ttl 2h --wait"
    )]
    Clone(CloneArgs),
    /// Refresh echo DBs from a newer db snapshot, keeping their names.
    #[command(
        after_help = "Example:\n  flex refresh --host dev-01 --name sales_ci --snapshot 3f2a… --wait"
    )]
    Refresh(RefreshArgs),
    /// Delete an echo DB.
    #[command(after_help = "Example:\n  flex rm --host dev-01 --db sales_ci --wait")]
    Rm(RmArgs),
    /// List tasks.
    #[command(
        after_help = "Examples:\n  flex tasks --state running\n  flex tasks --ref-id Pipe0001"
    )]
    Tasks(TasksArgs),
    /// Show one task with its steps.
    #[command(after_help = "Example:\n  flex task 0b9c…")]
    Task(TaskArgs),
    /// Follow tasks until they end; the exit code is the first one that did not complete.
    #[command(after_help = "Example:\n  flex wait 0b9c… 7d1e…")]
    Wait(WaitArgs),
    /// Abort a running task (its steps are undone).
    #[command(after_help = "Example:\n  flex abort 0b9c…")]
    Abort(AbortArgs),
    /// List app tokens, or make or revoke one (admin).
    #[command(
        after_help = "Examples:\n  flex tokens\n  flex tokens create nightly-refresh --role operator --ttl 30d\n  flex tokens rm 7Yq2…"
    )]
    Tokens(TokensArgs),
    /// Read the audit trail: who did what, from where, and how it was answered (admin).
    #[command(after_help = "Example:\n  flex audit --since 1h --ref-id Pipe0001")]
    Audit(AuditArgs),
    /// Compare Flex's ledger with the array: rows whose object is gone, and this deployment's
    /// orphans; --apply deletes the orphans and settles the rows (admin).
    #[command(after_help = "Examples:\n  flex reconcile\n  flex reconcile --apply --output json")]
    Reconcile(ReconcileArgs),
}

#[derive(Args, Debug)]
pub struct ReconcileArgs {
    /// Delete the orphans marked `delete` and settle the rows marked `settle`.
    #[arg(long)]
    pub apply: bool,
}

#[derive(Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
pub struct TokensArgs {
    #[command(subcommand)]
    pub action: Option<TokensAction>,
}

#[derive(Subcommand, Debug)]
pub enum TokensAction {
    /// Make an app token; prints it, shown this once.
    #[command(
        after_help = "Example:\n  flex tokens create nightly-refresh --role operator --ttl 30d"
    )]
    Create {
        /// The application's name.
        name: String,
        /// viewer (reads, dry runs), operator (also Echo operations) or admin.
        #[arg(long, value_enum, default_value = "admin")]
        role: TokenRole,
        /// Lifetime (30d, 12h …); without it the token does not expire.
        #[arg(long, value_parser = parse_ttl)]
        ttl: Option<u64>,
        #[arg(long, default_value = "")]
        description: String,
    },
    /// Revoke an app token.
    #[command(after_help = "Example:\n  flex tokens rm 7Yq2…")]
    Rm { id: String },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum TokenRole {
    Viewer,
    Operator,
    Admin,
}

#[derive(Args, Debug)]
pub struct AuditArgs {
    /// Only what happened within this long before now (15m, 2h, 7d).
    #[arg(long, value_parser = parse_ttl)]
    pub since: Option<u64>,
    /// Only the requests of this operation id (filter; not sent as hs-ref-id).
    #[arg(long = "ref-id")]
    pub ref_id: Option<String>,
    /// How many rows, newest first.
    #[arg(long, default_value_t = 100)]
    pub limit: u32,
}

#[derive(Args, Debug)]
pub struct LoginArgs {
    /// User name; the password is read from FLEX_PASSWORD or asked for.
    #[arg(long)]
    pub user: String,
}

/// What every task-creating command takes.
#[derive(Args, Debug, Clone, Copy)]
pub struct MutationArgs {
    /// Follow the task to its end (progress on stderr); the exit code says how it ended.
    #[arg(long)]
    pub wait: bool,
    /// Ask the server whether the request would work, and change nothing.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
pub struct HostsArgs {
    #[command(subcommand)]
    pub action: Option<HostsAction>,
}

#[derive(Subcommand, Debug)]
pub enum HostsAction {
    /// Register a host; prints its agent token, shown this once.
    #[command(after_help = "Example:\n  flex hosts register dev-03")]
    Register {
        host_id: String,
        /// Only check that the host could be registered.
        #[arg(long)]
        dry_run: bool,
    },
    /// Unregister a host (its agent's token stops working).
    #[command(after_help = "Example:\n  flex hosts rm dev-03")]
    Rm {
        host_id: String,
        /// Only say what would be unregistered.
        #[arg(long)]
        dry_run: bool,
    },
}

#[derive(Args, Debug)]
pub struct DbsArgs {
    pub host: String,
}

#[derive(Args, Debug)]
pub struct SnapshotArgs {
    /// The host whose databases to snapshot.
    #[arg(long)]
    pub host: String,
    /// A database id or name (repeatable).
    #[arg(long = "db", required = true, value_name = "ID_OR_NAME")]
    pub dbs: Vec<String>,
    /// Crash-consistent: no freeze of the databases.
    #[arg(long)]
    pub crash: bool,
    /// Name prefix of the snapshot (4 to 20 of a-z, 0-9, _ and -, starting with a letter).
    #[arg(long)]
    pub prefix: Option<String>,
    #[command(flatten)]
    pub mutation: MutationArgs,
}

#[derive(Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
pub struct SnapshotsArgs {
    /// Only the snapshots taken on this host.
    #[arg(long)]
    pub host: Option<String>,
    #[command(subcommand)]
    pub action: Option<SnapshotsAction>,
}

#[derive(Subcommand, Debug)]
pub enum SnapshotsAction {
    /// Delete a db snapshot (refused while echo DBs made from it exist).
    #[command(after_help = "Example:\n  flex snapshots rm 3f2a… --wait")]
    Rm {
        id: String,
        #[command(flatten)]
        mutation: MutationArgs,
    },
}

#[derive(Args, Debug)]
pub struct CloneArgs {
    /// The host the database lives on.
    #[arg(long)]
    pub source: String,
    /// The database's id or name.
    #[arg(long, value_name = "ID_OR_NAME")]
    pub db: String,
    /// Destination host and the new database's name (repeatable).
    #[arg(long = "to", required = true, value_name = "HOST:NAME")]
    pub destinations: Vec<String>,
    /// Clone from this existing db snapshot instead of taking a new one.
    #[arg(long)]
    pub snapshot: Option<String>,
    /// State the clones are attached in.
    #[arg(long, value_enum)]
    pub target_state: Option<TargetState>,
    /// The clones are deleted this long after they are made (30m, 2h, 7d …).
    #[arg(long, value_parser = parse_ttl)]
    pub ttl: Option<u64>,
    /// Refuse every delete and refresh of the clones until unprotected.
    #[arg(long)]
    pub protect: bool,
    #[command(flatten)]
    pub mutation: MutationArgs,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum TargetState {
    Online,
    Recovery,
}

#[derive(Args, Debug)]
pub struct RefreshArgs {
    /// The host of the echo DBs.
    #[arg(long)]
    pub host: String,
    /// An echo DB's name (repeatable).
    #[arg(long = "name", required = true)]
    pub names: Vec<String>,
    /// The db snapshot to refresh them from.
    #[arg(long)]
    pub snapshot: String,
    /// State the refreshed databases are attached in.
    #[arg(long, value_enum)]
    pub target_state: Option<TargetState>,
    /// A new expiry from now (without it each keeps its own).
    #[arg(long, value_parser = parse_ttl)]
    pub ttl: Option<u64>,
    #[command(flatten)]
    pub mutation: MutationArgs,
}

#[derive(Args, Debug)]
pub struct RmArgs {
    /// The host of the echo DB.
    #[arg(long)]
    pub host: String,
    /// The echo DB's id or name.
    #[arg(long, value_name = "ID_OR_NAME")]
    pub db: String,
    #[command(flatten)]
    pub mutation: MutationArgs,
}

#[derive(Args, Debug)]
pub struct TasksArgs {
    /// running, completed, failed or aborted.
    #[arg(long)]
    pub state: Option<String>,
    /// Only the tasks of this operation id (filter; not sent as hs-ref-id).
    #[arg(long = "ref-id")]
    pub ref_id: Option<String>,
}

#[derive(Args, Debug)]
pub struct TaskArgs {
    pub id: String,
}

#[derive(Args, Debug)]
pub struct WaitArgs {
    #[arg(required = true)]
    pub ids: Vec<String>,
}

#[derive(Args, Debug)]
pub struct AbortArgs {
    pub id: String,
    /// Follow the task until its steps are undone.
    #[arg(long)]
    pub wait: bool,
    /// Only check that the task is running.
    #[arg(long)]
    pub dry_run: bool,
}

/// A value as the command line spells it, which is also how the API spells it.
pub fn wire_name(value: &impl ValueEnum) -> String {
    value
        .to_possible_value()
        .expect("no value is hidden")
        .get_name()
        .to_owned()
}

/// `30m`, `2h`, `7d`, `1h 30m`, or plain seconds.
fn parse_ttl(raw: &str) -> Result<u64, String> {
    let secs = match raw.parse::<u64>() {
        Ok(secs) => secs,
        Err(_) => humantime::parse_duration(raw)
            .map_err(|err| format!("{err} (try 30m, 2h or 7d)"))?
            .as_secs(),
    };
    if secs == 0 {
        return Err("must be at least one second".into());
    }
    Ok(secs)
}

#[cfg(test)]
mod tests {
    use super::parse_ttl;

    #[test]
    fn ttls_read_as_people_write_them() {
        assert_eq!(parse_ttl("2h"), Ok(7200));
        assert_eq!(parse_ttl("1h 30m"), Ok(5400));
        assert_eq!(parse_ttl("90"), Ok(90));
        assert_eq!(parse_ttl("7d"), Ok(604_800));
        assert!(parse_ttl("0").is_err());
        assert!(parse_ttl("soon").is_err());
    }
}
