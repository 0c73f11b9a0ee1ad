//! The validated, typed configuration: what the daemon, the CLI and the lab use.
//!
//! Everything here has passed validation: defaults are filled in, names resolved to
//! ids, cross-references checked. [`Config::cluster_spec`] projects it onto the core's
//! [`ClusterSpec`]; [`Config::digest`] is what heartbeats carry so that nodes with
//! different configs notice.

use super::duration::format_duration;
use crate::core::ids::{GroupId, NodeId};
use crate::core::spec::{
    ClusterSpec, FenceMode, FencingSpec, GroupSpec, NoQuorumPolicy, NodeSpec, OnFail, QuorumSpec,
    Timing,
};
use std::collections::BTreeMap;
use std::fmt::{self, Write as _};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    pub file: PathBuf,
    pub cluster: ClusterConfig,
    pub nodes: Vec<NodeConfig>,
    pub heartbeat: HeartbeatConfig,
    pub quorum: QuorumConfig,
    pub fencing: FencingConfig,
    pub groups: Vec<GroupConfig>,
    /// Health checks; a failing one makes the node that runs it ineligible.
    pub checks: Vec<CheckConfig>,
    pub metrics: Option<MetricsConfig>,
    /// The watchdog device the lease guard feeds, if any.
    pub watchdog: Option<WatchdogConfig>,
    /// Scripts run on every cluster event (quorum, node up/down, and group events).
    pub notify: Vec<PathBuf>,
    pub security: SecurityConfig,
    pub keys: AuthKeys,
}

/// The `security` section: explicit opt-outs of the safety checks at load.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SecurityConfig {
    /// Run scripts that a non-root user could change (see `config::trust`).
    pub allow_unsafe_scripts: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterConfig {
    pub name: String,
    /// fnv1a64 of the name: keeps two clusters on one network apart.
    pub cluster_id: u64,
    pub authkey: PathBuf,
    /// A second key accepted during key rotation.
    pub authkey_next: Option<PathBuf>,
}

/// The key bytes, read from `cluster.authkey` / `cluster.authkey_next`.
#[derive(Clone, PartialEq, Eq)]
pub struct AuthKeys {
    pub current: [u8; 32],
    pub next: Option<[u8; 32]>,
}

impl fmt::Debug for AuthKeys {
    // Keys must never end up in logs, so Debug shows only whether they are present.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthKeys")
            .field("current", &"<redacted>")
            .field("next", &self.next.map(|_| "<redacted>"))
            .finish()
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeConfig {
    pub id: NodeId,
    pub name: String,
    /// One entry per heartbeat link, in link order; `None` where the node is not on
    /// that link (`null` in the YAML, e.g. a witness reached only through link 0).
    pub addresses: Vec<Option<IpAddr>>,
    /// Device to bind each link's socket to; same length as `addresses`.
    pub interfaces: Vec<Option<String>>,
    pub priority: i32,
    pub votes: u32,
    pub witness: bool,
    pub fence_delay: Duration,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeartbeatConfig {
    pub port: u16,
    /// The core's timing as this section sets it. Its `watchdog_timeout` is no
    /// heartbeat setting and stays `None` here: the spec takes it from `watchdog`.
    pub timing: Timing,
    /// Run the heartbeat thread with SCHED_RR.
    pub realtime: bool,
    pub mlockall: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuorumConfig {
    pub no_quorum_policy: NoQuorumPolicy,
    pub two_node: bool,
    pub wait_for_all: bool,
    pub expected_votes: Option<u32>,
    /// An external arbiter that gives one more vote (`quorum.arbiter`).
    pub arbiter: Option<ArbiterConfig>,
}

/// `quorum.arbiter`: where the arbiter's votes live (docs/design.md, "The arbiter").
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArbiterConfig {
    pub etcd: EtcdConfig,
}

/// An existing etcd v3 cluster that holds one key per group under
/// `<prefix>/<cluster>/groups/`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EtcdConfig {
    /// `http://host:port` or `https://host:port`, one per etcd member.
    pub endpoints: Vec<String>,
    pub prefix: String,
    pub tls: Option<EtcdTls>,
    /// User and the file holding its password (etcd authentication), both or neither.
    pub user: Option<String>,
    pub password_file: Option<PathBuf>,
    /// TTL of the daemon's etcd lease: a vote lasts this long after etcd received the
    /// last keepalive. Whole seconds, at least `deadtime` and `min_ttl`.
    pub ttl: Duration,
    /// The shortest TTL the etcd cluster grants as asked (it raises shorter ones).
    pub min_ttl: Duration,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EtcdTls {
    pub ca: Option<PathBuf>,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FencePolicy {
    /// Fence only when a lease cannot prove safety.
    Needed,
    /// Also fence an owner that vanished before taking over its groups.
    Always,
}

/// What a node does when it must stop everything at once and cannot prove it did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SelfFence {
    Reboot,
    Poweroff,
    /// Do nothing (unsafe; for labs).
    None,
    /// Run this command.
    Command(PathBuf),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FencingConfig {
    pub policy: FencePolicy,
    pub retry_interval: Duration,
    pub self_fence: SelfFence,
    pub agents: Vec<FenceAgentConfig>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FenceAgentConfig {
    pub name: String,
    /// Absolute path of a fence-agents compatible program (`fence_ipmilan`, ...).
    pub agent: PathBuf,
    /// `key=value` lines for the agent's stdin, values rendered as strings.
    pub params: BTreeMap<String, String>,
    /// More `key=value` lines kept in a private file (secrets), read at fence time.
    pub params_file: Option<PathBuf>,
    /// Nodes this agent can fence.
    pub nodes: Vec<NodeId>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupConfig {
    pub id: GroupId,
    pub name: String,
    pub prefer: Option<NodeId>,
    /// Nodes allowed to own the group (never a witness), in config order.
    pub nodes: Vec<NodeId>,
    pub failback: bool,
    pub failback_delay: Duration,
    pub monitor_interval: Duration,
    pub migration_threshold: u32,
    pub failure_timeout: Duration,
    pub on_fail: OnFail,
    /// Scripts run on transitions of this group.
    pub notify: Vec<PathBuf>,
    /// In start order.
    pub resources: Vec<ResourceConfig>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResourceConfig {
    pub name: String,
    pub kind: ResourceKind,
    /// Per-operation timeout; `None` for OCF agents without one (taken from meta-data).
    pub timeout: Option<Duration>,
    /// `promotable: true`: a primary/replica resource (an `ocf` agent with promote and
    /// demote actions, or an `exec` with `promote` and `demote` commands). At most one
    /// per group; the core does not place or promote it yet (issue 25).
    pub promotable: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ResourceKind {
    Vip {
        address: IpAddr,
        prefix: u8,
        interface: String,
        label: Option<String>,
        garp_count: u32,
        garp_interval: Duration,
        /// Re-announce periodically while owned.
        garp_refresh: Option<Duration>,
    },
    Exec {
        start: String,
        stop: String,
        monitor: Option<String>,
        /// Both set exactly when the resource is promotable.
        promote: Option<String>,
        demote: Option<String>,
    },
    Lsb {
        /// Absolute path of the init script.
        script: PathBuf,
    },
    Ocf {
        provider: String,
        agent_type: String,
        params: BTreeMap<String, String>,
    },
    Systemd {
        unit: String,
    },
}

impl ResourceKind {
    pub fn kind_name(&self) -> &'static str {
        match self {
            ResourceKind::Vip { .. } => "vip",
            ResourceKind::Exec { .. } => "exec",
            ResourceKind::Lsb { .. } => "lsb",
            ResourceKind::Ocf { .. } => "ocf",
            ResourceKind::Systemd { .. } => "systemd",
        }
    }
}

/// A health check that steers ownership (Heartbeat's ipfail, keepalived's
/// `track_script`, Pacemaker's ping agent): while it fails, the nodes running it are not
/// eligible to own groups.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckConfig {
    pub name: String,
    pub probe: CheckProbe,
    /// Time from the end of one probe to the start of the next.
    pub interval: Duration,
    /// A probe running longer fails (its process group is killed).
    pub timeout: Duration,
    /// Consecutive failures that turn a passing check into a failing one.
    pub fall: u32,
    /// Consecutive successes that turn a failing check into a passing one.
    pub rise: u32,
    /// Names of the nodes that run it; empty means every node.
    pub nodes: Vec<String>,
}

impl CheckConfig {
    /// Whether the node called `node` runs this check.
    pub fn applies_to(&self, node: &str) -> bool {
        self.nodes.is_empty() || self.nodes.iter().any(|n| n == node)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CheckProbe {
    /// Passes when any of the targets answers one ICMP echo.
    Ping(Vec<IpAddr>),
    /// A shell command (`sh -c`); passes on exit 0.
    Script(String),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MetricsConfig {
    pub listen: SocketAddr,
}

/// `watchdog:`: a device that resets the machine unless the lease guard writes to it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WatchdogConfig {
    pub device: PathBuf,
    /// Asked of the driver; peers wait this long (plus a margin) for a silent owner.
    pub timeout: Duration,
}

impl WatchdogConfig {
    /// sbd's default watchdog timeout.
    pub const DEFAULT_TIMEOUT: Duration = super::defaults::WATCHDOG_TIMEOUT;
}

/// The config file's word for each setting, as validation reads it.
pub(super) fn policy_name(p: NoQuorumPolicy) -> &'static str {
    match p {
        NoQuorumPolicy::Stop => "stop",
        NoQuorumPolicy::Freeze => "freeze",
        NoQuorumPolicy::Ignore => "ignore",
    }
}

pub(super) fn fence_policy_name(p: FencePolicy) -> &'static str {
    match p {
        FencePolicy::Needed => "needed",
        FencePolicy::Always => "always",
    }
}

pub(super) fn self_fence_name(s: &SelfFence) -> String {
    match s {
        SelfFence::Reboot => "reboot".to_string(),
        SelfFence::Poweroff => "poweroff".to_string(),
        SelfFence::None => "none".to_string(),
        SelfFence::Command(p) => p.display().to_string(),
    }
}

pub(super) fn on_fail_name(o: OnFail) -> &'static str {
    match o {
        OnFail::FenceSelf => "fence",
        OnFail::Block => "block",
    }
}

fn on_off(b: bool) -> &'static str {
    if b {
        "on"
    } else {
        "off"
    }
}

impl NodeConfig {
    /// The links this node has no address on.
    pub fn absent_links(&self) -> Vec<usize> {
        self.addresses
            .iter()
            .enumerate()
            .filter(|(_, a)| a.is_none())
            .map(|(k, _)| k)
            .collect()
    }
}

/// The addresses as the digest has always seen them (`[192.0.2.1, 198.51.100.1]`), so
/// a config without absent links keeps its digest across the upgrade that added them;
/// an absent link is `null`.
pub(super) fn canonical_addresses(addresses: &[Option<IpAddr>]) -> String {
    let parts: Vec<String> = addresses
        .iter()
        .map(|a| a.map_or_else(|| "null".to_string(), |a| format!("{a:?}")))
        .collect();
    format!("[{}]", parts.join(", "))
}

impl Config {
    pub fn node_by_name(&self, name: &str) -> Option<&NodeConfig> {
        self.nodes.iter().find(|n| n.name == name)
    }

    pub fn node_by_id(&self, id: NodeId) -> Option<&NodeConfig> {
        self.nodes.iter().find(|n| n.id == id)
    }

    pub fn group_by_name(&self, name: &str) -> Option<&GroupConfig> {
        self.groups.iter().find(|g| g.name == name)
    }

    /// Number of heartbeat links (every node has one entry per link, maybe `null`).
    pub fn links(&self) -> usize {
        self.nodes.first().map_or(0, |n| n.addresses.len())
    }

    fn node_name(&self, id: NodeId) -> String {
        self.node_by_id(id)
            .map_or_else(|| id.to_string(), |n| n.name.clone())
    }

    /// The part of the config the core needs.
    pub fn cluster_spec(&self) -> ClusterSpec {
        let mode = if self.fencing.agents.is_empty() {
            FenceMode::Off
        } else {
            match self.fencing.policy {
                FencePolicy::Needed => FenceMode::WhenNeeded,
                FencePolicy::Always => FenceMode::Always,
            }
        };
        ClusterSpec {
            nodes: self
                .nodes
                .iter()
                .map(|n| NodeSpec {
                    id: n.id,
                    name: n.name.clone(),
                    votes: n.votes,
                    witness: n.witness,
                    priority: n.priority,
                    fence_delay: n.fence_delay,
                    absent_links: n.absent_links(),
                })
                .collect(),
            links: self.links(),
            timing: Timing {
                watchdog_timeout: self.watchdog.as_ref().map(|w| w.timeout),
                ..self.heartbeat.timing.clone()
            },
            quorum: QuorumSpec {
                expected_votes: self.quorum.expected_votes,
                two_node: self.quorum.two_node,
                wait_for_all: self.quorum.wait_for_all,
                no_quorum_policy: self.quorum.no_quorum_policy,
                arbiter: self
                    .quorum
                    .arbiter
                    .as_ref()
                    .map(|a| crate::core::spec::ArbiterSpec { ttl: a.etcd.ttl }),
            },
            fencing: FencingSpec {
                mode,
                retry_interval: self.fencing.retry_interval,
            },
            groups: self
                .groups
                .iter()
                .map(|g| GroupSpec {
                    id: g.id,
                    name: g.name.clone(),
                    prefer: g.prefer,
                    nodes: Some(g.nodes.clone()),
                    failback: g.failback,
                    failback_delay: g.failback_delay,
                    resources: g.resources.iter().map(|r| r.name.clone()).collect(),
                    // Only ever compared within one process (old vs reloaded config),
                    // so the Debug rendering is a fine canonical form here.
                    resources_revision: crate::core::ids::fnv1a64(
                        format!("{:?}", g.resources).as_bytes(),
                    ),
                    monitor_interval: g.monitor_interval,
                    migration_threshold: g.migration_threshold,
                    failure_timeout: g.failure_timeout,
                    on_fail: g.on_fail,
                })
                .collect(),
            digest: self.digest(),
        }
    }

    /// A canonical, versioned rendering of everything but key bytes and the file path.
    /// Written out field by field (not `Debug`) so the digest cannot change with a
    /// compiler upgrade during a rolling update. Durations are in nanoseconds.
    pub fn canonical(&self) -> String {
        let mut s = String::from("tandem-config-v1\n");
        self.canonical_cluster(&mut s);
        self.canonical_fencing(&mut s);
        for g in &self.groups {
            canonical_group(&mut s, g);
        }
        self.canonical_extras(&mut s);
        s
    }

    /// Cluster, nodes, heartbeat and quorum lines of [`Config::canonical`].
    fn canonical_cluster(&self, s: &mut String) {
        let c = &self.cluster;
        let _ = writeln!(
            s,
            "cluster name={:?} authkey={:?} authkey_next={:?}",
            c.name, c.authkey, c.authkey_next
        );
        for n in &self.nodes {
            let _ = writeln!(
                s,
                "node id={} name={:?} addresses={} interfaces={:?} priority={} votes={} witness={} fence_delay={}",
                n.id.0, n.name, canonical_addresses(&n.addresses), n.interfaces, n.priority, n.votes, n.witness, ns(n.fence_delay)
            );
        }
        let (h, t) = (&self.heartbeat, &self.heartbeat.timing);
        let _ = writeln!(
            s,
            "heartbeat port={} interval={} deadtime={} warntime={} initdead={} max_drift_ppm={} stop_before_lease_end={} realtime={} mlockall={}",
            h.port, ns(t.interval), ns(t.deadtime), ns(t.warntime), ns(t.initdead),
            t.max_drift_ppm, ns(t.stop_before_lease_end), h.realtime, h.mlockall
        );
        let q = &self.quorum;
        let _ = writeln!(
            s,
            "quorum no_quorum_policy={} two_node={} wait_for_all={} expected_votes={:?}",
            policy_name(q.no_quorum_policy),
            q.two_node,
            q.wait_for_all,
            q.expected_votes
        );
    }

    fn canonical_fencing(&self, s: &mut String) {
        let f = &self.fencing;
        let _ = writeln!(
            s,
            "fencing policy={:?} retry_interval={} self_fence={:?}",
            f.policy,
            ns(f.retry_interval),
            f.self_fence
        );
        for a in &f.agents {
            let nodes: Vec<u16> = a.nodes.iter().map(|n| n.0).collect();
            let _ = writeln!(
                s,
                "agent name={:?} agent={:?} params={:?} nodes={:?}",
                a.name, a.agent, a.params, nodes
            );
            // Only when set: other configs keep their canonical form.
            if let Some(file) = &a.params_file {
                let _ = writeln!(s, "agent {:?} params_file={file:?}", a.name);
            }
        }
    }

    /// Checks, metrics, watchdog and notify lines of [`Config::canonical`].
    fn canonical_extras(&self, s: &mut String) {
        // Written only when present, so configs without checks keep their digest.
        for c in &self.checks {
            let probe = match &c.probe {
                CheckProbe::Ping(targets) => format!("ping={targets:?}"),
                CheckProbe::Script(cmd) => format!("script={cmd:?}"),
            };
            let _ = writeln!(
                s,
                "check name={:?} {probe} interval={} timeout={} fall={} rise={} nodes={:?}",
                c.name,
                ns(c.interval),
                ns(c.timeout),
                c.fall,
                c.rise,
                c.nodes
            );
        }
        if let Some(m) = &self.metrics {
            let _ = writeln!(s, "metrics listen={}", m.listen);
        }
        // Only when set (older digests stay); the timeout changes how long peers wait.
        if let Some(w) = &self.watchdog {
            let _ = writeln!(
                s,
                "watchdog device={:?} timeout={}",
                w.device,
                ns(w.timeout)
            );
        }
        // Only when set, so that configs without hooks keep the digest they had before
        // the key existed (mixed versions during a rolling upgrade agree).
        if !self.notify.is_empty() {
            let _ = writeln!(s, "notify {:?}", self.notify);
        }
        if self.security.allow_unsafe_scripts {
            let _ = writeln!(s, "security allow_unsafe_scripts=true");
        }
    }

    /// The keyed digest of [`Config::canonical`] under `cluster.authkey` (see
    /// `config::digest`): carried in heartbeats to detect config drift, and shown in
    /// status where a reader must not be able to test guesses of the content.
    pub fn digest(&self) -> u64 {
        super::digest::keyed_digest(&self.keys.current, self.canonical().as_bytes())
    }

    /// Things that are valid but risky, for `config check` to point out.
    pub fn warnings(&self) -> Vec<super::ConfigWarning> {
        super::warnings::of(self)
    }

    /// A one-screen human summary, printed by `tandemctl config check`.
    pub fn summary(&self) -> String {
        let mut s = String::new();
        self.summary_cluster(&mut s);
        self.summary_nodes(&mut s);
        self.summary_timing_and_quorum(&mut s);
        self.summary_fencing(&mut s);
        let _ = writeln!(s, "\ngroups: {}", self.groups.len());
        for g in &self.groups {
            self.summary_group(&mut s, g);
        }
        self.summary_extras(&mut s);
        let warnings = self.warnings();
        if !warnings.is_empty() {
            let _ = writeln!(s);
            for w in warnings {
                let _ = writeln!(s, "warning: {w}");
            }
        }
        s
    }

    fn summary_cluster(&self, s: &mut String) {
        let _ = writeln!(
            s,
            "{}: OK — cluster {} (id {:016x}), config digest {:016x}",
            self.file.display(),
            self.cluster.name,
            self.cluster.cluster_id,
            self.digest()
        );
        let _ = writeln!(
            s,
            "authkey {}{}",
            self.cluster.authkey.display(),
            self.cluster
                .authkey_next
                .as_ref()
                .map_or(String::new(), |p| format!(" (next: {})", p.display()))
        );
    }

    fn summary_nodes(&self, s: &mut String) {
        let _ = writeln!(
            s,
            "\nnodes: {} on {} link(s)",
            self.nodes.len(),
            self.links()
        );
        for n in &self.nodes {
            let addrs: Vec<String> = n
                .addresses
                .iter()
                .zip(&n.interfaces)
                .map(|(a, i)| match (a, i) {
                    (None, _) => "-".to_string(),
                    (Some(a), Some(i)) => format!("{a}%{i}"),
                    (Some(a), None) => a.to_string(),
                })
                .collect();
            let _ = writeln!(
                s,
                "  {:<4} {:<12} {:<36} priority {:<4} votes {}{}{}",
                n.id.to_string(),
                n.name,
                addrs.join(", "),
                n.priority,
                n.votes,
                if n.witness { "  witness" } else { "" },
                if n.fence_delay.is_zero() {
                    String::new()
                } else {
                    format!("  fence_delay {}", format_duration(n.fence_delay))
                }
            );
        }
    }

    fn summary_timing_and_quorum(&self, s: &mut String) {
        let d = format_duration;
        let (h, t) = (&self.heartbeat, &self.heartbeat.timing);
        let _ = writeln!(
            s,
            "\nheartbeat: udp/{} every {}, deadtime {}, warntime {}, initdead {}, drift {}ppm, stop {} before lease end, realtime {}, mlockall {}",
            h.port, d(t.interval), d(t.deadtime), d(t.warntime), d(t.initdead),
            t.max_drift_ppm, d(t.stop_before_lease_end), on_off(h.realtime), on_off(h.mlockall)
        );
        // The core's count, so that the arbiter's vote is in it.
        let expected = self.cluster_spec().expected_votes();
        let q = &self.quorum;
        let arbiter = if q.arbiter.is_some() {
            " (one of them the etcd arbiter's)"
        } else {
            ""
        };
        let _ = writeln!(
            s,
            "quorum: {expected} expected votes{arbiter}, quorum at {}, no_quorum_policy {}, two_node {}, wait_for_all {}",
            crate::core::quorum::quorum_votes(expected),
            policy_name(q.no_quorum_policy),
            on_off(q.two_node),
            on_off(q.wait_for_all)
        );
    }

    fn summary_fencing(&self, s: &mut String) {
        let f = &self.fencing;
        if f.agents.is_empty() {
            let _ = writeln!(s, "fencing: off (no agents)");
        } else {
            let _ = writeln!(
                s,
                "fencing: policy {}, retry every {}",
                fence_policy_name(f.policy),
                format_duration(f.retry_interval)
            );
            for a in &f.agents {
                let nodes: Vec<String> = a.nodes.iter().map(|n| self.node_name(*n)).collect();
                let _ = writeln!(
                    s,
                    "  {} ({}) fences {}",
                    a.name,
                    a.agent.display(),
                    nodes.join(", ")
                );
            }
        }
        let _ = writeln!(s, "self_fence: {}", self_fence_name(&f.self_fence));
    }

    fn summary_group(&self, s: &mut String, g: &GroupConfig) {
        let d = format_duration;
        let nodes: Vec<String> = g.nodes.iter().map(|n| self.node_name(*n)).collect();
        let _ = writeln!(
            s,
            "  {}: prefer {}, on {}, failback {}{}, monitor every {}, {} failures before moving, on_fail {}",
            g.name,
            g.prefer.map_or("none".to_string(), |p| self.node_name(p)),
            nodes.join(" "),
            on_off(g.failback),
            if g.failback { format!(" after {}", d(g.failback_delay)) } else { String::new() },
            d(g.monitor_interval),
            g.migration_threshold,
            on_fail_name(g.on_fail)
        );
        for (i, r) in g.resources.iter().enumerate() {
            let what = match &r.kind {
                ResourceKind::Vip {
                    address,
                    prefix,
                    interface,
                    ..
                } => format!("{address}/{prefix} on {interface}"),
                ResourceKind::Exec { start, .. } => start.clone(),
                ResourceKind::Lsb { script } => script.display().to_string(),
                ResourceKind::Ocf {
                    provider,
                    agent_type,
                    ..
                } => format!("ocf:{provider}:{agent_type}"),
                ResourceKind::Systemd { unit } => unit.clone(),
            };
            let _ = writeln!(
                s,
                "    {}. {:<7} {:<20} {}  (timeout {}){}",
                i + 1,
                r.kind.kind_name(),
                r.name,
                what,
                r.timeout.map_or("from meta-data".to_string(), d),
                if r.promotable { ", promotable" } else { "" }
            );
        }
    }

    /// Checks, metrics, watchdog and notify hooks, each only when configured.
    fn summary_extras(&self, s: &mut String) {
        let d = format_duration;
        if !self.checks.is_empty() {
            let _ = writeln!(s, "\nchecks: {}", self.checks.len());
            for c in &self.checks {
                let what = match &c.probe {
                    CheckProbe::Ping(targets) => {
                        let t: Vec<String> = targets.iter().map(IpAddr::to_string).collect();
                        format!("ping {}", t.join(" "))
                    }
                    CheckProbe::Script(cmd) => format!("script {cmd}"),
                };
                let _ = writeln!(
                    s,
                    "  {}: {what}, every {} (timeout {}), fall {} rise {}, on {}",
                    c.name,
                    d(c.interval),
                    d(c.timeout),
                    c.fall,
                    c.rise,
                    if c.nodes.is_empty() {
                        "every node".to_string()
                    } else {
                        c.nodes.join(" ")
                    }
                );
            }
        }
        if let Some(m) = &self.metrics {
            let _ = writeln!(s, "\nmetrics: http://{}/metrics", m.listen);
        }
        if let Some(w) = &self.watchdog {
            let _ = writeln!(
                s,
                "\nwatchdog: {} (timeout {}), fed by the lease guard",
                w.device.display(),
                d(w.timeout)
            );
        }
        if !self.notify.is_empty() {
            let hooks: Vec<String> = self
                .notify
                .iter()
                .map(|p| p.display().to_string())
                .collect();
            let _ = writeln!(s, "\nnotify: {}", hooks.join(", "));
        }
    }
}

/// Durations in [`Config::canonical`] are whole nanoseconds.
fn ns(d: Duration) -> u128 {
    d.as_nanos()
}

/// A group and its resources, as lines of [`Config::canonical`].
fn canonical_group(s: &mut String, g: &GroupConfig) {
    let nodes: Vec<u16> = g.nodes.iter().map(|n| n.0).collect();
    let _ = writeln!(
        s,
        "group name={:?} prefer={:?} nodes={:?} failback={} failback_delay={} monitor_interval={} migration_threshold={} failure_timeout={} on_fail={:?} notify={:?}",
        g.name, g.prefer.map(|p| p.0), nodes, g.failback, ns(g.failback_delay),
        ns(g.monitor_interval), g.migration_threshold, ns(g.failure_timeout),
        g.on_fail, g.notify
    );
    for r in &g.resources {
        let _ = write!(
            s,
            "resource name={:?} timeout={:?} ",
            r.name,
            r.timeout.map(ns)
        );
        // Only when set, so that the digest of a config without promotable resources
        // stays what older versions compute (nodes compare digests in a rolling upgrade).
        if r.promotable {
            s.push_str("promotable=true ");
        }
        let _ = match &r.kind {
            ResourceKind::Vip { address, prefix, interface, label, garp_count, garp_interval, garp_refresh } => writeln!(
                s,
                "vip address={address} prefix={prefix} interface={interface:?} label={label:?} garp_count={garp_count} garp_interval={} garp_refresh={:?}",
                ns(*garp_interval), garp_refresh.map(ns)
            ),
            ResourceKind::Exec { start, stop, monitor, promote, demote } => {
                // Only when set, like `promotable=` above.
                let roles = if promote.is_some() || demote.is_some() {
                    format!(" promote={promote:?} demote={demote:?}")
                } else {
                    String::new()
                };
                writeln!(s, "exec start={start:?} stop={stop:?} monitor={monitor:?}{roles}")
            }
            ResourceKind::Lsb { script } => writeln!(s, "lsb script={script:?}"),
            ResourceKind::Ocf { provider, agent_type, params } => writeln!(
                s,
                "ocf provider={provider:?} type={agent_type:?} params={params:?}"
            ),
            ResourceKind::Systemd { unit } => writeln!(s, "systemd unit={unit:?}"),
        };
    }
}
