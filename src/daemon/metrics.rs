//! The opt-in Prometheus endpoint (`metrics: { listen: 127.0.0.1:9405 }`).
//!
//! A deliberately tiny HTTP/1.1 server on the control runtime: it answers `GET /metrics`
//! with the text exposition format and closes the connection. Cluster state comes from
//! the heartbeat thread as a snapshot through the control channel (never by locking the
//! core); agent operation counters live in [`Metrics`], which the executor updates from
//! its own threads.

use super::control::{accept_next, Backend, ControlCall};
use super::events::EventTotals;
use crate::agents::check_state::CheckBoard;
use crate::control::StatusReport;
use crate::control::{CheckState, CheckStatus};
use crate::core::status::{ClusterStatus, GroupStatus, LinkStatus, NodeStatus, LINK_ABSENT};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, Semaphore};

/// Scrapes served at once; more wait in the backlog.
pub const MAX_SCRAPES: usize = 4;
/// A request head larger than this is refused.
pub const MAX_REQUEST_HEAD: usize = 8 * 1024;
/// How long a client may take to send its request.
pub const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// Totals of one kind of operation on one resource.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct OpStats {
    pub count: u64,
    pub failures: u64,
    pub seconds: f64,
}

/// Counters the daemon's slow side updates: the executor calls [`Metrics::record_op`]
/// after every agent operation. Shared as `Arc<Metrics>`; the lock is only ever held
/// for a map update, never across an operation or on the heartbeat thread.
#[derive(Debug, Default)]
pub struct Metrics {
    ops: Mutex<BTreeMap<(String, String, String), OpStats>>,
    /// This node's health checks, written by their probe loops.
    pub checks: Arc<CheckBoard>,
    /// This daemon's etcd lease, written by the arbiter thread.
    pub arbiter: Arc<crate::daemon::arbiter::ArbiterBoard>,
}

impl Metrics {
    /// One finished operation: `kind` is `start`, `stop` or `monitor`.
    pub fn record_op(&self, group: &str, resource: &str, kind: &str, seconds: f64, ok: bool) {
        let mut ops = match self.ops.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        let s = ops
            .entry((group.to_string(), resource.to_string(), kind.to_string()))
            .or_default();
        s.count += 1;
        s.seconds += seconds.max(0.0);
        if !ok {
            s.failures += 1;
        }
    }

    pub fn ops(&self) -> BTreeMap<(String, String, String), OpStats> {
        match self.ops.lock() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }
}

/// A label value with `\`, `"` and newlines escaped as the format requires.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// One sample line: `name{labels} value`, or `name value` without labels.
fn sample(out: &mut String, name: &str, labels: &str, value: impl std::fmt::Display) {
    if labels.is_empty() {
        let _ = writeln!(out, "{name} {value}");
    } else {
        let _ = writeln!(out, "{name}{{{labels}}} {value}");
    }
}

fn bool_value(b: bool) -> u8 {
    u8::from(b)
}

/// A gauge of the whole node, without labels, that is 1 or 0.
fn flag(out: &mut String, name: &str, help: &str, on: bool) {
    header(out, name, "gauge", help);
    sample(out, name, "", bool_value(on));
}

/// The exposition text for one scrape.
pub fn render(status: &StatusReport, totals: &EventTotals, metrics: &Metrics) -> String {
    let mut out = String::new();
    render_peers(&mut out, &status.view);
    render_membership(&mut out, status);
    render_groups(&mut out, &status.view, totals);
    render_ops(&mut out, &metrics.ops());
    render_checks(&mut out, &metrics.checks.snapshot());
    out
}

/// One per-check metric family: name, type, help, and the value of one check.
type CheckCount = (
    &'static str,
    &'static str,
    &'static str,
    fn(&CheckStatus) -> u64,
);

/// Per health check of this node: verdict, streaks, probes. Left out entirely when no
/// check runs here, so a cluster without checks exports no empty families.
fn render_checks(out: &mut String, checks: &[CheckStatus]) {
    if checks.is_empty() {
        return;
    }
    let labels =
        |c: &CheckStatus| format!("check=\"{}\",node=\"{}\"", label(&c.name), label(&c.node));
    let name = "tandem_check_up";
    header(
        out,
        name,
        "gauge",
        "1 if the health check passes, 0 if it fails (after fall/rise); absent until its first probe.",
    );
    for c in checks {
        match c.state {
            CheckState::Passing => sample(out, name, &labels(c), 1),
            CheckState::Failing => sample(out, name, &labels(c), 0),
            CheckState::Unknown => {}
        }
    }
    let counts: [CheckCount; 4] = [
        (
            "tandem_check_consecutive_failures",
            "gauge",
            "Probes of the health check that failed in a row.",
            |c| u64::from(c.consecutive_failures),
        ),
        (
            "tandem_check_consecutive_successes",
            "gauge",
            "Probes of the health check that passed in a row.",
            |c| u64::from(c.consecutive_successes),
        ),
        (
            "tandem_check_probes_total",
            "counter",
            "Probes of the health check run since tandemd started.",
            |c| c.probes_total,
        ),
        (
            "tandem_check_failures_total",
            "counter",
            "Probes of the health check that failed or timed out.",
            |c| c.failures_total,
        ),
    ];
    for (name, kind, help, value) in counts {
        header(out, name, kind, help);
        for c in checks {
            sample(out, name, &labels(c), value(c));
        }
    }
}

/// Per peer and link: round trip, link state, suspicion.
fn render_peers(out: &mut String, v: &ClusterStatus) {
    let peers: Vec<_> = v.nodes.iter().filter(|n| !n.local).collect();
    let link_labels = |n: &NodeStatus, l: &LinkStatus| {
        format!("node=\"{}\",link=\"{}\"", label(&n.name), l.index)
    };
    let name = "tandem_peer_rtt_seconds";
    header(out, name, "gauge", "Round-trip time to a peer on one link.");
    for n in &peers {
        for l in &n.links {
            if let Some(rtt) = l.rtt_ms {
                sample(out, name, &link_labels(n, l), rtt / 1000.0);
            }
        }
    }
    let name = "tandem_peer_link_up";
    header(out, name, "gauge", "1 if the link to a peer is up.");
    for n in &peers {
        // A link the peer is not on is no link at all, not one that is down.
        for l in n.links.iter().filter(|l| l.state != LINK_ABSENT) {
            sample(out, name, &link_labels(n, l), bool_value(l.state == "up"));
        }
    }
    let name = "tandem_peer_phi";
    header(
        out,
        name,
        "gauge",
        "Suspicion level of a peer (phi accrual, lowest over its links).",
    );
    for n in &peers {
        let phi = n
            .links
            .iter()
            .filter_map(|l| l.phi)
            .fold(None, |m: Option<f64>, p| Some(m.map_or(p, |m| m.min(p))));
        if let Some(phi) = phi {
            sample(out, name, &format!("node=\"{}\"", label(&n.name)), phi);
        }
    }
}

/// The cluster as a whole: live members, dropped datagrams, quorum, maintenance.
fn render_membership(out: &mut String, status: &StatusReport) {
    let v = &status.view;
    let name = "tandem_node_up";
    header(
        out,
        name,
        "gauge",
        "1 if the node is a live member of the cluster.",
    );
    for n in &v.nodes {
        let up = matches!(n.state.as_str(), "online" | "standby");
        sample(
            out,
            name,
            &format!("node=\"{}\"", label(&n.name)),
            bool_value(up),
        );
    }
    let name = "tandem_node_checks_failing";
    header(
        out,
        name,
        "gauge",
        "1 if a health check of the node fails, as its heartbeat says; absent for a node never heard.",
    );
    for n in &v.nodes {
        if let Some(failing) = n.checks_failing {
            let labels = format!("node=\"{}\"", label(&n.name));
            sample(out, name, &labels, bool_value(failing));
        }
    }
    let name = "tandem_packets_dropped_total";
    header(
        out,
        name,
        "counter",
        "Heartbeat datagrams dropped, by reason.",
    );
    for (reason, n) in &status.drops {
        sample(out, name, &format!("reason=\"{}\"", label(reason)), n);
    }
    flag(
        out,
        "tandem_quorate",
        "1 if this node's partition has quorum.",
        v.quorate,
    );
    flag(
        out,
        "tandem_maintenance",
        "1 if the whole cluster is in maintenance.",
        v.maintenance,
    );
    if let Some(a) = &v.arbiter {
        render_arbiter(out, a, &v.node);
    }
}

/// The arbiter: reachable, and which group votes this node holds.
fn render_arbiter(out: &mut String, a: &crate::core::status::ArbiterStatus, me: &str) {
    flag(
        out,
        "tandem_arbiter_reachable",
        "1 if the arbiter (etcd) answered within deadtime: its vote counts.",
        a.reachable,
    );
    let name = "tandem_arbiter_vote_held";
    header(
        out,
        name,
        "gauge",
        "1 if this node holds the arbiter's vote for the group.",
    );
    for v in &a.votes {
        let mine = v.holder.as_deref() == Some(me) && v.lease_left_ms.is_some();
        sample(
            out,
            name,
            &format!("group=\"{}\"", label(&v.group)),
            bool_value(mine),
        );
    }
}

/// Per group: who owns it, its term, how often it came here; and fence requests.
fn render_groups(out: &mut String, v: &ClusterStatus, totals: &EventTotals) {
    let group_labels = |g: &GroupStatus| format!("group=\"{}\"", label(&g.name));
    let name = "tandem_group_owner";
    header(
        out,
        name,
        "gauge",
        "1 for the node that owns the group, 0 for the others.",
    );
    for g in &v.groups {
        for n in v.nodes.iter().filter(|n| !n.witness) {
            let owns = g.owner.as_deref() == Some(n.name.as_str());
            let labels = format!("{},node=\"{}\"", group_labels(g), label(&n.name));
            sample(out, name, &labels, bool_value(owns));
        }
    }
    let name = "tandem_group_term";
    header(out, name, "gauge", "The group's ownership term.");
    for g in &v.groups {
        sample(out, name, &group_labels(g), g.term);
    }
    let name = "tandem_failovers_total";
    header(
        out,
        name,
        "counter",
        "Times this node became the owner of the group.",
    );
    for g in &v.groups {
        let n = totals.failovers.get(&g.name).copied().unwrap_or(0);
        sample(out, name, &group_labels(g), n);
    }
    let name = "tandem_fence_attempts_total";
    header(out, name, "counter", "Fence requests made by this node.");
    sample(out, name, "", totals.fence_attempts);
}

/// Agent operations by group, resource and kind: time spent, count, failures.
fn render_ops(out: &mut String, ops: &BTreeMap<(String, String, String), OpStats>) {
    let op_labels = |(g, r, k): &(String, String, String)| {
        format!(
            "group=\"{}\",resource=\"{}\",op=\"{}\"",
            label(g),
            label(r),
            label(k)
        )
    };
    let name = "tandem_agent_op_duration_seconds";
    header(
        out,
        name,
        "summary",
        "Time spent in agent operations, by group, resource and operation.",
    );
    for (key, s) in ops {
        let labels = op_labels(key);
        sample(out, &format!("{name}_sum"), &labels, s.seconds);
        sample(out, &format!("{name}_count"), &labels, s.count);
    }
    let name = "tandem_agent_op_failures_total";
    header(
        out,
        name,
        "counter",
        "Agent operations that failed or timed out.",
    );
    for (key, s) in ops {
        sample(out, name, &op_labels(key), s.failures);
    }
}

/// Serves scrapes until the task is dropped.
pub async fn serve(listener: TcpListener, calls: mpsc::Sender<ControlCall>, metrics: Arc<Metrics>) {
    let slots = Arc::new(Semaphore::new(MAX_SCRAPES));
    let accept = || listener.accept();
    while let Some((permit, (stream, peer))) = accept_next(&slots, "metrics", accept).await {
        let calls = calls.clone();
        let metrics = metrics.clone();
        tokio::spawn(async move {
            if let Err(e) = scrape(stream, &calls, &metrics).await {
                tracing::debug!("metrics: connection from {peer}: {e}");
            }
            drop(permit);
        });
    }
}

/// What a request head asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum Route {
    Metrics,
    NotFound,
    MethodNotAllowed,
    BadRequest,
}

/// Routes on the request line only; headers are read and ignored.
pub fn route(head: &[u8]) -> Route {
    let Ok(text) = std::str::from_utf8(head) else {
        return Route::BadRequest;
    };
    let mut words = text.lines().next().unwrap_or("").split_whitespace();
    let (Some(method), Some(target), Some(version)) = (words.next(), words.next(), words.next())
    else {
        return Route::BadRequest;
    };
    if !version.starts_with("HTTP/1.") {
        return Route::BadRequest;
    }
    if method != "GET" && method != "HEAD" {
        return Route::MethodNotAllowed;
    }
    let path = target.split('?').next().unwrap_or("");
    if path == "/metrics" || path == "/" {
        Route::Metrics
    } else {
        Route::NotFound
    }
}

async fn read_head(stream: &mut tokio::net::TcpStream) -> std::io::Result<Option<Vec<u8>>> {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Ok(None);
        }
        head.extend_from_slice(&buf[..n]);
        if head.windows(4).any(|w| w == b"\r\n\r\n") || head.windows(2).any(|w| w == b"\n\n") {
            return Ok(Some(head));
        }
        if head.len() > MAX_REQUEST_HEAD {
            return Ok(Some(Vec::new()));
        }
    }
}

async fn scrape(
    mut stream: tokio::net::TcpStream,
    calls: &mpsc::Sender<ControlCall>,
    metrics: &Metrics,
) -> std::io::Result<()> {
    let head = match tokio::time::timeout(READ_TIMEOUT, read_head(&mut stream)).await {
        Ok(r) => match r? {
            Some(h) => h,
            None => return Ok(()),
        },
        Err(_) => return Ok(()),
    };
    let head_only = head.starts_with(b"HEAD ");
    let (code, body) = match route(&head) {
        Route::Metrics => {
            let snapshot = Backend::new(calls.clone())
                .ask(|reply| ControlCall::Metrics { reply })
                .await;
            match snapshot.ok() {
                Some((status, totals)) => ("200 OK", render(&status, &totals, metrics)),
                None => (
                    "503 Service Unavailable",
                    "tandemd is not answering\n".to_string(),
                ),
            }
        }
        Route::NotFound => ("404 Not Found", "try /metrics\n".to_string()),
        Route::MethodNotAllowed => ("405 Method Not Allowed", "only GET\n".to_string()),
        Route::BadRequest => ("400 Bad Request", "bad request\n".to_string()),
    };
    let mut response = format!(
        "HTTP/1.1 {code}\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    if !head_only {
        response.extend_from_slice(body.as_bytes());
    }
    stream.write_all(&response).await?;
    stream.shutdown().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_only_get_metrics() {
        assert_eq!(
            route(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"),
            Route::Metrics
        );
        assert_eq!(route(b"GET /other HTTP/1.0\r\n\r\n"), Route::NotFound);
        assert_eq!(
            route(b"POST /metrics HTTP/1.1\r\n\r\n"),
            Route::MethodNotAllowed
        );
        assert_eq!(route(b"garbage\r\n\r\n"), Route::BadRequest);
        assert_eq!(route(b"\xff\xfe"), Route::BadRequest);
    }

    fn fixture() -> (StatusReport, EventTotals, Metrics) {
        let status = StatusReport {
            cluster: "c".into(),
            drops: [("auth_failed".to_string(), 2)].into_iter().collect(),
            view: ClusterStatus {
                node: "a".into(),
                quorate: true,
                nodes: vec![
                    NodeStatus {
                        name: "a".into(),
                        state: "online".into(),
                        local: true,
                        checks_failing: Some(true),
                        ..Default::default()
                    },
                    NodeStatus {
                        name: "b\"x".into(),
                        state: "offline".into(),
                        links: vec![LinkStatus {
                            index: 1,
                            state: "up".into(),
                            rtt_ms: Some(2.0),
                            phi: Some(0.5),
                            ..Default::default()
                        }],
                        ..Default::default()
                    },
                    NodeStatus {
                        name: "w".into(),
                        state: "standby".into(),
                        witness: true,
                        links: vec![
                            LinkStatus {
                                index: 0,
                                state: "down".into(),
                                ..Default::default()
                            },
                            LinkStatus {
                                index: 1,
                                state: "up".into(),
                                rtt_ms: Some(1.5),
                                phi: Some(2.5),
                                ..Default::default()
                            },
                            LinkStatus {
                                index: 2,
                                state: "up".into(),
                                phi: Some(1.25),
                                ..Default::default()
                            },
                        ],
                        ..Default::default()
                    },
                ],
                groups: vec![GroupStatus {
                    name: "www".into(),
                    owner: Some("a".into()),
                    term: 4,
                    ..Default::default()
                }],
                ..Default::default()
            },
            ..Default::default()
        };
        let totals = EventTotals {
            failovers: [("www".to_string(), 3)].into_iter().collect(),
            fence_attempts: 1,
        };
        let m = Metrics::default();
        m.record_op("www", "vip", "start", 0.25, true);
        m.record_op("www", "vip", "start", 0.5, false);
        m.record_op("www", "db\\x", "monitor", 0.125, true);
        (status, totals, m)
    }

    #[test]
    fn render_exports_peers_groups_and_ops() {
        let (status, totals, m) = fixture();
        let text = render(&status, &totals, &m);
        for line in [
            "tandem_peer_rtt_seconds{node=\"b\\\"x\",link=\"1\"} 0.002",
            "tandem_peer_phi{node=\"b\\\"x\"} 0.5",
            "tandem_node_up{node=\"a\"} 1",
            "tandem_node_up{node=\"b\\\"x\"} 0",
            "tandem_packets_dropped_total{reason=\"auth_failed\"} 2",
            "tandem_quorate 1",
            "tandem_group_owner{group=\"www\",node=\"a\"} 1",
            "tandem_group_owner{group=\"www\",node=\"b\\\"x\"} 0",
            "tandem_group_term{group=\"www\"} 4",
            "tandem_failovers_total{group=\"www\"} 3",
            "tandem_fence_attempts_total 1",
            "tandem_agent_op_duration_seconds_sum{group=\"www\",resource=\"vip\",op=\"start\"} 0.75",
            "tandem_agent_op_duration_seconds_count{group=\"www\",resource=\"vip\",op=\"start\"} 2",
            "tandem_agent_op_failures_total{group=\"www\",resource=\"vip\",op=\"start\"} 1",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line:?} in:\n{text}");
        }
    }

    /// The whole exposition text, byte for byte: scrapers and dashboards key on it.
    #[test]
    fn render_is_byte_identical_to_the_golden_text() {
        let (status, totals, m) = fixture();
        assert_eq!(render(&status, &totals, &m), GOLDEN);
    }

    const GOLDEN: &str = r#"# HELP tandem_peer_rtt_seconds Round-trip time to a peer on one link.
# TYPE tandem_peer_rtt_seconds gauge
tandem_peer_rtt_seconds{node="b\"x",link="1"} 0.002
tandem_peer_rtt_seconds{node="w",link="1"} 0.0015
# HELP tandem_peer_link_up 1 if the link to a peer is up.
# TYPE tandem_peer_link_up gauge
tandem_peer_link_up{node="b\"x",link="1"} 1
tandem_peer_link_up{node="w",link="0"} 0
tandem_peer_link_up{node="w",link="1"} 1
tandem_peer_link_up{node="w",link="2"} 1
# HELP tandem_peer_phi Suspicion level of a peer (phi accrual, lowest over its links).
# TYPE tandem_peer_phi gauge
tandem_peer_phi{node="b\"x"} 0.5
tandem_peer_phi{node="w"} 1.25
# HELP tandem_node_up 1 if the node is a live member of the cluster.
# TYPE tandem_node_up gauge
tandem_node_up{node="a"} 1
tandem_node_up{node="b\"x"} 0
tandem_node_up{node="w"} 1
# HELP tandem_node_checks_failing 1 if a health check of the node fails, as its heartbeat says; absent for a node never heard.
# TYPE tandem_node_checks_failing gauge
tandem_node_checks_failing{node="a"} 1
# HELP tandem_packets_dropped_total Heartbeat datagrams dropped, by reason.
# TYPE tandem_packets_dropped_total counter
tandem_packets_dropped_total{reason="auth_failed"} 2
# HELP tandem_quorate 1 if this node's partition has quorum.
# TYPE tandem_quorate gauge
tandem_quorate 1
# HELP tandem_maintenance 1 if the whole cluster is in maintenance.
# TYPE tandem_maintenance gauge
tandem_maintenance 0
# HELP tandem_group_owner 1 for the node that owns the group, 0 for the others.
# TYPE tandem_group_owner gauge
tandem_group_owner{group="www",node="a"} 1
tandem_group_owner{group="www",node="b\"x"} 0
# HELP tandem_group_term The group's ownership term.
# TYPE tandem_group_term gauge
tandem_group_term{group="www"} 4
# HELP tandem_failovers_total Times this node became the owner of the group.
# TYPE tandem_failovers_total counter
tandem_failovers_total{group="www"} 3
# HELP tandem_fence_attempts_total Fence requests made by this node.
# TYPE tandem_fence_attempts_total counter
tandem_fence_attempts_total 1
# HELP tandem_agent_op_duration_seconds Time spent in agent operations, by group, resource and operation.
# TYPE tandem_agent_op_duration_seconds summary
tandem_agent_op_duration_seconds_sum{group="www",resource="db\\x",op="monitor"} 0.125
tandem_agent_op_duration_seconds_count{group="www",resource="db\\x",op="monitor"} 1
tandem_agent_op_duration_seconds_sum{group="www",resource="vip",op="start"} 0.75
tandem_agent_op_duration_seconds_count{group="www",resource="vip",op="start"} 2
# HELP tandem_agent_op_failures_total Agent operations that failed or timed out.
# TYPE tandem_agent_op_failures_total counter
tandem_agent_op_failures_total{group="www",resource="db\\x",op="monitor"} 0
tandem_agent_op_failures_total{group="www",resource="vip",op="start"} 1
"#;
}
