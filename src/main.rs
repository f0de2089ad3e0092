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
