//! tandem: an active/passive failover manager in the Linux-HA tradition.
//!
//! Map of the crate (dependencies point downwards only):
//!
//! ```text
//! bin/tandemd bin/tandemctl bin/tandem-lab   thin: wiring
//! cli/      clap definitions of tandemd and tandemctl (also feed man pages, completions)
//! guard/    the lease guard: the main process that starts the daemon as its worker and
//!           takes its resources down if it dies or hangs (supervisor, takedown, table);
//!           its record protocol and the worker's end (record, link) sit below agents/
//! daemon/   the tokio driver: sockets, timers, child processes, the control socket's
//!           server (daemon/control/), admin commands (admin.rs)
//! control/  the Unix-socket protocol, client and rendering shared by daemon and CLI
//! agents/   resource agents (vip, systemd, lsb, ocf, exec) and fencing
//! net/      heartbeat links: UDP sockets bound to a device; one receive path for all
//!           links (recvmmsg), one sendmmsg per link
//! wire/     the heartbeat datagram: encode/decode, AEAD, replay window (pure)
//! core/     the deterministic heart: failure detector, membership, quorum, ownership
//! config/   YAML schema, defaults, validation with file:line:column errors
//! lab/      network-namespace test lab (tests, the demo, benchmarks); cargo feature `lab`
//! sim/      deterministic simulator of the core (seeded clusters, faults, invariants)
//! ```

pub mod agents;
pub mod cli;
pub mod config;
pub mod control;
pub mod core;
pub mod daemon;
pub mod guard;
#[cfg(feature = "lab")]
pub mod lab;
pub mod net;
pub mod sim;
pub mod wire;
