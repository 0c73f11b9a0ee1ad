//! Golden bytes for the heartbeat datagram: a fixed heartbeat, key and nonce must seal
//! to exactly these bytes, forever (a change here is a wire-format change: bump VERSION).

use tandem::core::admin_state::{AdminEntry, AdminKey, AdminValue, Expiry, Stamp};
use tandem::core::message::{
    AdminState, Echo, FenceRecord, Grant, GroupReport, Heartbeat, NodeFlags, PeerView, Phase,
};
use tandem::core::{GroupId, Instant, NodeId, Term};
use tandem::wire::{
    open, peek_sender, seal, DropCounters, DropReason, Key, Keyring, HEADER_LEN, TAG_LEN,
};

const CLUSTER: u64 = 0x0102_0304_0506_0708;
const LINK: u8 = 1;
const KEY: [u8; 32] = [
    0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f,
    0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0x19, 0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f,
];
const NONCE: [u8; 24] = [
    0xa0, 0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7, 0xa8, 0xa9, 0xaa, 0xab, 0xac, 0xad, 0xae, 0xaf,
    0xb0, 0xb1, 0xb2, 0xb3, 0xb4, 0xb5, 0xb6, 0xb7,
];

const GOLDEN_KEY_ID: u32 = 0xae40_d7ab;

/// Header (first line: 44 bytes), then ciphertext and tag. Cross-checked against an
/// independent implementation written from the module doc (Python: HChaCha20 by hand +
/// `cryptography`'s ChaCha20Poly1305), not merely captured from this crate's output.
const GOLDEN_HEX: &str = "
    544e444d020001020304050607080002ae40d7aba0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7
    45ec0a1db75da4ab616f2d897130a7123baa9f2d800338d90c62b8a3b2c589bedb86aa2e46467ccca5eb6e35
    9b34af2f813637f9da68d0a7fab4d17a2b2173826671e67cade4b181086c4a6c785d3c7fc867d8481602bb02
    5ff32105975e16315d4e68a7d94ddb497c51d3c6108524a89918a80d91ed9699d1c46a08e30372f35b2b622d
    c069d03f37385d9592d2cdfb69e883886693abd77a5f7db63d04d3aec9be41ab259dcee224e62911db68c076
    4a70a873337de554f49c5540e6359c4e7d6a11b61eddab88f7f2319cb40574a1e20f5adeeb53f92cbc80f60e
    c71ff2723fc590c917712e21974436c583
";

fn golden_heartbeat() -> Heartbeat {
    let mut flags = NodeFlags::default();
    flags.set(NodeFlags::SEEN_ALL, true);
    flags.set(NodeFlags::QUORATE, true);
    Heartbeat {
        from: NodeId(2),
        incarnation: 7,
        seq: 1234,
        sent_at: Instant::from_nanos(5_000_000_000),
        config_digest: 0x1122_3344_5566_7788,
        flags,
        echoes: vec![Echo {
            peer: NodeId(1),
            seq: 99,
            sent_at: Instant::from_nanos(4_900_000_000),
            held_ns: 250_000,
        }],
        view: vec![
            PeerView {
                node: NodeId(1),
                up: true,
            },
            PeerView {
                node: NodeId(3),
                up: false,
            },
        ],
        groups: vec![GroupReport {
            group: GroupId::of_name("web"),
            term: Term(4),
            owner: Some(NodeId(2)),
            phase: Phase::Running,
            handoff_to: None,
            owner_incarnation: 7,
        }],
        grants: vec![Grant {
            group: GroupId::of_name("db"),
            term: Term(9),
            to: NodeId(1),
            echo_sent_at: Instant::from_nanos(4_900_000_000),
        }],
        fenced: vec![FenceRecord {
            node: NodeId(3),
            incarnation: 5,
        }],
        refuses: vec![GroupId::of_name("db")],
        admin: AdminState {
            entries: vec![
                entry(AdminKey::Standby(NodeId(3)), (3, 1), AdminValue::On, None),
                entry(
                    AdminKey::GroupMaintenance(GroupId::of_name("db")),
                    (2, 2),
                    AdminValue::On,
                    None,
                ),
                entry(
                    AdminKey::Move(GroupId::of_name("web")),
                    (4, 1),
                    AdminValue::MoveTo(NodeId(2)),
                    Some(9_000_000_000),
                ),
                entry(
                    AdminKey::Ban(GroupId::of_name("web"), NodeId(1)),
                    (5, 3),
                    AdminValue::Cleared,
                    None,
                ),
            ],
            cleanups: vec![(GroupId::of_name("web"), 2)],
        },
    }
}

/// An admin entry as it arrives: the lifetime does not travel (zero until the core
/// rebases the expiry).
fn entry(
    key: AdminKey,
    (counter, origin): (u64, u16),
    value: AdminValue,
    at: Option<u64>,
) -> AdminEntry {
    AdminEntry {
        key,
        stamp: Stamp {
            counter,
            origin: NodeId(origin),
        },
        value,
        expires: at.map(|ns| Expiry {
            at: Instant::from_nanos(ns),
            lifetime: std::time::Duration::ZERO,
        }),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Vec<u8> {
    let s: String = s.split_whitespace().collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("golden hex is valid"))
        .collect()
}

#[test]
fn key_id_is_pinned() {
    assert_eq!(
        Key::new(KEY).id(),
        GOLDEN_KEY_ID,
        "key id derivation changed"
    );
    assert_ne!(Key::new(KEY).id(), Key::new([0; 32]).id());
}

#[test]
fn golden_datagram() {
    let hb = golden_heartbeat();
    let sealed = seal(&hb, CLUSTER, LINK, &Key::new(KEY), NONCE).expect("golden heartbeat seals");
    assert_eq!(
        hex(&sealed),
        GOLDEN_HEX.split_whitespace().collect::<String>()
    );

    let golden = unhex(GOLDEN_HEX);
    let ring = Keyring::new(Key::new(KEY));
    let opened = open(&golden, CLUSTER, LINK, &ring).expect("golden datagram opens");
    assert_eq!(opened, hb);
    let resealed = seal(&opened, CLUSTER, LINK, &Key::new(KEY), NONCE).expect("reseals");
    assert_eq!(resealed, golden);
}

#[test]
fn golden_header_layout_matches_the_docs() {
    let golden = unhex(GOLDEN_HEX);
    assert_eq!(&golden[0..4], b"TNDM");
    assert_eq!(golden[4], 2, "version");
    assert_eq!(golden[5], 0, "header flags");
    assert_eq!(&golden[6..14], &CLUSTER.to_be_bytes());
    assert_eq!(&golden[14..16], &2u16.to_be_bytes(), "sender");
    assert_eq!(&golden[16..20], &GOLDEN_KEY_ID.to_be_bytes());
    assert_eq!(&golden[20..44], &NONCE);
    assert_eq!(HEADER_LEN, 44);
    // Body of the golden heartbeat: 46 fixed bytes + 26 + 2*3 + 25 + 22 + 10 + 4, the admin
    // entries (standby 14, group maintenance 16, move with expiry 26, ban 18), cleanup 8.
    assert_eq!(golden.len(), HEADER_LEN + 221 + TAG_LEN);
    assert_eq!(peek_sender(&golden), Some(NodeId(2)));
}

#[test]
fn golden_datagram_is_bound_to_link_and_cluster() {
    let golden = unhex(GOLDEN_HEX);
    let ring = Keyring::new(Key::new(KEY));
    assert_eq!(
        open(&golden, CLUSTER, 0, &ring),
        Err(DropReason::AuthFailed)
    );
    assert_eq!(
        open(&golden, CLUSTER + 1, LINK, &ring),
        Err(DropReason::WrongCluster)
    );
}

#[test]
fn key_debug_never_shows_key_bytes() {
    let key = Key::new([0xab; 32]);
    let ring = Keyring {
        current: key.clone(),
        next: Some(Key::new([0xcd; 32])),
    };
    for text in [
        format!("{key:?}"),
        format!("{ring:?}"),
        format!("{ring:#?}"),
    ] {
        assert!(!text.contains("ab, ab") && !text.contains("abab"), "{text}");
        assert!(!text.contains("171"), "{text}");
        assert!(!text.contains("cdcd") && !text.contains("205"), "{text}");
        assert!(text.contains(&format!("{:08x}", key.id())), "{text}");
    }
}

#[test]
fn drop_reason_names_are_stable_and_unique() {
    let names: Vec<&str> = DropReason::ALL.iter().map(|r| r.as_str()).collect();
    assert_eq!(
        names,
        [
            "oversized",
            "truncated",
            "bad_magic",
            "bad_version",
            "wrong_cluster",
            "unknown_key",
            "auth_failed",
            "malformed",
            "unknown_sender",
            "from_self",
            "replayed",
            "stale_incarnation"
        ]
    );
}

#[test]
fn drop_counters_count_per_reason() {
    let mut c = DropCounters::default();
    assert_eq!(c.total(), 0);
    c.count(DropReason::AuthFailed);
    c.count(DropReason::AuthFailed);
    c.count(DropReason::Replayed);
    assert_eq!(c.get(DropReason::AuthFailed), 2);
    assert_eq!(c.get(DropReason::Replayed), 1);
    assert_eq!(c.get(DropReason::Oversized), 0);
    assert_eq!(c.total(), 3);
    let map = c.as_map();
    assert_eq!(map.len(), DropReason::ALL.len());
    assert_eq!(map["auth_failed"], 2);
    assert_eq!(map["replayed"], 1);
    assert_eq!(map["malformed"], 0);
}
