//! The worker's end of the guard link: records out, and the news that the guard died.
//!
//! Installed once per process ([`install`]); agents report the process groups they
//! start through [`report_process_group`], which is a no-op in a worker without a guard
//! (tests, `--no-guard`).

use super::leases::LeasePage;
use super::record::Record;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::OnceLock;

/// The guard can no longer be told what runs here.
#[derive(Debug, thiserror::Error)]
#[error("lease guard unreachable: {0}")]
pub struct GuardGone(pub std::io::Error);

pub struct GuardLink {
    fd: OwnedFd,
    /// Where renewals go; `None` if the guard passed none (then they go as records).
    leases: Option<LeasePage>,
}

static LINK: OnceLock<GuardLink> = OnceLock::new();

impl GuardLink {
    /// Sends one record without blocking: a guard too busy to read (a full socket
    /// buffer) is as good as gone.
    pub fn send(&self, record: Record) -> Result<(), GuardGone> {
        let bytes = record.encode();
        // SAFETY: bytes is valid for its length; the socket is ours.
        let rc = unsafe {
            libc::send(
                self.fd.as_raw_fd(),
                bytes.as_ptr().cast(),
                bytes.len(),
                libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
            )
        };
        if rc < 0 {
            return Err(GuardGone(std::io::Error::last_os_error()));
        }
        Ok(())
    }

    /// Writes a renewal of the lease in `slot` to the lease page. False when there is
    /// no page or no such slot (the caller then sends a record instead).
    pub fn renew(&self, slot: u16, until_ns: u64) -> bool {
        self.leases
            .as_ref()
            .is_some_and(|page| page.store(slot, until_ns))
    }

    /// Blocks until the guard's end closes (the guard died). The guard never sends,
    /// so any return means it is gone.
    pub fn wait_for_guard_death(&self) {
        let mut b = [0u8; 64];
        loop {
            // SAFETY: b is valid for its length.
            let n = unsafe { libc::recv(self.fd.as_raw_fd(), b.as_mut_ptr().cast(), b.len(), 0) };
            if n < 0 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return;
        }
    }
}

/// Takes over the descriptors the guard passed with `--guard-fd` (its socket) and
/// `--guard-leases` (its lease page) and makes them the process's link. Returns `None`
/// if one is installed already.
///
/// # Safety
/// Both must be open descriptors this process owns and nothing else uses.
pub unsafe fn install(fd: RawFd, leases: Option<RawFd>) -> Option<&'static GuardLink> {
    // Children (agents) must not inherit it.
    libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC);
    let leases = match leases.map(|l| LeasePage::open(l)) {
        Some(Ok(page)) => Some(page),
        Some(Err(e)) => {
            tracing::warn!("cannot map the guard's lease page ({e}); renewals go as records");
            None
        }
        None => None,
    };
    let link = GuardLink {
        fd: OwnedFd::from_raw_fd(fd),
        leases,
    };
    LINK.set(link).ok()?;
    LINK.get()
}

/// The installed link, if this worker has a guard.
pub fn get() -> Option<&'static GuardLink> {
    LINK.get()
}

/// A process group was started for a resource of `group`: the guard kills it if it
/// must act. Failures are logged; the heartbeat thread notices a dead guard itself.
pub fn report_process_group(group: u64, pgid: i32) {
    if let Some(link) = get() {
        if let Err(e) = link.send(Record::ProcessGroup { group, pgid }) {
            tracing::error!("cannot tell the guard about process group {pgid}: {e}");
        }
    }
}

/// That process group has no member left.
pub fn report_process_group_gone(group: u64, pgid: i32) {
    if let Some(link) = get() {
        let _ = link.send(Record::ProcessGroupGone { group, pgid });
    }
}
