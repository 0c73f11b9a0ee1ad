//! `tandemd`: the tandem cluster daemon.

use anyhow::Context;
use clap::Parser;
use std::process::ExitCode;
use tandem::cli::{LogFormat, TandemdArgs};
use tandem::daemon::log_queue::LogQueue;
use tracing_subscriber::fmt::writer::BoxMakeWriter;

/// The worker's `tracing` lines and the guard's own lines, in one format. JSON lines
/// carry each event's fields at the top level (`flatten_event`), so a reader (the lab)
/// decides on `kind`, `group`, ... and never on the message. A worker's lines go out
/// through a queue and a thread of their own (`daemon::log_queue`): a slow stderr must
/// never stop the heartbeat thread. The guard writes its own (it forks, so it stays
/// single-threaded).
fn init_logging(format: LogFormat, queued: bool) -> Option<LogQueue> {
    let filter = tracing_subscriber::EnvFilter::try_from_env("TANDEM_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let queue = queued.then(|| LogQueue::start(std::io::stderr())).flatten();
    let writer = match &queue {
        Some(q) => BoxMakeWriter::new(q.clone()),
        None => BoxMakeWriter::new(std::io::stderr),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .init(),
    }
    tandem::guard::log::use_json(format == LogFormat::Json);
    queue
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
    let runs_a_worker = args.emergency_stop.is_none() && (args.guard_fd.is_some() || args.no_guard);
    let log = init_logging(args.log_format(), runs_a_worker);
    let code = run(args);
    if let Some(log) = log {
        log.flush(std::time::Duration::from_secs(1));
    }
    code
}

fn run(args: TandemdArgs) -> ExitCode {
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
    if let Some(ids) = &args.emergency_stop {
        let stopped = tandem::daemon::emergency::stop_groups(&settings.config, ids);
        return ExitCode::from(if stopped { 0 } else { 1 });
    }
    if let Some(fd) = args.guard_fd {
        // `ps`, `top` and the OOM killer's report tell the two processes apart.
        // SAFETY: PR_SET_NAME copies at most 16 bytes from a NUL-terminated string.
        unsafe { libc::prctl(libc::PR_SET_NAME, c"tandemd-worker".as_ptr()) };
        // SAFETY: the guard passed this descriptor to us alone (see guard::supervisor).
        if unsafe { tandem::guard::link::install(fd, args.guard_leases) }.is_none() {
            eprintln!("tandemd: --guard-fd given twice");
            return ExitCode::from(1);
        }
        return run_worker(settings);
    }
    if args.no_guard {
        tracing::warn!("running without the lease guard (--no-guard): if this process dies or stops, its resources stay up");
        return run_worker(settings);
    }
    let guard = tandem::guard::GuardSettings {
        lead: settings.spec.timing.guard_lead(),
        self_fence: settings.config.fencing.self_fence.clone(),
        watchdog: settings
            .config
            .watchdog
            .as_ref()
            .map(|w| (w.device.clone(), w.timeout)),
        worker_args: std::env::args_os().skip(1).collect(),
        restart_delay: std::time::Duration::from_secs(2),
    };
    ExitCode::from(u8::try_from(tandem::guard::run(guard)).unwrap_or(1))
}

fn run_worker(settings: tandem::daemon::Settings) -> ExitCode {
    match tandem::daemon::run(settings) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("tandemd: {e}");
            ExitCode::from(1)
        }
    }
}
