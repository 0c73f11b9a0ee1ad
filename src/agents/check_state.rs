//! What each health check last found, for `status`, `status --json` and `/metrics`.
//!
//! The probe loops ([`super::checks`]) write here after every probe; the control thread
//! and the metrics endpoint read a copy. The lock is held only to update or copy a small
//! map, never across a probe and never on the heartbeat thread, so a slow reader cannot
//! delay a check or a heartbeat.

use crate::config::{CheckConfig, CheckProbe};
use crate::control::{CheckState, CheckStatus, ProbeOutcome, ProbeRecord};
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

/// The result of one probe, typed: what `status` shows and what the verdict is made of.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProbeReport {
    pub outcome: ProbeOutcome,
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    pub took: Duration,
    /// The sentence the log shows when it failed (`exit status 1: no route`).
    pub detail: String,
    /// The last output line (bounded by the probe runner).
    pub output: String,
}

impl ProbeReport {
    pub fn passed(&self) -> bool {
        self.outcome == ProbeOutcome::Passed
    }
}

/// Every check that runs on this node, by name.
#[derive(Debug, Default)]
pub struct CheckBoard {
    checks: Mutex<BTreeMap<String, CheckStatus>>,
}

impl CheckBoard {
    fn with<T>(&self, f: impl FnOnce(&mut BTreeMap<String, CheckStatus>) -> T) -> T {
        // A panic in another writer leaves a map that is still whole: keep using it.
        let mut map = match self.checks.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        f(&mut map)
    }

    /// Shows `check` as `unknown` until its first probe ends.
    pub fn register(&self, check: &CheckConfig, node: &str) {
        let status = CheckStatus {
            name: check.name.clone(),
            node: node.to_string(),
            kind: match check.probe {
                CheckProbe::Ping(_) => "ping",
                CheckProbe::Script(_) => "script",
            }
            .into(),
            state: CheckState::Unknown,
            fall: check.fall.max(1),
            rise: check.rise.max(1),
            consecutive_failures: 0,
            consecutive_successes: 0,
            probes_total: 0,
            failures_total: 0,
            last: None,
        };
        self.with(|m| m.insert(check.name.clone(), status));
    }

    /// Records one probe of `name` that ended at `unix_ms`, and the verdict it left.
    pub fn record(&self, name: &str, report: &ProbeReport, verdict: Option<bool>, unix_ms: u64) {
        self.with(|m| {
            let Some(s) = m.get_mut(name) else { return };
            s.probes_total += 1;
            if report.passed() {
                s.consecutive_successes = s.consecutive_successes.saturating_add(1);
                s.consecutive_failures = 0;
            } else {
                s.failures_total += 1;
                s.consecutive_failures = s.consecutive_failures.saturating_add(1);
                s.consecutive_successes = 0;
            }
            s.state = match verdict {
                Some(true) => CheckState::Passing,
                Some(false) => CheckState::Failing,
                None => CheckState::Unknown,
            };
            s.last = Some(ProbeRecord {
                unix_ms,
                outcome: report.outcome,
                exit_code: report.exit_code,
                signal: report.signal,
                duration_ms: u64::try_from(report.took.as_millis()).unwrap_or(u64::MAX),
                output: report.output.clone(),
            });
        });
    }

    /// Every check, by name.
    pub fn snapshot(&self) -> Vec<CheckStatus> {
        self.with(|m| m.values().cloned().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(outcome: ProbeOutcome, exit_code: Option<i32>) -> ProbeReport {
        ProbeReport {
            outcome,
            exit_code,
            signal: None,
            took: Duration::from_millis(12),
            detail: String::new(),
            output: "line".into(),
        }
    }

    #[test]
    fn streaks_totals_and_the_last_result_follow_the_probes() {
        let board = CheckBoard::default();
        let check = CheckConfig {
            name: "gw".into(),
            probe: CheckProbe::Script("true".into()),
            interval: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
            fall: 3,
            rise: 2,
            nodes: Vec::new(),
        };
        board.register(&check, "alpha");
        assert_eq!(board.snapshot()[0].state, CheckState::Unknown);
        board.record("gw", &report(ProbeOutcome::Passed, Some(0)), Some(true), 1);
        board.record("gw", &report(ProbeOutcome::Failed, Some(2)), Some(true), 2);
        board.record("gw", &report(ProbeOutcome::TimedOut, None), Some(true), 3);
        board.record(
            "other",
            &report(ProbeOutcome::Passed, Some(0)),
            Some(true),
            4,
        );
        let s = &board.snapshot()[0];
        assert_eq!(s.state, CheckState::Passing);
        assert_eq!((s.consecutive_failures, s.consecutive_successes), (2, 0));
        assert_eq!((s.probes_total, s.failures_total), (3, 2));
        let last = s.last.as_ref().expect("last probe");
        assert_eq!((last.unix_ms, last.outcome), (3, ProbeOutcome::TimedOut));
        assert_eq!((s.fall, s.rise, s.node.as_str()), (3, 2, "alpha"));
        assert_eq!(board.snapshot().len(), 1, "an unregistered name is ignored");
    }
}
