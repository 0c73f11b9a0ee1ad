//! The state directory: atomic writes, persisted core state, incarnation monotonicity.

use std::path::PathBuf;
use std::time::Duration;
use tandem::core::{GroupId, NodeId, PersistentState, Term};
use tandem::daemon::state::{atomic_write, IncarnationSource, LoadError, StateDir};

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

/// A fresh, empty state dir: its cleanup, its path and its `StateDir`.
fn fresh(tag: &str) -> (Cleanup, PathBuf, StateDir) {
    let dir = temp_dir(tag);
    let cleanup = Cleanup(dir.clone());
    let sd = StateDir::open(&dir).expect("open");
    (cleanup, dir, sd)
}

fn set_mtime(path: &std::path::Path, at: std::time::SystemTime) {
    std::fs::File::options()
        .write(true)
        .open(path)
        .and_then(|f| f.set_modified(at))
        .expect("mtime");
}

fn state_with_term(term: u64) -> PersistentState {
    PersistentState {
        terms: vec![(GroupId::of_name("web"), Term(term))],
        ..Default::default()
    }
}

#[test]
fn persisted_state_round_trips_and_missing_or_corrupt_is_reported() {
    let (_c, _, mut sd) = fresh("state");
    assert!(
        matches!(sd.load(), Ok(None)),
        "missing slots are not an error"
    );
    let state = state_with_term(7);
    sd.save(&state).expect("save");
    assert_eq!(sd.load().expect("load"), Some(state.clone()));
    for path in sd.slot_paths() {
        std::fs::write(path, b"{\"terms\": [[1, ").expect("corrupt");
    }
    let err = sd.load().expect_err("corrupt slots must be reported");
    let LoadError::Corrupt(faults) = &err else {
        panic!("not reported as corrupt: {err}");
    };
    assert_eq!(faults.len(), 2, "{err}");
    // Saving again repairs it.
    sd.save(&state).expect("save");
    assert_eq!(sd.load().expect("load"), Some(state));
}

#[test]
fn saves_alternate_between_the_slots_and_the_newest_wins() {
    let (_c, dir, b) = after_two_saves("slots");
    // A new StateDir (a restart) continues after the newest slot: into `a`, as seq 3.
    let mut sd = StateDir::open(&dir).expect("reopen");
    let [a, _] = sd.slot_paths();
    let head = |p: &PathBuf| std::fs::read(p).expect("read")[..40].to_vec();
    assert!(head(&a).ends_with(b"seq 00000000000000000001"), "{a:?}");
    assert!(head(&b).ends_with(b"seq 00000000000000000002"), "{b:?}");
    assert_eq!(sd.load().expect("load"), Some(state_with_term(2)));
    sd.save(&state_with_term(3)).expect("save 3");
    assert!(head(&a).ends_with(b"seq 00000000000000000003"));
    assert_eq!(sd.load().expect("load"), Some(state_with_term(3)));
}

/// A fresh state dir after two saves (terms 1 and 2): its cleanup, the dir, and the
/// slot holding term 2 (the newest).
fn after_two_saves(tag: &str) -> (Cleanup, PathBuf, PathBuf) {
    let (cleanup, dir, mut sd) = fresh(tag);
    sd.save(&state_with_term(1)).expect("save 1");
    sd.save(&state_with_term(2)).expect("save 2");
    let [_, newest] = sd.slot_paths();
    (cleanup, dir, newest)
}

#[test]
fn a_save_torn_by_a_crash_leaves_the_state_before_it() {
    let (_c, dir, newest) = after_two_saves("torn");
    let full = std::fs::read(&newest).expect("read");
    // Cut anywhere, or one byte of the body changed: the older slot is what was durable.
    for cut in [0, 10, 71, full.len() / 2, full.len() - 2] {
        std::fs::write(&newest, &full[..cut]).expect("tear");
        let sd = StateDir::open(&dir).expect("reopen");
        assert_eq!(
            sd.load().expect("load"),
            Some(state_with_term(1)),
            "cut {cut}"
        );
    }
    let mut flipped = full.clone();
    flipped[full.len() / 2] ^= 0x04;
    std::fs::write(&newest, &flipped).expect("flip");
    let mut sd = StateDir::open(&dir).expect("reopen");
    assert_eq!(sd.load().expect("load"), Some(state_with_term(1)));
    // The next save goes over the torn slot, not over the good one.
    sd.save(&state_with_term(3)).expect("save 3");
    assert_eq!(sd.load().expect("load"), Some(state_with_term(3)));
    std::fs::write(&newest, b"").expect("tear again");
    assert_eq!(sd.load().expect("load"), Some(state_with_term(1)));
}

#[test]
fn a_whole_record_this_version_cannot_read_is_still_numbered_above() {
    // After a downgrade, a slot may hold a whole record with a body from a newer
    // version: it is not used, but the next save must not number below it, or the
    // newer version would later take that old record for the newest.
    let (_c, dir, b) = after_two_saves("future");
    let text = std::fs::read_to_string(&b).expect("read");
    let body = "{\"terms\": \"a future shape\"}\n";
    let header_prefix = "tandem-state v1 seq 00000000000000000050 len ";
    let len = format!("{:010}", body.len());
    let mut crc = crc32fast::Hasher::new();
    crc.update(format!("{header_prefix}{len} crc32 ").as_bytes());
    crc.update(body.as_bytes());
    let future = format!("{header_prefix}{len} crc32 {:08x}\n{body}", crc.finalize());
    assert!(text.len() > future.len());
    std::fs::write(&b, &future).expect("plant");
    let mut sd = StateDir::open(&dir).expect("reopen");
    assert_eq!(sd.load().expect("load"), Some(state_with_term(1)));
    // It goes over the unreadable slot (never over the only good one), as seq 51.
    sd.save(&state_with_term(3)).expect("save 3");
    let b_text = std::fs::read_to_string(&b).expect("read b");
    assert!(
        b_text.starts_with("tandem-state v1 seq 00000000000000000051"),
        "{b_text}"
    );
    assert_eq!(sd.load().expect("load"), Some(state_with_term(3)));
}

#[test]
fn a_state_file_written_by_an_older_version_after_the_slots_wins() {
    // A downgrade writes state.json after the slots; an upgrade again must not go back
    // to the slots' older terms. A state.json older than the slots (left by a crash
    // between a save and its removal) does not win.
    let (_c, dir, mut sd) = fresh("downgrade");
    sd.save(&state_with_term(4)).expect("save");
    let web = GroupId::of_name("web").0;
    let old_version = format!(r#"{{"terms":[[{web},9]],"owned":[]}}"#);
    let legacy = sd.legacy_state_path();
    std::fs::write(&legacy, &old_version).expect("older version writes");
    set_mtime(
        &legacy,
        std::time::SystemTime::now() + Duration::from_secs(5),
    );
    let sd = StateDir::open(&dir).expect("reopen");
    assert_eq!(sd.load().expect("load"), Some(state_with_term(9)));
    set_mtime(
        &legacy,
        std::time::SystemTime::now() - Duration::from_secs(3600),
    );
    assert_eq!(sd.load().expect("load"), Some(state_with_term(4)));
}

#[test]
fn a_smaller_state_over_a_larger_one_reads_back_as_written() {
    let (_c, _, mut sd) = fresh("shrink");
    let big = PersistentState {
        terms: (0..50)
            .map(|i| (GroupId::of_name(&format!("g{i}")), Term(i)))
            .collect(),
        ..Default::default()
    };
    for state in [&big, &big, &state_with_term(9), &state_with_term(10)] {
        sd.save(state).expect("save");
        assert_eq!(sd.load().expect("load").as_ref(), Some(state));
    }
    // The slots keep their size (padding, no truncation) and still read as JSON to a human.
    for path in sd.slot_paths() {
        let text = std::fs::read_to_string(&path).expect("text");
        assert!(text.lines().nth(1) == Some("{"), "{text}");
    }
}

#[test]
fn a_state_file_with_the_old_single_admin_record_loads_as_entries() {
    let (_c, dir, sd) = fresh("state-legacy");
    let web = GroupId::of_name("web").0;
    let legacy = format!(
        r#"{{"terms":[[{web},3]],"owned":[],"admin":{{"version":4,"origin":2,"maintenance":true,
        "standby":[3],"group_maintenance":[],"moves":[[{web},1]],"cleanups":[]}}}}"#
    );
    std::fs::write(sd.legacy_state_path(), legacy).expect("write legacy state");
    // A first save to the slots cut off by a crash: the old file still counts.
    std::fs::write(&sd.slot_paths()[0], b"tandem-state v1 seq 0000").expect("torn slot");
    // The upgraded daemon starts with both on disk.
    let mut sd = StateDir::open(&dir).expect("reopen");
    let state = sd
        .load()
        .expect("a legacy file is not corrupt")
        .expect("present");
    let admin = &state.admin;
    assert!(admin.maintenance() && admin.standby(NodeId(3)), "{admin:?}");
    assert_eq!(admin.move_target(GroupId(web)), Some(NodeId(1)));
    assert_eq!(state.terms, vec![(GroupId(web), Term(3))]);
    // Saved again, it is in the slots in the current form and the old file is gone.
    sd.save(&state).expect("save");
    assert!(!sd.legacy_state_path().exists());
    let text = std::fs::read_to_string(&sd.slot_paths()[0]).expect("read");
    assert!(
        text.contains("\"entries\"") && !text.contains("\"version\""),
        "{text}"
    );
    assert_eq!(sd.load().expect("load"), Some(state));
}

#[test]
fn incarnation_increases_on_every_boot_and_survives_restarts() {
    let (_c, dir, sd) = fresh("inc");
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
    let (_c, _, sd) = fresh("inc-corrupt");
    std::fs::write(sd.incarnation_path(), b"not a number").expect("write");
    let (inc, src) = sd.next_incarnation(123_456).expect("next");
    assert_eq!((inc, src), (123_456, IncarnationSource::WallClock));
    let (inc2, _) = sd.next_incarnation(1).expect("next");
    assert_eq!(inc2, 123_457);
}

#[test]
fn prepare_boot_bumps_the_incarnation_and_loads_state() {
    let (_c, _, mut sd) = fresh("boot");
    let b1 = tandem::daemon::prepare_boot(&sd).expect("boot 1");
    assert!(b1.persisted.is_none());
    sd.save(&PersistentState::default()).expect("save");
    let b2 = tandem::daemon::prepare_boot(&sd).expect("boot 2");
    assert_eq!(b2.incarnation, b1.incarnation + 1);
    assert_eq!(b2.persisted, Some(PersistentState::default()));
}
