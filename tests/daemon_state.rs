//! The state directory: atomic writes, persisted core state, incarnation monotonicity.

use std::path::PathBuf;
use tandem::core::{GroupId, NodeId, PersistentState, Term};
use tandem::daemon::state::{atomic_write, IncarnationSource, StateDir};

fn temp_dir(tag: &str) -> PathBuf {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("tandem-{tag}-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

struct Cleanup(PathBuf);
impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn atomic_write_replaces_content_and_leaves_no_temp_file() {
    let dir = temp_dir("atomic");
    let _c = Cleanup(dir.clone());
    std::fs::create_dir_all(&dir).expect("mkdir");
    let path = dir.join("f.json");
    atomic_write(&path, b"one").expect("write 1");
    atomic_write(&path, b"two, longer").expect("write 2");
    assert_eq!(std::fs::read(&path).expect("read"), b"two, longer");
    let names: Vec<_> = std::fs::read_dir(&dir)
        .expect("ls")
        .filter_map(|e| e.ok().map(|e| e.file_name()))
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("f.json")]);
}

#[test]
fn atomic_write_into_a_missing_directory_fails_and_creates_nothing() {
    let dir = temp_dir("atomic-missing");
    let path = dir.join("f.json");
    assert!(atomic_write(&path, b"x").is_err());
    assert!(!dir.exists());
}

#[test]
fn persisted_state_round_trips_and_missing_or_corrupt_is_reported() {
    let dir = temp_dir("state");
    let _c = Cleanup(dir.clone());
    let sd = StateDir::open(&dir).expect("open");
    assert_eq!(sd.load(), Ok(None), "missing file is not an error");
    let state = PersistentState {
        terms: vec![(GroupId::of_name("web"), Term(7))],
        ..Default::default()
    };
    sd.save(&state).expect("save");
    assert_eq!(sd.load(), Ok(Some(state.clone())));
    std::fs::write(sd.state_path(), b"{\"terms\": [[1, ").expect("corrupt");
    let err = sd.load().expect_err("corrupt file must be reported");
    assert!(err.contains("corrupt"), "{err}");
    // Saving again repairs it.
    sd.save(&state).expect("save");
    assert_eq!(sd.load(), Ok(Some(state)));
}

#[test]
fn a_state_file_with_the_old_single_admin_record_loads_as_entries() {
    let dir = temp_dir("state-legacy");
    let _c = Cleanup(dir.clone());
    let sd = StateDir::open(&dir).expect("open");
    let web = GroupId::of_name("web").0;
    let legacy = format!(
        r#"{{"terms":[[{web},3]],"owned":[],"admin":{{"version":4,"origin":2,"maintenance":true,
        "standby":[3],"group_maintenance":[],"moves":[[{web},1]],"cleanups":[]}}}}"#
    );
    std::fs::write(sd.state_path(), legacy).expect("write legacy state");
    let state = sd
        .load()
        .expect("a legacy file is not corrupt")
        .expect("present");
    let admin = &state.admin;
    assert!(admin.maintenance() && admin.standby(NodeId(3)), "{admin:?}");
    assert_eq!(admin.move_target(GroupId(web)), Some(NodeId(1)));
    assert_eq!(state.terms, vec![(GroupId(web), Term(3))]);
    // Saved again, it is in the current form, and reads back the same.
    sd.save(&state).expect("save");
    let text = std::fs::read_to_string(sd.state_path()).expect("read");
    assert!(
        text.contains("\"entries\"") && !text.contains("\"version\""),
        "{text}"
    );
    assert_eq!(sd.load(), Ok(Some(state)));
}

#[test]
fn incarnation_increases_on_every_boot_and_survives_restarts() {
    let dir = temp_dir("inc");
    let _c = Cleanup(dir.clone());
    let sd = StateDir::open(&dir).expect("open");
    let (first, src) = sd
        .next_incarnation(1_700_000_000_000_000_000)
        .expect("first");
    assert_eq!(src, IncarnationSource::WallClock);
    assert_eq!(first, 1_700_000_000_000_000_000);
    let mut last = first;
    for _ in 0..5 {
        // A new StateDir each time: what counts is what is on disk.
        let sd = StateDir::open(&dir).expect("reopen");
        // Even with a wall clock that went backwards, the counter only goes up.
        let (next, src) = sd.next_incarnation(5).expect("next");
        assert_eq!(src, IncarnationSource::Counter);
        assert_eq!(next, last + 1);
        last = next;
    }
    let on_disk = std::fs::read_to_string(sd.incarnation_path()).expect("read");
    assert_eq!(on_disk.trim().parse::<u64>().ok(), Some(last));
}

#[test]
fn a_corrupt_incarnation_file_falls_back_to_the_wall_clock() {
    let dir = temp_dir("inc-corrupt");
    let _c = Cleanup(dir.clone());
    let sd = StateDir::open(&dir).expect("open");
    std::fs::write(sd.incarnation_path(), b"not a number").expect("write");
    let (inc, src) = sd.next_incarnation(123_456).expect("next");
    assert_eq!((inc, src), (123_456, IncarnationSource::WallClock));
    let (inc2, _) = sd.next_incarnation(1).expect("next");
    assert_eq!(inc2, 123_457);
}

#[test]
fn prepare_boot_bumps_the_incarnation_and_loads_state() {
    let dir = temp_dir("boot");
    let _c = Cleanup(dir.clone());
    let sd = StateDir::open(&dir).expect("open");
    let b1 = tandem::daemon::prepare_boot(&sd).expect("boot 1");
    assert!(b1.persisted.is_none());
    sd.save(&PersistentState::default()).expect("save");
    let b2 = tandem::daemon::prepare_boot(&sd).expect("boot 2");
    assert_eq!(b2.incarnation, b1.incarnation + 1);
    assert_eq!(b2.persisted, Some(PersistentState::default()));
}
