//! Admin state on real daemons (issue 16, points 4 and 5): two different commands issued
//! on the two sides of a partition both survive the heal (each entry is versioned on its
//! own, so neither overwrites the other), a ban with a lifetime lapses by itself, and
//! `move` says what it leaves behind. Needs root, iproute2 and nftables.

use serde_json::Value;
use std::time::Duration;
use tandem::lab::{Lab, LabSpec};

mod support;

use support::lab::{eventually, node_state, ok, runs_on, text};

const LONG: Duration = Duration::from_secs(40);

/// A group whose service is a file in the node's private directory, and that stays
/// where it is unless moved (`failback: false`), so every move is the test's doing.
const GROUP: &str = r#"groups:
  - name: www
    prefer: n1
    failback: false
    resources:
      - exec:
          name: svc
          start: 'touch "$TANDEM_LAB_NODE_DIR/www.up"'
          stop: 'rm -f "$TANDEM_LAB_NODE_DIR/www.up"'
          monitor: '[ -f "$TANDEM_LAB_NODE_DIR/www.up" ] || exit 7'
"#;

fn start() -> Lab {
    let spec = LabSpec {
        nodes: 3,
        extra_yaml: GROUP.into(),
        ..LabSpec::default()
    };
    let mut lab = Lab::build(spec).unwrap_or_else(|e| {
        panic!("cannot build the lab: {e}\n(needs root, iproute2 and nftables)")
    });
    lab.start_all().expect("start");
    eventually(&lab, 1, "www on n1, every node online", LONG, |s| {
        runs_on(s, "www").as_deref() == Some("n1")
            && ["n1", "n2", "n3"]
                .iter()
                .all(|n| node_state(s, n).as_deref() == Some("online"))
    });
    lab
}

/// The constraint of `kind` on `node` (and `group`, if given) in a status, if in force.
fn constraint<'a>(s: &'a Value, kind: &str, node: &str, group: Option<&str>) -> Option<&'a Value> {
    s["constraints"]
        .as_array()?
        .iter()
        .find(|c| c["kind"] == kind && c["node"] == node && group.is_none_or(|g| c["group"] == g))
}

#[test]
fn two_admin_commands_on_both_sides_of_a_partition_both_survive_the_heal() {
    let test = "two_admin_commands_on_both_sides_of_a_partition_both_survive_the_heal";
    let Some(_serial) = support::lab::serial_lab_test(test) else {
        return;
    };
    let mut lab = start();
    lab.partition(&[&[1], &[2, 3]]).expect("partition");
    eventually(&lab, 1, "n1 alone", LONG, |s| {
        node_state(s, "n2").as_deref() == Some("offline")
            && node_state(s, "n3").as_deref() == Some("offline")
    });
    eventually(&lab, 2, "n2 no longer hears n1", LONG, |s| {
        node_state(s, "n1").as_deref() == Some("offline")
    });

    // One command on each side, each knowing nothing of the other.
    ok(&lab, 1, &["standby", "n3"]);
    ok(&lab, 2, &["ban", "www", "n1"]);
    let s = eventually(&lab, 1, "n1 has its own command", LONG, |s| {
        constraint(s, "standby", "n3", None).is_some()
    });
    assert!(
        constraint(&s, "ban", "n1", Some("www")).is_none(),
        "the partition let the ban through early: {s}"
    );

    lab.heal_all().expect("heal");
    for node in 1..=3 {
        let s = eventually(&lab, node, "both commands after the heal", LONG, |s| {
            constraint(s, "standby", "n3", None).is_some()
                && constraint(s, "ban", "n1", Some("www")).is_some()
        });
        assert_eq!(
            constraint(&s, "standby", "n3", None).map(|c| c["set_on"].clone()),
            Some("n1".into()),
            "{s}"
        );
        assert_eq!(
            constraint(&s, "ban", "n1", Some("www")).map(|c| c["set_on"].clone()),
            Some("n2".into()),
            "{s}"
        );
    }
    // Both are obeyed: n1 is banned and n3 in standby, so www runs on n2.
    eventually(&lab, 3, "www on n2, n3 in standby", LONG, |s| {
        runs_on(s, "www").as_deref() == Some("n2")
            && node_state(s, "n3").as_deref() == Some("standby")
    });
    let text_status = ok(&lab, 1, &["status"]);
    assert!(
        text_status.contains("www never on n1") && text_status.contains("tandemctl online n3"),
        "{text_status}"
    );
}

#[test]
fn a_ban_with_a_lifetime_lapses_and_move_says_what_it_leaves_behind() {
    let test = "a_ban_with_a_lifetime_lapses_and_move_says_what_it_leaves_behind";
    let Some(_serial) = support::lab::serial_lab_test(test) else {
        return;
    };
    let lab = start();

    let out = ok(&lab, 1, &["move", "www", "n2"]);
    assert!(
        out.contains(
            "www is now pinned to n2 until cleared with `tandemctl move --clear www`; `tandemctl status` lists it"
        ),
        "{out}"
    );
    let s = eventually(&lab, 3, "the move listed everywhere", LONG, |s| {
        constraint(s, "move", "n2", Some("www")).is_some()
    });
    let pinned = constraint(&s, "move", "n2", Some("www")).cloned();
    assert_eq!(pinned.map(|c| c["left_ms"].is_null()), Some(true), "{s}");
    let out = ok(&lab, 1, &["move", "--clear", "www"]);
    assert!(out.contains("move preference removed"), "{out}");
    eventually(&lab, 2, "the move gone", LONG, |s| {
        constraint(s, "move", "n2", Some("www")).is_none()
    });

    // A ban of the owner for 3 s: the ban is listed with its time left, www leaves n2
    // (so n2 heard of it), then the ban lapses by itself everywhere.
    let out = ok(&lab, 1, &["ban", "www", "n2", "--lifetime", "3s"]);
    assert!(
        out.contains("n2 stays banned from www for 3s (it lapses by itself; `tandemctl unban www n2` ends it sooner)"),
        "{out}"
    );
    let s = support::lab::status(&lab, 1).expect("status");
    let left = constraint(&s, "ban", "n2", Some("www")).and_then(|c| c["left_ms"].as_u64());
    assert!(left.is_some_and(|l| l > 0 && l <= 3000), "{s}");
    eventually(&lab, 1, "www off n2", LONG, |s| {
        runs_on(s, "www").is_some_and(|o| o != "n2")
    });
    for node in 1..=3 {
        eventually(&lab, node, "the ban lapsed", LONG, |s| {
            constraint(s, "ban", "n2", Some("www")).is_none()
        });
    }
    let events = ok(&lab, 1, &["events"]);
    assert!(events.contains("ban expired"), "{events}");

    // A move with a lifetime says so, and lapses too.
    let out = ok(&lab, 2, &["move", "www", "n3", "--lifetime", "3s"]);
    assert!(
        out.contains("www is now pinned to n3 for 3s (it lapses by itself; `tandemctl move --clear www` ends it sooner)"),
        "{out}"
    );
    for node in 1..=3 {
        eventually(&lab, node, "the move lapsed", LONG, |s| {
            s["constraints"].as_array().is_some_and(Vec::is_empty)
        });
    }

    // A zero lifetime is a usage error, caught before anything is asked.
    let zero = lab.tandemctl(1, &["ban", "www", "n2", "--lifetime", "0"]);
    assert_eq!(zero.status.code(), Some(2), "{}", text(&zero.stderr));
}
