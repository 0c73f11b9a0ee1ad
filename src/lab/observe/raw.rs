//! Raw sockets inside a lab namespace: entering it from one thread, an AF_PACKET socket
//! on the namespace's eth0, and draining it with receive timestamps. The client observer
//! and the address watcher are built on these.

use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Instant;

use super::realtime_ns;
use crate::lab::{io_err, netns, LabError};

pub(crate) fn last_os_error(what: &str) -> LabError {
    LabError::Io {
        context: what.to_string(),
        source: std::io::Error::last_os_error(),
    }
}

/// Moves the calling thread (only it) into the named network namespace.
pub(crate) fn enter_netns(ns: &str) -> Result<(), LabError> {
    let path = netns::netns_path(ns);
    let f = File::open(&path).map_err(io_err(format!("opening {}", path.display())))?;
    // SAFETY: setns on a valid fd; it affects only the calling thread.
    if unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return Err(last_os_error(&format!("setns into {ns}")));
    }
    Ok(())
}

pub(crate) fn socket(domain: i32, ty: i32, proto: i32, what: &str) -> Result<OwnedFd, LabError> {
    // SAFETY: plain socket(2); the fd is owned by the OwnedFd from here on.
    let fd = unsafe { libc::socket(domain, ty | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK, proto) };
    if fd < 0 {
        return Err(last_os_error(what));
    }
    // SAFETY: fd is a fresh, valid descriptor nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Opens a non-blocking AF_PACKET socket for the ethertype `protocol` (host order, e.g.
/// `libc::ETH_P_ALL`) bound to the calling thread's namespace's eth0, so that it sees only
/// the client's link.
pub(crate) fn packet_socket_on_eth0(protocol: u16) -> Result<OwnedFd, LabError> {
    let protocol_be = protocol.to_be();
    let fd = socket(
        libc::AF_PACKET,
        libc::SOCK_RAW,
        i32::from(protocol_be),
        "AF_PACKET socket",
    )?;
    // SAFETY: a valid NUL-terminated name.
    let ifindex = unsafe { libc::if_nametoindex(c"eth0".as_ptr()) };
    if ifindex == 0 {
        return Err(last_os_error("client eth0 ifindex"));
    }
    // SAFETY: zeroed sockaddr_ll is valid; fields set below.
    let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_protocol = protocol_be;
    sll.sll_ifindex = ifindex as i32;
    bind(&fd, &sll, "binding the packet socket to eth0")?;
    Ok(fd)
}

/// bind(2) of `fd` to `addr`, a `libc::sockaddr_*` of the socket's family.
pub(crate) fn bind<A>(fd: &OwnedFd, addr: &A, what: &str) -> Result<(), LabError> {
    // SAFETY: `addr` is a whole sockaddr_* value of the socket's family; its size is
    // passed along.
    let r = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (addr as *const A).cast::<libc::sockaddr>(),
            std::mem::size_of::<A>() as u32,
        )
    };
    if r != 0 {
        return Err(last_os_error(what));
    }
    Ok(())
}

/// Waits until `until` (at most a second) for frames on an AF_PACKET socket, then hands
/// every frame received — not the ones this host sent — to `each` with its CLOCK_REALTIME
/// receive time. The socket must be non-blocking.
pub(crate) fn drain_incoming(
    fd: &OwnedFd,
    until: Instant,
    buf: &mut [u8],
    mut each: impl FnMut(i64, &[u8]),
) {
    let wait = until.saturating_duration_since(Instant::now());
    let ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: wait.subsec_nanos() as libc::c_long,
    };
    let mut pfd = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd, valid timespec, no signal mask.
    unsafe { libc::ppoll(&mut pfd, 1, &ts, std::ptr::null()) };
    loop {
        // SAFETY: zeroed sockaddr_ll is valid as an out-parameter.
        let mut from: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        let mut len = std::mem::size_of::<libc::sockaddr_ll>() as u32;
        // SAFETY: recvfrom into our buffer and sockaddr.
        let n = unsafe {
            libc::recvfrom(
                fd.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                0,
                &mut from as *mut libc::sockaddr_ll as *mut libc::sockaddr,
                &mut len,
            )
        };
        if n <= 0 {
            return;
        }
        let at_ns = realtime_ns();
        if from.sll_pkttype != libc::PACKET_OUTGOING {
            each(at_ns, &buf[..n as usize]);
        }
    }
}

/// Starts a named thread that first enters a namespace (`open` runs there and makes its
/// sockets), then runs `body`; returns once `open` succeeded, or its error.
pub(crate) fn spawn_in_netns<S: Send + 'static>(
    name: String,
    open: impl FnOnce() -> Result<S, LabError> + Send + 'static,
    body: impl FnOnce(S) + Send + 'static,
) -> Result<std::thread::JoinHandle<()>, LabError> {
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let what = name.clone();
    let handle = std::thread::Builder::new()
        .name(name)
        .spawn(move || match open() {
            Ok(s) => {
                let _ = ready_tx.send(Ok(()));
                body(s);
            }
            Err(e) => {
                let _ = ready_tx.send(Err(e.to_string()));
            }
        })
        .map_err(io_err(format!("starting thread {what}")))?;
    match ready_rx.recv() {
        Ok(Ok(())) => Ok(handle),
        Ok(Err(e)) => Err(LabError::Observer(format!("{what}: {e}"))),
        Err(_) => Err(LabError::Observer(format!("{what}: the thread died"))),
    }
}
