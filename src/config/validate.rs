//! Step two of loading a config: raw structs into a typed, validated [`Config`].
//!
//! Every field is converted on its own and every problem is recorded with its key path
//! (and a line from [`Locator`] when the key can be found in the text), then the
//! cross-field rules run on whatever did convert. A broken field gets its default so
//! that later rules still run, but rules that depend on it are skipped, and references
//! to nodes are only checked when every node parsed, to avoid reporting the echo of an
//! error as a second one.

use super::duration::{format_duration, parse_duration};
use super::error::{ConfigError, ConfigErrors};
use super::key::read_key;
use super::locate::Locator;
use super::model::*;
use super::raw::{self, Field, Lenient, RawDuration, RawResource, ScalarText, Unknown};
use crate::core::ids::{fnv1a64, GroupId, NodeId};
use crate::core::message::{MAX_GROUPS, MAX_NODES};
use crate::core::spec::{NoQuorumPolicy, OnFail};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Most heartbeat links a node may have (each is a socket and a sender slot).
pub const MAX_LINKS: usize = 8;

struct Ctx<'a> {
    file: &'a str,
    loc: Locator,
    errors: Vec<ConfigError>,
}

fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_string()
    } else {
        format!("{parent}.{key}")
    }
}

/// Name rule for clusters, nodes, groups and fence agents: safe in logs, file names,
/// metrics labels and the `key=value` lines of fence agents.
fn check_name(s: &str) -> Result<(), String> {
    if s.is_empty() || s.len() > 32 {
        return Err(format!("`{s}` must be 1 to 32 characters long"));
    }
    if let Some(c) = s
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')))
    {
        return Err(format!(
            "`{s}` contains {c:?}; allowed are letters, digits, `_`, `.` and `-`"
        ));
    }
    Ok(())
}

/// Linux interface names: 1..=15 bytes, no `/`, no whitespace, not `.` or `..`.
fn check_ifname(s: &str) -> Result<(), String> {
    if s.is_empty() || s.len() > 15 || s == "." || s == ".." {
        return Err(format!(
            "`{s}` is not a valid interface name (1 to 15 characters)"
        ));
    }
    if s.chars()
        .any(|c| c == '/' || c == ':' || c.is_whitespace() || c.is_control())
    {
        return Err(format!(
            "`{s}` is not a valid interface name (no `/`, `:` or spaces)"
        ));
    }
    Ok(())
}

/// The closest known key, for "did you mean" hints on typos.
fn suggest<'a>(key: &str, known: &[&'a str]) -> Option<&'a str> {
    fn distance(a: &str, b: &str) -> usize {
        let b: Vec<char> = b.chars().collect();
        let mut prev: Vec<usize> = (0..=b.len()).collect();
        for (i, ca) in a.chars().enumerate() {
            let mut cur = vec![i + 1];
            for (j, cb) in b.iter().enumerate() {
                let sub = prev[j] + usize::from(ca != *cb);
                cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
            }
            prev = cur;
        }
        prev[b.len()]
    }
    known
        .iter()
        .map(|k| (distance(key, k), *k))
        .filter(|(d, k)| *d <= 2.max(k.len() / 3))
        .min()
        .map(|(_, k)| k)
}

impl Ctx<'_> {
    fn push(&mut self, path: &str, pos: Option<(usize, usize)>, message: String) {
        self.errors.push(ConfigError {
            file: self.file.to_string(),
            line: pos.map(|p| p.0),
            column: pos.map(|p| p.1),
            path: (!path.is_empty()).then(|| path.to_string()),
            message,
        });
    }

    /// An error about the key itself (missing, unknown, duplicate).
    fn at_key(&mut self, path: &str, message: impl Into<String>) {
        let pos = self.loc.key(path);
        self.push(path, pos, message.into());
    }

    /// An error about the value at `path`.
    fn at_value(&mut self, path: &str, message: impl Into<String>) {
        let pos = self.loc.value(path);
        self.push(path, pos, message.into());
    }

    fn lenient<T>(&mut self, path: &str, v: Lenient<T>) -> Option<T> {
        match v.0 {
            Ok(v) => Some(v),
            Err(e) => {
                self.at_value(path, e);
                None
            }
        }
    }

    fn field<T>(&mut self, parent: &str, key: &str, f: Field<T>) -> Option<T> {
        self.lenient(&join(parent, key), f?)
    }

    fn required<T>(&mut self, parent: &str, key: &str, f: Field<T>) -> Option<T> {
        match f {
            Some(v) => self.lenient(&join(parent, key), v),
            None => {
                self.at_key(parent, format!("missing required key `{key}`"));
                None
            }
        }
    }

    fn unknown(&mut self, parent: &str, unknown: &Unknown, known: &[&str]) {
        for key in unknown.keys() {
            let hint = match suggest(&key.0, known) {
                Some(k) => format!("; did you mean `{k}`?"),
                None => format!("; expected one of: {}", known.join(", ")),
            };
            self.at_key(
                &join(parent, &key.0),
                format!("unknown key `{}`{hint}", key.0),
            );
        }
    }

    fn duration(&mut self, parent: &str, key: &str, f: Field<RawDuration>) -> Option<Duration> {
        let path = join(parent, key);
        let parsed = match self.field(parent, key, f)? {
            RawDuration::Text(t) => parse_duration(&t),
            RawDuration::Int(0) => Ok(Duration::ZERO),
            RawDuration::Int(n) if n < 0 => Err(format!("`{n}`: a duration cannot be negative")),
            RawDuration::Int(n) => Err(format!(
                "`{n}` has no unit: write e.g. `{n}s` or `{n}ms` (units: us, ms, s, m, h)"
            )),
        };
        match parsed {
            Ok(d) => Some(d),
            Err(e) => {
                self.at_value(&path, e);
                None
            }
        }
    }

    /// A duration that must be greater than zero.
    fn positive_duration(
        &mut self,
        parent: &str,
        key: &str,
        f: Field<RawDuration>,
    ) -> Option<Duration> {
        let d = self.duration(parent, key, f)?;
        if d.is_zero() {
            self.at_value(&join(parent, key), "must be greater than 0");
            return None;
        }
        Some(d)
    }

    fn name(&mut self, parent: &str, key: &str, f: Field<String>) -> Option<String> {
        let name = self.required(parent, key, f)?;
        match check_name(&name) {
            Ok(()) => Some(name),
            Err(e) => {
                self.at_value(&join(parent, key), e);
                None
            }
        }
    }

    fn absolute_path(&mut self, path: &str, text: String) -> Option<PathBuf> {
        let p = PathBuf::from(&text);
        if p.is_absolute() {
            Some(p)
        } else {
            self.at_value(path, format!("`{text}` must be an absolute path"));
            None
        }
    }

    fn params(
        &mut self,
        path: &str,
        params: Option<BTreeMap<String, Lenient<ScalarText>>>,
        strict_keys: bool,
    ) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        for (k, v) in params.unwrap_or_default() {
            let p = join(path, &k);
            let Some(v) = self.lenient(&p, v) else {
                continue;
            };
            let key_ok = if strict_keys {
                !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            } else {
                !k.is_empty() && !k.contains(['=', '\n', '\r'])
            };
            if !key_ok {
                let allowed = if strict_keys {
                    "letters, digits and `_`"
                } else {
                    "no `=` or newlines"
                };
                self.at_key(&p, format!("invalid parameter name `{k}` ({allowed})"));
            } else if v.0.contains(['\n', '\r', '\0']) {
                // Parameters become `key=value` lines or environment values: a newline
                // would smuggle in another parameter.
                self.at_value(&p, "parameter values must not contain newlines or NUL");
            } else {
                out.insert(k, v.0);
            }
        }
        out
    }
}

/// Everything about nodes that other sections need to resolve references.
struct NodeIndex {
    by_name: HashMap<String, (NodeId, bool)>,
    /// Every node entry converted: references to unknown names are real errors.
    complete: bool,
}

impl NodeIndex {
    /// Resolves a node reference, reporting unknown names (only when the node list is
    /// complete; otherwise the name may belong to a node that failed to parse).
    fn resolve(&self, ctx: &mut Ctx, path: &str, name: &str) -> Option<(NodeId, bool)> {
        match self.by_name.get(name) {
            Some(n) => Some(*n),
            None => {
                if self.complete {
                    let mut names: Vec<&str> = self.by_name.keys().map(String::as_str).collect();
                    names.sort_unstable();
                    ctx.at_value(
                        path,
                        format!("unknown node `{name}` (nodes: {})", names.join(", ")),
                    );
                }
                None
            }
        }
    }
}

pub(super) fn validate(
    raw: raw::RawConfig,
    text: &str,
    file: &str,
) -> Result<Config, ConfigErrors> {
    let mut ctx = Ctx {
        file,
        loc: Locator::new(text),
        errors: Vec::new(),
    };
    ctx.unknown("", &raw.unknown, raw::RawConfig::KEYS);
    let base_dir = Path::new(file)
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();

    let cluster = cluster(&mut ctx, raw.cluster, &base_dir);
    let (nodes, index) = nodes(&mut ctx, raw.nodes);
    let heartbeat = heartbeat(&mut ctx, raw.heartbeat);
    let quorum = quorum(&mut ctx, raw.quorum, &nodes, &index);
    let fencing = fencing(&mut ctx, raw.fencing, &nodes, &index);
    let groups = groups(&mut ctx, raw.groups, &nodes, &index);
    let checks = checks(&mut ctx, raw.checks, &index);
    let metrics = raw
        .metrics
        .and_then(|m| ctx.lenient("metrics", m))
        .and_then(|m| {
            ctx.unknown("metrics", &m.unknown, raw::RawMetrics::KEYS);
            let listen = ctx.required("metrics", "listen", m.listen)?;
            match listen.parse::<SocketAddr>() {
                Ok(listen) => Some(MetricsConfig { listen }),
                Err(_) => {
                    ctx.at_value(
                        "metrics.listen",
                        format!("`{listen}` is not a socket address such as `127.0.0.1:9405`"),
                    );
                    None
                }
            }
        });

    let watchdog = raw
        .watchdog
        .and_then(|w| ctx.lenient("watchdog", w))
        .and_then(|w| {
            ctx.unknown("watchdog", &w.unknown, raw::RawWatchdog::KEYS);
            let device = ctx.required("watchdog", "device", w.device)?;
            let device = ctx.absolute_path("watchdog.device", device)?;
            let timeout = match w.timeout {
                None => WatchdogConfig::DEFAULT_TIMEOUT,
                f => ctx.positive_duration("watchdog", "timeout", f)?,
            };
            if timeout < Duration::from_secs(1) || timeout.subsec_nanos() != 0 {
                ctx.at_value(
                    "watchdog.timeout",
                    "watchdog drivers count in whole seconds: give at least 1s, in whole seconds",
                );
                return None;
            }
            Some(WatchdogConfig { device, timeout })
        });

    let notify: Vec<PathBuf> = raw
        .notify
        .and_then(|n| ctx.lenient("notify", n))
        .unwrap_or_default()
        .into_iter()
        .enumerate()
        .filter_map(|(j, s)| ctx.absolute_path(&format!("notify[{j}]"), s))
        .collect();

    let (cluster, authkey, authkey_next) = cluster;
    // Keys are checked even when other things are wrong: a missing key is one more
    // thing the admin should learn about in the same run.
    let current = authkey.as_ref().and_then(|p| {
        read_key(p)
            .map_err(|e| ctx.at_value("cluster.authkey", e.to_string()))
            .ok()
    });
    let next = authkey_next.as_ref().map(|p| {
        read_key(p)
            .map_err(|e| ctx.at_value("cluster.authkey_next", e.to_string()))
            .ok()
    });
    let keys = match (current, next) {
        (Some(current), None) => Some(AuthKeys {
            current,
            next: None,
        }),
        (Some(current), Some(Some(next))) => Some(AuthKeys {
            current,
            next: Some(next),
        }),
        _ => None,
    };

    if !ctx.errors.is_empty() {
        let mut errors = ctx.errors;
        // File order reads best; errors without a line go last, in the order found.
        errors.sort_by_key(|e| e.line.unwrap_or(usize::MAX));
        return Err(ConfigErrors(errors));
    }
    match (cluster, keys) {
        (Some(cluster), Some(keys)) => Ok(Config {
            file: PathBuf::from(file),
            cluster,
            nodes,
            heartbeat,
            quorum,
            fencing,
            groups,
            checks,
            metrics,
            watchdog,
            notify,
            keys,
        }),
        // Unreachable in practice: a missing part always recorded an error above.
        _ => Err(ConfigErrors(vec![ConfigError {
            file: file.to_string(),
            line: None,
            column: None,
            path: Some("cluster".into()),
            message: "incomplete cluster section".into(),
        }])),
    }
}

/// The cluster section, plus the key paths resolved against the config's directory
/// (returned even when the rest of the section is broken, so the keys get checked).
fn cluster(
    ctx: &mut Ctx,
    raw: Field<raw::RawCluster>,
    base: &Path,
) -> (Option<ClusterConfig>, Option<PathBuf>, Option<PathBuf>) {
    let Some(raw) = raw else {
        ctx.push("", None, "missing required section `cluster`".into());
        return (None, None, None);
    };
    let Some(raw) = ctx.lenient("cluster", raw) else {
        return (None, None, None);
    };
    ctx.unknown("cluster", &raw.unknown, raw::RawCluster::KEYS);
    let name = ctx.name("cluster", "name", raw.name);
    let authkey = ctx
        .required("cluster", "authkey", raw.authkey)
        .map(PathBuf::from);
    let authkey_next = ctx
        .field("cluster", "authkey_next", raw.authkey_next)
        .map(PathBuf::from);
    // Relative key paths are relative to the config file, not to the daemon's cwd.
    let resolve = |p: &PathBuf| {
        if p.is_absolute() {
            p.clone()
        } else {
            base.join(p)
        }
    };
    let authkey = authkey.as_ref().map(resolve);
    let authkey_next = authkey_next.as_ref().map(resolve);
    let config = match (name, &authkey) {
        (Some(name), Some(key)) => Some(ClusterConfig {
            cluster_id: fnv1a64(name.as_bytes()),
            name,
            authkey: key.clone(),
            authkey_next: authkey_next.clone(),
        }),
        _ => None,
    };
    (config, authkey, authkey_next)
}

fn nodes(ctx: &mut Ctx, raw: Field<Vec<Lenient<raw::RawNode>>>) -> (Vec<NodeConfig>, NodeIndex) {
    let mut index = NodeIndex {
        by_name: HashMap::new(),
        complete: false,
    };
    let Some(raw) = raw else {
        ctx.push("", None, "missing required section `nodes`".into());
        return (Vec::new(), index);
    };
    let Some(raw) = ctx.lenient("nodes", raw) else {
        return (Vec::new(), index);
    };
    if raw.is_empty() {
        ctx.at_value("nodes", "at least one node is required");
    }
    if raw.len() > MAX_NODES {
        ctx.at_key(
            "nodes",
            format!(
                "{} nodes given; at most {MAX_NODES} are supported",
                raw.len()
            ),
        );
    }
    let mut complete = true;
    let mut out = Vec::new();
    let mut ids: HashMap<u16, usize> = HashMap::new();
    let mut all_addresses: HashMap<IpAddr, String> = HashMap::new();
    // Link count and per-link families, taken from the first node with clean addresses.
    let mut reference: Option<(usize, String, Vec<IpAddr>)> = None;

    for (i, node) in raw.into_iter().enumerate() {
        let p = format!("nodes[{i}]");
        let Some(node) = ctx.lenient(&p, node) else {
            complete = false;
            continue;
        };
        ctx.unknown(&p, &node.unknown, raw::RawNode::KEYS);
        let name = ctx.name(&p, "name", node.name);
        // Position + 1 fits: there are at most MAX_NODES nodes when this matters, and
        // a collision with a larger count is reported as a duplicate.
        let default_id = u16::try_from(i + 1).unwrap_or(u16::MAX);
        let id = match ctx.field(&p, "id", node.id) {
            Some(0) => {
                ctx.at_value(&join(&p, "id"), "node ids start at 1");
                None
            }
            Some(id) => Some(id),
            None => Some(default_id),
        };
        if let Some(id) = id {
            if let Some(other) = ids.insert(id, i) {
                ctx.at_key(
                    &join(&p, "id"),
                    format!("node id {id} is already used by nodes[{other}]"),
                );
            }
        }

        let mut addresses = Vec::new();
        let mut addresses_clean = true;
        match ctx.required(&p, "addresses", node.addresses) {
            None => addresses_clean = false,
            Some(list) => {
                if list.is_empty() {
                    ctx.at_value(
                        &join(&p, "addresses"),
                        "at least one address (one per heartbeat link) is required",
                    );
                    addresses_clean = false;
                }
                for (j, a) in list.into_iter().enumerate() {
                    let ap = format!("{p}.addresses[{j}]");
                    let Some(a) = ctx.lenient(&ap, a) else {
                        addresses_clean = false;
                        continue;
                    };
                    match a.parse::<IpAddr>() {
                        Ok(ip) if ip.is_unspecified() || ip.is_multicast() => {
                            ctx.at_value(
                                &ap,
                                format!(
                                    "`{a}` cannot be a node address (unspecified or multicast)"
                                ),
                            );
                            addresses_clean = false;
                        }
                        Ok(ip) => {
                            let me = format!("{p}.addresses[{j}]");
                            if let Some(other) = all_addresses.insert(ip, me) {
                                ctx.at_value(&ap, format!("address {ip} is also used at {other}"));
                            }
                            addresses.push(ip);
                        }
                        Err(_) => {
                            ctx.at_value(&ap, format!("`{a}` is not an IPv4 or IPv6 address"));
                            addresses_clean = false;
                        }
                    }
                }
            }
        }
        if addresses.len() > MAX_LINKS {
            ctx.at_key(
                &join(&p, "addresses"),
                format!(
                    "{} addresses given; at most {MAX_LINKS} heartbeat links are supported",
                    addresses.len()
                ),
            );
        }
        if addresses_clean {
            match &reference {
                None => reference = Some((i, name.clone().unwrap_or_default(), addresses.clone())),
                Some((ri, rname, raddrs)) => {
                    if raddrs.len() != addresses.len() {
                        ctx.at_value(
                            &join(&p, "addresses"),
                            format!(
                                "{} address(es) but nodes[{ri}] ({rname}) has {}: every node needs one address per heartbeat link",
                                addresses.len(),
                                raddrs.len()
                            ),
                        );
                    } else {
                        for (j, (a, r)) in addresses.iter().zip(raddrs).enumerate() {
                            if a.is_ipv4() != r.is_ipv4() {
                                ctx.at_value(
                                    &format!("{p}.addresses[{j}]"),
                                    format!("link {j} is {} on nodes[{ri}] ({rname}) but {a} is not: every link uses one address family", if r.is_ipv4() { "IPv4" } else { "IPv6" }),
                                );
                            }
                        }
                    }
                }
            }
        }

        let mut interfaces = vec![None; addresses.len()];
        if let Some(list) = ctx.field(&p, "interfaces", node.interfaces) {
            let ip = join(&p, "interfaces");
            if addresses_clean && list.len() != addresses.len() {
                ctx.at_value(
                    &ip,
                    format!(
                        "{} interface(s) for {} address(es): give one per address (null for none)",
                        list.len(),
                        addresses.len()
                    ),
                );
            }
            for (j, ifname) in list.into_iter().enumerate() {
                if let Some(ifname) = ifname {
                    match check_ifname(&ifname) {
                        Ok(()) => {
                            if let Some(slot) = interfaces.get_mut(j) {
                                *slot = Some(ifname);
                            }
                        }
                        Err(e) => ctx.at_value(&format!("{ip}[{j}]"), e),
                    }
                }
            }
        }

        let priority = ctx.field(&p, "priority", node.priority).unwrap_or(0);
        let votes = ctx.field(&p, "votes", node.votes).unwrap_or(1);
        let witness = ctx.field(&p, "witness", node.witness).unwrap_or(false);
        if witness && votes == 0 {
            ctx.at_value(
                &join(&p, "votes"),
                "a witness with no votes does nothing: give it votes ≥ 1 or remove it",
            );
        }
        let fence_delay = ctx
            .duration(&p, "fence_delay", node.fence_delay)
            .unwrap_or(Duration::ZERO);

        let (Some(name), Some(id)) = (name, id) else {
            complete = false;
            continue;
        };
        if index
            .by_name
            .insert(name.clone(), (NodeId(id), witness))
            .is_some()
        {
            ctx.at_value(&join(&p, "name"), format!("duplicate node name `{name}`"));
            continue;
        }
        out.push(NodeConfig {
            id: NodeId(id),
            name,
            addresses,
            interfaces,
            priority,
            votes,
            witness,
            fence_delay,
        });
    }
    if complete && !out.is_empty() && out.iter().all(|n| n.witness) {
        ctx.at_key(
            "nodes",
            "every node is a witness: no node could own a group",
        );
    }
    if complete && !out.is_empty() && out.iter().map(|n| u64::from(n.votes)).sum::<u64>() == 0 {
        ctx.at_key(
            "nodes",
            "the nodes have no votes at all: quorum could never be reached",
        );
    }
    index.complete = complete;
    (out, index)
}

fn heartbeat(ctx: &mut Ctx, raw: Field<raw::RawHeartbeat>) -> HeartbeatConfig {
    const P: &str = "heartbeat";
    let raw = raw.and_then(|r| ctx.lenient(P, r));
    let default_deadtime = Duration::from_secs(1);
    let Some(raw) = raw else {
        return HeartbeatConfig {
            port: 5405,
            interval: Duration::from_millis(100),
            deadtime: default_deadtime,
            warntime: default_deadtime / 2,
            initdead: default_deadtime * 2,
            max_drift_ppm: 500,
            stop_before_lease_end: crate::core::spec::Timing::default_stop_before_lease_end(
                Duration::from_millis(100),
                default_deadtime,
            ),
            realtime: true,
            mlockall: true,
        };
    };
    ctx.unknown(P, &raw.unknown, raw::RawHeartbeat::KEYS);
    let port = match ctx.field(P, "port", raw.port) {
        Some(0) => {
            ctx.at_value("heartbeat.port", "port 0 is not a usable UDP port");
            5405
        }
        Some(p) => p,
        None => 5405,
    };
    // `None` below means "given but broken": the rules that involve it are skipped.
    let given = |f: &Field<RawDuration>| f.is_some();
    let interval = if given(&raw.interval) {
        ctx.positive_duration(P, "interval", raw.interval)
    } else {
        Some(Duration::from_millis(100))
    };
    let deadtime = if given(&raw.deadtime) {
        ctx.positive_duration(P, "deadtime", raw.deadtime)
    } else {
        Some(default_deadtime)
    };
    let dt = deadtime.unwrap_or(default_deadtime);
    let opt = |ctx: &mut Ctx, key: &str, f: Field<RawDuration>, default: Option<Duration>| {
        if f.is_some() {
            ctx.duration(P, key, f)
        } else {
            default
        }
    };
    let warntime = opt(ctx, "warntime", raw.warntime, deadtime.map(|d| d / 2));
    let initdead = opt(ctx, "initdead", raw.initdead, deadtime.map(|d| d * 2));
    // No default here: the default depends on the interval too and is filled in below
    // (`Timing::default_stop_before_lease_end`); only an explicit value is checked.
    let stop_before = opt(
        ctx,
        "stop_before_lease_end",
        raw.stop_before_lease_end,
        None,
    );
    let max_drift_ppm = ctx
        .field(P, "max_drift_ppm", raw.max_drift_ppm)
        .unwrap_or(500);
    if max_drift_ppm > 100_000 {
        ctx.at_value(
            "heartbeat.max_drift_ppm",
            format!("{max_drift_ppm} ppm is more than 10%: no real clock drifts that much"),
        );
    }
    let f = format_duration;
    if let Some(deadtime) = deadtime {
        if let Some(interval) = interval {
            if interval >= deadtime {
                ctx.at_value(
                    "heartbeat.interval",
                    format!(
                        "heartbeat.interval ({}) must be shorter than heartbeat.deadtime ({})",
                        f(interval),
                        f(deadtime)
                    ),
                );
            }
        }
        if let Some(w) = warntime {
            if w > deadtime {
                ctx.at_value(
                    "heartbeat.warntime",
                    format!(
                        "warntime ({}) must not exceed deadtime ({})",
                        f(w),
                        f(deadtime)
                    ),
                );
            }
        }
        if let Some(s) = stop_before {
            if s >= deadtime {
                ctx.at_value(
                    "heartbeat.stop_before_lease_end",
                    format!(
                        "stop_before_lease_end ({}) must be shorter than deadtime ({})",
                        f(s),
                        f(deadtime)
                    ),
                );
            }
        }
        if let Some(i) = initdead {
            if i < deadtime {
                ctx.at_value(
                    "heartbeat.initdead",
                    format!(
                        "initdead ({}) must be at least deadtime ({})",
                        f(i),
                        f(deadtime)
                    ),
                );
            }
        }
    }
    let iv = interval.unwrap_or(Duration::from_millis(100));
    HeartbeatConfig {
        port,
        interval: iv,
        deadtime: dt,
        warntime: warntime.unwrap_or(dt / 2),
        initdead: initdead.unwrap_or(dt * 2),
        max_drift_ppm,
        stop_before_lease_end: stop_before
            .unwrap_or_else(|| crate::core::spec::Timing::default_stop_before_lease_end(iv, dt)),
        realtime: ctx.field(P, "realtime", raw.realtime).unwrap_or(true),
        mlockall: ctx.field(P, "mlockall", raw.mlockall).unwrap_or(true),
    }
}

fn quorum(
    ctx: &mut Ctx,
    raw: Field<raw::RawQuorum>,
    nodes: &[NodeConfig],
    index: &NodeIndex,
) -> QuorumConfig {
    const P: &str = "quorum";
    let mut q = QuorumConfig {
        no_quorum_policy: NoQuorumPolicy::Stop,
        two_node: false,
        wait_for_all: false,
        expected_votes: None,
    };
    let Some(raw) = raw.and_then(|r| ctx.lenient(P, r)) else {
        return q;
    };
    ctx.unknown(P, &raw.unknown, raw::RawQuorum::KEYS);
    if let Some(policy) = ctx.field(P, "no_quorum_policy", raw.no_quorum_policy) {
        q.no_quorum_policy = match policy.as_str() {
            "stop" => NoQuorumPolicy::Stop,
            "freeze" => NoQuorumPolicy::Freeze,
            "ignore" => NoQuorumPolicy::Ignore,
            other => {
                ctx.at_value(
                    "quorum.no_quorum_policy",
                    format!("`{other}`: expected stop, freeze or ignore"),
                );
                NoQuorumPolicy::Stop
            }
        };
    }
    q.two_node = ctx.field(P, "two_node", raw.two_node).unwrap_or(false);
    if q.two_node && index.complete {
        let owners = nodes.iter().filter(|n| !n.witness).count();
        let witnesses = nodes.len() - owners;
        if owners != 2 || witnesses != 0 {
            ctx.at_value(
                "quorum.two_node",
                format!("two_node needs exactly 2 nodes and no witness; this cluster has {owners} non-witness node(s) and {witnesses} witness(es)"),
            );
        }
    }
    q.wait_for_all = ctx
        .field(P, "wait_for_all", raw.wait_for_all)
        .unwrap_or(q.two_node);
    q.expected_votes = ctx.field(P, "expected_votes", raw.expected_votes);
    if q.expected_votes == Some(0) {
        ctx.at_value("quorum.expected_votes", "expected_votes must be at least 1");
    }
    q
}

fn fencing(
    ctx: &mut Ctx,
    raw: Field<raw::RawFencing>,
    nodes: &[NodeConfig],
    index: &NodeIndex,
) -> FencingConfig {
    const P: &str = "fencing";
    let mut f = FencingConfig {
        policy: FencePolicy::Needed,
        retry_interval: Duration::from_secs(5),
        self_fence: SelfFence::Reboot,
        agents: Vec::new(),
    };
    let Some(raw) = raw.and_then(|r| ctx.lenient(P, r)) else {
        return f;
    };
    ctx.unknown(P, &raw.unknown, raw::RawFencing::KEYS);
    let policy_given = raw.policy.is_some();
    if let Some(policy) = ctx.field(P, "policy", raw.policy) {
        f.policy = match policy.as_str() {
            "needed" => FencePolicy::Needed,
            "always" => FencePolicy::Always,
            other => {
                ctx.at_value(
                    "fencing.policy",
                    format!("`{other}`: expected needed or always"),
                );
                FencePolicy::Needed
            }
        };
    }
    if raw.retry_interval.is_some() {
        if let Some(d) = ctx.positive_duration(P, "retry_interval", raw.retry_interval) {
            f.retry_interval = d;
        }
    }
    if let Some(s) = ctx.field(P, "self_fence", raw.self_fence) {
        f.self_fence = match s.as_str() {
            "reboot" => SelfFence::Reboot,
            "poweroff" => SelfFence::Poweroff,
            "none" => SelfFence::None,
            other if other.starts_with('/') => SelfFence::Command(PathBuf::from(other)),
            other => {
                ctx.at_value("fencing.self_fence", format!("`{other}`: expected reboot, poweroff, none or an absolute path to a command"));
                SelfFence::Reboot
            }
        };
    }
    let mut names = HashSet::new();
    let all_nodes: Vec<NodeId> = nodes.iter().map(|n| n.id).collect();
    for (i, agent) in ctx
        .field(P, "agents", raw.agents)
        .unwrap_or_default()
        .into_iter()
        .enumerate()
    {
        let p = format!("fencing.agents[{i}]");
        let Some(a) = ctx.lenient(&p, agent) else {
            continue;
        };
        ctx.unknown(&p, &a.unknown, raw::RawFenceAgent::KEYS);
        let name = ctx.name(&p, "name", a.name);
        if let Some(n) = &name {
            if !names.insert(n.clone()) {
                ctx.at_value(
                    &join(&p, "name"),
                    format!("duplicate fence agent name `{n}`"),
                );
            }
        }
        let agent = ctx
            .required(&p, "agent", a.agent)
            .and_then(|t| ctx.absolute_path(&join(&p, "agent"), t));
        let params_raw = ctx.field(&p, "params", a.params);
        let params = ctx.params(&join(&p, "params"), params_raw, false);
        let targets = match ctx.field(&p, "nodes", a.nodes) {
            None => all_nodes.clone(),
            Some(list) => {
                if list.is_empty() {
                    ctx.at_value(&join(&p, "nodes"), "an agent that can fence no node is useless: list at least one node or omit `nodes` for all");
                }
                list.iter()
                    .enumerate()
                    .filter_map(|(j, n)| {
                        index
                            .resolve(ctx, &format!("{p}.nodes[{j}]"), n)
                            .map(|r| r.0)
                    })
                    .collect()
            }
        };
        if let (Some(name), Some(agent)) = (name, agent) {
            f.agents.push(FenceAgentConfig {
                name,
                agent,
                params,
                nodes: targets,
            });
        }
    }
    if policy_given && f.policy == FencePolicy::Always && f.agents.is_empty() {
        ctx.at_value(
            "fencing.policy",
            "policy `always` needs at least one fence agent in fencing.agents",
        );
    }
    f
}

fn checks(
    ctx: &mut Ctx,
    raw: Field<Vec<Lenient<raw::RawCheck>>>,
    index: &NodeIndex,
) -> Vec<CheckConfig> {
    let Some(list) = raw.and_then(|r| ctx.lenient("checks", r)) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut names: HashMap<String, usize> = HashMap::new();
    for (i, c) in list.into_iter().enumerate() {
        let p = format!("checks[{i}]");
        let Some(c) = ctx.lenient(&p, c) else {
            continue;
        };
        ctx.unknown(&p, &c.unknown, raw::RawCheck::KEYS);
        let name = ctx.name(&p, "name", c.name);
        if let Some(n) = &name {
            if let Some(other) = names.insert(n.clone(), i) {
                ctx.at_value(
                    &join(&p, "name"),
                    format!("duplicate check name `{n}` (also checks[{other}])"),
                );
            }
        }
        let probe = match (c.ping, c.script) {
            (Some(_), Some(_)) => {
                ctx.at_key(&p, "give either `ping` or `script`, not both");
                None
            }
            (None, None) => {
                ctx.at_key(&p, "missing `ping` (a list of addresses) or `script`");
                None
            }
            (Some(ping), None) => ctx.lenient(&join(&p, "ping"), ping).and_then(|targets| {
                let pp = join(&p, "ping");
                if targets.is_empty() {
                    ctx.at_value(&pp, "list at least one address to ping");
                    return None;
                }
                let mut ok = Vec::new();
                let mut all = true;
                for (j, t) in targets.into_iter().enumerate() {
                    let tp = format!("{pp}[{j}]");
                    let Some(t) = ctx.lenient(&tp, t) else {
                        all = false;
                        continue;
                    };
                    // Addresses only: a health check must not depend on DNS.
                    match t.parse::<IpAddr>() {
                        Ok(ip) if !ip.is_unspecified() && !ip.is_multicast() => ok.push(ip),
                        _ => {
                            ctx.at_value(
                                &tp,
                                format!("`{t}` is not a unicast IPv4 or IPv6 address"),
                            );
                            all = false;
                        }
                    }
                }
                all.then_some(CheckProbe::Ping(ok))
            }),
            (None, Some(script)) => ctx.lenient(&join(&p, "script"), script).and_then(|cmd| {
                if cmd.trim().is_empty() || cmd.contains('\0') {
                    ctx.at_value(
                        &join(&p, "script"),
                        "must be a non-empty command without NUL",
                    );
                    None
                } else {
                    Some(CheckProbe::Script(cmd))
                }
            }),
        };
        let interval = if c.interval.is_some() {
            ctx.positive_duration(&p, "interval", c.interval)
        } else {
            None
        }
        .unwrap_or(Duration::from_secs(2));
        let timeout = if c.timeout.is_some() {
            ctx.positive_duration(&p, "timeout", c.timeout)
        } else {
            None
        }
        .unwrap_or(Duration::from_secs(1));
        let mut count = |key: &str, f: Field<u32>, default: u32| match ctx.field(&p, key, f) {
            Some(0) => {
                ctx.at_value(&join(&p, key), "must be at least 1");
                default
            }
            Some(n) => n,
            None => default,
        };
        let fall = count("fall", c.fall, 3);
        let rise = count("rise", c.rise, 2);
        let nodes = match ctx.field(&p, "nodes", c.nodes) {
            None => Vec::new(),
            Some(list) => {
                if list.is_empty() {
                    ctx.at_value(&join(&p, "nodes"), "a check that runs on no node is useless: list at least one node or omit `nodes` for all");
                }
                for (j, n) in list.iter().enumerate() {
                    index.resolve(ctx, &format!("{p}.nodes[{j}]"), n);
                }
                list
            }
        };
        if let (Some(name), Some(probe)) = (name, probe) {
            out.push(CheckConfig {
                name,
                probe,
                interval,
                timeout,
                fall,
                rise,
                nodes,
            });
        }
    }
    out
}

fn groups(
    ctx: &mut Ctx,
    raw: Field<Vec<Lenient<raw::RawGroup>>>,
    nodes: &[NodeConfig],
    index: &NodeIndex,
) -> Vec<GroupConfig> {
    let Some(list) = raw.and_then(|r| ctx.lenient("groups", r)) else {
        return Vec::new();
    };
    if list.len() > MAX_GROUPS {
        ctx.at_key(
            "groups",
            format!(
                "{} groups given; at most {MAX_GROUPS} are supported",
                list.len()
            ),
        );
    }
    let mut out = Vec::new();
    let mut names: HashMap<String, usize> = HashMap::new();
    let mut ids: HashMap<GroupId, String> = HashMap::new();
    for (i, g) in list.into_iter().enumerate() {
        let p = format!("groups[{i}]");
        let Some(g) = ctx.lenient(&p, g) else {
            continue;
        };
        ctx.unknown(&p, &g.unknown, raw::RawGroup::KEYS);
        let name = ctx.name(&p, "name", g.name);
        let id = name.as_deref().map(GroupId::of_name);
        if let (Some(name), Some(id)) = (&name, id) {
            if let Some(other) = names.insert(name.clone(), i) {
                ctx.at_value(
                    &join(&p, "name"),
                    format!("duplicate group name `{name}` (also groups[{other}])"),
                );
            } else if let Some(other) = ids.insert(id, name.clone()) {
                ctx.at_value(&join(&p, "name"), format!("group names `{name}` and `{other}` hash to the same wire id {id:?}: rename one"));
            }
        }

        let eligible: Vec<NodeId> = match ctx.field(&p, "nodes", g.nodes) {
            None => nodes.iter().filter(|n| !n.witness).map(|n| n.id).collect(),
            Some(list) => {
                let mut ids = Vec::new();
                for (j, n) in list.iter().enumerate() {
                    let np = format!("{p}.nodes[{j}]");
                    if let Some((id, witness)) = index.resolve(ctx, &np, n) {
                        if witness {
                            ctx.at_value(
                                &np,
                                format!("`{n}` is a witness and can never own a group"),
                            );
                        } else if ids.contains(&id) {
                            ctx.at_value(&np, format!("`{n}` is listed twice"));
                        } else {
                            ids.push(id);
                        }
                    }
                }
                ids
            }
        };
        if eligible.is_empty() && index.complete && !nodes.is_empty() {
            ctx.at_key(
                &p,
                "no node is eligible to own this group (all excluded or witnesses)",
            );
        }
        let prefer = ctx.field(&p, "prefer", g.prefer).and_then(|n| {
            let pp = join(&p, "prefer");
            let (id, witness) = index.resolve(ctx, &pp, &n)?;
            if witness {
                ctx.at_value(&pp, format!("`{n}` is a witness and can never own a group"));
                None
            } else if !eligible.contains(&id) {
                ctx.at_value(&pp, format!("`{n}` is not in this group's `nodes`"));
                None
            } else {
                Some(id)
            }
        });
        let failback = ctx.field(&p, "failback", g.failback).unwrap_or(false);
        let failback_delay = ctx
            .duration(&p, "failback_delay", g.failback_delay)
            .unwrap_or(Duration::from_secs(10));
        let monitor_interval = if g.monitor_interval.is_some() {
            ctx.positive_duration(&p, "monitor_interval", g.monitor_interval)
        } else {
            None
        }
        .unwrap_or(Duration::from_secs(10));
        let migration_threshold = match ctx.field(&p, "migration_threshold", g.migration_threshold)
        {
            Some(0) => {
                ctx.at_value(&join(&p, "migration_threshold"), "must be at least 1");
                3
            }
            Some(n) => n,
            None => 3,
        };
        let failure_timeout = ctx
            .duration(&p, "failure_timeout", g.failure_timeout)
            .unwrap_or(Duration::from_secs(600));
        let on_fail = match ctx.field(&p, "on_fail", g.on_fail).as_deref() {
            None | Some("fence") => OnFail::FenceSelf,
            Some("block") => OnFail::Block,
            Some(other) => {
                ctx.at_value(
                    &join(&p, "on_fail"),
                    format!("`{other}`: expected fence or block"),
                );
                OnFail::FenceSelf
            }
        };
        let notify = ctx
            .field(&p, "notify", g.notify)
            .unwrap_or_default()
            .into_iter()
            .enumerate()
            .filter_map(|(j, s)| ctx.absolute_path(&format!("{p}.notify[{j}]"), s))
            .collect();

        let mut resources = Vec::new();
        if let Some(list) = ctx.required(&p, "resources", g.resources) {
            if list.is_empty() {
                ctx.at_value(
                    &join(&p, "resources"),
                    "a group needs at least one resource",
                );
            }
            let mut rnames: HashMap<String, usize> = HashMap::new();
            for (j, r) in list.into_iter().enumerate() {
                let rp = format!("{p}.resources[{j}]");
                let Some(r) = ctx.lenient(&rp, r) else {
                    continue;
                };
                let Some(res) = resource(ctx, &rp, r) else {
                    continue;
                };
                if let Some(other) = rnames.insert(res.name.clone(), j) {
                    ctx.at_key(&rp, format!("duplicate resource name `{}` (also resources[{other}]); set `name` to tell them apart", res.name));
                }
                resources.push(res);
            }
        }

        if let (Some(name), Some(id)) = (name, id) {
            out.push(GroupConfig {
                id,
                name,
                prefer,
                nodes: eligible,
                failback,
                failback_delay,
                monitor_interval,
                migration_threshold,
                failure_timeout,
                on_fail,
                notify,
                resources,
            });
        }
    }
    out
}

fn resource_name(ctx: &mut Ctx, path: &str, name: String) -> Option<String> {
    if name.is_empty()
        || name.chars().count() > 64
        || name
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '/')
    {
        ctx.at_value(
            path,
            format!("`{name}` is not a valid resource name (1 to 64 characters, no spaces or `/`)"),
        );
        return None;
    }
    Some(name)
}

fn timeout(
    ctx: &mut Ctx,
    parent: &str,
    f: Field<RawDuration>,
    default: Option<Duration>,
) -> Option<Duration> {
    if f.is_some() {
        ctx.positive_duration(parent, "timeout", f)
    } else {
        default
    }
}

fn nonempty(
    ctx: &mut Ctx,
    parent: &str,
    key: &str,
    f: Field<String>,
    required: bool,
) -> Option<String> {
    let v = if required {
        ctx.required(parent, key, f)
    } else {
        ctx.field(parent, key, f)
    }?;
    if v.trim().is_empty() {
        ctx.at_value(&join(parent, key), "must not be empty");
        return None;
    }
    Some(v)
}

fn resource(ctx: &mut Ctx, rp: &str, raw: RawResource) -> Option<ResourceConfig> {
    const TWENTY: Option<Duration> = Some(Duration::from_secs(20));
    match raw {
        RawResource::Vip(body) => {
            let p = format!("{rp}.vip");
            let v = ctx.lenient(&p, body)?;
            ctx.unknown(&p, &v.unknown, raw::RawVip::KEYS);
            let address = ctx.required(&p, "address", v.address).and_then(|a| {
                let ap = join(&p, "address");
                let parsed = a.split_once('/').and_then(|(ip, prefix)| Some((ip.parse::<IpAddr>().ok()?, prefix.parse::<u8>().ok()?)));
                match parsed {
                    Some((ip, prefix)) if prefix <= if ip.is_ipv4() { 32 } else { 128 } => {
                        if ip.is_unspecified() || ip.is_multicast() || ip.is_loopback() {
                            ctx.at_value(&ap, format!("`{a}` cannot be a virtual IP (unspecified, multicast or loopback)"));
                            None
                        } else {
                            Some((ip, prefix))
                        }
                    }
                    Some((_, prefix)) => {
                        ctx.at_value(&ap, format!("prefix length /{prefix} is too long"));
                        None
                    }
                    None => {
                        ctx.at_value(&ap, format!("`{a}` is not an address with a prefix length, like `192.0.2.100/24` or `2001:db8::100/64`"));
                        None
                    }
                }
            });
            let interface =
                ctx.required(&p, "interface", v.interface)
                    .and_then(|i| match check_ifname(&i) {
                        Ok(()) => Some(i),
                        Err(e) => {
                            ctx.at_value(&join(&p, "interface"), e);
                            None
                        }
                    });
            let label = ctx.field(&p, "label", v.label).and_then(|l| {
                let lp = join(&p, "label");
                if address.is_some_and(|(ip, _)| ip.is_ipv6()) {
                    ctx.at_value(&lp, "labels exist only for IPv4 addresses");
                    return None;
                }
                let dev = interface.as_deref().unwrap_or("");
                if l.len() > 15 || !(l == dev || l.starts_with(&format!("{dev}:"))) {
                    ctx.at_value(&lp, format!("`{l}` must be `{dev}` or start with `{dev}:` and be at most 15 characters"));
                    return None;
                }
                Some(l)
            });
            let garp_count = ctx.field(&p, "garp_count", v.garp_count).unwrap_or(5);
            let garp_interval = if v.garp_interval.is_some() {
                ctx.positive_duration(&p, "garp_interval", v.garp_interval)
            } else {
                None
            }
            .unwrap_or(Duration::from_millis(200));
            let garp_refresh = if v.garp_refresh.is_some() {
                ctx.positive_duration(&p, "garp_refresh", v.garp_refresh)
            } else {
                None
            };
            let timeout = timeout(ctx, &p, v.timeout, TWENTY);
            let name = match ctx.field(&p, "name", v.name) {
                Some(n) => resource_name(ctx, &join(&p, "name"), n)?,
                None => format!("vip-{}", address?.0),
            };
            let (address, prefix) = address?;
            Some(ResourceConfig {
                name,
                kind: ResourceKind::Vip {
                    address,
                    prefix,
                    interface: interface?,
                    label,
                    garp_count,
                    garp_interval,
                    garp_refresh,
                },
                timeout,
            })
        }
        RawResource::Exec(body) => {
            let p = format!("{rp}.exec");
            let e = ctx.lenient(&p, body)?;
            ctx.unknown(&p, &e.unknown, raw::RawExec::KEYS);
            let name = ctx
                .required(&p, "name", e.name)
                .and_then(|n| resource_name(ctx, &join(&p, "name"), n));
            let start = nonempty(ctx, &p, "start", e.start, true);
            let stop = nonempty(ctx, &p, "stop", e.stop, true);
            let monitor = nonempty(ctx, &p, "monitor", e.monitor, false);
            let timeout = timeout(ctx, &p, e.timeout, TWENTY);
            Some(ResourceConfig {
                name: name?,
                kind: ResourceKind::Exec {
                    start: start?,
                    stop: stop?,
                    monitor,
                },
                timeout,
            })
        }
        RawResource::Lsb(body) => {
            let p = format!("{rp}.lsb");
            let l = ctx.lenient(&p, body)?;
            ctx.unknown(&p, &l.unknown, raw::RawLsb::KEYS);
            let timeout = timeout(ctx, &p, l.timeout, TWENTY);
            let given = ctx.required(&p, "name", l.name)?;
            let np = join(&p, "name");
            let (name, script) = if given.starts_with('/') {
                let file = Path::new(&given)
                    .file_name()
                    .map(|f| f.to_string_lossy().into_owned());
                match file {
                    Some(f) => (f, PathBuf::from(&given)),
                    None => {
                        ctx.at_value(&np, format!("`{given}` does not name a script"));
                        return None;
                    }
                }
            } else if given.contains('/') || given == "." || given == ".." {
                ctx.at_value(
                    &np,
                    format!("`{given}`: give a script name in /etc/init.d or an absolute path"),
                );
                return None;
            } else {
                (given.clone(), Path::new("/etc/init.d").join(&given))
            };
            let name = resource_name(ctx, &np, name)?;
            Some(ResourceConfig {
                name,
                kind: ResourceKind::Lsb { script },
                timeout,
            })
        }
        RawResource::Ocf(body) => {
            let p = format!("{rp}.ocf");
            let o = ctx.lenient(&p, body)?;
            ctx.unknown(&p, &o.unknown, raw::RawOcf::KEYS);
            let agent = ctx.required(&p, "agent", o.agent).and_then(|a| {
                let parts: Vec<&str> = a.split(':').collect();
                let (provider, ty) = match parts.as_slice() {
                    [provider, ty] | ["ocf", provider, ty] => (*provider, *ty),
                    _ => ("", ""),
                };
                let ok = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
                if ok(provider) && ok(ty) {
                    Some((provider.to_string(), ty.to_string()))
                } else {
                    ctx.at_value(&join(&p, "agent"), format!("`{a}`: expected `provider:type` or `ocf:provider:type`, like `heartbeat:IPaddr2`"));
                    None
                }
            });
            let params_raw = ctx.field(&p, "params", o.params);
            let params = ctx.params(&join(&p, "params"), params_raw, true);
            let timeout = timeout(ctx, &p, o.timeout, None);
            let name = match ctx.field(&p, "name", o.name) {
                Some(n) => resource_name(ctx, &join(&p, "name"), n)?,
                None => agent.as_ref()?.1.to_lowercase(),
            };
            let (provider, agent_type) = agent?;
            Some(ResourceConfig {
                name,
                kind: ResourceKind::Ocf {
                    provider,
                    agent_type,
                    params,
                },
                timeout,
            })
        }
        RawResource::Systemd(body) => {
            let p = format!("{rp}.systemd");
            let s = ctx.lenient(&p, body)?;
            ctx.unknown(&p, &s.unknown, raw::RawSystemd::KEYS);
            let timeout = timeout(ctx, &p, s.timeout, Some(Duration::from_secs(90)));
            let unit = ctx.required(&p, "unit", s.unit).and_then(|u| {
                if u.is_empty()
                    || u.contains('/')
                    || u.chars().any(|c| c.is_whitespace() || c.is_control())
                {
                    ctx.at_value(
                        &join(&p, "unit"),
                        format!("`{u}` is not a systemd unit name"),
                    );
                    None
                } else if u.contains('.') {
                    Some(u)
                } else {
                    // As systemctl does: a bare name means a service.
                    Some(format!("{u}.service"))
                }
            });
            let name = match ctx.field(&p, "name", s.name) {
                Some(n) => resource_name(ctx, &join(&p, "name"), n)?,
                None => unit.clone()?,
            };
            Some(ResourceConfig {
                name,
                kind: ResourceKind::Systemd { unit: unit? },
                timeout,
            })
        }
    }
}
