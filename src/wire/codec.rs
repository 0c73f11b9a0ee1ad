//! The heartbeat body as bytes: a hand-written, canonical, bounds-checked codec.
//!
//! Hand-written rather than serde so the layout is fixed by this file (and documented in
//! the module doc) and so every length is checked against `MAX_NODES`/`MAX_GROUPS`
//! before anything is allocated.

use super::drop::DropReason;
use super::{HEADER_LEN, MAX_DATAGRAM, TAG_LEN};
use crate::core::admin_state::{
    AdminEntry, AdminKey, AdminValue, Expiry, Stamp, MAX_ADMIN_ENTRIES,
};
use crate::core::ids::{GroupId, NodeId, Term};
use crate::core::message::{
    AdminState, Echo, FenceRecord, Grant, GroupReport, Heartbeat, NodeFlags, PeerView, Phase,
    MAX_GROUPS, MAX_NODES,
};
use crate::core::time::Instant;

/// Why a heartbeat cannot be put on the wire. All of these are bugs or limits on the
/// sender's side: the receiver would reject such a datagram.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    #[error("{list} has {count} entries, at most {max} fit in a heartbeat")]
    TooMany {
        list: &'static str,
        count: usize,
        max: usize,
    },
    #[error("{field} is Some(n0), but node id 0 encodes None")]
    ReservedNodeId { field: &'static str },
    #[error("heartbeat datagram would be {size} bytes, more than the maximum {max}")]
    TooLarge { size: usize, max: usize },
    #[error("AEAD encryption failed")]
    Seal,
}

/// Largest body that still fits into a datagram.
pub(crate) const MAX_BODY: usize = MAX_DATAGRAM - HEADER_LEN - TAG_LEN;

/// Encodes the body (everything of `hb` except `from`, which travels in the header).
pub fn encode_body(hb: &Heartbeat) -> Result<Vec<u8>, EncodeError> {
    let mut w = Vec::new();
    encode_body_into(hb, &mut w)?;
    Ok(w)
}

/// Like [`encode_body`], into `w` (cleared first): a sender that keeps one buffer
/// encodes every heartbeat without allocating once the buffer has grown to size.
pub fn encode_body_into(hb: &Heartbeat, w: &mut Vec<u8>) -> Result<(), EncodeError> {
    w.clear();
    check_count("echoes", hb.echoes.len(), MAX_NODES)?;
    check_count("view", hb.view.len(), MAX_NODES)?;
    check_count("groups", hb.groups.len(), MAX_GROUPS)?;
    check_count("grants", hb.grants.len(), MAX_GROUPS)?;
    check_count("fenced", hb.fenced.len(), MAX_NODES)?;
    check_count("refuses", hb.refuses.len(), MAX_GROUPS)?;
    let admin = &hb.admin;
    check_count("admin.entries", admin.entries.len(), MAX_ADMIN_ENTRIES)?;
    check_count("admin.cleanups", admin.cleanups.len(), MAX_GROUPS)?;

    let size = body_len(hb);
    if size > MAX_BODY {
        return Err(EncodeError::TooLarge {
            size: size + HEADER_LEN + TAG_LEN,
            max: MAX_DATAGRAM,
        });
    }

    w.reserve(size);
    put_u64(w, hb.incarnation);
    put_u64(w, hb.seq);
    put_u64(w, hb.sent_at.as_nanos());
    put_u64(w, hb.config_digest);
    w.push(hb.flags.0);

    put_count8(w, hb.echoes.len());
    for e in &hb.echoes {
        put_u16(w, e.peer.0);
        put_u64(w, e.seq);
        put_u64(w, e.sent_at.as_nanos());
        put_u64(w, e.held_ns);
    }
    put_count8(w, hb.view.len());
    for v in &hb.view {
        put_u16(w, v.node.0);
        w.push(u8::from(v.up));
    }
    put_count16(w, hb.groups.len());
    for g in &hb.groups {
        put_u32(w, g.group.0);
        put_u64(w, g.term.0);
        put_opt_node(w, g.owner, "groups[].owner")?;
        put_u64(w, g.owner_incarnation);
        w.push(g.phase as u8);
        put_opt_node(w, g.handoff_to, "groups[].handoff_to")?;
    }
    put_count16(w, hb.grants.len());
    for g in &hb.grants {
        put_u32(w, g.group.0);
        put_u64(w, g.term.0);
        put_u16(w, g.to.0);
        put_u64(w, g.echo_sent_at.as_nanos());
    }
    put_count8(w, hb.fenced.len());
    for f in &hb.fenced {
        put_u16(w, f.node.0);
        put_u64(w, f.incarnation);
    }
    put_count16(w, hb.refuses.len());
    for g in &hb.refuses {
        put_u32(w, g.0);
    }

    put_count16(w, admin.entries.len());
    for e in &admin.entries {
        put_admin_entry(w, e);
    }
    put_count16(w, admin.cleanups.len());
    for (g, c) in &admin.cleanups {
        put_u32(w, g.0);
        put_u32(w, *c);
    }
    debug_assert_eq!(w.len(), size);
    Ok(())
}

const FIXED_LEN: usize = 8 * 4 + 1 + 1 + 1 + 2 + 2 + 1 + 2 + 2 + 2;
const ECHO_LEN: usize = 2 + 8 + 8 + 8;
const VIEW_LEN: usize = 2 + 1;
const GROUP_LEN: usize = 4 + 8 + 2 + 8 + 1 + 2;
const GRANT_LEN: usize = 4 + 8 + 2 + 8;
const FENCE_LEN: usize = 2 + 8;
/// The shortest admin entry: kind u8, stamp (u64, u16), state u8.
const MIN_ADMIN_ENTRY_LEN: usize = 1 + 8 + 2 + 1;
const CLEANUP_LEN: usize = 4 + 4;

fn body_len(hb: &Heartbeat) -> usize {
    FIXED_LEN
        + hb.echoes.len() * ECHO_LEN
        + hb.view.len() * VIEW_LEN
        + hb.groups.len() * GROUP_LEN
        + hb.grants.len() * GRANT_LEN
        + hb.fenced.len() * FENCE_LEN
        + hb.refuses.len() * 4
        + hb.admin.entries.iter().map(admin_entry_len).sum::<usize>()
        + hb.admin.cleanups.len() * CLEANUP_LEN
}

/// One admin entry: the kind, then only what that kind has (group u32, node u16; a
/// move's node is its target, 0 when cleared), the stamp, the state (bit 0: in force,
/// bit 1: expires) and, only if it expires, the expiry on the sender's clock.
fn put_admin_entry(w: &mut Vec<u8>, e: &AdminEntry) {
    let target = match e.value {
        AdminValue::MoveTo(n) => n.0,
        _ => 0,
    };
    match e.key {
        AdminKey::Maintenance => w.push(0),
        AdminKey::Standby(n) => {
            w.push(1);
            put_u16(w, n.0);
        }
        AdminKey::GroupMaintenance(g) => {
            w.push(2);
            put_u32(w, g.0);
        }
        AdminKey::Move(g) => {
            w.push(3);
            put_u32(w, g.0);
            put_u16(w, target);
        }
        AdminKey::Ban(g, n) => {
            w.push(4);
            put_u32(w, g.0);
            put_u16(w, n.0);
        }
    }
    put_u64(w, e.stamp.counter);
    put_u16(w, e.stamp.origin.0);
    w.push(u8::from(e.in_force()) | (u8::from(e.expires.is_some()) << 1));
    if let Some(x) = e.expires {
        put_u64(w, x.at.as_nanos());
    }
}

/// Encoded length of one admin entry.
fn admin_entry_len(e: &AdminEntry) -> usize {
    let key = match e.key {
        AdminKey::Maintenance => 0,
        AdminKey::Standby(_) => 2,
        AdminKey::GroupMaintenance(_) => 4,
        AdminKey::Move(_) | AdminKey::Ban(..) => 6,
    };
    MIN_ADMIN_ENTRY_LEN + key + if e.expires.is_some() { 8 } else { 0 }
}

fn check_count(list: &'static str, count: usize, max: usize) -> Result<(), EncodeError> {
    if count > max {
        return Err(EncodeError::TooMany { list, count, max });
    }
    Ok(())
}

fn put_u16(w: &mut Vec<u8>, v: u16) {
    w.extend_from_slice(&v.to_be_bytes());
}

fn put_u32(w: &mut Vec<u8>, v: u32) {
    w.extend_from_slice(&v.to_be_bytes());
}

fn put_u64(w: &mut Vec<u8>, v: u64) {
    w.extend_from_slice(&v.to_be_bytes());
}

// Counts were checked against MAX_NODES (< 256) / MAX_GROUPS (< 65536) above, so the
// narrowing cannot lose bits; saturate anyway rather than wrap if a limit ever grows.
fn put_count8(w: &mut Vec<u8>, n: usize) {
    w.push(u8::try_from(n).unwrap_or(u8::MAX));
}

fn put_count16(w: &mut Vec<u8>, n: usize) {
    put_u16(w, u16::try_from(n).unwrap_or(u16::MAX));
}

fn put_opt_node(
    w: &mut Vec<u8>,
    node: Option<NodeId>,
    field: &'static str,
) -> Result<(), EncodeError> {
    match node {
        None => put_u16(w, 0),
        Some(NodeId(0)) => return Err(EncodeError::ReservedNodeId { field }),
        Some(n) => put_u16(w, n.0),
    }
    Ok(())
}

/// Decodes a body produced by [`encode_body`]; `from` is the (authenticated) sender from
/// the header. Any deviation from the canonical layout is `Malformed`.
pub fn decode_body(from: NodeId, body: &[u8]) -> Result<Heartbeat, DropReason> {
    let mut r = Reader { buf: body, pos: 0 };
    let incarnation = r.u64()?;
    let seq = r.u64()?;
    let sent_at = Instant::from_nanos(r.u64()?);
    let config_digest = r.u64()?;
    let flags = NodeFlags(r.u8()?);

    let n = r.count8(MAX_NODES, ECHO_LEN)?;
    let echoes = r.items(n, Reader::echo)?;
    let n = r.count8(MAX_NODES, VIEW_LEN)?;
    let view = r.items(n, Reader::peer_view)?;
    let n = r.count16(MAX_GROUPS, GROUP_LEN)?;
    let groups = r.items(n, Reader::group_report)?;
    let n = r.count16(MAX_GROUPS, GRANT_LEN)?;
    let grants = r.items(n, Reader::grant)?;
    let n = r.count8(MAX_NODES, FENCE_LEN)?;
    let fenced = r.items(n, Reader::fence_record)?;
    let n = r.count16(MAX_GROUPS, 4)?;
    let refuses = r.items(n, Reader::group)?;
    let admin = r.admin_state()?;
    if r.pos != body.len() {
        return Err(DropReason::Malformed);
    }

    Ok(Heartbeat {
        from,
        incarnation,
        seq,
        sent_at,
        config_digest,
        flags,
        echoes,
        view,
        groups,
        grants,
        fenced,
        refuses,
        admin,
    })
}

fn on_or_cleared(on: bool) -> AdminValue {
    if on {
        AdminValue::On
    } else {
        AdminValue::Cleared
    }
}

/// A cursor over untrusted bytes: every read is bounds-checked and fails as `Malformed`.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take<const N: usize>(&mut self) -> Result<[u8; N], DropReason> {
        let end = self.pos.checked_add(N).ok_or(DropReason::Malformed)?;
        let bytes = self
            .buf
            .get(self.pos..end)
            .and_then(|s| <[u8; N]>::try_from(s).ok())
            .ok_or(DropReason::Malformed)?;
        self.pos = end;
        Ok(bytes)
    }

    fn u8(&mut self) -> Result<u8, DropReason> {
        Ok(self.take::<1>()?[0])
    }

    fn u16(&mut self) -> Result<u16, DropReason> {
        Ok(u16::from_be_bytes(self.take()?))
    }

    fn u32(&mut self) -> Result<u32, DropReason> {
        Ok(u32::from_be_bytes(self.take()?))
    }

    fn u64(&mut self) -> Result<u64, DropReason> {
        Ok(u64::from_be_bytes(self.take()?))
    }

    fn bool(&mut self) -> Result<bool, DropReason> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(DropReason::Malformed),
        }
    }

    fn opt_node(&mut self) -> Result<Option<NodeId>, DropReason> {
        Ok(match self.u16()? {
            0 => None,
            n => Some(NodeId(n)),
        })
    }

    fn count8(&mut self, max: usize, item_len: usize) -> Result<usize, DropReason> {
        let n = usize::from(self.u8()?);
        self.check_count(n, max, item_len)
    }

    fn count16(&mut self, max: usize, item_len: usize) -> Result<usize, DropReason> {
        let n = usize::from(self.u16()?);
        self.check_count(n, max, item_len)
    }

    /// A count is believed only if it is within the protocol limit and the bytes for
    /// that many items are actually there, so the caller's `with_capacity` is bounded
    /// by both the limit and the datagram's real size.
    fn check_count(&self, n: usize, max: usize, item_len: usize) -> Result<usize, DropReason> {
        let remaining = self.buf.len() - self.pos;
        if n > max || n.saturating_mul(item_len) > remaining {
            return Err(DropReason::Malformed);
        }
        Ok(n)
    }

    /// `n` items read by `item`, `n` already checked by `count8`/`count16`.
    fn items<T>(
        &mut self,
        n: usize,
        mut item: impl FnMut(&mut Self) -> Result<T, DropReason>,
    ) -> Result<Vec<T>, DropReason> {
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            out.push(item(self)?);
        }
        Ok(out)
    }

    fn node(&mut self) -> Result<NodeId, DropReason> {
        Ok(NodeId(self.u16()?))
    }

    fn group(&mut self) -> Result<GroupId, DropReason> {
        Ok(GroupId(self.u32()?))
    }

    fn instant(&mut self) -> Result<Instant, DropReason> {
        Ok(Instant::from_nanos(self.u64()?))
    }

    fn echo(&mut self) -> Result<Echo, DropReason> {
        Ok(Echo {
            peer: self.node()?,
            seq: self.u64()?,
            sent_at: self.instant()?,
            held_ns: self.u64()?,
        })
    }

    fn peer_view(&mut self) -> Result<PeerView, DropReason> {
        Ok(PeerView {
            node: self.node()?,
            up: self.bool()?,
        })
    }

    fn group_report(&mut self) -> Result<GroupReport, DropReason> {
        Ok(GroupReport {
            group: self.group()?,
            term: Term(self.u64()?),
            owner: self.opt_node()?,
            owner_incarnation: self.u64()?,
            phase: Phase::from_u8(self.u8()?).ok_or(DropReason::Malformed)?,
            handoff_to: self.opt_node()?,
        })
    }

    fn grant(&mut self) -> Result<Grant, DropReason> {
        Ok(Grant {
            group: self.group()?,
            term: Term(self.u64()?),
            to: self.node()?,
            echo_sent_at: self.instant()?,
        })
    }

    fn fence_record(&mut self) -> Result<FenceRecord, DropReason> {
        Ok(FenceRecord {
            node: self.node()?,
            incarnation: self.u64()?,
        })
    }

    /// The admin section, the last part of a body. Entries must come in strictly
    /// increasing key order (one per key), as the sender keeps them.
    fn admin_state(&mut self) -> Result<AdminState, DropReason> {
        let n = self.count16(MAX_ADMIN_ENTRIES, MIN_ADMIN_ENTRY_LEN)?;
        let entries = self.items(n, Reader::admin_entry)?;
        if entries.windows(2).any(|w| w[0].key >= w[1].key) {
            return Err(DropReason::Malformed);
        }
        let n = self.count16(MAX_GROUPS, CLEANUP_LEN)?;
        let cleanups = self.items(n, |r| Ok((r.group()?, r.u32()?)))?;
        Ok(AdminState { entries, cleanups })
    }

    /// One entry as `put_admin_entry` wrote it; any other combination is `Malformed`.
    /// The lifetime does not travel: the receiver's core sets it when it rebases the
    /// expiry onto its clock.
    fn admin_entry(&mut self) -> Result<AdminEntry, DropReason> {
        enum Parts {
            None,
            Node,
            Group,
            Both,
        }
        let kind = self.u8()?;
        let parts = match kind {
            0 => Parts::None,
            1 => Parts::Node,
            2 => Parts::Group,
            3 | 4 => Parts::Both,
            _ => return Err(DropReason::Malformed),
        };
        let group = match parts {
            Parts::Group | Parts::Both => self.group()?,
            _ => GroupId(0),
        };
        let node = match parts {
            Parts::Node | Parts::Both => self.node()?,
            _ => NodeId(0),
        };
        let stamp = Stamp {
            counter: self.u64()?,
            origin: self.node()?,
        };
        let state = self.u8()?;
        let on = state & 1 != 0;
        let (key, value) = match (kind, node.0, on) {
            (0, _, _) => (AdminKey::Maintenance, on_or_cleared(on)),
            (1, n, _) if n != 0 => (AdminKey::Standby(node), on_or_cleared(on)),
            (2, _, _) => (AdminKey::GroupMaintenance(group), on_or_cleared(on)),
            (3, 0, false) => (AdminKey::Move(group), AdminValue::Cleared),
            (3, n, true) if n != 0 => (AdminKey::Move(group), AdminValue::MoveTo(node)),
            (4, n, _) if n != 0 => (AdminKey::Ban(group, node), on_or_cleared(on)),
            _ => return Err(DropReason::Malformed),
        };
        let expires = match state >> 1 {
            0 => None,
            1 => Some(Expiry {
                at: self.instant()?,
                lifetime: std::time::Duration::ZERO,
            }),
            _ => return Err(DropReason::Malformed),
        };
        Ok(AdminEntry {
            key,
            stamp,
            value,
            expires,
        })
    }
}
