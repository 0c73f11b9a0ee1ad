//! Fuzzes the receive path of the heartbeat datagram.
//!
//! Two paths per input: (1) the bytes as a datagram into `open` (must never panic; random
//! bytes cannot pass the AEAD, so this exercises framing and header checks); (2) the
//! bytes as a plaintext body into `decode_body`, which the AEAD otherwise shields from
//! the fuzzer: whatever decodes must re-encode to the very same bytes (canonical
//! encoding) and survive seal -> open unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tandem::core::NodeId;
use tandem::wire::{
    decode_body, encode_body, open, peek_sender, seal, EncodeError, Key, Keyring, HEADER_LEN,
    MAX_DATAGRAM, TAG_LEN,
};

const CLUSTER: u64 = 0x0123_4567_89ab_cdef;

fuzz_target!(|data: &[u8]| {
    let keys = Keyring {
        current: Key::new([0x11; 32]),
        next: Some(Key::new([0x22; 32])),
    };
    let _ = peek_sender(data);
    for link in 0..2 {
        if let Ok(hb) = open(data, CLUSTER, link, &keys) {
            // Only reachable if the fuzzer forged a tag; make it loud.
            panic!("forged datagram accepted: {hb:?}");
        }
    }

    if let Ok(hb) = decode_body(NodeId(3), data) {
        let body = encode_body(&hb);
        let fits = data.len() + HEADER_LEN + TAG_LEN <= MAX_DATAGRAM;
        match body {
            Ok(body) => assert_eq!(body, data, "encoding is not canonical"),
            Err(EncodeError::TooLarge { .. }) => assert!(!fits),
            Err(e) => panic!("decoded heartbeat does not re-encode: {e}"),
        }
        if fits {
            let dg = seal(&hb, CLUSTER, 1, &keys.current, [9; 24]).expect("fits, so seals");
            assert_eq!(open(&dg, CLUSTER, 1, &keys), Ok(hb.clone()));
            assert_eq!(peek_sender(&dg), Some(NodeId(3)));
            assert!(open(&dg, CLUSTER, 0, &keys).is_err());
        }
    }
});
