//! The `flex` command line: parses arguments, sets up logging, and hands over to the library.

#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use flex::config::{DatabaseArgs, ServeArgs};
use tracing_subscriber::EnvFilter;

#[derive(Parser)]
#[command(name = "flex", version, about = "Flex: the control plane of Silk Echo")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the Echo API (applies pending migrations first).
    Serve(ServeArgs),
    /// Apply pending database migrations and exit.
    Migrate(DatabaseArgs),
    /// Run an emulated SDP (the REST subset Flex uses, with fault injection).
    SdpEmulator(SdpEmulatorArgs),
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
    let cli = Cli::parse();
    init_logging();
    let outcome = match cli.command {
        Command::Serve(args) => {
            let listen = args.listen;
            match tokio::net::TcpListener::bind(listen).await {
                Ok(listener) => flex::run(args.into_config(), listener, shutdown_signal()).await,
                Err(err) => {
                    tracing::error!(%listen, error = %err, "cannot listen");
                    return ExitCode::FAILURE;
                }
            }
        }
        Command::Migrate(args) => migrate(&args.database_url).await,
        Command::SdpEmulator(args) => sdp_emulator(args).await,
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
