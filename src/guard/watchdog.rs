//! The watchdog device behind the guard (`watchdog:` in the config).
//!
//! The guard opens the device at start and writes to it only while its own loop runs
//! and it has not failed to take down what it guards; if the guard dies, wedges, or the
//! kernel hangs, the device resets the machine. Peers account for that reset in how
//! long they wait for a silent owner (`Timing::promise`). A clean exit writes the magic
//! `V` so that stopping the service does not reboot the box (unless the driver was
//! built with `nowayout`).

use std::io::Write;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::time::Duration;

/// `_IOWR('W', 6, int)`: set the timeout in seconds.
const WDIOC_SETTIMEOUT: libc::c_ulong = 0xC004_5706;

pub struct Watchdog {
    file: std::fs::File,
    /// How often to write: a third of the timeout, so two writes may be missed.
    pub period: Duration,
}

impl Watchdog {
    /// Opens `device` and asks the driver for `timeout`. A path that is not a watchdog
    /// device (a FIFO or file standing in for one in tests) is fed all the same.
    pub fn open(device: &Path, timeout: Duration) -> std::io::Result<Watchdog> {
        let file = std::fs::OpenOptions::new().write(true).open(device)?;
        let mut secs = libc::c_int::try_from(timeout.as_secs().max(1)).unwrap_or(libc::c_int::MAX);
        // SAFETY: the ioctl reads and writes one int we own; on a non-watchdog file it
        // fails with ENOTTY, which is fine.
        let _ = unsafe { libc::ioctl(file.as_raw_fd(), WDIOC_SETTIMEOUT, &mut secs) };
        Ok(Watchdog {
            file,
            period: (timeout / 3).max(Duration::from_millis(10)),
        })
    }

    pub fn feed(&mut self) {
        // A failed write is the same as a missed one: the device decides.
        let _ = self.file.write(b"1");
    }

    /// Disarms the device on purpose (clean exit, nothing left to guard).
    pub fn close_cleanly(mut self) {
        let _ = self.file.write(b"V");
    }
}
