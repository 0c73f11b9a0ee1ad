//! Issue 5's acceptance list with REAL resource agents: three daemons in the netns lab
//! (n1 and n2 own, n3 is a witness) run group `www` = a VIP on eth0 (rtnetlink) plus an
//! exec service whose state lives in a per-node file. The tests look at the kernel (`ip
//! -n NS addr`) and at the service's files, not only at what `status` claims:
//! - `move`, `standby`, `online` really move the address and the service;
//! - `maintenance on` really stops recovery of a killed service, `off` resumes it;
//! - a rolling `reload` adding a group starts it without touching the running `www`;
//!   one changing the VIP's address restarts `www` and leaves no stale address.
//!
//! Needs root, iproute2 and nftables.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command as Proc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tandem::lab::{wait_until, Lab, LabSpec, Ns};

mod support;

use support::lab::{all_logs, eventually, group, node_state, ok, runs_on, status, text, POLL};

const LONG: Duration = Duration::from_secs(40);
const VIP: &str = "192.0.2.100";

/// Placeholder for the lab's directory, known only once the lab is built.
const LABDIR: &str = "@LABDIR@";

/// The service: `svc.sh GROUP start|stop|monitor`. Every node keeps its state in
/// `LABDIR/svc/<its namespace>/` (the lab's nodes share one filesystem), so a test can
/// tell which node runs the service, and each start/stop is logged to count restarts.
const SERVICE: &str = r#"#!/bin/sh
d="@LABDIR@/svc/$(ip netns identify)"
mkdir -p "$d" || exit 1
case "$2" in
start) echo start >> "$d/$1.log" && touch "$d/$1.up" ;;
stop) echo stop >> "$d/$1.log"; rm -f "$d/$1.up" ;;
monitor) [ -e "$d/$1.up" ] || exit 7 ;;
*) exit 2 ;;
esac
"#;

fn exec_resource(group: &str) -> String {
    format!(
        "      - exec:\n          name: svc\n          \
         start: {LABDIR}/svc.sh {group} start\n          \
         stop: {LABDIR}/svc.sh {group} stop\n          \
         monitor: {LABDIR}/svc.sh {group} monitor\n          timeout: 5s\n"
    )
}

fn www_group() -> String {
    format!(
        "  - name: www\n    prefer: n1\n    failback: false\n    monitor_interval: 500ms\n    \
         resources:\n      - vip: {{ name: ip, address: {VIP}/24, interface: eth0 }}\n{}",
        exec_resource("www")
    )
}

fn db_group() -> String {
    format!(
        "  - name: db\n    monitor_interval: 500ms\n    resources:\n{}",
        exec_resource("db")
    )
}

/// A 3-node lab (n3 a witness) running www, with the service script installed.
fn build() -> Lab {
    let spec = LabSpec {
        nodes: 3,
        witnesses: vec![3],
        extra_yaml: format!("groups:\n{}", www_group()),
        ..LabSpec::default()
    };
    let lab = Lab::build(spec).unwrap_or_else(|e| {
        panic!("cannot build the lab: {e}\n(needs root, iproute2 and nftables)")
    });
    let dir = lab.dir().to_str().expect("UTF-8 lab dir").to_string();
    let script = lab.dir().join("svc.sh");
    support::script::write_executable(&script, &SERVICE.replace(LABDIR, &dir));
    for node in 1..=3 {
        let path = lab.config_path(node);
        let yaml = std::fs::read_to_string(&path).expect("read config");
        std::fs::write(&path, yaml.replace(LABDIR, &dir)).expect("write config");
    }
    lab
}

fn fail_count(s: &Value, g: &str, res: &str) -> Option<u64> {
    group(s, g)?["resources"]
        .as_array()?
        .iter()
        .find(|r| r["name"] == res)?["fail_count"]
        .as_u64()
}

/// Polls a plain condition (kernel or file state) with the same generous bound.
fn eventually_true(lab: &Lab, what: &str, check: impl Fn() -> bool) {
    if wait_until(LONG, POLL, || check().then_some(())).is_none() {
        panic!("timed out waiting for {what}\nlogs:\n{}", all_logs(lab));
    }
}

fn ns(lab: &Lab, node: usize) -> String {
    lab.ns_name(Ns::Node(node)).expect("ns name")
}

/// Whether the VIP is configured on eth0 in `ns`, asked from the kernel.
fn has_vip_in(ns: &str) -> bool {
    let out = Proc::new("ip")
        .args(["-n", ns, "-o", "-4", "addr", "show", "dev", "eth0"])
        .output()
        .expect("ip addr");
    assert!(
        out.status.success(),
        "ip -n {ns} addr: {}",
        text(&out.stderr)
    );
    text(&out.stdout).contains(&format!(" {VIP}/24 "))
}

fn has_vip(lab: &Lab, node: usize) -> bool {
    has_vip_in(&ns(lab, node))
}

fn svc_dir(lab: &Lab, node: usize) -> PathBuf {
    lab.dir().join("svc").join(ns(lab, node))
}

fn svc_up(lab: &Lab, node: usize, g: &str) -> bool {
    svc_dir(lab, node).join(format!("{g}.up")).exists()
}

/// The service's start/stop history on one node, oldest first.
fn svc_log(lab: &Lab, node: usize, g: &str) -> Vec<String> {
    std::fs::read_to_string(svc_dir(lab, node).join(format!("{g}.log")))
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

/// The history from the first start on: every daemon stops leftovers of its groups at
/// boot (and a group added by reload), before anything starts.
fn svc_log_from_start(lab: &Lab, node: usize, g: &str) -> Vec<String> {
    svc_log(lab, node, g)
        .into_iter()
        .skip_while(|l| l == "stop")
        .collect()
}

fn starts(lab: &Lab, node: usize, g: &str) -> usize {
    svc_log(lab, node, g)
        .iter()
        .filter(|l| *l == "start")
        .count()
}

/// `www` runs on `node` according to the kernel and the service files: the VIP and the
/// service are there, and on no other owner node.
fn www_really_on(lab: &Lab, node: usize) -> bool {
    let other = if node == 1 { 2 } else { 1 };
    has_vip(lab, node)
        && svc_up(lab, node, "www")
        && !has_vip(lab, other)
        && !svc_up(lab, other, "www")
}

fn node_index(name: &str) -> usize {
    name.trim_start_matches('n').parse().expect("node name nI")
}

fn start_and_wait_for_www(lab: &mut Lab) {
    lab.start_all().expect("start");
    eventually(lab, 1, "www running on n1, every node online", LONG, |s| {
        runs_on(s, "www").as_deref() == Some("n1")
            && ["n1", "n2", "n3"]
                .iter()
                .all(|n| node_state(s, n).as_deref() == Some("online"))
    });
    eventually_true(lab, "VIP and service on n1 only", || www_really_on(lab, 1));
    assert!(
        !has_vip(lab, 3) && !svc_up(lab, 3, "www"),
        "the witness runs nothing"
    );
}

#[test]
fn move_standby_and_online_move_the_vip_and_the_service() {
    let Some(_serial) =
        support::lab::serial_lab_test("move_standby_and_online_move_the_vip_and_the_service")
    else {
        return;
    };
    let mut lab = build();
    start_and_wait_for_www(&mut lab);

    // move: the address and the service go to n2; the output says how long it took.
    let out = ok(&lab, 1, &["move", "www", "n2"]);
    assert!(out.contains("www moved from n1 to n2 in "), "{out}");
    let secs = out
        .trim_end()
        .strip_suffix(" s")
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|n| n.parse::<f64>().ok());
    assert!(
        secs.is_some_and(|s| s > 0.0 && s < 30.0),
        "switchover time: {out}"
    );
    eventually_true(&lab, "VIP and service on n2 after move", || {
        www_really_on(&lab, 2)
    });
    eventually(&lab, 3, "the witness sees www on n2", LONG, |s| {
        runs_on(s, "www").as_deref() == Some("n2")
    });
    // The move leaves a preference for n2 behind (it would pull www back when n2
    // returns from standby); drop it so `online` alone is tested below.
    let out = ok(&lab, 1, &["move", "--clear", "www"]);
    assert!(out.contains("move preference removed"), "{out}");
    assert_eq!(starts(&lab, 2, "www"), 1, "{:?}", svc_log(&lab, 2, "www"));
    assert_eq!(
        svc_log(&lab, 1, "www").last().map(String::as_str),
        Some("stop"),
        "n1 stopped the service"
    );

    // standby of the owner: www goes back to n1, really.
    let out = ok(&lab, 3, &["standby", "n2"]);
    assert!(out.contains("n2 is in standby"), "{out}");
    eventually(&lab, 1, "n2 standby and www on n1", LONG, |s| {
        node_state(s, "n2").as_deref() == Some("standby")
            && runs_on(s, "www").as_deref() == Some("n1")
    });
    eventually_true(&lab, "VIP and service back on n1", || {
        www_really_on(&lab, 1)
    });

    // A standby node takes nothing, even when asked by name: refused at once, and
    // nothing is left behind that would move www there later (checked after `online`).
    let asked = Instant::now();
    let refused = lab.tandemctl(1, &["move", "www", "n2"]);
    assert_eq!(refused.status.code(), Some(1), "{}", text(&refused.stdout));
    assert!(
        text(&refused.stderr).contains("n2 is in standby"),
        "{}",
        text(&refused.stderr)
    );
    assert!(
        asked.elapsed() < Duration::from_secs(10),
        "refused without waiting"
    );
    // Nor does a witness.
    let refused = lab.tandemctl(1, &["move", "www", "n3"]);
    assert_eq!(refused.status.code(), Some(1), "{}", text(&refused.stdout));
    assert!(
        text(&refused.stderr).contains("n3 is a witness"),
        "{}",
        text(&refused.stderr)
    );
    assert!(www_really_on(&lab, 1), "a refused move left www in place");

    // online: n2 is eligible again, and a later move to it works.
    ok(&lab, 1, &["online", "n2"]);
    eventually(&lab, 3, "n2 online", LONG, |s| {
        node_state(s, "n2").as_deref() == Some("online")
    });
    // failback is off: becoming eligible again moves nothing by itself.
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        www_really_on(&lab, 1),
        "www left n1 when n2 came back online"
    );
    let out = ok(&lab, 2, &["move", "www", "n2"]);
    assert!(out.contains("www moved from n1 to n2 in "), "{out}");
    eventually_true(&lab, "VIP and service on n2 again", || {
        www_really_on(&lab, 2)
    });
    assert_eq!(starts(&lab, 2, "www"), 2, "{:?}", svc_log(&lab, 2, "www"));
}

#[test]
fn maintenance_stops_recovery_and_off_resumes_monitoring() {
    let Some(_serial) =
        support::lab::serial_lab_test("maintenance_stops_recovery_and_off_resumes_monitoring")
    else {
        return;
    };
    let mut lab = build();
    start_and_wait_for_www(&mut lab);
    let s = status(&lab, 1).expect("status");
    assert_eq!(fail_count(&s, "www", "svc"), Some(0), "{s}");
    assert_eq!(starts(&lab, 1, "www"), 1, "{:?}", svc_log(&lab, 1, "www"));

    let out = ok(&lab, 2, &["maintenance", "on"]);
    assert!(out.contains("maintenance ON"), "{out}");
    for node in 1..=3 {
        eventually(&lab, node, "maintenance everywhere", LONG, |s| {
            s["maintenance"] == true
        });
    }

    // Kill the service behind tandem's back: its monitor now says "not running".
    std::fs::remove_file(svc_dir(&lab, 1).join("www.up")).expect("kill the service");
    // Ten monitor intervals: nothing notices, nothing restarts, nothing moves.
    let until = Instant::now() + Duration::from_secs(5);
    while Instant::now() < until {
        std::thread::sleep(POLL);
        assert!(!svc_up(&lab, 1, "www"), "restarted during maintenance");
        assert!(!svc_up(&lab, 2, "www"), "moved during maintenance");
        assert!(has_vip(&lab, 1), "VIP touched during maintenance");
        assert_eq!(starts(&lab, 1, "www"), 1, "{:?}", svc_log(&lab, 1, "www"));
        let s = status(&lab, 1).expect("status");
        assert_eq!(
            fail_count(&s, "www", "svc"),
            Some(0),
            "failure counted: {s}"
        );
        assert_eq!(runs_on(&s, "www").as_deref(), Some("n1"), "{s}");
    }
    assert_eq!(
        svc_log_from_start(&lab, 1, "www"),
        ["start"],
        "no operation at all during maintenance"
    );

    // Off: the next monitor finds the service dead and restarts it in place.
    let out = ok(&lab, 2, &["maintenance", "off"]);
    assert!(!out.contains("maintenance ON"), "{out}");
    eventually_true(&lab, "the service restarted on n1", || {
        starts(&lab, 1, "www") == 2 && svc_up(&lab, 1, "www")
    });
    let s = eventually(
        &lab,
        1,
        "the failure counted, www running on n1",
        LONG,
        |s| fail_count(s, "www", "svc") == Some(1) && runs_on(s, "www").as_deref() == Some("n1"),
    );
    assert_eq!(s["maintenance"], false, "{s}");
    assert!(
        www_really_on(&lab, 1),
        "www stays on n1 (one failure < threshold)"
    );
    let out = ok(&lab, 1, &["events"]);
    assert!(out.contains("svc"), "the failure is in the events:\n{out}");
}

/// Records every moment the VIP is missing from `ns` while the guard lives.
struct VipWatch {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<usize>>,
}

impl VipWatch {
    fn start(ns: String) -> VipWatch {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut missing = 0;
            while !flag.load(Ordering::Relaxed) {
                if !has_vip_in(&ns) {
                    missing += 1;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            missing
        });
        VipWatch {
            stop,
            thread: Some(thread),
        }
    }

    /// How many samples found the VIP missing.
    fn finish(mut self) -> usize {
        self.stop.store(true, Ordering::Relaxed);
        self.thread
            .take()
            .map(|t| t.join().expect("VIP watcher"))
            .unwrap_or(0)
    }
}

impl Drop for VipWatch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn digest_of(path: &Path) -> String {
    format!(
        "{:016x}",
        tandem::config::load(path)
            .expect("valid config")
            .cluster_spec()
            .digest
    )
}

#[test]
fn rolling_reload_adds_a_group_without_restarting_www() {
    let Some(_serial) =
        support::lab::serial_lab_test("rolling_reload_adds_a_group_without_restarting_www")
    else {
        return;
    };
    let mut lab = build();
    start_and_wait_for_www(&mut lab);
    let old: Vec<String> = (1..=3)
        .map(|n| {
            status(&lab, n).expect("status")["config_digest"]
                .as_str()
                .expect("digest")
                .to_string()
        })
        .collect();
    assert!(old.iter().all(|d| *d == old[0]), "{old:?}");

    // A broken file on n1 first: refused, the old config keeps running.
    let config = lab.config_path(1);
    let original = std::fs::read_to_string(&config).expect("read config");
    std::fs::write(
        &config,
        format!("{original}  - name: db\n    resources: []\n"),
    )
    .expect("write");
    let out = lab.tandemctl(1, &["reload"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    assert!(
        text(&out.stderr).contains("config not reloaded"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(
        status(&lab, 1).expect("status")["config_digest"],
        old[0].as_str()
    );

    // The new file: www unchanged, a new group db. Rolled out node by node.
    let changed = format!("{original}{}", db_group());
    let dir = lab.dir().to_str().expect("UTF-8").to_string();
    let changed = changed.replace(LABDIR, &dir);
    let watch = VipWatch::start(ns(&lab, 1));
    let mut new_digest = String::new();
    for node in 1..=3 {
        let path = lab.config_path(node);
        std::fs::write(&path, &changed).expect("write config");
        new_digest = digest_of(&path);
        assert_ne!(new_digest, old[0]);
        let out = ok(&lab, node, &["reload"]);
        assert!(out.contains(&new_digest), "n{node}: {out}");
        eventually(&lab, node, "the new digest", LONG, |s| {
            s["config_digest"] == new_digest.as_str()
        });
        if node == 1 {
            // Mid-roll: the nodes still on the old file warn about n1.
            eventually_true(&lab, "n2 warns about n1's digest", || {
                ok(&lab, 2, &["events"])
                    .lines()
                    .any(|l| l.contains("n1 runs a config with a different digest"))
            });
        }
    }
    for node in 1..=3 {
        let s = eventually(&lab, node, "db running", LONG, |s| {
            runs_on(s, "db").is_some()
        });
        assert_eq!(s["config_digest"], new_digest.as_str(), "n{node}");
    }
    let s = status(&lab, 1).expect("status");
    let db_owner = node_index(&runs_on(&s, "db").expect("db owner"));
    assert!(db_owner == 1 || db_owner == 2, "db on the witness? {s}");
    eventually_true(&lab, "db's service up on its owner", || {
        svc_up(&lab, db_owner, "db")
    });
    assert_eq!(
        starts(&lab, db_owner, "db"),
        1,
        "{:?}",
        svc_log(&lab, db_owner, "db")
    );

    // Let www's monitor run a few more times, then check nothing touched it.
    std::thread::sleep(Duration::from_secs(2));
    let missing = watch.finish();
    assert_eq!(
        missing,
        0,
        "the VIP left n1 during the reload\n{}",
        all_logs(&lab)
    );
    assert_eq!(
        svc_log_from_start(&lab, 1, "www"),
        ["start"],
        "www's service was restarted by the reload\n{}",
        all_logs(&lab)
    );
    assert!(www_really_on(&lab, 1));
    for node in 1..=3 {
        let s = status(&lab, node).expect("status");
        assert_eq!(runs_on(&s, "www").as_deref(), Some("n1"), "n{node}: {s}");
        assert_eq!(fail_count(&s, "www", "svc"), Some(0), "n{node}: {s}");
    }
}

/// Whether `ns` has `addr` (as `a.b.c.d/24`) on eth0.
fn has_addr_in(ns: &str, addr: &str) -> bool {
    let out = Proc::new("ip")
        .args(["-n", ns, "-o", "-4", "addr", "show", "dev", "eth0"])
        .output()
        .expect("ip addr");
    assert!(out.status.success(), "ip addr in {ns} failed");
    text(&out.stdout).contains(&format!(" {addr} "))
}

/// A reload that changes what a resource IS (the VIP's address) while keeping its
/// name must restart the group on its owner: the old address removed, the new one
/// added, and no failure counted on the way. (The core compares each group's resource
/// definitions, `GroupSpec::resources_revision`, not only their names.)
#[test]
fn reload_changing_the_vip_address_restarts_www_cleanly() {
    let Some(_serial) =
        support::lab::serial_lab_test("reload_changing_the_vip_address_restarts_www_cleanly")
    else {
        return;
    };
    let mut lab = build();
    start_and_wait_for_www(&mut lab);
    let old_addr = format!("{VIP}/24");
    let new_addr = "192.0.2.101/24";
    for node in 1..=3 {
        let path = lab.config_path(node);
        let yaml = std::fs::read_to_string(&path).expect("read config");
        assert!(yaml.contains(&old_addr));
        std::fs::write(&path, yaml.replace(&old_addr, new_addr)).expect("write config");
        let out = ok(&lab, node, &["reload"]);
        assert!(out.contains("config applied"), "n{node}: {out}");
    }
    let n1 = ns(&lab, 1);
    eventually_true(&lab, "the new VIP on n1", || has_addr_in(&n1, new_addr));
    // Give a leftover address time to show; the old one must be gone everywhere.
    std::thread::sleep(Duration::from_secs(2));
    for node in 1..=3 {
        assert!(
            !has_addr_in(&ns(&lab, node), &old_addr),
            "n{node} still holds the old VIP {old_addr} after the reload\nlogs:\n{}",
            all_logs(&lab)
        );
    }
    let s = status(&lab, 1).expect("status");
    assert_eq!(runs_on(&s, "www").as_deref(), Some("n1"), "{s}");
    let vip = group(&s, "www").expect("www")["resources"][0]["fail_count"].as_u64();
    assert_eq!(vip, Some(0), "the reload counted as a failure: {s}");
}
