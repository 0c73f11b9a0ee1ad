//! Child processes for agents: every script, init script, OCF agent, `systemctl` call,
//! fence agent and notify hook runs through [`run`].
//!
//! A child runs in its own process group so that a timeout can kill everything it
//! started (`sh -c 'daemon & sleep 1000'` included), not just the shell. Its output goes
//! to the log line by line with the resource name, and a bounded copy is kept for the
//! caller (fence status, OCF meta-data, failure reasons) so that a chatty agent cannot eat
//! the daemon's memory. If the daemon drops an operation half-way (shutdown, runtime
//! teardown), a guard kills the group: no agent outlives the operation that started it
//! unless it finished on its own and left a service behind on purpose.

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use std::ffi::{OsStr, OsString};
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

/// Bytes of stdout (and, separately, of stderr) kept for the caller.
pub const DEFAULT_CAPTURE_LIMIT: usize = 256 * 1024;
/// Lines of one stream forwarded to the log per run; the rest is counted, not logged.
const LOG_LINE_LIMIT: usize = 500;
/// A line longer than this is cut before logging (a binary blob is not a log line).
const LOG_LINE_BYTES: usize = 2048;
/// After the child exits, how long its output pipes may still be drained. A start script
/// that backgrounds a daemon hands the daemon its stdout, so "wait for EOF" could wait
/// forever.
const DRAIN_GRACE: Duration = Duration::from_millis(200);
/// Upper bound on reaping a child we just sent SIGKILL.
const REAP_GRACE: Duration = Duration::from_secs(5);

/// How agent processes are launched on this machine. The default is what the daemon
/// uses; tests and special set-ups adjust it.
#[derive(Clone, Debug, Default)]
pub struct Launch {
    /// Put before every agent's argv, e.g. `["ip", "netns", "exec", "lab-n1"]` to run an
    /// agent that works on "the current namespace" (IPaddr2) inside another one, or
    /// `["nice", "-n", "5"]`.
    pub wrapper: Vec<OsString>,
    /// Added to (or replacing) the daemon's environment for every child. Setting `PATH`
    /// here also changes where programs named without a slash are looked up.
    pub env: Vec<(OsString, OsString)>,
    /// `OCF_ROOT` for OCF agents; `None`: the daemon's `$OCF_ROOT`, else `/usr/lib/ocf`.
    pub ocf_root: Option<PathBuf>,
    /// Where the `crm_master`/`crm_attribute` shims are (promotable agents get it as
    /// `HA_SBIN_DIR`); `None`: the installed ones, `/usr/lib/tandem/ocf-shims`.
    pub ocf_shims: Option<PathBuf>,
}

impl Launch {
    /// Adds `(name, value)` pairs to every child's environment.
    pub fn with_env<K: Into<OsString>, V: Into<OsString>>(
        mut self,
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        self.env
            .extend(pairs.into_iter().map(|(k, v)| (k.into(), v.into())));
        self
    }
}

/// One child process to run.
#[derive(Clone, Debug)]
pub struct Spec {
    /// Resource (or fence agent, or hook) name: the log prefix of the child's output.
    pub name: String,
    pub program: OsString,
    pub args: Vec<OsString>,
    pub env: Vec<(OsString, OsString)>,
    /// Written to the child's stdin, which is then closed; `None`: stdin is /dev/null.
    pub stdin: Option<Vec<u8>>,
    pub timeout: Duration,
    /// Log the child's output at debug level (meta-data dumps, status probes).
    pub quiet: bool,
    pub capture_limit: usize,
    /// The resource group whose lease guard must know this child's process group: set
    /// for starts that may leave a service behind in it (see `crate::guard`).
    pub guarded_by: Option<u64>,
}

impl Spec {
    pub fn new(name: impl Into<String>, program: impl AsRef<OsStr>, timeout: Duration) -> Self {
        Spec {
            name: name.into(),
            program: program.as_ref().to_os_string(),
            args: Vec::new(),
            env: Vec::new(),
            stdin: None,
            timeout,
            quiet: false,
            capture_limit: DEFAULT_CAPTURE_LIMIT,
            guarded_by: None,
        }
    }

    /// `sh -c SCRIPT`: how `exec` resources and hooks given as strings are run.
    pub fn shell(name: impl Into<String>, script: &str, timeout: Duration) -> Self {
        Spec::new(name, "/bin/sh", timeout).arg("-c").arg(script)
    }

    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Self {
        self.args.push(arg.as_ref().to_os_string());
        self
    }

    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Self {
        self.env
            .push((key.as_ref().to_os_string(), value.as_ref().to_os_string()));
        self
    }

    /// Adds every `(name, value)` pair to the environment.
    pub fn envs<K: AsRef<OsStr>, V: AsRef<OsStr>>(
        mut self,
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        for (k, v) in pairs {
            self = self.env(k, v);
        }
        self
    }

    pub fn stdin(mut self, bytes: impl Into<Vec<u8>>) -> Self {
        self.stdin = Some(bytes.into());
        self
    }

    pub fn quiet(mut self) -> Self {
        self.quiet = true;
        self
    }

    /// Reports the child's process group to the lease guard of `group`.
    pub fn guarded_by(mut self, group: u64) -> Self {
        self.guarded_by = Some(group);
        self
    }
}

/// How a child ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Exit {
    Code(i32),
    /// Killed by a signal it did not get from our timeout.
    Signal(i32),
    /// The timeout expired; the whole process group was sent SIGKILL.
    TimedOut,
    /// The program could not be started (missing, not executable, ...).
    SpawnFailed {
        program: PathBuf,
        error: String,
    },
    /// Started, but waiting for it failed (should not happen; reported, not hidden).
    WaitFailed(String),
}

impl Exit {
    /// Was the program missing (ENOENT), the "not installed" case of LSB/OCF?
    pub fn not_found(&self) -> bool {
        matches!(self, Exit::SpawnFailed { error, .. } if error.contains("No such file"))
    }
}

/// The result of [`run`]: how the child ended and what it printed (bounded).
#[derive(Clone, Debug)]
pub struct Finished {
    pub exit: Exit,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    /// Output beyond `capture_limit` was dropped from `stdout`/`stderr`.
    pub truncated: bool,
}

impl Finished {
    fn without_output(exit: Exit) -> Self {
        Finished {
            exit,
            stdout: Vec::new(),
            stderr: Vec::new(),
            truncated: false,
        }
    }

    pub fn code(&self) -> Option<i32> {
        match self.exit {
            Exit::Code(c) => Some(c),
            _ => None,
        }
    }

    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    /// The last non-empty line of stderr (else stdout), cut short: what a failure
    /// reason quotes so that status shows why a script failed.
    pub fn last_line(&self) -> Option<String> {
        let pick = |bytes: &[u8]| {
            String::from_utf8_lossy(bytes)
                .lines()
                .map(str::trim)
                .rfind(|l| !l.is_empty())
                .map(|l| l.chars().take(160).collect::<String>())
        };
        pick(&self.stderr).or_else(|| pick(&self.stdout))
    }

    /// `what` followed by how it ended, e.g. `start: exit 1 (port in use)`.
    pub fn describe(&self, what: &str) -> String {
        let how = match &self.exit {
            Exit::Code(c) => format!("exit {c}"),
            Exit::Signal(s) => format!("killed by signal {s}"),
            Exit::TimedOut => "timed out".to_string(),
            Exit::SpawnFailed { program, error } => {
                return format!("{what}: cannot run {}: {error}", program.display())
            }
            Exit::WaitFailed(e) => return format!("{what}: lost the child: {e}"),
        };
        match self.last_line() {
            Some(line) => format!("{what}: {how} ({line})"),
            None => format!("{what}: {how}"),
        }
    }
}

/// Kills the child's process group when dropped while armed: the operation was
/// abandoned (daemon shutdown) or timed out.
struct GroupGuard {
    pgid: Option<Pid>,
}

impl GroupGuard {
    fn kill(&mut self) {
        if let Some(pgid) = self.pgid.take() {
            // ESRCH (group already empty) is the good case; nothing else can be done
            // about other errors than to say so.
            match killpg(pgid, Signal::SIGKILL) {
                Ok(()) | Err(nix::errno::Errno::ESRCH) => {}
                Err(e) => tracing::warn!("killpg({pgid}): {e}"),
            }
        }
    }

    fn disarm(&mut self) {
        self.pgid = None;
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        self.kill();
    }
}

/// How often a spawn that found its program busy (ETXTBSY) is tried again, and how long
/// apart: a script just written is "busy" while any process forked in that moment (by
/// this daemon's other threads, or anyone else) still holds the writer's descriptor
/// between its fork and its exec, which lasts microseconds.
const BUSY_TEXT_TRIES: u32 = 20;
const BUSY_TEXT_PAUSE: Duration = Duration::from_millis(5);

async fn spawn_retrying_busy_text(
    cmd: &mut tokio::process::Command,
) -> std::io::Result<tokio::process::Child> {
    let mut tries = 1;
    loop {
        match cmd.spawn() {
            Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) && tries < BUSY_TEXT_TRIES => {
                tries += 1;
                tokio::time::sleep(BUSY_TEXT_PAUSE).await;
            }
            other => return other,
        }
    }
}

/// The bounded copy of one output stream.
#[derive(Default)]
struct Capture {
    bytes: Vec<u8>,
    truncated: bool,
}

/// Runs `spec` (prefixed by `launch.wrapper`, with `launch.env` then `spec.env`) and
/// waits for it, at most `spec.timeout` plus a short grace for killing and reaping.
/// Must be called inside a tokio runtime.
pub async fn run(launch: &Launch, spec: &Spec) -> Finished {
    let (program, mut cmd) = command(launch, spec);
    let mut child = match spawn_retrying_busy_text(&mut cmd).await {
        Ok(child) => child,
        Err(e) => {
            return Finished::without_output(Exit::SpawnFailed {
                program: PathBuf::from(&program),
                error: e.to_string(),
            })
        }
    };
    // With process_group(0) the group id is the child's pid.
    let mut guard = GroupGuard {
        pgid: child
            .id()
            .and_then(|id| i32::try_from(id).ok())
            .map(Pid::from_raw),
    };
    // Before the child can have started anything: a worker that dies from here on
    // leaves the guard knowing what to kill.
    let guarded = spec.guarded_by.zip(guard.pgid);
    if let Some((group, pgid)) = guarded {
        crate::guard::link::report_process_group(group, pgid.as_raw());
    }

    if let (Some(bytes), Some(mut stdin)) = (spec.stdin.clone(), child.stdin.take()) {
        // A child that exits without reading its stdin must not fail the write loudly.
        tokio::spawn(async move {
            let _ = stdin.write_all(&bytes).await;
            let _ = stdin.shutdown().await;
        });
    }
    let stdout = child
        .stdout
        .take()
        .map(|s| reader(s, spec, "stdout", false));
    let stderr = child.stderr.take().map(|s| reader(s, spec, "stderr", true));

    let exit = wait_bounded(&mut child, &mut guard, spec).await;

    if let Some((group, pgid)) = guarded {
        // Nothing left in it (the start failed, or started nothing that stays): its id
        // may be reused by unrelated processes, so the guard must forget it.
        if killpg(pgid, None).is_err() {
            crate::guard::link::report_process_group_gone(group, pgid.as_raw());
        }
    }

    let mut finished = Finished::without_output(exit);
    collect_output(&mut finished, stdout, stderr).await;
    finished
}

/// The program to start and its command: `launch.wrapper` first, the environment of
/// `launch` then of `spec`, output piped, in a process group of its own.
fn command(launch: &Launch, spec: &Spec) -> (OsString, tokio::process::Command) {
    let (program, args): (OsString, Vec<OsString>) = match launch.wrapper.split_first() {
        Some((first, rest)) => {
            let mut args: Vec<OsString> = rest.to_vec();
            args.push(spec.program.clone());
            args.extend(spec.args.iter().cloned());
            (first.clone(), args)
        }
        None => (spec.program.clone(), spec.args.clone()),
    };
    let mut cmd = tokio::process::Command::new(&program);
    cmd.args(&args)
        .envs(launch.env.iter().map(|(k, v)| (k, v)))
        .envs(spec.env.iter().map(|(k, v)| (k, v)))
        .stdin(if spec.stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        // Lets tokio reap a child whose future was dropped; the guard below takes care
        // of the rest of its group.
        .kill_on_drop(true);
    (program, cmd)
}

/// Waits for the child at most `spec.timeout`; on a timeout or a failed wait its whole
/// group is killed.
async fn wait_bounded(
    child: &mut tokio::process::Child,
    guard: &mut GroupGuard,
    spec: &Spec,
) -> Exit {
    match tokio::time::timeout(spec.timeout, child.wait()).await {
        Ok(Ok(status)) => {
            // The process finished on its own: whatever it left running in its group (a
            // daemon started by a start script) is meant to stay.
            guard.disarm();
            match (status.code(), status.signal()) {
                (Some(code), _) => Exit::Code(code),
                (None, Some(signal)) => Exit::Signal(signal),
                (None, None) => Exit::WaitFailed(format!("unexpected status {status}")),
            }
        }
        Ok(Err(e)) => {
            guard.kill();
            Exit::WaitFailed(e.to_string())
        }
        Err(_) => {
            tracing::warn!(
                resource = %spec.name,
                "{} timed out after {:?}: killing its process group",
                PathBuf::from(&spec.program).display(),
                spec.timeout
            );
            guard.kill();
            let _ = tokio::time::timeout(REAP_GRACE, child.wait()).await;
            Exit::TimedOut
        }
    }
}

/// Copies what the readers captured into `finished`, giving each pipe a short grace.
async fn collect_output(finished: &mut Finished, stdout: Option<Reader>, stderr: Option<Reader>) {
    for (stream, out) in [
        (stdout, &mut finished.stdout),
        (stderr, &mut finished.stderr),
    ] {
        if let Some((mut task, capture)) = stream {
            let _ = tokio::time::timeout(DRAIN_GRACE, &mut task).await;
            // Not joined: if a background daemon holds the pipe, the task keeps
            // forwarding its lines to the log (closing the pipe would SIGPIPE it).
            let mut c = capture.lock().unwrap_or_else(|p| p.into_inner());
            *out = std::mem::take(&mut c.bytes);
            finished.truncated |= c.truncated;
        }
    }
}

type Reader = (tokio::task::JoinHandle<()>, Arc<Mutex<Capture>>);

/// Forwards one stream to the log, line by line, and keeps a bounded copy.
fn reader<R>(mut stream: R, spec: &Spec, which: &'static str, is_err: bool) -> Reader
where
    R: AsyncRead + Unpin + Send + 'static,
{
    let capture = Arc::new(Mutex::new(Capture::default()));
    let shared = Arc::clone(&capture);
    let name = spec.name.clone();
    let limit = spec.capture_limit;
    let quiet = spec.quiet;
    let task = tokio::spawn(async move {
        let mut buf = vec![0u8; 8192];
        let mut line: Vec<u8> = Vec::new();
        let mut logged = 0usize;
        let mut emit = |line: &[u8]| {
            logged += 1;
            if logged > LOG_LINE_LIMIT {
                return;
            }
            let text = String::from_utf8_lossy(line);
            let text = text.trim_end();
            if logged == LOG_LINE_LIMIT {
                tracing::warn!(resource = %name, "{which}: too much output, not logging the rest");
            } else if quiet {
                tracing::debug!(resource = %name, "{text}");
            } else if is_err {
                tracing::warn!(resource = %name, "{text}");
            } else {
                tracing::info!(resource = %name, "{text}");
            }
        };
        loop {
            let n = match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            {
                let mut c = shared.lock().unwrap_or_else(|p| p.into_inner());
                let room = limit.saturating_sub(c.bytes.len());
                let keep = room.min(n);
                c.bytes.extend_from_slice(&buf[..keep]);
                if keep < n {
                    c.truncated = true;
                }
            }
            for &b in &buf[..n] {
                if b == b'\n' {
                    emit(&line);
                    line.clear();
                } else if line.len() < LOG_LINE_BYTES {
                    line.push(b);
                }
            }
        }
        if !line.is_empty() {
            emit(&line);
        }
    });
    (task, capture)
}
