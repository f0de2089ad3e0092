//! `flex` as a client of any Flex server: the commands people and pipelines run instead of
//! hand-written curl, JSON parsing and polling loops. Only the public API is used, so what
//! the CLI can do, any client can.
//!
//! Exit codes are part of the contract (pipelines branch on them): see [`Exit`].

mod api;
mod args;
mod commands;
mod credentials;
mod follow;
mod output;
mod resolve;

use std::process::ExitCode;

pub use api::CliError;
pub use args::{ClientArgs, ClientCommand, OutputFormat};

/// How a client command ended, as the process's exit code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Exit {
    /// The command succeeded; a task it waited for completed.
    Completed = 0,
    /// A task it waited for failed.
    Failed = 1,
    /// A task it waited for was aborted.
    Aborted = 2,
    /// The command line was wrong (before anything was sent, or a name that is ambiguous).
    Usage = 3,
    /// The server refused the request (4xx), or a dry run found issues.
    Refused = 4,
    /// The server could not be reached, or answered with a server error (5xx).
    Unreachable = 5,
}

impl From<Exit> for ExitCode {
    fn from(exit: Exit) -> ExitCode {
        ExitCode::from(exit as u8)
    }
}

/// Runs one client command against the server `args` name; messages go to stderr, results to
/// stdout.
pub async fn run(args: ClientArgs, command: ClientCommand) -> Exit {
    match commands::run(args, command).await {
        Ok(exit) => exit,
        Err(err) => {
            eprintln!("{err}");
            err.exit()
        }
    }
}
