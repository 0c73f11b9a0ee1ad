//! Why a received datagram was dropped, and per-reason counters.
//!
//! Every drop is counted under a stable snake_case name (JSON keys in `tandemctl status`,
//! Prometheus label values), so an operator can tell a misconfigured key from an attack
//! from a flaky link without reading logs.

use std::collections::BTreeMap;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
pub enum DropReason {
    #[error("datagram larger than the maximum")]
    Oversized,
    #[error("datagram shorter than header and tag")]
    Truncated,
    #[error("not a tandem datagram (bad magic)")]
    BadMagic,
    #[error("unsupported datagram version")]
    BadVersion,
    #[error("datagram from another cluster")]
    WrongCluster,
    #[error("sealed with a key this node does not have")]
    UnknownKey,
    #[error("authentication failed")]
    AuthFailed,
    #[error("authenticated but malformed body")]
    Malformed,
    #[error("sender is not a configured node")]
    UnknownSender,
    #[error("datagram claims to come from this node")]
    FromSelf,
    #[error("sequence number already seen or too old")]
    Replayed,
    #[error("incarnation older than one already seen")]
    StaleIncarnation,
}

impl DropReason {
    /// Every reason, in declaration order (the order of `as_map` is alphabetical).
    pub const ALL: [DropReason; 12] = [
        DropReason::Oversized,
        DropReason::Truncated,
        DropReason::BadMagic,
        DropReason::BadVersion,
        DropReason::WrongCluster,
        DropReason::UnknownKey,
        DropReason::AuthFailed,
        DropReason::Malformed,
        DropReason::UnknownSender,
        DropReason::FromSelf,
        DropReason::Replayed,
        DropReason::StaleIncarnation,
    ];

    /// Stable name: used as JSON key and metric label, so never rename one.
    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::Oversized => "oversized",
            DropReason::Truncated => "truncated",
            DropReason::BadMagic => "bad_magic",
            DropReason::BadVersion => "bad_version",
            DropReason::WrongCluster => "wrong_cluster",
            DropReason::UnknownKey => "unknown_key",
            DropReason::AuthFailed => "auth_failed",
            DropReason::Malformed => "malformed",
            DropReason::UnknownSender => "unknown_sender",
            DropReason::FromSelf => "from_self",
            DropReason::Replayed => "replayed",
            DropReason::StaleIncarnation => "stale_incarnation",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// One counter per [`DropReason`].
#[derive(Default, Clone, Debug, PartialEq, Eq)]
pub struct DropCounters {
    counts: [u64; DropReason::ALL.len()],
}

impl DropCounters {
    pub fn count(&mut self, reason: DropReason) {
        let c = &mut self.counts[reason.index()];
        *c = c.saturating_add(1);
    }

    pub fn get(&self, reason: DropReason) -> u64 {
        self.counts[reason.index()]
    }

    pub fn total(&self) -> u64 {
        self.counts.iter().fold(0u64, |a, c| a.saturating_add(*c))
    }

    /// Every reason (zeros included, so dashboards see a stable set of keys).
    pub fn as_map(&self) -> BTreeMap<&'static str, u64> {
        DropReason::ALL
            .iter()
            .map(|r| (r.as_str(), self.get(*r)))
            .collect()
    }
}
