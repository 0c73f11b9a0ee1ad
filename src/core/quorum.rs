//! Quorum arithmetic as small pure functions (raft-rs style), with table tests.

/// Votes needed for quorum: more than half of the expected votes.
pub fn quorum_votes(expected: u32) -> u32 {
    expected / 2 + 1
}

/// Whether `present` votes make a quorum. In `two_node` mode each of the two nodes has
/// quorum alone (corosync's `two_node: 1`); safety then rests on fencing.
pub fn is_quorate(present: u32, expected: u32, two_node: bool) -> bool {
    if two_node {
        return present >= 1;
    }
    present >= quorum_votes(expected)
}

/// Given the echoes of a quorum's grants (each voter's weight and the send time it
/// acknowledged), the latest send time that at least `needed` votes acknowledged: the
/// owner's lease runs from there. Returns `None` if the grants do not add up.
pub fn quorum_acknowledged<T: Ord + Copy>(grants: &[(u32, T)], needed: u32) -> Option<T> {
    let mut sorted: Vec<(u32, T)> = grants.to_vec();
    sorted.sort_by_key(|g| std::cmp::Reverse(g.1));
    let mut votes = 0u32;
    for (weight, at) in sorted {
        votes = votes.saturating_add(weight);
        if votes >= needed {
            return Some(at);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn majority_table() {
        for (expected, needed) in [(1, 1), (2, 2), (3, 2), (4, 3), (5, 3), (6, 4), (7, 4)] {
            assert_eq!(quorum_votes(expected), needed, "expected {expected}");
        }
    }

    #[test]
    fn quorate_table() {
        assert!(is_quorate(2, 3, false));
        assert!(!is_quorate(1, 3, false));
        assert!(!is_quorate(2, 4, false), "half is not a majority");
        assert!(is_quorate(3, 4, false));
        assert!(!is_quorate(1, 2, false));
        assert!(
            is_quorate(1, 2, true),
            "two_node: one node alone is quorate"
        );
        assert!(!is_quorate(0, 2, true));
    }

    #[test]
    fn acknowledged_takes_the_quorum_th_latest() {
        // Three voters acknowledged sends at t=10, 30, 20; two votes needed: the lease
        // can only run from the second-latest acknowledgement.
        assert_eq!(
            quorum_acknowledged(&[(1, 10), (1, 30), (1, 20)], 2),
            Some(20)
        );
        assert_eq!(
            quorum_acknowledged(&[(1, 10), (1, 30), (1, 20)], 3),
            Some(10)
        );
        assert_eq!(quorum_acknowledged(&[(1, 10)], 2), None);
        assert_eq!(quorum_acknowledged(&[(2, 10), (1, 30)], 2), Some(10));
        assert_eq!(quorum_acknowledged::<u64>(&[], 1), None);
    }
}
