//! The send path of the heartbeat thread: a heartbeat is encoded once, sealed once per
//! link (the link index is authenticated, so each link needs its own datagram) with a
//! fresh random nonce, and each link's datagram goes to all its peers in one
//! `sendmmsg`. The buffers are kept from one heartbeat to the next, so a steady-state
//! send allocates nothing.

use crate::core::Heartbeat;
use crate::net::Links;
use crate::wire::{self, Key, SealParams};
use rand::{RngCore, SeedableRng, TryRngCore};
use rand_chacha::ChaCha20Rng;

pub struct Outbound {
    cluster_id: u64,
    key: Key,
    /// Draws the nonces. Seeded from the OS on first use (and again after a failed
    /// seeding), instead of one `getrandom` syscall per datagram: XChaCha20-Poly1305
    /// needs nonces that never repeat, and 192 bits from a CSPRNG with a 256-bit OS
    /// seed do not, across restarts too. Nonces are public (they travel in the
    /// header), so nothing is gained by asking the kernel for each one.
    nonces: Option<ChaCha20Rng>,
    body: Vec<u8>,
    /// One sealed datagram per link.
    datagrams: Vec<Vec<u8>>,
}

impl Outbound {
    pub fn new(cluster_id: u64, key: Key) -> Outbound {
        Outbound {
            cluster_id,
            key,
            nonces: None,
            body: Vec::new(),
            datagrams: Vec::new(),
        }
    }

    /// Seals `hb` for every link and sends it. Nothing is sent if any datagram cannot
    /// be built: a beat missing on one link would read as that link failing.
    pub fn send(&mut self, hb: &Heartbeat, links: &Links) {
        // Link indices travel as one byte of associated data.
        let count = links.len().min(usize::from(u8::MAX) + 1);
        if let Err(e) = wire::encode_body_into(hb, &mut self.body) {
            tracing::error!("cannot build heartbeat: {e}");
            return;
        }
        let Some(nonces) = nonce_source(&mut self.nonces) else {
            return;
        };
        let params = SealParams {
            from: hb.from,
            cluster_id: self.cluster_id,
            key: &self.key,
        };
        if self.datagrams.len() < count {
            self.datagrams.resize_with(count, Vec::new);
        }
        // Sealed for each link's configured index: a node absent from some link has
        // fewer sockets than the cluster has links.
        for (plan, out) in links.plans().zip(&mut self.datagrams[..count]) {
            let Ok(link) = u8::try_from(plan.index) else {
                tracing::error!(
                    "cannot build heartbeat: link index {} too large",
                    plan.index
                );
                return;
            };
            let mut nonce = [0u8; 24];
            nonces.fill_bytes(&mut nonce);
            if let Err(e) = wire::seal_into(&self.body, params, link, nonce, out) {
                tracing::error!("cannot build heartbeat: {e}");
                return;
            }
        }
        links.send_to_all(&self.datagrams[..count]);
    }
}

fn nonce_source(nonces: &mut Option<ChaCha20Rng>) -> Option<&mut ChaCha20Rng> {
    if nonces.is_none() {
        let mut seed = [0u8; 32];
        match rand::rngs::OsRng.try_fill_bytes(&mut seed) {
            Ok(()) => *nonces = Some(ChaCha20Rng::from_seed(seed)),
            // Never send with a predictable nonce; skipping one beat is harmless.
            Err(e) => tracing::error!("OS random generator failed, heartbeat not sent: {e}"),
        }
    }
    nonces.as_mut()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nonces_differ_from_beat_to_beat_and_between_senders() {
        let mut a = Outbound::new(1, Key::new([1; 32]));
        let mut b = Outbound::new(1, Key::new([1; 32]));
        let draw = |o: &mut Outbound| {
            let mut n = [0u8; 24];
            nonce_source(&mut o.nonces)
                .expect("os rng")
                .fill_bytes(&mut n);
            n
        };
        let (a1, a2, b1) = (draw(&mut a), draw(&mut a), draw(&mut b));
        assert_ne!(a1, a2);
        assert_ne!(a1, b1, "each sender seeds from the OS, not from a constant");
    }
}
