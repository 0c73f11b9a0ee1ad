//! The lease page: one shared memory page where the worker writes each group's lease end
//! at every renewal and the guard reads it when its timer fires.
//!
//! A renewal happens every heartbeat interval; as a record on the socket it would wake
//! the guard just as often (100 times a second at 10 ms heartbeats). Through this page
//! a renewal is one atomic store in the worker and nothing in the guard, which wakes
//! only when the earliest lease it knows of is about to end, re-reads, and sleeps again
//! if it was renewed. Records on the socket still announce every change of exposure
//! (with the slot), so the page only ever moves a known deadline later.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, Ordering};

/// Slots of the page: one per group, as many as a config may have.
pub const SLOTS: usize = super::table::MAX_GROUPS;
const BYTES: usize = SLOTS * std::mem::size_of::<AtomicU64>();

/// A mapping of the lease page. Both processes map the same memfd.
pub struct LeasePage {
    fd: OwnedFd,
    slots: NonNull<AtomicU64>,
}

// SAFETY: the mapping is only ever accessed through atomics, from any thread.
unsafe impl Send for LeasePage {}
// SAFETY: as above.
unsafe impl Sync for LeasePage {}

impl LeasePage {
    /// A new zeroed page (the guard, at start).
    pub fn create() -> std::io::Result<LeasePage> {
        // SAFETY: memfd_create with a static NUL-terminated name; checked below.
        let fd = unsafe { libc::memfd_create(c"tandem-leases".as_ptr(), libc::MFD_CLOEXEC) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: a fresh descriptor we own.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: plain syscall on our descriptor.
        if unsafe { libc::ftruncate(fd.as_raw_fd(), BYTES as libc::off_t) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        LeasePage::map(fd)
    }

    /// Maps the page the guard passed down (the worker).
    ///
    /// # Safety
    /// `fd` must be an open descriptor of the guard's lease page that this process owns.
    pub unsafe fn open(fd: i32) -> std::io::Result<LeasePage> {
        libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC);
        LeasePage::map(OwnedFd::from_raw_fd(fd))
    }

    fn map(fd: OwnedFd) -> std::io::Result<LeasePage> {
        // SAFETY: a shared mapping of BYTES of a memfd at least that long; the result is
        // checked before use and unmapped on drop.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                BYTES,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        let slots =
            NonNull::new(p.cast::<AtomicU64>()).ok_or_else(std::io::Error::last_os_error)?;
        Ok(LeasePage { fd, slots })
    }

    /// The descriptor, to hand to the worker.
    pub fn raw_fd(&self) -> i32 {
        self.fd.as_raw_fd()
    }

    fn slot(&self, i: u16) -> Option<&AtomicU64> {
        let i = usize::from(i);
        // SAFETY: in bounds of the mapping, which lives as long as self; AtomicU64 has
        // the alignment of the page.
        (i < SLOTS).then(|| unsafe { &*self.slots.as_ptr().add(i) })
    }

    /// The worker renewed slot `i`'s lease until `until_ns` (CLOCK_BOOTTIME). False if
    /// there is no such slot.
    pub fn store(&self, i: u16, until_ns: u64) -> bool {
        match self.slot(i) {
            Some(s) => {
                s.store(until_ns, Ordering::Release);
                true
            }
            None => false,
        }
    }

    /// The latest lease end the worker wrote to slot `i` (0: none).
    pub fn load(&self, i: u16) -> u64 {
        self.slot(i).map_or(0, |s| s.load(Ordering::Acquire))
    }

    /// Forgets every slot (before a new worker starts).
    pub fn clear(&self) {
        for i in 0..SLOTS as u16 {
            let _ = self.store(i, 0);
        }
    }
}

impl Drop for LeasePage {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `map`, unmapped once.
        unsafe { libc::munmap(self.slots.as_ptr().cast(), BYTES) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_mappings_of_one_page_see_each_others_stores() {
        let guard = LeasePage::create().expect("memfd");
        // SAFETY: dup gives this test a descriptor of its own for the second mapping.
        let worker = unsafe { LeasePage::open(libc::dup(guard.raw_fd())) }.expect("map");
        assert_eq!(guard.load(3), 0);
        assert!(worker.store(3, 42));
        assert_eq!(guard.load(3), 42);
        assert!(!worker.store(SLOTS as u16, 7));
        assert_eq!(guard.load(SLOTS as u16), 0, "out of range is ignored");
        guard.clear();
        assert_eq!(worker.load(3), 0);
    }
}
