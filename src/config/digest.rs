//! The config digest: a keyed hash of the canonical config, so nodes can compare
//! configs while a reader of `status` (the read-only `tandem` group) who cannot read
//! the authkey cannot test a guess of the config's content (a fence password, say).
//!
//! SipHash-2-4, a keyed pseudo-random function with a 64-bit output, under a 128-bit
//! key derived from the cluster's authkey. The derivation is the XChaCha20 keystream
//! at a nonce used for nothing else (like the wire's key ids), so the digest key is
//! independent of the key that seals heartbeats. Nodes with the same config and the
//! same `cluster.authkey` agree on the digest.

use std::hash::Hasher;

/// Nonce used only to derive the digest key. Data nonces are random, so the chance
/// that one equals this constant is negligible (2^-192 per datagram).
const DIGEST_KEY_NONCE: [u8; 24] = *b"tandem config digest v1\0";

/// The keyed digest of `canonical` under `authkey`.
pub fn keyed_digest(authkey: &[u8; 32], canonical: &[u8]) -> u64 {
    let (k0, k1) = digest_key(authkey);
    // std's SipHasher is deprecated only as a HashMap hasher (its output may change
    // across Rust releases for `Hash` impls); `write` on raw bytes is SipHash-2-4
    // as specified, which is what a stable, keyed digest needs.
    #[allow(deprecated)]
    let mut h = std::hash::SipHasher::new_with_keys(k0, k1);
    h.write(canonical);
    h.finish()
}

fn digest_key(authkey: &[u8; 32]) -> (u64, u64) {
    let mut stream = [0u8; 16];
    crate::wire::keystream(authkey, &DIGEST_KEY_NONCE, &mut stream);
    let (a, b) = stream.split_at(8);
    let word = |s: &[u8]| {
        let mut w = [0u8; 8];
        w.copy_from_slice(s);
        u64::from_le_bytes(w)
    };
    (word(a), word(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_key_same_digest_other_key_other_digest() {
        let text = b"tandem-config-v1\ncluster name=\"web\"\n";
        let k1 = [1u8; 32];
        let k2 = [2u8; 32];
        assert_eq!(keyed_digest(&k1, text), keyed_digest(&k1, text));
        assert_ne!(keyed_digest(&k1, text), keyed_digest(&k2, text));
        assert_ne!(keyed_digest(&k1, text), keyed_digest(&k1, b"other"));
        // Not the unkeyed hash a reader could compute from a guess.
        assert_ne!(keyed_digest(&k1, text), crate::core::ids::fnv1a64(text));
    }

    #[test]
    fn the_digest_is_stable_across_releases() {
        // A rolling upgrade compares digests between versions: pin one value.
        assert_eq!(
            format!("{:016x}", keyed_digest(&[7u8; 32], b"tandem-config-v1\n")),
            PINNED
        );
    }

    const PINNED: &str = "7924db34bc002bf9";
}
