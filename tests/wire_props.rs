//! Property tests of the sealed heartbeat: round trips, tamper detection, key rotation.

use proptest::prelude::*;
use proptest::sample::Index;
use std::collections::BTreeMap;
use tandem::core::admin_state::{AdminEntry, AdminKey, AdminValue, Expiry, Stamp};
use tandem::core::message::{
    AdminState, Echo, FenceRecord, Grant, GroupReport, Heartbeat, NodeFlags, PeerView, Phase,
    MAX_GROUPS, MAX_NODES,
};
use tandem::core::{GroupId, Instant, NodeId, Term};
use tandem::wire::{
    encode_body_into, open, open_in_place, peek_sender, seal, seal_into, DropReason, EncodeError,
    Key, Keyring, SealParams, MAX_DATAGRAM,
};

fn node() -> impl Strategy<Value = NodeId> {
    any::<u16>().prop_map(NodeId)
}

fn opt_node() -> impl Strategy<Value = Option<NodeId>> {
    prop::option::of((1u16..).prop_map(NodeId))
}

fn group() -> impl Strategy<Value = GroupId> {
    any::<u32>().prop_map(GroupId)
}

fn instant() -> impl Strategy<Value = Instant> {
    any::<u64>().prop_map(Instant::from_nanos)
}

fn phase() -> impl Strategy<Value = Phase> {
    prop_oneof![
        Just(Phase::Candidate),
        Just(Phase::Starting),
        Just(Phase::Running),
        Just(Phase::Stopping),
        Just(Phase::Released),
        Just(Phase::Failed),
    ]
}

/// One admin entry of any kind, as the codec can carry it (the lifetime does not travel).
fn admin_entry() -> impl Strategy<Value = AdminEntry> {
    (
        0u8..5,
        group(),
        (1u16..).prop_map(NodeId),
        (any::<u64>(), node()),
        any::<bool>(),
        prop::option::of(instant()),
    )
        .prop_map(|(kind, g, n, (counter, origin), on, at)| {
            let key = match kind {
                0 => AdminKey::Maintenance,
                1 => AdminKey::Standby(n),
                2 => AdminKey::GroupMaintenance(g),
                3 => AdminKey::Move(g),
                _ => AdminKey::Ban(g, n),
            };
            let value = match (key, on) {
                (_, false) => AdminValue::Cleared,
                (AdminKey::Move(_), true) => AdminValue::MoveTo(n),
                (_, true) => AdminValue::On,
            };
            AdminEntry {
                key,
                stamp: Stamp { counter, origin },
                value,
                expires: at.map(|at| Expiry {
                    at,
                    lifetime: std::time::Duration::ZERO,
                }),
            }
        })
}

fn admin() -> impl Strategy<Value = AdminState> {
    (
        prop::collection::vec(admin_entry(), 0..8),
        prop::collection::vec((group(), any::<u32>()), 0..6),
    )
        .prop_map(|(entries, cleanups)| {
            // One entry per key, in key order, as the core keeps them.
            let entries: BTreeMap<AdminKey, AdminEntry> =
                entries.into_iter().map(|e| (e.key, e)).collect();
            AdminState {
                entries: entries.into_values().collect(),
                cleanups,
            }
        })
}

/// Heartbeats within the limits and small enough to fit a datagram.
fn heartbeat() -> impl Strategy<Value = Heartbeat> {
    let echo = (node(), any::<u64>(), instant(), any::<u64>()).prop_map(
        |(peer, seq, sent_at, held_ns)| Echo {
            peer,
            seq,
            sent_at,
            held_ns,
        },
    );
    let view = (node(), any::<bool>()).prop_map(|(node, up)| PeerView { node, up });
    let report = (
        group(),
        any::<u64>(),
        opt_node(),
        any::<u64>(),
        phase(),
        opt_node(),
    )
        .prop_map(
            |(group, term, owner, owner_incarnation, phase, handoff_to)| GroupReport {
                owner_incarnation,
                group,
                term: Term(term),
                owner,
                phase,
                handoff_to,
            },
        );
    let grant =
        (group(), any::<u64>(), node(), instant()).prop_map(|(group, term, to, echo_sent_at)| {
            Grant {
                group,
                term: Term(term),
                to,
                echo_sent_at,
            }
        });
    let fence =
        (node(), any::<u64>()).prop_map(|(node, incarnation)| FenceRecord { node, incarnation });
    (
        (
            node(),
            any::<u64>(),
            any::<u64>(),
            instant(),
            any::<u64>(),
            any::<u8>(),
        ),
        prop::collection::vec(echo, 0..8),
        prop::collection::vec(view, 0..8),
        prop::collection::vec(report, 0..24),
        prop::collection::vec(grant, 0..24),
        prop::collection::vec(fence, 0..4),
        prop::collection::vec(any::<u32>().prop_map(GroupId), 0..8),
        admin(),
    )
        .prop_map(
            |(
                (from, incarnation, seq, sent_at, config_digest, flags),
                echoes,
                view,
                groups,
                grants,
                fenced,
                refuses,
                admin,
            )| {
                Heartbeat {
                    from,
                    incarnation,
                    seq,
                    sent_at,
                    config_digest,
                    flags: NodeFlags(flags),
                    echoes,
                    view,
                    groups,
                    grants,
                    fenced,
                    refuses,
                    admin,
                }
            },
        )
}

fn nonce() -> impl Strategy<Value = [u8; 24]> {
    any::<[u8; 24]>()
}

fn ring(key: [u8; 32]) -> Keyring {
    Keyring::new(Key::new(key))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn seal_open_roundtrip(
        hb in heartbeat(), cluster in any::<u64>(), link in any::<u8>(),
        key in any::<[u8; 32]>(), nonce in nonce(),
    ) {
        let dg = seal(&hb, cluster, link, &Key::new(key), nonce).unwrap();
        prop_assert!(dg.len() <= MAX_DATAGRAM);
        prop_assert_eq!(peek_sender(&dg), Some(hb.from));
        let opened = open(&dg, cluster, link, &ring(key)).unwrap();
        prop_assert_eq!(&opened, &hb);
        // Deterministic: the same inputs give the same bytes.
        prop_assert_eq!(seal(&opened, cluster, link, &Key::new(key), nonce).unwrap(), dg);
    }

    #[test]
    fn any_bit_flip_is_rejected(
        hb in heartbeat(), key in any::<[u8; 32]>(), nonce in nonce(), at in any::<Index>(),
        bit in 0u8..8,
    ) {
        let mut dg = seal(&hb, 1, 0, &Key::new(key), nonce).unwrap();
        let i = at.index(dg.len());
        dg[i] ^= 1 << bit;
        let _ = peek_sender(&dg);
        let err = open(&dg, 1, 0, &ring(key)).unwrap_err();
        let expected: &[DropReason] = match i {
            0..=3 => &[DropReason::BadMagic],
            4 => &[DropReason::BadVersion],
            6..=13 => &[DropReason::WrongCluster],
            16..=19 => &[DropReason::UnknownKey],
            _ => &[DropReason::AuthFailed],
        };
        prop_assert!(expected.contains(&err), "flip at {} gave {:?}", i, err);
    }

    #[test]
    fn any_truncation_is_rejected(
        hb in heartbeat(), key in any::<[u8; 32]>(), nonce in nonce(), at in any::<Index>(),
    ) {
        let dg = seal(&hb, 1, 0, &Key::new(key), nonce).unwrap();
        let len = at.index(dg.len());
        let err = open(&dg[..len], 1, 0, &ring(key)).unwrap_err();
        prop_assert!(
            matches!(err, DropReason::Truncated | DropReason::AuthFailed),
            "len {} gave {:?}", len, err
        );
    }

    #[test]
    fn wrong_cluster_is_rejected(
        hb in heartbeat(), cluster in any::<u64>(), other in any::<u64>(),
        key in any::<[u8; 32]>(), nonce in nonce(),
    ) {
        prop_assume!(cluster != other);
        let dg = seal(&hb, cluster, 0, &Key::new(key), nonce).unwrap();
        prop_assert_eq!(open(&dg, other, 0, &ring(key)), Err(DropReason::WrongCluster));
    }

    #[test]
    fn wrong_key_is_rejected(
        hb in heartbeat(), key in any::<[u8; 32]>(), other in any::<[u8; 32]>(), nonce in nonce(),
    ) {
        prop_assume!(key != other);
        let dg = seal(&hb, 1, 0, &Key::new(key), nonce).unwrap();
        let err = open(&dg, 1, 0, &ring(other)).unwrap_err();
        prop_assert!(matches!(err, DropReason::UnknownKey | DropReason::AuthFailed), "{:?}", err);
    }

    #[test]
    fn wrong_link_is_rejected(
        hb in heartbeat(), link in any::<u8>(), other in any::<u8>(),
        key in any::<[u8; 32]>(), nonce in nonce(),
    ) {
        prop_assume!(link != other);
        let dg = seal(&hb, 1, link, &Key::new(key), nonce).unwrap();
        prop_assert_eq!(open(&dg, 1, other, &ring(key)), Err(DropReason::AuthFailed));
    }

    #[test]
    fn key_rotation_accepts_both_keys(
        hb in heartbeat(), old in any::<[u8; 32]>(), new in any::<[u8; 32]>(), nonce in nonce(),
    ) {
        prop_assume!(old != new);
        let by_old = seal(&hb, 1, 0, &Key::new(old), nonce).unwrap();
        let by_new = seal(&hb, 1, 0, &Key::new(new), nonce).unwrap();
        // Phase 1: everyone has old as current, new as next. Phase 2: swapped.
        let phase1 = Keyring { current: Key::new(old), next: Some(Key::new(new)) };
        let phase2 = Keyring { current: Key::new(new), next: Some(Key::new(old)) };
        for ring in [&phase1, &phase2] {
            prop_assert_eq!(open(&by_old, 1, 0, ring), Ok(hb.clone()));
            prop_assert_eq!(open(&by_new, 1, 0, ring), Ok(hb.clone()));
        }
        // Phase 3: old key removed.
        let err = open(&by_old, 1, 0, &Keyring::new(Key::new(new))).unwrap_err();
        prop_assert!(matches!(err, DropReason::UnknownKey | DropReason::AuthFailed), "{:?}", err);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// The sender's allocation-free path (one body buffer, one datagram buffer, both
    /// reused dirty from the previous beat) puts exactly `seal`'s bytes on the wire.
    #[test]
    fn reused_buffers_seal_the_same_bytes(
        first in heartbeat(), hb in heartbeat(), cluster in any::<u64>(), link in any::<u8>(),
        key in any::<[u8; 32]>(), nonce in nonce(),
    ) {
        let key = Key::new(key);
        let params = |hb: &Heartbeat| SealParams { from: hb.from, cluster_id: cluster, key: &key };
        let (mut body, mut out) = (Vec::new(), Vec::new());
        encode_body_into(&first, &mut body).unwrap();
        seal_into(&body, params(&first), link, [7; 24], &mut out).unwrap();
        encode_body_into(&hb, &mut body).unwrap();
        seal_into(&body, params(&hb), link, nonce, &mut out).unwrap();
        prop_assert_eq!(&out, &seal(&hb, cluster, link, &key, nonce).unwrap());
    }

    /// The receiver's in-place path decides exactly like `open`, and a datagram that
    /// fails authentication is left as it came (so another key can be tried on it).
    #[test]
    fn opening_in_place_agrees_with_open(
        hb in heartbeat(), key in any::<[u8; 32]>(), nonce in nonce(), at in any::<Index>(),
        bit in 0u8..8, flip in any::<bool>(),
    ) {
        let mut dg = seal(&hb, 1, 0, &Key::new(key), nonce).unwrap();
        if flip {
            let i = at.index(dg.len());
            dg[i] ^= 1 << bit;
        }
        let expected = open(&dg, 1, 0, &ring(key));
        let mut buf = dg.clone();
        let got = open_in_place(&mut buf, 1, 0, &ring(key));
        prop_assert_eq!(&got, &expected);
        if got == Err(DropReason::AuthFailed) {
            prop_assert_eq!(&buf, &dg);
        }
    }
}

fn full_heartbeat() -> Heartbeat {
    let groups = (0..MAX_GROUPS as u32).map(GroupId);
    Heartbeat {
        from: NodeId(1),
        incarnation: 1,
        seq: 1,
        sent_at: Instant::ZERO,
        config_digest: 0,
        flags: NodeFlags::default(),
        echoes: (1..=MAX_NODES as u16)
            .map(|n| Echo {
                peer: NodeId(n),
                seq: 1,
                sent_at: Instant::ZERO,
                held_ns: 0,
            })
            .collect(),
        view: (1..=MAX_NODES as u16)
            .map(|n| PeerView {
                node: NodeId(n),
                up: true,
            })
            .collect(),
        groups: groups
            .clone()
            .map(|group| GroupReport {
                group,
                term: Term(1),
                owner: Some(NodeId(1)),
                phase: Phase::Running,
                handoff_to: None,
                owner_incarnation: 0,
            })
            .collect(),
        grants: groups
            .clone()
            .map(|group| Grant {
                group,
                term: Term(1),
                to: NodeId(2),
                echo_sent_at: Instant::ZERO,
            })
            .collect(),
        fenced: vec![],
        refuses: vec![],
        admin: AdminState::default(),
    }
}

#[test]
fn largest_heartbeat_that_fits_roundtrips_and_one_more_entry_is_refused() {
    // Every node and group reported and granted, every node fenced and in standby: that
    // alone is over 16 KiB, so drop cleanups until it fits, then add 16-byte entries
    // (groups in maintenance) until one more would not fit.
    let key = Key::new([5; 32]);
    let mut hb = full_heartbeat();
    hb.fenced = (1..=MAX_NODES as u16)
        .map(|n| FenceRecord {
            node: NodeId(n),
            incarnation: 1,
        })
        .collect();
    hb.admin.entries = (1..=MAX_NODES as u16)
        .map(|n| AdminEntry {
            key: AdminKey::Standby(NodeId(n)),
            stamp: Stamp::default(),
            value: AdminValue::On,
            expires: None,
        })
        .collect();
    hb.admin.cleanups = (0..MAX_GROUPS as u32).map(|g| (GroupId(g), 1)).collect();
    while matches!(
        seal(&hb, 9, 0, &key, [0; 24]),
        Err(EncodeError::TooLarge { .. })
    ) {
        hb.admin.cleanups.pop();
    }
    let mut next = 0u32;
    loop {
        let mut bigger = hb.clone();
        bigger.admin.entries.push(AdminEntry {
            key: AdminKey::GroupMaintenance(GroupId(next)),
            stamp: Stamp::default(),
            value: AdminValue::On,
            expires: None,
        });
        match seal(&bigger, 9, 0, &key, [0; 24]) {
            Ok(_) => {
                hb = bigger;
                next += 1;
            }
            Err(EncodeError::TooLarge { size, max }) => {
                assert_eq!(max, MAX_DATAGRAM);
                assert!(size > MAX_DATAGRAM && size <= MAX_DATAGRAM + 16, "{size}");
                break;
            }
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
    let dg = seal(&hb, 9, 0, &key, [0; 24]).unwrap();
    assert!(
        dg.len() <= MAX_DATAGRAM && dg.len() > MAX_DATAGRAM - 16,
        "{}",
        dg.len()
    );
    assert_eq!(open(&dg, 9, 0, &Keyring::new(key.clone())), Ok(hb.clone()));
}

#[test]
fn lists_beyond_limits_are_refused_by_the_encoder() {
    let key = Key::new([5; 32]);
    let mut hb = full_heartbeat();
    hb.view.push(PeerView {
        node: NodeId(999),
        up: false,
    });
    assert!(matches!(
        seal(&hb, 9, 0, &key, [0; 24]),
        Err(EncodeError::TooMany {
            list: "view",
            count: 65,
            max: 64
        })
    ));
    let mut hb = full_heartbeat();
    hb.groups[0].handoff_to = Some(NodeId(0));
    assert!(matches!(
        seal(&hb, 9, 0, &key, [0; 24]),
        Err(EncodeError::ReservedNodeId { .. })
    ));
}

#[test]
fn oversized_input_is_dropped_first() {
    let mut big = vec![0u8; MAX_DATAGRAM + 1];
    big[..4].copy_from_slice(b"XXXX");
    assert_eq!(open(&big, 1, 0, &ring([1; 32])), Err(DropReason::Oversized));
    assert_eq!(peek_sender(&big), None);
}

#[test]
fn short_garbage_is_classified() {
    let r = ring([1; 32]);
    assert_eq!(open(b"", 1, 0, &r), Err(DropReason::Truncated));
    assert_eq!(open(b"TN", 1, 0, &r), Err(DropReason::Truncated));
    assert_eq!(open(b"GET / HTTP/1.1", 1, 0, &r), Err(DropReason::BadMagic));
    // Version 1 (before per-entry admin state) and 3 are not this build's.
    assert_eq!(open(b"TNDM\x01", 1, 0, &r), Err(DropReason::BadVersion));
    assert_eq!(open(b"TNDM\x03", 1, 0, &r), Err(DropReason::BadVersion));
    assert_eq!(open(b"TNDM\x02\x00", 1, 0, &r), Err(DropReason::Truncated));
    assert_eq!(peek_sender(b"TNDM\x02\x00"), None);
}
