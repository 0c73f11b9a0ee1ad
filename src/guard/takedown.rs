//! What the guard does when it must act: everything that may run here goes, in the
//! order that matters for split brain — addresses first (clients and peers reach a VIP
//! within milliseconds), then process groups, then agent stops where only an agent can
//! stop a resource, and a self-fence when even that cannot be proven in time.

use super::netlink::Rtnl;
use super::process::{self, Ended, ExecPlan};
use super::table::Table;
use crate::config::SelfFence;
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use std::ffi::{CString, OsString};
use std::os::unix::ffi::OsStringExt;

/// How long the kernel may take to answer the address deletions.
const NETLINK_WAIT_MS: i32 = 200;
/// An agent stop without a lease to bound it (a cluster that fences before takeover)
/// may take this long before the guard self-fences instead.
pub const UNBOUNDED_STOP_MS: i64 = 120_000;
/// How long a self-fence command may run.
const SELF_FENCE_COMMAND_MS: i64 = 30_000;

/// The outcome of one take-down, for the journal.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    pub vips_removed: u32,
    pub vips_absent: u32,
    pub vips_failed: u32,
    pub process_groups: u32,
    /// The agent stop child's result, when one ran.
    pub agent_stop: Option<Ended>,
    /// A self-fence was carried out (or attempted): nothing can be proven stopped.
    pub self_fenced: bool,
}

impl Outcome {
    /// Whether everything is known to be down.
    pub fn clean(&self) -> bool {
        !self.self_fenced && self.vips_failed == 0 && self.agent_stop.is_none_or(Ended::success)
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} address(es) removed, {} already gone, {} not removed; {} process group(s) killed",
            self.vips_removed, self.vips_absent, self.vips_failed, self.process_groups
        )?;
        if let Some(stop) = self.agent_stop {
            write!(f, "; agent stops: {stop}")?;
        }
        if self.self_fenced {
            write!(f, "; SELF-FENCED")?;
        }
        Ok(())
    }
}

/// How the guard runs agent stops: `tandemd` again, with the worker's arguments and
/// `--emergency-stop` (it loads the config and stops the named groups in order).
pub struct TakeDown {
    pub rtnl: Option<Rtnl>,
    pub self_fence: SelfFence,
    pub program: CString,
    pub worker_args: Vec<OsString>,
}

impl TakeDown {
    /// Takes down every exposed group of `table`. `stop_by_ns`: the earliest lease end
    /// (`CLOCK_BOOTTIME`), by which agent stops must have finished; `None`: no lease.
    pub fn run(&mut self, table: &Table, now_ns: u64, stop_by_ns: Option<u64>) -> Outcome {
        let mut out = self.remove_and_kill(table);
        if table.needs_more_than_kill() || out.vips_failed > 0 {
            let budget_ms = match stop_by_ns {
                Some(by) => (by.saturating_sub(now_ns) / 1_000_000) as i64,
                None => UNBOUNDED_STOP_MS,
            };
            let stopped = budget_ms > 0 && {
                let ended = self.agent_stop(table, budget_ms);
                out.agent_stop = Some(ended);
                ended.success()
            };
            if !stopped {
                self.fence_self(
                    "resources may still run and no stop could finish before the lease ends",
                );
                out.self_fenced = true;
            }
        }
        out
    }

    /// The fast part, which needs no child process: addresses removed, process groups
    /// killed. Safe to repeat (an address already gone is counted as such).
    pub fn remove_and_kill(&mut self, table: &Table) -> Outcome {
        let mut out = Outcome::default();
        match self.rtnl.as_mut() {
            Some(rtnl) => {
                let (removed, absent, failed) =
                    rtnl.delete_all(table.exposed_vips(), NETLINK_WAIT_MS);
                out.vips_removed = removed;
                out.vips_absent = absent;
                out.vips_failed = failed;
            }
            None => out.vips_failed = table.exposed_vips().count() as u32,
        }
        for pg in table.exposed_process_groups() {
            // ESRCH: the group is empty already, which is what we want.
            if killpg(Pid::from_raw(pg.pgid), Signal::SIGKILL).is_ok() {
                out.process_groups += 1;
            }
        }
        out
    }

    /// Runs `tandemd --emergency-stop G,G,...` for every exposed group, bounded.
    fn agent_stop(&self, table: &Table, budget_ms: i64) -> Ended {
        let program = self.program.clone();
        let args = self.worker_args.clone();
        let groups: Vec<u64> = table.exposed().iter().map(|g| g.group).collect();
        let spawned = process::spawn(move || {
            let mut argv = vec![program.clone()];
            argv.extend(
                args.into_iter()
                    .filter_map(|a| CString::new(a.into_vec()).ok()),
            );
            let list: Vec<String> = groups.iter().map(|g| format!("{g:x}")).collect();
            argv.push(c"--emergency-stop".to_owned());
            argv.extend(CString::new(list.join(",")).ok());
            ExecPlan {
                program,
                args: argv,
                env: Vec::new(),
            }
        });
        match spawned {
            Ok(pid) => process::wait(pid, budget_ms),
            Err(_) => Ended::Exited(127),
        }
    }

    /// Like the worker's self-fence: sysrq reboot or power-off (no shutdown scripts, no
    /// sync: they may be what hangs), or the configured command.
    pub fn fence_self(&self, reason: &str) {
        super::log::event(
            "ERROR",
            super::log::KIND_SELF_FENCE,
            format_args!("SELF-FENCE: {reason}"),
        );
        let letter: &[u8] = match &self.self_fence {
            SelfFence::Reboot => b"b",
            SelfFence::Poweroff => b"o",
            SelfFence::None => {
                super::log::line(
                    "ERROR",
                    format_args!("self_fence is `none`: NOT fencing (unsafe, for labs only)"),
                );
                return;
            }
            SelfFence::Command(path) => {
                let program =
                    CString::new(path.clone().into_os_string().into_vec()).unwrap_or_default();
                let reason = reason.to_string();
                let spawned = process::spawn(move || ExecPlan {
                    args: vec![program.clone()],
                    program,
                    env: vec![("TANDEM_REASON".into(), reason)],
                });
                match spawned.map(|pid| process::wait(pid, SELF_FENCE_COMMAND_MS)) {
                    Ok(e) if e.success() => super::log::line(
                        "ERROR",
                        format_args!("self-fence command {} ran", path.display()),
                    ),
                    Ok(e) => super::log::line(
                        "ERROR",
                        format_args!("self-fence command {} failed: {e}", path.display()),
                    ),
                    Err(e) => super::log::line(
                        "ERROR",
                        format_args!("cannot run self-fence command {}: {e}", path.display()),
                    ),
                }
                return;
            }
        };
        if !in_host_network_namespace() {
            // A lab node or a container: sysrq would reset the machine hosting it.
            super::log::line("ERROR", format_args!("not in the host's network namespace: refusing to reset the whole machine; configure `fencing.self_fence` as a command"));
            return;
        }
        if let Err(e) = std::fs::write("/proc/sysrq-trigger", letter) {
            super::log::line(
                "ERROR",
                format_args!("cannot write /proc/sysrq-trigger ({e}); the node is NOT fenced"),
            );
        }
    }
}

/// Whether this process shares PID 1's network namespace (a node of its own, not a
/// lab namespace or a container on a shared machine).
fn in_host_network_namespace() -> bool {
    match (
        std::fs::read_link("/proc/self/ns/net"),
        std::fs::read_link("/proc/1/ns/net"),
    ) {
        (Ok(me), Ok(init)) => me == init,
        // Unknown: behave as configured.
        _ => true,
    }
}
