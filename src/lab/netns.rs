//! Thin wrappers around `ip`, `nft` and `setns(2)`: run a tool and turn a failure into a
//! `LabError` that carries the command line and its stderr; build a `Command` that enters
//! a named network namespace before exec; find and kill every process inside one.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use super::LabError;

/// Where iproute2 keeps its named namespaces (bind mounts of the nsfs files).
pub const NETNS_DIR: &str = "/run/netns";

pub fn netns_path(name: &str) -> PathBuf {
    Path::new(NETNS_DIR).join(name)
}

fn describe(program: &str, args: &[&str]) -> String {
    let mut s = program.to_string();
    for a in args {
        s.push(' ');
        s.push_str(a);
    }
    s
}

/// Runs `program args` (optionally feeding `stdin`) and fails unless it exits 0.
pub fn run_checked(program: &str, args: &[&str], stdin: Option<&str>) -> Result<Output, LabError> {
    let mut cmd = Command::new(program);
    cmd.args(args);
    let cmdline = describe(program, args);
    let out = output_with_stdin(cmd, stdin, &cmdline)?;
    if !out.status.success() {
        return Err(LabError::Command {
            cmd: match stdin {
                Some(input) => format!("{cmdline} <<EOF\n{input}EOF"),
                None => cmdline,
            },
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(out)
}

fn output_with_stdin(
    mut cmd: Command,
    stdin: Option<&str>,
    cmdline: &str,
) -> Result<Output, LabError> {
    let io_err = |e: io::Error| LabError::Io {
        context: format!("running `{cmdline}`"),
        source: e,
    };
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .map_err(|e| spawn_error(&cmd, format!("running `{cmdline}`"), e))?;
    if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(input.as_bytes()).map_err(io_err)?;
    }
    child.wait_with_output().map_err(io_err)
}

/// `command`'s spawn failure, naming the package when its program is missing.
fn spawn_error(command: &Command, context: String, e: io::Error) -> LabError {
    super::tools::spawn_error(&command.get_program().to_string_lossy(), context, e)
}

/// A `Command` that joins the named network namespace between fork and exec, so the pid
/// of the spawned child is the program itself (no `ip netns exec` in between). The
/// returned `File` holds the namespace open and must outlive `spawn()`.
pub fn command_in_netns(
    ns: &str,
    program: impl AsRef<std::ffi::OsStr>,
) -> Result<(Command, File), LabError> {
    let path = netns_path(ns);
    let file = File::open(&path).map_err(|e| LabError::Io {
        context: format!("opening network namespace {}", path.display()),
        source: e,
    })?;
    let fd = file.as_raw_fd();
    let mut cmd = Command::new(program);
    // SAFETY: setns(2) is async-signal-safe and only touches the calling (child) thread;
    // the closure allocates nothing.
    unsafe {
        cmd.pre_exec(move || {
            if libc::setns(fd, libc::CLONE_NEWNET) != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    Ok((cmd, file))
}

/// Runs `cmd[0] cmd[1..]` inside namespace `ns`, collecting output; kills it after `timeout`.
pub fn exec_in_netns(
    ns: &str,
    cmd: &[&str],
    stdin: Option<&[u8]>,
    timeout: Duration,
) -> Result<Output, LabError> {
    let (program, args) = cmd
        .split_first()
        .ok_or_else(|| LabError::Spec("exec: empty command".into()))?;
    let cmdline = format!("[{ns}] {}", describe(program, args));
    let (mut command, _ns_file) = command_in_netns(ns, program)?;
    command.args(args);
    output_with_timeout(command, stdin, timeout, cmdline)
}

/// Runs `command` in its own process group with piped output; after `timeout` the
/// whole group is SIGKILLed and a `Timeout` error returned. Background children that
/// keep stdout open delay the return until they exit (use `Lab::spawn` for those).
pub fn output_with_timeout(
    mut command: Command,
    stdin: Option<&[u8]>,
    timeout: Duration,
    cmdline: String,
) -> Result<Output, LabError> {
    let io_err = |e: io::Error| LabError::Io {
        context: format!("running `{cmdline}`"),
        source: e,
    };
    command
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let mut child = command
        .spawn()
        .map_err(|e| spawn_error(&command, format!("running `{cmdline}`"), e))?;
    // Drain before feeding stdin so a chatty child cannot fill a pipe and deadlock us.
    let stdout = drain(child.stdout.take());
    let stderr = drain(child.stderr.take());
    if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
        // Dropping the pipe afterwards gives the child EOF.
        if let Err(e) = pipe.write_all(input) {
            let _ = child.kill();
            let _ = child.wait();
            return Err(io_err(e));
        }
    }
    let status = match wait_timeout(&mut child, timeout).map_err(io_err)? {
        Some(status) => status,
        None => {
            // Kill the whole group: a shell's children would keep the pipes open.
            let _ = kill(Pid::from_raw(-(child.id() as i32)), Signal::SIGKILL);
            let _ = child.wait();
            return Err(LabError::Timeout {
                what: cmdline,
                after: timeout,
            });
        }
    };
    Ok(Output {
        status,
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    })
}

fn drain<R: Read + Send + 'static>(pipe: Option<R>) -> thread::JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(mut p) = pipe {
            let _ = p.read_to_end(&mut buf);
        }
        buf
    })
}

/// Polls `child` until it exits or `timeout` passes (`Ok(None)`).
pub fn wait_timeout(child: &mut Child, timeout: Duration) -> io::Result<Option<ExitStatus>> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        if Instant::now() >= deadline {
            return Ok(None);
        }
        thread::sleep(Duration::from_millis(10));
    }
}

/// Pids of every live process whose network namespace is the named one (what
/// `ip netns pids` does: compare the nsfs device and inode). Zombies have no namespace
/// and are not listed.
pub fn pids_in_netns(ns: &str) -> Vec<u32> {
    let Ok(target) = std::fs::metadata(netns_path(ns)) else {
        return Vec::new();
    };
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()))
        .filter(|pid| {
            std::fs::metadata(format!("/proc/{pid}/ns/net"))
                .is_ok_and(|m| m.dev() == target.dev() && m.ino() == target.ino())
        })
        .collect()
}

/// SIGKILLs everything inside the namespace and waits (bounded) until nothing is left.
/// Returns the pids that were still there at the end (normally none).
pub fn kill_all_in_netns(ns: &str, timeout: Duration) -> Vec<u32> {
    let deadline = Instant::now() + timeout;
    loop {
        let pids = pids_in_netns(ns);
        if pids.is_empty() || Instant::now() >= deadline {
            return pids;
        }
        for pid in pids {
            let _ = kill(Pid::from_raw(pid as i32), Signal::SIGKILL);
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// Whether a process is alive and not a zombie.
pub fn pid_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state letter follows the parenthesised command name, which may contain spaces.
        Ok(stat) => match stat.rsplit_once(')') {
            Some((_, rest)) => !matches!(rest.trim_start().chars().next(), Some('Z') | Some('X')),
            None => true,
        },
        Err(_) => false,
    }
}

/// Names of all namespaces iproute2 knows about.
pub fn list_netns() -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(NETNS_DIR) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str().map(str::to_string))
        .collect()
}

/// Whether `program` is runnable: found via PATH (or as a path) and executable.
pub fn tool_available(program: &str) -> bool {
    Command::new(program)
        .arg(if program == "ip" { "-V" } else { "--version" })
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}
