//! Decoder rejection tests that need to seal bodies the encoder would never produce.

use super::codec::encode_body;
use super::crypto::seal_body;
use super::*;
use crate::core::ids::{GroupId, NodeId, Term};
use crate::core::message::{
    AdminState, GroupReport, Heartbeat, NodeFlags, PeerView, Phase, MAX_GROUPS, MAX_NODES,
};
use crate::core::time::Instant;

const CLUSTER: u64 = 0x7a6e_646d_0000_0001;
const NONCE: [u8; 24] = [7; 24];

fn key() -> Key {
    Key::new([0x42; 32])
}

fn ring() -> Keyring {
    Keyring::new(key())
}

fn empty_hb() -> Heartbeat {
    Heartbeat {
        from: NodeId(1),
        incarnation: 3,
        seq: 9,
        sent_at: Instant::from_nanos(1_000),
        config_digest: 0xdead_beef,
        flags: NodeFlags::default(),
        echoes: vec![],
        view: vec![],
        groups: vec![],
        grants: vec![],
        fenced: vec![],
        refuses: vec![],
        admin: AdminState::default(),
    }
}

/// Offset of the echoes count in a body: after incarnation, seq, sent_at, digest, flags.
const ECHO_COUNT_AT: usize = 33;
const VIEW_COUNT_AT: usize = 34;
const GROUP_COUNT_AT: usize = 35;

fn open_body(body: &[u8]) -> Result<Heartbeat, DropReason> {
    open_body_flags(0, body)
}

fn open_body_flags(flags: u8, body: &[u8]) -> Result<Heartbeat, DropReason> {
    let dg = seal_body(flags, body, NodeId(1), CLUSTER, 0, &key(), NONCE)
        .expect("test body fits in a datagram");
    open(&dg, CLUSTER, 0, &ring())
}

#[test]
fn sealed_raw_body_roundtrips() {
    let hb = empty_hb();
    let body = encode_body(&hb).unwrap();
    assert_eq!(open_body(&body), Ok(hb));
}

#[test]
fn count8_above_max_nodes_is_malformed() {
    let mut body = encode_body(&empty_hb()).unwrap();
    body[ECHO_COUNT_AT] = u8::try_from(MAX_NODES + 1).unwrap();
    // Enough bytes for the claimed echoes, so only the limit can reject it.
    body.splice(
        ECHO_COUNT_AT + 1..ECHO_COUNT_AT + 1,
        vec![0u8; (MAX_NODES + 1) * 26],
    );
    assert_eq!(open_body(&body), Err(DropReason::Malformed));
    body[ECHO_COUNT_AT] = u8::MAX;
    assert_eq!(open_body(&body), Err(DropReason::Malformed));
}

#[test]
fn count16_above_max_groups_is_malformed() {
    let mut body = encode_body(&empty_hb()).unwrap();
    let claimed = u16::try_from(MAX_GROUPS + 1).unwrap();
    body[GROUP_COUNT_AT..GROUP_COUNT_AT + 2].copy_from_slice(&claimed.to_be_bytes());
    assert_eq!(open_body(&body), Err(DropReason::Malformed));
    body[GROUP_COUNT_AT..GROUP_COUNT_AT + 2].copy_from_slice(&u16::MAX.to_be_bytes());
    assert_eq!(open_body(&body), Err(DropReason::Malformed));
}

#[test]
fn count_within_limit_but_missing_items_is_malformed() {
    let mut body = encode_body(&empty_hb()).unwrap();
    body[GROUP_COUNT_AT..GROUP_COUNT_AT + 2].copy_from_slice(&10u16.to_be_bytes());
    assert_eq!(open_body(&body), Err(DropReason::Malformed));
}

#[test]
fn trailing_bytes_are_malformed() {
    let mut body = encode_body(&empty_hb()).unwrap();
    body.push(0);
    assert_eq!(open_body(&body), Err(DropReason::Malformed));
}

#[test]
fn missing_bytes_are_malformed() {
    let body = encode_body(&empty_hb()).unwrap();
    for len in 0..body.len() {
        assert_eq!(
            open_body(&body[..len]),
            Err(DropReason::Malformed),
            "len {len}"
        );
    }
}

#[test]
fn non_canonical_bool_is_malformed() {
    let mut hb = empty_hb();
    hb.view.push(PeerView {
        node: NodeId(2),
        up: true,
    });
    let mut body = encode_body(&hb).unwrap();
    let up_at = VIEW_COUNT_AT + 1 + 2;
    assert_eq!(body[up_at], 1);
    body[up_at] = 2;
    assert_eq!(open_body(&body), Err(DropReason::Malformed));
}

#[test]
fn unknown_phase_is_malformed() {
    let mut hb = empty_hb();
    hb.groups.push(GroupReport {
        group: GroupId(5),
        term: Term(1),
        owner: Some(NodeId(1)),
        phase: Phase::Running,
        handoff_to: None,
        owner_incarnation: 0,
    });
    let mut body = encode_body(&hb).unwrap();
    let phase_at = GROUP_COUNT_AT + 2 + 4 + 8 + 2 + 8;
    assert_eq!(body[phase_at], Phase::Running as u8);
    body[phase_at] = 6;
    assert_eq!(open_body(&body), Err(DropReason::Malformed));
    body[phase_at] = Phase::Failed as u8;
    assert!(open_body(&body).is_ok());
}

#[test]
fn unknown_header_flags_are_malformed_after_auth() {
    let body = encode_body(&empty_hb()).unwrap();
    assert_eq!(open_body_flags(1, &body), Err(DropReason::Malformed));
}

#[test]
fn oversized_body_cannot_be_sealed() {
    let body = vec![0u8; MAX_DATAGRAM];
    let err = seal_body(0, &body, NodeId(1), CLUSTER, 0, &key(), NONCE).unwrap_err();
    assert!(matches!(err, EncodeError::TooLarge { .. }), "{err:?}");
}

#[test]
fn colliding_key_ids_try_every_matching_key() {
    let real = Key::new([0x55; 32]);
    let impostor = Key::with_forged_id([0x66; 32], real.id());
    let dg = seal(&empty_hb(), CLUSTER, 0, &real, NONCE).unwrap();
    let both = Keyring {
        current: impostor.clone(),
        next: Some(real.clone()),
    };
    assert_eq!(open(&dg, CLUSTER, 0, &both), Ok(empty_hb()));
    let only_impostor = Keyring::new(impostor);
    assert_eq!(
        open(&dg, CLUSTER, 0, &only_impostor),
        Err(DropReason::AuthFailed)
    );
}
