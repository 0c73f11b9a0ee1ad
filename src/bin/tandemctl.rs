//! `tandemctl`: the operator's command-line client for a running `tandemd`.

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use tandem::control::{self, client, Command, Request};

#[derive(Parser, Debug)]
#[command(name = "tandemctl", version, about = "Control a tandem cluster")]
struct Cli {
    /// tandemd's control socket.
    #[arg(long, global = true, default_value = control::DEFAULT_SOCKET)]
    socket: PathBuf,
    #[command(subcommand)]
    command: Sub,
}

#[derive(Subcommand, Debug)]
enum Sub {
    /// Show the cluster as the local node sees it.
    Status {
        /// Print the status report as JSON.
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Sub::Status { json } => status(&cli.socket, json),
    }
}

/// Exit codes: 0 ok, 1 the daemon refused or failed, 3 the daemon is unreachable.
fn status(socket: &std::path::Path, json: bool) -> ExitCode {
    let response = match client::call(socket, &Request::new(Command::Status)) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("tandemctl: {e}");
            return ExitCode::from(e.exit_code() as u8);
        }
    };
    let report = match (response.ok, response.status) {
        (true, Some(report)) => report,
        (_, _) => {
            let why = response
                .error
                .unwrap_or_else(|| "tandemd sent no status".to_string());
            eprintln!("tandemctl: {why}");
            return ExitCode::from(1);
        }
    };
    if json {
        match serde_json::to_string_pretty(&report) {
            Ok(s) => println!("{s}"),
            Err(e) => {
                eprintln!("tandemctl: cannot encode status: {e}");
                return ExitCode::from(1);
            }
        }
    } else {
        print!("{}", control::render::status_text(&report));
    }
    ExitCode::SUCCESS
}
