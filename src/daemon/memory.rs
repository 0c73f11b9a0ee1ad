//! What the worker keeps resident: its memory locked on fault, one malloc arena, and
//! no code pages that only the start or a group's start or stop needed.
//!
//! Most of a worker's RSS is not its data but the pages of code it has mapped: the
//! start (argument and config parsing, the guard handshake, runtimes, sockets, name
//! service lookups) and a group's start or stop (resource agents, netlink, event hooks)
//! run code spread over the whole binary and its libraries, and every page fault on a
//! file maps a block of 64 KiB or more around the page (the kernel's fault-around).
//! With `mlockall` those pages then stay mapped and locked for the life of the process,
//! although the heartbeat path never runs them again. So after the start, and after a
//! group here started or stopped, the code mappings are dropped from the page tables
//! (the pages stay in the page cache, shared with the guard) and the heartbeat path
//! faults back — and locks again — only what it runs, within its next interval.
//!
//! glibc gives each thread that allocates an arena of its own; the worker's threads
//! allocate little and rarely at the same moment, so one arena is enough.

use std::ffi::c_void;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

/// `MLOCK_ONFAULT` (linux/mman.h), which the libc crate defines for Android only.
const MLOCK_ONFAULT: libc::c_uint = 0x01;

/// Whether [`lock_on_fault`] succeeded: dropped pages are then locked again on fault.
static LOCKED: AtomicBool = AtomicBool::new(false);

/// When code pages were last dropped after a transition (the core's clock, ns; 0: never).
static LAST_DROP: AtomicU64 = AtomicU64::new(0);

/// Group transitions closer together than this drop the code pages once: a flapping
/// group must not turn the drop into a cost of its own.
const DROP_AT_MOST_EVERY: Duration = Duration::from_secs(10);

/// One malloc arena, and the memory locked on fault if `lock`: call before the
/// worker's threads start.
pub fn set_up(lock: bool) {
    one_arena();
    if lock {
        lock_on_fault();
    }
}

/// One malloc arena for every thread.
fn one_arena() {
    #[cfg(target_env = "gnu")]
    // SAFETY: mallopt only changes the allocator's tuning.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}

/// Best effort: keeps every page the daemon has touched in RAM.
///
/// Lock-on-fault (`MCL_ONFAULT`) rather than Corosync's prefaulting `mlockall`: a plain
/// `MCL_FUTURE` populates each new mapping whole, so every thread's 2 MiB stack and the
/// whole binary would become resident — about three times the memory the daemon uses.
/// The heartbeat path runs within the first interval, so its pages are locked from then
/// on; what is never touched is never read in.
fn lock_on_fault() {
    let flags = libc::MCL_CURRENT | libc::MCL_FUTURE | libc::MCL_ONFAULT;
    // SAFETY: mlockall takes only flags and changes no memory the program can see.
    if unsafe { libc::mlockall(flags) } == 0 {
        tracing::info!("memory locked on fault (mlockall)");
        LOCKED.store(true, Ordering::Relaxed);
    } else {
        tracing::warn!(
            "mlockall failed: {}; the daemon may be paged out under memory pressure",
            std::io::Error::last_os_error()
        );
    }
}

/// After a group here started or stopped: drops the code pages on a thread of its own
/// (the heartbeat thread does not wait for it), unless that was done less than
/// [`DROP_AT_MOST_EVERY`] ago.
pub fn after_transition() {
    let now = super::clock::now().as_nanos();
    let last = LAST_DROP.load(Ordering::Relaxed);
    let every = u64::try_from(DROP_AT_MOST_EVERY.as_nanos()).unwrap_or(u64::MAX);
    if last != 0 && now.saturating_sub(last) < every {
        return;
    }
    LAST_DROP.store(now.max(1), Ordering::Relaxed);
    let spawned = std::thread::Builder::new()
        .name("tandem-trim".into())
        .spawn(drop_read_only_pages);
    if let Err(e) = spawned {
        tracing::debug!("no thread to drop code pages ({e}): they stay mapped");
    }
}

/// Drops this process's code pages from its page tables, to be faulted back on use
/// (and locked again if the memory is locked), and gives the heap's free pages back.
/// Best effort: whatever fails is left as it was.
pub fn drop_read_only_pages() {
    let smaps = match std::fs::read_to_string("/proc/self/smaps") {
        Ok(m) => m,
        Err(e) => {
            tracing::debug!("cannot read /proc/self/smaps ({e}): code pages stay mapped");
            return;
        }
    };
    let before = resident_kib();
    let locked = LOCKED.load(Ordering::Relaxed);
    for mapping in unwritten_mappings(&smaps) {
        drop_one(mapping, locked);
    }
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim only returns free heap memory to the kernel.
    unsafe {
        libc::malloc_trim(0);
    }
    tracing::debug!(
        "code pages dropped: resident {} KiB before, {} KiB after",
        before.unwrap_or(0),
        resident_kib().unwrap_or(0)
    );
}

/// This process's resident set (`/proc/self/statm`, second field, in pages).
fn resident_kib() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4)
}

/// A mapping of this process: start address and length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Mapping {
    start: usize,
    len: usize,
}

fn drop_one(mapping: Mapping, locked: bool) {
    let (addr, len) = (mapping.start as *mut c_void, mapping.len);
    // SAFETY: the range is one of this process's private read-only file mappings with
    // no anonymous page: unlocking changes no content, and MADV_DONTNEED there only
    // unmaps pages that the next access reads back, unchanged, from the same file.
    unsafe {
        // A locked range refuses MADV_DONTNEED.
        if locked && libc::munlock(addr, len) != 0 {
            return;
        }
        libc::madvise(addr, len, libc::MADV_DONTNEED);
        if locked {
            // Locked again as pages fault back in, as mlockall(MCL_ONFAULT) did.
            libc::mlock2(addr, len, MLOCK_ONFAULT);
        }
    }
}

/// The private, read-only file mappings in `/proc/self/smaps` that hold no page of
/// their own (`Anonymous: 0 kB`): code, read-only data, unwinding tables. Nothing was
/// ever written to them, so dropping their pages loses nothing. A RELRO segment, written
/// by the dynamic linker before it was made read-only, holds anonymous pages and is
/// left alone.
fn unwritten_mappings(smaps: &str) -> Vec<Mapping> {
    let mut found = Vec::new();
    let mut candidate: Option<Mapping> = None;
    for line in smaps.lines() {
        if let Some(value) = line.strip_prefix("Anonymous:") {
            if let Some(m) = candidate.take() {
                if value.split_whitespace().next() == Some("0") {
                    found.push(m);
                }
            }
        } else if let Some(header) = mapping_header(line) {
            candidate = header;
        }
    }
    found
}

/// `Some(mapping)` for the header line of a private read-only file mapping, `Some(None)`
/// for any other mapping's header, `None` for a field line.
fn mapping_header(line: &str) -> Option<Option<Mapping>> {
    let mut fields = line.split_whitespace();
    let (start, end) = fields.next()?.split_once('-')?;
    let start = usize::from_str_radix(start, 16).ok()?;
    let end = usize::from_str_radix(end, 16).ok()?;
    let perms = fields.next()?;
    let path = fields.nth(3).unwrap_or("");
    let read_only = perms == "r-xp" || perms == "r--p";
    Some(
        (read_only && path.starts_with('/') && end > start).then_some(Mapping {
            start,
            len: end - start,
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_unwritten_read_only_file_mappings_are_dropped() {
        let smaps = "\
55d0c0a00000-55d0c0b00000 r--p 00000000 fd:00 123 /usr/sbin/tandemd
Rss:                 400 kB
Anonymous:             0 kB
55d0c0b00000-55d0c0c00000 r-xp 00100000 fd:00 123 /usr/sbin/tandemd
Anonymous:             0 kB
55d0c0c00000-55d0c0c10000 r--p 00200000 fd:00 123 /usr/sbin/tandemd
Anonymous:            64 kB
55d0c0c10000-55d0c0c20000 rw-p 00210000 fd:00 123 /usr/sbin/tandemd
Anonymous:             0 kB
7f0000000000-7f0000021000 rw-p 00000000 00:00 0
Anonymous:           132 kB
7f0000100000-7f0000200000 r-xp 00000000 00:00 0
Anonymous:             0 kB
7f0000300000-7f0000301000 rw-s 00000000 00:01 7 /memfd:tandem-leases (deleted)
Anonymous:             0 kB
7ffd00b36000-7ffd00b38000 r-xp 00000000 00:00 0 [vdso]
Anonymous:             0 kB
7f1000000000-7f1000100000 r-xp 00028000 fd:00 9 /usr/lib/x86_64-linux-gnu/libc.so.6
Anonymous:             0 kB
";
        let found = unwritten_mappings(smaps);
        let at = |start: usize, len: usize| Mapping { start, len };
        assert_eq!(
            found,
            vec![
                at(0x55d0c0a00000, 0x100000),
                at(0x55d0c0b00000, 0x100000),
                at(0x7f1000000000, 0x100000),
            ]
        );
    }

    /// The test process's own code and data, dropped, still run and read as before
    /// (a RELRO or data page dropped by mistake would read back as the file's bytes or
    /// zeros and crash here).
    #[test]
    fn code_and_data_still_work_after_the_pages_are_dropped() {
        static TABLE: [u64; 4] = [3, 1, 4, 1];
        let before = format!("{:?}", std::env::current_dir());
        drop_read_only_pages();
        let v: Vec<u64> = (0..1000).collect();
        assert_eq!(v.iter().sum::<u64>(), 499_500);
        assert_eq!(TABLE.iter().sum::<u64>(), 9);
        assert_eq!(format!("{:?}", std::env::current_dir()), before);
    }
}
