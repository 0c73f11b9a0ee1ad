//! Writing a script that is executed next, without "Text file busy" (ETXTBSY).
//!
//! Linux refuses to exec a file while any descriptor open for writing on it exists. std
//! opens files with O_CLOEXEC, but that closes the descriptor only at exec: a thread of
//! the test binary that forks (any `Command::spawn`, here or in the library under test)
//! between our `open` and `close` gives its child a copy, which lives until the child
//! execs. A script written with `fs::write` and run at once therefore fails now and then
//! on a busy machine (agents_lsb did), and nothing a test does after the write can take
//! the copy away. Retrying the exec (what `agents::process` does for the daemon) only
//! narrows the window, and does not help when the exec happens behind a wrapper
//! (`ip netns exec SCRIPT`) or in a daemon the test started; a process-wide lock would
//! have to be taken by every spawn, the library's included.
//!
//! So the write happens in a child process (`tee`): the only writable descriptor of the
//! file ever exists in a single-threaded process that forks nothing, and is gone when
//! it exits. It writes a temporary name next to the target, which is then made
//! executable and renamed into place, so a script that a test rewrites is replaced in
//! one step and a reader never sees half of it.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Writes `body` to `path` with mode 0755, safe to execute as soon as this returns.
pub fn write_executable(path: &Path, body: &str) {
    let tmp = temp_name(path);
    let mut tee = Command::new("tee")
        .arg(&tmp)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("start tee (coreutils)");
    tee.stdin
        .take()
        .expect("piped stdin")
        .write_all(body.as_bytes())
        .unwrap_or_else(|e| panic!("writing {}: {e}", tmp.display()));
    let status = tee.wait().expect("wait for tee");
    assert!(status.success(), "tee {} failed: {status}", tmp.display());
    put_in_place(&tmp, path);
}

/// Copies the program `from` to `to` with mode 0755, safe to execute as soon as this
/// returns (`cp` does the writing, for the reason above).
pub fn copy_executable(from: &Path, to: &Path) {
    let tmp = temp_name(to);
    let status = Command::new("cp")
        .arg(from)
        .arg(&tmp)
        .status()
        .expect("start cp (coreutils)");
    assert!(
        status.success(),
        "cp {} {} failed: {status}",
        from.display(),
        tmp.display()
    );
    put_in_place(&tmp, to);
}

/// A name next to `path` that no other writer uses.
fn temp_name(path: &Path) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let name = path
        .file_name()
        .unwrap_or_else(|| panic!("{} has no file name", path.display()));
    path.with_file_name(format!(
        ".{}.{}-{}.tmp",
        name.to_string_lossy(),
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ))
}

/// Makes `tmp` executable and renames it to `path`.
fn put_in_place(tmp: &Path, path: &Path) {
    std::fs::set_permissions(tmp, std::fs::Permissions::from_mode(0o755))
        .unwrap_or_else(|e| panic!("chmod {}: {e}", tmp.display()));
    std::fs::rename(tmp, path)
        .unwrap_or_else(|e| panic!("renaming {} to {}: {e}", tmp.display(), path.display()));
}
