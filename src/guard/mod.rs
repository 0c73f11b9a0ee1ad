//! The lease guard: the part of `tandemd` that does not share the worker's fate.
//!
//! `tandemd` runs as two processes. The *guard* is the service's main PID: one small
//! single-threaded loop, memory locked, SCHED_FIFO above the heartbeat thread, immune
//! to the OOM killer. It starts the *worker* (the same binary with `--guard-fd`: the
//! core, heartbeats, agents, control socket) and learns from it which groups may run
//! here, until when (renewals through a shared [`leases::LeasePage`], everything else as
//! records on a socket), their addresses and the process groups of their resources. When the worker dies, or lets a lease come within
//! `Timing::guard_lead` of its end without renewing it (stopped, hung, wedged), the
//! guard kills it, removes the addresses by netlink, kills the process groups, runs the
//! agents' stops where only they can stop a resource, and self-fences when nothing of
//! that can be proven before the lease ends; then it starts a new worker. A watchdog
//! device, when configured, is fed by the guard alone and covers the guard's own death
//! and kernel hangs. docs/design.md argues the process model.

pub mod leases;
pub mod link;
pub mod log;
pub mod netlink;
pub mod process;
pub mod record;
pub mod supervisor;
pub mod table;
pub mod takedown;
pub mod watchdog;

pub use record::{Exposure, Record, VipEntry};
pub use supervisor::{run, GuardSettings};

/// Receives one datagram waiting on `fd` into `buf`, without blocking: its length, or
/// None when nothing is waiting (or the receive failed; the caller's loop tries again).
/// Into the caller's buffer: the guard must not allocate when it acts.
fn recv_waiting(fd: std::os::fd::RawFd, buf: &mut [u8]) -> Option<usize> {
    // SAFETY: buf is valid for its length.
    let n = unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), libc::MSG_DONTWAIT) };
    usize::try_from(n).ok().filter(|&n| n > 0)
}
