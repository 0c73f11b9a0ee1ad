//! Helpers of the agents_* tests: resources, operation contexts, a network
//! namespace that removes itself, and process liveness checks.
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tandem::agents::OpContext;
use tandem::config::{ResourceConfig, ResourceKind};
use tandem::core::{OpKind, OpResult};

pub fn resource(name: &str, kind: ResourceKind, timeout: Option<Duration>) -> ResourceConfig {
    ResourceConfig {
        name: name.to_string(),
        kind,
        timeout,
        promotable: false,
    }
}

pub fn ctx(resource: &ResourceConfig, kind: OpKind, timeout: Duration) -> OpContext<'_> {
    OpContext {
        group: "g1",
        resource,
        kind,
        timeout,
        interval: match kind {
            OpKind::Monitor => Duration::from_secs(10),
            OpKind::Start | OpKind::Stop => Duration::ZERO,
        },
        token: None,
    }
}

/// The life cycle a well-behaved agent goes through, with the result each step must
/// give: stop of a stopped resource and a second start both succeed (idempotent, as OCF
/// and LSB require).
pub const LIFE_CYCLE: [(OpKind, OpResult); 7] = [
    (OpKind::Monitor, OpResult::NotRunning),
    (OpKind::Stop, OpResult::Ok),
    (OpKind::Start, OpResult::Ok),
    (OpKind::Monitor, OpResult::Ok),
    (OpKind::Start, OpResult::Ok),
    (OpKind::Stop, OpResult::Ok),
    (OpKind::Monitor, OpResult::NotRunning),
];

/// A fresh directory under the system temp dir, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let p =
            std::env::temp_dir().join(format!("tandem-agents-{}-{tag}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).expect("create temp dir");
        TempDir(p)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    pub fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    /// Writes an executable script, safe to run at once (see `support::script`).
    pub fn script(&self, name: &str, body: &str) -> PathBuf {
        let p = self.join(name);
        super::script::write_executable(&p, body);
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Is `pid` gone? A zombie counts as gone: it runs nothing and only waits for a parent
/// (often init in a container) to reap it.
pub fn pid_gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(')')
            .map(|(_, rest)| rest.trim_start().starts_with(['Z', 'X']))
            .unwrap_or(false),
    }
}

/// Polls `cond` every 50ms for at most `limit` (generous: this machine is noisy).
pub fn wait_until(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    cond()
}

/// Pids written one per line into a file by a test script.
pub fn read_pids(path: &Path) -> Vec<u32> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

/// `ip ARGS...`; a failing `ip` fails the test.
pub fn ip(args: &[&str]) {
    ip_output(args);
}

/// `ip ARGS...`'s stdout; a failing `ip` fails the test, so that a negative check never
/// passes on output that only means "could not look".
pub fn ip_output(args: &[&str]) -> String {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A network namespace made by the test, with everything in it killed and the namespace
/// deleted on drop (panics included). Named like the lab's namespaces so that CI's
/// clean-up of killed runs finds leftovers.
pub struct Netns {
    pub name: String,
}

impl Netns {
    pub fn new() -> Netns {
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let name = format!("tdm{}-{}-n{}", std::process::id(), 90 + n, 1);
        let _ = Command::new("ip").args(["netns", "del", &name]).output();
        ip(&["netns", "add", &name]);
        let ns = Netns { name };
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    /// `ip -n NS ARGS...`
    pub fn ip(&self, args: &[&str]) {
        let mut all = vec!["-n", self.name.as_str()];
        all.extend_from_slice(args);
        ip(&all);
    }

    pub fn ip_output(&self, args: &[&str]) -> String {
        let mut all = vec!["-n", self.name.as_str()];
        all.extend_from_slice(args);
        ip_output(&all)
    }

    /// A veth pair with both ends inside the namespace, up, `addr` on the first end
    /// (this machine has no dummy links).
    pub fn veth(&self, a: &str, b: &str, addr: &str) {
        self.ip(&["link", "add", a, "type", "veth", "peer", "name", b]);
        self.ip(&["link", "set", a, "up"]);
        self.ip(&["link", "set", b, "up"]);
        self.ip(&["addr", "add", addr, "dev", a]);
    }

    /// Also used on drop, where the namespace may be gone already: never panics.
    pub fn pids(&self) -> Vec<u32> {
        let out = Command::new("ip")
            .args(["netns", "pids", &self.name])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        out.lines().filter_map(|l| l.trim().parse().ok()).collect()
    }

    /// The argv prefix that runs a program inside this namespace.
    pub fn wrapper(&self) -> Vec<std::ffi::OsString> {
        ["ip", "netns", "exec", self.name.as_str()]
            .iter()
            .map(Into::into)
            .collect()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        for pid in self.pids() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}
