//! Step one of loading a config: YAML text into raw, loosely typed structs.
//!
//! This is the only file that knows about `serde_yaml`, so switching YAML crates is a
//! one-file change. Every field is wrapped in [`Lenient`]: a value of the wrong type
//! does not abort the parse but is kept as an error for that field, and unknown keys are
//! collected instead of rejected. That is what lets `validate` report *every* problem in
//! a file, each with its key path, rather than stopping at serde's first one. Only
//! malformed YAML (and a top level that is not a mapping) fails here, with serde_yaml's
//! line and column.

use serde::de::{self, DeserializeOwned, Deserializer, IgnoredAny, Visitor};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;

/// A field that parsed (`Ok`) or did not (`Err` with serde's "invalid type: ..., expected
/// ..." message, to be reported with the field's key path).
#[derive(Debug)]
pub struct Lenient<T>(pub Result<T, String>);

impl<'de, T: DeserializeOwned> Deserialize<'de> for Lenient<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value = serde_yaml::Value::deserialize(d)?;
        Ok(Lenient(
            serde_yaml::from_value::<T>(value).map_err(|e| humanize(&e.to_string())),
        ))
    }
}

/// serde names our Rust types in its messages ("expected struct RawNode"); admins
/// should read "expected a mapping".
fn humanize(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(i) = rest.find("struct Raw") {
        out.push_str(&rest[..i]);
        out.push_str("a mapping");
        rest = &rest[i + "struct Raw".len()..];
        let end = rest
            .find(|c: char| !c.is_ascii_alphanumeric())
            .unwrap_or(rest.len());
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

/// An optional field: absent (or `null`) is `None`.
pub type Field<T> = Option<Lenient<T>>;

/// Keys a struct does not know, kept so validation can name them (with a suggestion).
pub type Unknown = BTreeMap<AnyKey, IgnoredAny>;

/// A mapping key of any scalar type, as text.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct AnyKey(pub String);

impl<'de> Deserialize<'de> for AnyKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        ScalarText::deserialize(d).map(|s| AnyKey(s.0))
    }
}

/// A scalar (string, number or boolean) rendered as a string: agent parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScalarText(pub String);

impl<'de> Deserialize<'de> for ScalarText {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = ScalarText;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string, number or boolean")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<ScalarText, E> {
                Ok(ScalarText(v.to_string()))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<ScalarText, E> {
                Ok(ScalarText(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<ScalarText, E> {
                Ok(ScalarText(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<ScalarText, E> {
                Ok(ScalarText(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<ScalarText, E> {
                Ok(ScalarText(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

/// A duration as written: text to be parsed by `duration`, or a bare integer (only `0`
/// is valid without a unit, but validation says so rather than a type error).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RawDuration {
    Text(String),
    Int(i128),
}

impl<'de> Deserialize<'de> for RawDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = RawDuration;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a duration such as `100ms`, `1s`, `2m` or `1h`")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawDuration, E> {
                Ok(RawDuration::Text(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<RawDuration, E> {
                Ok(RawDuration::Int(v.into()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<RawDuration, E> {
                Ok(RawDuration::Int(v.into()))
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Debug, Deserialize)]
pub struct RawConfig {
    pub cluster: Field<RawCluster>,
    pub nodes: Field<Vec<Lenient<RawNode>>>,
    pub heartbeat: Field<RawHeartbeat>,
    pub quorum: Field<RawQuorum>,
    pub fencing: Field<RawFencing>,
    pub groups: Field<Vec<Lenient<RawGroup>>>,
    pub checks: Field<Vec<Lenient<RawCheck>>>,
    pub metrics: Field<RawMetrics>,
    pub watchdog: Field<RawWatchdog>,
    pub notify: Field<Vec<String>>,
    pub security: Field<RawSecurity>,
    #[serde(flatten)]
    pub unknown: Unknown,
}

impl RawConfig {
    pub const KEYS: &'static [&'static str] = &[
        "cluster",
        "nodes",
        "heartbeat",
        "quorum",
        "fencing",
        "groups",
        "checks",
        "metrics",
        "watchdog",
        "notify",
        "security",
    ];
}

#[derive(Debug, Deserialize)]
pub struct RawSecurity {
    pub allow_unsafe_scripts: Field<bool>,
    #[serde(flatten)]
    pub unknown: Unknown,
}

impl RawSecurity {
    pub const KEYS: &'static [&'static str] = &["allow_unsafe_scripts"];
}

#[derive(Debug, Deserialize)]
pub struct RawCluster {
    pub name: Field<String>,
    pub authkey: Field<String>,
    pub authkey_next: Field<String>,
    #[serde(flatten)]
    pub unknown: Unknown,
}

impl RawCluster {
    pub const KEYS: &'static [&'static str] = &["name", "authkey", "authkey_next"];
}

#[derive(Debug, Deserialize)]
pub struct RawNode {
    pub name: Field<String>,
    pub id: Field<u16>,
    pub addresses: Field<Vec<Lenient<Option<String>>>>,
    pub interfaces: Field<Vec<Option<String>>>,
    pub priority: Field<i32>,
    pub votes: Field<u32>,
    pub witness: Field<bool>,
    pub fence_delay: Field<RawDuration>,
    #[serde(flatten)]
    pub unknown: Unknown,
}

impl RawNode {
    pub const KEYS: &'static [&'static str] = &[
        "name",
        "id",
        "addresses",
        "interfaces",
        "priority",
        "votes",
        "witness",
        "fence_delay",
    ];
}

#[derive(Debug, Deserialize)]
pub struct RawHeartbeat {
    pub port: Field<u16>,
    pub interval: Field<RawDuration>,
    pub deadtime: Field<RawDuration>,
    pub warntime: Field<RawDuration>,
    pub initdead: Field<RawDuration>,
    pub max_drift_ppm: Field<u32>,
    pub stop_before_lease_end: Field<RawDuration>,
    pub realtime: Field<bool>,
    pub mlockall: Field<bool>,
    #[serde(flatten)]
    pub unknown: Unknown,
}

impl RawHeartbeat {
    pub const KEYS: &'static [&'static str] = &[
        "port",
        "interval",
        "deadtime",
        "warntime",
        "initdead",
        "max_drift_ppm",
        "stop_before_lease_end",
        "realtime",
        "mlockall",
    ];
}

#[derive(Debug, Deserialize)]
pub struct RawQuorum {
    pub no_quorum_policy: Field<String>,
    pub two_node: Field<bool>,
    pub wait_for_all: Field<bool>,
    pub expected_votes: Field<u32>,
    pub arbiter: Field<RawArbiter>,
    #[serde(flatten)]
    pub unknown: Unknown,
}

impl RawQuorum {
    pub const KEYS: &'static [&'static str] = &[
        "no_quorum_policy",
        "two_node",
        "wait_for_all",
        "expected_votes",
        "arbiter",
    ];
}

#[derive(Debug, Deserialize)]
pub struct RawArbiter {
    pub etcd: Field<RawEtcd>,
    #[serde(flatten)]
    pub unknown: Unknown,
}

impl RawArbiter {
    pub const KEYS: &'static [&'static str] = &["etcd"];
}

#[derive(Debug, Deserialize)]
pub struct RawEtcd {
    pub endpoints: Field<Vec<String>>,
    pub prefix: Field<String>,
    pub tls: Field<RawEtcdTls>,
    pub user: Field<String>,
    pub password_file: Field<String>,
    pub ttl: Field<RawDuration>,
    pub min_ttl: Field<RawDuration>,
    #[serde(flatten)]
    pub unknown: Unknown,
}

impl RawEtcd {
    pub const KEYS: &'static [&'static str] = &[
        "endpoints",
        "prefix",
        "tls",
        "user",
        "password_file",
        "ttl",
        "min_ttl",
    ];
}

#[derive(Debug, Deserialize)]
pub struct RawEtcdTls {
    pub ca: Field<String>,
    pub cert: Field<String>,
    pub key: Field<String>,
    #[serde(flatten)]
    pub unknown: Unknown,
}

impl RawEtcdTls {
    pub const KEYS: &'static [&'static str] = &["ca", "cert", "key"];
}

#[derive(Debug, Deserialize)]
pub struct RawFencing {
    pub policy: Field<String>,
    pub retry_interval: Field<RawDuration>,
    pub self_fence: Field<String>,
    pub agents: Field<Vec<Lenient<RawFenceAgent>>>,
    #[serde(flatten)]
    pub unknown: Unknown,
}

impl RawFencing {
    pub const KEYS: &'static [&'static str] = &["policy", "retry_interval", "self_fence", "agents"];
}

#[derive(Debug, Deserialize)]
pub struct RawFenceAgent {
    pub name: Field<String>,
    pub agent: Field<String>,
    pub params: Field<BTreeMap<String, Lenient<ScalarText>>>,
    pub params_file: Field<String>,
    pub nodes: Field<Vec<String>>,
    #[serde(flatten)]
    pub unknown: Unknown,
}

impl RawFenceAgent {
    pub const KEYS: &'static [&'static str] = &["name", "agent", "params", "params_file", "nodes"];
}

#[derive(Debug, Deserialize)]
pub struct RawGroup {
    pub name: Field<String>,
    pub prefer: Field<String>,
    pub nodes: Field<Vec<String>>,
    pub failback: Field<bool>,
    pub failback_delay: Field<RawDuration>,
    pub monitor_interval: Field<RawDuration>,
    pub migration_threshold: Field<u32>,
    pub failure_timeout: Field<RawDuration>,
    pub on_fail: Field<String>,
    pub notify: Field<Vec<String>>,
    pub resources: Field<Vec<Lenient<RawResource>>>,
    #[serde(flatten)]
    pub unknown: Unknown,
}

impl RawGroup {
    pub const KEYS: &'static [&'static str] = &[
        "name",
        "prefer",
        "nodes",
        "failback",
        "failback_delay",
        "monitor_interval",
        "migration_threshold",
        "failure_timeout",
        "on_fail",
        "notify",
        "resources",
    ];
}

/// One resource: a single-key mapping whose key is its kind (`vip: {...}`).
#[derive(Debug)]
pub enum RawResource {
    Vip(Lenient<RawVip>),
    Exec(Lenient<RawExec>),
    Lsb(Lenient<RawLsb>),
    Ocf(Lenient<RawOcf>),
    Systemd(Lenient<RawSystemd>),
}

impl RawResource {
    pub const KINDS: &'static [&'static str] = &["vip", "exec", "lsb", "ocf", "systemd"];
}

impl<'de> Deserialize<'de> for RawResource {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde_yaml::Value;
        let value = Value::deserialize(d)?;
        let shape = || {
            de::Error::custom(
                "expected a single-key mapping naming the resource kind, like `vip: { ... }` \
                 (kinds: vip, exec, lsb, ocf, systemd)",
            )
        };
        let Value::Mapping(map) = value else {
            return Err(shape());
        };
        if map.len() != 1 {
            return Err(shape());
        }
        let Some((Value::String(kind), body)) = map.into_iter().next() else {
            return Err(shape());
        };
        fn body_of<T: DeserializeOwned>(body: Value) -> Lenient<T> {
            Lenient(serde_yaml::from_value(body).map_err(|e| e.to_string()))
        }
        Ok(match kind.as_str() {
            "vip" => RawResource::Vip(body_of(body)),
            "exec" => RawResource::Exec(body_of(body)),
            "lsb" => RawResource::Lsb(body_of(body)),
            "ocf" => RawResource::Ocf(body_of(body)),
            "systemd" => RawResource::Systemd(body_of(body)),
            other => {
                return Err(de::Error::custom(format!(
                    "unknown resource kind `{other}`, expected one of: {}",
                    RawResource::KINDS.join(", ")
                )))
            }
        })
    }
}

#[derive(Debug, Deserialize)]
pub struct RawVip {
    pub name: Field<String>,
    pub address: Field<String>,
    pub interface: Field<String>,
    pub label: Field<String>,
    pub garp_count: Field<u32>,
    pub garp_interval: Field<RawDuration>,
    pub garp_refresh: Field<RawDuration>,
    pub timeout: Field<RawDuration>,
    #[serde(flatten)]
    pub unknown: Unknown,
}

impl RawVip {
    pub const KEYS: &'static [&'static str] = &[
        "name",
        "address",
        "interface",
        "label",
        "garp_count",
        "garp_interval",
        "garp_refresh",
        "timeout",
    ];
}

#[derive(Debug, Deserialize)]
pub struct RawExec {
    pub name: Field<String>,
    pub start: Field<String>,
    pub stop: Field<String>,
    pub monitor: Field<String>,
    pub promotable: Field<bool>,
    pub promote: Field<String>,
    pub demote: Field<String>,
    pub timeout: Field<RawDuration>,
    #[serde(flatten)]
    pub unknown: Unknown,
}

impl RawExec {
    pub const KEYS: &'static [&'static str] = &[
        "name",
        "start",
        "stop",
        "monitor",
        "promotable",
        "promote",
        "demote",
        "timeout",
    ];
}

#[derive(Debug, Deserialize)]
pub struct RawLsb {
    pub name: Field<String>,
    pub timeout: Field<RawDuration>,
    #[serde(flatten)]
    pub unknown: Unknown,
}

impl RawLsb {
    pub const KEYS: &'static [&'static str] = &["name", "timeout"];
}

#[derive(Debug, Deserialize)]
pub struct RawOcf {
    pub name: Field<String>,
    pub agent: Field<String>,
    pub params: Field<BTreeMap<String, Lenient<ScalarText>>>,
    pub promotable: Field<bool>,
    pub timeout: Field<RawDuration>,
    #[serde(flatten)]
    pub unknown: Unknown,
}

impl RawOcf {
    pub const KEYS: &'static [&'static str] = &["name", "agent", "params", "promotable", "timeout"];
}

#[derive(Debug, Deserialize)]
pub struct RawSystemd {
    pub unit: Field<String>,
    pub name: Field<String>,
    pub timeout: Field<RawDuration>,
    #[serde(flatten)]
    pub unknown: Unknown,
}

impl RawSystemd {
    pub const KEYS: &'static [&'static str] = &["unit", "name", "timeout"];
}

/// One health check: exactly one of `ping` and `script`.
#[derive(Debug, Deserialize)]
pub struct RawCheck {
    pub name: Field<String>,
    pub ping: Field<Vec<Lenient<String>>>,
    pub script: Field<String>,
    pub interval: Field<RawDuration>,
    pub timeout: Field<RawDuration>,
    pub fall: Field<u32>,
    pub rise: Field<u32>,
    pub nodes: Field<Vec<String>>,
    #[serde(flatten)]
    pub unknown: Unknown,
}

impl RawCheck {
    pub const KEYS: &'static [&'static str] = &[
        "name", "ping", "script", "interval", "timeout", "fall", "rise", "nodes",
    ];
}

#[derive(Debug, Deserialize)]
pub struct RawMetrics {
    pub listen: Field<String>,
    #[serde(flatten)]
    pub unknown: Unknown,
}

impl RawMetrics {
    pub const KEYS: &'static [&'static str] = &["listen"];
}

#[derive(Debug, Deserialize)]
pub struct RawWatchdog {
    pub device: Field<String>,
    pub timeout: Field<RawDuration>,
    #[serde(flatten)]
    pub unknown: Unknown,
}

impl RawWatchdog {
    pub const KEYS: &'static [&'static str] = &["device", "timeout"];
}

/// A YAML error that stopped the parse: malformed text, or a top level that is not a
/// mapping.
#[derive(Debug)]
pub struct SyntaxError {
    pub line: Option<usize>,
    pub column: Option<usize>,
    pub message: String,
}

/// Parses the text into raw structs. Fails only on malformed YAML.
pub fn parse(text: &str) -> Result<RawConfig, SyntaxError> {
    let has_content = text.lines().any(|l| {
        let l = l.trim();
        !l.is_empty() && !l.starts_with('#') && l != "---"
    });
    if !has_content {
        return Err(SyntaxError {
            line: None,
            column: None,
            message: "the file has no settings (only blank lines or comments)".into(),
        });
    }
    serde_yaml::from_str::<RawConfig>(text).map_err(|e| {
        let location = e.location();
        let mut message = humanize(&e.to_string());
        // serde_yaml appends " at line L column C"; we report the location ourselves.
        if let Some(cut) = message.find(" at line ") {
            message.truncate(cut);
        }
        let line = location.as_ref().map(|l| l.line());
        let has_tab = line
            .and_then(|n| text.lines().nth(n.saturating_sub(1)))
            .is_some_and(|l| l.contains('\t'));
        if has_tab {
            message.push_str(" (YAML does not allow tabs for indentation: use spaces)");
        }
        SyntaxError {
            line,
            column: location.as_ref().map(|l| l.column()),
            message,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrong_type_is_kept_as_field_error() {
        let raw = parse("heartbeat:\n  port: banana\n  interval: 1s\n").unwrap();
        let hb = raw.heartbeat.unwrap().0.unwrap();
        let err = hb.port.unwrap().0.unwrap_err();
        assert!(err.contains("expected u16"), "{err}");
        assert_eq!(
            hb.interval.unwrap().0.unwrap(),
            RawDuration::Text("1s".into())
        );
    }

    #[test]
    fn unknown_keys_are_collected() {
        let raw = parse("bogus: 1\nheartbeat:\n  intreval: 1s\n").unwrap();
        assert!(raw.unknown.contains_key(&AnyKey("bogus".into())));
        let hb = raw.heartbeat.unwrap().0.unwrap();
        assert!(hb.unknown.contains_key(&AnyKey("intreval".into())));
    }

    #[test]
    fn messages_do_not_name_rust_types() {
        let raw = parse("nodes:\n  - alpha\n").unwrap();
        let nodes = raw.nodes.unwrap().0.unwrap();
        let err = nodes.into_iter().next().unwrap().0.unwrap_err();
        assert!(err.contains("expected a mapping"), "{err}");
        assert!(!err.contains("Raw"), "{err}");
        let top = parse("- a\n").unwrap_err();
        assert!(top.message.contains("expected a mapping"), "{top:?}");
    }

    #[test]
    fn syntax_error_has_location() {
        let e = parse("cluster:\n  name: [unclosed\n").unwrap_err();
        assert!(e.line.is_some(), "{e:?}");
        assert!(!e.message.contains(" at line "), "{e:?}");
    }

    #[test]
    fn resource_kinds() {
        let raw = parse(
            "groups:\n- resources:\n  - vip: { address: 192.0.2.1/24 }\n  - nope: {}\n  - 5\n",
        )
        .unwrap();
        let groups = raw.groups.unwrap().0.unwrap();
        let g = groups.into_iter().next().unwrap().0.unwrap();
        let res = g.resources.unwrap().0.unwrap();
        assert!(matches!(res[0].0, Ok(RawResource::Vip(_))));
        assert!(res[1]
            .0
            .as_ref()
            .unwrap_err()
            .contains("unknown resource kind `nope`"));
        assert!(res[2].0.as_ref().unwrap_err().contains("single-key"));
    }

    #[test]
    fn params_render_scalars() {
        let raw = parse(
            "fencing:\n  agents:\n  - params: { port: 623, lanplus: true, ip: x, bad: [1] }\n",
        )
        .unwrap();
        let f = raw.fencing.unwrap().0.unwrap();
        let a = f
            .agents
            .unwrap()
            .0
            .unwrap()
            .into_iter()
            .next()
            .unwrap()
            .0
            .unwrap();
        let p = a.params.unwrap().0.unwrap();
        assert_eq!(p["port"].0, Ok(ScalarText("623".into())));
        assert_eq!(p["lanplus"].0, Ok(ScalarText("true".into())));
        assert!(p["bad"].0.is_err());
    }
}
