//! Health checks that steer ownership (Heartbeat's ping/ipfail, keepalived's
//! `track_script`, Pacemaker's ping agent): each check probes on its interval, turns
//! its probe results into a verdict with keepalived's `fall`/`rise` hysteresis, and
//! [`run_checks`] reports the node's combined health (every check passes) to the core
//! as `Input::Health` whenever it changes.
//!
//! Ping checks run `ping` from iputils-ping rather than using a raw ICMP socket: it
//! handles IPv4 and IPv6, identifiers, checksums and timeouts, needs no extra
//! privileges, and behaves exactly like what the admin types to test the same path.
//! Every probe runs in its own process group, killed when it outlives its timeout
//! (or when the checks are dropped), so a hung script never piles up.

use super::check_state::{CheckBoard, ProbeReport};
use crate::config::{CheckConfig, CheckProbe};
use crate::control::ProbeOutcome;
use crate::core::Input;
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio::process::Command;
use tokio::sync::mpsc::{self, UnboundedSender};
use tokio::task::JoinSet;

/// How much longer than its own `-W` a `ping` may run before it is killed.
const PING_GRACE: Duration = Duration::from_millis(500);
/// Longest reason kept from a probe's output.
const MAX_REASON: usize = 200;

/// Turns probe results into a verdict: the first result decides at once; after that a
/// passing check fails after `fall` consecutive failures and a failed one passes again
/// after `rise` consecutive successes.
#[derive(Clone, Debug)]
pub struct Hysteresis {
    fall: u32,
    rise: u32,
    verdict: Option<bool>,
    streak: u32,
}

impl Hysteresis {
    pub fn new(fall: u32, rise: u32) -> Self {
        Hysteresis {
            fall: fall.max(1),
            rise: rise.max(1),
            verdict: None,
            streak: 0,
        }
    }

    pub fn verdict(&self) -> Option<bool> {
        self.verdict
    }

    /// Records one probe result; returns the new verdict when it changed (or is the
    /// first one).
    pub fn record(&mut self, passed: bool) -> Option<bool> {
        match self.verdict {
            None => {
                self.verdict = Some(passed);
                self.streak = 0;
                return Some(passed);
            }
            Some(current) if current == passed => self.streak = 0,
            Some(_) => {
                self.streak += 1;
                let needed = if passed { self.rise } else { self.fall };
                if self.streak >= needed {
                    self.verdict = Some(passed);
                    self.streak = 0;
                    return Some(passed);
                }
            }
        }
        None
    }
}

/// Runs every check that applies to `node_name` until `tx` is closed, sending
/// `Input::Health { ok }` once every check has a verdict and again whenever the
/// combined verdict (all checks pass) changes. Returns at once when no check applies.
/// Dropping the future stops the probes and kills any that are running.
pub async fn run_checks(checks: Vec<CheckConfig>, node_name: String, tx: UnboundedSender<Input>) {
    run_checks_on(checks, node_name, tx, Arc::default()).await
}

/// [`run_checks`], recording every probe on `board` for `status` and `/metrics`.
pub async fn run_checks_on(
    checks: Vec<CheckConfig>,
    node_name: String,
    tx: UnboundedSender<Input>,
    board: Arc<CheckBoard>,
) {
    let mine: Vec<CheckConfig> = checks
        .into_iter()
        .filter(|c| c.applies_to(&node_name))
        .collect();
    if mine.is_empty() {
        return;
    }
    for check in &mine {
        board.register(check, &node_name);
    }
    let (verdict_tx, mut verdicts) = mpsc::unbounded_channel::<(usize, bool)>();
    // Dropping the set (when this future is dropped or returns) aborts every probe
    // loop, and with it any running probe's process group.
    let mut tasks = JoinSet::new();
    for (index, check) in mine.iter().cloned().enumerate() {
        let verdict_tx = verdict_tx.clone();
        let board = board.clone();
        tasks.spawn(async move {
            let mut hysteresis = Hysteresis::new(check.fall, check.rise);
            loop {
                let report = probe_report(&check).await;
                let before = hysteresis.verdict();
                let changed = hysteresis.record(report.passed());
                board.record(&check.name, &report, hysteresis.verdict(), unix_ms_now());
                if let Some(ok) = changed {
                    log_change(&check, &report, before.is_none());
                    if verdict_tx.send((index, ok)).is_err() {
                        return;
                    }
                } else if !report.passed() {
                    tracing::debug!(check = %check.name, "health check {} probe failed: {}", check.name, report.detail);
                }
                tokio::time::sleep(check.interval).await;
            }
        });
    }
    drop(verdict_tx);

    let mut state: Vec<Option<bool>> = vec![None; mine.len()];
    let mut reported: Option<bool> = None;
    loop {
        let (index, ok) = tokio::select! {
            got = verdicts.recv() => match got {
                Some(v) => v,
                None => return,
            },
            _ = tx.closed() => return,
        };
        state[index] = Some(ok);
        if state.iter().any(Option::is_none) {
            continue;
        }
        let combined = state.iter().all(|v| *v == Some(true));
        if reported == Some(combined) {
            continue;
        }
        reported = Some(combined);
        if combined {
            tracing::info!("all health checks pass: this node is eligible");
        } else {
            let failing: Vec<&str> = mine
                .iter()
                .zip(&state)
                .filter(|(_, v)| **v == Some(false))
                .map(|(c, _)| c.name.as_str())
                .collect();
            tracing::warn!(
                "health check(s) {} failing: this node is not eligible to own groups",
                failing.join(", ")
            );
        }
        if tx.send(Input::Health { ok: combined }).is_err() {
            return;
        }
    }
}

/// Wall-clock time for the probe record (the only clock `status` readers share).
fn unix_ms_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

fn log_change(check: &CheckConfig, report: &ProbeReport, first: bool) {
    let name = &check.name;
    let why = &report.detail;
    match (report.passed(), first) {
        (true, true) => tracing::info!(check = %name, "health check {name} passes"),
        (true, false) => tracing::info!(
            check = %name,
            "health check {name} passes again ({} successes in a row)",
            check.rise
        ),
        (false, true) => tracing::warn!(check = %name, "health check {name} fails: {why}"),
        (false, false) => tracing::warn!(
            check = %name,
            "health check {name} fails ({} failures in a row): {why}",
            check.fall
        ),
    }
}

/// Runs one probe of `check`: `Ok` when it passes, otherwise why not.
pub async fn probe(check: &CheckConfig) -> Result<(), String> {
    let report = probe_report(check).await;
    if report.passed() {
        Ok(())
    } else {
        Err(report.detail)
    }
}

/// Runs one probe of `check` and says how it ended, typed.
pub async fn probe_report(check: &CheckConfig) -> ProbeReport {
    let began = std::time::Instant::now();
    let mut report = match &check.probe {
        CheckProbe::Ping(targets) if targets.is_empty() => cannot_run("no ping targets".into()),
        CheckProbe::Ping(targets) => {
            // Any target answering is enough, so ping them all at once: the probe
            // takes one timeout, not one per dead target.
            let wait = format!("{:.3}", check.timeout.as_secs_f64());
            let pings = targets.iter().map(|t| {
                let target = t.to_string();
                let wait = wait.clone();
                Box::pin(async move {
                    let mut cmd = Command::new("ping");
                    cmd.args(["-c", "1", "-W", &wait, "-n", &target]);
                    let mut report = match run_limited(cmd, check.timeout + PING_GRACE).await {
                        Ok(o) => o.report(),
                        // Debian's minimal images have no ping: say which package.
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => cannot_run(format!(
                            "cannot run ping: {e} (install the iputils-ping package)"
                        )),
                        Err(e) => cannot_run(format!("cannot run ping: {e}")),
                    };
                    if report.passed() {
                        return Ok(report);
                    }
                    report.detail = format!("{target}: {}", report.detail);
                    report.output = prefixed(&target, &report.output);
                    Err(report)
                })
            });
            match futures::future::select_ok(pings).await {
                Ok((report, _rest)) => report,
                Err(last) if targets.len() == 1 => last,
                Err(mut last) => {
                    last.detail = format!("no target answered (last: {})", last.detail);
                    last
                }
            }
        }
        CheckProbe::Script(script) => {
            let mut cmd = Command::new("/bin/sh");
            cmd.args(["-c", script]);
            match run_limited(cmd, check.timeout).await {
                Ok(o) => o.report(),
                Err(e) => cannot_run(format!("cannot run /bin/sh: {e}")),
            }
        }
    };
    report.took = began.elapsed();
    report
}

fn cannot_run(detail: String) -> ProbeReport {
    ProbeReport {
        outcome: ProbeOutcome::Error,
        exit_code: None,
        signal: None,
        took: Duration::ZERO,
        output: detail.chars().take(MAX_REASON).collect(),
        detail,
    }
}

/// `target: line`, or just the target when there is no line; bounded like any output.
fn prefixed(target: &str, line: &str) -> String {
    let text = if line.is_empty() {
        target.to_string()
    } else {
        format!("{target}: {line}")
    };
    text.chars().take(MAX_REASON).collect()
}

struct Outcome {
    /// `None`: killed at the timeout.
    status: Option<ExitStatus>,
    timeout: Duration,
    /// The last non-empty line of stderr, else of stdout.
    last_line: String,
}

impl Outcome {
    fn report(self) -> ProbeReport {
        use std::os::unix::process::ExitStatusExt;
        let (outcome, exit_code, signal) = match self.status {
            None => (ProbeOutcome::TimedOut, None, None),
            Some(s) if s.success() => (ProbeOutcome::Passed, Some(0), None),
            Some(s) => (ProbeOutcome::Failed, s.code(), s.signal()),
        };
        let what = match self.status {
            None => format!("timed out after {:?} (killed)", self.timeout),
            Some(s) => match s.code() {
                Some(code) => format!("exit status {code}"),
                None => format!("{s}"),
            },
        };
        let detail = if self.last_line.is_empty() {
            what
        } else {
            format!("{what}: {}", self.last_line)
        };
        ProbeReport {
            outcome,
            exit_code,
            signal,
            took: Duration::ZERO,
            detail,
            output: self.last_line,
        }
    }
}

/// SIGKILLs a process group when dropped: covers the timeout, the probe future being
/// dropped, and children a script left behind (a check must not leave processes).
struct GroupKiller(Option<Pid>);

impl Drop for GroupKiller {
    fn drop(&mut self) {
        if let Some(pgid) = self.0 {
            // ESRCH (the group is already gone) is the normal case.
            let _ = killpg(pgid, Signal::SIGKILL);
        }
    }
}

/// Runs `cmd` in its own process group with stdin closed and output captured; the
/// group is SIGKILLed at `timeout` and in any case when the command is done.
async fn run_limited(mut cmd: Command, timeout: Duration) -> std::io::Result<Outcome> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let mut child = cmd.spawn()?;
    let killer = GroupKiller(
        child
            .id()
            .and_then(|id| i32::try_from(id).ok())
            .map(Pid::from_raw),
    );
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    let status = tokio::time::timeout(timeout, child.wait()).await;
    // Killing the group now also closes pipes held by leftover grandchildren, so the
    // reads below end.
    drop(killer);
    let status = match status {
        Ok(s) => Some(s?),
        Err(_) => {
            let _ = child.wait().await;
            None
        }
    };
    let (out, err) = tokio::join!(read_some(stdout), read_some(stderr));
    let last = |text: &str| {
        text.lines()
            .rev()
            .map(str::trim)
            .find(|l| !l.is_empty())
            .map(|l| l.chars().take(MAX_REASON).collect::<String>())
    };
    Ok(Outcome {
        status,
        timeout,
        last_line: last(&err).or_else(|| last(&out)).unwrap_or_default(),
    })
}

/// Up to 64 KiB of a pipe, as text, waiting at most a moment for EOF (a process that
/// left the group may still hold the pipe).
async fn read_some<R: tokio::io::AsyncRead + Unpin>(pipe: Option<R>) -> String {
    let Some(pipe) = pipe else {
        return String::new();
    };
    let mut buf = Vec::new();
    let mut limited = pipe.take(64 * 1024);
    let _ = tokio::time::timeout(Duration::from_millis(200), limited.read_to_end(&mut buf)).await;
    String::from_utf8_lossy(&buf).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_result_decides_then_fall_and_rise_apply() {
        let mut h = Hysteresis::new(3, 2);
        assert_eq!(h.record(true), Some(true));
        assert_eq!(h.record(false), None);
        assert_eq!(h.record(false), None);
        assert_eq!(h.record(true), None, "a success resets the failure streak");
        assert_eq!(h.record(false), None);
        assert_eq!(h.record(false), None);
        assert_eq!(h.record(false), Some(false), "third failure in a row");
        assert_eq!(h.record(false), None);
        assert_eq!(h.record(true), None);
        assert_eq!(h.record(false), None, "a failure resets the success streak");
        assert_eq!(h.record(true), None);
        assert_eq!(h.record(true), Some(true), "second success in a row");
        assert_eq!(h.verdict(), Some(true));

        let mut h = Hysteresis::new(1, 1);
        assert_eq!(h.record(false), Some(false));
        assert_eq!(h.record(true), Some(true));
        assert_eq!(h.record(false), Some(false));
    }
}
