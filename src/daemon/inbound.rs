//! The receive path of the heartbeat thread: from raw datagram to a core input.
//!
//! Every rejection is counted under its [`DropReason`], so `tandemctl status` tells a
//! wrong key from a replay from a flaky link. Order matters: cheap checks on the
//! unauthenticated header first, then authentication, and only then the replay window
//! (so forged packets can never advance it).

use crate::core::{Input, NodeId};
use crate::wire::{self, DropCounters, DropReason, Keyring, ReplayGuard};
use std::collections::BTreeSet;

pub struct Inbound {
    cluster_id: u64,
    me: NodeId,
    peers: BTreeSet<NodeId>,
    keyring: Keyring,
    replay: ReplayGuard,
    drops: DropCounters,
}

impl Inbound {
    pub fn new(
        cluster_id: u64,
        me: NodeId,
        peers: impl IntoIterator<Item = NodeId>,
        keyring: Keyring,
    ) -> Inbound {
        Inbound {
            cluster_id,
            me,
            peers: peers.into_iter().filter(|p| *p != me).collect(),
            keyring,
            replay: ReplayGuard::new(),
            drops: DropCounters::default(),
        }
    }

    pub fn drops(&self) -> &DropCounters {
        &self.drops
    }

    /// Counts a datagram the socket layer already rejected as too large.
    pub fn count_oversized(&mut self) {
        self.drops.count(DropReason::Oversized);
    }

    /// Turns a datagram received on `link` into the core's input, or counts why not.
    /// The datagram is decrypted in place (no copy, no allocation for it): its bytes
    /// are not the received ones afterwards.
    pub fn accept(&mut self, link: usize, datagram: &mut [u8]) -> Option<Input> {
        match self.check(link, datagram) {
            Ok(input) => Some(input),
            Err(reason) => {
                self.drops.count(reason);
                tracing::trace!("link {link}: dropped datagram: {reason}");
                None
            }
        }
    }

    fn check(&mut self, link: usize, datagram: &mut [u8]) -> Result<Input, DropReason> {
        let link_byte = u8::try_from(link).map_err(|_| DropReason::Malformed)?;
        // `peek_sender` is `None` for junk; `open` then names the exact reason.
        if let Some(sender) = wire::peek_sender(datagram) {
            if sender == self.me {
                return Err(DropReason::FromSelf);
            }
            if !self.peers.contains(&sender) {
                return Err(DropReason::UnknownSender);
            }
        }
        let heartbeat = wire::open_in_place(datagram, self.cluster_id, link_byte, &self.keyring)?;
        if heartbeat.from == self.me {
            return Err(DropReason::FromSelf);
        }
        if !self.peers.contains(&heartbeat.from) {
            return Err(DropReason::UnknownSender);
        }
        self.replay.check_and_accept(
            heartbeat.from,
            link_byte,
            heartbeat.incarnation,
            heartbeat.seq,
        )?;
        Ok(Input::Heartbeat { link, heartbeat })
    }
}
