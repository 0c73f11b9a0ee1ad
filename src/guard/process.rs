//! Child processes of the guard without a runtime: fork, exec, wait with a deadline
//! through a pidfd. The guard is single-threaded, so the child may allocate between
//! fork and exec (no other thread can hold the allocator's lock).

use nix::sys::signal::{SigSet, SigmaskHow};
use nix::unistd::{ForkResult, Pid};
use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// How a child ended, or that it did not in time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ended {
    Exited(i32),
    Signaled(i32),
    /// Still running when the wait gave up (it was killed then).
    TimedOut,
}

impl Ended {
    pub fn success(self) -> bool {
        self == Ended::Exited(0)
    }
}

impl std::fmt::Display for Ended {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Ended::Exited(c) => write!(f, "exit status {c}"),
            Ended::Signaled(s) => write!(f, "killed by signal {s}"),
            Ended::TimedOut => write!(f, "timed out"),
        }
    }
}

/// `pidfd_open(2)`: a descriptor that becomes readable when `pid` exits.
pub fn pidfd_open(pid: Pid) -> std::io::Result<OwnedFd> {
    // SAFETY: plain syscall; the result is checked before use.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid.as_raw(), 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: a fresh descriptor we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// Everything the child needs, built after fork.
pub struct ExecPlan {
    pub program: CString,
    pub args: Vec<CString>,
    pub env: Vec<(String, String)>,
}

/// Forks a child in its own process group, with signals unblocked, the OOM score and
/// scheduling of an ordinary process, and runs `plan()` in it. Returns its pid.
pub fn spawn(plan: impl FnOnce() -> ExecPlan) -> std::io::Result<Pid> {
    // SAFETY: the guard is single-threaded, so the child is a full copy of a
    // consistent process; it only sets itself up and execs (or exits).
    match unsafe { nix::unistd::fork() } {
        Ok(ForkResult::Parent { child }) => Ok(child),
        Ok(ForkResult::Child) => {
            let _ = nix::unistd::setpgid(Pid::from_raw(0), Pid::from_raw(0));
            let _ = nix::sys::signal::sigprocmask(
                SigmaskHow::SIG_SETMASK,
                Some(&SigSet::empty()),
                None,
            );
            let _ = std::fs::write("/proc/self/oom_score_adj", "0");
            let plan = plan();
            for (k, v) in &plan.env {
                // SAFETY: single-threaded child between fork and exec.
                unsafe { std::env::set_var(k, v) };
            }
            let _ = nix::unistd::execv(&plan.program, &plan.args);
            // SAFETY: _exit is always safe; no destructors may run in a forked child.
            unsafe { libc::_exit(127) }
        }
        Err(e) => Err(e.into()),
    }
}

/// Waits for `pid` up to `timeout_ms` (negative: forever); past that kills its process
/// group and reaps it.
pub fn wait(pid: Pid, timeout_ms: i64) -> Ended {
    if let Ok(fd) = pidfd_open(pid) {
        let mut pfd = libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = if timeout_ms < 0 {
            -1
        } else {
            i32::try_from(timeout_ms).unwrap_or(i32::MAX)
        };
        // SAFETY: one valid pollfd.
        let ready = unsafe { libc::poll(&mut pfd, 1, ms) };
        if ready == 0 {
            let _ = nix::sys::signal::killpg(pid, nix::sys::signal::Signal::SIGKILL);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
            let _ = reap(pid);
            return Ended::TimedOut;
        }
    }
    reap(pid)
}

/// Blocks until `pid` is reaped.
pub fn reap(pid: Pid) -> Ended {
    use nix::sys::wait::{waitpid, WaitStatus};
    loop {
        match waitpid(pid, None) {
            Ok(WaitStatus::Exited(_, c)) => return Ended::Exited(c),
            Ok(WaitStatus::Signaled(_, s, _)) => return Ended::Signaled(s as i32),
            Ok(_) => continue,
            Err(nix::errno::Errno::EINTR) => continue,
            // ECHILD: reaped already; nothing more to learn.
            Err(_) => return Ended::Exited(-1),
        }
    }
}
