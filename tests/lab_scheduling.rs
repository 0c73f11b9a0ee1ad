//! Staying up under load starts with the scheduler: the heartbeat thread runs SCHED_RR and
//! the daemon's memory is locked, while everything slow — the executor thread, the agents
//! and the services they leave running — stays an ordinary process. A service that
//! inherited real-time priority could starve the heartbeats it sits next to. Checked on
//! real daemons in the lab through /proc, and with both options switched off.

mod support;

use serde_json::Value;
use std::time::Duration;
use tandem::lab::{wait_until, Lab, LabSpec};

const SCHED_OTHER: u32 = 0;
const SCHED_FIFO: u32 = 1;
const SCHED_RR: u32 = 2;

/// A long-running service with a pid file in the node's private directory.
const GROUP: &str = r#"groups:
  - name: www
    prefer: n1
    resources:
      - exec:
          name: svc
          start: 'sleep 100000 </dev/null >/dev/null 2>&1 & echo $! > "$TANDEM_LAB_NODE_DIR/svc.pid"'
          stop: 'kill "$(cat "$TANDEM_LAB_NODE_DIR/svc.pid")" 2>/dev/null; rm -f "$TANDEM_LAB_NODE_DIR/svc.pid"; exit 0'
          monitor: '[ -f "$TANDEM_LAB_NODE_DIR/svc.pid" ] || exit 7'
"#;

/// Field 41 of /proc/PID/task/TID/stat: the scheduling policy. Fields are counted after
/// the command name, which may hold spaces, so the split starts at its closing paren.
fn policy(pid: u32, tid: u32) -> u32 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/stat"))
        .unwrap_or_else(|e| panic!("stat of {pid}/{tid}: {e}"));
    let rest = &stat[stat.rfind(')').expect("comm in stat") + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    fields[41 - 3].parse().expect("policy is a number")
}

/// (thread name, policy) of every thread of `pid`.
fn threads(pid: u32) -> Vec<(String, u32)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(format!("/proc/{pid}/task")).expect("task dir") {
        let tid: u32 = entry
            .expect("task entry")
            .file_name()
            .to_string_lossy()
            .parse()
            .expect("tid");
        let comm = std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/comm"))
            .expect("comm")
            .trim()
            .to_string();
        out.push((comm, policy(pid, tid)));
    }
    out
}

fn locked_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmLck:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmLck line")
}

fn runs_www(lab: &Lab) -> bool {
    let out = lab.tandemctl(2, &["status", "--json"]);
    let Ok(s) = serde_json::from_slice::<Value>(&out.stdout) else {
        return false;
    };
    s["groups"].as_array().is_some_and(|gs| {
        gs.iter()
            .any(|g| g["name"] == "www" && g["state"] == "running" && g["owner"] == "n1")
    })
}

/// Starts a lab whose n1 runs the service and returns (tandemd's worker pid, service
/// pid).
fn lab_with_service(extra: &str) -> (Lab, u32, u32) {
    let spec = LabSpec {
        nodes: 3,
        witnesses: vec![3],
        extra_yaml: format!("{extra}{GROUP}"),
        ..LabSpec::default()
    };
    let mut lab = Lab::build(spec).expect("lab (needs root, iproute2, nftables)");
    lab.start_all().expect("start");
    let pid_file = lab.run_dir(1).join("svc.pid");
    let svc = wait_until(Duration::from_secs(60), Duration::from_millis(200), || {
        if !runs_www(&lab) {
            return None;
        }
        std::fs::read_to_string(&pid_file)
            .ok()?
            .trim()
            .parse::<u32>()
            .ok()
    });
    let Some(svc) = svc else {
        panic!("n1 runs www:\n{}", lab.logs(1));
    };
    let mut lab = lab;
    let daemon = lab.worker_pid(1).expect("n1's tandemd runs");
    (lab, daemon, svc)
}

#[test]
fn only_the_heartbeat_thread_runs_realtime_and_memory_is_locked() {
    if !support::lab::lab_or_skip("only_the_heartbeat_thread_runs_realtime_and_memory_is_locked") {
        return;
    }
    let (lab, daemon, svc) = lab_with_service("");
    let threads = threads(daemon);
    let heartbeat: Vec<_> = threads
        .iter()
        .filter(|(name, _)| name.starts_with("tandem-heartbe"))
        .collect();
    assert_eq!(heartbeat.len(), 1, "{threads:?}");
    assert_eq!(heartbeat[0].1, SCHED_RR, "{threads:?}\n{}", lab.logs(1));
    for (name, policy) in &threads {
        if !name.starts_with("tandem-heartbe") {
            assert_eq!(
                *policy, SCHED_OTHER,
                "{name} must not be real-time: {threads:?}"
            );
        }
    }
    assert!(
        threads.iter().any(|(name, _)| name == "tandem-exec"),
        "{threads:?}"
    );
    assert_eq!(
        policy(svc, svc),
        SCHED_OTHER,
        "a service started by tandem inherited real-time scheduling"
    );
    assert!(locked_kib(daemon) > 0, "mlockall did not lock anything");
    assert!(lab.logs(1).contains("SCHED_RR priority"), "{}", lab.logs(1));
    assert_guard_outranks_worker(lab, daemon);
}

/// The lease guard (main PID): one thread, SCHED_FIFO, memory locked; its worker is a
/// separate process the OOM killer may pick.
fn assert_guard_outranks_worker(mut lab: Lab, worker: u32) {
    let guard = lab.pid(1).expect("n1's guard runs");
    assert_ne!(guard, worker, "the worker is a process of its own");
    let threads = threads(guard);
    assert_eq!(
        threads.len(),
        1,
        "the guard is single-threaded: {threads:?}"
    );
    assert_eq!(threads[0].1, SCHED_FIFO, "{threads:?}");
    assert!(locked_kib(guard) > 0, "the guard's memory is not locked");
    let worker_comm = std::fs::read_to_string(format!("/proc/{worker}/comm")).unwrap_or_default();
    assert_eq!(worker_comm.trim(), "tandemd-worker");
    let score =
        std::fs::read_to_string(format!("/proc/{worker}/oom_score_adj")).unwrap_or_default();
    assert_eq!(score.trim(), "0", "the worker is the OOM killer's pick");
}

#[test]
fn realtime_and_mlockall_can_be_switched_off() {
    if !support::lab::lab_or_skip("realtime_and_mlockall_can_be_switched_off") {
        return;
    }
    let (lab, daemon, _svc) = lab_with_service(
        "heartbeat:\n  port: 5405\n  interval: 100ms\n  deadtime: 1s\n  \
         realtime: false\n  mlockall: false\n",
    );
    let threads = threads(daemon);
    assert!(
        threads.iter().all(|(_, p)| *p == SCHED_OTHER),
        "{threads:?}"
    );
    assert_eq!(locked_kib(daemon), 0);
    assert!(!lab.logs(1).contains("SCHED_RR"), "{}", lab.logs(1));
    // The options concern the worker's heartbeat thread; the guard keeps both.
    assert_guard_outranks_worker(lab, daemon);
}
