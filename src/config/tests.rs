//! Unit tests of the whole load path: one test (or a few) per validation rule, each
//! starting from the shipped example and changing one thing.

use super::locate::Locator;
use super::*;
use crate::core::ids::{GroupId, NodeId};
use crate::core::spec::{FenceMode, NoQuorumPolicy, OnFail};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

const EXAMPLE: &str = include_str!("../../etc/tandem.yaml");

fn temp_path(tag: &str) -> PathBuf {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    std::env::temp_dir().join(format!("tandem-cfg-{}-{tag}-{n}", std::process::id()))
}

static SHARED_KEY: OnceLock<PathBuf> = OnceLock::new();

extern "C" fn remove_shared_key() {
    if let Some(p) = SHARED_KEY.get() {
        let _ = std::fs::remove_file(p);
    }
}

/// One valid key file shared by the tests that do not test keys. A static is never
/// dropped, so the file is removed when the test process exits.
fn shared_key() -> &'static PathBuf {
    SHARED_KEY.get_or_init(|| {
        let p = temp_path("shared-key");
        write_key(&p, &generate_key(), false).expect("write test key");
        // SAFETY: registers a plain function without arguments; it only reads a
        // OnceLock that is set by then and removes a file.
        unsafe { libc::atexit(remove_shared_key) };
        p
    })
}

/// The shipped example with its authkey pointing at a real key file.
fn example() -> String {
    EXAMPLE.replace("/etc/tandem/authkey", &shared_key().display().to_string())
}

fn load_text(text: &str) -> Result<Config, ConfigErrors> {
    parse_str(text, "test.yaml")
}

fn ok(text: &str) -> Config {
    match load_text(text) {
        Ok(c) => c,
        Err(e) => panic!("expected the config to load, got:\n{e}"),
    }
}

/// The errors of a config that must fail.
fn errs(text: &str) -> Vec<ConfigError> {
    match load_text(text) {
        Ok(_) => panic!("expected errors, config loaded:\n{text}"),
        Err(e) => e.0,
    }
}

/// Asserts that some error has this path and a message containing `needle`.
fn has(errors: &[ConfigError], path: &str, needle: &str) {
    assert!(
        errors
            .iter()
            .any(|e| e.path.as_deref() == Some(path) && e.message.contains(needle)),
        "no error at `{path}` containing `{needle}` in:\n{}",
        ConfigErrors(errors.to_vec())
    );
}

fn replace(text: &str, from: &str, to: &str) -> String {
    assert!(text.contains(from), "test bug: `{from}` not in text");
    text.replacen(from, to, 1)
}

#[test]
fn example_loads_with_defaults() {
    let c = ok(&example());
    assert_eq!(c.cluster.name, "web");
    assert_eq!(c.cluster.cluster_id, crate::core::ids::fnv1a64(b"web"));
    assert_eq!(c.nodes.len(), 3);
    assert_eq!(
        c.nodes.iter().map(|n| n.id).collect::<Vec<_>>(),
        [NodeId(1), NodeId(2), NodeId(3)]
    );
    assert_eq!(c.links(), 2);
    assert!(c.node_by_name("gamma").unwrap().witness);
    assert_eq!(c.node_by_name("beta").unwrap().priority, 90);
    assert_eq!(c.nodes[0].interfaces, vec![None, None]);
    let (h, t) = (&c.heartbeat, &c.heartbeat.timing);
    assert_eq!(
        (h.port, t.interval, t.deadtime),
        (5405, Duration::from_millis(100), Duration::from_secs(1))
    );
    assert_eq!(t.warntime, Duration::from_millis(500));
    assert_eq!(t.initdead, Duration::from_secs(2));
    assert_eq!(t.stop_before_lease_end, Duration::from_millis(500));
    assert_eq!(t.max_drift_ppm, 500);
    assert!(h.realtime && h.mlockall);
    assert_eq!(c.quorum.no_quorum_policy, NoQuorumPolicy::Stop);
    assert!(!c.quorum.two_node && !c.quorum.wait_for_all);
    assert_eq!(c.fencing.policy, FencePolicy::Needed);
    assert_eq!(c.fencing.self_fence, SelfFence::Reboot);
    let g = &c.groups[0];
    assert_eq!(g.id, GroupId::of_name("www"));
    assert_eq!(g.prefer, Some(NodeId(1)));
    assert_eq!(
        g.nodes,
        vec![NodeId(1), NodeId(2)],
        "witness excluded by default"
    );
    assert_eq!(g.migration_threshold, 3);
    assert_eq!(g.failure_timeout, Duration::from_secs(600));
    assert_eq!(g.resources[0].name, "vip-192.0.2.100");
    assert!(matches!(
        &g.resources[0].kind,
        ResourceKind::Vip { prefix: 24, garp_count: 5, interface, .. } if interface == "eth0"
    ));
    assert_eq!(g.resources[1].name, "app");
    assert_eq!(g.resources[1].timeout, Some(Duration::from_secs(20)));
    assert_eq!(c.keys.next, None);
}

#[test]
fn cluster_spec_maps_the_config() {
    let c = ok(&example());
    let spec = c.cluster_spec();
    assert_eq!(spec.links, 2);
    assert_eq!(spec.fencing.mode, FenceMode::Off);
    assert_eq!(spec.expected_votes(), 3);
    assert_eq!(spec.digest, c.digest());
    assert!(spec.node(NodeId(3)).unwrap().witness);
    let g = spec.group(GroupId::of_name("www")).unwrap();
    assert_eq!(
        g.resources,
        vec!["vip-192.0.2.100".to_string(), "app".to_string()]
    );
    assert_eq!(g.on_fail, OnFail::FenceSelf);
    assert_eq!(spec.timing.deadtime, Duration::from_secs(1));
}

#[test]
fn digest_is_stable_and_sensitive() {
    let a = ok(&example());
    let again = ok(&example());
    assert_eq!(a.digest(), again.digest());
    let commented = ok(&format!("# a new comment\n{}", example()));
    assert_eq!(a.digest(), commented.digest(), "comments are not semantic");
    let changed = ok(&replace(&example(), "priority: 90", "priority: 91"));
    assert_ne!(a.digest(), changed.digest());
    let changed = ok(&replace(&example(), "deadtime: 1s", "deadtime: 1500ms"));
    assert_ne!(a.digest(), changed.digest());
    // Same meaning, different spelling: same digest.
    let respelled = ok(&replace(&example(), "deadtime: 1s", "deadtime: 1000ms"));
    assert_eq!(a.digest(), respelled.digest());
}

#[test]
fn summary_mentions_the_essentials() {
    let s = ok(&example()).summary();
    for needle in [
        "web",
        "alpha",
        "gamma",
        "witness",
        "www",
        "vip-192.0.2.100",
        "deadtime 1s",
        "fencing: off",
    ] {
        assert!(s.contains(needle), "summary lacks `{needle}`:\n{s}");
    }
}

#[test]
fn key_bytes_never_in_debug() {
    let c = ok(&example());
    let hex: String = c.keys.current.iter().map(|b| format!("{b:02x}")).collect();
    let debug = format!("{c:?}");
    assert!(!debug.contains(&hex[..16]), "{debug}");
    assert!(debug.contains("redacted"));
    assert!(!debug.contains(&format!("{:?}", c.keys.current)));
}

#[test]
fn three_errors_are_all_reported() {
    let text = replace(&example(), "port: 5405", "port: banana");
    let text = replace(&text, "prefer: alpha", "prefer: delta");
    let text = replace(&text, "interval: 100ms", "interval: 2s");
    let e = errs(&text);
    assert_eq!(e.len(), 3, "{}", ConfigErrors(e.clone()));
    has(&e, "heartbeat.port", "expected u16");
    has(&e, "groups[0].prefer", "unknown node `delta`");
    has(&e, "heartbeat.interval", "deadtime");
    let port = e
        .iter()
        .find(|e| e.path.as_deref() == Some("heartbeat.port"))
        .unwrap();
    let line = text
        .lines()
        .position(|l| l.contains("port: banana"))
        .unwrap()
        + 1;
    assert_eq!(port.line, Some(line));
    assert_eq!(port.column, Some(9), "column of the value");
    let prefer = e
        .iter()
        .find(|e| e.path.as_deref() == Some("groups[0].prefer"))
        .unwrap();
    let line = text
        .lines()
        .position(|l| l.contains("prefer: delta"))
        .unwrap()
        + 1;
    assert_eq!(prefer.line, Some(line));
    // Sorted in file order.
    assert!(e.windows(2).all(|w| w[0].line <= w[1].line));
}

#[test]
fn error_display_format() {
    let text = replace(&example(), "port: 5405", "port: banana");
    let e = load_text(&text).unwrap_err();
    let shown = e.to_string();
    let line = text
        .lines()
        .position(|l| l.contains("port: banana"))
        .unwrap()
        + 1;
    assert!(
        shown.starts_with(&format!("test.yaml:{line}:9: heartbeat.port: ")),
        "{shown}"
    );
    assert_eq!(shown.lines().count(), 1);
}

#[test]
fn syntax_error_has_line_and_column() {
    let e = errs("cluster:\n  name: web\n nodes: [\n");
    assert_eq!(e.len(), 1);
    assert!(e[0].line.is_some() && e[0].column.is_some(), "{:?}", e[0]);
    assert_eq!(e[0].file, "test.yaml");
}

#[test]
fn top_level_must_be_a_mapping() {
    let e = errs("- a\n- b\n");
    assert_eq!(e.len(), 1);
    assert!(e[0].line.is_some(), "{:?}", e[0]);
}

#[test]
fn empty_file_is_an_error() {
    let e = errs("  \n# only a comment\n");
    assert_eq!(e.len(), 1);
    assert!(e[0].message.contains("no settings"), "{:?}", e[0]);
}

#[test]
fn unknown_keys_everywhere_with_suggestions() {
    let text = replace(&example(), "    priority: 90", "    priorty: 90");
    let text = replace(&text, "heartbeat:", "heartbeat:\n  intreval: 1s");
    let text = replace(&text, "interface: eth0 }", "interface: eth0, lable: x }");
    let text = format!("{text}\nbogus: 1\n");
    let e = errs(&text);
    has(&e, "nodes[1].priorty", "did you mean `priority`");
    has(&e, "heartbeat.intreval", "did you mean `interval`");
    has(
        &e,
        "groups[0].resources[0].vip.lable",
        "did you mean `label`",
    );
    has(&e, "bogus", "unknown key");
    assert_eq!(e.len(), 4, "{}", ConfigErrors(e.clone()));
    let lable = e
        .iter()
        .find(|e| e.path.as_deref() == Some("groups[0].resources[0].vip.lable"))
        .unwrap();
    assert!(lable.line.is_some());
}

#[test]
fn missing_sections_and_keys() {
    let e = errs("heartbeat:\n  port: 5405\n");
    assert!(e
        .iter()
        .any(|e| e.message.contains("missing required section `cluster`")));
    assert!(e
        .iter()
        .any(|e| e.message.contains("missing required section `nodes`")));
    let text = replace(&example(), "  name: web\n", "");
    has(&errs(&text), "cluster", "missing required key `name`");
}

#[test]
fn names_are_checked() {
    let text = replace(&example(), "name: web", "name: \"web cluster\"");
    has(&errs(&text), "cluster.name", "allowed are");
    let text = replace(
        &example(),
        "name: beta",
        "name: abcdefghijabcdefghijabcdefghijabc",
    );
    has(&errs(&text), "nodes[1].name", "1 to 32");
}

#[test]
fn node_names_and_ids_unique() {
    let text = replace(&example(), "name: beta", "name: alpha");
    has(&errs(&text), "nodes[1].name", "duplicate node name `alpha`");
    let text = replace(
        &example(),
        "    priority: 90",
        "    priority: 90\n    id: 1",
    );
    has(&errs(&text), "nodes[1].id", "already used by nodes[0]");
    let text = replace(
        &example(),
        "    priority: 90",
        "    priority: 90\n    id: 0",
    );
    has(&errs(&text), "nodes[1].id", "start at 1");
    let text = replace(
        &example(),
        "    priority: 90",
        "    priority: 90\n    id: 70000",
    );
    has(&errs(&text), "nodes[1].id", "u16");
    let c = ok(&replace(
        &example(),
        "    priority: 90",
        "    priority: 90\n    id: 42",
    ));
    assert_eq!(c.node_by_name("beta").unwrap().id, NodeId(42));
}

#[test]
fn addresses_are_checked() {
    let text = replace(&example(), "[192.0.2.2, 198.51.100.2]", "[192.0.2.2]");
    has(
        &errs(&text),
        "nodes[1].addresses",
        "one entry per heartbeat link (null for a link it is not on)",
    );
    let text = replace(
        &example(),
        "[192.0.2.2, 198.51.100.2]",
        "[192.0.2.2, \"2001:db8::2\"]",
    );
    has(&errs(&text), "nodes[1].addresses[1]", "one address family");
    let text = replace(
        &example(),
        "[192.0.2.2, 198.51.100.2]",
        "[192.0.2.2, 198.51.100.1]",
    );
    has(
        &errs(&text),
        "nodes[1].addresses[1]",
        "also used at nodes[0].addresses[1]",
    );
    let text = replace(
        &example(),
        "[192.0.2.2, 198.51.100.2]",
        "[192.0.2.2, 198.51.100.300]",
    );
    has(&errs(&text), "nodes[1].addresses[1]", "not an IPv4 or IPv6");
    let text = replace(&example(), "[192.0.2.2, 198.51.100.2]", "[]");
    has(&errs(&text), "nodes[1].addresses", "at least one");
    // All IPv6 on one link is fine.
    let text = example()
        .replace("198.51.100.1]", "\"2001:db8::1\"]")
        .replace("198.51.100.2]", "\"2001:db8::2\"]")
        .replace("198.51.100.3]", "\"2001:db8::3\"]");
    assert!(ok(&text).nodes[2].addresses[1].is_some_and(|a| a.is_ipv6()));
}

#[test]
fn a_node_may_sit_on_a_subset_of_the_links() {
    // The witness behind a router, on link 0 only.
    let text = replace(&example(), "[192.0.2.3, 198.51.100.3]", "[192.0.2.3, null]");
    let c = ok(&text);
    assert_eq!(c.links(), 2);
    assert_eq!(c.nodes[2].addresses[1], None);
    let spec = c.cluster_spec();
    assert_eq!(spec.nodes[2].absent_links, vec![1]);
    assert!(spec.nodes[0].absent_links.is_empty());
    assert!(spec.shared_link(NodeId(1), NodeId(2), 1));
    assert!(!spec.shared_link(NodeId(1), NodeId(3), 1));
    assert!(spec.shared_link(NodeId(1), NodeId(3), 0));
    assert_ne!(c.digest(), ok(&example()).digest());
    // A config on every link reads as it always did (`{:?}` of the address list, the
    // form before null was possible), so its digest did not change.
    let on_both: Vec<std::net::IpAddr> = vec![
        "192.0.2.1".parse().unwrap(),
        "198.51.100.1".parse().unwrap(),
    ];
    let as_before = format!("{on_both:?}");
    let both: Vec<Option<std::net::IpAddr>> = on_both.iter().copied().map(Some).collect();
    assert_eq!(super::model::canonical_addresses(&both), as_before);
    assert_eq!(ok(&example()).nodes[0].addresses, both);
    assert_eq!(
        super::model::canonical_addresses(&c.nodes[2].addresses),
        "[192.0.2.3, null]"
    );
    assert!(c.warnings().is_empty(), "{:?}", c.warnings());
    // An owner node on one link is allowed too; it loses the redundancy, which the
    // check points out.
    let text = replace(
        &example(),
        "[192.0.2.2, 198.51.100.2]",
        "[null, 198.51.100.2]",
    );
    let c = ok(&text);
    assert_eq!(c.cluster_spec().nodes[1].absent_links, vec![0]);
    assert!(
        c.warnings().contains(&super::ConfigWarning::NodeOnOneLink {
            node: "beta".into(),
            links: 2
        }),
        "{:?}",
        c.warnings()
    );
}

#[test]
fn absent_links_are_checked() {
    let text = replace(&example(), "[192.0.2.3, 198.51.100.3]", "[null, null]");
    has(&errs(&text), "nodes[2].addresses", "on no heartbeat link");
    // Two nodes without a common link could never hear each other.
    let text = replace(&example(), "[192.0.2.3, 198.51.100.3]", "[192.0.2.3, null]")
        .replace("[192.0.2.2, 198.51.100.2]", "[null, 198.51.100.2]");
    has(
        &errs(&text),
        "nodes",
        "beta and gamma share no heartbeat link",
    );
    // A link with one node on it is a typo.
    let text = replace(&example(), "[192.0.2.3, 198.51.100.3]", "[192.0.2.3, null]")
        .replace("[192.0.2.2, 198.51.100.2]", "[192.0.2.2, null]");
    has(&errs(&text), "nodes", "link 1 joins only alpha");
    // No interface where there is no address.
    let text = replace(
        &example(),
        "[192.0.2.3, 198.51.100.3]",
        "[192.0.2.3, null]\n    interfaces: [eth0, eth1]",
    );
    has(&errs(&text), "nodes[2].interfaces[1]", "give null here too");
    // The family rule skips the absent entry and checks against the next node.
    let text = replace(&example(), "[192.0.2.1, 198.51.100.1]", "[192.0.2.1, null]")
        .replace("[192.0.2.3, 198.51.100.3]", "[192.0.2.3, \"2001:db8::3\"]");
    has(
        &errs(&text),
        "nodes[2].addresses[1]",
        "link 1 is IPv4 on nodes[1] (beta)",
    );
}

#[test]
fn interfaces_are_checked() {
    let text = replace(
        &example(),
        "    priority: 100",
        "    priority: 100\n    interfaces: [eth1, null]",
    );
    assert_eq!(
        ok(&text).nodes[0].interfaces,
        vec![Some("eth1".to_string()), None]
    );
    let text = replace(
        &example(),
        "    priority: 100",
        "    priority: 100\n    interfaces: [eth1]",
    );
    has(&errs(&text), "nodes[0].interfaces", "one per address");
    let text = replace(
        &example(),
        "    priority: 100",
        "    priority: 100\n    interfaces: [eth1, \"a/b\"]",
    );
    has(
        &errs(&text),
        "nodes[0].interfaces[1]",
        "not a valid interface name",
    );
}

#[test]
fn witness_rules() {
    let text = replace(&example(), "witness: true", "witness: true\n    votes: 0");
    has(&errs(&text), "nodes[2].votes", "witness with no votes");
    let text = example()
        .replace("    priority: 100", "    witness: true")
        .replace("    priority: 90", "    witness: true");
    let e = errs(&text);
    has(&e, "nodes", "every node is a witness");
}

#[test]
fn heartbeat_rules() {
    let text = replace(&example(), "interval: 100ms", "interval: 1s");
    let e = errs(&text);
    has(
        &e,
        "heartbeat.interval",
        "heartbeat.interval (1s) must be shorter than heartbeat.deadtime (1s)",
    );
    let text = replace(&example(), "deadtime: 1s", "deadtime: 1s\n  warntime: 2s");
    has(
        &errs(&text),
        "heartbeat.warntime",
        "must not exceed deadtime",
    );
    let text = replace(
        &example(),
        "deadtime: 1s",
        "deadtime: 1s\n  stop_before_lease_end: 1s",
    );
    has(
        &errs(&text),
        "heartbeat.stop_before_lease_end",
        "shorter than deadtime",
    );
    let text = replace(
        &example(),
        "deadtime: 1s",
        "deadtime: 1s\n  initdead: 500ms",
    );
    has(&errs(&text), "heartbeat.initdead", "at least deadtime");
    let text = replace(&example(), "port: 5405", "port: 0");
    has(&errs(&text), "heartbeat.port", "port 0");
    let text = replace(
        &example(),
        "deadtime: 1s",
        "deadtime: 1s\n  max_drift_ppm: 200000",
    );
    has(&errs(&text), "heartbeat.max_drift_ppm", "10%");
    // Defaults follow deadtime.
    let c = ok(&replace(&example(), "deadtime: 1s", "deadtime: 3s"));
    assert_eq!(c.heartbeat.timing.warntime, Duration::from_millis(1500));
    assert_eq!(c.heartbeat.timing.initdead, Duration::from_secs(6));
    assert_eq!(
        c.heartbeat.timing.stop_before_lease_end,
        Duration::from_millis(1500)
    );
    // ... and the interval: about two intervals of every lease are used up by the
    // renewal round trip, so at 10 ms / 40 ms stepping down at deadtime/2 (20 ms left)
    // would make a healthy owner step down on any scheduling hiccup.
    let fast = replace(&example(), "deadtime: 1s", "deadtime: 40ms");
    let c = ok(&replace(&fast, "interval: 100ms", "interval: 10ms"));
    assert_eq!(
        c.heartbeat.timing.stop_before_lease_end,
        Duration::from_millis(10)
    );
}

#[test]
fn durations_in_config() {
    let text = replace(&example(), "interval: 100ms", "interval: 5");
    has(&errs(&text), "heartbeat.interval", "no unit");
    let text = replace(&example(), "deadtime: 1s", "deadtime: 0");
    has(&errs(&text), "heartbeat.deadtime", "greater than 0");
    let text = replace(&example(), "deadtime: 1s", "deadtime: -1s");
    has(&errs(&text), "heartbeat.deadtime", "negative");
    let text = replace(&example(), "deadtime: 1s", "deadtime: soon");
    has(&errs(&text), "heartbeat.deadtime", "not a duration");
    let text = replace(
        &example(),
        "    priority: 90",
        "    priority: 90\n    fence_delay: 0",
    );
    assert_eq!(ok(&text).nodes[1].fence_delay, Duration::ZERO);
}

#[test]
fn quorum_rules() {
    let text = replace(
        &example(),
        "no_quorum_policy: stop ",
        "no_quorum_policy: stop\n  two_node: true ",
    );
    has(
        &errs(&text),
        "quorum.two_node",
        "exactly 2 nodes and no witness",
    );
    // A real two-node cluster: drop the witness.
    let two = example().replace(
        "  - name: gamma\n    addresses: [192.0.2.3, 198.51.100.3]\n    witness: true                          # votes, never owns a group\n",
        "",
    );
    assert_eq!(ok(&two).nodes.len(), 2);
    let c = ok(&replace(
        &two,
        "no_quorum_policy: stop ",
        "no_quorum_policy: stop\n  two_node: true ",
    ));
    assert!(
        c.quorum.two_node && c.quorum.wait_for_all,
        "wait_for_all defaults to two_node"
    );
    let c = ok(&replace(
        &two,
        "no_quorum_policy: stop ",
        "no_quorum_policy: stop\n  two_node: true\n  wait_for_all: false ",
    ));
    assert!(!c.quorum.wait_for_all);
    let text = replace(
        &example(),
        "no_quorum_policy: stop",
        "no_quorum_policy: panic",
    );
    has(
        &errs(&text),
        "quorum.no_quorum_policy",
        "stop, freeze or ignore",
    );
    let text = replace(
        &example(),
        "no_quorum_policy: stop ",
        "no_quorum_policy: freeze\n  expected_votes: 0 ",
    );
    has(&errs(&text), "quorum.expected_votes", "at least 1");
    let c = ok(&replace(
        &example(),
        "no_quorum_policy: stop ",
        "no_quorum_policy: freeze\n  expected_votes: 5 ",
    ));
    assert_eq!(c.cluster_spec().expected_votes(), 5);
    assert_eq!(c.quorum.no_quorum_policy, NoQuorumPolicy::Freeze);
}

const FENCING: &str = "fencing:
  policy: always
  retry_interval: 2s
  self_fence: poweroff
  agents:
    - name: ipmi
      agent: /usr/sbin/fence_ipmilan
      params: { ip: 192.0.2.50, ipport: 623, lanplus: true }
      nodes: [alpha, beta]
";

#[test]
fn fencing_section() {
    let c = ok(&format!("{}{FENCING}", example()));
    assert_eq!(c.fencing.policy, FencePolicy::Always);
    assert_eq!(c.fencing.retry_interval, Duration::from_secs(2));
    assert_eq!(c.fencing.self_fence, SelfFence::Poweroff);
    let a = &c.fencing.agents[0];
    assert_eq!(a.params["ipport"], "623");
    assert_eq!(a.params["lanplus"], "true");
    assert_eq!(a.nodes, vec![NodeId(1), NodeId(2)]);
    assert_eq!(c.cluster_spec().fencing.mode, FenceMode::Always);
    let c = ok(&format!(
        "{}{}",
        example(),
        FENCING.replace("policy: always", "policy: needed")
    ));
    assert_eq!(c.cluster_spec().fencing.mode, FenceMode::WhenNeeded);
    let c = ok(&format!(
        "{}{}",
        example(),
        FENCING.replace("      nodes: [alpha, beta]\n", "")
    ));
    assert_eq!(c.fencing.agents[0].nodes.len(), 3, "all nodes by default");
}

#[test]
fn fencing_rules() {
    let text = format!(
        "{}{}",
        example(),
        FENCING.replace("/usr/sbin/fence_ipmilan", "fence_ipmilan")
    );
    has(&errs(&text), "fencing.agents[0].agent", "absolute path");
    let text = format!(
        "{}{}",
        example(),
        FENCING.replace("[alpha, beta]", "[alpha, delta]")
    );
    has(
        &errs(&text),
        "fencing.agents[0].nodes[1]",
        "unknown node `delta`",
    );
    let text = format!(
        "{}{}",
        example(),
        FENCING.replace("lanplus: true", "lanplus: \"a\\nb\"")
    );
    has(&errs(&text), "fencing.agents[0].params.lanplus", "newlines");
    let text = format!("{}{}", example(), FENCING.replace("poweroff", "halt"));
    has(&errs(&text), "fencing.self_fence", "absolute path");
    let c = ok(&format!(
        "{}{}",
        example(),
        FENCING.replace("poweroff", "/usr/local/sbin/die")
    ));
    assert_eq!(
        c.fencing.self_fence,
        SelfFence::Command("/usr/local/sbin/die".into())
    );
    let text = format!("{}fencing:\n  policy: always\n", example());
    has(
        &errs(&text),
        "fencing.policy",
        "needs at least one fence agent",
    );
    let text = format!(
        "{}{}",
        example(),
        FENCING.replace("policy: always", "policy: sometimes")
    );
    has(&errs(&text), "fencing.policy", "needed or always");
    let text = format!(
        "{}{}",
        example(),
        FENCING.replace("ipmi\n", "ipmi\n      agent2: x\n")
    );
    has(
        &errs(&text),
        "fencing.agents[0].agent2",
        "did you mean `agent`",
    );
}

#[test]
fn group_rules() {
    let text = replace(&example(), "prefer: alpha", "prefer: gamma");
    has(&errs(&text), "groups[0].prefer", "witness");
    let text = replace(
        &example(),
        "prefer: alpha",
        "prefer: alpha\n    nodes: [beta]",
    );
    has(
        &errs(&text),
        "groups[0].prefer",
        "not in this group's `nodes`",
    );
    let text = replace(&example(), "prefer: alpha", "nodes: [gamma]");
    let e = errs(&text);
    has(&e, "groups[0].nodes[0]", "witness");
    has(&e, "groups[0]", "no node is eligible");
    let text = replace(
        &example(),
        "failback: false",
        "failback: false\n    migration_threshold: 0",
    );
    has(&errs(&text), "groups[0].migration_threshold", "at least 1");
    let text = replace(
        &example(),
        "failback: false",
        "failback: false\n    on_fail: retry",
    );
    has(&errs(&text), "groups[0].on_fail", "fence or block");
    let text = replace(
        &example(),
        "failback: false",
        "failback: false\n    notify: [notify.sh]",
    );
    has(&errs(&text), "groups[0].notify[0]", "absolute path");
    let text = replace(
        &example(),
        "failback: false",
        "failback: false\n    resources: []\n    x: 1",
    );
    assert!(!errs(&text).is_empty());
    let text = format!(
        "{}  - name: www\n    resources:\n      - lsb: {{ name: nginx }}\n",
        example()
    );
    has(&errs(&text), "groups[1].name", "duplicate group name `www`");
    let c = ok(&replace(
        &example(),
        "failback: false",
        "failback: true\n    on_fail: block\n    nodes: [beta, alpha]",
    ));
    let g = &c.groups[0];
    assert!(g.failback);
    assert_eq!(g.on_fail, OnFail::Block);
    assert_eq!(g.nodes, vec![NodeId(2), NodeId(1)]);
}

#[test]
fn resource_rules() {
    let text = replace(&example(), "stop: \"/usr/bin/true\", ", "");
    has(
        &errs(&text),
        "groups[0].resources[1].exec",
        "missing required key `stop`",
    );
    let text = replace(&example(), "name: app,", "name: vip-192.0.2.100,");
    has(
        &errs(&text),
        "groups[0].resources[1]",
        "duplicate resource name",
    );
    let text = replace(&example(), "192.0.2.100/24", "192.0.2.100");
    has(
        &errs(&text),
        "groups[0].resources[0].vip.address",
        "prefix length",
    );
    let text = replace(&example(), "192.0.2.100/24", "192.0.2.100/33");
    has(
        &errs(&text),
        "groups[0].resources[0].vip.address",
        "too long",
    );
    let text = replace(
        &example(),
        "interface: eth0 }",
        "interface: eth0, label: www }",
    );
    has(
        &errs(&text),
        "groups[0].resources[0].vip.label",
        "start with `eth0:`",
    );
    let c = ok(&replace(
        &example(),
        "interface: eth0 }",
        "interface: eth0, label: \"eth0:www\", garp_refresh: 1m }",
    ));
    assert!(
        matches!(&c.groups[0].resources[0].kind, ResourceKind::Vip { label: Some(l), garp_refresh: Some(r), .. } if l == "eth0:www" && *r == Duration::from_secs(60))
    );
    let text = replace(&example(), "- vip:", "- vap:");
    has(
        &errs(&text),
        "groups[0].resources[0]",
        "unknown resource kind `vap`",
    );
    let text = replace(&example(), "timeout: 20s }", "timeout: 0s }");
    has(
        &errs(&text),
        "groups[0].resources[1].exec.timeout",
        "greater than 0",
    );
}

#[test]
fn resource_kinds() {
    let extra = "      - lsb: { name: nginx }
      - lsb: { name: /opt/app/init.d/appd, timeout: 1m }
      - ocf: { agent: \"heartbeat:IPaddr2\", params: { ip: 192.0.2.101, cidr_netmask: 24 } }
      - ocf: { name: db, agent: \"ocf:heartbeat:pgsql\", timeout: 2m }
      - systemd: { unit: postgresql }
      - systemd: { unit: app.socket, name: sock }
      - vip: { address: \"2001:db8::100/64\", interface: eth0 }
";
    let c = ok(&format!("{}{extra}", example()));
    let r = &c.groups[0].resources;
    assert_eq!(r[2].name, "nginx");
    assert_eq!(
        r[2].kind,
        ResourceKind::Lsb {
            script: "/etc/init.d/nginx".into()
        }
    );
    assert_eq!(r[3].name, "appd");
    assert_eq!(r[3].timeout, Some(Duration::from_secs(60)));
    assert_eq!(r[4].name, "ipaddr2");
    assert_eq!(r[4].timeout, None);
    assert!(
        matches!(&r[4].kind, ResourceKind::Ocf { provider, agent_type, params } if provider == "heartbeat" && agent_type == "IPaddr2" && params["cidr_netmask"] == "24")
    );
    assert!(matches!(&r[5].kind, ResourceKind::Ocf { provider, .. } if provider == "heartbeat"));
    assert_eq!(r[6].name, "postgresql.service");
    assert_eq!(r[6].timeout, Some(Duration::from_secs(90)));
    assert_eq!(r[7].name, "sock");
    assert_eq!(r[8].name, "vip-2001:db8::100");

    let bad = format!("{}      - lsb: {{ name: init.d/nginx }}\n      - ocf: {{ agent: IPaddr2 }}\n      - ocf: {{ agent: \"heartbeat:x\", params: {{ \"bad-key\": 1 }} }}\n      - systemd: {{ unit: \"a b\" }}\n", example());
    let e = errs(&bad);
    has(&e, "groups[0].resources[2].lsb.name", "absolute path");
    has(&e, "groups[0].resources[3].ocf.agent", "provider:type");
    has(
        &e,
        "groups[0].resources[4].ocf.params.bad-key",
        "invalid parameter name",
    );
    has(
        &e,
        "groups[0].resources[5].systemd.unit",
        "not a systemd unit",
    );
}

/// The example's group with `extra` appended to its resources.
fn with_resources(extra: &str) -> String {
    format!("{}{extra}", example())
}

#[test]
fn promotable_resources() {
    let c = ok(&with_resources(
        "      - ocf: { name: state, agent: \"heartbeat:Stateful\", promotable: true, params: { state: /run/s.state } }\n",
    ));
    let r = &c.groups[0].resources;
    assert!(r[2].promotable);
    assert!(!r[0].promotable && !r[1].promotable);
    // Read and checked, never promoted yet: the check says so (issue 25).
    let group = c.groups[0].name.clone();
    assert_eq!(
        c.warnings()
            .into_iter()
            .filter(|w| matches!(w, super::ConfigWarning::PromotableNotPromoted { .. }))
            .collect::<Vec<_>>(),
        vec![super::ConfigWarning::PromotableNotPromoted {
            group,
            resource: "state".into()
        }]
    );

    let c = ok(&with_resources(
        "      - exec: { name: db, start: a, stop: b, promotable: true, promote: c, demote: d }\n",
    ));
    let r = &c.groups[0].resources[2];
    assert!(r.promotable);
    assert!(
        matches!(&r.kind, ResourceKind::Exec { promote: Some(p), demote: Some(d), .. } if p == "c" && d == "d")
    );
    // `promotable: false` is the default said aloud.
    let c = ok(&with_resources(
        "      - ocf: { agent: \"heartbeat:Dummy\", promotable: false }\n",
    ));
    assert!(!c.groups[0].resources[2].promotable);
}

#[test]
fn promotable_rules() {
    let e = errs(&with_resources(
        "      - ocf: { name: a, agent: \"heartbeat:Stateful\", promotable: true }\n      - exec: { name: b, start: a, stop: b, promotable: true, promote: c, demote: d }\n",
    ));
    has(
        &e,
        "groups[0].resources[3].exec.promotable",
        "only one promotable resource, and resources[2]",
    );
    let e = errs(&with_resources(
        "      - exec: { name: b, start: a, stop: b, promotable: true, promote: c }\n",
    ));
    has(
        &e,
        "groups[0].resources[2].exec",
        "missing required key `demote`",
    );
    let e = errs(&with_resources(
        "      - exec: { name: b, start: a, stop: b, promote: c, demote: d }\n",
    ));
    has(
        &e,
        "groups[0].resources[2].exec.promote",
        "add `promotable: true`",
    );
    has(
        &e,
        "groups[0].resources[2].exec.demote",
        "add `promotable: true`",
    );
    let e = errs(&with_resources(
        "      - ocf: { agent: \"heartbeat:Stateful\", promotable: yes please }\n",
    ));
    has(&e, "groups[0].resources[2].ocf.promotable", "bool");
}

#[test]
fn promotable_is_refused_on_kinds_without_roles() {
    let text = replace(
        &example(),
        "interface: eth0 }",
        "interface: eth0, promotable: true }",
    );
    let e = errs(&text);
    has(
        &e,
        "groups[0].resources[0].vip.promotable",
        "only ocf and exec resources can be promotable",
    );
    // Said once, not also as an unknown key.
    assert_eq!(e.len(), 1, "{}", ConfigErrors(e.clone()));
    let e = errs(&with_resources(
        "      - lsb: { name: nginx, promotable: true }\n      - systemd: { unit: pg, promotable: true, colour: red }\n",
    ));
    has(
        &e,
        "groups[0].resources[2].lsb.promotable",
        "only ocf and exec",
    );
    has(
        &e,
        "groups[0].resources[3].systemd.promotable",
        "only ocf and exec",
    );
    // Other unknown keys are reported as before.
    has(
        &e,
        "groups[0].resources[3].systemd.colour",
        "unknown key `colour`",
    );
    // The position is the key's own.
    let pos = e
        .iter()
        .find(|e| e.path.as_deref() == Some("groups[0].resources[2].lsb.promotable"))
        .map(|e| e.to_string())
        .unwrap_or_default();
    let line = with_resources("").lines().count() + 1;
    let column = "      - lsb: { name: nginx, ".len() + 1;
    assert!(
        pos.starts_with(&format!("test.yaml:{line}:{column}: ")),
        "{pos}"
    );
}

#[test]
fn metrics_section() {
    let c = ok(&format!(
        "{}metrics:\n  listen: 127.0.0.1:9405\n",
        example()
    ));
    assert_eq!(c.metrics.unwrap().listen.port(), 9405);
    let text = format!("{}metrics:\n  listen: localhost\n", example());
    has(&errs(&text), "metrics.listen", "socket address");
}

#[test]
fn key_errors() {
    let missing = temp_path("missing-key");
    let text = EXAMPLE.replace("/etc/tandem/authkey", &missing.display().to_string());
    let e = errs(&text);
    assert_eq!(e.len(), 1);
    has(&e, "cluster.authkey", "tandemctl keygen");
    assert!(e[0].message.contains(&missing.display().to_string()));
    assert!(e[0].line.is_some());

    let open = temp_path("open-key");
    write_key(&open, &generate_key(), false).unwrap();
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o640)).unwrap();
    let text = EXAMPLE.replace("/etc/tandem/authkey", &open.display().to_string());
    has(&errs(&text), "cluster.authkey", "chmod 600");

    let garbage = temp_path("garbage-key");
    write_key(&garbage, &generate_key(), false).unwrap();
    std::fs::write(&garbage, "not a key\n").unwrap();
    let text = EXAMPLE.replace("/etc/tandem/authkey", &garbage.display().to_string());
    has(&errs(&text), "cluster.authkey", "64 hex digits");

    let text = replace(
        &example(),
        "  authkey:",
        &format!("  authkey_next: {}\n  authkey:", missing.display()),
    );
    has(&errs(&text), "cluster.authkey_next", "tandemctl keygen");

    let next = temp_path("next-key");
    let next_key = generate_key();
    write_key(&next, &next_key, false).unwrap();
    let text = replace(
        &example(),
        "  authkey:",
        &format!("  authkey_next: {}\n  authkey:", next.display()),
    );
    assert_eq!(ok(&text).keys.next, Some(next_key));

    for p in [open, garbage, next] {
        let _ = std::fs::remove_file(p);
    }
}

#[test]
fn key_errors_come_with_other_errors() {
    let missing = temp_path("missing-key2");
    let text = EXAMPLE.replace("/etc/tandem/authkey", &missing.display().to_string());
    let text = replace(&text, "name: web", "name: \"w b\"");
    let e = errs(&text);
    has(&e, "cluster.name", "allowed");
    has(&e, "cluster.authkey", "cannot read");
}

#[test]
fn relative_key_path_is_relative_to_the_config() {
    let dir = temp_path("reldir");
    std::fs::create_dir_all(&dir).unwrap();
    write_key(&dir.join("authkey"), &generate_key(), false).unwrap();
    let cfg = dir.join("tandem.yaml");
    std::fs::write(&cfg, EXAMPLE.replace("/etc/tandem/authkey", "authkey")).unwrap();
    let c = load(&cfg).unwrap();
    assert_eq!(c.cluster.authkey, dir.join("authkey"));
    assert_eq!(c.file, cfg);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn wrong_types_in_lists_keep_other_errors() {
    // A broken node must not produce "unknown node" echoes for references to it.
    let text = replace(&example(), "name: alpha", "name: [alpha]");
    let e = errs(&text);
    has(&e, "nodes[0].name", "expected a string");
    assert!(
        !e.iter().any(|e| e.message.contains("unknown node")),
        "{}",
        ConfigErrors(e.clone())
    );
}

#[test]
fn warnings_flag_risky_settings() {
    assert!(
        ok(&example()).warnings().is_empty(),
        "{:?}",
        ok(&example()).warnings()
    );
    let text = replace(&example(), "interval: 100ms", "interval: 400ms");
    let c = ok(&replace(
        &text,
        "no_quorum_policy: stop",
        "no_quorum_policy: ignore",
    ));
    let w = c.warnings();
    let under_three = |w: &super::ConfigWarning| {
        matches!(w, super::ConfigWarning::DeadtimeUnderThreeIntervals { .. })
    };
    assert!(w.iter().any(under_three), "{w:?}");
    assert!(w.contains(&super::ConfigWarning::IgnoreQuorum), "{w:?}");
    assert!(c.summary().contains("warning: "), "{}", c.summary());
}

#[test]
fn odd_shapes_are_errors_not_panics() {
    for text in [
        "cluster: ~\nnodes: 5\n",
        "cluster: []\nnodes: [{}]\ngroups: [{}]\n",
        "cluster: {name: x, authkey: /nonexistent}\nnodes: [{name: a, addresses: [192.0.2.1]}]\ngroups:\n  - name: g\n    resources:\n      - exec:\n      - {}\n      - {vip: 1, exec: 2}\n",
        "a: 1\n---\nb: 2\n",
        "cluster:\n\tname: x\n",
        "\"unterminated: 1\n",
    ] {
        let e = errs(text);
        assert!(!e.is_empty());
        for err in &e {
            assert!(!err.message.contains("Raw"), "{err}");
        }
    }
}

proptest::proptest! {
    #[test]
    fn never_panics_on_junk(text in "[ a-z0-9:#{}\\[\\],'\"\\-|>\n]{0,200}") {
        let _ = Locator::new(&text);
        let _ = parse_str(&text, "junk.yaml");
    }

    #[test]
    fn never_panics_on_mutated_example(pos in 0usize..2000, junk in "[ :\\-\\[{'\"\n]{1,3}") {
        let mut text = example();
        let mut pos = pos.min(text.len());
        while !text.is_char_boundary(pos) {
            pos -= 1;
        }
        text.insert_str(pos, &junk);
        let _ = parse_str(&text, "mutated.yaml");
    }
}

#[test]
fn top_level_notify_hooks() {
    assert!(ok(&example()).notify.is_empty());
    let text = format!(
        "{}\nnotify: [/etc/tandem/notify.sh, /usr/local/bin/page-me]\n",
        example()
    );
    let cfg = ok(&text);
    assert_eq!(
        cfg.notify,
        vec![
            PathBuf::from("/etc/tandem/notify.sh"),
            PathBuf::from("/usr/local/bin/page-me")
        ]
    );
    // Hooks are part of the config digest, but only when set.
    assert_ne!(cfg.digest(), ok(&example()).digest());
    has(
        &errs(&format!("{}\nnotify: [/ok.sh, notify.sh]\n", example())),
        "notify[1]",
        "absolute path",
    );
    has(
        &errs(&format!("{}\nnotify: /etc/tandem/notify.sh\n", example())),
        "notify",
        "sequence",
    );
}

/// Every key the parser accepts is documented in docs/configuration.md, in the section
/// of its own table, so the reference and the code cannot drift apart.
#[test]
fn every_accepted_key_is_in_the_configuration_reference() {
    let doc = include_str!("../../docs/configuration.md");
    // The text of one `## heading` section (up to the next `## `).
    let section = |heading: &str| -> &str {
        let start = doc
            .find(&format!("\n## {heading}"))
            .unwrap_or_else(|| panic!("docs/configuration.md has no `## {heading}` section"));
        let rest = &doc[start + 1..];
        let end = rest[3..].find("\n## ").map(|i| i + 3).unwrap_or(rest.len());
        &rest[..end]
    };
    let tables: &[(&str, &[&str])] = &[
        ("cluster", raw::RawCluster::KEYS),
        ("nodes", raw::RawNode::KEYS),
        ("heartbeat", raw::RawHeartbeat::KEYS),
        ("quorum", raw::RawQuorum::KEYS),
        ("fencing", raw::RawFencing::KEYS),
        ("fencing", raw::RawFenceAgent::KEYS),
        ("groups", raw::RawGroup::KEYS),
        ("groups", raw::RawVip::KEYS),
        ("groups", raw::RawExec::KEYS),
        ("groups", raw::RawLsb::KEYS),
        ("groups", raw::RawOcf::KEYS),
        ("groups", raw::RawSystemd::KEYS),
        ("checks", raw::RawCheck::KEYS),
        ("metrics", raw::RawMetrics::KEYS),
        ("watchdog", raw::RawWatchdog::KEYS),
    ];
    let mut missing = Vec::new();
    for (heading, keys) in tables {
        let text = section(heading);
        for key in *keys {
            if !text.contains(&format!("`{key}`")) {
                missing.push(format!("{heading}.{key}"));
            }
        }
    }
    for key in raw::RawConfig::KEYS {
        if !doc.contains(&format!("## {key}")) {
            missing.push(format!("top-level section {key}"));
        }
    }
    assert!(missing.is_empty(), "undocumented config keys: {missing:?}");
}

/// The commented `checks:` block of the shipped example, uncommented.
fn example_with_checks() -> String {
    let text = example();
    let start = text.find("# checks:").expect("example shows checks");
    let block: String = text[start..]
        .lines()
        .map(|l| l.strip_prefix("# ").unwrap_or(l))
        .collect::<Vec<_>>()
        .join("\n");
    format!("{}{block}\n", &text[..start])
}

#[test]
fn checks_example_loads_with_defaults() {
    let c = ok(&example_with_checks());
    assert_eq!(c.checks.len(), 2);
    let uplink = &c.checks[0];
    assert_eq!(uplink.name, "uplink");
    assert_eq!(
        uplink.probe,
        CheckProbe::Ping(vec!["192.0.2.254".parse().unwrap()])
    );
    assert_eq!(
        (uplink.interval, uplink.timeout, uplink.fall, uplink.rise),
        (Duration::from_secs(2), Duration::from_secs(1), 3, 2)
    );
    assert!(uplink.applies_to("gamma"), "no `nodes`: every node");
    let disk = &c.checks[1];
    assert_eq!(disk.probe, CheckProbe::Script("test -w /srv/data".into()));
    assert!(disk.applies_to("alpha") && !disk.applies_to("gamma"));
    assert!(c.summary().contains("uplink: ping 192.0.2.254"));
    // Checks are part of the config every node must agree on; none = old digest.
    assert_ne!(c.digest(), ok(&example()).digest());
    assert!(!ok(&example()).canonical().contains("check "));
}

#[test]
fn check_errors_carry_key_paths() {
    let base = example();
    let e = errs(&format!(
        "{base}checks:\n  - name: a\n    ping: [192.0.2.254, router.example, ff02::1]\n  - name: b\n    script: \"true\"\n    ping: [192.0.2.1]\n  - name: c\n  - name: a\n    script: \"\"\n    fall: 0\n    nodes: [alpha, nobody]\n    interval: 0s\n    rise: 1\n    wieght: 5\n"
    ));
    has(&e, "checks[0].ping[1]", "`router.example` is not a unicast");
    has(&e, "checks[0].ping[2]", "`ff02::1` is not a unicast");
    has(&e, "checks[1]", "either `ping` or `script`, not both");
    has(&e, "checks[2]", "missing `ping`");
    has(&e, "checks[3].name", "duplicate check name `a`");
    has(&e, "checks[3].script", "non-empty");
    has(&e, "checks[3].fall", "at least 1");
    has(&e, "checks[3].nodes[1]", "unknown node `nobody`");
    has(&e, "checks[3].interval", "greater than 0");
    has(&e, "checks[3].wieght", "unknown key");
    let e = errs(&format!("{base}checks:\n  - name: x\n    ping: []\n"));
    has(&e, "checks[0].ping", "at least one address");
    let e = errs(&format!(
        "{base}checks:\n  - name: x\n    ping: 192.0.2.1\n"
    ));
    has(&e, "checks[0].ping", "expected a sequence");
}

#[test]
fn watchdog_section_defaults_validates_and_feeds_the_promise() {
    let c = ok(&format!(
        "{}\nwatchdog:\n  device: /dev/watchdog\n",
        example()
    ));
    let w = c.watchdog.clone().expect("watchdog section");
    assert_eq!(w.device, PathBuf::from("/dev/watchdog"));
    assert_eq!(w.timeout, WatchdogConfig::DEFAULT_TIMEOUT);
    assert_eq!(c.cluster_spec().timing.watchdog_timeout, Some(w.timeout));
    assert_ne!(
        c.digest(),
        ok(&example()).digest(),
        "peers must agree on it"
    );
    assert_eq!(ok(&example()).cluster_spec().timing.watchdog_timeout, None);
    has(
        &errs(&format!(
            "{}\nwatchdog:\n  device: dev/watchdog\n",
            example()
        )),
        "watchdog.device",
        "absolute path",
    );
    has(
        &errs(&format!(
            "{}\nwatchdog:\n  device: /dev/watchdog\n  timeout: 1500ms\n",
            example()
        )),
        "watchdog.timeout",
        "whole seconds",
    );
    has(
        &errs(&format!("{}\nwatchdog:\n  timeout: 5s\n", example())),
        "watchdog",
        "device",
    );
}

/// The example with an etcd arbiter section appended to its `quorum:` and the given
/// `deadtime`.
fn with_arbiter(deadtime: &str, etcd: &str) -> String {
    let text = replace(&example(), "deadtime: 1s", &format!("deadtime: {deadtime}"));
    replace(
        &text,
        "quorum:\n",
        &format!("quorum:\n  arbiter:\n    etcd:\n{etcd}"),
    )
}

#[test]
fn an_etcd_arbiter_defaults_validates_and_adds_a_vote() {
    let c = ok(&with_arbiter(
        "2500ms",
        "      endpoints: [http://192.0.2.10:2379, http://192.0.2.11:2379]\n",
    ));
    let etcd = c.quorum.arbiter.clone().expect("arbiter").etcd;
    assert_eq!(etcd.prefix, "/tandem");
    assert_eq!(etcd.ttl, Duration::from_secs(3), "deadtime rounded up");
    let spec = c.cluster_spec();
    assert_eq!(
        spec.quorum.arbiter.map(|a| a.ttl),
        Some(Duration::from_secs(3))
    );
    let nodes: u32 = spec.nodes.iter().map(|n| n.votes).sum();
    assert_eq!(spec.expected_votes(), nodes + 1);
    assert_eq!(ok(&example()).cluster_spec().quorum.arbiter, None);
    // `config check` counts the arbiter's vote as the core does.
    assert_eq!(nodes, 3, "the example's nodes");
    let expected = "quorum: 4 expected votes (one of them the etcd arbiter's), quorum at 3";
    assert!(c.summary().contains(expected), "{}", c.summary());
}

#[test]
fn an_etcd_arbiter_refuses_what_etcd_cannot_honour() {
    let endpoints = "      endpoints: [http://192.0.2.10:2379]\n";
    // deadtime 1s: the default ttl (1s) is below etcd's 2 s minimum lease.
    let e = errs(&with_arbiter("1s", endpoints));
    has(&e, "quorum.arbiter.etcd.ttl", "below what etcd grants");
    let e = errs(&with_arbiter("3s", &format!("{endpoints}      ttl: 2s\n")));
    has(&e, "quorum.arbiter.etcd.ttl", "shorter than deadtime");
    let e = errs(&with_arbiter(
        "2s",
        &format!("{endpoints}      ttl: 2500ms\n"),
    ));
    has(&e, "quorum.arbiter.etcd.ttl", "whole seconds");
    // A longer election timeout on the etcd side: the admin raises min_ttl.
    let e = errs(&with_arbiter(
        "2s",
        &format!("{endpoints}      min_ttl: 3s\n"),
    ));
    has(&e, "quorum.arbiter.etcd.ttl", "below what etcd grants");
    let e = errs(&with_arbiter("2s", "      endpoints: [192.0.2.10:2379]\n"));
    has(&e, "quorum.arbiter.etcd.endpoints[0]", "http://host:port");
    let e = errs(&with_arbiter(
        "2s",
        &format!("{endpoints}      user: tandem\n"),
    ));
    has(&e, "quorum.arbiter.etcd", "both `user` and `password_file`");
    let e = errs(&with_arbiter(
        "2s",
        &format!("{endpoints}      tls:\n        cert: /etc/tandem/etcd.crt\n"),
    ));
    has(&e, "quorum.arbiter.etcd.tls", "`cert` and `key` together");
    let https = "      endpoints: [https://192.0.2.10:2379]\n";
    let e = errs(&with_arbiter("2s", https));
    has(&e, "quorum.arbiter.etcd", "need `tls.ca`");
    ok(&with_arbiter(
        "2s",
        &format!("{https}      tls:\n        ca: /etc/tandem/etcd-ca.pem\n"),
    ));
}
