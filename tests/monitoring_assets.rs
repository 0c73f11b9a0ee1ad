//! The shipped Prometheus rules and Grafana dashboard use only metrics that tandemd
//! exports (names from the exposition text of `metrics::render`, label values of the
//! drop reasons from the wire), and both files parse as what they claim to be.

use std::collections::BTreeSet;
use tandem::control::StatusReport;
use tandem::daemon::events::EventTotals;
use tandem::daemon::metrics::{render, Metrics};
use tandem::wire::DropReason;

const ALERTS: &str = include_str!("../packaging/monitoring/tandem-alerts.yml");
const DASHBOARD: &str = include_str!("../packaging/monitoring/tandem-dashboard.json");

/// Every series name the exposition can hold: `# TYPE` names, plus `_sum` and
/// `_count` for summaries.
fn exported() -> BTreeSet<String> {
    // One health check, so the check families (left out without checks) are there.
    let metrics = Metrics::default();
    let check = tandem::config::CheckConfig {
        name: "uplink".into(),
        probe: tandem::config::CheckProbe::Script("true".into()),
        interval: std::time::Duration::from_secs(1),
        timeout: std::time::Duration::from_secs(1),
        fall: 3,
        rise: 2,
        nodes: Vec::new(),
    };
    metrics.checks.register(&check, "alpha");
    let text = render(&StatusReport::default(), &EventTotals::default(), &metrics);
    let mut names = BTreeSet::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("# TYPE ") else {
            continue;
        };
        let mut words = rest.split_whitespace();
        let (Some(name), Some(kind)) = (words.next(), words.next()) else {
            continue;
        };
        if kind == "summary" || kind == "histogram" {
            names.insert(format!("{name}_sum"));
            names.insert(format!("{name}_count"));
        } else {
            names.insert(name.to_string());
        }
    }
    names
}

/// The `tandem_*` identifiers a text uses.
fn used(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = text;
    while let Some(i) = rest.find("tandem_") {
        let before = rest[..i].chars().last();
        let tail = &rest[i..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        if !before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == '/' || c == '-') {
            out.insert(tail[..end].to_string());
        }
        rest = &tail[end..];
    }
    out
}

/// The PromQL expressions of the rules and of the dashboard's panels.
fn expressions() -> Vec<String> {
    let rules: serde_yaml::Value = serde_yaml::from_str(ALERTS).expect("alerts are YAML");
    let mut exprs = Vec::new();
    for group in rules["groups"].as_sequence().expect("groups") {
        for rule in group["rules"].as_sequence().expect("rules") {
            let name = rule["alert"].as_str().expect("every rule is an alert");
            assert!(rule["labels"]["severity"].is_string(), "{name}: severity");
            assert!(
                rule["annotations"]["summary"].is_string(),
                "{name}: summary"
            );
            exprs.push(rule["expr"].as_str().expect("expr").to_string());
        }
    }
    let dash: serde_json::Value = serde_json::from_str(DASHBOARD).expect("dashboard is JSON");
    for panel in dash["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().expect("targets") {
            exprs.push(target["expr"].as_str().expect("expr").to_string());
        }
    }
    exprs
}

#[test]
fn rules_and_dashboard_use_only_exported_metrics() {
    let exported = exported();
    assert!(exported.contains("tandem_quorate"), "{exported:?}");
    let exprs = expressions();
    assert!(exprs.len() > 20, "{exprs:?}");
    let mut unknown = Vec::new();
    for e in &exprs {
        let names = used(e);
        let known = names.iter().filter(|n| exported.contains(*n)).count();
        if known == 0 && !e.starts_with("up{") {
            unknown.push(format!("uses no tandem metric: {e}"));
        }
        unknown.extend(
            names
                .into_iter()
                .filter(|n| !exported.contains(n))
                .map(|n| format!("{n} (in {e})")),
        );
    }
    assert!(unknown.is_empty(), "not exported:\n{}", unknown.join("\n"));
    // Every exported metric is on the dashboard.
    let on_dashboard = used(DASHBOARD);
    let missing: Vec<_> = exported.difference(&on_dashboard).collect();
    assert!(missing.is_empty(), "not on the dashboard: {missing:?}");
}

#[test]
fn drop_reasons_in_the_rules_exist() {
    let reasons: BTreeSet<&str> = DropReason::ALL.iter().map(|r| r.as_str()).collect();
    let rules = ALERTS;
    let at = rules.find("reason=~\"").expect("a rule on drop reasons") + 9;
    let list = &rules[at..at + rules[at..].find('"').expect("closing quote")];
    for r in list.split('|') {
        assert!(reasons.contains(r), "{r} is not a drop reason: {reasons:?}");
    }
}

#[test]
fn the_name_check_can_fail() {
    let exported = exported();
    let e = "tandem_quorate == 0 and tandem_quorum_lost_total > 0";
    let names = used(e);
    assert!(names.contains("tandem_quorum_lost_total"));
    assert!(!exported.contains("tandem_quorum_lost_total"));
    // Paths and file names are not metric names.
    assert!(used("/usr/share/tandem/monitoring/tandem-alerts.yml").is_empty());
}
