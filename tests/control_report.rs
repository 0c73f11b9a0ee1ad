//! What an operator reads after an incident, against a real daemon in the netns lab:
//! a health check that fails and passes again shows its state, streaks and last probe
//! in `status --json`, `status` and `/metrics`; events recorded before a restart are
//! still listed after it, marked with their incarnation; `tandemctl report` writes one
//! archive with the expected members and without a secret planted in the config.
//! Needs root, iproute2 and nftables.

use serde_json::Value;
use std::path::Path;
use std::time::Duration;
use tandem::config::redact::REDACTED;
use tandem::lab::{Lab, LabSpec};

mod support;

use support::lab::{eventually, fencing_with_secret, ok, runs_on, IDLE_WWW};

const LONG: Duration = Duration::from_secs(40);
const SECRET: &str = "Planted-Secret-4c1d";

fn extra_yaml(flag: &Path) -> String {
    format!(
        "{IDLE_WWW}checks:
  - name: flag
    script: \"test ! -e {flag}\"
    interval: 200ms
    timeout: 2s
    fall: 2
    rise: 2
{fencing}metrics:
  listen: 127.0.0.1:9406
",
        flag = flag.display(),
        fencing = fencing_with_secret(SECRET, "[n1]"),
    )
}

fn check<'a>(s: &'a Value, name: &str) -> Option<&'a Value> {
    s["checks"].as_array()?.iter().find(|c| c["name"] == name)
}

/// `/metrics` from inside node 1's namespace.
fn scrape(lab: &Lab) -> String {
    support::lab::scrape_metrics(lab, 1, 9406)
}

fn has_line(body: &str, line: &str) -> bool {
    body.lines().any(|l| l == line)
}

#[test]
fn checks_events_across_a_restart_and_the_report_archive() {
    let Some(_serial) =
        support::lab::serial_lab_test("checks_events_across_a_restart_and_the_report_archive")
    else {
        return;
    };
    let scratch = support::agents::TempDir::new("report");
    let flag = scratch.join("fail-the-check");
    let spec = LabSpec {
        nodes: 1,
        extra_yaml: extra_yaml(&flag),
        ..LabSpec::default()
    };
    let mut lab = Lab::build(spec).expect("lab (needs root, iproute2 and nftables)");
    // An inline secret needs a config only root can read.
    std::fs::set_permissions(
        lab.config_path(1),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .expect("chmod config");
    lab.start_all().expect("start");

    // The check passes, fails (fall 2), passes again (rise 2).
    eventually(&lab, 1, "www running and the check passing", LONG, |s| {
        runs_on(s, "www").is_some() && check(s, "flag").is_some_and(|c| c["state"] == "passing")
    });
    std::fs::write(&flag, "").expect("flag");
    let s = eventually(&lab, 1, "the check failing", LONG, |s| {
        check(s, "flag").is_some_and(|c| c["state"] == "failing")
    });
    let c = check(&s, "flag").expect("check");
    assert_eq!(
        (c["node"].as_str(), c["kind"].as_str()),
        (Some("n1"), Some("script"))
    );
    assert_eq!((c["fall"].as_u64(), c["rise"].as_u64()), (Some(2), Some(2)));
    assert!(c["consecutive_failures"].as_u64() >= Some(2), "{c}");
    assert_eq!(c["consecutive_successes"].as_u64(), Some(0), "{c}");
    assert_eq!(c["last"]["outcome"], "failed", "{c}");
    assert_eq!(c["last"]["exit_code"].as_i64(), Some(1), "{c}");
    assert!(c["last"]["unix_ms"].as_u64() > Some(0), "{c}");
    let text = ok(&lab, 1, &["status"]);
    assert!(text.contains("health checks on n1:"), "{text}");
    assert!(
        text.lines()
            .any(|l| l.trim_start().starts_with("flag") && l.contains("failing")),
        "{text}"
    );
    let body = scrape(&lab);
    assert!(
        has_line(&body, "tandem_check_up{check=\"flag\",node=\"n1\"} 0"),
        "{body}"
    );
    assert!(
        body.contains("tandem_check_failures_total{check=\"flag\",node=\"n1\"} "),
        "{body}"
    );

    std::fs::remove_file(&flag).expect("unflag");
    let s = eventually(&lab, 1, "the check passing again", LONG, |s| {
        check(s, "flag").is_some_and(|c| c["state"] == "passing")
    });
    let c = check(&s, "flag").expect("check");
    assert!(c["consecutive_successes"].as_u64() >= Some(2), "{c}");
    assert!(c["failures_total"].as_u64() >= Some(2), "{c}");
    assert_eq!(c["last"]["outcome"], "passed", "{c}");
    assert!(has_line(
        &scrape(&lab),
        "tandem_check_up{check=\"flag\",node=\"n1\"} 1"
    ));

    // An event only the first incarnation recorded, then a restart.
    ok(&lab, 1, &["maintenance", "on", "www"]);
    ok(&lab, 1, &["maintenance", "off", "www"]);
    let before = s["nodes"][0]["incarnation"].as_u64().expect("incarnation");
    lab.terminate(1).expect("stop");
    lab.start(1).expect("restart");
    let s = eventually(&lab, 1, "back and running www", LONG, |s| {
        runs_on(s, "www").is_some()
    });
    let after = s["nodes"][0]["incarnation"].as_u64().expect("incarnation");
    assert!(after > before, "{before} -> {after}");
    let listed = ok(&lab, 1, &["events", "--json"]);
    let events: Vec<Value> = listed
        .lines()
        .map(|l| serde_json::from_str(l).expect("event JSON"))
        .collect();
    let old_admin = events
        .iter()
        .any(|e| e["kind"] == "admin" && e["incarnation"].as_u64() == Some(before));
    assert!(
        old_admin,
        "the admin event from before the restart:\n{listed}"
    );
    assert!(
        events
            .iter()
            .any(|e| e["incarnation"].as_u64() == Some(after)),
        "{listed}"
    );
    let text = ok(&lab, 1, &["events"]);
    let marker = format!("--- tandemd restarted: incarnation {before} ended, {after} began ---");
    assert!(text.contains(&marker), "{text}");
    let kept = std::fs::metadata(lab.state_dir(1).join("events.jsonl")).expect("event file");
    assert!(kept.len() <= 128 * 1024, "{} bytes", kept.len());

    // The report.
    let archive = scratch.join("report.tar.gz");
    let log = lab.log_path(1);
    let args = [
        "report",
        "--since",
        "1h",
        "--output",
        archive.to_str().expect("path"),
        "--log",
        log.to_str().expect("path"),
    ];
    ok(&lab, 1, &args);
    let members = support::archive_members(&archive);
    let names: Vec<&str> = members
        .iter()
        .map(|(n, _)| n.rsplit('/').next().unwrap_or(""))
        .collect();
    for want in [
        "README.txt",
        "versions.txt",
        "config.yaml",
        "status.json",
        "status.txt",
        "events.jsonl",
        "events.txt",
        "log.txt",
    ] {
        assert!(names.contains(&want), "{want} missing from {names:?}");
    }
    assert!(
        names.contains(&"journal.txt") || names.contains(&"journal-unavailable.txt"),
        "{names:?}"
    );
    assert!(
        members
            .iter()
            .all(|(n, _)| n.starts_with("tandem-report-n1-")),
        "{names:?}"
    );
    for (name, text) in &members {
        assert!(!text.contains(SECRET), "the planted secret is in {name}");
    }
    let raw = std::fs::read(&archive).expect("archive bytes");
    assert!(!raw.windows(SECRET.len()).any(|w| w == SECRET.as_bytes()));
    let member = |n: &str| &members.iter().find(|(m, _)| m.ends_with(n)).expect(n).1;
    assert!(
        member("config.yaml").contains(&format!("password: {REDACTED}")),
        "{}",
        member("config.yaml")
    );
    let status: Value = serde_json::from_str(member("status.json")).expect("status JSON");
    assert_eq!(status["checks"][0]["name"], "flag");
    assert!(member("events.jsonl").contains(&format!("\"incarnation\":{before}")));

    // With the daemon stopped the archive says so and still has the config, redacted.
    lab.terminate(1).expect("stop");
    let offline = scratch.join("offline.tar.gz");
    let config = lab.config_path(1);
    let args = [
        "report",
        "--output",
        offline.to_str().expect("path"),
        "--config",
        config.to_str().expect("path"),
    ];
    ok(&lab, 1, &args);
    let members = support::archive_members(&offline);
    let member = |n: &str| members.iter().find(|(m, _)| m.ends_with(n)).map(|(_, t)| t);
    assert!(member("daemon-unreachable.txt").is_some(), "{members:?}");
    assert!(member("status.json").is_none());
    let config = member("config.yaml").expect("config from --config");
    assert!(
        config.contains(&format!("password: {REDACTED}")),
        "{config}"
    );
    for (name, text) in &members {
        assert!(!text.contains(SECRET), "the planted secret is in {name}");
    }
    lab.teardown();
}
