//! The fault schedule of a chaos run: which faults, when, on whom and for how long,
//! drawn up front from the seed alone so that a run can be replayed and discussed.

use std::time::Duration;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

/// Gaps between fault injections are drawn from this range (ms).
const GAP_MS: (u64, u64) = (2_000, 8_000);

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FaultKind {
    /// kill -9 of tandemd and every link down; "rebooted" (VIP cleared, links up, start)
    /// when healed.
    PowerLoss,
    /// kill -9 of tandemd only: the VIP stays configured; restarted when healed.
    DaemonCrash,
    /// SIGSTOP of tandemd; SIGCONT when healed.
    Pause,
    /// One heartbeat link of one node cut at the switch.
    CutLink,
    /// Every link of one node cut (the client cannot see it either).
    Isolate,
    /// Two sides that cannot reach each other (the client reaches both).
    Partition,
    /// 30 % random loss between nodes on every link.
    Loss,
    /// SIGTERM (handover), then start again.
    GracefulRestart,
}

impl FaultKind {
    pub const ALL: [FaultKind; 8] = [
        FaultKind::PowerLoss,
        FaultKind::DaemonCrash,
        FaultKind::Pause,
        FaultKind::CutLink,
        FaultKind::Isolate,
        FaultKind::Partition,
        FaultKind::Loss,
        FaultKind::GracefulRestart,
    ];

    pub fn name(self) -> &'static str {
        match self {
            FaultKind::PowerLoss => "power-loss",
            FaultKind::DaemonCrash => "daemon-crash",
            FaultKind::Pause => "pause",
            FaultKind::CutLink => "cut-link",
            FaultKind::Isolate => "isolate",
            FaultKind::Partition => "partition",
            FaultKind::Loss => "loss",
            FaultKind::GracefulRestart => "graceful-restart",
        }
    }

    /// Relative frequency in the schedule.
    fn weight(self) -> u32 {
        match self {
            FaultKind::Pause => 3,
            FaultKind::Loss => 1,
            _ => 2,
        }
    }

    /// Range of the fault's duration (ms) before it is healed.
    fn duration_ms(self) -> (u64, u64) {
        match self {
            FaultKind::PowerLoss => (2_000, 8_000),
            FaultKind::DaemonCrash => (500, 4_000),
            FaultKind::Pause => (500, 5_000),
            FaultKind::CutLink => (2_000, 8_000),
            FaultKind::Isolate | FaultKind::Partition => (2_000, 6_000),
            FaultKind::Loss => (3_000, 10_000),
            FaultKind::GracefulRestart => (300, 2_000),
        }
    }

    /// Faults that act on the daemon itself (the janitor leaves such nodes alone).
    pub(super) fn on_daemon(self) -> bool {
        matches!(
            self,
            FaultKind::PowerLoss
                | FaultKind::DaemonCrash
                | FaultKind::Pause
                | FaultKind::GracefulRestart
        )
    }

    /// Faults that take their target out of the cluster (count against the minority).
    pub(super) fn takes_node_down(self) -> bool {
        !matches!(self, FaultKind::CutLink | FaultKind::Loss)
    }
}

/// Whom a fault hits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Target {
    /// The node whose MAC last answered for the VIP (the fallback when none did).
    Owner,
    Node(usize),
}

/// One fault of the schedule, as drawn from the seed.
#[derive(Debug, Clone, Serialize)]
pub struct PlannedFault {
    pub index: usize,
    /// Milliseconds after the chaos phase began.
    pub at_ms: u64,
    pub kind: FaultKind,
    pub target: Target,
    /// Used when the target is the owner and nobody answers for the VIP.
    pub fallback: usize,
    pub duration_ms: u64,
    /// Cut link: which link.
    pub link: usize,
    /// Partition in a 5-node lab: a second node on the target's (minority) side.
    pub partner: Option<usize>,
}

impl PlannedFault {
    pub fn describe(&self) -> String {
        let who = match self.target {
            Target::Owner => format!("owner (else n{})", self.fallback),
            Target::Node(n) => format!("n{n}"),
        };
        let what = match self.kind {
            FaultKind::CutLink => format!("cut link {} of {who}", self.link),
            FaultKind::Partition => match self.partner {
                Some(p) => format!("partition {who} + n{p} from the rest"),
                None => format!("partition {who} from the rest"),
            },
            FaultKind::Loss => "30% loss between nodes".to_string(),
            k => format!("{} {who}", k.name()),
        };
        format!(
            "+{:>7.1}s  {what} for {:.1}s",
            self.at_ms as f64 / 1000.0,
            self.duration_ms as f64 / 1000.0
        )
    }
}

/// The schedule of a run: every fault, its time, target and duration, from the seed alone.
pub fn schedule(seed: u64, nodes: usize, links: usize, duration: Duration) -> Vec<PlannedFault> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x6368_616f_735f_6c61);
    let total: u32 = FaultKind::ALL.iter().map(|k| k.weight()).sum();
    let end_ms = duration.as_millis() as u64;
    let mut at = 0;
    let mut out = Vec::new();
    loop {
        at += rng.random_range(GAP_MS.0..=GAP_MS.1);
        if at >= end_ms {
            break;
        }
        let mut pick = rng.random_range(0..total);
        let mut kind = FaultKind::Pause;
        for k in FaultKind::ALL {
            if pick < k.weight() {
                kind = k;
                break;
            }
            pick -= k.weight();
        }
        let (lo, hi) = kind.duration_ms();
        let node = rng.random_range(1..=nodes);
        let owner = rng.random_bool(0.6);
        let fallback = rng.random_range(1..=nodes);
        let link = rng.random_range(0..links);
        let partner = (nodes >= 5 && rng.random_bool(0.5))
            .then(|| (node % nodes) + 1)
            .filter(|&p| p != node);
        out.push(PlannedFault {
            index: out.len() + 1,
            at_ms: at,
            kind,
            target: if owner && kind != FaultKind::Loss {
                Target::Owner
            } else {
                Target::Node(node)
            },
            fallback,
            duration_ms: rng.random_range(lo..=hi),
            link,
            partner,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_is_a_function_of_the_seed() {
        let d = Duration::from_secs(300);
        let a = schedule(7, 3, 2, d);
        let b = schedule(7, 3, 2, d);
        let c = schedule(8, 3, 2, d);
        let key = |s: &[PlannedFault]| -> Vec<(u64, FaultKind, u64)> {
            s.iter().map(|p| (p.at_ms, p.kind, p.duration_ms)).collect()
        };
        assert_eq!(key(&a), key(&b));
        assert_ne!(key(&a), key(&c));
        // 300 s at 2..8 s gaps: 37..150 faults, every kind drawn, gaps in range.
        assert!((37..=150).contains(&a.len()), "{}", a.len());
        for k in FaultKind::ALL {
            assert!(a.iter().any(|p| p.kind == k), "{k:?} never drawn");
        }
        for w in a.windows(2) {
            let gap = w[1].at_ms - w[0].at_ms;
            assert!((GAP_MS.0..=GAP_MS.1).contains(&gap), "{gap}");
        }
        assert!(a.iter().all(|p| p.at_ms < 300_000 && p.link < 2));
        assert!(a.iter().all(|p| match p.target {
            Target::Node(n) => (1..=3).contains(&n),
            Target::Owner => true,
        }));
    }
}
