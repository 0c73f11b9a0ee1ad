//! Anti-replay: each authenticated `(incarnation, seq)` is accepted once per peer and link.
//!
//! A captured heartbeat replayed later would otherwise make a dead node look alive, or
//! resurrect an old grant. The window is per link because the sender sends the same
//! `seq` on every link (each sealed for its own link), and links reorder independently.

use std::collections::HashMap;

use super::drop::DropReason;
use crate::core::ids::NodeId;

/// How many sequence numbers behind the newest one are still accepted (once each).
/// Heartbeats are sent every few hundred milliseconds, so 128 covers far more
/// reordering than any link produces; anything older is useless to the failure detector.
pub const REPLAY_WINDOW: u64 = 128;

/// The sliding window of one (peer, link). Use [`check`](Self::check) before
/// authentication work is trusted and [`accept`](Self::accept) only after the datagram
/// was authenticated and decoded, so forged packets cannot move the window.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReplayWindow {
    state: Option<WindowState>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct WindowState {
    incarnation: u64,
    /// Highest seq accepted in this incarnation.
    top: u64,
    /// Bit `i` set: seq `top - i` was accepted.
    seen: u128,
}

impl ReplayWindow {
    pub fn new() -> Self {
        ReplayWindow { state: None }
    }

    pub fn check(&self, incarnation: u64, seq: u64) -> Result<(), DropReason> {
        let Some(s) = self.state else {
            return Ok(());
        };
        if incarnation < s.incarnation {
            return Err(DropReason::StaleIncarnation);
        }
        if incarnation > s.incarnation || seq > s.top {
            return Ok(());
        }
        let behind = s.top - seq;
        if behind >= REPLAY_WINDOW || s.seen & (1u128 << behind) != 0 {
            return Err(DropReason::Replayed);
        }
        Ok(())
    }

    /// Records `(incarnation, seq)`. Call only after `check` passed for it.
    pub fn accept(&mut self, incarnation: u64, seq: u64) {
        let fresh = WindowState {
            incarnation,
            top: seq,
            seen: 1,
        };
        let s = match &mut self.state {
            None => {
                self.state = Some(fresh);
                return;
            }
            Some(s) => s,
        };
        if incarnation > s.incarnation {
            *s = fresh;
        } else if incarnation < s.incarnation {
            // A stale incarnation never passes `check`; ignore rather than regress.
        } else if seq > s.top {
            let shift = seq - s.top;
            s.seen = if shift >= 128 { 0 } else { s.seen << shift };
            s.seen |= 1;
            s.top = seq;
        } else {
            let behind = s.top - seq;
            if behind < REPLAY_WINDOW {
                s.seen |= 1u128 << behind;
            }
        }
    }
}

/// One [`ReplayWindow`] per (peer, link). Entries are only created for authenticated
/// datagrams from known peers, so the map stays as small as the cluster.
#[derive(Clone, Debug, Default)]
pub struct ReplayGuard {
    windows: HashMap<(NodeId, u8), ReplayWindow>,
}

impl ReplayGuard {
    pub fn new() -> Self {
        ReplayGuard::default()
    }

    /// Call after `open` succeeded: accepts `(incarnation, seq)` if it is new for this
    /// peer and link, else says why it is dropped.
    pub fn check_and_accept(
        &mut self,
        peer: NodeId,
        link: u8,
        incarnation: u64,
        seq: u64,
    ) -> Result<(), DropReason> {
        let window = self.windows.entry((peer, link)).or_default();
        window.check(incarnation, seq)?;
        window.accept(incarnation, seq);
        Ok(())
    }

    /// Forgets a peer (removed from the config), so a later node reusing the id starts
    /// fresh.
    pub fn forget(&mut self, peer: NodeId) {
        self.windows.retain(|(p, _), _| *p != peer);
    }
}
