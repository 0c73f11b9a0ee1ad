//! Random and hostile inputs to the receive path: never a panic, never an acceptance,
//! never an allocation sized by a forged count.

use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use tandem::core::message::{AdminState, Heartbeat, NodeFlags};
use tandem::core::{Instant, NodeId};
use tandem::wire::{
    decode_body, encode_body, open, peek_sender, seal, DropReason, Key, Keyring, HEADER_LEN,
    MAX_DATAGRAM,
};

/// Records the largest single allocation made by the current thread, so a test can
/// prove the decoder never sized a buffer from an untrusted count.
struct TrackLargest;

thread_local! {
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

unsafe impl GlobalAlloc for TrackLargest {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = LARGEST.try_with(|l| l.set(l.get().max(layout.size())));
        System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
}

#[global_allocator]
static ALLOC: TrackLargest = TrackLargest;

fn largest_allocation_during<T>(f: impl FnOnce() -> T) -> (T, usize) {
    LARGEST.with(|l| l.set(0));
    let out = f();
    (out, LARGEST.with(|l| l.get()))
}

const CLUSTER: u64 = 77;

fn keys() -> Keyring {
    Keyring {
        current: Key::new([3; 32]),
        next: Some(Key::new([4; 32])),
    }
}

fn small_heartbeat(seq: u64) -> Heartbeat {
    Heartbeat {
        from: NodeId(2),
        incarnation: 1,
        seq,
        sent_at: Instant::from_nanos(seq * 1_000_000),
        config_digest: 5,
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

#[test]
fn random_bytes_never_open() {
    let mut rng = ChaCha8Rng::seed_from_u64(0x7a6e_646d);
    let ring = keys();
    let mut reasons = std::collections::BTreeMap::new();
    for i in 0..4000 {
        let len = rng.random_range(0..2048);
        let mut buf = vec![0u8; len];
        rng.fill_bytes(&mut buf);
        // Half the inputs get a valid-looking header so they reach the key and AEAD
        // checks instead of stopping at the magic.
        if i % 2 == 0 && buf.len() >= HEADER_LEN {
            buf[..4].copy_from_slice(b"TNDM");
            buf[4] = tandem::wire::VERSION;
            buf[5] = 0;
            buf[6..14].copy_from_slice(&CLUSTER.to_be_bytes());
            let key = match (i % 4, &ring.next) {
                (2, Some(next)) => next,
                _ => &ring.current,
            };
            let key_id = key.id();
            buf[16..20].copy_from_slice(&key_id.to_be_bytes());
        }
        let _ = peek_sender(&buf);
        let err = open(&buf, CLUSTER, (i % 3) as u8, &ring).expect_err("random bytes opened");
        *reasons.entry(err.as_str()).or_insert(0u32) += 1;
        // The same bytes as a body: must not panic, and if they decode they re-encode.
        if let Ok(hb) = decode_body(NodeId(1), &buf) {
            assert_eq!(encode_body(&hb).unwrap(), buf);
        }
    }
    // The crafted half must have got as far as authentication.
    assert!(
        reasons.get("auth_failed").copied().unwrap_or(0) > 1000,
        "{reasons:?}"
    );
    assert!(
        reasons.get("bad_magic").copied().unwrap_or(0) > 1000,
        "{reasons:?}"
    );
}

#[test]
fn random_mutations_of_a_valid_datagram_never_open() {
    let mut rng = ChaCha8Rng::seed_from_u64(42);
    let ring = keys();
    let dg = seal(&small_heartbeat(1), CLUSTER, 0, &ring.current, [1; 24]).unwrap();
    assert!(open(&dg, CLUSTER, 0, &ring).is_ok());
    for _ in 0..3000 {
        let mut m = dg.clone();
        for _ in 0..rng.random_range(1..4) {
            let i = rng.random_range(0..m.len());
            let v = rng.random::<u8>();
            m[i] = if m[i] == v { v ^ 0x80 } else { v };
        }
        if rng.random_bool(0.2) {
            let extra = rng.random_range(1..64);
            m.extend((0..extra).map(|_| rng.random::<u8>()));
        }
        assert!(open(&m, CLUSTER, 0, &ring).is_err());
    }
}

/// A body whose every list claims the maximum count its count field can express, with
/// only `tail` bytes behind it.
fn body_with_counts(first_count_at: usize, count: &[u8], tail: usize) -> Vec<u8> {
    let mut body = encode_body(&small_heartbeat(1)).unwrap();
    body.truncate(first_count_at);
    body.extend_from_slice(count);
    body.extend(std::iter::repeat_n(1u8, tail));
    body
}

#[test]
fn forged_counts_are_malformed_without_large_allocations() {
    // Count offsets: echoes u8 at 33, view u8 at 34, groups u16 at 35.
    let cases: Vec<Vec<u8>> = vec![
        body_with_counts(33, &[0xff], 64),
        body_with_counts(33, &[65], 65 * 26),
        body_with_counts(33, &[0, 0xff], 64),
        body_with_counts(33, &[0, 0, 0xff, 0xff], 100),
        body_with_counts(33, &[0, 0, 0x01, 0x01], 257 * 17),
        // Within limits but the items are not there.
        body_with_counts(33, &[0, 0, 0x01, 0x00], 17),
    ];
    for body in cases {
        let (res, largest) = largest_allocation_during(|| decode_body(NodeId(1), &body));
        assert_eq!(res, Err(DropReason::Malformed));
        assert!(largest < 1024, "decoder allocated {largest} bytes");
    }
}

#[test]
fn opening_an_oversized_datagram_does_no_work() {
    let big = vec![0u8; MAX_DATAGRAM * 4];
    let (res, largest) = largest_allocation_during(|| open(&big, CLUSTER, 0, &keys()));
    assert_eq!(res, Err(DropReason::Oversized));
    assert_eq!(largest, 0);
}
