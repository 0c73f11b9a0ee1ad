//! The merge of admin states: commutative, idempotent, per entry.

use super::*;

const N1: NodeId = NodeId(1);
const N2: NodeId = NodeId(2);
const N3: NodeId = NodeId(3);
const G: GroupId = GroupId(7);

fn at(secs: u64) -> Instant {
    Instant::from_nanos(secs * 1_000_000_000)
}

fn merged(a: &AdminState, b: &AdminState) -> AdminState {
    let mut m = a.clone();
    m.merge(b);
    m
}

/// Two nodes that agreed on `base`, then each recorded one command.
fn diverged(
    base: &AdminState,
    one: impl Fn(&mut AdminState),
    two: impl Fn(&mut AdminState),
) -> (AdminState, AdminState) {
    let (mut a, mut b) = (base.clone(), base.clone());
    one(&mut a);
    two(&mut b);
    (a, b)
}

fn some_history() -> AdminState {
    let mut s = AdminState::default();
    s.set(AdminKey::Standby(N3), AdminValue::On, None, N1)
        .unwrap();
    s.set(AdminKey::Move(G), AdminValue::MoveTo(N2), None, N2)
        .unwrap();
    s.set(AdminKey::Standby(N3), AdminValue::Cleared, None, N2)
        .unwrap();
    s.cleanups.push((G, 2));
    s
}

#[test]
fn concurrent_commands_on_different_entries_both_survive_in_either_order() {
    let (a, b) = diverged(
        &some_history(),
        |s| {
            s.set(AdminKey::Standby(N3), AdminValue::On, None, N1)
                .unwrap()
        },
        |s| {
            s.set(AdminKey::Ban(G, N1), AdminValue::On, None, N2)
                .unwrap()
        },
    );
    let (ab, ba) = (merged(&a, &b), merged(&b, &a));
    assert_eq!(ab, ba, "commutative");
    assert!(ab.standby(N3) && ab.banned(G, N1), "{ab:?}");
    assert_eq!(ab.move_target(G), Some(N2), "untouched entries stay");
}

#[test]
fn merging_is_idempotent_and_associative() {
    let base = some_history();
    let (a, b) = diverged(
        &base,
        |s| {
            s.set(AdminKey::Maintenance, AdminValue::On, None, N1)
                .unwrap()
        },
        |s| {
            s.set(AdminKey::Move(G), AdminValue::MoveTo(N3), None, N2)
                .unwrap()
        },
    );
    let mut c = base.clone();
    c.set(AdminKey::GroupMaintenance(G), AdminValue::On, None, N3)
        .unwrap();
    c.cleanups = vec![(G, 5)];
    assert_eq!(merged(&a, &a), a);
    let ab = merged(&a, &b);
    assert_eq!(merged(&ab, &b), ab);
    assert_eq!(merged(&ab, &c), merged(&a, &merged(&b, &c)));
    let all = merged(&ab, &c);
    assert_eq!(all.cleanup_count(G), 5, "cleanup counters merge by maximum");
}

#[test]
fn concurrent_commands_on_one_entry_have_one_deterministic_winner() {
    let (a, b) = diverged(
        &some_history(),
        |s| {
            s.set(AdminKey::Move(G), AdminValue::MoveTo(N1), None, N1)
                .unwrap()
        },
        |s| {
            s.set(AdminKey::Move(G), AdminValue::MoveTo(N3), None, N3)
                .unwrap()
        },
    );
    let (ab, ba) = (merged(&a, &b), merged(&b, &a));
    assert_eq!(ab, ba);
    // Same counter: the higher node id breaks the tie.
    assert_eq!(ab.move_target(G), Some(N3));
}

#[test]
fn a_clear_survives_a_merge_with_the_value_it_cleared() {
    let mut old = AdminState::default();
    old.set(AdminKey::Ban(G, N2), AdminValue::On, None, N1)
        .unwrap();
    let mut cleared = old.clone();
    cleared
        .set(AdminKey::Ban(G, N2), AdminValue::Cleared, None, N3)
        .unwrap();
    assert!(!merged(&old, &cleared).banned(G, N2));
    assert!(!merged(&cleared, &old).banned(G, N2));
}

#[test]
fn a_command_is_newer_than_everything_its_node_has_seen() {
    let mut a = AdminState::default();
    for _ in 0..5 {
        a.set(AdminKey::Maintenance, AdminValue::On, None, N3)
            .unwrap();
    }
    let mut b = AdminState::default();
    b.merge(&a);
    b.set(AdminKey::Maintenance, AdminValue::Cleared, None, N1)
        .unwrap();
    // n1 has the lower id, but its counter moved past n3's.
    assert!(!merged(&a, &b).maintenance());
}

#[test]
fn an_entry_expires_into_a_tombstone_and_copies_keep_the_earlier_expiry() {
    let life = Duration::from_secs(10);
    let mut a = AdminState::default();
    let expires = Expiry {
        at: at(100) + life,
        lifetime: life,
    };
    a.set(AdminKey::Ban(G, N1), AdminValue::On, Some(expires), N1)
        .unwrap();
    // The receiver's clock reads 500 s when the heartbeat sent at 102 s arrives.
    let b = a.rebased(at(102), at(500));
    assert_eq!(
        b.get(AdminKey::Ban(G, N1)).unwrap().expires.unwrap().at,
        at(508)
    );
    assert_eq!(b.next_expiry(), Some(at(508)));
    let mut late = b.clone();
    late.entries[0].expires = Some(Expiry {
        at: at(509),
        lifetime: life,
    });
    assert_eq!(merged(&b, &late), merged(&late, &b));
    assert_eq!(merged(&late, &b).next_expiry(), Some(at(508)));

    let mut c = b.clone();
    assert!(c.expire(at(507)).is_empty());
    assert_eq!(c.expire(at(508)).len(), 1);
    assert!(!c.banned(G, N1) && c.next_expiry().is_none());
    assert_eq!(merged(&b, &c), merged(&c, &b), "expired copy wins");
    assert!(!merged(&b, &c).banned(G, N1));
}

#[test]
fn a_state_covers_what_it_already_merged_and_only_lowers_expiries_from_it() {
    let life = Duration::from_secs(60);
    let mut a = some_history();
    let expires = Expiry {
        at: at(10) + life,
        lifetime: life,
    };
    a.set(AdminKey::Ban(G, N3), AdminValue::On, Some(expires), N1)
        .unwrap();
    let mut b = AdminState::default();
    assert!(!b.covers(&a));
    b.merge(&a.rebased(at(10), at(1000)));
    assert!(b.covers(&a) && a.covers(&b) && b.covers(&AdminState::default()));
    // a's copy says 60 s from its send; b counted from a later arrival: lowered.
    b.lower_expiries(&a, at(10), at(990));
    assert_eq!(b.next_expiry(), Some(at(1050)));
    b.lower_expiries(&a, at(10), at(2000));
    assert_eq!(b.next_expiry(), Some(at(1050)), "never raised");
    let mut newer = a.clone();
    newer
        .set(AdminKey::Ban(G, N3), AdminValue::Cleared, None, N2)
        .unwrap();
    assert!(!b.covers(&newer));
    newer.cleanups = vec![(G, 9)];
    b.merge(&newer);
    assert!(b.covers(&newer));
}

#[test]
fn an_expiry_stored_before_a_reboot_gets_at_most_its_lifetime_again() {
    let life = Duration::from_secs(60);
    let mut s = AdminState::default();
    let expires = Expiry {
        at: at(10_000),
        lifetime: life,
    };
    s.set(AdminKey::Move(G), AdminValue::MoveTo(N2), Some(expires), N1)
        .unwrap();
    s.after_boot(at(5));
    assert_eq!(s.next_expiry(), Some(at(65)));
}

#[test]
fn a_full_table_makes_room_from_the_oldest_clear_or_refuses() {
    let mut s = AdminState::default();
    for n in 0..MAX_ADMIN_ENTRIES as u16 {
        s.set(AdminKey::Ban(G, NodeId(n + 1)), AdminValue::On, None, N1)
            .unwrap();
    }
    let extra = AdminKey::Standby(N1);
    assert_eq!(s.set(extra, AdminValue::On, None, N1), Err(AdminFull::Full));
    s.set(AdminKey::Ban(G, N2), AdminValue::Cleared, None, N1)
        .unwrap();
    s.set(extra, AdminValue::On, None, N1).unwrap();
    assert_eq!(s.entries.len(), MAX_ADMIN_ENTRIES);
    assert!(s.get(AdminKey::Ban(G, N2)).is_none() && s.standby(N1));
}

#[test]
fn a_state_file_of_the_single_record_era_migrates_to_entries() {
    let old = r#"{"version":7,"origin":2,"maintenance":false,"standby":[3],
        "group_maintenance":[7],"moves":[[7,1]],"cleanups":[[7,4]]}"#;
    let s: AdminState = serde_json::from_str(old).expect("legacy admin state reads");
    assert!(s.standby(N3) && s.group_maintenance(G) && !s.maintenance());
    assert_eq!(s.move_target(G), Some(N1));
    assert_eq!(s.cleanup_count(G), 4);
    let stamp = Stamp {
        counter: 7,
        origin: N2,
    };
    assert!(s.entries.iter().all(|e| e.stamp == stamp));
    let again: AdminState =
        serde_json::from_str(&serde_json::to_string(&s).unwrap()).expect("current form reads");
    assert_eq!(again, s);
}
