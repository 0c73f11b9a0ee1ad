//! The deterministic heart of tandem: failure detection, membership, quorum, leases
//! and ownership of resource groups.
//!
//! Sans-IO: no tokio, no sockets, no clock reads, no randomness it was not handed. Time
//! comes in as an argument ([`Instant`]), inputs are plain values ([`Input`]), outputs
//! are plain values ([`Action`]). See [`io`] for the driver contract. Because nothing
//! here touches the world, the simulator in `crate::sim` can run thousands of seeded
//! clusters and check the safety invariants after every step.

pub mod admin_state;
pub mod decision;
pub mod detector;
pub mod holders;
pub mod ids;
pub mod io;
pub mod message;
pub mod node;
pub mod quorum;
pub mod reason;
pub mod spec;
pub mod status;
pub mod time;

pub use decision::Decision;
pub use ids::{GroupId, NodeId, Term};
pub use io::{
    Action, AdminCommand, Event, EventKind, Fault, FenceId, FenceResult, Input, OpId, OpKind,
    OpResult,
};
pub use message::Heartbeat;
pub use node::{Boot, Deadline, Node, PersistentState, ReconfigureError};
pub use reason::Reason;
pub use spec::ClusterSpec;
pub use time::Instant;
