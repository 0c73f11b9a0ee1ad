//! This daemon's etcd session as the arbiter thread last saw it — its lease's id, the
//! TTL etcd gave it at the last renewal, how many leases this incarnation was granted
//! — for `tandemctl status`. Only the driver knows these: the core counts the vote
//! from its own ask times and never sees a lease id.

use crate::core::status::ArbiterSession;
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug)]
struct Renewal {
    lease: i64,
    ttl: Duration,
    at: Instant,
}

#[derive(Debug, Default)]
struct Session {
    last: Option<Renewal>,
    grants: u64,
}

/// Written by the arbiter thread after each grant and renewal, read by status calls.
#[derive(Debug, Default)]
pub struct ArbiterBoard {
    session: Mutex<Session>,
}

impl ArbiterBoard {
    fn with<T>(&self, f: impl FnOnce(&mut Session) -> T) -> T {
        // A panicked writer leaves plain values behind: keep using them.
        let mut s = match self.session.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        f(&mut s)
    }

    /// etcd granted a new lease.
    pub fn granted(&self, lease: i64, ttl_s: i64) {
        self.with(|s| {
            s.grants += 1;
            s.last = Some(renewal(lease, ttl_s));
        });
    }

    /// etcd renewed the current lease.
    pub fn renewed(&self, lease: i64, ttl_s: i64) {
        self.with(|s| s.last = Some(renewal(lease, ttl_s)));
    }

    /// The lease for `status`: what is left of its TTL counts down from the renewal.
    pub fn snapshot(&self) -> ArbiterSession {
        self.with(|s| ArbiterSession {
            lease_id: s.last.map(|r| format!("{:x}", r.lease)),
            lease_ttl_left_ms: s.last.map(|r| {
                let left = r.ttl.saturating_sub(r.at.elapsed());
                u64::try_from(left.as_millis()).unwrap_or(u64::MAX)
            }),
            leases_granted: s.grants,
        })
    }
}

fn renewal(lease: i64, ttl_s: i64) -> Renewal {
    Renewal {
        lease,
        ttl: Duration::from_secs(u64::try_from(ttl_s).unwrap_or(0)),
        at: Instant::now(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_board_counts_grants_and_keeps_the_newest_lease() {
        let board = ArbiterBoard::default();
        assert_eq!(board.snapshot(), ArbiterSession::default());
        board.granted(0x1a, 4);
        board.renewed(0x1a, 4);
        board.granted(0x2b, 4);
        let s = board.snapshot();
        assert_eq!(s.lease_id.as_deref(), Some("2b"));
        assert_eq!(s.leases_granted, 2);
        let left = s.lease_ttl_left_ms.expect("a ttl");
        assert!(left > 0 && left <= 4000, "{left}");
    }
}
