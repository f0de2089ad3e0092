//! The `flex` command line: parses arguments, sets up logging, and hands over to the library
//! (the server commands) or to its client (`flex::cli`, every other command).

use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};
use flex::{
    cli::{ClientArgs, ClientCommand, Exit},
    config::{DatabaseArgs, ServeArgs},
};
use tracing_subscriber::EnvFilter;

/// mimalloc, not the system allocator: glibc's took a third of the CPU of a thousand-row list
/// (`_int_malloc`, `malloc_consolidate`). The price is resident memory: with ten thousand idle
/// agents, 120 MiB against glibc's 96 (`docs/BENCHMARKS.md`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const EXIT_CODES: &str = "\
Exit codes of the client commands:
  0  done (a task waited for completed)   3  usage error
  1  the task failed                      4  refused by the server (4xx), or a dry run's issues
  2  the task was aborted                 5  server or network unreachable, or a server error

Example:
  export FLEX_URL=http://127.0.0.1:8080 FLEX_TOKEN=<token>
  flex clone --source src-01 --db sales --to dev-01:sales_ci --ttl 2h --wait";

#[derive(Parser)]
#[command(
    name = "flex",
    version,
    about = "Flex: the control plane of Silk Echo (its server, emulators, and a client of any Flex server)",
    after_help = EXIT_CODES
)]
struct Cli {
    #[command(flatten)]
    client: ClientArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    #[command(flatten)]
    Server(Box<ServerCommand>),
    #[command(flatten)]
    Client(ClientCommand),
    /// Print a shell completion script.
    #[command(after_help = "Example:\n  flex completions bash > /etc/bash_completion.d/flex")]
    Completions { shell: clap_complete::Shell },
}

#[derive(Subcommand)]
enum ServerCommand {
    /// Serve the Echo API (applies pending migrations first).
    Serve(ServeArgs),
    /// Apply pending database migrations and exit.
    Migrate(DatabaseArgs),
    /// Copy the SQLite state to a new file, consistently, while Flex serves.
    #[command(after_help = "Example:\n  flex backup --to /backups/flex-$(date +%F).db")]
    Backup(BackupArgs),
    /// Run an emulated SDP (the REST subset Flex uses, with fault injection).
    SdpEmulator(SdpEmulatorArgs),
    /// Run an emulated database host (SQL Server + agent) connected to Flex.
    AgentEmulator(AgentEmulatorArgs),
    /// Run Flex, an SDP emulator and three emulated hosts in one process.
    Demo(DemoArgs),
}

#[derive(clap::Args)]
struct BackupArgs {
    #[command(flatten)]
    database: DatabaseArgs,
    /// The file to write (must not exist).
    #[arg(long)]
    to: std::path::PathBuf,
}

#[derive(clap::Args)]
struct DemoArgs {
    /// Address Flex listens on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: std::net::SocketAddr,
    /// Address the SDP emulator listens on.
    #[arg(long, default_value = "127.0.0.1:8443")]
    sdp_listen: std::net::SocketAddr,
    /// Serve HTTPS with a self-signed certificate generated at start.
    #[arg(long)]
    tls: bool,
    /// SDP emulator user.
    #[arg(long, default_value = "admin")]
    sdp_user: String,
    /// SDP emulator password.
    #[arg(long, default_value = "admin")]
    sdp_password: String,
    /// Folder for the demo's SQLite file and certificate (default: a fresh temporary folder).
    #[arg(long)]
    data_dir: Option<std::path::PathBuf>,
    /// Admin token to use instead of a generated one.
    #[arg(long, env = "FLEX_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: Option<String>,
    /// User name accepted by the login endpoint.
    #[arg(long, env = "FLEX_ADMIN_USER", default_value = "demo")]
    admin_user: String,
    /// Password of that user (default: a generated one, printed at start).
    #[arg(long, env = "FLEX_ADMIN_PASSWORD", hide_env_values = true)]
    admin_password: Option<String>,
}

#[derive(clap::Args)]
struct AgentEmulatorArgs {
    /// Flex's base URL.
    #[arg(long, env = "FLEX_URL", default_value = "http://127.0.0.1:8080")]
    flex_url: String,
    /// The registered host this emulator is.
    #[arg(long)]
    host_id: String,
    /// The host token returned by registration.
    #[arg(long, env = "FLEX_AGENT_TOKEN", hide_env_values = true)]
    token: String,
    /// Accept Flex's certificate without verification.
    #[arg(long)]
    insecure: bool,
    #[command(flatten)]
    sdp: flex::config::SdpArgs,
    /// JSON file: {"host": {...}, "databases": [{"id", "name", "files": [{"name", "kind",
    /// "volume", "volume_group", "size_mb"}]}]}.
    #[arg(long)]
    config: Option<std::path::PathBuf>,
    /// How long a freeze holds before the host thaws by itself.
    #[arg(long, default_value_t = 10_000)]
    freeze_window_ms: u64,
    /// Fault: drop the connection before replying to the Nth new command (once).
    #[arg(long)]
    disconnect_after: Option<u64>,
    /// Fault: wait this long before every reply.
    #[arg(long, default_value_t = 0)]
    reply_delay_ms: u64,
    /// Fault: refuse commands with this name (repeatable).
    #[arg(long)]
    refuse: Vec<String>,
}

#[derive(clap::Args)]
struct SdpEmulatorArgs {
    /// Address to listen on.
    #[arg(
        long,
        env = "FLEX_SDP_EMULATOR_LISTEN",
        default_value = "127.0.0.1:8443"
    )]
    listen: std::net::SocketAddr,
    /// User clients must present (HTTP Basic).
    #[arg(long, default_value = "admin")]
    user: String,
    /// Password clients must present.
    #[arg(long, default_value = "admin")]
    password: String,
    /// Keep the array's state in this file across restarts.
    #[arg(long)]
    state: Option<std::path::PathBuf>,
    /// Milliseconds before a new thin clone is listed.
    #[arg(long, default_value_t = 0)]
    clone_delay_ms: u64,
    /// System id: the prefix of every volume serial.
    #[arg(long, default_value = "134409")]
    system_id: String,
}

fn init_logging() {
    let filter = EnvFilter::try_from_env("FLEX_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if std::env::var("FLEX_LOG_FORMAT").is_ok_and(|f| f == "json") {
        builder.json().init();
    } else {
        builder.init();
    }
}

async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                .expect("installing the SIGTERM handler");
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
    tracing::info!("shutdown requested");
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            let _ = err.print();
            // Help and version are answers; anything else is a usage error (exit 3).
            return if err.use_stderr() {
                Exit::Usage.into()
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    match cli.command {
        // The client stays silent but for its own messages: no log lines on stderr.
        Command::Client(command) => flex::cli::run(cli.client, command).await.into(),
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "flex", &mut std::io::stdout());
            ExitCode::SUCCESS
        }
        Command::Server(command) => {
            init_logging();
            serve(*command).await
        }
    }
}

async fn serve(command: ServerCommand) -> ExitCode {
    let outcome = match command {
        ServerCommand::Serve(args) => {
            let (listen, plain_http) = (args.listen, args.plain_http);
            let mut config = args.into_config();
            if let Err(err) = flex::tls::secure_by_default(&mut config, listen, plain_http) {
                tracing::error!(error = %err, "cannot make the self-signed certificate");
                return ExitCode::FAILURE;
            }
            match tokio::net::TcpListener::bind(listen).await {
                Ok(listener) => flex::run(config, listener, shutdown_signal()).await,
                Err(err) => {
                    tracing::error!(%listen, error = %err, "cannot listen");
                    return ExitCode::FAILURE;
                }
            }
        }
        ServerCommand::Migrate(args) => migrate(&args.database_url).await,
        ServerCommand::Backup(args) => backup(&args.database.database_url, &args.to).await,
        ServerCommand::SdpEmulator(args) => sdp_emulator(args).await,
        ServerCommand::AgentEmulator(args) => agent_emulator(args).await,
        ServerCommand::Demo(args) => {
            let options = flex::demo::DemoOptions {
                listen: args.listen,
                sdp_listen: args.sdp_listen,
                tls: args.tls,
                sdp_user: args.sdp_user,
                sdp_password: args.sdp_password,
                data_dir: args.data_dir,
                admin_token: args.admin_token.filter(|t| !t.is_empty()),
                admin_user: args.admin_user,
                admin_password: args.admin_password.filter(|p| !p.is_empty()),
            };
            flex::demo::run(options, shutdown_signal()).await
        }
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(error = %err, "flex failed");
            ExitCode::FAILURE
        }
    }
}

async fn migrate(database_url: &str) -> Result<(), flex::FlexError> {
    let store = flex::store::Store::connect(database_url).await?;
    store.migrate().await?;
    tracing::info!(backend = store.backend_name(), "migrations applied");
    store.close().await;
    Ok(())
}

async fn backup(database_url: &str, to: &std::path::Path) -> Result<(), flex::FlexError> {
    if to.exists() {
        return Err(flex::FlexError::Io(std::io::Error::new(
            std::io::ErrorKind::AlreadyExists,
            format!("{} exists; back up to a new file", to.display()),
        )));
    }
    if let Some(file) = flex::store::sqlite_file(database_url)
        && !file.exists()
    {
        return Err(flex::FlexError::Io(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("there is no database at {}", file.display()),
        )));
    }
    let store = flex::store::Store::connect(database_url).await?;
    let copied = store.backup_to(to).await?;
    store.close().await;
    if !copied {
        return Err(flex::FlexError::Io(std::io::Error::other(
            "flex backup copies SQLite state; on Postgres use pg_dump or a base backup",
        )));
    }
    tracing::info!(to = %to.display(), "backup written");
    Ok(())
}

async fn sdp_emulator(args: SdpEmulatorArgs) -> Result<(), flex::FlexError> {
    use flex::emulators::sdp::{SdpEmulator, SdpEmulatorConfig};
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    let config = SdpEmulatorConfig {
        user: args.user,
        password: args.password,
        state_file: args.state,
        clone_delay: std::time::Duration::from_millis(args.clone_delay_ms),
        system_id: args.system_id,
    };
    let emulator = SdpEmulator::start(config, listener).await?;
    tracing::info!(url = %emulator.url, "SDP emulator serving /api/v2 and /emulator");
    shutdown_signal().await;
    Ok(())
}

async fn agent_emulator(args: AgentEmulatorArgs) -> Result<(), flex::FlexError> {
    use flex::emulators::agent::{AgentEmulator, AgentEmulatorConfig, AgentFaults, HostConfigFile};
    let file = match &args.config {
        Some(path) => HostConfigFile::load(path)?,
        None => HostConfigFile::default(),
    };
    let mut config = AgentEmulatorConfig::new(&args.flex_url, &args.host_id, &args.token);
    config.insecure = args.insecure;
    config.sdp = args.sdp.into_config();
    config.host = file.host;
    config.databases = file.databases;
    config.freeze_window = std::time::Duration::from_millis(args.freeze_window_ms);
    config.faults = AgentFaults {
        disconnect_after_commands: args.disconnect_after,
        reply_delay: std::time::Duration::from_millis(args.reply_delay_ms),
        refuse: args.refuse,
        ..AgentFaults::default()
    };
    let emulator = AgentEmulator::start(config)
        .await
        .map_err(|err| flex::FlexError::Io(std::io::Error::other(err.to_string())))?;
    tracing::info!(host_id = %args.host_id, iqn = %emulator.iqn(), "agent emulator running");
    shutdown_signal().await;
    emulator.stop();
    Ok(())
}
