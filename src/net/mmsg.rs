//! Batched datagram syscalls: `recvmmsg` into buffers allocated once, `sendmmsg` of one
//! datagram to every peer of a link.
//!
//! Why batches: at a 10 ms interval a node sends and receives hundreds of datagrams a
//! second, and with one `sendto`/`recvfrom` each (plus the `recvfrom` that only says
//! "nothing more") the syscalls, not the cryptography, were most of the heartbeat
//! thread's cost. The `unsafe` here is confined to filling the kernel's message headers
//! with pointers into buffers that outlive the call.

use nix::sys::socket::{SockaddrLike, SockaddrStorage};
use std::io;
use std::mem::size_of;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6};
use std::os::fd::RawFd;

/// Datagrams read by one `recvmmsg`. A heartbeat thread sees one or two datagrams per
/// wake-up when healthy; eight absorbs a burst (a peer's beats on both links, a
/// backlog after a stall) without making the buffers large.
pub const BATCH: usize = 8;

/// Sends of one `sendmmsg` (more peers take more calls): the message headers live on
/// the stack, so this bounds the stack, not the cluster.
const SEND_CHUNK: usize = 32;

/// One slot per datagram, one byte larger than the largest datagram tandem accepts, so
/// an oversized datagram is recognised instead of silently cut to size.
const SLOT: usize = crate::wire::MAX_DATAGRAM + 1;

/// Receive buffers for one batch, allocated once. Pages the kernel never writes to (the
/// tail of every slot, for datagrams of a few hundred bytes) are never made resident.
pub struct RecvBatch {
    buf: Vec<u8>,
    lens: [usize; BATCH],
    truncated: [bool; BATCH],
    addrs: [libc::sockaddr_storage; BATCH],
    addr_lens: [libc::socklen_t; BATCH],
    count: usize,
}

impl Default for RecvBatch {
    fn default() -> Self {
        RecvBatch {
            buf: vec![0; SLOT * BATCH],
            lens: [0; BATCH],
            truncated: [false; BATCH],
            // SAFETY: sockaddr_storage is a plain C struct for which all-zero bytes are
            // a valid value (family AF_UNSPEC).
            addrs: [unsafe { std::mem::zeroed() }; BATCH],
            addr_lens: [0; BATCH],
            count: 0,
        }
    }
}

impl RecvBatch {
    /// Datagram `i` of the batch and its sender; the bytes are `None` if the datagram
    /// was larger than `wire::MAX_DATAGRAM`. Mutable so that it can be decrypted where
    /// it lies.
    pub fn get_mut(&mut self, i: usize) -> Option<(Option<SocketAddr>, Option<&mut [u8]>)> {
        if i >= self.count {
            return None;
        }
        let from = socket_addr(&self.addrs[i], self.addr_lens[i]);
        let len = self.lens[i];
        if self.truncated[i] || len > crate::wire::MAX_DATAGRAM {
            return Some((from, None));
        }
        let start = i * SLOT;
        Some((from, self.buf.get_mut(start..start + len)))
    }

    /// One non-blocking `recvmmsg` on `fd`: reads up to [`BATCH`] datagrams. Fewer than
    /// `BATCH` means the socket's queue was empty when the call returned.
    pub fn recv(&mut self, fd: RawFd) -> io::Result<usize> {
        self.count = 0;
        let name_len = socklen(size_of::<libc::sockaddr_storage>());
        // SAFETY: all-zero bytes are a valid iovec (null, 0) and a valid mmsghdr (no
        // name, no buffers, no control data); both are overwritten below.
        let mut iovs: [libc::iovec; BATCH] = unsafe { std::mem::zeroed() };
        let mut hdrs: [libc::mmsghdr; BATCH] = unsafe { std::mem::zeroed() };
        let slots = self.buf.chunks_exact_mut(SLOT);
        for (((iov, hdr), slot), addr) in iovs
            .iter_mut()
            .zip(hdrs.iter_mut())
            .zip(slots)
            .zip(self.addrs.iter_mut())
        {
            iov.iov_base = slot.as_mut_ptr().cast();
            iov.iov_len = slot.len();
            hdr.msg_hdr.msg_name = (addr as *mut libc::sockaddr_storage).cast();
            hdr.msg_hdr.msg_namelen = name_len;
            hdr.msg_hdr.msg_iov = iov;
            hdr.msg_hdr.msg_iovlen = 1;
        }
        // SAFETY: every header points at a distinct SLOT-byte slot of `self.buf` and a
        // distinct sockaddr_storage of `self.addrs`, with their true lengths; all of them
        // outlive this call and nothing else touches them during it. No timeout.
        let rc = unsafe {
            libc::recvmmsg(
                fd,
                hdrs.as_mut_ptr(),
                BATCH as libc::c_uint,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        let count = usize::try_from(rc).map_err(|_| io::Error::last_os_error())?;
        for (i, hdr) in hdrs.iter().enumerate().take(count) {
            self.lens[i] = hdr.msg_len as usize;
            self.truncated[i] = hdr.msg_hdr.msg_flags & libc::MSG_TRUNC != 0;
            self.addr_lens[i] = hdr.msg_hdr.msg_namelen;
        }
        self.count = count;
        Ok(count)
    }
}

/// What one send to every peer of a link did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SendReport {
    pub sent: usize,
    pub failed: usize,
}

/// Sends `datagram` to every address of `peers` on `fd` without blocking, in as few
/// `sendmmsg` calls as the kernel allows: one, unless a send fails, in which case the
/// failed peer is counted and skipped and the rest go out in the next call. `link`
/// only names the link in trace logs.
pub fn send_to_each(
    fd: RawFd,
    datagram: &[u8],
    peers: &[SockaddrStorage],
    link: usize,
) -> SendReport {
    let mut report = SendReport::default();
    let mut iov = libc::iovec {
        iov_base: datagram.as_ptr().cast_mut().cast(),
        iov_len: datagram.len(),
    };
    for chunk in peers.chunks(SEND_CHUNK) {
        // SAFETY: all-zero bytes are a valid mmsghdr; the used ones are filled below.
        let mut hdrs: [libc::mmsghdr; SEND_CHUNK] = unsafe { std::mem::zeroed() };
        for (hdr, peer) in hdrs.iter_mut().zip(chunk) {
            hdr.msg_hdr.msg_name = peer.as_ptr().cast_mut().cast();
            hdr.msg_hdr.msg_namelen = peer.len();
            hdr.msg_hdr.msg_iov = &mut iov;
            hdr.msg_hdr.msg_iovlen = 1;
        }
        let mut done = 0;
        while done < chunk.len() {
            let rest = &mut hdrs[done..chunk.len()];
            // SAFETY: each header points at a peer address and at `iov`, which points at
            // `datagram`; all outlive the call. The kernel only reads them for a send
            // (the `*mut` casts are what the C signature asks for, nothing is written).
            let rc = unsafe {
                libc::sendmmsg(
                    fd,
                    rest.as_mut_ptr(),
                    rest.len() as libc::c_uint,
                    libc::MSG_DONTWAIT,
                )
            };
            match usize::try_from(rc) {
                Ok(n) if n > 0 => {
                    report.sent += n;
                    done += n;
                }
                _ => {
                    let e = io::Error::last_os_error();
                    if e.kind() == io::ErrorKind::Interrupted {
                        continue;
                    }
                    // The error belongs to the first message of the call: count it and
                    // carry on with the others (a down peer must not silence the rest).
                    report.failed += 1;
                    tracing::trace!(
                        "link {link}: send to {:?} failed: {e}",
                        chunk.get(done).map(ToString::to_string)
                    );
                    done += 1;
                }
            }
        }
    }
    report
}

fn socklen(n: usize) -> libc::socklen_t {
    libc::socklen_t::try_from(n).unwrap_or(libc::socklen_t::MAX)
}

/// The sender address the kernel wrote for one datagram (`None` for a family other
/// than IPv4/IPv6, which a UDP socket of ours never reports).
fn socket_addr(storage: &libc::sockaddr_storage, len: libc::socklen_t) -> Option<SocketAddr> {
    let len = len as usize;
    match libc::c_int::from(storage.ss_family) {
        libc::AF_INET if len >= size_of::<libc::sockaddr_in>() => {
            // SAFETY: the kernel wrote a sockaddr_in (family AF_INET, length checked);
            // sockaddr_storage is large and aligned enough for every sockaddr type.
            let sin =
                unsafe { &*(storage as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            let ip = Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr));
            Some(SocketAddr::new(IpAddr::V4(ip), u16::from_be(sin.sin_port)))
        }
        libc::AF_INET6 if len >= size_of::<libc::sockaddr_in6>() => {
            // SAFETY: as above, for a sockaddr_in6.
            let sin6 = unsafe {
                &*(storage as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>()
            };
            Some(SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(sin6.sin6_addr.s6_addr),
                u16::from_be(sin6.sin6_port),
                u32::from_be(sin6.sin6_flowinfo),
                sin6.sin6_scope_id,
            )))
        }
        _ => None,
    }
}
