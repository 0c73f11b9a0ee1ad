//! Every default of the config file, named once.
//!
//! Validation fills in missing keys from these constants and rules, and [`documented`]
//! renders each key's default the way `docs/configuration.md` writes it in its tables,
//! so a test can hold the docs to the code: a default changed here without the docs
//! changing fails that test. Derived defaults are a function plus its rule as text.

use super::duration::format_duration;
use super::model::{
    fence_policy_name, on_fail_name, policy_name, self_fence_name, FencePolicy, SelfFence,
};
use crate::core::spec::{NoQuorumPolicy, OnFail, Timing};
use std::time::Duration;

/// Largest config file `load` reads (1 MiB): refused with its size before it is read.
pub const MAX_CONFIG_BYTES: u64 = 1 << 20;

// nodes[]
pub const NODE_PRIORITY: i32 = 0;
pub const NODE_VOTES: u32 = 1;
pub const NODE_WITNESS: bool = false;
pub const NODE_FENCE_DELAY: Duration = Duration::ZERO;
pub const NODE_ID_RULE: &str = "position + 1";

/// A node's id when the file gives none: its position in the list, counting from 1.
pub fn node_id(position: usize) -> u16 {
    // Position + 1 fits: there are at most MAX_NODES nodes when this matters, and a
    // collision with a larger count is reported as a duplicate.
    u16::try_from(position + 1).unwrap_or(u16::MAX)
}

// heartbeat
pub const HEARTBEAT_PORT: u16 = 5405;
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_millis(100);
pub const HEARTBEAT_DEADTIME: Duration = Duration::from_secs(1);
pub const HEARTBEAT_MAX_DRIFT_PPM: u32 = Timing::DEFAULT_MAX_DRIFT_PPM;
pub const HEARTBEAT_REALTIME: bool = true;
pub const HEARTBEAT_MLOCKALL: bool = true;
pub const WARNTIME_RULE: &str = "deadtime / 2";
pub const INITDEAD_RULE: &str = "2 × deadtime";
pub const STOP_BEFORE_LEASE_END_RULE: &str =
    "min(deadtime / 2, deadtime − 3 × interval), at least one interval";

/// [`WARNTIME_RULE`].
pub fn warntime(deadtime: Duration) -> Duration {
    Timing::default_warntime(deadtime)
}

/// [`INITDEAD_RULE`].
pub fn initdead(deadtime: Duration) -> Duration {
    Timing::default_initdead(deadtime)
}

/// [`STOP_BEFORE_LEASE_END_RULE`]; the core owns the rule because it explains why.
pub fn stop_before_lease_end(interval: Duration, deadtime: Duration) -> Duration {
    Timing::default_stop_before_lease_end(interval, deadtime)
}

// quorum.arbiter.etcd
pub const ETCD_PREFIX: &str = "/tandem";
/// etcd's minimum lease TTL at its default election timeout (1000 ms):
/// ceil(1.5 × election timeout) in whole seconds (etcdserver's `minTTL`).
pub const ETCD_MIN_TTL: Duration = Duration::from_secs(2);
pub const ETCD_TTL_RULE: &str = "deadtime rounded up to whole seconds";

/// [`ETCD_TTL_RULE`]: etcd counts lease TTLs in whole seconds.
pub fn etcd_ttl(deadtime: Duration) -> Duration {
    let whole = deadtime.as_secs() + u64::from(deadtime.subsec_nanos() > 0);
    Duration::from_secs(whole.max(1))
}

// quorum
pub const NO_QUORUM_POLICY: NoQuorumPolicy = NoQuorumPolicy::Stop;
pub const TWO_NODE: bool = false;
pub const WAIT_FOR_ALL_RULE: &str = "= `two_node`";
pub const EXPECTED_VOTES_RULE: &str = "sum of votes";

// fencing
pub const FENCE_POLICY: FencePolicy = FencePolicy::Needed;
pub const FENCE_RETRY_INTERVAL: Duration = Duration::from_secs(5);
pub const SELF_FENCE: SelfFence = SelfFence::Reboot;

// groups[]
pub const GROUP_FAILBACK: bool = false;
pub const GROUP_FAILBACK_DELAY: Duration = Duration::from_secs(10);
pub const GROUP_MONITOR_INTERVAL: Duration = Duration::from_secs(10);
pub const GROUP_MIGRATION_THRESHOLD: u32 = 3;
pub const GROUP_FAILURE_TIMEOUT: Duration = Duration::from_secs(600);
pub const GROUP_ON_FAIL: OnFail = OnFail::FenceSelf;

// groups[].resources[]
pub const VIP_GARP_COUNT: u32 = 5;
pub const VIP_GARP_INTERVAL: Duration = Duration::from_millis(200);
/// Operation timeout of vip, exec and lsb resources.
pub const RESOURCE_TIMEOUT: Duration = Duration::from_secs(20);
/// systemd units get longer: systemd's own start timeout is 90 s.
pub const SYSTEMD_TIMEOUT: Duration = Duration::from_secs(90);
/// Where a bare lsb script name is looked up.
pub const LSB_SCRIPT_DIR: &str = "/etc/init.d";
/// `promotable` of ocf and exec resources: an ordinary resource unless said.
pub const RESOURCE_PROMOTABLE: bool = false;

// checks[]
pub const CHECK_INTERVAL: Duration = Duration::from_secs(2);
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(1);
pub const CHECK_FALL: u32 = 3;
pub const CHECK_RISE: u32 = 2;

// security
/// Scripts a non-root user could change are refused unless this is set.
pub const ALLOW_UNSAFE_SCRIPTS: bool = false;

// watchdog
/// sbd's default watchdog timeout.
pub const WATCHDOG_TIMEOUT: Duration = Duration::from_secs(5);

const REQUIRED: &str = "required";
const NONE: &str = "none";

fn code(value: impl std::fmt::Display) -> String {
    format!("`{value}`")
}

fn dur(d: Duration) -> String {
    code(format_duration(d))
}

fn text(s: &str) -> String {
    s.to_string()
}

/// Every key of the file with its default as the docs' tables write it, keyed by its
/// path (`[]` marks a list entry, e.g. `groups[].resources[].vip.timeout`).
pub fn documented() -> Vec<(&'static str, String)> {
    let mut all = Vec::new();
    for section in [
        cluster_and_nodes(),
        heartbeat_and_quorum(),
        fencing(),
        groups(),
        resources(),
        checks_and_devices(),
    ] {
        all.extend(section);
    }
    all
}

fn cluster_and_nodes() -> Vec<(&'static str, String)> {
    vec![
        ("cluster.name", text(REQUIRED)),
        ("cluster.authkey", text(REQUIRED)),
        ("cluster.authkey_next", text(NONE)),
        ("nodes[].name", text(REQUIRED)),
        ("nodes[].id", text(NODE_ID_RULE)),
        ("nodes[].addresses", text(REQUIRED)),
        ("nodes[].interfaces", text(NONE)),
        ("nodes[].priority", code(NODE_PRIORITY)),
        ("nodes[].votes", code(NODE_VOTES)),
        ("nodes[].witness", code(NODE_WITNESS)),
        ("nodes[].fence_delay", dur(NODE_FENCE_DELAY)),
    ]
}

fn heartbeat_and_quorum() -> Vec<(&'static str, String)> {
    vec![
        ("heartbeat.port", code(HEARTBEAT_PORT)),
        ("heartbeat.interval", dur(HEARTBEAT_INTERVAL)),
        ("heartbeat.deadtime", dur(HEARTBEAT_DEADTIME)),
        ("heartbeat.warntime", text(WARNTIME_RULE)),
        ("heartbeat.initdead", text(INITDEAD_RULE)),
        ("heartbeat.max_drift_ppm", code(HEARTBEAT_MAX_DRIFT_PPM)),
        (
            "heartbeat.stop_before_lease_end",
            text(STOP_BEFORE_LEASE_END_RULE),
        ),
        ("heartbeat.realtime", code(HEARTBEAT_REALTIME)),
        ("heartbeat.mlockall", code(HEARTBEAT_MLOCKALL)),
        (
            "quorum.no_quorum_policy",
            code(policy_name(NO_QUORUM_POLICY)),
        ),
        ("quorum.two_node", code(TWO_NODE)),
        ("quorum.wait_for_all", text(WAIT_FOR_ALL_RULE)),
        ("quorum.expected_votes", text(EXPECTED_VOTES_RULE)),
        ("quorum.arbiter", text(NONE)),
        ("quorum.arbiter.etcd.endpoints", text(REQUIRED)),
        ("quorum.arbiter.etcd.prefix", code(ETCD_PREFIX)),
        ("quorum.arbiter.etcd.tls", text(NONE)),
        ("quorum.arbiter.etcd.user", text(NONE)),
        ("quorum.arbiter.etcd.password_file", text(NONE)),
        ("quorum.arbiter.etcd.ttl", text(ETCD_TTL_RULE)),
        ("quorum.arbiter.etcd.min_ttl", dur(ETCD_MIN_TTL)),
    ]
}

fn fencing() -> Vec<(&'static str, String)> {
    vec![
        ("fencing.policy", code(fence_policy_name(FENCE_POLICY))),
        ("fencing.retry_interval", dur(FENCE_RETRY_INTERVAL)),
        ("fencing.self_fence", code(self_fence_name(&SELF_FENCE))),
        ("fencing.agents", code("[]")),
        ("fencing.agents[].name", text(REQUIRED)),
        ("fencing.agents[].agent", text(REQUIRED)),
        ("fencing.agents[].params", code("{}")),
        ("fencing.agents[].params_file", text(NONE)),
        ("fencing.agents[].nodes", text("all nodes")),
    ]
}

fn groups() -> Vec<(&'static str, String)> {
    vec![
        ("groups[].name", text(REQUIRED)),
        ("groups[].prefer", text(NONE)),
        ("groups[].nodes", text("all non-witness nodes")),
        ("groups[].failback", code(GROUP_FAILBACK)),
        ("groups[].failback_delay", dur(GROUP_FAILBACK_DELAY)),
        ("groups[].monitor_interval", dur(GROUP_MONITOR_INTERVAL)),
        (
            "groups[].migration_threshold",
            code(GROUP_MIGRATION_THRESHOLD),
        ),
        ("groups[].failure_timeout", dur(GROUP_FAILURE_TIMEOUT)),
        ("groups[].on_fail", code(on_fail_name(GROUP_ON_FAIL))),
        ("groups[].notify", code("[]")),
        ("groups[].resources", text(REQUIRED)),
    ]
}

fn resources() -> Vec<(&'static str, String)> {
    vec![
        ("groups[].resources[].vip.address", text(REQUIRED)),
        ("groups[].resources[].vip.interface", text(REQUIRED)),
        ("groups[].resources[].vip.name", code("vip-<address>")),
        ("groups[].resources[].vip.label", text(NONE)),
        ("groups[].resources[].vip.garp_count", code(VIP_GARP_COUNT)),
        (
            "groups[].resources[].vip.garp_interval",
            dur(VIP_GARP_INTERVAL),
        ),
        ("groups[].resources[].vip.garp_refresh", text(NONE)),
        ("groups[].resources[].vip.timeout", dur(RESOURCE_TIMEOUT)),
        ("groups[].resources[].exec.name", text(REQUIRED)),
        ("groups[].resources[].exec.start", text(REQUIRED)),
        ("groups[].resources[].exec.stop", text(REQUIRED)),
        ("groups[].resources[].exec.monitor", text(NONE)),
        (
            "groups[].resources[].exec.promotable",
            code(RESOURCE_PROMOTABLE),
        ),
        ("groups[].resources[].exec.promote", text(NONE)),
        ("groups[].resources[].exec.demote", text(NONE)),
        ("groups[].resources[].exec.timeout", dur(RESOURCE_TIMEOUT)),
        ("groups[].resources[].lsb.name", text(REQUIRED)),
        ("groups[].resources[].lsb.timeout", dur(RESOURCE_TIMEOUT)),
        ("groups[].resources[].ocf.agent", text(REQUIRED)),
        ("groups[].resources[].ocf.name", text("type, lowercased")),
        ("groups[].resources[].ocf.params", code("{}")),
        (
            "groups[].resources[].ocf.promotable",
            code(RESOURCE_PROMOTABLE),
        ),
        ("groups[].resources[].ocf.timeout", text("from meta-data")),
        ("groups[].resources[].systemd.unit", text(REQUIRED)),
        ("groups[].resources[].systemd.name", text("the unit")),
        ("groups[].resources[].systemd.timeout", dur(SYSTEMD_TIMEOUT)),
    ]
}

fn checks_and_devices() -> Vec<(&'static str, String)> {
    vec![
        ("checks[].name", text(REQUIRED)),
        ("checks[].ping", text("—")),
        ("checks[].script", text("—")),
        ("checks[].interval", dur(CHECK_INTERVAL)),
        ("checks[].timeout", dur(CHECK_TIMEOUT)),
        ("checks[].fall", code(CHECK_FALL)),
        ("checks[].rise", code(CHECK_RISE)),
        ("checks[].nodes", text("all nodes")),
        ("metrics.listen", text("required in the section")),
        ("watchdog.device", text("required in the section")),
        ("watchdog.timeout", dur(WATCHDOG_TIMEOUT)),
        ("security.allow_unsafe_scripts", code(ALLOW_UNSAFE_SCRIPTS)),
    ]
}
