//! `tandem-lab demo`: the first thing a new user runs. It builds a 3-node lab (two
//! possible owners and a witness) with one group (a VIP and a small service behind it),
//! shows the cluster, pulls the plug on the owner, narrates the takeover as the survivor
//! and a client see it (with the measured gaps), brings the node back and tears
//! everything down. It is a narrated script over `Lab`; every wait is
//! a bounded poll that also watches the caller's stop flag, so Ctrl-C and SIGTERM end it
//! at any point and `Lab`'s Drop removes what was built.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use super::observe::events::readable_tail;
use super::observe::status::{node_state, query_status};
use super::service::{self, ServiceClient};
use super::{Lab, LabSpec, Ns};
use crate::control::StatusReport;

/// The group the demo moves around.
pub const GROUP: &str = "www";
/// Its virtual IP.
pub const VIP: &str = "192.0.2.100/24";
/// The UDP port the demo service answers on, behind the VIP.
pub const SERVICE_PORT: u16 = 7;
/// How often the survivor is asked for its status during the takeover.
pub const TAKEOVER_POLL: Duration = Duration::from_millis(20);
/// Columns the narration is laid out for.
pub const WIDTH: usize = 100;
/// Log lines shown per node when a step fails.
pub const LOG_TAIL_LINES: usize = 25;

/// The service's address (the VIP without its prefix length).
pub fn service_addr() -> std::net::SocketAddr {
    let ip = VIP.split('/').next().unwrap_or(VIP);
    std::net::SocketAddr::new(
        ip.parse().unwrap_or(std::net::Ipv4Addr::UNSPECIFIED.into()),
        SERVICE_PORT,
    )
}

/// The `groups:` section the demo appends to every node's config. `service` is the
/// tandem-lab binary, whose `demo-service` command is the service: an `exec` resource
/// starts it in the background, stops it by its pid file and monitors that pid, the way
/// an admin wraps a daemon that has no init script.
pub fn group_yaml(service: &Path) -> String {
    let pid = "\"$TANDEM_LAB_NODE_DIR/demo-service.pid\"";
    let exe = shell_quote(&service.to_string_lossy());
    let start = format!(
        "rm -f {pid}; {exe} demo-service --listen {addr} --name \"$TANDEM_LAB_NODE\" \
         --pidfile {pid} </dev/null >>\"$TANDEM_LAB_NODE_DIR/demo-service.log\" 2>&1 & \
         i=0; while [ ! -s {pid} ]; do i=$((i+1)); [ $i -le 500 ] || exit 1; sleep 0.01; done",
        addr = service_addr()
    );
    let stop = format!(
        "[ -s {pid} ] || exit 0; p=$(cat {pid}); kill $p 2>/dev/null; \
         while kill -0 $p 2>/dev/null; do sleep 0.01; done; rm -f {pid}"
    );
    let monitor = format!("[ -s {pid} ] && kill -0 $(cat {pid}) 2>/dev/null || exit 7");
    format!(
        "groups:\n  \
         - name: {GROUP}\n    \
           prefer: n1\n    \
           failback: false\n    \
           resources:\n      \
             - vip: {{ address: {VIP}, interface: eth0 }}\n      \
             - exec:\n          \
                 name: app\n          \
                 start: {}\n          \
                 stop: {}\n          \
                 monitor: {}\n",
        yaml_single_quoted(&start),
        yaml_single_quoted(&stop),
        yaml_single_quoted(&monitor),
    )
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

fn yaml_single_quoted(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// Where the demo finds its binaries and how long it waits for each phase. The bounds are
/// generous on purpose: a loaded 2-core box must not make the demo fail.
#[derive(Debug, Clone)]
pub struct DemoConfig {
    pub tandemd: PathBuf,
    pub tandemctl: PathBuf,
    /// The binary whose `demo-service` command runs as the group's service (tandem-lab).
    pub service: PathBuf,
    /// From start until every node is online and the group runs somewhere.
    pub form_timeout: Duration,
    /// From the kill until the survivor runs the group.
    pub takeover_timeout: Duration,
    /// From the restart until the node is back online and knows who owns the group.
    pub rejoin_timeout: Duration,
}

impl Default for DemoConfig {
    fn default() -> Self {
        DemoConfig {
            tandemd: super::default_binary("tandemd"),
            tandemctl: super::default_binary("tandemctl"),
            service: std::env::current_exe()
                .unwrap_or_else(|_| super::default_binary("tandem-lab")),
            form_timeout: Duration::from_secs(30),
            takeover_timeout: Duration::from_secs(20),
            rejoin_timeout: Duration::from_secs(20),
        }
    }
}

/// What a successful run measured.
#[derive(Debug, Clone)]
pub struct DemoReport {
    pub old_owner: String,
    pub new_owner: String,
    /// From the SIGKILL until the survivor reported the group `running` on itself.
    pub takeover_gap: Duration,
    /// From the SIGKILL until the survivor reported the old owner not online.
    pub detection: Option<Duration>,
    /// The client's longest silence: last answer from the old owner's service to the
    /// first from the new one.
    pub client_gap: Duration,
    pub total: Duration,
}

/// The last lines of one node's log.
#[derive(Debug, Clone)]
pub struct LogTail {
    pub node: String,
    pub path: PathBuf,
    pub lines: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("interrupted during: {step}")]
    Interrupted { step: String },
    #[error("step failed: {step}: {detail}")]
    Failed {
        step: String,
        detail: String,
        /// Empty when the failure came before any daemon ran.
        logs: Vec<LogTail>,
    },
}

/// A failure inside a step, before the step name and logs are attached.
enum Abort {
    Stop,
    Fail(String),
}

impl<E: std::fmt::Display> From<E> for Abort {
    fn from(e: E) -> Self {
        Abort::Fail(e.to_string())
    }
}

/// The demo's running state: where output goes, the clock, the stop flag and the step in
/// progress (so a failure can say which one it was).
struct Demo<'a> {
    out: &'a mut dyn Write,
    stop: &'a AtomicBool,
    started: Instant,
    step: String,
}

// Output errors are ignored on purpose: a closed terminal must not stop the cleanup.
macro_rules! say {
    ($d:expr) => {{ let _ = writeln!($d.out); let _ = $d.out.flush(); }};
    ($d:expr, $($arg:tt)*) => {{ let _ = writeln!($d.out, $($arg)*); let _ = $d.out.flush(); }};
}

impl Demo<'_> {
    /// Enters the next step, unless a stop was requested during the previous one (which
    /// is then the step reported as interrupted).
    fn step(&mut self, name: impl Into<String>) -> Result<(), Abort> {
        self.check_stop()?;
        self.step = name.into();
        Ok(())
    }

    fn check_stop(&self) -> Result<(), Abort> {
        if self.stop.load(Ordering::Relaxed) {
            Err(Abort::Stop)
        } else {
            Ok(())
        }
    }

    fn stamp(&self) -> String {
        format!("[{:>5.1}s]", self.started.elapsed().as_secs_f64())
    }

    /// Sleeps `d` in small slices so a stop request is seen quickly.
    fn sleep(&self, d: Duration) -> Result<(), Abort> {
        if super::sleep_unless_stopped(self.stop, d) {
            Ok(())
        } else {
            Err(Abort::Stop)
        }
    }

    fn print_status(&mut self, lab: &Lab, node: usize) {
        say!(self);
        say!(
            self,
            "$ tandemctl status        (asked on {})",
            lab.node_name(node)
        );
        let out = lab.tandemctl(node, &["status"]);
        let _ = self.out.write_all(&out.stdout);
        if !out.status.success() {
            say!(
                self,
                "(tandemctl failed: {})",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        say!(self);
    }
}

/// `name` as given if it names a file, else looked up on PATH; None if neither.
fn resolve_binary(path: &Path) -> Option<PathBuf> {
    if path.components().count() > 1 {
        return path.is_file().then(|| path.to_path_buf());
    }
    let paths = std::env::var_os("PATH")?;
    std::env::split_paths(&paths)
        .map(|dir| dir.join(path))
        .find(|p| p.is_file())
}

/// (owner, state, term) of the demo group in `r`.
fn group_view(r: &StatusReport) -> Option<(Option<String>, String, u64)> {
    r.view
        .groups
        .iter()
        .find(|g| g.name == GROUP)
        .map(|g| (g.owner.clone(), g.state.clone(), g.term))
}

/// The daemon's own explanation of the demo group's state.
fn group_reason(r: &StatusReport) -> String {
    r.view
        .groups
        .iter()
        .find(|g| g.name == GROUP)
        .map(|g| g.reason.clone())
        .unwrap_or_default()
}

/// `s` cut to `width` characters (the narration stays within 100 columns).
fn clip(s: &str, width: usize) -> String {
    crate::control::render::clip_with(s, width, "...")
}

fn all_online(r: &StatusReport) -> bool {
    !r.view.nodes.is_empty() && r.view.nodes.iter().all(|n| n.state == "online")
}

/// Runs the whole demo, narrating to `out`. Returns when the lab is torn down again
/// (whatever the outcome: the lab is owned here and dropped before returning).
pub fn run(
    cfg: &DemoConfig,
    stop: &AtomicBool,
    out: &mut dyn Write,
) -> Result<DemoReport, DemoError> {
    let mut demo = Demo {
        out,
        stop,
        started: Instant::now(),
        step: "preparing".into(),
    };
    let mut lab: Option<Lab> = None;
    let result = script(cfg, &mut demo, &mut lab);
    let step = demo.step.clone();
    let outcome = match result {
        Ok(report) => Ok(report),
        Err(Abort::Stop) => Err(DemoError::Interrupted { step }),
        // A step failing because Ctrl-C also hit its child process is an interruption.
        Err(Abort::Fail(_)) if stop.load(Ordering::Relaxed) => Err(DemoError::Interrupted { step }),
        Err(Abort::Fail(detail)) => Err(DemoError::Failed {
            step,
            detail,
            logs: lab.as_ref().map(log_tails).unwrap_or_default(),
        }),
    };
    if let Some(mut lab) = lab.take() {
        if outcome.is_err() {
            say!(
                demo,
                "{} tearing down {} (processes, namespaces, temp dir) ...",
                demo.stamp(),
                lab.prefix()
            );
        }
        lab.teardown();
    }
    outcome
}

fn log_tails(lab: &Lab) -> Vec<LogTail> {
    (1..=lab.node_count())
        .map(|node| LogTail {
            node: lab.node_name(node),
            path: lab.log_path(node),
            lines: readable_tail(&lab.logs(node), LOG_TAIL_LINES),
        })
        .collect()
}

/// The demo, step by step; each step narrates what it does and fails with what it saw.
fn script(cfg: &DemoConfig, d: &mut Demo, slot: &mut Option<Lab>) -> Result<DemoReport, Abort> {
    d.step("checking the binaries and the machine")?;
    let spec = prepare(cfg, d)?;
    d.step("building the lab (namespaces, bridges, key, configs)")?;
    let t = Instant::now();
    let lab = slot.insert(Lab::build(spec)?);
    say!(
        d,
        "{} built lab {p} in {} ms: netns {p}-{{n1,n2,n3,sw,cl}}",
        d.stamp(),
        t.elapsed().as_millis(),
        p = lab.prefix()
    );
    d.step("checking the generated config")?;
    crate::config::load(&lab.config_path(1))?;
    say!(
        d,
        "{} config {} is valid",
        d.stamp(),
        lab.config_path(1).display()
    );

    d.step("starting tandemd on every node")?;
    lab.start_all()?;
    say!(
        d,
        "{} started tandemd on n1, n2, n3; waiting for the cluster to form ...",
        d.stamp()
    );

    d.step("waiting for all nodes online and www running")?;
    let (owner, term) = wait_formed(cfg, d, lab)?;
    say!(
        d,
        "{} all 3 nodes online, quorate; {GROUP} is running on {owner} (term {term})",
        d.stamp()
    );
    let old = (1..=lab.node_count())
        .find(|&n| lab.node_name(n) == owner)
        .ok_or_else(|| Abort::Fail(format!("owner {owner:?} is not a lab node")))?;
    let survivor = if old == 1 { 2 } else { 1 };
    let roles = Roles {
        old,
        survivor,
        owner,
        survivor_name: lab.node_name(survivor),
    };
    d.print_status(lab, survivor);

    let (takeover, client) = fail_over(cfg, d, lab, &roles)?;
    rejoin(cfg, d, lab, &roles, takeover.new_term, &client)?;
    drop(client);
    d.print_status(lab, roles.old);

    d.step("tearing down")?;
    let prefix = lab.prefix().to_string();
    lab.teardown();
    *slot = None;
    let total = d.started.elapsed();
    say!(
        d,
        "{} tore down lab {prefix}: daemons stopped, namespaces and temp dir removed",
        d.stamp()
    );
    say!(d, "demo finished in {:.1}s", total.as_secs_f64());
    Ok(DemoReport {
        old_owner: roles.owner,
        new_owner: roles.survivor_name,
        takeover_gap: takeover.gap,
        detection: takeover.detection,
        client_gap: takeover.client_gap,
        total,
    })
}

/// Who is who once the cluster formed.
struct Roles {
    /// The first owner, which loses power.
    old: usize,
    survivor: usize,
    /// `old`'s name.
    owner: String,
    survivor_name: String,
}

/// What the takeover measured.
struct Takeover {
    gap: Duration,
    detection: Option<Duration>,
    client_gap: Duration,
    new_term: u64,
}

/// Resolves the binaries, removes stale labs and tells what the demo will show.
fn prepare(cfg: &DemoConfig, d: &mut Demo) -> Result<LabSpec, Abort> {
    let tandemd = resolve_binary(&cfg.tandemd).ok_or_else(|| {
        Abort::Fail(format!(
            "{} not found (next to tandem-lab or on PATH); build it first: cargo build --release",
            cfg.tandemd.display()
        ))
    })?;
    let tandemctl = resolve_binary(&cfg.tandemctl).ok_or_else(|| {
        Abort::Fail(format!(
            "{} not found (next to tandem-lab or on PATH); build it first: cargo build --release",
            cfg.tandemctl.display()
        ))
    })?;
    let stale = super::cleanup_stale()?;
    let spec = LabSpec {
        nodes: 3,
        witnesses: vec![3],
        links: 2,
        absent_links: Vec::new(),
        ipv6: false,
        interval: Duration::from_millis(100),
        deadtime: Duration::from_secs(1),
        extra_yaml: group_yaml(&cfg.service),
        tandemd,
        tandemctl,
    };
    say!(
        d,
        "tandem demo: a 3-node cluster in network namespaces on this machine"
    );
    say!(d);
    say!(
        d,
        "  n1, n2   may own group {GROUP}; n1 preferred (prefer: n1, priority 100 vs 90)"
    );
    say!(
        d,
        "  n3       witness: votes for quorum, never owns a group"
    );
    say!(
        d,
        "  links    2 heartbeat links per node (192.0.2.0/24, 198.51.100.0/24), one bridge each"
    );
    say!(d, "  timing   heartbeat interval 100ms, deadtime 1s");
    say!(
        d,
        "  {GROUP}      vip {VIP} on eth0 (gratuitous ARP on takeover), then exec `app`: a UDP"
    );
    say!(
        d,
        "           service on {} that answers with its node's name; failback off",
        service_addr()
    );
    say!(
        d,
        "  client   netns cl asks {} every {} ms and reports who answers",
        service_addr(),
        service::PROBE_INTERVAL.as_millis()
    );
    say!(d);
    if stale > 0 {
        say!(
            d,
            "{} removed {stale} namespace(s) left by an earlier, killed lab",
            d.stamp()
        );
    }

    Ok(spec)
}

/// Waits until every node is online in every view and all agree on www's running owner
/// and term.
fn wait_formed(cfg: &DemoConfig, d: &mut Demo, lab: &mut Lab) -> Result<(String, u64), Abort> {
    let deadline = Instant::now() + cfg.form_timeout;
    loop {
        d.check_stop()?;
        for node in 1..=lab.node_count() {
            if !lab.is_running(node) {
                let exit = lab
                    .last_exit(node)
                    .map(|s| s.to_string())
                    .unwrap_or_default();
                return Err(Abort::Fail(format!("tandemd on n{node} exited ({exit})")));
            }
        }
        let views: Vec<Option<StatusReport>> = (1..=lab.node_count())
            .map(|n| query_status(lab, n))
            .collect();
        let agreed = views
            .iter()
            .try_fold(None, |acc: Option<(String, u64)>, v| {
                let v = v.as_ref()?;
                if !all_online(v) {
                    return None;
                }
                match group_view(v)? {
                    (Some(o), state, term) if state == "running" => match acc {
                        Some((ao, at)) if ao != o || at != term => None,
                        _ => Some(Some((o, term))),
                    },
                    _ => None,
                }
            });
        if let Some(Some(found)) = agreed {
            return Ok(found);
        }
        if Instant::now() >= deadline {
            let seen = formation_views(&views);
            return Err(Abort::Fail(format!(
                "not formed within {:?}: {seen}",
                cfg.form_timeout
            )));
        }
        d.sleep(Duration::from_millis(100))?;
    }
}

/// What each node said when the cluster did not form in time.
fn formation_views(views: &[Option<StatusReport>]) -> String {
    views
        .iter()
        .enumerate()
        .map(|(i, v)| match v {
            None => format!("n{}: no answer", i + 1),
            Some(v) => format!(
                "n{}: nodes [{}] {GROUP} {:?}",
                i + 1,
                v.view
                    .nodes
                    .iter()
                    .map(|n| format!("{}={}", n.name, n.state))
                    .collect::<Vec<_>>()
                    .join(" "),
                group_view(v)
            ),
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// Polls `answered` every `poll` until it holds, the demo is stopped, or `timeout`
/// passes (then fails with `why()`). `tick` runs on each poll (narration).
fn wait_client(
    d: &mut Demo,
    timeout: Duration,
    poll: Duration,
    mut tick: impl FnMut(&mut Demo) -> bool,
    why: impl Fn() -> String,
) -> Result<(), Abort> {
    let deadline = Instant::now() + timeout;
    loop {
        d.check_stop()?;
        if tick(d) {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(Abort::Fail(why()));
        }
        d.sleep(poll)?;
    }
}

/// The client sees the owner; power loss on it; the survivor takes over and the client
/// gets answers from it.
fn fail_over(
    cfg: &DemoConfig,
    d: &mut Demo,
    lab: &mut Lab,
    roles: &Roles,
) -> Result<(Takeover, ServiceClient), Abort> {
    let (owner, survivor_name) = (&roles.owner, &roles.survivor_name);
    d.step(format!(
        "waiting for the client to get answers from {owner}"
    ))?;
    let client = ServiceClient::start(&lab.ns_name(Ns::Client)?, service_addr())?;
    wait_client(
        d,
        cfg.form_timeout,
        Duration::from_millis(20),
        |_| client.last_answer().is_some_and(|(n, _)| n == *owner),
        || {
            format!(
                "no answer from the service on {owner} within {:?} (answers so far: {:?})",
                cfg.form_timeout,
                client.runs()
            )
        },
    )?;
    say!(
        d,
        "{} client: {} answers, from {owner}",
        d.stamp(),
        service_addr()
    );
    say!(d);

    d.step(format!(
        "power loss on {owner} (SIGKILL everything, links down)"
    ))?;
    let (before, kill_at) = power_off_owner(d, lab, roles)?;

    d.step(format!("waiting for {survivor_name} to take over {GROUP}"))?;
    let mut seen = client.runs().len();
    let (gap, new_term, detection) =
        watch_takeover(cfg, d, lab, roles, &before, &client, kill_at, &mut seen)?;
    d.step(format!(
        "waiting for the client to get answers from {survivor_name}"
    ))?;
    wait_client(
        d,
        cfg.takeover_timeout,
        Duration::from_millis(5),
        |d| {
            seen = narrate_client(d, &client, seen, kill_at);
            client
                .last_answer()
                .is_some_and(|(n, at)| n == *survivor_name && at > kill_at)
        },
        || {
            format!(
                "{survivor_name} runs {GROUP} but the client got no answer from it within {:?} \
                 (answers: {:?})",
                cfg.takeover_timeout,
                client.runs()
            )
        },
    )?;
    let runs = client.runs();
    let (client_gap, _, _) = service::outage_after(&runs, kill_at)
        .ok_or_else(|| Abort::Fail(format!("no silence in the client's answers: {runs:?}")))?;
    say!(
        d,
        "takeover: {GROUP} moved from {owner} to {survivor_name} in {} ms (kill -> running; \
         detected in {} ms)",
        gap.as_millis(),
        detection
            .map(|x| x.as_millis().to_string())
            .unwrap_or_else(|| "?".into())
    );
    say!(
        d,
        "client:   no answer for {} ms (last from {owner}, then from {survivor_name})",
        client_gap.as_millis()
    );
    d.print_status(lab, roles.survivor);
    let takeover = Takeover {
        gap,
        detection,
        client_gap,
        new_term,
    };
    Ok((takeover, client))
}

/// The survivor's status just before, then the power loss of the owner: (that status,
/// when it was killed).
fn power_off_owner(
    d: &mut Demo,
    lab: &mut Lab,
    roles: &Roles,
) -> Result<(StatusReport, Instant), Abort> {
    let (owner, survivor_name) = (&roles.owner, &roles.survivor_name);
    let before = query_status(lab, roles.survivor)
        .ok_or_else(|| Abort::Fail(format!("{survivor_name} does not answer status")))?;
    say!(
        d,
        "{} power loss on {owner}: SIGKILL tandemd and the service, take its links down",
        d.stamp()
    );
    say!(
        d,
        "         (times from the kill; {survivor_name}'s status polled every {} ms, the client asks",
        TAKEOVER_POLL.as_millis()
    );
    say!(
        d,
        "          every {} ms)",
        service::PROBE_INTERVAL.as_millis()
    );
    let kill_at = Instant::now();
    lab.power_off(roles.old)?;
    say!(
        d,
        "    +{:>5} ms  {owner} is dead and cut off",
        kill_at.elapsed().as_millis()
    );
    Ok((before, kill_at))
}

/// Narrates the survivor's view (peer state, quorum, the group) every `TAKEOVER_POLL`
/// until it runs www: (kill -> running, its term, kill -> peer not online).
#[allow(clippy::too_many_arguments)]
fn watch_takeover(
    cfg: &DemoConfig,
    d: &mut Demo,
    lab: &mut Lab,
    roles: &Roles,
    before: &StatusReport,
    client: &ServiceClient,
    kill_at: Instant,
    client_runs_seen: &mut usize,
) -> Result<(Duration, u64, Option<Duration>), Abort> {
    let (survivor, owner, survivor_name) = (&roles.survivor, &roles.owner, &roles.survivor_name);
    let survivor = *survivor;
    let mut last_peer = node_state(before, owner).map(str::to_string);
    let mut last_quorate = before.view.quorate;
    let mut last_group = group_view(before);
    let mut detection = None;
    let deadline = kill_at + cfg.takeover_timeout;
    loop {
        d.check_stop()?;
        *client_runs_seen = narrate_client(d, client, *client_runs_seen, kill_at);
        if !lab.is_running(survivor) {
            return Err(Abort::Fail(format!("tandemd on {survivor_name} exited")));
        }
        if let Some(r) = query_status(lab, survivor) {
            let at = kill_at.elapsed();
            let peer = node_state(&r, owner).map(str::to_string);
            if peer != last_peer {
                say!(
                    d,
                    "    +{:>5} ms  {survivor_name} sees {owner} {}",
                    at.as_millis(),
                    peer.as_deref().unwrap_or("?")
                );
                if detection.is_none() && peer.as_deref() != Some("online") {
                    detection = Some(at);
                }
                last_peer = peer;
            }
            if r.view.quorate != last_quorate {
                say!(
                    d,
                    "    +{:>5} ms  {survivor_name} is {}",
                    at.as_millis(),
                    if r.view.quorate {
                        "quorate"
                    } else {
                        "NOT quorate"
                    }
                );
                last_quorate = r.view.quorate;
            }
            let group = group_view(&r);
            if group != last_group {
                if let Some((o, state, term)) = &group {
                    let line = format!(
                        "    +{:>5} ms  {GROUP}: owner {}, term {term}, {state}: {}",
                        at.as_millis(),
                        o.as_deref().unwrap_or("-"),
                        group_reason(&r)
                    );
                    say!(d, "{}", clip(&line, WIDTH));
                }
                last_group = group.clone();
            }
            if let Some((Some(o), state, term)) = &group {
                if o == survivor_name && state == "running" {
                    return Ok((at, *term, detection));
                }
            }
        }
        if Instant::now() >= deadline {
            return Err(Abort::Fail(format!(
                "{survivor_name} did not run {GROUP} within {:?} of the kill (last seen: {last_group:?})",
                cfg.takeover_timeout
            )));
        }
        thread::sleep(TAKEOVER_POLL);
    }
}

/// Waits until the survivor sees the old owner online, the old owner sees everyone
/// online, and both agree www runs on the survivor; fails if it moves (failback is off).
fn wait_rejoined(
    cfg: &DemoConfig,
    d: &mut Demo,
    lab: &mut Lab,
    roles: &Roles,
    restart_at: Instant,
) -> Result<(), Abort> {
    let (old, survivor, owner, survivor_name) = (
        &roles.old,
        &roles.survivor,
        &roles.owner,
        &roles.survivor_name,
    );
    let (old, survivor) = (*old, *survivor);
    let deadline = restart_at + cfg.rejoin_timeout;
    let mut seen_online = false;
    loop {
        d.check_stop()?;
        if !lab.is_running(old) {
            let exit = lab
                .last_exit(old)
                .map(|s| s.to_string())
                .unwrap_or_default();
            return Err(Abort::Fail(format!(
                "restarted tandemd on {owner} exited ({exit})"
            )));
        }
        let surv = query_status(lab, survivor);
        let back = query_status(lab, old);
        if !seen_online
            && surv
                .as_ref()
                .and_then(|r| node_state(r, owner))
                .is_some_and(|s| s == "online")
        {
            say!(
                d,
                "    +{:>5} ms  {survivor_name} sees {owner} online",
                restart_at.elapsed().as_millis()
            );
            seen_online = true;
        }
        let owned_here = |r: &Option<StatusReport>| {
            r.as_ref().and_then(group_view).is_some_and(|(o, s, _)| {
                o.as_deref() == Some(survivor_name.as_str()) && s == "running"
            })
        };
        if let Some((Some(o), _, _)) = surv.as_ref().and_then(group_view) {
            if o != *survivor_name {
                return Err(Abort::Fail(format!(
                    "{GROUP} moved to {o} after {owner} came back, although failback is off"
                )));
            }
        }
        let rejoined = seen_online
            && back.as_ref().is_some_and(all_online)
            && owned_here(&surv)
            && owned_here(&back);
        if rejoined {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(Abort::Fail(format!(
                "{owner} did not rejoin within {:?} (survivor sees it {:?}; its own view of {GROUP}: {:?})",
                cfg.rejoin_timeout,
                surv.as_ref().and_then(|r| node_state(r, owner)),
                back.as_ref().and_then(group_view)
            )));
        }
        d.sleep(Duration::from_millis(50))?;
    }
}

/// Power back on the old owner; it must rejoin while www stays on the survivor
/// (failback off) and the client keeps getting answers from it.
fn rejoin(
    cfg: &DemoConfig,
    d: &mut Demo,
    lab: &mut Lab,
    roles: &Roles,
    new_term: u64,
    client: &ServiceClient,
) -> Result<(), Abort> {
    let (old, owner, survivor_name) = (&roles.old, &roles.owner, &roles.survivor_name);
    d.step(format!("restarting {owner} (links up, start tandemd)"))?;
    lab.power_on(*old)?;
    let restart_at = Instant::now();
    say!(
        d,
        "{} power back on {owner}: links up, tandemd started; waiting for it to rejoin ...",
        d.stamp()
    );

    d.step(format!("waiting for {owner} to rejoin"))?;
    wait_rejoined(cfg, d, lab, roles, restart_at)?;
    say!(
        d,
        "{} {owner} rejoined and is online; {GROUP} stays on {survivor_name} (term {new_term}, failback off)",
        d.stamp()
    );
    let rejoined_at = Instant::now();
    d.sleep(Duration::from_millis(200))?;
    match client.last_answer() {
        Some((n, at)) if n == *survivor_name && at > rejoined_at => say!(
            d,
            "{} client: {} still answers, from {survivor_name}",
            d.stamp(),
            service_addr()
        ),
        other => {
            return Err(Abort::Fail(format!(
                "after {owner} rejoined the client's last answer is {other:?}, expected a fresh \
                 one from {survivor_name}"
            )))
        }
    }
    Ok(())
}

/// Prints the client's answer runs that began since the last call (from the second on,
/// each ends a silence); returns how many runs have been narrated.
fn narrate_client(d: &mut Demo, client: &ServiceClient, seen: usize, since: Instant) -> usize {
    let runs = client.runs();
    for w in runs.windows(2).skip(seen.saturating_sub(1)) {
        let (prev, next) = (&w[0], &w[1]);
        if next.first < since {
            continue;
        }
        say!(
            d,
            "    +{:>5} ms  client: answer from {} (silent for {} ms since the last one, from {})",
            next.first.saturating_duration_since(since).as_millis(),
            next.node,
            next.first.saturating_duration_since(prev.last).as_millis(),
            prev.node
        );
    }
    runs.len().max(seen)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_config_is_valid_and_has_the_group_resources() {
        let dir = std::env::temp_dir().join(format!("tandem-demo-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let key = dir.join("authkey");
        crate::config::write_key(&key, &crate::config::generate_key(), true).unwrap();
        let spec = LabSpec {
            nodes: 3,
            witnesses: vec![3],
            extra_yaml: group_yaml(Path::new("/usr/lib/it's here/tandem-lab")),
            ..LabSpec::default()
        };
        let text = super::super::render_config(&spec, &key).unwrap();
        let parsed = crate::config::parse_str(&text, "demo.yaml");
        let _ = std::fs::remove_dir_all(&dir);
        let cfg = parsed.unwrap_or_else(|e| panic!("{e}\n{text}"));
        let g = cfg.group_by_name(GROUP).expect("group www");
        assert_eq!(g.resources.len(), 2, "{text}");
        let n1 = cfg.node_by_name("n1").expect("node n1").id;
        assert_eq!(g.prefer, Some(n1), "{text}");
        assert!(!g.failback, "{text}");
        let crate::config::ResourceKind::Exec {
            start,
            stop,
            monitor,
            ..
        } = &g.resources[1].kind
        else {
            panic!("the second resource is the exec service:\n{text}");
        };
        assert!(
            start.contains(
                "'/usr/lib/it'\\''s here/tandem-lab' demo-service --listen 192.0.2.100:7"
            ),
            "{start}"
        );
        for script in [start, stop, monitor.as_ref().expect("a monitor")] {
            let ok = std::process::Command::new("sh")
                .args(["-n", "-c", script])
                .status()
                .is_ok_and(|s| s.success());
            assert!(ok, "not valid sh: {script}");
        }
    }

    #[test]
    fn missing_binary_is_reported_not_found() {
        assert!(resolve_binary(Path::new("/nonexistent/tandemd")).is_none());
        assert!(resolve_binary(Path::new("sh")).is_some());
    }
}
