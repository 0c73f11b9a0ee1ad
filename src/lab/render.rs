//! Pure text generation for the lab: per-node tandem config YAML, the switch's nftables
//! ruleset and the namespace naming scheme. Kept free of I/O so the exact output can be
//! unit-tested without root.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;
use std::time::Duration;

use super::{LabError, LabSpec};

/// Every lab object name starts with this, followed by the creating process id, so
/// `cleanup_stale` can tell abandoned labs (dead pid) from live ones.
pub const NAME_PREFIX: &str = "tdm";
/// The heartbeat port of every lab node (and of its report channel, over TCP).
pub const PORT: u16 = crate::config::defaults::HEARTBEAT_PORT;

/// Top-level sections of the config that `extra_yaml` may replace wholesale.
const OVERRIDABLE_SECTIONS: &[&str] = &["heartbeat", "quorum", "groups", "fencing"];

/// `tdm{pid}-{counter}`: unique per process and per lab within the process.
pub fn lab_prefix(pid: u32, counter: u32) -> String {
    format!("{NAME_PREFIX}{pid}-{counter}")
}

/// Parses a namespace name created by a lab and returns the pid of its creator.
/// Accepts exactly `tdm{pid}-{counter}-{n<i>|sw|cl}`; anything else is not ours.
pub fn creator_pid(ns_name: &str) -> Option<u32> {
    let rest = ns_name.strip_prefix(NAME_PREFIX)?;
    let mut parts = rest.splitn(3, '-');
    let pid = parts.next()?;
    let counter = parts.next()?;
    let role = parts.next()?;
    let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !all_digits(pid) || !all_digits(counter) {
        return None;
    }
    let role_ok = role == "sw" || role == "cl" || role.strip_prefix('n').is_some_and(all_digits);
    if !role_ok {
        return None;
    }
    pid.parse().ok()
}

/// Address of `node` (1-based) on `link` (0-based).
pub fn node_address(ipv6: bool, node: usize, link: usize) -> IpAddr {
    host_address(ipv6, link, node as u16)
}

/// The client namespace's address on link 0.
pub fn client_address(ipv6: bool) -> IpAddr {
    host_address(ipv6, 0, 200)
}

fn host_address(ipv6: bool, link: usize, host: u16) -> IpAddr {
    if ipv6 {
        // 2001:db8:{link}::{host}; `host` is written in hex digits that read like the
        // decimal index (n12 -> ::12) so addresses are easy to recognise in captures.
        let readable = u16::from_str_radix(&host.to_string(), 16).unwrap_or(host);
        IpAddr::V6(Ipv6Addr::new(
            0x2001,
            0x0db8,
            link as u16,
            0,
            0,
            0,
            0,
            readable,
        ))
    } else {
        let host = host as u8;
        match link {
            0 => IpAddr::V4(Ipv4Addr::new(192, 0, 2, host)),
            _ => IpAddr::V4(Ipv4Addr::new(198, 51, 100, host)),
        }
    }
}

/// Prefix length of every lab subnet.
pub fn prefix_len(ipv6: bool) -> u8 {
    if ipv6 {
        64
    } else {
        24
    }
}

/// Name of the switch-side veth end of `node` on `link`.
pub fn switch_port(link: usize, node: usize) -> String {
    format!("l{link}n{node}")
}

/// Name of the switch-side veth end of the client (link 0 only).
pub const CLIENT_PORT: &str = "l0cl";

/// The node's name in the cluster config.
pub fn node_name(node: usize) -> String {
    format!("n{node}")
}

/// Checks the spec's shape; the errors name the offending field.
pub fn validate(spec: &LabSpec) -> Result<(), LabError> {
    let bad = |m: String| Err(LabError::Spec(m));
    if spec.nodes == 0 || spec.nodes > 99 {
        return bad(format!("nodes must be 1..=99, got {}", spec.nodes));
    }
    if spec.links == 0 || spec.links > 9 {
        return bad(format!("links must be 1..=9, got {}", spec.links));
    }
    if !spec.ipv6 && spec.links > 2 {
        // Only 192.0.2.0/24 and 198.51.100.0/24 are ours to use for IPv4.
        return bad(format!(
            "an IPv4 lab has at most 2 links (192.0.2.0/24, 198.51.100.0/24); got {}; use ipv6",
            spec.links
        ));
    }
    for &w in &spec.witnesses {
        if w == 0 || w > spec.nodes {
            return bad(format!(
                "witness index {w} is not a node (nodes are 1..={})",
                spec.nodes
            ));
        }
    }
    for &(node, link) in &spec.absent_links {
        if node == 0 || node > spec.nodes || link >= spec.links {
            return bad(format!(
                "absent link ({node}, {link}) is not a (node, link) of this lab"
            ));
        }
    }
    if spec.interval.is_zero() || spec.deadtime <= spec.interval {
        return bad(format!(
            "need 0 < interval < deadtime, got interval {:?}, deadtime {:?}",
            spec.interval, spec.deadtime
        ));
    }
    Ok(())
}

/// Top-level keys defined by a YAML fragment (lines starting in column 0 with `key:`).
pub fn top_level_keys(yaml: &str) -> BTreeSet<String> {
    yaml.lines()
        .filter(|l| {
            !l.is_empty()
                && !l.starts_with(char::is_whitespace)
                && !l.starts_with('#')
                && !l.starts_with('-')
        })
        .filter_map(|l| l.split_once(':').map(|(k, _)| k.trim().to_string()))
        .filter(|k| !k.is_empty())
        .collect()
}

/// A YAML scalar for `s`: plain when obviously safe, otherwise a JSON string (which is a
/// valid YAML double-quoted scalar).
fn yaml_scalar(s: &str) -> String {
    let plain = !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'.' | b'_' | b'-'));
    if plain {
        s.to_string()
    } else {
        serde_json::to_string(s).unwrap_or_else(|_| format!("\"{s}\""))
    }
}

fn duration_yaml(d: Duration) -> String {
    format!("{}ms", d.as_millis())
}

/// The node's election priority: n1 is preferred, then n2, ... so tests can predict the
/// initial owner. Witnesses never own, so they get none.
pub fn priority(node: usize) -> u32 {
    100u32
        .saturating_sub(10 * (node as u32).saturating_sub(1))
        .max(1)
}

/// Renders the cluster config shared by every node (the node picks itself with `--node`).
/// The lab's self-fence command: powers off the lab node it runs in, not the machine.
pub fn lab_self_fence() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("resources/lab_self_fence")
}

/// Whether `fencing.self_fence` in `extra` is set to something other than reboot or
/// poweroff.
fn lab_safe_self_fence(extra: &str) -> bool {
    let Ok(v) = serde_yaml::from_str::<serde_yaml::Value>(extra) else {
        // Broken YAML is reported by the daemon's config check with its position.
        return true;
    };
    match v.get("fencing").and_then(|f| f.get("self_fence")) {
        Some(serde_yaml::Value::String(s)) => s != "reboot" && s != "poweroff",
        _ => false,
    }
}

/// What a lab config says when the programs it runs live in a tree a non-root user can
/// change (a developer's checkout built as that user, run with sudo): tandemd would
/// refuse them as unsafe scripts, and the lab's own programs are the point of a lab.
const UNTRUSTED_BUILD_TREE: &str = "\
# The lab runs programs from a build tree that a non-root user can change; tandemd
# refuses such scripts unless told otherwise (docs/configuration.md, `security`).
security:
  allow_unsafe_scripts: true
";

/// The programs every lab config may run: its self-fence and the binaries beside this
/// one (the demo's service is `tandem-lab demo-service`).
fn lab_programs() -> Vec<std::path::PathBuf> {
    vec![lab_self_fence(), super::default_binary("tandem-lab")]
}

/// Whether anyone but root could change one of `programs` (or a directory above it).
fn build_tree_is_untrusted(programs: &[std::path::PathBuf]) -> bool {
    programs
        .iter()
        .any(|p| crate::config::trust::script_risk(p).is_some())
}

pub fn render_config(spec: &LabSpec, authkey: &Path) -> Result<String, LabError> {
    let overridden = top_level_keys(&spec.extra_yaml);
    for fixed in ["cluster", "nodes"] {
        if overridden.contains(fixed) {
            return Err(LabError::Spec(format!(
                "extra_yaml may not redefine `{fixed}` (the lab owns it); it may replace {}",
                OVERRIDABLE_SECTIONS.join(", ")
            )));
        }
    }
    let authkey = authkey.to_str().ok_or_else(|| {
        LabError::Spec(format!("authkey path {} is not UTF-8", authkey.display()))
    })?;

    let mut y = String::new();
    let _ = writeln!(
        y,
        "cluster:\n  name: lab\n  authkey: {}",
        yaml_scalar(authkey)
    );
    y.push_str("nodes:\n");
    for node in 1..=spec.nodes {
        let addrs: Vec<String> = (0..spec.links)
            .map(|l| {
                let a = node_address(spec.ipv6, node, l).to_string();
                if !spec.on_link(node, l) {
                    "null".to_string()
                } else if spec.ipv6 {
                    format!("\"{a}\"")
                } else {
                    a
                }
            })
            .collect();
        let ifaces: Vec<String> = (0..spec.links)
            .map(|l| {
                if spec.on_link(node, l) {
                    format!("eth{l}")
                } else {
                    "null".to_string()
                }
            })
            .collect();
        let _ = writeln!(y, "  - name: {}", node_name(node));
        let _ = writeln!(y, "    addresses: [{}]", addrs.join(", "));
        let _ = writeln!(y, "    interfaces: [{}]", ifaces.join(", "));
        if spec.witnesses.contains(&node) {
            y.push_str("    witness: true\n");
        } else {
            let _ = writeln!(y, "    priority: {}", priority(node));
        }
    }
    if !overridden.contains("heartbeat") {
        let _ = writeln!(
            y,
            "heartbeat:\n  port: {PORT}\n  interval: {}\n  deadtime: {}",
            duration_yaml(spec.interval),
            duration_yaml(spec.deadtime)
        );
    }
    if !overridden.contains("quorum") {
        y.push_str("quorum:\n  no_quorum_policy: stop\n");
    }
    if !overridden.contains("groups") {
        y.push_str("groups: []\n");
    }
    // `reboot` or `poweroff` would act on the machine that hosts the whole lab.
    if overridden.contains("fencing") {
        if !lab_safe_self_fence(&spec.extra_yaml) {
            return Err(LabError::Spec(format!(
                "extra_yaml's `fencing:` must set `self_fence:` to `none` or a command such as \
                 {}: `reboot`/`poweroff` (the default) would act on this whole machine",
                lab_self_fence().display()
            )));
        }
    } else {
        let _ = writeln!(
            y,
            "fencing:\n  self_fence: {}",
            yaml_scalar(&lab_self_fence().to_string_lossy())
        );
    }
    if !overridden.contains("security") && build_tree_is_untrusted(&lab_programs()) {
        y.push_str(UNTRUSTED_BUILD_TREE);
    }
    if !spec.extra_yaml.is_empty() {
        y.push_str(&spec.extra_yaml);
        if !spec.extra_yaml.ends_with('\n') {
            y.push('\n');
        }
    }
    Ok(y)
}

/// Name of the nftables table the lab owns in the switch namespace.
pub const SWITCH_TABLE: &str = "tandemlab";

/// The complete switch ruleset for the current faults, as one atomic `nft -f` script.
///
/// Faults are enforced on the bridges (family `bridge`, forward hook) rather than in the
/// nodes: every ethertype is dropped (ARP and NDP too, so a cut link is really cut), and
/// the sender sees silent loss like a broken cable, not the EPERM a local output rule
/// would return from `sendto`.
///
/// `loss_percent` > 0 drops that share of the frames between nodes at random (`numgen
/// random`), on every link; the client's own traffic is left alone, so a client-side
/// observer measures the cluster rather than the loss.
pub fn render_switch_rules(
    links: usize,
    cuts: &BTreeSet<(usize, usize)>,
    partition: &[Vec<usize>],
    loss_percent: u8,
) -> String {
    let mut rules = Vec::new();
    for &(node, link) in cuts {
        let port = switch_port(link, node);
        rules.push(format!("iifname \"{port}\" drop"));
        rules.push(format!("oifname \"{port}\" drop"));
    }
    for (i, side) in partition.iter().enumerate() {
        for (j, other) in partition.iter().enumerate() {
            if i == j {
                continue;
            }
            for &a in side {
                for &b in other {
                    for link in 0..links {
                        rules.push(format!(
                            "iifname \"{}\" oifname \"{}\" drop",
                            switch_port(link, a),
                            switch_port(link, b)
                        ));
                    }
                }
            }
        }
    }
    if loss_percent > 0 {
        rules.push(format!(
            "iifname != \"{CLIENT_PORT}\" oifname != \"{CLIENT_PORT}\" numgen random mod 100 < {} drop",
            loss_percent.min(100)
        ));
    }
    // "table; delete table; table {..}" replaces the whole table in one transaction and
    // works whether or not it existed before.
    let mut s = format!("table bridge {SWITCH_TABLE}\ndelete table bridge {SWITCH_TABLE}\n");
    let _ = writeln!(s, "table bridge {SWITCH_TABLE} {{");
    s.push_str("  chain labforward {\n    type filter hook forward priority 0; policy accept;\n");
    for r in rules {
        let _ = writeln!(s, "    {r}");
    }
    s.push_str("  }\n}\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    /// A program a non-root user owns makes the lab say `allow_unsafe_scripts`; one
    /// root owns in a root-owned directory does not.
    #[test]
    fn programs_in_a_tree_others_can_change_are_declared_unsafe_on_purpose() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("SKIP: needs root to chown");
            return;
        }
        let dir = std::env::temp_dir().join(format!("tandem-lab-trust-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let root_owned = dir.join("root-owned");
        let user_owned = dir.join("user-owned");
        for p in [&root_owned, &user_owned] {
            std::fs::write(p, "#!/bin/sh\n").expect("write");
        }
        let nobody = nix::unistd::Uid::from_raw(65534);
        nix::unistd::chown(&user_owned, Some(nobody), None).expect("chown");
        assert!(!build_tree_is_untrusted(std::slice::from_ref(&root_owned)));
        assert!(build_tree_is_untrusted(&[root_owned, user_owned]));
        let _ = std::fs::remove_dir_all(&dir);
    }

    fn spec() -> LabSpec {
        LabSpec {
            nodes: 3,
            witnesses: vec![3],
            tandemd: PathBuf::from("/x/tandemd"),
            tandemctl: PathBuf::from("/x/tandemctl"),
            ..LabSpec::default()
        }
    }

    #[test]
    fn creator_pid_parses_only_lab_names() {
        assert_eq!(creator_pid("tdm1234-0-n1"), Some(1234));
        assert_eq!(creator_pid("tdm77-12-sw"), Some(77));
        assert_eq!(creator_pid("tdm77-12-cl"), Some(77));
        assert_eq!(creator_pid(&format!("{}-n12", lab_prefix(9, 3))), Some(9));
        for bad in [
            "tdm-1-n1",
            "tdm1-n1",
            "tdm1-2-x",
            "tdm1-2-n",
            "tdmx-2-sw",
            "foo1-2-sw",
            "tdm1-2-n1x",
        ] {
            assert_eq!(creator_pid(bad), None, "{bad}");
        }
    }

    #[test]
    fn addresses_follow_the_plan() {
        assert_eq!(node_address(false, 1, 0).to_string(), "192.0.2.1");
        assert_eq!(node_address(false, 3, 1).to_string(), "198.51.100.3");
        assert_eq!(client_address(false).to_string(), "192.0.2.200");
        assert_eq!(node_address(true, 2, 0).to_string(), "2001:db8::2");
        assert_eq!(node_address(true, 12, 1).to_string(), "2001:db8:1::12");
        assert_eq!(client_address(true).to_string(), "2001:db8::200");
    }

    #[test]
    fn config_has_the_agreed_schema() {
        let y = render_config(&spec(), Path::new("/tmp/lab/authkey")).unwrap();
        let v: serde_yaml::Value = serde_yaml::from_str(&y).unwrap();
        assert_eq!(v["cluster"]["name"].as_str(), Some("lab"));
        assert_eq!(v["cluster"]["authkey"].as_str(), Some("/tmp/lab/authkey"));
        let nodes = v["nodes"].as_sequence().unwrap();
        assert_eq!(nodes.len(), 3);
        assert_eq!(nodes[0]["name"].as_str(), Some("n1"));
        assert_eq!(nodes[0]["addresses"][1].as_str(), Some("198.51.100.1"));
        assert_eq!(nodes[0]["interfaces"][0].as_str(), Some("eth0"));
        assert_eq!(nodes[0]["priority"].as_u64(), Some(100));
        assert_eq!(nodes[1]["priority"].as_u64(), Some(90));
        assert_eq!(nodes[2]["witness"].as_bool(), Some(true));
        assert!(nodes[2].get("priority").is_none());
        assert_eq!(v["heartbeat"]["port"].as_u64(), Some(5405));
        assert_eq!(v["heartbeat"]["interval"].as_str(), Some("100ms"));
        assert_eq!(v["heartbeat"]["deadtime"].as_str(), Some("1000ms"));
        assert_eq!(v["quorum"]["no_quorum_policy"].as_str(), Some("stop"));
        assert!(v["groups"].as_sequence().unwrap().is_empty());
        let self_fence = v["fencing"]["self_fence"].as_str().unwrap();
        assert!(
            self_fence.ends_with("resources/lab_self_fence"),
            "{self_fence}"
        );
    }

    #[test]
    fn a_node_absent_from_a_link_has_null_address_and_interface_there() {
        let partial = LabSpec {
            absent_links: vec![(3, 1)],
            ..spec()
        };
        let y = render_config(&partial, Path::new("/tmp/lab/authkey")).unwrap();
        let v: serde_yaml::Value = serde_yaml::from_str(&y).unwrap();
        let w = &v["nodes"][2];
        assert_eq!(w["addresses"][0].as_str(), Some("192.0.2.3"));
        assert!(w["addresses"][1].is_null(), "{y}");
        assert!(w["interfaces"][1].is_null(), "{y}");
        assert!(v["nodes"][0]["addresses"][1].as_str().is_some());
        let bad = LabSpec {
            absent_links: vec![(4, 0)],
            ..spec()
        };
        assert!(validate(&bad).is_err());
    }

    #[test]
    fn a_fencing_section_that_would_reboot_the_machine_is_refused() {
        let mut s = spec();
        for fencing in ["fencing: {}\n", "fencing:\n  self_fence: reboot\n"] {
            s.extra_yaml = fencing.into();
            let err = render_config(&s, Path::new("/tmp/k")).expect_err(fencing);
            assert!(err.to_string().contains("self_fence"), "{err}");
        }
        s.extra_yaml = "fencing:\n  self_fence: none\n".into();
        assert!(render_config(&s, Path::new("/tmp/k")).is_ok());
    }

    #[test]
    fn extra_yaml_replaces_sections_without_duplicate_keys() {
        let mut s = spec();
        s.extra_yaml = "quorum:\n  no_quorum_policy: ignore\n  two_node: true\ngroups:\n  - name: web\n    resources: []\nfencing: { self_fence: none }\n".into();
        let y = render_config(&s, Path::new("/tmp/k")).unwrap();
        assert_eq!(y.matches("\nquorum:").count(), 1, "{y}");
        assert_eq!(y.matches("\ngroups:").count(), 1, "{y}");
        let v: serde_yaml::Value = serde_yaml::from_str(&y).unwrap();
        assert_eq!(v["quorum"]["no_quorum_policy"].as_str(), Some("ignore"));
        assert_eq!(v["groups"][0]["name"].as_str(), Some("web"));
        assert!(v["fencing"].is_mapping());
        assert_eq!(v["heartbeat"]["port"].as_u64(), Some(5405));

        s.extra_yaml = "nodes: []\n".into();
        assert!(matches!(
            render_config(&s, Path::new("/tmp/k")),
            Err(LabError::Spec(_))
        ));
    }

    #[test]
    fn ipv6_config_parses() {
        let mut s = spec();
        s.ipv6 = true;
        s.links = 3;
        let y = render_config(&s, Path::new("/tmp/a b/authkey")).unwrap();
        let v: serde_yaml::Value = serde_yaml::from_str(&y).unwrap();
        assert_eq!(
            v["nodes"][1]["addresses"][2].as_str(),
            Some("2001:db8:2::2")
        );
        assert_eq!(v["cluster"]["authkey"].as_str(), Some("/tmp/a b/authkey"));
    }

    #[test]
    fn validate_rejects_bad_specs() {
        assert!(validate(&spec()).is_ok());
        let mut s = spec();
        s.links = 3;
        assert!(validate(&s).is_err());
        s.ipv6 = true;
        assert!(validate(&s).is_ok());
        let mut s = spec();
        s.witnesses = vec![4];
        assert!(validate(&s).is_err());
        let mut s = spec();
        s.nodes = 0;
        assert!(validate(&s).is_err());
        let mut s = spec();
        s.deadtime = s.interval;
        assert!(validate(&s).is_err());
    }

    #[test]
    fn switch_rules_cover_cuts_and_partitions() {
        let cuts: BTreeSet<_> = [(1, 0)].into_iter().collect();
        let r = render_switch_rules(2, &cuts, &[vec![1], vec![2, 3]], 0);
        assert!(r.contains("iifname \"l0n1\" drop"));
        assert!(r.contains("oifname \"l0n1\" drop"));
        assert!(r.contains("iifname \"l1n1\" oifname \"l1n3\" drop"));
        assert!(r.contains("iifname \"l0n3\" oifname \"l0n1\" drop"));
        assert!(!r.contains("iifname \"l0n2\" oifname \"l0n3\""));
        let empty = render_switch_rules(2, &BTreeSet::new(), &[], 0);
        assert!(!empty.contains("drop"));
        let lossy = render_switch_rules(2, &BTreeSet::new(), &[], 30);
        assert!(
            lossy.contains(
                "iifname != \"l0cl\" oifname != \"l0cl\" numgen random mod 100 < 30 drop"
            ),
            "{lossy}"
        );
    }
}
