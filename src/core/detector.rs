//! Phi-accrual failure detection for one peer on one link.
//!
//! Instead of "missed N heartbeats", the detector learns the distribution of arrival
//! gaps and reports how surprising the current silence is (phi = -log10 of the
//! probability that a heartbeat is still on its way). Two hard bounds keep it sane on a
//! noisy box: below `floor` of silence a link is never suspected, and at `deadtime` of
//! silence it is down whatever phi says. Phi may call a *link* down earlier (reported,
//! so a pulled cable shows at once), but a *node* is declared down only after
//! `deadtime` of silence on every link ([`Detector::within_deadtime`]): on a stalled
//! machine phi alone made failovers for nothing, and a takeover waits for a promise
//! that lasts at least `deadtime` anyway. Liveness drives reporting and when a node
//! starts campaigning; it never decides safety on its own (leases do).

use super::time::Instant;
use std::collections::VecDeque;
use std::time::Duration;

/// phi above which a link is suspect (a heartbeat is late, about 1 in 1000).
pub const PHI_SUSPECT: f64 = 3.0;
/// phi above which a link is down before `deadtime` (about 1 in 10^8).
pub const PHI_DOWN: f64 = 8.0;
const WINDOW_MAX: usize = 64;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LinkState {
    /// Nothing ever arrived on this link.
    Unknown,
    Up,
    Suspect,
    Down,
}

impl LinkState {
    pub fn as_str(self) -> &'static str {
        match self {
            LinkState::Unknown => "unknown",
            LinkState::Up => "up",
            LinkState::Suspect => "suspect",
            LinkState::Down => "down",
        }
    }

    /// A link "delivers" while it is up or merely suspect.
    pub fn delivers(self) -> bool {
        matches!(self, LinkState::Up | LinkState::Suspect)
    }
}

#[derive(Clone, Debug)]
pub struct Detector {
    gaps_ms: VecDeque<f64>,
    last: Option<Instant>,
    interval: Duration,
    floor: Duration,
    deadtime: Duration,
}

impl Detector {
    /// `floor` = 2 × interval (never suspect a link before two heartbeats are missing);
    /// ceiling = `deadtime`.
    pub fn new(interval: Duration, deadtime: Duration) -> Detector {
        Detector {
            gaps_ms: VecDeque::with_capacity(WINDOW_MAX),
            last: None,
            interval,
            floor: (interval * 2).min(deadtime),
            deadtime,
        }
    }

    pub fn heartbeat(&mut self, now: Instant) {
        if let Some(last) = self.last {
            if now < last {
                return;
            }
            if self.gaps_ms.len() == WINDOW_MAX {
                self.gaps_ms.pop_front();
            }
            self.gaps_ms.push_back(ms(now.saturating_since(last)));
        }
        self.last = Some(now);
    }

    pub fn last_heard(&self) -> Option<Instant> {
        self.last
    }

    /// Whether something arrived less than `deadtime` ago: a peer with such a link is
    /// not declared down, whatever phi says of it.
    pub fn within_deadtime(&self, now: Instant) -> bool {
        self.last
            .is_some_and(|last| now.saturating_since(last) < self.deadtime)
    }

    /// This node did not run for `pause`: nothing could be heard meanwhile, so that time
    /// does not count as the peer's silence (its arrival history is kept).
    pub fn excuse(&mut self, pause: Duration, now: Instant) {
        if let Some(last) = self.last {
            self.last = Some((last + pause).min(now));
        }
    }

    /// Forget history (the peer restarted).
    pub fn reset(&mut self) {
        self.gaps_ms.clear();
        self.last = None;
    }

    pub fn phi(&self, now: Instant) -> f64 {
        let Some(last) = self.last else {
            return f64::INFINITY;
        };
        let elapsed = ms(now.saturating_since(last));
        // Until the window has data, assume the configured interval; the std-dev floor
        // keeps a perfectly regular sender from making any jitter look fatal.
        let (mean, var) = if self.gaps_ms.len() < 2 {
            (ms(self.interval), 0.0)
        } else {
            let n = self.gaps_ms.len() as f64;
            let mean = self.gaps_ms.iter().sum::<f64>() / n;
            let var = self
                .gaps_ms
                .iter()
                .map(|g| (g - mean) * (g - mean))
                .sum::<f64>()
                / n;
            (mean, var)
        };
        let std = var.sqrt().max(ms(self.interval) / 4.0).max(0.1);
        phi_of(elapsed, mean, std)
    }

    pub fn state(&self, now: Instant) -> LinkState {
        let Some(last) = self.last else {
            return LinkState::Unknown;
        };
        let silence = now.saturating_since(last);
        if silence >= self.deadtime {
            return LinkState::Down;
        }
        if silence < self.floor {
            return LinkState::Up;
        }
        let phi = self.phi(now);
        if phi >= PHI_DOWN {
            LinkState::Down
        } else if phi >= PHI_SUSPECT {
            LinkState::Suspect
        } else {
            LinkState::Up
        }
    }

    /// The next instant at which `state` can change without a new arrival (used to
    /// schedule a wake-up), or `None` once the link is down.
    pub fn next_change(&self, now: Instant) -> Option<Instant> {
        let last = self.last?;
        let floor = last + self.floor;
        let dead = last + self.deadtime;
        if now < floor {
            Some(floor)
        } else if now < dead {
            // Phi grows continuously in between; re-check at a fraction of the interval.
            Some((now + (self.interval / 4).max(Duration::from_millis(1))).min(dead))
        } else {
            None
        }
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// -log10 P(gap > elapsed) for a normal distribution, with the logistic approximation
/// of the normal CDF that Akka and Cassandra use (accurate to about 1e-4).
fn phi_of(elapsed: f64, mean: f64, std: f64) -> f64 {
    let y = (elapsed - mean) / std;
    let e = (-y * (1.5976 + 0.070566 * y * y)).exp();
    let p_later = if elapsed > mean {
        e / (1.0 + e)
    } else {
        1.0 - 1.0 / (1.0 + e)
    };
    if p_later <= f64::MIN_POSITIVE {
        return f64::INFINITY;
    }
    -p_later.log10()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: u64) -> Instant {
        Instant::from_nanos(ms * 1_000_000)
    }

    fn regular(d: &mut Detector, until_ms: u64, step: u64) {
        let mut t = 0;
        while t <= until_ms {
            d.heartbeat(at(t));
            t += step;
        }
    }

    #[test]
    fn never_heard_is_unknown() {
        let d = Detector::new(Duration::from_millis(100), Duration::from_secs(1));
        assert_eq!(d.state(at(5000)), LinkState::Unknown);
    }

    #[test]
    fn regular_heartbeats_stay_up_and_silence_goes_down_by_deadtime() {
        let mut d = Detector::new(Duration::from_millis(100), Duration::from_secs(1));
        regular(&mut d, 2000, 100);
        assert_eq!(d.state(at(2050)), LinkState::Up);
        assert_eq!(d.state(at(2150)), LinkState::Up, "below the floor");
        assert!(
            d.state(at(2600)) != LinkState::Up,
            "five gaps late is not up"
        );
        assert_eq!(
            d.state(at(3000)),
            LinkState::Down,
            "deadtime is a hard ceiling"
        );
    }

    #[test]
    fn phi_grows_with_silence() {
        let mut d = Detector::new(Duration::from_millis(100), Duration::from_secs(1));
        regular(&mut d, 1000, 100);
        let a = d.phi(at(1100));
        let b = d.phi(at(1300));
        let c = d.phi(at(1600));
        assert!(a < b && b < c, "{a} {b} {c}");
    }

    #[test]
    fn jittery_sender_tolerates_more_than_a_regular_one() {
        let mut steady = Detector::new(Duration::from_millis(100), Duration::from_secs(2));
        regular(&mut steady, 3000, 100);
        let mut jittery = Detector::new(Duration::from_millis(100), Duration::from_secs(2));
        let mut t = 0;
        for i in 0..30 {
            t += if i % 2 == 0 { 40 } else { 160 };
            jittery.heartbeat(at(t));
        }
        let probe = Duration::from_millis(330);
        assert!(jittery.phi(at(t) + probe) < steady.phi(at(3000) + probe));
    }

    #[test]
    fn phi_may_call_a_link_down_early_but_within_deadtime_holds_until_deadtime() {
        let mut d = Detector::new(Duration::from_millis(10), Duration::from_millis(40));
        regular(&mut d, 1000, 10);
        // A steady sender silent for 25 ms: phi says down (a stall on this box does it).
        assert_eq!(d.state(at(1025)), LinkState::Down);
        assert!(d.within_deadtime(at(1025)), "but not down for the node");
        assert!(d.within_deadtime(at(1039)));
        assert!(!d.within_deadtime(at(1040)), "deadtime of silence is down");
        d.reset();
        assert!(!d.within_deadtime(at(1041)), "never heard is not within");
    }

    #[test]
    fn next_change_schedules_floor_then_polls_then_stops() {
        let mut d = Detector::new(Duration::from_millis(100), Duration::from_secs(1));
        d.heartbeat(at(0));
        assert_eq!(d.next_change(at(10)), Some(at(200)));
        let next = d.next_change(at(500)).expect("still changing");
        assert!(next > at(500) && next <= at(1000));
        assert_eq!(d.next_change(at(1000)), None);
    }
}
