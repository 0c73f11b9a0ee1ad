//! The guard's loop: start the worker, learn what it may run, and take everything down
//! when the worker dies or lets a lease run out unrenewed.
//!
//! One thread, one `poll` over three descriptors (the worker's records, its pidfd,
//! a signalfd), a timeout at the next moment it may have to act. Everything it needs
//! when it acts (netlink socket, table, watchdog, argument vectors) exists before the
//! first worker starts; memory is locked and it runs SCHED_FIFO above the heartbeat
//! thread, with `oom_score_adj` -1000, so neither the OOM killer nor a busy worker can
//! take it out before it has done its job.

use super::leases::LeasePage;
use super::netlink::Rtnl;
use super::process::{self, Ended};
use super::record::{Record, RECORD_LEN};
use super::table::Table;
use super::takedown::{Outcome, TakeDown};
use super::watchdog::Watchdog;
use crate::config::SelfFence;
use nix::sys::signal::{kill, SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::unistd::Pid;
use std::ffi::OsString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::time::Duration;

/// Real-time priority of the guard: above the heartbeat thread (50), below the
/// kernel's own watchdog threads (99).
pub const GUARD_RT_PRIORITY: i32 = 60;
/// Restarts of the worker allowed within [`RESTART_WINDOW`] before the guard gives up
/// and exits (systemd's own restart limits take over from there).
const RESTART_BURST: usize = 5;
const RESTART_WINDOW: Duration = Duration::from_secs(600);

/// What the guard needs to know, resolved from the config before it starts.
#[derive(Clone, Debug)]
pub struct GuardSettings {
    /// How long before a lease ends the guard acts if the worker has not renewed it.
    pub lead: Duration,
    pub self_fence: SelfFence,
    pub watchdog: Option<(PathBuf, Duration)>,
    /// The worker's command line (the guard's own arguments, without the program).
    pub worker_args: Vec<OsString>,
    /// Pause before a worker that was taken down is started again.
    pub restart_delay: Duration,
}

/// How one worker run ended.
enum RunEnd {
    /// The worker exited after a shutdown was asked for, nothing left exposed.
    Stopped(Ended),
    /// The guard took things down.
    TookDown(Outcome),
}

fn log(msg: std::fmt::Arguments<'_>) {
    super::log::line("WARN", msg);
}

fn boottime_ns() -> u64 {
    crate::daemon::clock::now().as_nanos()
}

/// Runs the guard until the service stops; returns the process exit code.
pub fn run(settings: GuardSettings) -> i32 {
    match Guard::new(settings) {
        Ok(mut g) => g.serve(),
        Err(e) => {
            log(format_args!("cannot start: {e}"));
            1
        }
    }
}

struct Guard {
    settings: GuardSettings,
    table: Table,
    records: OwnedFd,
    worker_end: OwnedFd,
    leases: LeasePage,
    signals: SignalFd,
    takedown: TakeDown,
    watchdog: Option<Watchdog>,
    last_feed: u64,
    systemd_period: Option<Duration>,
    last_systemd: u64,
    restarts: [u64; RESTART_BURST],
    stopping: bool,
    /// The current worker said it is up. One that dies before that failed to start
    /// (a port in use, a state directory it cannot write): not restarted in a loop.
    worker_ready: bool,
}

fn seqpacket_pair() -> std::io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as RawFd; 2];
    // SAFETY: socketpair writes two descriptors into the array we pass.
    let rc = unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: both descriptors are fresh and ours.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Best effort: everything that keeps the guard running when the machine is busy.
fn harden() {
    // The unit sets OOMScoreAdjust=-1000 already; lowering it here needs
    // CAP_SYS_RESOURCE, which a container may not grant.
    let current = std::fs::read_to_string("/proc/self/oom_score_adj").unwrap_or_default();
    if current.trim() != "-1000" {
        if let Err(e) = std::fs::write("/proc/self/oom_score_adj", "-1000") {
            log(format_args!(
                "cannot set oom_score_adj -1000 ({e}); the OOM killer could pick the guard (set OOMScoreAdjust=-1000)"
            ));
        }
    }
    let param = libc::sched_param {
        sched_priority: GUARD_RT_PRIORITY,
    };
    // SAFETY: plain syscalls on this process with valid arguments.
    unsafe {
        if libc::sched_setscheduler(0, libc::SCHED_FIFO | libc::SCHED_RESET_ON_FORK, &param) != 0 {
            log(format_args!(
                "cannot run SCHED_FIFO {GUARD_RT_PRIORITY}: {}",
                std::io::Error::last_os_error()
            ));
        }
        // Wake at the deadline, not up to 50 µs later.
        libc::prctl(libc::PR_SET_TIMERSLACK, 1, 0, 0, 0);
        // Lock what is touched (not the whole 6 MiB binary: that would triple the
        // guard's memory); `warm_up` has touched the path that acts.
        if libc::mlockall(libc::MCL_CURRENT | libc::MCL_FUTURE | libc::MCL_ONFAULT) != 0 {
            log(format_args!(
                "mlockall failed: {}",
                std::io::Error::last_os_error()
            ));
        }
    }
}

impl Guard {
    fn new(settings: GuardSettings) -> std::io::Result<Guard> {
        let (records, worker_end) = seqpacket_pair()?;
        let leases = LeasePage::create()?;
        let mut mask = SigSet::empty();
        for s in [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP] {
            mask.add(s);
        }
        mask.thread_block()?;
        let signals = SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)?;
        let rtnl = Rtnl::open()
            .map_err(|e| {
                log(format_args!(
                    "no netlink socket ({e}): addresses cannot be removed by the guard"
                ))
            })
            .ok();
        let watchdog = match &settings.watchdog {
            Some((device, timeout)) => Some(Watchdog::open(device, *timeout).map_err(|e| {
                std::io::Error::new(e.kind(), format!("watchdog {}: {e}", device.display()))
            })?),
            None => None,
        };
        let takedown = TakeDown {
            rtnl,
            self_fence: settings.self_fence.clone(),
            program: c"/proc/self/exe".to_owned(),
            worker_args: settings.worker_args.clone(),
        };
        let guard = Guard {
            table: Table::new(),
            records,
            worker_end,
            leases,
            signals,
            takedown,
            watchdog,
            last_feed: 0,
            systemd_period: crate::daemon::notify::watchdog_period(),
            last_systemd: 0,
            restarts: [0; RESTART_BURST],
            stopping: false,
            worker_ready: false,
            settings,
        };
        let mut guard = guard;
        guard.warm_up();
        harden();
        Ok(guard)
    }

    /// Runs the take-down path once on an empty table, so its code and stack pages are
    /// resident (and then locked) before the guard may need them under memory pressure.
    fn warm_up(&mut self) {
        let outcome = self.takedown.run(&self.table, boottime_ns(), None);
        debug_assert!(outcome.clean());
        let _ = Record::decode(&[0u8; RECORD_LEN]);
        let _ = self.table.act_at(0, |slot| self.leases.load(slot));
    }

    fn serve(&mut self) -> i32 {
        loop {
            let worker = match self.spawn_worker() {
                Ok(pid) => pid,
                Err(e) => {
                    log(format_args!("cannot start the worker: {e}"));
                    return self.exit(1, true);
                }
            };
            match self.supervise(worker) {
                RunEnd::Stopped(ended) => {
                    log(format_args!(
                        "worker {worker} ended ({ended}); nothing left to guard"
                    ));
                    let code = if self.stopping { 0 } else { exit_code(ended) };
                    return self.exit(code, true);
                }
                RunEnd::TookDown(outcome) if !outcome.clean() => {
                    log(format_args!("could not prove everything stopped ({outcome}); exiting without disarming the watchdog"));
                    return self.exit(1, false);
                }
                RunEnd::TookDown(_) if self.stopping => return self.exit(0, true),
                RunEnd::TookDown(_) => {
                    if !self.may_restart() {
                        log(format_args!(
                            "worker taken down {RESTART_BURST} times within {} s: giving up",
                            RESTART_WINDOW.as_secs()
                        ));
                        return self.exit(1, true);
                    }
                    if !self.pause(self.settings.restart_delay) {
                        return self.exit(0, true);
                    }
                    log(format_args!(
                        "starting a new worker (it joins with a new incarnation)"
                    ));
                }
            }
        }
    }

    /// Leaves with `code`. `disarm`: nothing of ours can still run, so the watchdog
    /// device is closed with the magic `V` instead of being left to reset the machine.
    fn exit(&mut self, code: i32, disarm: bool) -> i32 {
        if let Some(w) = self.watchdog.take() {
            if disarm {
                w.close_cleanly();
            }
            // Otherwise closed without `V`: the device resets the machine.
        }
        code
    }

    /// Records this restart; false when the burst is used up.
    fn may_restart(&mut self) -> bool {
        let now = boottime_ns();
        let window = RESTART_WINDOW.as_nanos() as u64;
        let oldest = self
            .restarts
            .iter_mut()
            .min_by_key(|t| **t)
            .expect("non-empty");
        if *oldest != 0 && now.saturating_sub(*oldest) < window {
            return false;
        }
        *oldest = now;
        true
    }

    /// Sleeps `d` while feeding the watchdog; false if a stop signal came meanwhile.
    fn pause(&mut self, d: Duration) -> bool {
        let end = boottime_ns() + d.as_nanos() as u64;
        while boottime_ns() < end {
            self.feed();
            let mut pfd = libc::pollfd {
                fd: self.signals.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd.
            unsafe { libc::poll(&mut pfd, 1, 50) };
            while let Ok(Some(info)) = self.signals.read_signal() {
                if info.ssi_signo == Signal::SIGTERM as u32
                    || info.ssi_signo == Signal::SIGINT as u32
                {
                    self.stopping = true;
                    return false;
                }
            }
        }
        true
    }

    fn spawn_worker(&mut self) -> std::io::Result<Pid> {
        let fd = self.worker_end.as_raw_fd();
        let page = self.leases.raw_fd();
        // A renewal left by the previous worker must not extend the next one's lease.
        self.leases.clear();
        let mut cmd = std::process::Command::new("/proc/self/exe");
        cmd.args(&self.settings.worker_args)
            .arg("--guard-fd")
            .arg(fd.to_string())
            .arg("--guard-leases")
            .arg(page.to_string())
            // systemd talks to the main PID only: the guard relays readiness and feeds
            // its watchdog.
            .env_remove("NOTIFY_SOCKET")
            .env_remove("WATCHDOG_USEC")
            .env_remove("WATCHDOG_PID");
        // SAFETY: runs in the forked child of a single-threaded process; only
        // async-signal-safe calls plus one small write.
        unsafe {
            cmd.pre_exec(move || {
                for inherited in [fd, page] {
                    if libc::fcntl(inherited, libc::F_SETFD, 0) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                // The OOM killer must pick the worker, never the guard.
                let _ = std::fs::write("/proc/self/oom_score_adj", "0");
                let _ = nix::sys::signal::sigprocmask(
                    nix::sys::signal::SigmaskHow::SIG_SETMASK,
                    Some(&SigSet::empty()),
                    None,
                );
                Ok(())
            });
        }
        let child = cmd.spawn()?;
        self.table.forget_vips();
        self.worker_ready = false;
        let pid = Pid::from_raw(child.id() as i32);
        log(format_args!("worker {pid} started; guarding its leases"));
        Ok(pid)
    }

    fn supervise(&mut self, worker: Pid) -> RunEnd {
        let pidfd = match process::pidfd_open(worker) {
            Ok(fd) => fd,
            Err(e) => {
                log(format_args!(
                    "pidfd_open({worker}): {e}; killing the worker"
                ));
                let _ = kill(worker, Signal::SIGKILL);
                process::reap(worker);
                let outcome = self.take_down(boottime_ns(), "after its last threads");
                self.table.clear_exposure();
                return RunEnd::TookDown(outcome);
            }
        };
        let lead = self.settings.lead.as_nanos() as u64;
        loop {
            let now = boottime_ns();
            let act_at = self.table.act_at(lead, |slot| self.leases.load(slot));
            if let Some(at) = act_at.filter(|at| now >= *at) {
                return RunEnd::TookDown(self.lease_running_out(worker, now, at + lead));
            }
            let mut fds = [
                pollfd(self.records.as_raw_fd()),
                pollfd(pidfd.as_raw_fd()),
                pollfd(self.signals.as_raw_fd()),
            ];
            let timeout = self.poll_timeout(now, lead);
            // SAFETY: three valid pollfds.
            unsafe { libc::poll(fds.as_mut_ptr(), 3, timeout) };
            if fds[0].revents != 0 {
                self.drain_records();
            }
            if fds[2].revents != 0 {
                self.forward_signals(worker);
            }
            if fds[1].revents != 0 {
                return self.worker_exited(worker);
            }
            self.feed();
        }
    }

    /// The pidfd says the worker is exiting. Its last threads may take a while to go (a
    /// killed process with a large locked address space was seen to take a second), so
    /// the whole take-down runs at once, before it is reaped: addresses, process groups
    /// and the agents' stops, bounded by the lease — waiting for the reap first could
    /// spend the lease and turn a clean stop into a self-fence. No thread of a dying
    /// process returns to user space, so it starts nothing new; but a syscall still in
    /// flight in one (an address being added) may complete meanwhile, so the fast part
    /// runs again after the reap.
    fn worker_exited(&mut self, worker: Pid) -> RunEnd {
        // Records sent right before dying are already queued: read them first.
        self.drain_records();
        let early = self
            .table
            .is_exposed()
            .then(|| self.take_down(boottime_ns(), "which is exiting"));
        let ended = process::reap(worker);
        let nothing_to_restart = self.stopping || ended.success() || !self.worker_ready;
        let Some(outcome) = early else {
            if nothing_to_restart {
                return RunEnd::Stopped(ended);
            }
            log(format_args!(
                "worker {worker} died ({ended}): nothing was exposed"
            ));
            return RunEnd::TookDown(Outcome::default());
        };
        let again = self.takedown.remove_and_kill(&self.table);
        self.table.clear_exposure();
        log(format_args!(
            "worker {worker} died ({ended}); after its last threads: {again}"
        ));
        RunEnd::TookDown(outcome)
    }

    /// The worker let a lease come within `lead` of its end without renewing it: it
    /// is stopped, hung or wedged. Kill it (SIGKILL works on a stopped process too).
    fn lease_running_out(&mut self, worker: Pid, now: u64, until: u64) -> Outcome {
        let group = self
            .table
            .earliest_lease_end(|slot| self.leases.load(slot))
            .map(|(_, g)| g)
            .unwrap_or_default();
        log(format_args!(
            "lease of group {group:08x} ends in {} µs and worker {worker} has not renewed it (stopped, hung or wedged): killing it",
            until.saturating_sub(now) / 1000
        ));
        let _ = kill(worker, Signal::SIGKILL);
        // At once, as for a worker that died (see `worker_exited`): the lease is nearly
        // spent, and a killed process may take a second to be reaped.
        let outcome = self.take_down(now, "of the killed worker");
        process::reap(worker);
        // The fast part again once no thread of it can complete a syscall.
        let again = self.takedown.remove_and_kill(&self.table);
        self.table.clear_exposure();
        log(format_args!(
            "worker {worker} reaped; after its last threads: {again}"
        ));
        outcome
    }

    /// Takes down every exposed group (`when` says at which point, for the log), and
    /// keeps the table: the caller clears it once the worker is gone for good.
    fn take_down(&mut self, now: u64, when: &str) -> Outcome {
        let stop_by = self
            .table
            .earliest_lease_end(|slot| self.leases.load(slot))
            .map(|(until, _)| until);
        let outcome = self.takedown.run(&self.table, now, stop_by);
        super::log::event(
            "WARN",
            super::log::KIND_TOOK_DOWN,
            format_args!(
                "{} {} group(s) {when} in {} µs: {outcome}",
                super::log::TOOK_DOWN,
                self.table.exposed().len(),
                boottime_ns().saturating_sub(now) / 1000
            ),
        );
        // `systemctl status` shows it under the unit until the next worker is up.
        crate::daemon::notify::status(&format!(
            "lease guard took down what its worker ran: {outcome}"
        ));
        outcome
    }

    fn poll_timeout(&self, now: u64, lead: u64) -> i32 {
        let mut ms: u64 = 1000;
        if let Some(at) = self.table.act_at(lead, |slot| self.leases.load(slot)) {
            // Round up: waking a little late is what `lead` is for; waking early
            // only costs a loop.
            ms = ms.min(at.saturating_sub(now).div_ceil(1_000_000));
        }
        if let Some(w) = &self.watchdog {
            let next = self.last_feed + w.period.as_nanos() as u64;
            ms = ms.min(next.saturating_sub(now) / 1_000_000);
        }
        if let Some(p) = self.systemd_period {
            let next = self.last_systemd + p.as_nanos() as u64;
            ms = ms.min(next.saturating_sub(now) / 1_000_000);
        }
        ms as i32
    }

    fn drain_records(&mut self) {
        let mut buf = [0u8; RECORD_LEN + 8];
        loop {
            let Some(n) = super::recv_waiting(self.records.as_raw_fd(), &mut buf) else {
                return;
            };
            match Record::decode(&buf[..n]) {
                Ok(Record::Ready) => {
                    self.worker_ready = true;
                    crate::daemon::notify::ready();
                }
                Ok(r) => self.table.apply(r),
                Err(e) => log(format_args!("bad record from the worker: {e}")),
            }
        }
    }

    fn forward_signals(&mut self, worker: Pid) {
        while let Ok(Some(info)) = self.signals.read_signal() {
            let signo = info.ssi_signo as i32;
            if signo == Signal::SIGHUP as i32 {
                let _ = kill(worker, Signal::SIGHUP);
            } else if !self.stopping {
                // SIGTERM or SIGINT: the worker hands every group over, then exits.
                self.stopping = true;
                crate::daemon::notify::stopping();
                log(format_args!(
                    "stop requested: asking worker {worker} to hand its groups over"
                ));
                let _ = kill(worker, Signal::SIGTERM);
            }
        }
    }

    /// Feeds the watchdog device and systemd's watchdog when they are due.
    fn feed(&mut self) {
        let now = boottime_ns();
        if let Some(w) = &mut self.watchdog {
            if now >= self.last_feed + w.period.as_nanos() as u64 {
                w.feed();
                self.last_feed = now;
            }
        }
        if let Some(p) = self.systemd_period {
            if now >= self.last_systemd + p.as_nanos() as u64 {
                crate::daemon::notify::watchdog();
                self.last_systemd = now;
            }
        }
    }
}

fn pollfd(fd: RawFd) -> libc::pollfd {
    libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    }
}

fn exit_code(ended: Ended) -> i32 {
    match ended {
        Ended::Exited(c) => c,
        _ => 1,
    }
}
