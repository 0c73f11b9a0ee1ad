//! `tandemctl`: the admin's command line for tandem.
//!
//! Thin by design: argument parsing here, the work in the library. `config check` and
//! `keygen` work offline; the commands that talk to a running `tandemd` go through the
//! control socket given by `--socket`.

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use tandem::config;
use tandem::control::{self, client, Request};

#[derive(Debug, Parser)]
#[command(
    name = "tandemctl",
    version,
    about = "Control and inspect a tandem cluster"
)]
struct Cli {
    /// Control socket of the local tandemd.
    #[arg(
        long,
        global = true,
        value_name = "PATH",
        default_value = control::DEFAULT_SOCKET
    )]
    socket: PathBuf,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Work with config files.
    #[command(subcommand)]
    Config(ConfigCommand),

    /// Write a fresh cluster authentication key (mode 0600).
    Keygen {
        /// Where to write the key.
        #[arg(default_value = config::DEFAULT_AUTHKEY_PATH)]
        path: PathBuf,
        /// Replace an existing key file.
        #[arg(long)]
        force: bool,
    },
    /// Show the cluster as the local node sees it: quorum, nodes, links, groups.
    Status {
        /// Print the status report as JSON (a stable object for scripts).
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Validate a config file (and the key files it names); print a summary or every
    /// error, one per line.
    Check {
        /// The config file, e.g. /etc/tandem/tandem.yaml.
        file: PathBuf,
    },
}

fn config_check(file: &std::path::Path) -> ExitCode {
    match config::load(file) {
        Ok(cfg) => {
            print!("{}", cfg.summary());
            ExitCode::SUCCESS
        }
        Err(errors) => {
            for e in errors.iter() {
                eprintln!("{e}");
            }
            ExitCode::FAILURE
        }
    }
}

fn keygen(path: &std::path::Path, force: bool) -> ExitCode {
    let result = config::try_generate_key().and_then(|key| config::write_key(path, &key, force));
    match result {
        Ok(()) => {
            println!(
                "wrote a new key to {} (mode 0600); copy it to every node",
                path.display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("tandemctl keygen: {e}");
            ExitCode::FAILURE
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match &cli.command {
        Command::Config(ConfigCommand::Check { file }) => config_check(file),
        Command::Keygen { path, force } => keygen(path, *force),
        Command::Status { json } => status(&cli.socket, *json),
    }
}

/// Exit codes: 0 ok, 1 the daemon refused or failed, 3 the daemon is unreachable.
fn status(socket: &std::path::Path, json: bool) -> ExitCode {
    let response = match client::call(socket, &Request::new(control::Command::Status)) {
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
