//! The report channel: how `tandemctl report` on one node gathers the same evidence from
//! the other nodes, through the cluster rather than through ssh.
//!
//! Every `tandemd` listens on TCP at its heartbeat addresses and port (the dedicated
//! heartbeat network, the same port number as the UDP heartbeats). A client holding
//! the cluster's authkey asks for one node's report archive; the node builds it exactly
//! as a local `tandemctl report` would (its daemon's bundle and its journal) and sends
//! it back. Control sockets stay local: this channel answers one question only.
//!
//! The exchange, each message one length-prefixed frame:
//!
//! 1. server → client, in clear: `TNDR`, version, a fresh 24-byte challenge;
//! 2. client → server: the request (who asks, whom, since when), sealed;
//! 3. server → client: the archive in sealed chunks, then a sealed end; or one clear
//!    refusal saying why not.
//!
//! Sealing is XChaCha20-Poly1305 under a key derived from the authkey for this channel
//! only (so nothing sealed here can pass for a heartbeat, or the reverse). The
//! challenge and a sequence number are authenticated with every sealed frame: a
//! recorded request is useless on another connection, and an answer cannot be
//! reordered, cut short or spliced without the client noticing. A refusal is in clear
//! because the refused party may not hold the key; it can only ever make a fetch fail,
//! which anyone on the path could do anyway.
//!
//! The I/O is blocking `Read`/`Write` on both sides: one implementation of the framing,
//! used by `tandemctl` and, on its own thread, by the daemon.

use crate::config::AuthKeys;
use chacha20poly1305::aead::{AeadInPlace, KeyInit};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::TryRngCore;
use serde::{Deserialize, Serialize};
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// First bytes of the server's hello: not a heartbeat (`TNDM`), not HTTP.
pub const MAGIC: [u8; 4] = *b"TNDR";
/// The channel's version; a client refuses a server speaking another.
pub const VERSION: u8 = 1;
/// How much of the archive one sealed frame carries.
pub const CHUNK: usize = 256 * 1024;
/// The largest frame either side accepts (a chunk plus its sealing), checked before
/// anything is allocated for it.
pub const MAX_FRAME: usize = CHUNK + 1024;
/// The largest archive a client accepts from one node. A node's report is bounded by
/// its journal excerpt (8 MiB of text before compression) and its event file.
pub const MAX_ARCHIVE: usize = 32 * 1024 * 1024;
/// How long the server waits for the request after its hello.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a client waits for a connection to one address.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// How long a client waits for any one frame: the node reads its journal (up to a
/// minute, see `report::JOURNAL_TIMEOUT`) before it sends the first chunk.
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(90);

/// Nonce used only to derive the channel's key from the authkey (24 bytes exactly).
const KEY_NONCE: [u8; 24] = *b"tandem report channel v1";

/// What a client asks: one node's report since a point in time.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerRequest {
    /// The asking node (for the served node's log; the key is what authenticates).
    pub from: String,
    /// The node the client believes it is talking to; another node refuses, so a
    /// misconfigured address cannot hand back the wrong node's evidence under its name.
    pub to: String,
    /// Unix seconds: the start of the report's window.
    pub since: u64,
}

/// The channel keys derived from the cluster's authkeys: `current` seals, and either
/// opens (a key rotation in progress must not stop reports).
#[derive(Clone)]
pub struct ChannelKeys {
    current: XChaCha20Poly1305,
    next: Option<XChaCha20Poly1305>,
}

impl ChannelKeys {
    pub fn new(keys: &AuthKeys) -> ChannelKeys {
        ChannelKeys {
            current: channel_cipher(&keys.current),
            next: keys.next.as_ref().map(channel_cipher),
        }
    }

    fn candidates(&self) -> impl Iterator<Item = &XChaCha20Poly1305> {
        std::iter::once(&self.current).chain(self.next.as_ref())
    }
}

impl std::fmt::Debug for ChannelKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ChannelKeys(<redacted>)")
    }
}

fn channel_cipher(authkey: &[u8; 32]) -> XChaCha20Poly1305 {
    let mut key = [0u8; 32];
    crate::wire::keystream(authkey, &KEY_NONCE, &mut key);
    XChaCha20Poly1305::new(&chacha20poly1305::Key::from(key))
}

/// Why a fetch gave nothing. Each says what an operator can check.
#[derive(Debug, thiserror::Error)]
pub enum ChannelError {
    #[error("{0}")]
    Io(#[from] io::Error),
    #[error("no answer on any address ({0})")]
    Unreachable(String),
    #[error("the other end does not speak the report channel (an older tandemd, or another service on that port)")]
    NotAReportChannel,
    #[error("the other end speaks report channel version {0}, this tandemctl version {VERSION}")]
    Version(u8),
    #[error("a frame of {0} bytes is larger than the channel allows")]
    FrameTooLarge(usize),
    #[error("the node refused: {0}")]
    Refused(Refusal),
    #[error("an answer failed authentication (is the authkey the same on both nodes?)")]
    Unauthenticated,
    #[error("the answer is malformed: {0}")]
    Malformed(&'static str),
    #[error("the archive is larger than {MAX_ARCHIVE} bytes")]
    TooLarge,
    #[error("cannot draw random bytes: {0}")]
    Random(String),
}

/// Why a node refused a request. A refusal frame carries it as a code byte and a
/// detail (the node's name, what failed), so a client acts on the kind, not on text.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The request did not open under the node's keys: another cluster's key, or not a
    /// request at all.
    #[error("the request is not sealed with this cluster's key")]
    NotSealed,
    /// The request named another node (a wrong address in the asker's config); the
    /// detail is the name of the node that answered.
    #[error("this is node {0}, not the node asked for")]
    WrongNode(String),
    /// The node is building another report.
    #[error("busy with another report; try again in a minute")]
    Busy,
    /// Building the archive failed, or a newer node gave a reason this one does not
    /// know: the detail says what.
    #[error("{0}")]
    Failed(String),
}

impl Refusal {
    fn code(&self) -> u8 {
        match self {
            Refusal::NotSealed => 0,
            Refusal::WrongNode(_) => 1,
            Refusal::Busy => 2,
            Refusal::Failed(_) => 3,
        }
    }

    fn detail(&self) -> &str {
        match self {
            Refusal::WrongNode(d) | Refusal::Failed(d) => d,
            Refusal::NotSealed | Refusal::Busy => "",
        }
    }

    /// From a refusal frame's body (after the frame kind). Unauthenticated bytes from
    /// the network: the detail is bounded.
    fn decode(body: &[u8]) -> Refusal {
        let (code, detail) = body.split_first().unwrap_or((&u8::MAX, &[]));
        let detail: String = String::from_utf8_lossy(detail)
            .chars()
            .take(MAX_REFUSAL_CHARS)
            .collect();
        match code {
            0 => Refusal::NotSealed,
            1 => Refusal::WrongNode(detail),
            2 => Refusal::Busy,
            _ => Refusal::Failed(detail),
        }
    }
}

/// How a served connection ended, for the daemon's log.
#[derive(Debug, PartialEq, Eq)]
pub enum Served {
    /// The archive went out whole.
    Sent { request: PeerRequest, bytes: usize },
    /// An authenticated request was refused (wrong node, busy, gathering failed).
    Refused { request: PeerRequest, why: Refusal },
    /// The request did not authenticate: not this cluster's key, or not a request.
    Unauthenticated,
}

/// A sealed frame: XChaCha20's random nonce, the ciphertext, Poly1305's tag.
const NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;
/// The most of a refusal's detail a client keeps.
const MAX_REFUSAL_CHARS: usize = 400;
/// What a server frame holds: its first byte.
#[derive(Clone, Copy)]
#[repr(u8)]
enum FrameKind {
    Sealed = 0,
    Refusal = 1,
}

/// What a sealed answer holds: the first byte of its plaintext.
#[derive(Clone, Copy)]
#[repr(u8)]
enum AnswerKind {
    Chunk = 0,
    End = 1,
}

/// Which way a sealed frame goes, in its associated data: a request can never be
/// passed off as an answer or the reverse.
#[derive(Clone, Copy)]
#[repr(u8)]
enum Direction {
    Request = b'Q',
    Answer = b'A',
}

fn write_frame(w: &mut impl Write, body: &[u8]) -> io::Result<()> {
    let len = u32::try_from(body.len()).map_err(|_| io::Error::other("frame too large"))?;
    w.write_all(&len.to_be_bytes())?;
    w.write_all(body)?;
    w.flush()
}

fn read_frame(r: &mut impl Read) -> Result<Vec<u8>, ChannelError> {
    let mut len = [0u8; 4];
    r.read_exact(&mut len)?;
    let len = u32::from_be_bytes(len) as usize;
    if len > MAX_FRAME {
        return Err(ChannelError::FrameTooLarge(len));
    }
    let mut body = vec![0u8; len];
    r.read_exact(&mut body)?;
    Ok(body)
}

fn random<const N: usize>() -> Result<[u8; N], ChannelError> {
    let mut bytes = [0u8; N];
    rand::rngs::OsRng
        .try_fill_bytes(&mut bytes)
        .map_err(|e| ChannelError::Random(e.to_string()))?;
    Ok(bytes)
}

/// What every sealed frame of one exchange authenticates besides its content.
fn associated_data(direction: Direction, challenge: &[u8; NONCE_LEN], seq: u32) -> [u8; 33] {
    let mut aad = [0u8; 33];
    aad[..4].copy_from_slice(&MAGIC);
    aad[4] = direction as u8;
    aad[5..29].copy_from_slice(challenge);
    aad[29..].copy_from_slice(&seq.to_be_bytes());
    aad
}

/// `nonce || ciphertext || tag` of `plain`.
fn seal(cipher: &XChaCha20Poly1305, aad: &[u8], plain: &[u8]) -> Result<Vec<u8>, ChannelError> {
    let nonce: [u8; NONCE_LEN] = random()?;
    let mut out = Vec::with_capacity(NONCE_LEN + plain.len() + TAG_LEN);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(plain);
    let tag = cipher
        .encrypt_in_place_detached(&XNonce::from(nonce), aad, &mut out[NONCE_LEN..])
        .map_err(|_| ChannelError::Malformed("cannot seal"))?;
    out.extend_from_slice(&tag);
    Ok(out)
}

/// The plaintext of a sealed frame under any of `keys`, or `Unauthenticated`.
fn open(keys: &ChannelKeys, aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>, ChannelError> {
    if sealed.len() < NONCE_LEN + TAG_LEN {
        return Err(ChannelError::Unauthenticated);
    }
    let (nonce, rest) = sealed.split_at(NONCE_LEN);
    let (body, tag) = rest.split_at(rest.len() - TAG_LEN);
    let nonce = XNonce::from_slice(nonce);
    let tag = chacha20poly1305::Tag::from_slice(tag);
    for cipher in keys.candidates() {
        let mut plain = body.to_vec();
        if cipher
            .decrypt_in_place_detached(nonce, aad, &mut plain, tag)
            .is_ok()
        {
            return Ok(plain);
        }
    }
    Err(ChannelError::Unauthenticated)
}

/// The client's side over an open stream: reads the hello, sends the sealed request,
/// and returns the whole archive once the sealed end arrived.
pub fn fetch(
    stream: &mut (impl Read + Write),
    keys: &ChannelKeys,
    request: &PeerRequest,
) -> Result<Vec<u8>, ChannelError> {
    let challenge = read_hello(stream)?;
    let plain = serde_json::to_vec(request).map_err(|_| ChannelError::Malformed("request"))?;
    let aad = associated_data(Direction::Request, &challenge, 0);
    write_frame(stream, &seal(&keys.current, &aad, &plain)?)?;
    let mut archive = Vec::new();
    for seq in 0u32.. {
        let frame = read_frame(stream)?;
        let (kind, body) = frame
            .split_first()
            .ok_or(ChannelError::Malformed("empty frame"))?;
        match *kind {
            k if k == FrameKind::Refusal as u8 => {
                return Err(ChannelError::Refused(Refusal::decode(body)))
            }
            k if k == FrameKind::Sealed as u8 => {}
            _ => return Err(ChannelError::Malformed("unknown frame kind")),
        }
        let plain = open(
            keys,
            &associated_data(Direction::Answer, &challenge, seq),
            body,
        )?;
        match plain.split_first() {
            Some((&k, [])) if k == AnswerKind::End as u8 => return Ok(archive),
            Some((&k, data)) if k == AnswerKind::Chunk as u8 => {
                if archive.len() + data.len() > MAX_ARCHIVE {
                    return Err(ChannelError::TooLarge);
                }
                archive.extend_from_slice(data);
            }
            _ => return Err(ChannelError::Malformed("unknown answer kind")),
        }
    }
    Err(ChannelError::TooLarge)
}

fn read_hello(stream: &mut impl Read) -> Result<[u8; NONCE_LEN], ChannelError> {
    let mut hello = [0u8; 4 + 1 + NONCE_LEN];
    stream.read_exact(&mut hello).map_err(|e| match e.kind() {
        io::ErrorKind::UnexpectedEof => ChannelError::NotAReportChannel,
        _ => ChannelError::Io(e),
    })?;
    if hello[..4] != MAGIC {
        return Err(ChannelError::NotAReportChannel);
    }
    if hello[4] != VERSION {
        return Err(ChannelError::Version(hello[4]));
    }
    let mut challenge = [0u8; NONCE_LEN];
    challenge.copy_from_slice(&hello[5..]);
    Ok(challenge)
}

/// Connects to the first of `addresses` that answers and fetches from it. The error
/// names every address tried when none answered.
pub fn fetch_from(
    addresses: &[SocketAddr],
    keys: &ChannelKeys,
    request: &PeerRequest,
) -> Result<Vec<u8>, ChannelError> {
    let mut tried = Vec::new();
    for addr in addresses {
        match TcpStream::connect_timeout(addr, CONNECT_TIMEOUT) {
            Ok(mut stream) => {
                stream.set_read_timeout(Some(ANSWER_TIMEOUT))?;
                stream.set_write_timeout(Some(ANSWER_TIMEOUT))?;
                return fetch(&mut stream, keys, request);
            }
            Err(e) => tried.push(format!("{addr}: {e}")),
        }
    }
    Err(ChannelError::Unreachable(tried.join("; ")))
}

/// The server's side of one connection. `me` is this node's name; `gather` builds the
/// archive for an authenticated request addressed to `me` (or says why not).
pub fn serve(
    stream: &mut (impl Read + Write),
    keys: &ChannelKeys,
    me: &str,
    gather: impl FnOnce(&PeerRequest) -> Result<Vec<u8>, Refusal>,
) -> Result<Served, ChannelError> {
    let challenge: [u8; NONCE_LEN] = random()?;
    let mut hello = MAGIC.to_vec();
    hello.push(VERSION);
    hello.extend_from_slice(&challenge);
    stream.write_all(&hello)?;
    stream.flush()?;
    let sealed = read_frame(stream)?;
    let aad = associated_data(Direction::Request, &challenge, 0);
    let request = match open(keys, &aad, &sealed)
        .ok()
        .and_then(|plain| serde_json::from_slice::<PeerRequest>(&plain).ok())
    {
        Some(request) => request,
        None => {
            refuse(stream, &Refusal::NotSealed)?;
            return Ok(Served::Unauthenticated);
        }
    };
    let archive = if request.to != me {
        Err(Refusal::WrongNode(me.to_string()))
    } else {
        gather(&request)
    };
    let archive = match archive {
        Ok(bytes) => bytes,
        Err(why) => {
            refuse(stream, &why)?;
            return Ok(Served::Refused { request, why });
        }
    };
    send_archive(stream, keys, &challenge, &archive)?;
    Ok(Served::Sent {
        request,
        bytes: archive.len(),
    })
}

fn refuse(stream: &mut impl Write, why: &Refusal) -> io::Result<()> {
    let mut frame = vec![FrameKind::Refusal as u8, why.code()];
    frame.extend_from_slice(why.detail().as_bytes());
    write_frame(stream, &frame)
}

fn send_archive(
    stream: &mut impl Write,
    keys: &ChannelKeys,
    challenge: &[u8; NONCE_LEN],
    archive: &[u8],
) -> Result<(), ChannelError> {
    let chunks = archive.chunks(CHUNK).map(|c| (AnswerKind::Chunk, c));
    for (seq, (kind, data)) in chunks.chain([(AnswerKind::End, &[][..])]).enumerate() {
        let seq = u32::try_from(seq).map_err(|_| ChannelError::TooLarge)?;
        let mut plain = Vec::with_capacity(1 + data.len());
        plain.push(kind as u8);
        plain.extend_from_slice(data);
        let aad = associated_data(Direction::Answer, challenge, seq);
        let mut frame = vec![FrameKind::Sealed as u8];
        frame.extend_from_slice(&seal(&keys.current, &aad, &plain)?);
        write_frame(stream, &frame)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
