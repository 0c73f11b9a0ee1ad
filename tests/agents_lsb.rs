//! LSB init scripts: Debian's real /etc/init.d/nginx (package nginx-light, installed by
//! .ci/run), run inside a network namespace the test creates so that nginx's listening
//! sockets never touch the host; and stand-in scripts for the exit codes a
//! well-behaved script never produces.

mod support;

use std::path::PathBuf;
use std::time::Duration;
use support::agents::*;
use support::require;
use tandem::agents::lsb;
use tandem::agents::process::Launch;
use tandem::config::ResourceKind;
use tandem::core::{OpKind, OpResult};

const NGINX: &str = "/etc/init.d/nginx";

#[tokio::test]
async fn debian_nginx_init_script() {
    let test = "debian_nginx_init_script";
    if !require(test, NGINX, "nginx-light") || !require(test, "/usr/sbin/nginx", "nginx-light") {
        return;
    }
    // nginx keeps its pid in /run/nginx.pid: one already running on this machine would
    // be "our" nginx to the script. Say so rather than stop somebody else's server.
    let status = || {
        std::process::Command::new(NGINX)
            .arg("status")
            .env("SYSTEMCTL_SKIP_REDIRECT", "1")
            .output()
            .expect("run nginx status")
    };
    let mut host = status();
    if host.status.code() == Some(1) {
        // "dead, pid file exists": a pid file left by an earlier run that was killed
        // (its namespace's nginx died with it). Nobody runs it: remove it.
        let _ = std::fs::remove_file("/run/nginx.pid");
        host = status();
    }
    assert_eq!(
        host.status.code(),
        Some(3),
        "nginx already runs on this machine; this test needs it stopped"
    );
    let ns = Netns::new();
    let launch = Launch {
        wrapper: ns.wrapper(),
        // On a host booted with systemd, Debian's init-functions would hand the script
        // over to `systemctl` (outside our namespace); this keeps it a plain LSB script.
        env: vec![("SYSTEMCTL_SKIP_REDIRECT".into(), "1".into())],
        ..Launch::default()
    };
    let r = resource(
        "nginx",
        ResourceKind::Lsb {
            script: PathBuf::from(NGINX),
        },
        None,
    );
    let t = Duration::from_secs(60);
    for (kind, expected) in LIFE_CYCLE {
        let got = lsb::run_with(&ctx(&r, kind, t), &launch).await;
        assert_eq!(got, expected, "{kind:?}");
        if kind == OpKind::Start {
            assert!(
                !ns.pids().is_empty(),
                "nginx runs inside the test's namespace"
            );
        }
    }
    assert!(
        wait_until(Duration::from_secs(10), || ns.pids().is_empty()),
        "nginx left processes behind: {:?}",
        ns.pids()
    );
}

/// A script whose `status` exits with the code in file `code`, and whose start/stop
/// exit with the codes in `start`/`stop`.
fn standin(dir: &TempDir) -> PathBuf {
    dir.script(
        "svc",
        &format!(
            "#!/bin/sh\nd={}\nexit $(cat $d/$1 2>/dev/null || echo 99)\n",
            dir.path().display()
        ),
    )
}

fn set(dir: &TempDir, verb: &str, code: i32) {
    std::fs::write(dir.join(verb), code.to_string()).expect("write code");
}

#[tokio::test]
async fn lsb_exit_codes_follow_pacemaker() {
    let dir = TempDir::new("lsb");
    let r = resource(
        "svc",
        ResourceKind::Lsb {
            script: standin(&dir),
        },
        None,
    );
    let launch = Launch::default();
    let t = Duration::from_secs(20);
    let run = |kind| {
        let r = r.clone();
        let launch = launch.clone();
        async move { lsb::run_with(&ctx(&r, kind, t), &launch).await }
    };

    // status: 0 running; 1, 2, 3 not running; 4 (unknown) and others fail.
    for (code, expected_ok) in [
        (0, Some(OpResult::Ok)),
        (1, Some(OpResult::NotRunning)),
        (2, Some(OpResult::NotRunning)),
        (3, Some(OpResult::NotRunning)),
        (4, None),
        (150, None),
    ] {
        set(&dir, "status", code);
        let got = run(OpKind::Monitor).await;
        match expected_ok {
            Some(e) => assert_eq!(got, e, "status {code}"),
            None => assert!(matches!(got, OpResult::Failed(_)), "status {code}: {got:?}"),
        }
    }

    // A failed start of a service that status says runs is a success; otherwise not.
    set(&dir, "start", 1);
    set(&dir, "status", 0);
    assert_eq!(run(OpKind::Start).await, OpResult::Ok);
    set(&dir, "status", 3);
    assert!(matches!(run(OpKind::Start).await, OpResult::Failed(w) if w.contains("start: exit 1")));

    // A failed stop of a service that status says is stopped is a success.
    set(&dir, "stop", 1);
    set(&dir, "status", 3);
    assert_eq!(run(OpKind::Stop).await, OpResult::Ok);
    set(&dir, "status", 0);
    assert!(matches!(run(OpKind::Stop).await, OpResult::Failed(_)));

    // A missing script is a failure that names it.
    let gone = resource(
        "gone",
        ResourceKind::Lsb {
            script: dir.join("nope"),
        },
        None,
    );
    assert!(matches!(
        lsb::run_with(&ctx(&gone, OpKind::Monitor, t), &launch).await,
        OpResult::Failed(w) if w.contains("nope")
    ));
}
