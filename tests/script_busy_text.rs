//! The "Text file busy" race (ETXTBSY) that made agents_lsb fail once: a test writes a
//! script and runs it at once while other threads of the same binary fork. Writer
//! threads here write scripts and exec each one straight away (no retry), while forker
//! threads spawn processes without pause. `support::script::write_executable` must never
//! lose that race; the ignored test shows that a plain `fs::write` does (run it with
//! `cargo test --test script_busy_text -- --ignored`).

mod support;

use std::io::ErrorKind;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;

use support::agents::TempDir;
use support::script::write_executable;

const WRITERS: usize = 4;
const FORKERS: usize = 3;
const SCRIPTS_PER_WRITER: usize = 150;
const BODY: &str = "#!/bin/sh\nexit 0\n";

/// What the writers saw: scripts run, and runs refused with ETXTBSY.
#[derive(Debug, Default)]
struct Tally {
    ran: usize,
    busy: usize,
}

/// Writes and runs `WRITERS * SCRIPTS_PER_WRITER` scripts with `write` while
/// `FORKERS` threads fork continually.
fn hammer(tag: &str, write: fn(&Path, &str)) -> Tally {
    let dir = TempDir::new(tag);
    let stop = Arc::new(AtomicBool::new(false));
    let forkers: Vec<_> = (0..FORKERS)
        .map(|_| {
            let stop = stop.clone();
            thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let _ = Command::new("true").stdin(Stdio::null()).status();
                }
            })
        })
        .collect();
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let dir = dir.path().to_path_buf();
            thread::spawn(move || {
                let mut tally = Tally::default();
                for i in 0..SCRIPTS_PER_WRITER {
                    let path = dir.join(format!("w{w}-{i}"));
                    write(&path, BODY);
                    match Command::new(&path).stdin(Stdio::null()).status() {
                        Ok(s) => {
                            assert!(s.success(), "{}: {s}", path.display());
                            tally.ran += 1;
                        }
                        Err(e) if e.kind() == ErrorKind::ExecutableFileBusy => tally.busy += 1,
                        Err(e) => panic!("running {}: {e}", path.display()),
                    }
                }
                tally
            })
        })
        .collect();
    let mut total = Tally::default();
    for w in writers {
        let t = w.join().expect("writer thread");
        total.ran += t.ran;
        total.busy += t.busy;
    }
    stop.store(true, Ordering::Relaxed);
    for f in forkers {
        f.join().expect("forker thread");
    }
    total
}

fn write_in_process(path: &Path, body: &str) {
    std::fs::write(path, body).expect("write script");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
}

#[test]
fn a_script_written_by_the_helper_runs_at_once_while_other_threads_fork() {
    let tally = hammer("busy-helper", write_executable);
    assert_eq!(tally.busy, 0, "{tally:?}");
    assert_eq!(tally.ran, WRITERS * SCRIPTS_PER_WRITER, "{tally:?}");
}

#[test]
#[ignore = "shows the race the helper removes; timing-dependent, so not a regression test"]
fn a_script_written_in_process_is_sometimes_busy_while_other_threads_fork() {
    let tally = hammer("busy-plain", write_in_process);
    eprintln!("plain fs::write: {tally:?}");
    assert!(tally.busy > 0, "the race did not show this time: {tally:?}");
}
