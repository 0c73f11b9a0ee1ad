//! `tandemctl`: the admin's command line for tandem.
//!
//! Thin by design: argument parsing here, the work in the library. `config check` and
//! `keygen` work offline; the commands that talk to a running `tandemd` go through the
//! control socket given by `--socket`. Exit codes: 0 done, 1 refused or failed, 2 usage
//! (clap, and `fence` without confirmation), 3 tandemd not reachable.

use clap::Parser;
use std::io::{BufRead, IsTerminal, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};
use tandem::agents::ocf;
use tandem::cli::{ConfigCommand, CtlCommand, OnOff, TandemctlArgs};
use tandem::config;
use tandem::control::{self, client, Command, Request, Response, StatusReport};

/// Why a command did not succeed, mapped to an exit code in one place.
enum Failure {
    /// Refused or failed: exit 1 with the message.
    Refused(String),
    Usage(String),
    Client(client::ClientError),
}

impl From<client::ClientError> for Failure {
    fn from(e: client::ClientError) -> Failure {
        Failure::Client(e)
    }
}

type Outcome = Result<(), Failure>;

fn main() -> ExitCode {
    let cli = TandemctlArgs::parse();
    let socket = cli.socket.as_path();
    let outcome = match &cli.command {
        CtlCommand::Config(ConfigCommand::Check { file, agents }) => {
            return config_check(file, *agents)
        }
        CtlCommand::Keygen { path, force } => return keygen(path, *force),
        CtlCommand::Status { json, watch } => {
            if *watch {
                watch_status(socket)
            } else {
                status(socket, *json)
            }
        }
        CtlCommand::Move {
            group,
            node,
            timeout,
            json,
            lifetime,
            clear: false,
        } => move_group(
            socket,
            group,
            node.as_deref(),
            (*lifetime).map(millis),
            (*timeout, *json),
        ),
        CtlCommand::Ban {
            group,
            node,
            lifetime,
        } => ban(socket, group, node, true, *lifetime),
        CtlCommand::Unban { group, node } => ban(socket, group, node, false, None),
        CtlCommand::Events { follow, json } => {
            if *follow {
                follow_events(socket, *json)
            } else {
                events(socket, *json)
            }
        }
        CtlCommand::Fence { node, yes } => fence(socket, node, *yes),
        CtlCommand::Report {
            since,
            output,
            config,
            log,
            this_node,
        } => report(
            socket,
            since.as_deref(),
            output.as_deref(),
            config.as_deref(),
            log.as_deref(),
            *this_node,
        ),
        other => match plain_command(other) {
            Some(command) => act(socket, command),
            None => Err(Failure::Usage("this command is not handled".into())),
        },
    };
    exit_code(outcome)
}

/// The commands that are one control request and print the daemon's answer.
fn plain_command(command: &CtlCommand) -> Option<Command> {
    Some(match command {
        CtlCommand::Standby { node } | CtlCommand::Online { node } => Command::Standby {
            node: node.clone(),
            on: matches!(command, CtlCommand::Standby { .. }),
        },
        CtlCommand::Move {
            group, clear: true, ..
        } => Command::ClearMove {
            group: group.clone(),
        },
        CtlCommand::Cleanup { group, resource } => Command::Cleanup {
            group: group.clone(),
            resource: resource.clone(),
        },
        CtlCommand::Maintenance { state, group } => Command::Maintenance {
            group: group.clone(),
            on: *state == OnOff::On,
        },
        CtlCommand::Reload => Command::Reload,
        _ => return None,
    })
}

/// 0 done, 1 refused, 2 usage, 3 daemon unreachable (the client error's own code).
fn exit_code(outcome: Outcome) -> ExitCode {
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Refused(why)) => {
            eprintln!("tandemctl: {why}");
            ExitCode::from(1)
        }
        Err(Failure::Usage(why)) => {
            eprintln!("tandemctl: {why}");
            ExitCode::from(2)
        }
        Err(Failure::Client(e)) => {
            eprintln!("tandemctl: {e}");
            ExitCode::from(e.exit_code() as u8)
        }
    }
}

fn config_check(file: &Path, agents: bool) -> ExitCode {
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

fn keygen(path: &Path, force: bool) -> ExitCode {
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

/// Sends one command; a refusal becomes `Failure::Refused` with the daemon's words.
fn ask(socket: &Path, command: Command) -> Result<Response, Failure> {
    let response = client::call(socket, &Request::new(command))?;
    if response.ok {
        Ok(response)
    } else {
        Err(Failure::Refused(response.error.unwrap_or_else(|| {
            "tandemd refused without saying why".into()
        })))
    }
}

fn fetch_status(socket: &Path) -> Result<StatusReport, Failure> {
    ask(socket, Command::Status)?
        .status
        .ok_or_else(|| Failure::Refused("tandemd sent no status".into()))
}

fn print_json<T: serde::Serialize>(value: &T, pretty: bool) -> Outcome {
    let text = if pretty {
        serde_json::to_string_pretty(value)
    } else {
        serde_json::to_string(value)
    };
    match text {
        Ok(s) => {
            println!("{s}");
            Ok(())
        }
        Err(e) => Err(Failure::Refused(format!("cannot encode JSON: {e}"))),
    }
}

fn status(socket: &Path, json: bool) -> Outcome {
    let report = fetch_status(socket)?;
    if json {
        print_json(&report, true)
    } else {
        print!("{}", control::render::status_text(&report));
        Ok(())
    }
}

/// Redraws the status every second until Ctrl-C (which ends the process). A daemon
/// that goes away is shown as such, and the screen recovers when it is back.
fn watch_status(socket: &Path) -> Outcome {
    let mut out = std::io::stdout();
    loop {
        let body = match fetch_status(socket) {
            Ok(report) => control::render::status_text(&report),
            Err(Failure::Client(e)) => format!("{e}\n"),
            Err(Failure::Refused(why)) | Err(Failure::Usage(why)) => {
                return Err(Failure::Refused(why))
            }
        };
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        // Home, draw, clear what the previous (longer) screen left below.
        let screen = format!(
            "\x1b[H\x1b[2J{}   (every 1s, Ctrl-C to quit)\n\n{body}",
            control::render::clock_time(now)
        );
        if out
            .write_all(screen.as_bytes())
            .and_then(|_| out.flush())
            .is_err()
        {
            return Ok(());
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// `ban GROUP NODE [--lifetime D]` (`on`) or `unban GROUP NODE`.
fn ban(socket: &Path, group: &str, node: &str, on: bool, lifetime: Option<Duration>) -> Outcome {
    act(
        socket,
        Command::Ban {
            group: group.to_string(),
            node: node.to_string(),
            on,
            lifetime_ms: lifetime.map(millis),
        },
    )
}

/// A `--lifetime` in the control protocol's milliseconds (at least 1, as clap checked).
fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}

/// A command whose answer is one line saying what happened.
fn act(socket: &Path, command: Command) -> Outcome {
    let response = ask(socket, command)?;
    if let Some(message) = response.message {
        println!("{message}");
    }
    Ok(())
}

fn owner_of(report: &StatusReport, group: &str) -> Option<(Option<String>, String, String)> {
    report
        .view
        .groups
        .iter()
        .find(|g| g.name == group)
        .map(|g| (g.owner.clone(), g.state.clone(), g.reason.clone()))
}

/// `move GROUP [NODE]`: asks for the move, then polls until the group runs on its new
/// node, and reports how long the switchover took.
fn move_group(
    socket: &Path,
    group: &str,
    to: Option<&str>,
    lifetime_ms: Option<u64>,
    (timeout, json): (u64, bool),
) -> Outcome {
    let before = fetch_status(socket)?;
    // An unknown group is refused by the daemon, with the known names.
    let from = owner_of(&before, group).and_then(|(owner, _, _)| owner);
    if to.is_some() && from.as_deref() == to {
        let node = to.unwrap_or_default();
        println!("{group} already runs on {node}");
        return Ok(());
    }
    if let Some(node) = to.and_then(|t| before.view.nodes.iter().find(|n| n.name == t)) {
        // The daemon records a named target even when it cannot take the group now; the
        // move would then wait, and happen unannounced whenever the node becomes able.
        if node.witness {
            return Err(Failure::Refused(format!(
                "{} is a witness: it votes but never owns a group",
                node.name
            )));
        }
        if node.state == "standby" {
            return Err(Failure::Refused(format!(
                "{} is in standby: it takes no group until `tandemctl online {}`",
                node.name, node.name
            )));
        }
    }
    let started = Instant::now();
    let response = ask(
        socket,
        Command::Move {
            group: group.to_string(),
            to: to.map(str::to_string),
            lifetime_ms,
        },
    )?;
    if !json {
        if let Some(m) = &response.message {
            println!("{m}");
        }
    }
    let limit = Duration::from_secs(timeout);
    loop {
        let report = fetch_status(socket)?;
        if let Some((Some(owner), state, reason)) = owner_of(&report, group) {
            let arrived = state == "running"
                && Some(&owner) != from.as_ref()
                && to.is_none_or(|t| t == owner);
            if arrived {
                let seconds = started.elapsed().as_secs_f64();
                let from_name = from.clone().unwrap_or_else(|| "nowhere".into());
                if json {
                    return print_json(
                        &serde_json::json!({
                            "group": group, "from": from, "to": owner, "seconds": seconds
                        }),
                        false,
                    );
                }
                println!("{group} moved from {from_name} to {owner} in {seconds:.2} s");
                return Ok(());
            }
            if started.elapsed() > limit {
                return Err(Failure::Refused(format!(
                    "{group} did not finish moving within {timeout} s: it is {state} on {owner} ({reason}); the move goes on, see `tandemctl status`"
                )));
            }
        } else if started.elapsed() > limit {
            return Err(Failure::Refused(format!(
                "{group} did not finish moving within {timeout} s: it has no owner now; see `tandemctl status`"
            )));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn events(socket: &Path, json: bool) -> Outcome {
    let list = ask(socket, Command::Events)?.events.unwrap_or_default();
    if json {
        for e in &list {
            print_json(e, false)?;
        }
    } else {
        print!("{}", control::render::events_text(&list));
    }
    Ok(())
}

/// `tandemctl report`: gathers (never failing on a missing piece) and writes the archive.
fn report(
    socket: &Path,
    since: Option<&str>,
    output: Option<&Path>,
    config_path: Option<&Path>,
    log: Option<&Path>,
    this_node: bool,
) -> Outcome {
    use control::report as rep;
    let now = rep::unix_now();
    let since = match since {
        Some(t) => rep::parse_since(t, now).map_err(Failure::Usage)?,
        None => now.saturating_sub(rep::DEFAULT_SINCE.as_secs()),
    };
    let daemon = match client::call(socket, &Request::new(Command::Report)) {
        Ok(Response {
            ok: true,
            report: Some(bundle),
            ..
        }) => Ok(*bundle),
        Ok(r) => Err(r.error.unwrap_or_else(|| "no report in the answer".into())),
        Err(e) => Err(e.to_string()),
    };
    let node = match &daemon {
        Ok(b) => b.status.view.node.clone(),
        Err(_) => nix::unistd::gethostname()
            .map(|h| h.to_string_lossy().into_owned())
            .unwrap_or_else(|_| "unknown".into()),
    };
    // The file named, else the one the daemon runs from, else the packaged path.
    let daemons_file = daemon.as_ref().ok().and_then(|b| b.config_path.as_deref());
    let config_path = config_path
        .map(Path::to_path_buf)
        .or_else(|| daemons_file.map(Into::into))
        .unwrap_or_else(|| config::DEFAULT_CONFIG_PATH.into());
    let local_config = daemon
        .is_err()
        .then(|| config::redact::redact_file(&config_path));
    // The daemon's own unit (an instance `tandem@X`), else the packaged one.
    let unit = daemon
        .as_ref()
        .ok()
        .and_then(|b| b.unit.clone())
        .unwrap_or_else(|| rep::UNIT.into());
    let gathered = rep::Gathered {
        node,
        since,
        daemon,
        local_config,
        journal: rep::journal(&unit, since),
        unit,
        log: log.map(|p| (p.display().to_string(), rep::log_file(p))),
    };
    if let Err(why) = &gathered.daemon {
        eprintln!("tandemctl: tandemd did not answer ({why}); the report has no status or events");
    }
    let dir = rep::dir_name(&gathered.node, now);
    let mut files = rep::members(&gathered);
    if !this_node {
        files.extend(other_nodes(&config_path, &gathered.node, since));
    }
    let refused = |what: String| Failure::Refused(what);
    match output {
        Some(p) if p == Path::new("-") => {
            let stdout = std::io::stdout().lock();
            rep::write_archive(stdout, &dir, &files)
                .and_then(|mut w| w.flush())
                .map_err(|e| refused(format!("cannot write the archive: {e}")))
        }
        _ => {
            let path = output
                .map(Path::to_path_buf)
                .unwrap_or_else(|| format!("{dir}.tar.gz").into());
            let file = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&path)
                .map_err(|e| refused(format!("cannot create {}: {e}", path.display())))?;
            rep::write_archive(file, &dir, &files)
                .and_then(|f| f.sync_all())
                .map_err(|e| refused(format!("cannot write {}: {e}", path.display())))?;
            println!("{}", path.display());
            Ok(())
        }
    }
}

/// The other nodes' parts of a report, through the cluster; each node that gave
/// nothing is named on stderr too, so nobody has to unpack the archive to notice.
fn other_nodes(config_path: &Path, me: &str, since: u64) -> Vec<(String, String)> {
    use control::report as rep;
    let cfg = match config::load(config_path) {
        Ok(cfg) => cfg,
        Err(e) => {
            let why = format!(
                "cannot load {} for the other nodes' addresses and the cluster key: {}",
                config_path.display(),
                e.to_string().lines().next().unwrap_or("invalid")
            );
            eprintln!("tandemctl: {why}; the report has this node only");
            return vec![("peers-unavailable.txt".into(), format!("{why}\n"))];
        }
    };
    let peers = rep::gather_peers(&cfg, me, since);
    for peer in &peers {
        if let Err(why) = &peer.archive {
            eprintln!("tandemctl: no report from {}: {why}", peer.node);
        }
    }
    rep::peer_members(&peers)
}

fn follow_events(socket: &Path, json: bool) -> Outcome {
    let mut failure = None;
    let mut out = std::io::stdout();
    client::follow(socket, |response| {
        if !response.ok {
            let why = response.error.unwrap_or_default();
            if response.events.is_none() && response.event.is_none() && why.contains("skipped") {
                eprintln!("tandemctl: {why}");
                return true;
            }
            failure = Some(Failure::Refused(why));
            return false;
        }
        let batch = response
            .events
            .unwrap_or_default()
            .into_iter()
            .chain(response.event);
        for e in batch {
            let line = if json {
                serde_json::to_string(&e).unwrap_or_default()
            } else {
                control::render::event_line(&e)
            };
            // A closed pipe (`| head`) ends the command quietly.
            if writeln!(out, "{line}").and_then(|_| out.flush()).is_err() {
                return false;
            }
        }
        true
    })?;
    match failure {
        Some(f) => Err(f),
        None => Ok(()),
    }
}

/// Asks the admin to type the node's name; anything else cancels.
fn confirm(node: &str) -> bool {
    eprint!(
        "Fencing powers {node} off (or resets it) through the fence agents; anything running there dies.\nType the node name to confirm: "
    );
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    if std::io::stdin().lock().read_line(&mut answer).is_err() {
        return false;
    }
    answer.trim() == node
}

fn fence(socket: &Path, node: &str, yes: bool) -> Outcome {
    if !yes {
        if !std::io::stdin().is_terminal() {
            return Err(Failure::Usage(format!(
                "refusing to fence {node} without confirmation: no terminal to ask on; pass --yes"
            )));
        }
        if !confirm(node) {
            return Err(Failure::Refused(format!(
                "not fencing {node}: not confirmed"
            )));
        }
    }
    act(
        socket,
        Command::Fence {
            node: node.to_string(),
        },
    )
}
