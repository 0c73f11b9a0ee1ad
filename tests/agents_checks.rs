//! Health checks for real: script checks run real shell commands (exit codes, a hung
//! script killed with its children at the timeout, fall/rise driven by a flag file);
//! ping checks run iputils `ping` inside a network namespace the test creates, against
//! a peer namespace on a veth (192.0.2.0/24 only), which an nftables rule in the peer
//! then silences and releases. The namespaces are deleted on drop, also on panic. The
//! ping tests need root and are skipped with a message otherwise.

use std::future::Future;
use std::process::Command;
use std::time::{Duration, Instant};
mod support;

use support::agents::{Netns, TempDir};
use tandem::agents::checks::{probe, run_checks};
use tandem::config::{CheckConfig, CheckProbe};
use tandem::core::Input;
use tokio::sync::mpsc;

fn check(name: &str, probe: CheckProbe, interval_ms: u64, timeout_ms: u64) -> CheckConfig {
    CheckConfig {
        name: name.into(),
        probe,
        interval: Duration::from_millis(interval_ms),
        timeout: Duration::from_millis(timeout_ms),
        fall: 3,
        rise: 2,
        nodes: Vec::new(),
    }
}

fn script(cmd: &str) -> CheckProbe {
    CheckProbe::Script(cmd.into())
}

/// The next health report, within `limit`.
async fn next_report(rx: &mut mpsc::UnboundedReceiver<Input>, limit: Duration) -> bool {
    match tokio::time::timeout(limit, rx.recv()).await {
        Ok(Some(Input::Health { ok })) => ok,
        Ok(other) => panic!("expected a health report, got {other:?}"),
        Err(_) => panic!("no health report within {limit:?}"),
    }
}

/// No report for `quiet` (the state did not change).
async fn no_report(rx: &mut mpsc::UnboundedReceiver<Input>, quiet: Duration) {
    if let Ok(got) = tokio::time::timeout(quiet, rx.recv()).await {
        panic!("unexpected report {got:?}");
    }
}

#[tokio::test]
async fn script_probe_exit_codes_and_reasons() {
    let c = check("ok", script("exit 0"), 100, 2000);
    assert_eq!(probe(&c).await, Ok(()));
    let c = check("bad", script("echo 'disk full' >&2; exit 3"), 100, 2000);
    let why = probe(&c).await.expect_err("exit 3 fails");
    assert!(
        why.contains("exit status 3") && why.contains("disk full"),
        "{why}"
    );
}

#[tokio::test]
async fn a_hung_script_is_killed_with_its_children_at_the_timeout() {
    let dir = TempDir::new("checks-hung");
    let pidfile = dir.join("child.pid");
    let cmd = format!("sleep 60 & echo $! > {}; wait", pidfile.display());
    let c = check("hung", script(&cmd), 100, 500);
    let started = Instant::now();
    let why = probe(&c).await.expect_err("a hung script fails");
    assert!(why.contains("timed out"), "{why}");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "returned near the timeout, not when sleep ended"
    );
    let pid: i32 = std::fs::read_to_string(&pidfile)
        .expect("the script wrote its child's pid")
        .trim()
        .parse()
        .expect("pid");
    // The background `sleep` was in the script's process group: it must be gone (or a
    // zombie about to be reaped by init), not sleeping for a minute.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let state = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|s| {
                s.rsplit_once(')')
                    .map(|(_, r)| r.trim_start().chars().next())
            })
            .flatten();
        if matches!(state, None | Some('Z') | Some('X')) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "child {pid} survived the timeout"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test]
async fn script_check_reports_with_fall_and_rise() {
    let dir = TempDir::new("checks-flag");
    let flag = dir.join("ok");
    std::fs::write(&flag, "").expect("flag");
    let mut c = check(
        "flag",
        script(&format!("test -e {}", flag.display())),
        100,
        2000,
    );
    c.fall = 3;
    c.rise = 2;
    // A second check that always passes: the combined state follows the failing one.
    let always = check("always", script("true"), 100, 2000);
    // One for another node only: must not run here (it would fail).
    let mut elsewhere = check("elsewhere", script("false"), 100, 2000);
    elsewhere.nodes = vec!["beta".into()];
    let (tx, mut rx) = mpsc::unbounded_channel();
    let task = tokio::spawn(run_checks(vec![c, always, elsewhere], "alpha".into(), tx));
    let limit = Duration::from_secs(20);

    assert!(next_report(&mut rx, limit).await, "initially healthy");
    std::fs::remove_file(&flag).expect("rm flag");
    let removed = Instant::now();
    assert!(
        !next_report(&mut rx, limit).await,
        "fails after `fall` probes"
    );
    // Three failing probes, two intervals apart at least: never earlier.
    assert!(removed.elapsed() >= Duration::from_millis(150));
    std::fs::write(&flag, "").expect("flag");
    assert!(
        next_report(&mut rx, limit).await,
        "ok again after `rise` probes"
    );
    no_report(&mut rx, Duration::from_millis(800)).await;
    task.abort();
}

#[tokio::test]
async fn a_failing_first_probe_reports_unhealthy_at_once_and_no_checks_report_nothing() {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let task = tokio::spawn(run_checks(
        vec![check("broken", script("exit 1"), 100, 2000)],
        "alpha".into(),
        tx,
    ));
    assert!(!next_report(&mut rx, Duration::from_secs(20)).await);
    task.abort();

    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut other = check("other", script("exit 1"), 100, 2000);
    other.nodes = vec!["beta".into()];
    run_checks(vec![other], "alpha".into(), tx).await; // returns: nothing applies
    assert!(rx.recv().await.is_none(), "no report without checks");
}

// ---- ping checks in network namespaces ----

/// `nft SCRIPT` inside `ns`.
fn nft(ns: &Netns, script: &str) {
    run("ip", &["netns", "exec", &ns.name, "nft", script]);
}

fn run(program: &str, args: &[&str]) {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Node (192.0.2.1) and peer (192.0.2.2) on a veth; `None` when not root.
fn pair() -> Option<(Netns, Netns)> {
    let test = "agents_checks (ping checks)";
    if !support::root_or_skip(test)
        || !support::require_tool(test, "ping", "iputils-ping")
        || !support::require_tool(test, "nft", "nftables")
    {
        return None;
    }
    let node = Netns::new();
    let peer = Netns::new();
    node.ip(&[
        "link", "add", "eth0", "type", "veth", "peer", "name", "v1", "netns", &peer.name,
    ]);
    node.ip(&["addr", "add", "192.0.2.1/24", "dev", "eth0"]);
    peer.ip(&["addr", "add", "192.0.2.2/24", "dev", "v1"]);
    node.ip(&["link", "set", "eth0", "up"]);
    peer.ip(&["link", "set", "v1", "up"]);
    Some((node, peer))
}

/// Runs `f` on a thread inside `ns` with a current-thread runtime; `ping` children
/// inherit the namespace.
fn inside<T, F, Fut>(ns: &Netns, f: F) -> T
where
    T: Send + 'static,
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = T>,
{
    let path = format!("/run/netns/{}", ns.name);
    std::thread::spawn(move || {
        let file = std::fs::File::open(&path).expect("open netns");
        nix::sched::setns(file, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
            .block_on(f())
    })
    .join()
    .unwrap_or_else(|e| std::panic::resume_unwind(e))
}

#[test]
fn ping_check_follows_reachability_with_fall_and_rise() {
    let Some((node, peer)) = pair() else {
        return;
    };
    let peer_name = peer.name.clone();
    inside(&node, move || async move {
        let peer = Netns { name: peer_name };
        let mut c = check(
            "uplink",
            CheckProbe::Ping(vec!["192.0.2.2".parse().expect("ip")]),
            200,
            500,
        );
        c.fall = 3;
        c.rise = 2;
        // A dead target next to the live one: any answer is enough.
        let any = check(
            "any",
            CheckProbe::Ping(vec![
                "192.0.2.99".parse().expect("ip"),
                "192.0.2.2".parse().expect("ip"),
            ]),
            200,
            500,
        );
        let (tx, mut rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(run_checks(vec![c, any], "alpha".into(), tx));
        let limit = Duration::from_secs(30);
        assert!(
            next_report(&mut rx, limit).await,
            "target reachable: healthy"
        );

        // The peer stops answering echo requests.
        nft(&peer, "add table inet tdmchk");
        nft(
            &peer,
            "add chain inet tdmchk input { type filter hook input priority 0; policy accept; }",
        );
        nft(
            &peer,
            "add rule inet tdmchk input icmp type echo-request drop",
        );
        let dropped = Instant::now();
        assert!(!next_report(&mut rx, limit).await, "unreachable: unhealthy");
        // At least fall - 1 full failing probes (each waits its 500ms timeout) after
        // the drop; slowness only makes this later.
        assert!(
            dropped.elapsed() >= Duration::from_millis(900),
            "failed after {:?}, before `fall` probes could have failed",
            dropped.elapsed()
        );

        nft(&peer, "delete table inet tdmchk");
        assert!(
            next_report(&mut rx, limit).await,
            "reachable again: healthy"
        );
        task.abort();
        std::mem::forget(peer); // the test thread's `peer` deletes the namespace
    });
    drop(peer);
    drop(node);
}

#[test]
fn ping_probe_names_the_target_that_failed() {
    let Some((node, _peer)) = pair() else {
        return;
    };
    let why = inside(&node, || async {
        let c = check(
            "gone",
            CheckProbe::Ping(vec!["192.0.2.77".parse().expect("ip")]),
            200,
            300,
        );
        probe(&c).await
    });
    let why = why.expect_err("nobody has 192.0.2.77");
    assert!(why.contains("192.0.2.77"), "{why}");
}
