//! Typed decisions: the sentences operators know, and what counts as news.

use super::*;
use crate::core::decision::{ClaimState, Ineligible, RunsHere};

#[test]
fn decisions_read_as_before() {
    let cases = [
        (
            Decision::LeaseWait {
                holder: "beta".into(),
                remaining: ms(523),
            },
            "waiting for lease of beta to expire (523 ms)",
        ),
        (
            Decision::Candidate {
                term: Term(4),
                have: 1,
                needed: 2,
            },
            "candidate for term 4: 1 of 2 votes granted",
        ),
        (
            Decision::NotEligible {
                owner: None,
                me: "gamma".into(),
                why: Ineligible::Witness,
            },
            "no owner; gamma is not eligible (witness: never owns)",
        ),
        (
            Decision::Running {
                me: "alpha".into(),
                why: RunsHere::Preferred,
            },
            "running on alpha (preferred node)",
        ),
        (
            Decision::HeldBy {
                owner: "alpha".into(),
                state: ClaimState::Claiming,
            },
            "claiming on alpha",
        ),
        (
            Decision::Claiming {
                gone: Some("alpha".into()),
                term: Term(3),
            },
            "alpha is gone: claiming term 3",
        ),
    ];
    for (d, text) in cases {
        assert_eq!(d.to_string(), text);
    }
}

#[test]
fn the_contract_tags_are_fixed() {
    let wait = Decision::LeaseWait {
        holder: "beta".into(),
        remaining: ms(250),
    };
    assert_eq!(wait.tag(), "lease-wait");
    assert_eq!(Reason::Decision(wait.clone()).lease_wait(), Some(ms(250)));
    let candidate = Decision::Candidate {
        term: Term(1),
        have: 1,
        needed: 2,
    };
    assert_eq!(candidate.tag(), "candidate");
    assert_eq!(Reason::Decision(candidate).lease_wait(), None);
}

#[test]
fn counters_are_not_news_but_names_are() {
    let wait = |holder: &str, remaining| Decision::LeaseWait {
        holder: holder.into(),
        remaining: ms(remaining),
    };
    assert!(wait("beta", 900).same_kind(&wait("beta", 100)));
    assert!(!wait("beta", 900).same_kind(&wait("gamma", 900)));
    let votes = |term, have| Decision::Candidate {
        term: Term(term),
        have,
        needed: 2,
    };
    assert!(votes(1, 0).same_kind(&votes(2, 1)));
    assert!(!votes(1, 0).same_kind(&Decision::NoQuorum));
}

#[test]
fn a_decision_is_reported_when_it_changes_not_when_it_counts_down() {
    let mut c = Spec::new(3).boot();
    c.run_until(ms(2500));
    // beta waits for alpha, which ranks higher; nothing new to say while it runs.
    let from = c.mark(1);
    c.run_until(ms(4000));
    assert!(
        events(&c.actions[1][from..], EventKind::Decision).is_empty(),
        "{:?}",
        c.reasons(1, from)
    );
    assert_eq!(
        c.nodes[1].reason(GroupId(1)).map(|d| d.to_string()),
        Some("running on alpha".to_string())
    );
}
