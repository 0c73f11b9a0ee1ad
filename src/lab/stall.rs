//! A machine-stall probe for the steady-state benchmarks. A false positive can be
//! tandem's fault (its heartbeat thread starved) or the machine's: on a VM the hypervisor
//! may not run the guest at all for tens of milliseconds (steal time), and then every
//! node of a lab misses every peer at once. The probe tells the two apart. It is a
//! thread at SCHED_FIFO priority above tandemd's heartbeat thread that sleeps 1 ms at a
//! time and notes every wake-up that came late: busy loops cannot delay it, so a late
//! wake-up means nothing on the machine ran. It also reads the kernel's steal counter.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use serde::Serialize;

/// How long the probe sleeps between wake-ups.
const TICK: Duration = Duration::from_millis(1);
/// Above tandemd's heartbeat thread (SCHED_RR 50), below the kernel's own RT threads.
const PRIORITY: i32 = 60;

/// One late wake-up: nothing at the probe's priority ran for `late_ms` up to `at_ns`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Stall {
    /// CLOCK_REALTIME of the late wake-up, ns (comparable with the daemons' log times).
    pub at_ns: i64,
    pub late_ms: f64,
}

/// What the probe saw over a run.
#[derive(Debug, Clone, Serialize)]
pub struct StallReport {
    /// Whether the probe got its real-time priority (without it, load delays it too and
    /// its stalls prove nothing).
    pub realtime: bool,
    /// Late wake-ups of at least the recording threshold, oldest first.
    pub stalls: Vec<Stall>,
    pub max_late_ms: f64,
    /// Steal time of all CPUs over the run (`/proc/stat`), ms; None if unreadable.
    pub steal_ms: Option<f64>,
}

pub struct StallProbe {
    stop: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<(bool, f64)>>,
    stalls: Arc<Mutex<Vec<Stall>>>,
    steal_at_start: Option<u64>,
}

impl StallProbe {
    /// Starts the probe; wake-ups later than `threshold` are recorded.
    pub fn start(threshold: Duration) -> StallProbe {
        let stop = Arc::new(AtomicBool::new(false));
        let stalls = Arc::new(Mutex::new(Vec::new()));
        let thread = {
            let stop = Arc::clone(&stop);
            let stalls = Arc::clone(&stalls);
            thread::Builder::new()
                .name("stall-probe".into())
                .spawn(move || probe(threshold, &stop, &stalls))
                .ok()
        };
        StallProbe {
            stop,
            thread,
            stalls,
            steal_at_start: steal_ticks(),
        }
    }

    pub fn finish(mut self) -> StallReport {
        self.stop.store(true, Ordering::Relaxed);
        let (realtime, max_late_ms) = self
            .thread
            .take()
            .and_then(|t| t.join().ok())
            .unwrap_or((false, 0.0));
        let steal_ms = match (self.steal_at_start, steal_ticks()) {
            (Some(a), Some(b)) => {
                Some(b.saturating_sub(a) as f64 * 1000.0 / clock_ticks_per_second())
            }
            _ => None,
        };
        StallReport {
            realtime,
            stalls: self.stalls.lock().map(|s| s.clone()).unwrap_or_default(),
            max_late_ms,
            steal_ms,
        }
    }
}

impl Drop for StallProbe {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn probe(threshold: Duration, stop: &AtomicBool, stalls: &Mutex<Vec<Stall>>) -> (bool, f64) {
    let param = libc::sched_param {
        sched_priority: PRIORITY,
    };
    // SAFETY: pid 0 is the calling thread; `param` is a valid sched_param.
    let realtime = unsafe { libc::sched_setscheduler(0, libc::SCHED_FIFO, &param) } == 0;
    let mut max_late = Duration::ZERO;
    while !stop.load(Ordering::Relaxed) {
        let before = Instant::now();
        thread::sleep(TICK);
        let late = before.elapsed().saturating_sub(TICK);
        max_late = max_late.max(late);
        if late >= threshold {
            if let Ok(mut s) = stalls.lock() {
                s.push(Stall {
                    at_ns: super::observe::realtime_ns(),
                    late_ms: late.as_secs_f64() * 1e3,
                });
            }
        }
    }
    (realtime, max_late.as_secs_f64() * 1e3)
}

/// Steal ticks summed over all CPUs (the `cpu` line of /proc/stat, 8th value).
fn steal_ticks() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    parse_steal(&stat)
}

fn parse_steal(stat: &str) -> Option<u64> {
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    line.split_whitespace().nth(8)?.parse().ok()
}

/// The stall that explains an event at `at_ns`, if any: the machine stood still for at
/// least `min_late` and the event came during the stall or within `after` of its end
/// (the detectors fire on their first tick after the machine runs again).
pub fn explaining_stall(
    stalls: &[Stall],
    at_ns: i64,
    min_late: Duration,
    after: Duration,
) -> Option<Stall> {
    let min_late_ms = min_late.as_secs_f64() * 1e3;
    stalls
        .iter()
        .filter(|s| s.late_ms >= min_late_ms)
        .find(|s| {
            let began = s.at_ns - (s.late_ms * 1e6) as i64;
            let until = s.at_ns + after.as_nanos() as i64;
            (began..=until).contains(&at_ns)
        })
        .copied()
}

/// USER_HZ: the unit of /proc's CPU times (stat's utime/stime, the cpu lines).
pub(crate) fn clock_ticks_per_second() -> f64 {
    // SAFETY: sysconf only reads a system constant.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steal_is_the_eighth_value_of_the_cpu_line() {
        let stat = "cpu  3379911 335202 240074 2184607 11704 0 5813 22569 0 0\n\
                    cpu0 1669393 165347 113216 1124490 3727 0 2175 11257 0 0\n";
        assert_eq!(parse_steal(stat), Some(22569));
        assert_eq!(parse_steal("cpu0 1 2 3\n"), None);
    }

    #[test]
    fn an_event_is_explained_only_by_a_long_enough_stall_around_it() {
        let ms = 1_000_000i64;
        let stalls = [
            Stall {
                at_ns: 1000 * ms,
                late_ms: 5.0,
            },
            Stall {
                at_ns: 2000 * ms,
                late_ms: 60.0,
            },
        ];
        let explain = |at: i64| {
            explaining_stall(
                &stalls,
                at * ms,
                Duration::from_millis(20),
                Duration::from_millis(100),
            )
        };
        // Too short a stall explains nothing.
        assert_eq!(explain(1001), None);
        // During the 60 ms stall, and up to 100 ms after it.
        assert_eq!(explain(1950), Some(stalls[1]));
        assert_eq!(explain(2100), Some(stalls[1]));
        assert_eq!(explain(2101), None);
        assert_eq!(explain(1939), None);
    }

    #[test]
    fn the_probe_records_every_wake_up_at_or_above_its_threshold() {
        // Threshold zero: every wake-up counts, so the records show the loop ran.
        let probe = StallProbe::start(Duration::ZERO);
        thread::sleep(Duration::from_millis(200));
        let r = probe.finish();
        assert!(
            r.stalls.len() >= 10,
            "a 1 ms loop woke up for 200 ms: {r:?}"
        );
        assert!(
            r.stalls.windows(2).all(|w| w[0].at_ns <= w[1].at_ns),
            "oldest first: {r:?}"
        );
        let longest = r.stalls.iter().map(|s| s.late_ms).fold(0.0, f64::max);
        assert_eq!(longest, r.max_late_ms, "{r:?}");
        if nix::unistd::geteuid().is_root() {
            assert!(r.realtime, "root gets SCHED_FIFO: {r:?}");
        }
        // A high threshold records nothing while reporting the longest wake-up anyway.
        let probe = StallProbe::start(Duration::from_secs(60));
        thread::sleep(Duration::from_millis(20));
        let r = probe.finish();
        assert!(r.stalls.is_empty() && r.max_late_ms < 60_000.0, "{r:?}");
    }
}
