//! `tandemctl`: the admin's command line for tandem.
//!
//! Thin by design: argument parsing here, the work in the library. `config check` and
//! `keygen` work offline; the commands that talk to a running `tandemd` go through the
//! control socket given by `--socket`.

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use tandem::config;

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
        default_value = "/run/tandem/tandemd.sock"
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
    // ---- LEAD: daemon subcommands go here (status, standby, online, move, cleanup,
    // ---- maintenance, events, fence); they talk to `Cli::socket`.
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
    }
}
