//! `tandemctl` against real daemons in the netns lab: every admin command round-trips
//! through a running `tandemd` and shows up in `status`; reload refuses broken files
//! with every error; the socket survives hostile input; the metrics endpoint answers;
//! the access policy holds for real users. Needs root, iproute2 and nftables.

use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Command as Proc, Output, Stdio};
use std::time::Duration;
use tandem::lab::{wait_until, Lab, LabSpec};

mod support;

use support::lab::{eventually, group, node_state, ok, runs_on, status, text, POLL};

const LONG: Duration = Duration::from_secs(40);

/// One group of two exec resources; the stub executor answers every operation "ok".
const GROUPS: &str = "groups:
  - name: www
    prefer: n1
    failback: false
    resources:
      - exec: { name: app, start: /bin/true, stop: /bin/true, monitor: /bin/true, timeout: 5s }
      - exec: { name: db, start: /bin/true, stop: /bin/true, monitor: /bin/true, timeout: 5s }
";

fn build(nodes: usize, extra_yaml: &str) -> Lab {
    let spec = LabSpec {
        nodes,
        extra_yaml: extra_yaml.into(),
        ..LabSpec::default()
    };
    Lab::build(spec).unwrap_or_else(|e| {
        panic!("cannot build the lab: {e}\n(needs root, iproute2 and nftables)")
    })
}

fn ctl(lab: &Lab, node: usize, args: &[&str]) -> Output {
    lab.tandemctl(node, args)
}

/// Runs tandemctl and insists on exit code `code`; returns stderr.
fn fails(lab: &Lab, node: usize, args: &[&str], code: i32) -> String {
    let out = ctl(lab, node, args);
    assert_eq!(
        out.status.code(),
        Some(code),
        "tandemctl {args:?}: {}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stderr)
}

#[test]
fn admin_commands_round_trip_through_real_daemons() {
    if !support::lab::lab_or_skip("admin_commands_round_trip_through_real_daemons") {
        return;
    }
    let mut lab = build(3, GROUPS);
    lab.start_all().expect("start");
    let s = eventually(&lab, 1, "www running and every node online", LONG, |s| {
        runs_on(s, "www").is_some()
            && ["n1", "n2", "n3"]
                .iter()
                .all(|n| node_state(s, n).as_deref() == Some("online"))
    });
    let first = runs_on(&s, "www").expect("owner");

    // Standby and online, seen from another node than the one asked.
    let out = ok(&lab, 1, &["standby", "n3"]);
    assert!(out.contains("n3 is in standby"), "{out}");
    eventually(&lab, 2, "n3 standby", LONG, |s| {
        node_state(s, "n3").as_deref() == Some("standby")
    });
    ok(&lab, 1, &["online", "n3"]);
    eventually(&lab, 2, "n3 online", LONG, |s| {
        node_state(s, "n3").as_deref() == Some("online")
    });

    // A move to a named node reports the switchover.
    let target = if first == "n2" { "n3" } else { "n2" };
    let out = ok(&lab, 1, &["move", "www", target]);
    let expected = format!("www moved from {first} to {target} in ");
    assert!(out.contains(&expected), "{out}");
    assert!(out.trim_end().ends_with(" s"), "{out}");
    eventually(&lab, 3, "www on the move target", LONG, |s| {
        runs_on(s, "www").as_deref() == Some(target)
    });
    let out = ok(&lab, 1, &["move", "--clear", "www"]);
    assert!(out.contains("move preference removed"), "{out}");

    // Standby of the owner moves the group away.
    ok(&lab, 1, &["standby", target]);
    eventually(&lab, 1, "www leaves the standby node", LONG, |s| {
        runs_on(s, "www").is_some_and(|o| o != target)
    });
    ok(&lab, 1, &["online", target]);

    // Maintenance, cluster-wide then per group: loud in the text status.
    let out = ok(&lab, 1, &["maintenance", "on"]);
    assert!(out.contains("maintenance ON"), "{out}");
    eventually(&lab, 2, "cluster maintenance", LONG, |s| {
        s["maintenance"] == true
    });
    let screen = ok(&lab, 1, &["status"]);
    assert!(screen.contains("*** MAINTENANCE"), "{screen}");
    ok(&lab, 1, &["maintenance", "off"]);
    eventually(&lab, 2, "maintenance off", LONG, |s| {
        s["maintenance"] == false
    });
    ok(&lab, 1, &["maintenance", "on", "www"]);
    eventually(&lab, 2, "group maintenance", LONG, |s| {
        group(s, "www").is_some_and(|g| g["maintenance"] == true)
    });
    ok(&lab, 1, &["maintenance", "off", "www"]);
    eventually(&lab, 2, "group maintenance off", LONG, |s| {
        group(s, "www").is_some_and(|g| g["maintenance"] == false)
    });

    // Cleanup: a resource is checked, the group is cleaned.
    let out = ok(&lab, 1, &["cleanup", "www", "db"]);
    assert!(out.contains("whole group"), "{out}");
    ok(&lab, 1, &["cleanup", "www"]);
    let err = fails(&lab, 1, &["cleanup", "www", "nope"], 1);
    assert!(err.contains("its resources: app, db"), "{err}");

    // Unknown names: exit 1, one line, with the known names.
    let err = fails(&lab, 1, &["standby", "zeta"], 1);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("known nodes: n1, n2, n3"), "{err}");
    let err = fails(&lab, 1, &["move", "mail"], 1);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("known groups: www"), "{err}");

    // Fence without a terminal and without --yes is a usage error; nothing is sent.
    let err = fails(&lab, 1, &["fence", "n2"], 2);
    assert!(err.contains("--yes"), "{err}");
    // With --yes but no fence agent for n2: refused at once, not retried forever.
    let err = fails(&lab, 1, &["fence", "n2", "--yes"], 1);
    assert!(err.contains("no fence agent is configured for n2"), "{err}");

    // Events: the admin commands are in the history, as text and as JSON lines.
    let out = ok(&lab, 1, &["events"]);
    assert!(out.contains("admin"), "{out}");
    let out = ok(&lab, 1, &["events", "--json"]);
    let kinds: Vec<String> = out
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("JSON line"))
        .map(|v| v["kind"].as_str().unwrap_or("").to_string())
        .collect();
    assert!(kinds.iter().any(|k| k == "admin"), "{kinds:?}");
    let screen = ok(&lab, 1, &["status"]);
    assert!(screen.contains("last events:"), "{screen}");
    for line in screen.lines() {
        assert!(line.chars().count() <= 100, "too wide: {line:?}");
    }

    // events --follow: a live event arrives after the history.
    let mut follower = Proc::new(&lab.spec().tandemctl)
        .arg("--socket")
        .arg(lab.socket_path(1))
        .args(["events", "--follow", "--json"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn follower");
    let stdout = follower.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    // Let the follower connect before the event happens (a late connection would
    // only find it in the history, which this test must not count).
    std::thread::sleep(Duration::from_secs(1));
    while rx.try_recv().is_ok() {}
    // The history already holds an earlier "n3 standby": only an event stamped after
    // this point is the live one (the lab's nodes share this machine's clock).
    let issued_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as u64;
    ok(&lab, 1, &["standby", "n3"]);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let mut seen = false;
    while std::time::Instant::now() < deadline && !seen {
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(500)) {
            let v: Value = serde_json::from_str(&line).expect("follow line is JSON");
            seen = v["kind"] == "admin"
                && v["reason"].as_str().unwrap_or("").contains("standby")
                && v["unix_ms"].as_u64().unwrap_or(0) >= issued_ms;
        }
    }
    let _ = follower.kill();
    let _ = follower.wait();
    assert!(seen, "events --follow did not print the standby event");
    ok(&lab, 1, &["online", "n3"]);

    // Without a daemon: exit 3, one line naming the socket.
    lab.terminate(1).expect("stop n1");
    let err = fails(&lab, 1, &["standby", "n2"], 3);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains(&lab.socket_path(1).display().to_string()),
        "{err}"
    );
}

/// Sends raw bytes on a fresh connection, optionally half-closes, and returns every
/// line the daemon answered until it closed (or 5 s passed).
fn raw_exchange(socket: &std::path::Path, bytes: &[u8], half_close: bool) -> Vec<Value> {
    let mut s = UnixStream::connect(socket).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    // A huge line may be refused before all of it is written: ignore write errors.
    let _ = s.write_all(bytes);
    if half_close {
        let _ = s.shutdown(std::net::Shutdown::Write);
    }
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    answer
        .lines()
        .map(|l| serde_json::from_str(l).expect("reply is JSON"))
        .collect()
}

fn replace_line(text: &str, prefix: &str, with: &str) -> String {
    let mut hit = false;
    let out: Vec<String> = text
        .lines()
        .map(|l| {
            if !hit && l.trim_start().starts_with(prefix) {
                hit = true;
                with.to_string()
            } else {
                l.to_string()
            }
        })
        .collect();
    assert!(hit, "no line starting with {prefix:?} in:\n{text}");
    out.join("\n") + "\n"
}

#[test]
fn reload_hostile_input_and_metrics_on_a_real_daemon() {
    if !support::lab::lab_or_skip("reload_hostile_input_and_metrics_on_a_real_daemon") {
        return;
    }
    let extra = format!("{GROUPS}metrics:\n  listen: 127.0.0.1:9405\n");
    let mut lab = build(1, &extra);
    lab.start_all().expect("start");
    let s = eventually(&lab, 1, "www running", LONG, |s| {
        runs_on(s, "www").is_some()
    });
    let digest = s["config_digest"].as_str().expect("digest").to_string();
    let config = lab.config_path(1);
    let original = std::fs::read_to_string(&config).expect("read config");

    // Two semantic errors: both reported with file:line:col, nothing applied.
    let broken = replace_line(&original, "interval:", "  interval: banana");
    let broken = replace_line(&broken, "deadtime:", "  deadtime: -3s");
    std::fs::write(&config, &broken).expect("write");
    let err = fails(&lab, 1, &["reload"], 1);
    assert!(err.contains("config not reloaded"), "{err}");
    let file = config.display().to_string();
    let located: Vec<&str> = err
        .lines()
        .filter(|l| {
            l.starts_with(&file) && {
                let rest = &l[file.len()..];
                let mut parts = rest.splitn(4, ':');
                parts.next() == Some("")
                    && parts.next().is_some_and(|n| n.parse::<u32>().is_ok())
                    && parts.next().is_some_and(|n| n.parse::<u32>().is_ok())
            }
        })
        .collect();
    assert!(located.len() >= 2, "every error with file:line:col:\n{err}");
    assert!(err.contains("heartbeat.interval"), "{err}");
    assert!(err.contains("heartbeat.deadtime"), "{err}");

    // A syntax error: one located error.
    std::fs::write(&config, format!("{original}groups: [\n")).expect("write");
    let err = fails(&lab, 1, &["reload"], 1);
    assert!(err.contains(&format!("{file}:")), "{err}");

    // SIGHUP takes the same path: refused, logged, the daemon keeps running.
    let pid = lab.pid(1).expect("pid");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGHUP,
    )
    .expect("SIGHUP");
    wait_until(LONG, POLL, || {
        lab.logs(1)
            .contains("SIGHUP: config NOT reloaded")
            .then_some(())
    })
    .unwrap_or_else(|| panic!("no SIGHUP refusal in the log:\n{}", lab.logs(1)));
    assert!(lab.is_running(1));

    // A key only a restart can change is named.
    std::fs::write(&config, replace_line(&original, "port:", "  port: 5406")).expect("write");
    let err = fails(&lab, 1, &["reload"], 1);
    assert!(
        err.contains("heartbeat.port: changed; restart tandemd"),
        "{err}"
    );
    let now = status(&lab, 1).expect("status");
    assert_eq!(now["config_digest"], digest.as_str(), "old config kept");

    // Unchanged file: nothing to do.
    std::fs::write(&config, &original).expect("write");
    let out = ok(&lab, 1, &["reload"]);
    assert!(out.contains("config unchanged"), "{out}");

    // A valid change (a third resource): applied, with the new digest.
    let changed = original.replace(
        "      - exec: { name: db,",
        "      - exec: { name: cache, start: /bin/true, stop: /bin/true, timeout: 5s }\n      - exec: { name: db,",
    );
    assert_ne!(changed, original);
    std::fs::write(&config, &changed).expect("write");
    let new_digest = format!(
        "{:016x}",
        tandem::config::load(&config)
            .expect("valid config")
            .cluster_spec()
            .digest
    );
    assert_ne!(new_digest, digest);
    let out = ctl(&lab, 1, &["reload"]);
    assert!(
        out.status.success(),
        "reload of a valid change: {}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert!(
        text(&out.stdout).contains(&new_digest),
        "{}",
        text(&out.stdout)
    );
    let now = status(&lab, 1).expect("status");
    assert_eq!(now["config_digest"], new_digest.as_str());

    // Hostile input on the socket: an error reply or a clean close each time.
    let sock = lab.socket_path(1);
    let r = raw_exchange(&sock, b"\x00\xffgarbage\n", true);
    assert!(r.len() == 1 && r[0]["ok"] == false, "{r:?}");
    let mut huge = vec![b'{'; 100 * 1024];
    huge.push(b'\n');
    let r = raw_exchange(&sock, &huge, false);
    assert!(r.iter().all(|v| v["ok"] == false), "{r:?}");
    let r = raw_exchange(&sock, br#"{"version":1,"cmd":"stan"#, true);
    assert!(r.len() == 1 && r[0]["ok"] == false, "{r:?}");
    let r = raw_exchange(&sock, b"{\"version\":1,\"cmd\":\"standby\"}\n", true);
    assert!(r.len() == 1 && r[0]["ok"] == false, "missing field: {r:?}");
    assert!(status(&lab, 1).is_some(), "daemon still serves");

    // Metrics, fetched from inside the node's namespace.
    let body = support::lab::scrape_metrics(&lab, 1, 9405);
    assert!(body.starts_with("HTTP/1.1 200 OK\r\n"), "{body}");
    for name in [
        "tandem_node_up{node=\"n1\"} 1",
        "tandem_quorate 1",
        "tandem_packets_dropped_total{reason=",
        "tandem_group_owner{group=\"www\",node=\"n1\"} 1",
        "tandem_group_term{group=\"www\"}",
        "tandem_failovers_total{group=\"www\"}",
        "tandem_fence_attempts_total 0",
        "# TYPE tandem_agent_op_duration_seconds summary",
    ] {
        assert!(body.contains(name), "missing {name} in:\n{body}");
    }
}

/// A group and two users made for one test, removed again on drop (also on panic).
struct Accounts {
    users: Vec<String>,
    created_group: bool,
}

impl Drop for Accounts {
    fn drop(&mut self) {
        for u in &self.users {
            let _ = Proc::new("userdel").arg(u).output();
        }
        if self.created_group {
            let _ = Proc::new("groupdel").arg("tandem").output();
        }
    }
}

fn run(cmd: &[&str]) {
    let out = Proc::new(cmd[0]).args(&cmd[1..]).output().expect(cmd[0]);
    assert!(out.status.success(), "{cmd:?}: {}", text(&out.stderr));
}

/// `tandemctl` (the copy at `tandemctl`) run as `user` against n1.
fn as_user(lab: &Lab, tandemctl: &Path, user: &str, args: &[&str]) -> Output {
    Proc::new("runuser")
        .args(["-u", user, "--"])
        .arg(tandemctl)
        .arg("--socket")
        .arg(lab.socket_path(1))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("runuser")
}

#[test]
fn the_tandem_group_may_read_but_not_act_and_strangers_are_refused() {
    if !support::lab::lab_or_skip("the_tandem_group_may_read_but_not_act_and_strangers_are_refused")
    {
        return;
    }
    // The group must exist before the daemon starts: it sets the socket's group then.
    let exists = Proc::new("getent")
        .args(["group", "tandem"])
        .output()
        .is_ok_and(|o| o.status.success());
    let tag = std::process::id() % 100_000;
    let member = format!("tdmro{tag}");
    let stranger = format!("tdmno{tag}");
    let mut accounts = Accounts {
        users: vec![],
        created_group: false,
    };
    if !exists {
        run(&["groupadd", "--system", "tandem"]);
        accounts.created_group = true;
    }
    run(&[
        "useradd",
        "-M",
        "-N",
        "-s",
        "/usr/sbin/nologin",
        "-G",
        "tandem",
        &member,
    ]);
    accounts.users.push(member.clone());
    run(&["useradd", "-M", "-N", "-s", "/usr/sbin/nologin", &stranger]);
    accounts.users.push(stranger.clone());

    let mut lab = build(1, GROUPS);
    lab.start_all().expect("start");
    eventually(&lab, 1, "www running", LONG, |s| {
        runs_on(s, "www").is_some()
    });
    // The lab keeps its files private; let the test users reach the socket.
    let node_dir = lab.socket_path(1).parent().expect("dir").to_path_buf();
    for d in [lab.dir().to_path_buf(), node_dir] {
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o711)).expect("chmod");
    }
    // The test users run a copy: the build tree may be where they cannot reach it (a
    // checkout under /root, which is 0700, as on a fresh machine set up as root).
    let tandemctl = lab.dir().join("tandemctl");
    support::script::copy_executable(&lab.spec().tandemctl, &tandemctl);

    let out = as_user(&lab, &tandemctl, &member, &["status", "--json"]);
    assert!(out.status.success(), "member status: {}", text(&out.stderr));
    let out = as_user(&lab, &tandemctl, &member, &["events"]);
    assert!(out.status.success(), "member events: {}", text(&out.stderr));
    let out = as_user(&lab, &tandemctl, &member, &["move", "www"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("permission denied: `move` needs root"),
        "{}",
        text(&out.stderr)
    );
    let out = as_user(&lab, &tandemctl, &member, &["maintenance", "on"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));

    // A stranger is stopped by the socket's mode...
    let out = as_user(&lab, &tandemctl, &stranger, &["status"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("Permission denied"),
        "{}",
        text(&out.stderr)
    );
    // ...and, should the mode be opened up, by the daemon's own check.
    std::fs::set_permissions(lab.socket_path(1), std::fs::Permissions::from_mode(0o666))
        .expect("chmod socket");
    let out = as_user(&lab, &tandemctl, &stranger, &["status"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("only root and members of group `tandem`"),
        "{}",
        text(&out.stderr)
    );
    let s = status(&lab, 1).expect("root still served");
    assert_eq!(
        group(&s, "www").map(|g| g["maintenance"] == false),
        Some(true)
    );
    drop(lab);
    drop(accounts);
}
