//! The heartbeat thread's wake-up at the core's next deadline, to the microsecond.
//!
//! tokio's timer counts whole milliseconds and rounds every deadline up to the next one,
//! so a deadline woke the core up to a millisecond late. On a takeover that millisecond
//! is paid twice in a row — the voter's promise ending (then it grants) and the
//! candidate's (then it counts the grant) — and at 10 ms / 40 ms it is a fifth of what a
//! takeover costs above the floor. A `timerfd` armed at the absolute deadline on the
//! core's own clock (`CLOCK_BOOTTIME`, see [`super::clock`]) fires at the instant,
//! through the same epoll wait as the link sockets. Should the kernel refuse a timerfd,
//! the thread falls back to tokio's timer (late by up to a millisecond, nothing worse).

use super::clock;
use crate::core::Instant;
use nix::sys::time::TimeSpec;
use nix::sys::timerfd::{ClockId, Expiration, TimerFd, TimerFlags, TimerSetTimeFlags};
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::time::Duration;
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

/// A timerfd as tokio's `AsyncFd` wants it (nix's type only lends its fd out).
struct Timer(TimerFd);

impl AsRawFd for Timer {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_fd().as_raw_fd()
    }
}

/// One timer, re-armed for each wait; only one wait at a time (`&mut self`).
pub struct DeadlineTimer {
    fd: Option<AsyncFd<Timer>>,
    /// The deadline the timerfd is armed for and whose expiry nobody consumed yet; a
    /// wait for the same instant does not re-arm it (one syscall less per wake).
    armed: Option<Instant>,
}

impl DeadlineTimer {
    /// Must be called inside the tokio runtime that will wait on it.
    pub fn new() -> Self {
        // SAFETY: `Timer` owns its descriptor and nothing replaces or closes it while
        // the `AsyncFd` holds it.
        let fd = Self::timerfd()
            .and_then(|t| {
                unsafe { AsyncFd::register_with_interest(Timer(t), Interest::READABLE) }
                    .map_err(std::io::Error::from)
            })
            .map_err(|e| {
                tracing::warn!(
                    "no timerfd for the heartbeat thread ({e}): deadlines use tokio's \
                     millisecond timer"
                );
            })
            .ok();
        DeadlineTimer { fd, armed: None }
    }

    fn timerfd() -> std::io::Result<TimerFd> {
        let flags = TimerFlags::TFD_NONBLOCK | TimerFlags::TFD_CLOEXEC;
        // The same clock as `clock::now`, with the same fallback.
        TimerFd::new(ClockId::CLOCK_BOOTTIME, flags)
            .or_else(|_| TimerFd::new(ClockId::CLOCK_MONOTONIC, flags))
            .map_err(std::io::Error::from)
    }

    /// Returns at `at` on the core's clock (at once if it has passed).
    pub async fn until(&mut self, at: Instant) {
        let Some(fd) = &self.fd else {
            return tokio::time::sleep(at.saturating_since(clock::now())).await;
        };
        if at <= clock::now() {
            return;
        }
        if self.armed != Some(at) {
            // An all-zero time disarms a timerfd: 1 ns is as good as "now".
            let ts = TimeSpec::from_duration(Duration::from_nanos(at.as_nanos().max(1)));
            let set = fd.get_ref().0.set(
                Expiration::OneShot(ts),
                TimerSetTimeFlags::TFD_TIMER_ABSTIME,
            );
            if let Err(e) = set {
                tracing::warn!("arming the heartbeat thread's timerfd: {e}");
                self.armed = None;
                return tokio::time::sleep(at.saturating_since(clock::now())).await;
            }
            self.armed = Some(at);
        }
        loop {
            let Ok(mut ready) = fd.readable().await else {
                return tokio::time::sleep(at.saturating_since(clock::now())).await;
            };
            // The expiry count is never read (one syscall less per wake): arming the
            // timer again resets it, and tokio's edge-triggered registration reports
            // the next expiry as a new event once this readiness is cleared. A
            // readiness left from an expiry before the last re-arm is told apart by
            // the clock.
            ready.clear_ready();
            if clock::now() >= at {
                self.armed = None;
                return;
            }
        }
    }
}

impl Default for DeadlineTimer {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
    }

    /// Lateness of waits for 100 µs past one of tokio's millisecond ticks (a tokio
    /// sleep wakes just after a tick), where tokio's timer would wake ~0.9 ms late.
    async fn lateness(timer: &mut DeadlineTimer) -> Vec<Duration> {
        let mut late = Vec::new();
        for _ in 0..20 {
            tokio::time::sleep(Duration::from_millis(1)).await;
            let at = clock::now() + Duration::from_micros(100);
            timer.until(at).await;
            let now = clock::now();
            assert!(now >= at, "woke before the deadline");
            late.push(now.saturating_since(at));
        }
        late.sort();
        late
    }

    /// Fires at the deadline, not before, and not on tokio's millisecond grid: compared
    /// with the fallback (tokio's timer) in the same conditions rather than against a
    /// fixed bound, since a loaded box delays both.
    #[test]
    fn fires_at_the_deadline_not_on_a_millisecond_grid() {
        runtime().block_on(async {
            let mut timer = DeadlineTimer::new();
            assert!(timer.fd.is_some(), "this kernel has timerfd");
            let mut fallback = DeadlineTimer {
                fd: None,
                armed: None,
            };
            let precise = lateness(&mut timer).await[10];
            let tokio_ms = lateness(&mut fallback).await[10];
            assert!(
                precise < tokio_ms,
                "median lateness {precise:?} with the timerfd, {tokio_ms:?} with tokio's timer"
            );
        });
    }

    /// Polls `until(at)` once: whether it returned.
    async fn fired_at_once(timer: &mut DeadlineTimer, at: Instant) -> bool {
        // (tokio's own zero timeout would wait for its next millisecond tick)
        tokio::select! {
            biased;
            _ = timer.until(at) => true,
            _ = std::future::ready(()) => false,
        }
    }

    /// A deadline in the past returns at once; a re-armed timer whose earlier expiry was
    /// never waited for (the readiness it left is stale) still waits for the new
    /// deadline, and a timer fires again after such a stale readiness was cleared.
    #[test]
    fn a_past_deadline_returns_and_a_rearm_waits_for_the_new_one() {
        runtime().block_on(async {
            let mut timer = DeadlineTimer::new();
            assert!(fired_at_once(&mut timer, Instant::from_nanos(1)).await);
            // Armed, then expired while nobody waited on it: the runtime saw it fire.
            // (50 ms: a preempted test thread still polls before it on a noisy box.)
            let soon = clock::now() + Duration::from_millis(50);
            assert!(!fired_at_once(&mut timer, soon).await);
            tokio::time::sleep(Duration::from_millis(60)).await;
            // Far enough that a preempted test thread still polls before it (noisy box).
            let later = clock::now() + Duration::from_millis(50);
            assert!(
                !fired_at_once(&mut timer, later).await,
                "a deadline 50 ms away is not there yet"
            );
            timer.until(later).await;
            assert!(clock::now() >= later, "a stale expiry ended the wait early");
            let again = clock::now() + Duration::from_millis(20);
            timer.until(again).await;
            assert!(clock::now() >= again, "the next expiry ended the wait");
        });
    }
}
