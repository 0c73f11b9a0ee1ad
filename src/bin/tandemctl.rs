//! `tandemctl`: the admin's command line for tandem.
//!
//! Thin by design: argument parsing here, the work in the library. `config check` and
//! `keygen` work offline; the commands that talk to a running `tandemd` go through the
//! control socket given by `--socket`.

use clap::Parser;
use std::process::ExitCode;
use tandem::agents::ocf;
use tandem::cli::{ConfigCommand, CtlCommand, TandemctlArgs};
use tandem::config;
use tandem::control::{self, client, Request};

fn config_check(file: &std::path::Path, agents: bool) -> ExitCode {
    match config::load(file) {
        Ok(cfg) => {
            print!("{}", cfg.summary());
            if agents && !validate_agents(&cfg) {
                return ExitCode::FAILURE;
            }
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

/// `config check --agents`: each installed OCF agent's `validate-all` with the
/// resource's params. Agents missing here are reported, not failed: the config may be
/// checked on a machine that is not a node.
fn validate_agents(cfg: &config::Config) -> bool {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("tandemctl: cannot start a runtime for agent checks: {e}");
            return false;
        }
    };
    let launch = tandem::agents::process::Launch::default();
    let mut ok = true;
    println!();
    for g in &cfg.groups {
        for r in &g.resources {
            if !matches!(r.kind, config::ResourceKind::Ocf { .. }) {
                continue;
            }
            if !ocf::installed(r, &launch) {
                println!(
                    "agent check {}/{}: skipped (agent not installed here)",
                    g.name, r.name
                );
                continue;
            }
            match runtime.block_on(ocf::validate_with(r, &launch)) {
                Ok(()) => println!("agent check {}/{}: ok", g.name, r.name),
                Err(why) => {
                    ok = false;
                    eprintln!("agent check {}/{}: FAILED: {why}", g.name, r.name);
                }
            }
        }
    }
    ok
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
    let cli = TandemctlArgs::parse();
    match &cli.command {
        CtlCommand::Config(ConfigCommand::Check { file, agents }) => config_check(file, *agents),
        CtlCommand::Keygen { path, force } => keygen(path, *force),
        CtlCommand::Status { json } => status(&cli.socket, *json),
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
