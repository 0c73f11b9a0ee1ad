//! The address watcher: a netlink (RTMGRP_IPV4_IFADDR) listener per node namespace that
//! timestamps the moment the VIP appears on or leaves an interface, without polling
//! `ip addr`.

use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use super::raw::{bind, enter_netns, spawn_in_netns};
use super::realtime_ns;
use crate::lab::topology::VIP;
use crate::lab::LabError;

const RTMGRP_IPV4_IFADDR: u32 = 0x10;

/// VIP added to / removed from an interface in a node namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddrEvent {
    pub at_ns: i64,
    /// 1-based node index.
    pub node: usize,
    pub added: bool,
}

/// The running watchers; dropping them joins their threads.
pub struct AddrWatch {
    stop: Arc<AtomicBool>,
    events: Arc<Mutex<Vec<AddrEvent>>>,
    handles: Vec<JoinHandle<()>>,
}

impl AddrWatch {
    /// Watches the VIP in each `(node, namespace)`.
    pub fn start(nodes: &[(usize, String)]) -> Result<AddrWatch, LabError> {
        let mut w = AddrWatch {
            stop: Arc::new(AtomicBool::new(false)),
            events: Arc::default(),
            handles: Vec::new(),
        };
        for (node, ns) in nodes.iter().cloned() {
            let (stop, events) = (Arc::clone(&w.stop), Arc::clone(&w.events));
            let h = spawn_in_netns(
                format!("addr-watch-n{node}"),
                move || open(&ns),
                move |fd| run(&fd, node, &stop, &events),
            )?;
            w.handles.push(h);
        }
        Ok(w)
    }

    /// Hands over the events since the last call.
    pub fn take(&self) -> Vec<AddrEvent> {
        self.events
            .lock()
            .map(|mut g| std::mem::take(&mut *g))
            .unwrap_or_default()
    }
}

impl Drop for AddrWatch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for h in self.handles.drain(..) {
            let _ = h.join();
        }
    }
}

fn open(ns: &str) -> Result<OwnedFd, LabError> {
    enter_netns(ns)?;
    // Blocking with a receive timeout, so the stop flag is seen.
    let fd = crate::guard::netlink::route_socket().map_err(|source| LabError::Io {
        context: "netlink socket".into(),
        source,
    })?;
    let tv = libc::timeval {
        tv_sec: 0,
        tv_usec: 100_000,
    };
    // SAFETY: setsockopt with a valid timeval.
    unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            &tv as *const libc::timeval as *const libc::c_void,
            std::mem::size_of::<libc::timeval>() as u32,
        );
    }
    // SAFETY: zeroed sockaddr_nl is valid.
    let mut sa: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
    sa.nl_family = libc::AF_NETLINK as u16;
    sa.nl_groups = RTMGRP_IPV4_IFADDR;
    bind(&fd, &sa, "binding netlink to RTMGRP_IPV4_IFADDR")?;
    Ok(fd)
}

fn run(fd: &OwnedFd, node: usize, stop: &AtomicBool, events: &Mutex<Vec<AddrEvent>>) {
    let mut buf = vec![0u8; 16384];
    while !stop.load(Ordering::Relaxed) {
        // SAFETY: recv into our buffer.
        let n = unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n <= 0 {
            continue;
        }
        let at_ns = realtime_ns();
        if let Ok(mut g) = events.lock() {
            for added in parse_addr_messages(&buf[..n as usize]) {
                g.push(AddrEvent { at_ns, node, added });
            }
        }
    }
}

/// For each RTM_NEWADDR / RTM_DELADDR about the VIP in a netlink datagram: true for added.
pub fn parse_addr_messages(mut data: &[u8]) -> Vec<bool> {
    const RTM_NEWADDR: u16 = 20;
    const RTM_DELADDR: u16 = 21;
    const IFA_ADDRESS: u16 = 1;
    const IFA_LOCAL: u16 = 2;
    let mut out = Vec::new();
    while data.len() >= 16 {
        let len = u32::from_ne_bytes([data[0], data[1], data[2], data[3]]) as usize;
        let ty = u16::from_ne_bytes([data[4], data[5]]);
        if len < 16 || len > data.len() {
            break;
        }
        let msg = &data[16..len];
        if (ty == RTM_NEWADDR || ty == RTM_DELADDR) && msg.len() >= 8 && msg[0] == 2 {
            let mut attrs = &msg[8..];
            let mut hit = false;
            while attrs.len() >= 4 {
                let alen = usize::from(u16::from_ne_bytes([attrs[0], attrs[1]]));
                let aty = u16::from_ne_bytes([attrs[2], attrs[3]]);
                if alen < 4 || alen > attrs.len() {
                    break;
                }
                if (aty == IFA_LOCAL || aty == IFA_ADDRESS)
                    && alen == 8
                    && attrs[4..8] == VIP.octets()
                {
                    hit = true;
                }
                attrs = attrs.get((alen + 3) & !3..).unwrap_or(&[]);
            }
            if hit {
                out.push(ty == RTM_NEWADDR);
            }
        }
        let next = (len + 3) & !3;
        if next >= data.len() {
            break;
        }
        data = &data[next..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn netlink_newaddr_for_the_vip() {
        // nlmsghdr(16) + ifaddrmsg(8) + IFA_LOCAL(8)
        let mut m = vec![0u8; 32];
        m[0..4].copy_from_slice(&32u32.to_ne_bytes());
        m[4..6].copy_from_slice(&20u16.to_ne_bytes());
        m[16] = 2; // AF_INET
        m[24..26].copy_from_slice(&8u16.to_ne_bytes());
        m[26..28].copy_from_slice(&2u16.to_ne_bytes());
        m[28..32].copy_from_slice(&VIP.octets());
        assert_eq!(parse_addr_messages(&m), vec![true]);
        m[4..6].copy_from_slice(&21u16.to_ne_bytes());
        assert_eq!(parse_addr_messages(&m), vec![false]);
        m[31] = 1;
        assert!(parse_addr_messages(&m).is_empty());
    }
}
