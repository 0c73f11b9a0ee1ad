//! `vip` resources: a virtual IP (IPv4 or IPv6) added to and removed from an interface
//! with rtnetlink, announced after each start with gratuitous ARP / unsolicited
//! neighbour advertisements (see [`super::announce`]).
//!
//! Start and stop are idempotent, as the core expects: starting an address that is
//! already there succeeds (and announces it again), stopping an absent one succeeds.
//! The announcement burst after a start runs in a spawned task so the start returns
//! once the address is configured and the first announcement is out; with
//! `garp_refresh` the task keeps re-announcing until the resource is stopped. Tasks are
//! found again through a small registry keyed by (network namespace, interface,
//! address).
//!
//! Netlink and packet sockets are opened in the network namespace of the thread that
//! runs the operation: every thread of the agent runtime must be in the same one.

use super::announce;
use super::OpContext;
use crate::config::{ResourceConfig, ResourceKind};
use crate::core::{OpKind, OpResult};
use futures::TryStreamExt;
use netlink_packet_route::address::{
    AddressAttribute, AddressFlags, AddressHeaderFlags, AddressMessage,
};
use netlink_packet_route::link::{LinkAttribute, LinkFlags};
use std::collections::HashMap;
use std::net::IpAddr;
use std::os::unix::fs::MetadataExt;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;
use tokio::task::{AbortHandle, JoinHandle};

const ENODEV: i32 = libc::ENODEV;
const EEXIST: i32 = libc::EEXIST;
const EADDRNOTAVAIL: i32 = libc::EADDRNOTAVAIL;
const ENOENT: i32 = libc::ENOENT;

#[derive(Debug, thiserror::Error)]
pub enum VipError {
    #[error("interface {0} does not exist")]
    NoInterface(String),
    #[error("{0} is down")]
    InterfaceDown(String),
    #[error("{0} has no carrier")]
    NoCarrier(String),
    #[error("opening a netlink socket: {0}")]
    Socket(#[source] std::io::Error),
    #[error("{context}: {source}")]
    Netlink {
        context: String,
        #[source]
        source: rtnetlink::Error,
    },
    #[error("announcing {address} on {interface}: {source}")]
    Announce {
        address: IpAddr,
        interface: String,
        #[source]
        source: std::io::Error,
    },
    #[error("not a vip resource")]
    NotVip,
}

/// The fields of a `vip` resource, borrowed.
#[derive(Clone, Copy, Debug)]
struct Vip<'a> {
    name: &'a str,
    address: IpAddr,
    prefix: u8,
    interface: &'a str,
    label: Option<&'a str>,
    garp_count: u32,
    garp_interval: Duration,
    garp_refresh: Option<Duration>,
}

impl<'a> Vip<'a> {
    fn of(resource: &'a ResourceConfig) -> Result<Self, VipError> {
        match &resource.kind {
            ResourceKind::Vip {
                address,
                prefix,
                interface,
                label,
                garp_count,
                garp_interval,
                garp_refresh,
            } => Ok(Vip {
                name: &resource.name,
                address: *address,
                prefix: *prefix,
                interface,
                label: label.as_deref(),
                garp_count: *garp_count,
                garp_interval: *garp_interval,
                garp_refresh: *garp_refresh,
            }),
            _ => Err(VipError::NotVip),
        }
    }
}

/// Runs one operation on a `vip` resource, within `ctx.timeout`.
pub async fn run(ctx: &OpContext<'_>) -> OpResult {
    let vip = match Vip::of(ctx.resource) {
        Ok(v) => v,
        Err(e) => return OpResult::Failed(format!("{}: {e}", ctx.resource.name)),
    };
    let op = async {
        match ctx.kind {
            OpKind::Start => start(&vip).await,
            OpKind::Stop => stop(&vip).await,
            OpKind::Monitor => monitor(&vip).await,
        }
    };
    match tokio::time::timeout(ctx.timeout, op).await {
        Ok(Ok(result)) => result,
        Ok(Err(e)) => {
            tracing::warn!(resource = vip.name, op = ?ctx.kind, "vip: {e}");
            OpResult::Failed(e.to_string())
        }
        Err(_) => {
            tracing::warn!(resource = vip.name, op = ?ctx.kind, timeout = ?ctx.timeout, "vip: operation timed out");
            OpResult::TimedOut
        }
    }
}

/// Announces the address again (`garp_count` times every `garp_interval`) if this node
/// has it: the daemon calls this when the core asks an owner to (a peer came back: a
/// partition healed or a node rejoined), because neighbours on the far side may have
/// learnt another MAC for it meanwhile and would keep sending there. The first
/// announcement is sent before returning, the rest from a spawned task.
pub async fn announce_again(resource: &ResourceConfig) {
    let Ok(vip) = Vip::of(resource) else {
        return;
    };
    if vip.garp_count == 0 {
        return;
    }
    match announce_if_owned(vip.interface, vip.address).await {
        Ok(true) => {
            tracing::info!(resource = vip.name, address = %vip.address, "vip: announced again");
            if vip.garp_count > 1 {
                let interface = vip.interface.to_string();
                let (address, interval, count) = (vip.address, vip.garp_interval, vip.garp_count);
                let name = vip.name.to_string();
                tokio::spawn(async move {
                    burst(&name, &interface, address, count - 1, interval).await;
                });
            }
        }
        Ok(false) => {
            tracing::debug!(
                resource = vip.name,
                "vip: not configured here, nothing to announce"
            )
        }
        Err(e) => tracing::warn!(resource = vip.name, "vip: announcing again: {e}"),
    }
}

/// A netlink connection whose driver task ends when this is dropped.
struct Netlink {
    handle: rtnetlink::Handle,
    driver: JoinHandle<()>,
}

impl Netlink {
    fn open() -> Result<Self, VipError> {
        let (connection, handle, _) = rtnetlink::new_connection().map_err(VipError::Socket)?;
        let driver = tokio::spawn(connection);
        Ok(Netlink { handle, driver })
    }
}

impl Drop for Netlink {
    fn drop(&mut self) {
        self.driver.abort();
    }
}

/// The kernel's errno of a netlink error (positive), if it is one.
fn errno(e: &rtnetlink::Error) -> Option<i32> {
    match e {
        rtnetlink::Error::NetlinkError(m) => Some(m.raw_code().abs()),
        _ => None,
    }
}

#[derive(Clone, Copy, Debug)]
struct Link {
    index: u32,
    /// `None` on links without an Ethernet address (nothing to announce there).
    mac: Option<[u8; 6]>,
    up: bool,
    /// IFF_RUNNING: operationally up (carrier), what keepalived watches too.
    running: bool,
}

async fn link(nl: &Netlink, interface: &str) -> Result<Link, VipError> {
    let found = nl
        .handle
        .link()
        .get()
        .match_name(interface)
        .execute()
        .try_next()
        .await;
    let msg = match found {
        Ok(Some(m)) => m,
        Ok(None) => return Err(VipError::NoInterface(interface.to_string())),
        Err(e) if errno(&e) == Some(ENODEV) => {
            return Err(VipError::NoInterface(interface.to_string()))
        }
        Err(e) => {
            return Err(VipError::Netlink {
                context: format!("looking up interface {interface}"),
                source: e,
            })
        }
    };
    let mac = msg.attributes.iter().find_map(|a| match a {
        LinkAttribute::Address(bytes) => <[u8; 6]>::try_from(bytes.as_slice()).ok(),
        _ => None,
    });
    Ok(Link {
        index: msg.header.index,
        mac,
        up: msg.header.flags.contains(LinkFlags::Up),
        running: msg.header.flags.contains(LinkFlags::Running),
    })
}

/// The kernel's records of `address` on interface `index` (normally zero or one).
async fn addresses(
    nl: &Netlink,
    index: u32,
    address: IpAddr,
) -> Result<Vec<AddressMessage>, VipError> {
    nl.handle
        .address()
        .get()
        .set_link_index_filter(index)
        .set_address_filter(address)
        .execute()
        .try_collect()
        .await
        .map_err(|e| VipError::Netlink {
            context: format!("listing addresses of interface index {index}"),
            source: e,
        })
}

fn dad_failed(msg: &AddressMessage) -> bool {
    msg.header.flags.contains(AddressHeaderFlags::Dadfailed)
        || msg.attributes.iter().any(|a| match a {
            AddressAttribute::Flags(f) => f.contains(AddressFlags::Dadfailed),
            _ => false,
        })
}

fn check_up(interface: &str, link: &Link) -> Result<(), VipError> {
    if !link.up {
        return Err(VipError::InterfaceDown(interface.to_string()));
    }
    if !link.running {
        return Err(VipError::NoCarrier(interface.to_string()));
    }
    Ok(())
}

/// The line a reader of the log keys on: `vip` is `added` or `removed`, with the bare
/// `address` and `dev` as fields (the message is for people).
fn log_change(vip: &Vip<'_>, change: &'static str, message: std::fmt::Arguments<'_>) {
    tracing::info!(
        resource = vip.name,
        vip = change,
        address = %vip.address,
        dev = %vip.interface,
        "{message}"
    );
}

async fn start(vip: &Vip<'_>) -> Result<OpResult, VipError> {
    let nl = Netlink::open()?;
    let link = link(&nl, vip.interface).await?;
    // An address on a down interface answers nobody: better to fail here so the group
    // goes to a node whose interface works.
    check_up(vip.interface, &link)?;
    let mut add = nl.handle.address().add(link.index, vip.address, vip.prefix);
    match vip.address {
        IpAddr::V4(_) => {
            if let Some(label) = vip.label {
                add.message_mut()
                    .attributes
                    .push(AddressAttribute::Label(label.to_string()));
            }
        }
        IpAddr::V6(_) => {
            // No duplicate address detection: with DAD the address stays "tentative"
            // for about a second (no traffic can use it as a source, and it does not
            // answer neighbour solicitations), which would delay every failover. The
            // old owner has removed it before we get here (the lease guarantees that),
            // and DAD would also stall or fail the takeover if a stale cache somewhere
            // still answered for it.
            add.message_mut().header.flags |= AddressHeaderFlags::Nodad;
            add.message_mut()
                .attributes
                .push(AddressAttribute::Flags(AddressFlags::Nodad));
        }
    }
    match add.execute().await {
        Ok(()) => log_change(
            vip,
            "added",
            format_args!(
                "vip: added {}/{} to {}",
                vip.address, vip.prefix, vip.interface
            ),
        ),
        Err(e) if errno(&e) == Some(EEXIST) => tracing::info!(
            resource = vip.name,
            "vip: {} already on {}",
            vip.address,
            vip.interface
        ),
        Err(e) => {
            return Err(VipError::Netlink {
                context: format!("adding {}/{} to {}", vip.address, vip.prefix, vip.interface),
                source: e,
            })
        }
    }
    drop(nl);
    start_announcing(vip).await;
    Ok(OpResult::Ok)
}

async fn stop(vip: &Vip<'_>) -> Result<OpResult, VipError> {
    // Cancel the announcements first: nothing may advertise the address once it is
    // being given up.
    cancel_announcements(vip.interface, vip.address);
    let nl = Netlink::open()?;
    let link = match link(&nl, vip.interface).await {
        Ok(l) => l,
        // Without the interface the address cannot be configured: stopped. Failing
        // here would escalate to fencing for nothing.
        Err(VipError::NoInterface(_)) => {
            tracing::info!(
                resource = vip.name,
                "vip: interface {} does not exist, so {} is not configured",
                vip.interface,
                vip.address
            );
            return Ok(OpResult::Ok);
        }
        Err(e) => return Err(e),
    };
    for msg in addresses(&nl, link.index, vip.address).await? {
        match nl.handle.address().del(msg).execute().await {
            Ok(()) => log_change(
                vip,
                "removed",
                format_args!("vip: removed {} from {}", vip.address, vip.interface),
            ),
            // Gone in between: what we wanted.
            Err(e) if matches!(errno(&e), Some(EADDRNOTAVAIL | ENOENT)) => {}
            Err(e) => {
                return Err(VipError::Netlink {
                    context: format!("removing {} from {}", vip.address, vip.interface),
                    source: e,
                })
            }
        }
    }
    Ok(OpResult::Ok)
}

async fn monitor(vip: &Vip<'_>) -> Result<OpResult, VipError> {
    let nl = Netlink::open()?;
    let link = link(&nl, vip.interface).await?;
    let present = addresses(&nl, link.index, vip.address).await?;
    if present.is_empty() {
        return Ok(OpResult::NotRunning);
    }
    if present.iter().any(dad_failed) {
        return Ok(OpResult::Failed(format!(
            "{} on {}: duplicate address detected",
            vip.address, vip.interface
        )));
    }
    Ok(match check_up(vip.interface, &link) {
        Ok(()) => OpResult::Ok,
        Err(e) => OpResult::Failed(e.to_string()),
    })
}

/// Sends one announcement if `address` is configured on `interface`; `Ok(false)` if it
/// is not (then nothing is sent: announcing an address we do not hold would steal it).
async fn announce_if_owned(interface: &str, address: IpAddr) -> Result<bool, VipError> {
    let nl = Netlink::open()?;
    let link = link(&nl, interface).await?;
    if addresses(&nl, link.index, address).await?.is_empty() {
        return Ok(false);
    }
    let Some(mac) = link.mac else {
        // Point-to-point and other non-Ethernet links have no neighbour caches to fix.
        return Ok(true);
    };
    let (frame, ethertype) = announce::announcement_frame(mac, address);
    announce::send_frame(link.index, &frame, ethertype).map_err(|e| VipError::Announce {
        address,
        interface: interface.to_string(),
        source: e,
    })?;
    Ok(true)
}

/// Sends up to `count` announcements, one every `interval` (waiting before each).
/// Returns false when the address went away (the burst then stops).
async fn burst(
    name: &str,
    interface: &str,
    address: IpAddr,
    count: u32,
    interval: Duration,
) -> bool {
    for _ in 0..count {
        tokio::time::sleep(interval).await;
        match announce_if_owned(interface, address).await {
            Ok(true) => {}
            Ok(false) => {
                tracing::debug!(resource = name, "vip: address gone, announcements stop");
                return false;
            }
            // A failed send is not fatal: the next one may get through (e.g. a full
            // transmit queue), and the monitor reports a broken interface.
            Err(e) => tracing::warn!(resource = name, "vip: {e}"),
        }
    }
    true
}

/// Identifies one VIP on this machine: the same interface name and address may exist in
/// several network namespaces (the lab and tests run many nodes in one process).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct AnnounceKey {
    netns: u64,
    interface: String,
    address: IpAddr,
}

impl AnnounceKey {
    fn new(interface: &str, address: IpAddr) -> Self {
        AnnounceKey {
            netns: current_netns(),
            interface: interface.to_string(),
            address,
        }
    }
}

fn current_netns() -> u64 {
    std::fs::metadata("/proc/thread-self/ns/net").map_or(0, |m| m.ino())
}

struct Registration {
    generation: u64,
    task: AbortHandle,
}

struct Registry {
    next_generation: u64,
    tasks: HashMap<AnnounceKey, Registration>,
}

fn registry() -> &'static Mutex<Registry> {
    static REGISTRY: OnceLock<Mutex<Registry>> = OnceLock::new();
    REGISTRY.get_or_init(|| {
        Mutex::new(Registry {
            next_generation: 0,
            tasks: HashMap::new(),
        })
    })
}

fn lock_registry() -> std::sync::MutexGuard<'static, Registry> {
    // The registry holds no invariant a panicking holder could break halfway.
    registry().lock().unwrap_or_else(|p| p.into_inner())
}

fn cancel_announcements(interface: &str, address: IpAddr) {
    let key = AnnounceKey::new(interface, address);
    if let Some(reg) = lock_registry().tasks.remove(&key) {
        reg.task.abort();
    }
}

/// Whether announcements for this VIP are still scheduled (for tests and status).
pub fn announcing(interface: &str, address: IpAddr) -> bool {
    lock_registry()
        .tasks
        .get(&AnnounceKey::new(interface, address))
        .is_some_and(|r| !r.task.is_finished())
}

/// Sends the first announcement now and leaves the rest (and the refresh) to a task
/// that replaces any earlier one for the same VIP.
async fn start_announcing(vip: &Vip<'_>) {
    cancel_announcements(vip.interface, vip.address);
    if vip.garp_count > 0 {
        match announce_if_owned(vip.interface, vip.address).await {
            Ok(_) => {}
            Err(e) => tracing::warn!(resource = vip.name, "vip: {e}"),
        }
    }
    let remaining = vip.garp_count.saturating_sub(1);
    if remaining == 0 && vip.garp_refresh.is_none() {
        return;
    }
    let key = AnnounceKey::new(vip.interface, vip.address);
    let name = vip.name.to_string();
    let interface = vip.interface.to_string();
    let (address, interval, refresh) = (vip.address, vip.garp_interval, vip.garp_refresh);
    let mut reg = lock_registry();
    reg.next_generation += 1;
    let generation = reg.next_generation;
    let task_key = key.clone();
    let task = tokio::spawn(async move {
        let mut owned = burst(&name, &interface, address, remaining, interval).await;
        if let Some(every) = refresh {
            while owned {
                owned = burst(&name, &interface, address, 1, every).await;
            }
        }
        let mut reg = lock_registry();
        if reg
            .tasks
            .get(&task_key)
            .is_some_and(|r| r.generation == generation)
        {
            reg.tasks.remove(&task_key);
        }
    });
    reg.tasks.insert(
        key,
        Registration {
            generation,
            task: task.abort_handle(),
        },
    );
}
