//! `tandemd`: the tandem cluster daemon.

use anyhow::Context;
use clap::Parser;
use std::process::ExitCode;
use tandem::cli::TandemdArgs;

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("TANDEM_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

fn node_name(arg: Option<String>) -> anyhow::Result<String> {
    match arg {
        Some(n) => Ok(n),
        None => nix::unistd::gethostname()
            .context("cannot read the host name; pass --node NAME")?
            .into_string()
            .map_err(|_| anyhow::anyhow!("the host name is not UTF-8; pass --node NAME")),
    }
}

fn main() -> ExitCode {
    let args = TandemdArgs::parse();
    init_logging();
    let node = match node_name(args.node.clone()) {
        Ok(n) => n,
        Err(e) => {
            eprintln!("tandemd: {e:#}");
            return ExitCode::from(1);
        }
    };
    let settings =
        match tandem::daemon::settings::load(&args.config, &node, args.socket, args.state_dir) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("tandemd: {e}");
                return ExitCode::from(1);
            }
        };
    match tandem::daemon::run(settings) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("tandemd: {e}");
            ExitCode::from(1)
        }
    }
}
