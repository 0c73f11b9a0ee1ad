//! Integration tests of the network-namespace lab itself. They need root, iproute2,
//! nftables and ping; when those are missing they are skipped with one line naming the
//! package (under CI they fail: .ci/run installs them). tandemd is replaced by a shell stand-in, so these tests do not depend
//! on the daemon.

mod support;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::time::Duration;

use tandem::lab::{self, wait_until, Lab, LabSpec, Ns};

/// A temp file removed on drop (the stand-in daemon script).
struct TempScript(PathBuf);

impl Drop for TempScript {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.0);
    }
}

/// A fake tandemd: prints its arguments and addresses (proving which namespace it runs
/// in), then sleeps; exits 0 on SIGTERM.
fn standin(tag: &str) -> TempScript {
    let path = std::env::temp_dir().join(format!(
        "tandem-lab-standin-{}-{tag}.sh",
        std::process::id()
    ));
    support::script::write_executable(
        &path,
        "#!/bin/sh\necho \"standin args: $*\"\nip -o addr show\ntrap 'echo got-term; exit 0' TERM\nsleep 600 &\nwait $!\n",
    );
    TempScript(path)
}

fn spec(script: &TempScript) -> LabSpec {
    LabSpec {
        nodes: 3,
        witnesses: vec![3],
        tandemd: script.0.clone(),
        tandemctl: PathBuf::from("/bin/echo"),
        ..LabSpec::default()
    }
}

/// Root, the lab's tools and ping (see the module comment); false: skip.
fn ready(test: &str) -> bool {
    support::lab::lab_or_skip(test) && support::require_tool(test, "ping", "iputils-ping")
}

/// The usual lab with stand-in daemons (kept alive by the returned script), or None
/// when this host cannot run it (the test is skipped).
fn standin_lab(test: &str) -> Option<(TempScript, Lab)> {
    ready(test).then(|| {
        let script = standin(test);
        let lab = build(spec(&script));
        (script, lab)
    })
}

fn build(spec: LabSpec) -> Lab {
    Lab::build(spec).unwrap_or_else(|e| panic!("cannot build the lab: {e}"))
}

fn can_ping(lab: &Lab, from: Ns, to: std::net::IpAddr) -> bool {
    let to = to.to_string();
    let out = lab
        .exec(from, &["ping", "-c1", "-W1", &to])
        .unwrap_or_else(|e| panic!("running ping: {e}"));
    out.status.success()
}

/// Pings with retries, for the positive direction (the first packet may wait on ARP).
fn reachable(lab: &Lab, from: Ns, to: std::net::IpAddr) -> bool {
    wait_until(Duration::from_secs(10), Duration::from_millis(100), || {
        can_ping(lab, from, to).then_some(())
    })
    .is_some()
}

fn lab_namespaces(prefix: &str) -> Vec<String> {
    let out = std::process::Command::new("ip")
        .args(["netns", "list"])
        .output()
        .expect("ip netns list");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.starts_with(&format!("{prefix}-")))
        .map(str::to_string)
        .collect()
}

/// Interfaces and addresses of the host namespace, without volatile counters.
fn host_network() -> Vec<String> {
    let mut lines = Vec::new();
    for args in [["-o", "link"], ["-o", "addr"]] {
        let out = std::process::Command::new("ip")
            .args(args)
            .output()
            .expect("ip");
        for l in String::from_utf8_lossy(&out.stdout).lines() {
            // Keep "index: name" and addresses; drop state words that may flap.
            let fields: Vec<&str> = l.split_whitespace().collect();
            let keep = if args[1] == "link" { 2 } else { 4 };
            lines.push(
                fields
                    .iter()
                    .take(keep)
                    .copied()
                    .collect::<Vec<_>>()
                    .join(" "),
            );
        }
    }
    lines.sort();
    lines
}

#[test]
fn links_cut_heal_and_partition() {
    if !ready("links_cut_heal_and_partition") {
        return;
    }
    let script = standin("links");
    let host_before = host_network();
    let mut lab = build(spec(&script));
    assert_eq!(
        lab_namespaces(lab.prefix()).len(),
        5,
        "3 nodes + switch + client"
    );

    for link in 0..2 {
        assert!(
            reachable(&lab, Ns::Node(1), lab.address(2, link)),
            "n1 -> n2 on link {link}"
        );
    }
    assert!(
        reachable(&lab, Ns::Client, lab.address(3, 0)),
        "client -> n3"
    );

    lab.cut_link(1, 0).unwrap();
    assert!(
        !can_ping(&lab, Ns::Node(1), lab.address(2, 0)),
        "link 0 of n1 is cut"
    );
    assert!(
        !can_ping(&lab, Ns::Client, lab.address(1, 0)),
        "the client is cut off n1 too"
    );
    assert!(
        reachable(&lab, Ns::Node(1), lab.address(2, 1)),
        "link 1 still works"
    );
    assert!(
        reachable(&lab, Ns::Node(2), lab.address(3, 0)),
        "others are unaffected"
    );

    lab.heal_link(1, 0).unwrap();
    assert!(reachable(&lab, Ns::Node(1), lab.address(2, 0)), "healed");

    lab.isolate(2).unwrap();
    for link in 0..2 {
        assert!(
            !can_ping(&lab, Ns::Node(1), lab.address(2, link)),
            "n2 isolated on link {link}"
        );
    }
    lab.heal(2).unwrap();
    assert!(reachable(&lab, Ns::Node(1), lab.address(2, 1)));

    lab.partition(&[&[1], &[2, 3]]).unwrap();
    for link in 0..2 {
        assert!(
            !can_ping(&lab, Ns::Node(1), lab.address(2, link)),
            "1 | 2 on link {link}"
        );
        assert!(
            !can_ping(&lab, Ns::Node(3), lab.address(1, link)),
            "3 | 1 on link {link}"
        );
        assert!(
            reachable(&lab, Ns::Node(2), lab.address(3, link)),
            "2 - 3 on link {link}"
        );
    }
    assert!(
        reachable(&lab, Ns::Client, lab.address(1, 0)),
        "the client sees both sides"
    );
    assert!(reachable(&lab, Ns::Client, lab.address(2, 0)));
    assert!(
        lab.partition(&[&[1], &[1, 2]]).is_err(),
        "a node on two sides is rejected"
    );

    lab.heal_all().unwrap();
    for link in 0..2 {
        assert!(
            reachable(&lab, Ns::Node(1), lab.address(3, link)),
            "heal_all on link {link}"
        );
    }

    lab.links_down(2).unwrap();
    assert!(
        !can_ping(&lab, Ns::Node(1), lab.address(2, 0)),
        "n2's links are down"
    );
    lab.links_up(2).unwrap();
    assert!(
        reachable(&lab, Ns::Node(1), lab.address(2, 0)),
        "n2's links are back"
    );

    // Nothing leaks into the host namespace (which may legitimately use the test ranges
    // itself, so compare against the snapshot taken before the lab existed).
    assert_eq!(
        host_network(),
        host_before,
        "the lab changed the host namespace"
    );

    let prefix = lab.prefix().to_string();
    drop(lab);
    assert!(lab_namespaces(&prefix).is_empty(), "namespaces left behind");
}

/// A power loss cuts every link of the node at one instant (one nft transaction at the
/// switch) before the slower kill and links down; the cut is not a network fault, so
/// `heal_all` leaves it, and the reboot ends it.
#[test]
fn a_blackout_silences_every_link_until_power_returns() {
    let Some((_script, mut lab)) =
        standin_lab("a_blackout_silences_every_link_until_power_returns")
    else {
        return;
    };
    // n2 neither hears nor is heard on any link.
    let dark = |lab: &Lab| {
        (0..2).all(|l| {
            !can_ping(lab, Ns::Node(1), lab.address(2, l))
                && !can_ping(lab, Ns::Node(2), lab.address(3, l))
        })
    };
    assert!((0..2).all(|l| reachable(&lab, Ns::Node(1), lab.address(2, l))));

    lab.blackout(2).unwrap();
    assert!(dark(&lab), "n2 is silent on every link");
    assert!(
        !can_ping(&lab, Ns::Client, lab.address(2, 0)),
        "the client gets no answer from a dark node"
    );
    lab.heal_all().unwrap();
    assert!(dark(&lab), "heal_all does not bring power back");
    assert!(
        reachable(&lab, Ns::Node(1), lab.address(3, 0)),
        "others are unaffected"
    );
    lab.end_blackout(2).unwrap();
    assert!(
        reachable(&lab, Ns::Node(1), lab.address(2, 1)),
        "power back"
    );

    // power_off = blackout + kill + links down; power_on undoes all three.
    lab.start_all().unwrap();
    lab.power_off(2).unwrap();
    assert!(!lab.is_running(2), "the daemon is killed");
    assert!(!can_ping(&lab, Ns::Client, lab.address(2, 0)), "n2 is off");
    lab.power_on(2).unwrap();
    assert!(lab.is_running(2), "the reboot starts the daemon");
    for link in 0..2 {
        assert!(
            reachable(&lab, Ns::Node(1), lab.address(2, link)),
            "n2 back on link {link}"
        );
    }
}

#[test]
fn daemons_run_inside_their_namespace_and_obey_signals() {
    if !ready("daemons_run_inside_their_namespace_and_obey_signals") {
        return;
    }
    let script = standin("daemons");
    let mut lab = build(spec(&script));

    // Config and key on disk.
    let key = fs::read_to_string(lab.authkey_path()).unwrap();
    assert_eq!(key.len(), 65);
    assert!(key.trim_end().bytes().all(|b| b.is_ascii_hexdigit()) && key.ends_with('\n'));
    let mode = fs::metadata(lab.authkey_path())
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);
    let config: serde_yaml::Value =
        serde_yaml::from_str(&fs::read_to_string(lab.config_path(2)).unwrap()).unwrap();
    assert_eq!(
        config["cluster"]["authkey"].as_str(),
        lab.authkey_path().to_str()
    );
    assert_eq!(config["nodes"][2]["witness"].as_bool(), Some(true));

    lab.start_all().unwrap();
    assert!(matches!(
        lab.start(1),
        Err(lab::LabError::AlreadyRunning(1))
    ));
    for node in 1..=3 {
        let seen = wait_until(Duration::from_secs(10), Duration::from_millis(50), || {
            let log = lab.logs(node);
            (log.contains("inet ") && log.contains("standin args")).then_some(log)
        })
        .unwrap_or_else(|| panic!("n{node} stand-in produced no output: {:?}", lab.logs(node)));
        let args = format!(
            "--config {} --node n{node} --socket {} --state-dir {}",
            lab.config_path(node).display(),
            lab.socket_path(node).display(),
            lab.state_dir(node).display()
        );
        assert!(seen.contains(&args), "n{node} args: {seen}");
        assert!(
            seen.contains(&format!("{}/24", lab.address(node, 0))),
            "n{node} runs in its namespace: {seen}"
        );
        for other in (1..=3).filter(|&o| o != node) {
            assert!(
                !seen.contains(&format!("{}/24", lab.address(other, 0))),
                "n{node} sees n{other}'s address"
            );
        }
        // The pid we hold is the daemon itself and lives in the node namespace.
        let pid = lab.pid(node).unwrap();
        assert!(lab.pids(Ns::Node(node)).contains(&pid));
    }

    let pid = lab.pid(1).unwrap();
    lab.pause(1).unwrap();
    let state = |pid: u32| {
        let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        stat.rsplit_once(')')
            .and_then(|(_, r)| r.trim_start().chars().next())
    };
    assert!(
        wait_until(Duration::from_secs(5), Duration::from_millis(20), || {
            (state(pid) == Some('T')).then_some(())
        })
        .is_some(),
        "paused process is stopped"
    );
    assert!(lab.is_running(1), "a paused daemon is still running");
    lab.resume(1).unwrap();
    assert!(
        wait_until(Duration::from_secs(5), Duration::from_millis(20), || {
            (state(pid) != Some('T')).then_some(())
        })
        .is_some(),
        "resumed"
    );

    // SIGTERM works even on a paused daemon.
    lab.pause(1).unwrap();
    lab.terminate(1).unwrap();
    assert!(!lab.is_running(1));
    assert!(
        lab.last_exit(1).is_some_and(|s| s.success()),
        "stand-in exits 0 on TERM"
    );
    assert!(matches!(lab.kill(1), Err(lab::LabError::NotRunning(1))));

    lab.kill(2).unwrap();
    assert!(!lab.is_running(2));
    assert!(!lab::pid_alive(pid));

    // Restart appends to the same log.
    lab.start(1).unwrap();
    assert!(
        wait_until(Duration::from_secs(10), Duration::from_millis(50), || {
            (lab.logs(1).matches("standin args").count() == 2).then_some(())
        })
        .is_some()
    );

    // tandemctl is invoked with the node's socket (here /bin/echo shows the arguments).
    let out = lab.tandemctl(2, &["status", "--json"]);
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("--socket {} status --json", lab.socket_path(2).display())
    );
    assert!(lab.exec(Ns::Node(1), &[]).is_err());
}

#[test]
fn concurrent_labs_do_not_collide() {
    if !ready("concurrent_labs_do_not_collide") {
        return;
    }
    let script = standin("concurrent");
    let labs: Vec<Lab> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..2).map(|_| s.spawn(|| build(spec(&script)))).collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_ne!(labs[0].prefix(), labs[1].prefix());
    assert_ne!(labs[0].dir(), labs[1].dir());
    let mut labs = labs;
    labs[0].cut_link(1, 0).unwrap();
    // Same addresses in both labs, yet each is its own network.
    assert!(!can_ping(&labs[0], Ns::Node(1), labs[0].address(2, 0)));
    assert!(reachable(&labs[1], Ns::Node(1), labs[1].address(2, 0)));
    let prefixes: Vec<String> = labs.iter().map(|l| l.prefix().to_string()).collect();
    drop(labs);
    for p in prefixes {
        assert!(lab_namespaces(&p).is_empty());
    }
}

#[test]
fn drop_on_panic_removes_everything() {
    if !ready("drop_on_panic_removes_everything") {
        return;
    }
    let script = standin("panic");
    let mut seen: Option<(String, PathBuf, Vec<u32>)> = None;
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let mut lab = build(spec(&script));
        lab.start_all().unwrap();
        lab.spawn(Ns::Client, &["sleep", "600"]).unwrap();
        // A grandchild in its own process group: only the namespace sweep can find it.
        lab.spawn(Ns::Node(2), &["sh", "-c", "setsid sleep 600 & sleep 600"])
            .unwrap();
        let pids = wait_until(Duration::from_secs(10), Duration::from_millis(50), || {
            let pids: Vec<u32> = [Ns::Node(1), Ns::Node(2), Ns::Node(3), Ns::Client]
                .into_iter()
                .flat_map(|ns| lab.pids(ns))
                .collect();
            // 3 stand-ins (sh + sleep each) + client sleep + sh + 2 sleeps.
            (pids.len() >= 10).then_some(pids)
        })
        .expect("all lab processes running");
        seen = Some((lab.prefix().to_string(), lab.dir().to_path_buf(), pids));
        panic!("deliberate panic with a live lab");
    }));
    assert!(result.is_err());
    let (prefix, dir, pids) = seen.expect("lab was built");
    assert!(
        lab_namespaces(&prefix).is_empty(),
        "namespaces left after panic"
    );
    assert!(!dir.exists(), "temp dir left after panic");
    for pid in pids {
        assert!(
            wait_until(Duration::from_secs(5), Duration::from_millis(20), || {
                (!lab::pid_alive(pid)).then_some(())
            })
            .is_some(),
            "process {pid} survived the lab"
        );
    }
}

#[test]
fn teardown_is_idempotent_and_cleanup_stale_spares_live_labs() {
    if !ready("teardown_is_idempotent_and_cleanup_stale_spares_live_labs") {
        return;
    }
    let script = standin("idem");
    let mut lab = build(spec(&script));
    lab.start(1).unwrap();
    // Our own lab belongs to a live pid: cleanup_stale must not touch it.
    lab::cleanup_stale().unwrap();
    assert_eq!(lab_namespaces(lab.prefix()).len(), 5);
    assert!(reachable(&lab, Ns::Node(1), lab.address(2, 0)));

    // A namespace named as if by a dead process is removed. Pid 0x7ffffffe cannot exist
    // (above pid_max's ceiling of 2^22).
    let stale = format!("{}2147483646-0-sw", lab::NAME_PREFIX);
    let st = std::process::Command::new("ip")
        .args(["netns", "add", &stale])
        .status()
        .unwrap();
    assert!(st.success());
    let removed = lab::cleanup_stale().unwrap();
    assert!(removed >= 1);
    assert!(!lab_namespaces(&format!("{}2147483646-0", lab::NAME_PREFIX)).contains(&stale));

    let prefix = lab.prefix().to_string();
    lab.teardown();
    lab.teardown();
    assert!(lab_namespaces(&prefix).is_empty());
    assert!(matches!(lab.cut_link(1, 0), Err(lab::LabError::TornDown)));
    assert!(matches!(lab.start(1), Err(lab::LabError::TornDown)));
}

#[test]
fn ipv6_lab_links_work() {
    if !ready("ipv6_lab_links_work") {
        return;
    }
    let script = standin("v6");
    let mut s = spec(&script);
    s.ipv6 = true;
    s.links = 3;
    let mut lab = build(s);
    for link in 0..3 {
        assert!(lab.address(2, link).is_ipv6());
        assert!(
            reachable(&lab, Ns::Node(1), lab.address(2, link)),
            "v6 link {link}"
        );
    }
    lab.cut_link(2, 2).unwrap();
    assert!(!can_ping(&lab, Ns::Node(1), lab.address(2, 2)));
    assert!(reachable(&lab, Ns::Client, lab.address(2, 0)));
}
