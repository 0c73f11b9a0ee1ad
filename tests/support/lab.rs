//! Helpers of the tests that drive real daemons in the netns lab (control_*, lab_*,
//! cluster_*): one lab test at a time, `tandemctl` calls, reading
//! `status --json`, and polling a status with every node's log in the panic message.

use serde_json::Value;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;
use tandem::lab::{wait_until, Lab};

static SERIAL: Mutex<()> = Mutex::new(());

/// The root rule, then the tools the lab itself runs (`ip`, `nft`; `lab::preflight`):
/// true to go ahead, false to skip with one line naming the package (under CI: fail).
pub fn lab_or_skip(test: &str) -> bool {
    if !super::root_or_skip(test) {
        return false;
    }
    match tandem::lab::preflight() {
        Ok(()) => true,
        Err(e) => super::skip_or_fail(test, &e.to_string()),
    }
}

/// Begins a lab test that must not overlap the others of its binary (the box has two
/// cores and the tests measure timing): `lab_or_skip`, then the binary's lock, held
/// until the guard drops. None: skip the test.
pub fn serial_lab_test(test: &str) -> Option<MutexGuard<'static, ()>> {
    lab_or_skip(test).then(|| SERIAL.lock().unwrap_or_else(|p| p.into_inner()))
}

/// `serial_lab_test` for a test that also runs `ping` inside the lab.
pub fn serial_ping_lab_test(test: &str) -> Option<MutexGuard<'static, ()>> {
    let guard = serial_lab_test(test)?;
    super::require_tool(test, "ping", "iputils-ping").then_some(guard)
}

/// How often a status is polled.
pub const POLL: Duration = Duration::from_millis(200);

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Runs tandemctl on `node` and insists on success; returns stdout.
pub fn ok(lab: &Lab, node: usize, args: &[&str]) -> String {
    let out = lab.tandemctl(node, args);
    assert!(
        out.status.success(),
        "tandemctl {args:?} on n{node} failed ({}): {}{}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

/// `tandemctl status --json` on `node`; None while the daemon does not answer.
pub fn status(lab: &Lab, node: usize) -> Option<Value> {
    let out = lab.tandemctl(node, &["status", "--json"]);
    if !out.status.success() {
        return None;
    }
    serde_json::from_slice(&out.stdout).ok()
}

pub fn group<'a>(s: &'a Value, name: &str) -> Option<&'a Value> {
    s["groups"].as_array()?.iter().find(|g| g["name"] == name)
}

pub fn node_state(s: &Value, name: &str) -> Option<String> {
    s["nodes"].as_array()?.iter().find(|n| n["name"] == name)?["state"]
        .as_str()
        .map(str::to_string)
}

/// The owner of group `g` when the group is running.
pub fn runs_on(s: &Value, g: &str) -> Option<String> {
    let g = group(s, g)?;
    (g["state"] == "running")
        .then(|| g["owner"].as_str().map(str::to_string))
        .flatten()
}

/// Every node's log, for panic messages.
pub fn all_logs(lab: &Lab) -> String {
    (1..=lab.node_count())
        .map(|i| format!("==== n{i} log ====\n{}", lab.logs(i)))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Polls `observer`'s status until `check` holds and returns that status; panics after
/// `limit` with the last status seen and every node's log.
pub fn eventually(
    lab: &Lab,
    observer: usize,
    what: &str,
    limit: Duration,
    check: impl Fn(&Value) -> bool,
) -> Value {
    let mut last = None;
    let found = wait_until(limit, POLL, || {
        let s = status(lab, observer)?;
        let hit = check(&s);
        last = Some(s.clone());
        hit.then_some(s)
    });
    found.unwrap_or_else(|| {
        panic!(
            "n{observer}: {what} not reached within {limit:?}; last status: {}\n{}",
            last.map(|s| s.to_string()).unwrap_or_else(|| "none".into()),
            all_logs(lab)
        )
    })
}

/// The body of `GET /metrics` on `127.0.0.1:port` inside node `node`'s namespace
/// (status line and headers included), polled until the endpoint answers.
pub fn scrape_metrics(lab: &Lab, node: usize, port: u16) -> String {
    use std::io::{Read, Write};
    let ns = lab.ns_name(tandem::lab::Ns::Node(node)).expect("ns");
    std::thread::spawn(move || {
        let f = std::fs::File::open(format!("/run/netns/{ns}")).expect("open netns");
        nix::sched::setns(f, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
        let mut body = String::new();
        let got = wait_until(Duration::from_secs(20), POLL, || {
            let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
            s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
            s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
                .ok()?;
            body.clear();
            s.read_to_string(&mut body).ok()?;
            Some(())
        });
        assert!(got.is_some(), "metrics endpoint never answered");
        body
    })
    .join()
    .expect("metrics thread")
}

/// A group `www` preferring n1 with one resource that does nothing: for lab tests about
/// everything but what a resource runs.
pub const IDLE_WWW: &str = "groups:
  - name: www
    prefer: n1
    resources:
      - exec: { name: app, start: /bin/true, stop: /bin/true, monitor: /bin/true, timeout: 5s }
";

/// A `fencing:` section whose agent never runs and whose params hold `secret` inline,
/// for `nodes` (a YAML list): what a report's redaction must hide.
pub fn fencing_with_secret(secret: &str, nodes: &str) -> String {
    format!(
        "fencing:
  self_fence: none
  agents:
    - name: bmc
      agent: /bin/false
      params: {{ ip: 192.0.2.77, password: {secret} }}
      nodes: {nodes}
"
    )
}
