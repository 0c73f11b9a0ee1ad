//! Anti-replay window per (peer, link).

use tandem::core::NodeId;
use tandem::wire::{DropReason, ReplayGuard, ReplayWindow, REPLAY_WINDOW};

fn take(w: &mut ReplayWindow, inc: u64, seq: u64) -> Result<(), DropReason> {
    w.check(inc, seq)?;
    w.accept(inc, seq);
    Ok(())
}

#[test]
fn first_packet_is_accepted_and_duplicate_dropped() {
    let mut w = ReplayWindow::new();
    assert_eq!(take(&mut w, 1, 10), Ok(()));
    assert_eq!(take(&mut w, 1, 10), Err(DropReason::Replayed));
    assert_eq!(take(&mut w, 1, 11), Ok(()));
    assert_eq!(take(&mut w, 1, 11), Err(DropReason::Replayed));
    assert_eq!(take(&mut w, 1, 10), Err(DropReason::Replayed));
}

#[test]
fn reordered_within_window_is_accepted_once() {
    let mut w = ReplayWindow::new();
    assert_eq!(take(&mut w, 1, 1000), Ok(()));
    assert_eq!(take(&mut w, 1, 1005), Ok(()));
    for seq in [1003, 1001, 1004, 1002] {
        assert_eq!(take(&mut w, 1, seq), Ok(()), "seq {seq}");
    }
    for seq in 1000..=1005 {
        assert_eq!(take(&mut w, 1, seq), Err(DropReason::Replayed), "seq {seq}");
    }
    // The oldest seq still inside the window is accepted once.
    let oldest = 1005 - (REPLAY_WINDOW - 1);
    assert_eq!(take(&mut w, 1, oldest), Ok(()));
    assert_eq!(take(&mut w, 1, oldest), Err(DropReason::Replayed));
}

#[test]
fn older_than_window_is_dropped() {
    let mut w = ReplayWindow::new();
    assert_eq!(take(&mut w, 1, 1000), Ok(()));
    assert_eq!(w.check(1, 1000 - REPLAY_WINDOW), Err(DropReason::Replayed));
    assert_eq!(w.check(1, 0), Err(DropReason::Replayed));
    assert_eq!(w.check(1, 1000 - REPLAY_WINDOW + 1), Ok(()));
}

#[test]
fn big_jump_clears_history() {
    let mut w = ReplayWindow::new();
    assert_eq!(take(&mut w, 1, 5), Ok(()));
    assert_eq!(take(&mut w, 1, 5 + 10 * REPLAY_WINDOW), Ok(()));
    // seq 5 is now far outside the window.
    assert_eq!(w.check(1, 5), Err(DropReason::Replayed));
    // A seq just behind the new top was never seen.
    assert_eq!(take(&mut w, 1, 4 + 10 * REPLAY_WINDOW), Ok(()));
}

#[test]
fn new_incarnation_resets_and_old_one_is_stale() {
    let mut w = ReplayWindow::new();
    assert_eq!(take(&mut w, 5, 1_000_000), Ok(()));
    // The peer restarted: seq starts over in a higher incarnation.
    assert_eq!(take(&mut w, 6, 1), Ok(()));
    assert_eq!(take(&mut w, 6, 1), Err(DropReason::Replayed));
    assert_eq!(take(&mut w, 6, 2), Ok(()));
    assert_eq!(
        take(&mut w, 5, 1_000_001),
        Err(DropReason::StaleIncarnation)
    );
    assert_eq!(w.check(0, 0), Err(DropReason::StaleIncarnation));
}

#[test]
fn check_alone_does_not_advance_the_window() {
    let mut w = ReplayWindow::new();
    assert_eq!(take(&mut w, 1, 10), Ok(()));
    // A forged packet is checked, then fails authentication, so is never accepted.
    assert_eq!(w.check(9, 1_000), Ok(()));
    assert_eq!(w.check(1, 11), Ok(()));
    assert_eq!(take(&mut w, 1, 11), Ok(()));
    assert_eq!(take(&mut w, 1, 9), Ok(()));
}

#[test]
fn extreme_values_do_not_panic() {
    let mut w = ReplayWindow::new();
    assert_eq!(take(&mut w, u64::MAX, u64::MAX), Ok(()));
    assert_eq!(take(&mut w, u64::MAX, 0), Err(DropReason::Replayed));
    assert_eq!(take(&mut w, u64::MAX, u64::MAX - 1), Ok(()));
    assert_eq!(take(&mut w, u64::MAX, u64::MAX), Err(DropReason::Replayed));
}

#[test]
fn guard_keeps_one_window_per_peer_and_link() {
    let mut g = ReplayGuard::new();
    let (a, b) = (NodeId(1), NodeId(2));
    assert_eq!(g.check_and_accept(a, 0, 1, 7), Ok(()));
    // The same heartbeat arriving on the other link, or from another peer, is new.
    assert_eq!(g.check_and_accept(a, 1, 1, 7), Ok(()));
    assert_eq!(g.check_and_accept(b, 0, 1, 7), Ok(()));
    assert_eq!(g.check_and_accept(a, 0, 1, 7), Err(DropReason::Replayed));
    assert_eq!(g.check_and_accept(a, 1, 1, 7), Err(DropReason::Replayed));
    assert_eq!(
        g.check_and_accept(a, 1, 0, 8),
        Err(DropReason::StaleIncarnation)
    );
    g.forget(a);
    assert_eq!(g.check_and_accept(a, 0, 1, 7), Ok(()));
    assert_eq!(g.check_and_accept(b, 0, 1, 7), Err(DropReason::Replayed));
}

/// Compare with a model (a set of everything seen) on a pseudo-random stream.
#[test]
fn window_matches_a_simple_model() {
    use std::collections::HashSet;
    let mut w = ReplayWindow::new();
    let mut seen: HashSet<(u64, u64)> = HashSet::new();
    let (mut inc, mut top) = (1u64, 0u64);
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for _ in 0..20_000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let (i, seq) = match x % 100 {
            0 => (inc + 1, x % 50),
            1 => (inc.saturating_sub(1), x % 500),
            2..=60 => (inc, top + 1 + x % 3),
            _ => (inc, top.saturating_sub(x % 200)),
        };
        let expected = if i < inc {
            Err(DropReason::StaleIncarnation)
        } else if i > inc || seq > top {
            Ok(())
        } else if top - seq >= REPLAY_WINDOW || seen.contains(&(i, seq)) {
            Err(DropReason::Replayed)
        } else {
            Ok(())
        };
        assert_eq!(
            take(&mut w, i, seq),
            expected,
            "inc {i} seq {seq} (top {inc}/{top})"
        );
        if expected.is_ok() {
            if i > inc {
                inc = i;
                top = seq;
            } else {
                top = top.max(seq);
            }
            seen.insert((i, seq));
        }
    }
}
