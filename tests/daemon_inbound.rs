//! The heartbeat thread's receive path: every kind of bad datagram is counted under its
//! own reason and never reaches the core; good ones do, once.

use tandem::core::message::{AdminState, NodeFlags};
use tandem::core::{Heartbeat, Input, Instant, NodeId};
use tandem::daemon::inbound::Inbound;
use tandem::wire::{self, DropReason, Key, Keyring};

const CLUSTER: u64 = 0x1234_5678_9abc_def0;

fn hb(from: u16, seq: u64) -> Heartbeat {
    Heartbeat {
        from: NodeId(from),
        incarnation: 10,
        seq,
        sent_at: Instant::from_nanos(1_000 + seq),
        config_digest: 0,
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

fn key(b: u8) -> Key {
    Key::new([b; 32])
}

fn seal(h: &Heartbeat, link: u8, k: &Key, nonce: u8) -> Vec<u8> {
    wire::seal(h, CLUSTER, link, k, [nonce; 24]).expect("seal")
}

/// The heartbeat thread decrypts in its receive buffer; a copy per call lets a test
/// deliver the same bytes twice.
fn accept(ib: &mut Inbound, link: usize, datagram: &[u8]) -> Option<Input> {
    ib.accept(link, &mut datagram.to_vec())
}

fn inbound() -> Inbound {
    Inbound::new(
        CLUSTER,
        NodeId(1),
        [NodeId(1), NodeId(2), NodeId(3)],
        Keyring::new(key(1)),
    )
}

fn only_drop(ib: &Inbound, reason: DropReason) {
    assert_eq!(
        ib.drops().get(reason),
        1,
        "{reason:?} not counted: {:?}",
        ib.drops()
    );
    assert_eq!(
        ib.drops().total(),
        1,
        "other reasons counted: {:?}",
        ib.drops()
    );
}

#[test]
fn a_good_heartbeat_becomes_an_input_on_its_link() {
    let mut ib = inbound();
    let d = seal(&hb(2, 1), 1, &key(1), 9);
    match accept(&mut ib, 1, &d) {
        Some(Input::Heartbeat { link, heartbeat }) => {
            assert_eq!(link, 1);
            assert_eq!(heartbeat, hb(2, 1));
        }
        other => panic!("expected a heartbeat input, got {other:?}"),
    }
    assert_eq!(ib.drops().total(), 0);
}

#[test]
fn a_replayed_heartbeat_is_counted_and_dropped() {
    let mut ib = inbound();
    let d = seal(&hb(2, 5), 0, &key(1), 9);
    assert!(accept(&mut ib, 0, &d).is_some());
    assert!(accept(&mut ib, 0, &d).is_none());
    only_drop(&ib, DropReason::Replayed);
}

#[test]
fn a_wrong_key_is_counted_as_unknown_key() {
    let mut ib = inbound();
    assert!(accept(&mut ib, 0, &seal(&hb(2, 1), 0, &key(7), 9)).is_none());
    only_drop(&ib, DropReason::UnknownKey);
}

#[test]
fn a_truncated_datagram_is_counted_as_truncated() {
    let mut ib = inbound();
    let d = seal(&hb(2, 1), 0, &key(1), 9);
    assert!(accept(&mut ib, 0, &d[..wire::HEADER_LEN + 3]).is_none());
    only_drop(&ib, DropReason::Truncated);
}

#[test]
fn a_tampered_datagram_fails_authentication() {
    let mut ib = inbound();
    let mut d = seal(&hb(2, 1), 0, &key(1), 9);
    let last = d.len() - 1;
    d[last] ^= 1;
    assert!(accept(&mut ib, 0, &d).is_none());
    only_drop(&ib, DropReason::AuthFailed);
}

#[test]
fn a_datagram_moved_to_another_link_fails_authentication() {
    let mut ib = inbound();
    let d = seal(&hb(2, 1), 0, &key(1), 9);
    assert!(accept(&mut ib, 1, &d).is_none());
    only_drop(&ib, DropReason::AuthFailed);
}

#[test]
fn our_own_and_strangers_datagrams_are_dropped_before_authentication() {
    let mut ib = inbound();
    assert!(accept(&mut ib, 0, &seal(&hb(1, 1), 0, &key(1), 9)).is_none());
    only_drop(&ib, DropReason::FromSelf);
    let mut ib = inbound();
    assert!(accept(&mut ib, 0, &seal(&hb(9, 1), 0, &key(1), 9)).is_none());
    only_drop(&ib, DropReason::UnknownSender);
}

#[test]
fn garbage_wrong_cluster_and_oversized_are_counted() {
    let mut ib = inbound();
    assert!(accept(&mut ib, 0, b"GET / HTTP/1.1\r\n").is_none());
    only_drop(&ib, DropReason::BadMagic);
    let mut ib = inbound();
    let other = wire::seal(&hb(2, 1), CLUSTER + 1, 0, &key(1), [3; 24]).expect("seal");
    assert!(accept(&mut ib, 0, &other).is_none());
    only_drop(&ib, DropReason::WrongCluster);
    let mut ib = inbound();
    ib.count_oversized();
    only_drop(&ib, DropReason::Oversized);
}

#[test]
fn the_next_key_is_accepted_during_rotation() {
    let mut ring = Keyring::new(key(1));
    ring.next = Some(key(2));
    let mut ib = Inbound::new(CLUSTER, NodeId(1), [NodeId(2)], ring);
    assert!(accept(&mut ib, 0, &seal(&hb(2, 1), 0, &key(2), 9)).is_some());
    assert_eq!(ib.drops().total(), 0);
}
