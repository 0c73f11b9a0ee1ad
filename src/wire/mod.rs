//! The heartbeat datagram: a [`Heartbeat`](crate::core::Heartbeat) sealed with
//! XChaCha20-Poly1305, and the anti-replay window a receiver keeps per peer and link.
//!
//! Pure: no IO, no clock, no randomness (the caller hands in the 24-byte nonce, drawn at
//! random by the sender so that a restart can never reuse one). That keeps the encoding
//! deterministic (golden-byte tests) and lets the decoder be fuzzed in isolation.
//!
//! # Datagram layout (version 2, all integers big-endian)
//!
//! Cleartext header, 44 bytes:
//!
//! | offset | size | field                                                            |
//! |-------:|-----:|------------------------------------------------------------------|
//! |      0 |    4 | magic `b"TNDM"`                                                  |
//! |      4 |    1 | version, `2`                                                     |
//! |      5 |    1 | header flags, `0` (anything else is `Malformed` after auth)      |
//! |      6 |    8 | cluster id                                                       |
//! |     14 |    2 | sender `NodeId`                                                  |
//! |     16 |    4 | key id: fingerprint of the sealing key ([`Key::id`])             |
//! |     20 |   24 | XChaCha20-Poly1305 nonce                                         |
//!
//! Then the ciphertext of the body followed by the 16-byte Poly1305 tag. The AEAD
//! associated data is the 44 header bytes followed by one byte that is *not* sent: the
//! index of the link the datagram travels on. A datagram captured on link 0 and replayed
//! onto link 1 therefore fails authentication, so per-link liveness cannot be faked.
//!
//! Body (plaintext), with `NodeId` as u16, `GroupId` as u32, `Term` and `Instant` (ns)
//! as u64, `bool` as one byte that must be 0 or 1, `Option<NodeId>` as u16 with 0 =
//! `None` (NodeId 0 is never valid in a config):
//!
//! ```text
//! incarnation u64 | seq u64 | sent_at u64 | config_digest u64 | node flags u8
//! echoes:  u8  count (<= MAX_NODES)  x { peer u16, seq u64, sent_at u64, held_ns u64 }   26 B
//! view:    u8  count (<= MAX_NODES)  x { node u16, up bool }                              3 B
//! groups:  u16 count (<= MAX_GROUPS) x { group u32, term u64, owner opt-u16, owner_inc u64,
//!                                        phase u8, handoff_to opt-u16 }                  25 B
//! grants:  u16 count (<= MAX_GROUPS) x { group u32, term u64, to u16, echo_sent_at u64 } 22 B
//! fenced:  u8  count (<= MAX_NODES)  x { node u16, incarnation u64 }                     10 B
//! refuses: u16 count (<= MAX_GROUPS) x { group u32 }                                      4 B
//! admin:   entries:  u16 count (<= MAX_ADMIN_ENTRIES), strictly increasing keys, x
//!                    { kind u8, key, counter u64, origin u16, state u8, [expires_at u64] }
//!          cleanups: u16 count (<= MAX_GROUPS) x { group u32, counter u32 }
//! ```
//!
//! An admin entry's key depends on its kind: 0 cluster maintenance (nothing), 1 standby
//! (node u16, not 0), 2 group maintenance (group u32), 3 move (group u32, target u16: 0
//! exactly when cleared), 4 ban (group u32, node u16, not 0). `state` bit 0 is "in
//! force", bit 1 "expires", in which case `expires_at` (sender's clock) follows; any
//! other bit is `Malformed`. Version 1 had a single last-writer-wins admin record.
//!
//! The body must end exactly after the cleanups; trailing bytes are `Malformed`. The
//! encoding is canonical (decode then encode gives back the same bytes), which the fuzz
//! target checks. A whole datagram is at most [`MAX_DATAGRAM`] bytes: [`seal`] refuses to
//! build a larger one and [`open`] drops one as `Oversized` before any other work. A
//! heartbeat with every list at its maximum does not fit; real clusters are far below.
//!
//! # Receiving
//!
//! [`open`] checks framing, cluster and key, authenticates and decodes. Replay checking
//! needs state and is separate: after `open` succeeds (and the caller has checked that
//! the sender is a known node other than itself), [`ReplayGuard::check_and_accept`]
//! decides whether this `(incarnation, seq)` is new for that peer and link. Only
//! authenticated packets ever advance a window.
//!
//! # Without allocating
//!
//! The daemon sends and receives hundreds of datagrams a second, so each step has a
//! variant that works in buffers the caller keeps: [`encode_body_into`] and
//! [`seal_into`] (encode a heartbeat once, seal it for each link; the same bytes as
//! [`seal`]), [`open_in_place`] (decrypt in the receive buffer; the same verdicts as
//! [`open`]). Only the decoded [`Heartbeat`](crate::core::Heartbeat) owns memory: its
//! non-empty lists.

mod codec;
mod crypto;
mod drop;
mod replay;

pub use codec::{decode_body, encode_body, encode_body_into, EncodeError};
pub(crate) use crypto::keystream;
pub use crypto::{open, open_in_place, peek_sender, seal, seal_into, Key, Keyring, SealParams};
pub use drop::{DropCounters, DropReason};
pub use replay::{ReplayGuard, ReplayWindow, REPLAY_WINDOW};

/// First bytes of every tandem heartbeat datagram.
pub const MAGIC: [u8; 4] = *b"TNDM";
/// The only datagram version this build speaks.
pub const VERSION: u8 = 2;
/// Bytes of the cleartext header.
pub const HEADER_LEN: usize = 44;
/// Bytes of the Poly1305 tag that follows the ciphertext.
pub const TAG_LEN: usize = 16;
/// Largest datagram tandem sends or accepts.
pub const MAX_DATAGRAM: usize = 16 * 1024;

#[cfg(test)]
mod tests;
