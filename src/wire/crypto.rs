//! Sealing and opening datagrams: header framing plus XChaCha20-Poly1305.
//!
//! XChaCha20's 24-byte nonce is large enough to draw at random for every datagram, so a
//! sender needs no persisted nonce counter and a restart can never reuse a nonce. The
//! header travels in clear (the receiver needs cluster, sender and key id before it can
//! decrypt) but is authenticated as associated data, together with the link index.

use chacha20poly1305::aead::{AeadInPlace, KeyInit};
use chacha20poly1305::{Tag, XChaCha20Poly1305, XNonce};
use std::fmt;

use super::codec::{decode_body, encode_body, EncodeError, MAX_BODY};
use super::drop::DropReason;
use super::{HEADER_LEN, MAGIC, MAX_DATAGRAM, TAG_LEN, VERSION};
use crate::core::ids::NodeId;
use crate::core::message::Heartbeat;

/// Nonce used only to derive key ids. Data nonces are random 192-bit values, so the
/// chance that one ever equals this constant is negligible (2^-192 per datagram).
const KEY_ID_NONCE: [u8; 24] = *b"tandem key-id nonce v1\0\0";

/// A 256-bit cluster key. `Debug` shows only the key id, never the bytes.
#[derive(Clone)]
pub struct Key {
    bytes: [u8; 32],
    // Cached: `open` looks at both keys of the ring for every datagram.
    id: u32,
}

impl Key {
    pub fn new(bytes: [u8; 32]) -> Key {
        let id = derive_key_id(&bytes);
        Key { bytes, id }
    }

    /// A 4-byte public fingerprint of the key, carried in every header so the receiver
    /// picks the right key of its ring without trial decryption.
    ///
    /// It is the first 4 bytes of the XChaCha20 keystream under this key at a fixed
    /// nonce: a PRF output, so it reveals nothing usable about the key, unlike a plain
    /// non-cryptographic hash of the key bytes.
    pub fn id(&self) -> u32 {
        self.id
    }

    /// A key whose id is forced, to test the (rare) case of two keys sharing an id.
    #[cfg(test)]
    pub(crate) fn with_forged_id(bytes: [u8; 32], id: u32) -> Key {
        Key { bytes, id }
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new(&chacha20poly1305::Key::from(self.bytes))
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Key(id={:08x})", self.id)
    }
}

fn derive_key_id(bytes: &[u8; 32]) -> u32 {
    let mut stream = [0u8; 4];
    keystream(bytes, &KEY_ID_NONCE, &mut stream);
    u32::from_be_bytes(stream)
}

/// Fills `out` with the XChaCha20 keystream of `key` at `nonce`: a value derived from
/// the authkey yet independent of the key that seals heartbeats (key ids, the config
/// digest's key), each at a nonce used for nothing else. Encrypting zeros yields the
/// keystream. This cannot fail (the only error is a message longer than the cipher's
/// limit); on the impossible error `out` stays zero, which for a key id only costs a
/// trial decryption, never acceptance of a bad packet.
pub(crate) fn keystream(key: &[u8; 32], nonce: &[u8; 24], out: &mut [u8]) {
    out.fill(0);
    let cipher = XChaCha20Poly1305::new(&chacha20poly1305::Key::from(*key));
    let _tag = cipher.encrypt_in_place_detached(&XNonce::from(*nonce), b"", out);
}

/// The keys a node holds. Senders seal with `current`; receivers accept `current` or
/// `next`. Rotation without downtime: install the new key as `next` everywhere, then
/// make it `current` everywhere (old as `next`), then drop the old one.
#[derive(Clone, Debug)]
pub struct Keyring {
    pub current: Key,
    pub next: Option<Key>,
}

impl Keyring {
    pub fn new(current: Key) -> Keyring {
        Keyring {
            current,
            next: None,
        }
    }

    fn candidates(&self, key_id: u32) -> impl Iterator<Item = &Key> {
        std::iter::once(&self.current)
            .chain(self.next.as_ref())
            .filter(move |k| k.id() == key_id)
    }
}

/// The cleartext header, parsed but not yet authenticated.
struct Header {
    flags: u8,
    cluster_id: u64,
    sender: NodeId,
    key_id: u32,
    nonce: [u8; 24],
}

impl Header {
    fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&MAGIC);
        out.push(VERSION);
        out.push(self.flags);
        out.extend_from_slice(&self.cluster_id.to_be_bytes());
        out.extend_from_slice(&self.sender.0.to_be_bytes());
        out.extend_from_slice(&self.key_id.to_be_bytes());
        out.extend_from_slice(&self.nonce);
    }

    /// Parses the fixed header; magic and version are checked on whatever prefix is
    /// present, so garbage is reported as `BadMagic` rather than `Truncated`.
    fn parse(datagram: &[u8]) -> Result<Header, DropReason> {
        let magic_len = datagram.len().min(MAGIC.len());
        if datagram[..magic_len] != MAGIC[..magic_len] {
            return Err(DropReason::BadMagic);
        }
        if let Some(&version) = datagram.get(4) {
            if version != VERSION {
                return Err(DropReason::BadVersion);
            }
        }
        let h: &[u8; HEADER_LEN] = datagram
            .get(..HEADER_LEN)
            .and_then(|s| s.try_into().ok())
            .ok_or(DropReason::Truncated)?;
        let mut nonce = [0u8; 24];
        nonce.copy_from_slice(&h[20..44]);
        Ok(Header {
            flags: h[5],
            cluster_id: u64::from_be_bytes([h[6], h[7], h[8], h[9], h[10], h[11], h[12], h[13]]),
            sender: NodeId(u16::from_be_bytes([h[14], h[15]])),
            key_id: u32::from_be_bytes([h[16], h[17], h[18], h[19]]),
            nonce,
        })
    }
}

/// The associated data: the header bytes as sent plus the link index, which is not sent.
fn associated_data(header: &[u8], link: u8) -> [u8; HEADER_LEN + 1] {
    let mut aad = [0u8; HEADER_LEN + 1];
    aad[..HEADER_LEN].copy_from_slice(header);
    aad[HEADER_LEN] = link;
    aad
}

/// Builds the datagram for `hb` (its `from` goes into the header) to be sent on `link`.
/// `nonce` must be fresh random bytes for every call.
pub fn seal(
    hb: &Heartbeat,
    cluster_id: u64,
    link: u8,
    key: &Key,
    nonce: [u8; 24],
) -> Result<Vec<u8>, EncodeError> {
    let body = encode_body(hb)?;
    seal_body(0, &body, hb.from, cluster_id, link, key, nonce)
}

/// Seals an already encoded body. Separate from [`seal`] so tests can seal bodies (and
/// header flags) that the encoder would refuse to produce and check that the receiver
/// rejects them.
pub(crate) fn seal_body(
    header_flags: u8,
    body: &[u8],
    from: NodeId,
    cluster_id: u64,
    link: u8,
    key: &Key,
    nonce: [u8; 24],
) -> Result<Vec<u8>, EncodeError> {
    let mut out = Vec::new();
    let header = Header {
        flags: header_flags,
        cluster_id,
        sender: from,
        key_id: key.id(),
        nonce,
    };
    seal_with_header(&header, body, link, key, &mut out)?;
    Ok(out)
}

/// Where [`seal_into`] seals a body: one sender, cluster and key.
#[derive(Clone, Copy, Debug)]
pub struct SealParams<'a> {
    pub from: NodeId,
    pub cluster_id: u64,
    pub key: &'a Key,
}

/// Seals an encoded body (from [`encode_body_into`](super::encode_body_into)) for
/// `link` into `out`, which is cleared first. The same bytes as [`seal`], without
/// allocating once `out` has grown to size: a sender encodes a heartbeat once and
/// seals it for every link.
pub fn seal_into(
    body: &[u8],
    params: SealParams<'_>,
    link: u8,
    nonce: [u8; 24],
    out: &mut Vec<u8>,
) -> Result<(), EncodeError> {
    let header = Header {
        flags: 0,
        cluster_id: params.cluster_id,
        sender: params.from,
        key_id: params.key.id(),
        nonce,
    };
    seal_with_header(&header, body, link, params.key, out)
}

fn seal_with_header(
    header: &Header,
    body: &[u8],
    link: u8,
    key: &Key,
    out: &mut Vec<u8>,
) -> Result<(), EncodeError> {
    out.clear();
    if body.len() > MAX_BODY {
        return Err(EncodeError::TooLarge {
            size: HEADER_LEN + body.len() + TAG_LEN,
            max: MAX_DATAGRAM,
        });
    }
    out.reserve(HEADER_LEN + body.len() + TAG_LEN);
    header.write(out);
    let aad = associated_data(&out[..HEADER_LEN], link);
    out.extend_from_slice(body);
    let tag = key
        .cipher()
        .encrypt_in_place_detached(&XNonce::from(header.nonce), &aad, &mut out[HEADER_LEN..])
        .map_err(|_| EncodeError::Seal)?;
    out.extend_from_slice(&tag);
    Ok(())
}

/// Authenticates and decodes a datagram received on `link`. Cheap checks come first
/// (size, magic, version, cluster, key id) so junk costs no cryptography. Replay is
/// not checked here: see [`ReplayGuard`](super::ReplayGuard).
pub fn open(
    datagram: &[u8],
    cluster_id: u64,
    link: u8,
    keys: &Keyring,
) -> Result<Heartbeat, DropReason> {
    // Before the copy: an oversized datagram costs no allocation (tests/wire_random.rs).
    refuse_oversized(datagram)?;
    open_in_place(&mut datagram.to_vec(), cluster_id, link, keys)
}

/// Like [`open`], but decrypts in the caller's buffer instead of a copy: a receiver
/// that owns its receive buffers opens every datagram without allocating for it. Once
/// authenticated, the ciphertext in `datagram` has become plaintext. A failed
/// authentication leaves the bytes as they were (ChaCha20-Poly1305 checks the tag
/// before it decrypts), which is what lets a second key of the ring be tried on them.
pub fn open_in_place(
    datagram: &mut [u8],
    cluster_id: u64,
    link: u8,
    keys: &Keyring,
) -> Result<Heartbeat, DropReason> {
    refuse_oversized(datagram)?;
    let header = Header::parse(datagram)?;
    if datagram.len() < HEADER_LEN + TAG_LEN {
        return Err(DropReason::Truncated);
    }
    if header.cluster_id != cluster_id {
        return Err(DropReason::WrongCluster);
    }
    let (head, rest) = datagram.split_at_mut(HEADER_LEN);
    let (sealed, tag_bytes) = rest.split_at_mut(rest.len() - TAG_LEN);
    let tag_bytes: [u8; TAG_LEN] = (&*tag_bytes)
        .try_into()
        .map_err(|_| DropReason::Truncated)?;
    let tag = Tag::from(tag_bytes);
    let aad = associated_data(head, link);
    let nonce = XNonce::from(header.nonce);

    let mut tried_any = false;
    let mut opened = false;
    // Key ids are only 32 bits: two keys of the ring may share one, so try each match.
    for key in keys.candidates(header.key_id) {
        tried_any = true;
        if key
            .cipher()
            .decrypt_in_place_detached(&nonce, &aad, sealed, &tag)
            .is_ok()
        {
            opened = true;
            break;
        }
    }
    if !opened {
        return Err(if tried_any {
            DropReason::AuthFailed
        } else {
            DropReason::UnknownKey
        });
    }
    // Checked after authentication: a sender with the key that sets flags this build
    // does not know speaks a dialect we cannot interpret.
    if header.flags != 0 {
        return Err(DropReason::Malformed);
    }
    decode_body(header.sender, sealed)
}

/// No datagram larger than any sender may seal is looked at further.
fn refuse_oversized(datagram: &[u8]) -> Result<(), DropReason> {
    if datagram.len() > MAX_DATAGRAM {
        return Err(DropReason::Oversized);
    }
    Ok(())
}

/// The claimed sender of a datagram, from the unauthenticated header: only for
/// per-peer statistics before authentication, never for decisions.
pub fn peek_sender(datagram: &[u8]) -> Option<NodeId> {
    if datagram.len() > MAX_DATAGRAM {
        return None;
    }
    Header::parse(datagram).ok().map(|h| h.sender)
}
