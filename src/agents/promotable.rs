//! Promotable (primary/replica) OCF resources, run the way Pacemaker runs a promotable
//! clone: `start` brings up a replica (unpromoted), `promote` makes it the primary,
//! `demote` turns it back, `notify` tells every instance about a transition elsewhere,
//! and a monitor says which role runs (0 unpromoted, 8 promoted, 9 failed promoted).
//!
//! Every action of such a resource gets the clone's meta attributes (promotable,
//! clone_max, promoted_max = 1, with the older `master_*` names), `HA_SBIN_DIR` pointing
//! at tandem's `crm_master`/`crm_attribute` shims and `TANDEM_SCORE_FILE` where they
//! record the agent's promotion score (read with [`super::score`]). Promote and notify
//! cannot be built without a fencing token: they are what a lease must cover.
//!
//! This is the agent layer only: which node runs a replica and which one is promoted is
//! the core's to decide (not done yet, issue 25).

use super::ocf::{self, OCF_DEGRADED, OCF_DEGRADED_PROMOTED, OCF_FAILED_PROMOTED};
use super::ocf::{OCF_NOT_RUNNING, OCF_RUNNING_PROMOTED, OCF_SUCCESS};
use super::process::{self, Exit, Finished, Launch};
use super::{score, FencingToken};
use crate::config::{ResourceConfig, ResourceKind};
use crate::core::OpKind;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// One action on a promotable instance, each with the fencing token it needs.
#[derive(Clone, Copy, Debug)]
pub enum RoleAction<'a> {
    /// start (of a replica), stop or monitor; the token when a core decided it.
    Op(OpKind, Option<&'a FencingToken>),
    Promote(&'a FencingToken),
    Demote(Option<&'a FencingToken>),
    Notify(&'a Notification, &'a FencingToken),
}

impl RoleAction<'_> {
    /// The OCF action name, also `TANDEM_ACTION`.
    pub fn name(&self) -> &'static str {
        match self {
            RoleAction::Op(kind, _) => super::op_name(*kind),
            RoleAction::Promote(_) => "promote",
            RoleAction::Demote(_) => "demote",
            RoleAction::Notify(..) => "notify",
        }
    }

    pub fn token(&self) -> Option<&FencingToken> {
        match self {
            RoleAction::Op(_, t) | RoleAction::Demote(t) => *t,
            RoleAction::Promote(t) | RoleAction::Notify(_, t) => Some(t),
        }
    }
}

/// One action of one promotable resource, as the caller decided it.
#[derive(Clone, Debug)]
pub struct RoleOp<'a> {
    pub group: &'a str,
    pub resource: &'a ResourceConfig,
    pub action: RoleAction<'a>,
    /// Used when neither the resource nor the agent's meta-data gives a timeout.
    pub timeout: Duration,
    /// The monitor's recurrence (`OCF_RESKEY_CRM_meta_interval`); ignored otherwise.
    pub interval: Duration,
    /// How many nodes may run an instance (`clone_max`).
    pub clone_max: u32,
    /// Whether the caller sends notifications (`OCF_RESKEY_CRM_meta_notify`): agents
    /// that rely on them refuse to run without.
    pub notify: bool,
    /// The resource's score file ([`score::file_for`]).
    pub score_file: &'a Path,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NotifyType {
    Pre,
    Post,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NotifyOperation {
    Start,
    Stop,
    Promote,
    Demote,
}

/// A notification: which transition, and the node names (config names, which have no
/// spaces) of each list Pacemaker passes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notification {
    pub kind: NotifyType,
    pub operation: NotifyOperation,
    /// Nodes where an instance is about to start (pre) or has started (post), etc.
    pub start: Vec<String>,
    pub stop: Vec<String>,
    pub promote: Vec<String>,
    pub demote: Vec<String>,
    /// Nodes running an instance, in either role.
    pub active: Vec<String>,
    pub promoted: Vec<String>,
    pub unpromoted: Vec<String>,
}

/// The outcome of a role action in OCF terms, the role included.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RoleResult {
    /// 0: done; for a monitor, running unpromoted (also 190, degraded).
    Ok,
    /// Monitor 8: running promoted (also 191, degraded promoted).
    Promoted,
    /// Monitor 7: cleanly stopped; a stop's 7 is [`RoleResult::Ok`].
    NotRunning,
    /// 9: failed while promoted: the instance must be demoted or stopped, not trusted.
    FailedPromoted(String),
    Failed(String),
    /// The action hit its timeout and its process group was killed.
    TimedOut,
}

/// Runs one action of a promotable `ocf` resource. Never fails an action because of the
/// score plumbing: a stop must run whatever happened to the score file.
pub async fn run(op: &RoleOp<'_>, launch: &Launch) -> RoleResult {
    if !op.resource.promotable || !matches!(op.resource.kind, ResourceKind::Ocf { .. }) {
        return RoleResult::Failed(format!(
            "{}: not a promotable ocf resource",
            op.resource.name
        ));
    }
    let action = op.action.name();
    let timeout = ocf::action_timeout(op.resource, action, launch, op.timeout).await;
    let interval = match op.action {
        RoleAction::Op(OpKind::Monitor, _) => op.interval,
        _ => Duration::ZERO,
    };
    prepare_score_dir(op.score_file);
    let spec = ocf::spec(op.resource, action, timeout, interval, launch)
        .envs(super::tandem_env(
            op.group,
            &op.resource.name,
            action,
            op.action.token(),
        ))
        .envs(clone_env(op, launch));
    let spec = match op.action {
        RoleAction::Notify(n, _) => spec.envs(notify_env(n)),
        _ => spec,
    };
    map(&op.action, &process::run(launch, &spec).await)
}

/// The shims' directory for `launch`.
pub fn shim_dir(launch: &Launch) -> PathBuf {
    launch
        .ocf_shims
        .clone()
        .unwrap_or_else(|| PathBuf::from(score::DEFAULT_SHIM_DIR))
}

fn prepare_score_dir(file: &Path) {
    if let Some(dir) = file.parent() {
        if let Err(e) = std::fs::create_dir_all(dir) {
            tracing::warn!(
                "cannot create {}: promotion scores are not recorded ({e})",
                dir.display()
            );
        }
    }
}

/// The meta attributes of a promotable clone with one primary, the shims and the score
/// file: what every action of the resource sees.
fn clone_env(op: &RoleOp<'_>, launch: &Launch) -> Vec<(&'static str, String)> {
    let yes = || "true".to_string();
    let one = || "1".to_string();
    let mut env = vec![
        ("OCF_RESKEY_CRM_meta_promotable", yes()),
        ("OCF_RESKEY_CRM_meta_clone_max", op.clone_max.to_string()),
        ("OCF_RESKEY_CRM_meta_clone_node_max", one()),
        ("OCF_RESKEY_CRM_meta_promoted_max", one()),
        ("OCF_RESKEY_CRM_meta_promoted_node_max", one()),
        // The names before Pacemaker 2.1, which many agents still read.
        ("OCF_RESKEY_CRM_meta_master_max", one()),
        ("OCF_RESKEY_CRM_meta_master_node_max", one()),
        ("OCF_RESKEY_CRM_meta_globally_unique", "false".to_string()),
        ("OCF_RESKEY_CRM_meta_notify", op.notify.to_string()),
        ("HA_SBIN_DIR", shim_dir(launch).display().to_string()),
        (score::SCORE_FILE_ENV, op.score_file.display().to_string()),
    ];
    // `ocf_attribute_target` and `ocf_local_nodename` prefer it to asking Pacemaker.
    if let Some(t) = op.action.token() {
        env.push(("OCF_RESKEY_CRM_meta_on_node", t.node.clone()));
    }
    env
}

/// `OCF_RESKEY_CRM_meta_notify_*` of one notification, with the old names (`master`,
/// `slave`) beside the new ones.
pub fn notify_env(n: &Notification) -> Vec<(&'static str, String)> {
    let list = |names: &[String]| names.join(" ");
    vec![
        (
            "OCF_RESKEY_CRM_meta_notify_type",
            match n.kind {
                NotifyType::Pre => "pre",
                NotifyType::Post => "post",
            }
            .to_string(),
        ),
        (
            "OCF_RESKEY_CRM_meta_notify_operation",
            match n.operation {
                NotifyOperation::Start => "start",
                NotifyOperation::Stop => "stop",
                NotifyOperation::Promote => "promote",
                NotifyOperation::Demote => "demote",
            }
            .to_string(),
        ),
        ("OCF_RESKEY_CRM_meta_notify_start_uname", list(&n.start)),
        ("OCF_RESKEY_CRM_meta_notify_stop_uname", list(&n.stop)),
        ("OCF_RESKEY_CRM_meta_notify_promote_uname", list(&n.promote)),
        ("OCF_RESKEY_CRM_meta_notify_demote_uname", list(&n.demote)),
        ("OCF_RESKEY_CRM_meta_notify_active_uname", list(&n.active)),
        (
            "OCF_RESKEY_CRM_meta_notify_promoted_uname",
            list(&n.promoted),
        ),
        ("OCF_RESKEY_CRM_meta_notify_master_uname", list(&n.promoted)),
        (
            "OCF_RESKEY_CRM_meta_notify_unpromoted_uname",
            list(&n.unpromoted),
        ),
        (
            "OCF_RESKEY_CRM_meta_notify_slave_uname",
            list(&n.unpromoted),
        ),
    ]
}

/// OCF exit code of a role action to its result. 8 and 191 mean "promoted" only as a
/// monitor's answer; from another action they are a failure (a start that finds a
/// primary, a stop that leaves one). 9 is a failed primary whatever reported it.
pub fn map(action: &RoleAction<'_>, done: &Finished) -> RoleResult {
    let monitor = matches!(action, RoleAction::Op(OpKind::Monitor, _));
    let stop = matches!(action, RoleAction::Op(OpKind::Stop, _));
    let why = || ocf::describe(done, action.name());
    match done.exit {
        Exit::Code(OCF_SUCCESS) => RoleResult::Ok,
        Exit::Code(OCF_DEGRADED) if monitor => RoleResult::Ok,
        Exit::Code(OCF_RUNNING_PROMOTED | OCF_DEGRADED_PROMOTED) if monitor => RoleResult::Promoted,
        Exit::Code(OCF_NOT_RUNNING) if monitor => RoleResult::NotRunning,
        Exit::Code(OCF_NOT_RUNNING) if stop => RoleResult::Ok,
        Exit::Code(OCF_FAILED_PROMOTED) => RoleResult::FailedPromoted(why()),
        Exit::TimedOut => RoleResult::TimedOut,
        _ => RoleResult::Failed(why()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn done(code: i32) -> Finished {
        Finished {
            exit: Exit::Code(code),
            stdout: Vec::new(),
            stderr: b"why\n".to_vec(),
            truncated: false,
        }
    }

    #[test]
    fn monitor_codes_say_the_role() {
        let m = RoleAction::Op(OpKind::Monitor, None);
        assert_eq!(map(&m, &done(0)), RoleResult::Ok);
        assert_eq!(map(&m, &done(190)), RoleResult::Ok);
        assert_eq!(map(&m, &done(8)), RoleResult::Promoted);
        assert_eq!(map(&m, &done(191)), RoleResult::Promoted);
        assert_eq!(map(&m, &done(7)), RoleResult::NotRunning);
        assert_eq!(
            map(&m, &done(9)),
            RoleResult::FailedPromoted("monitor: exit 9 (why) [failed promoted]".into())
        );
        assert_eq!(
            map(&m, &done(1)),
            RoleResult::Failed("monitor: exit 1 (why) [generic error]".into())
        );
    }

    #[test]
    fn other_actions_know_no_promoted_success() {
        let t = FencingToken {
            node: "n1".into(),
            incarnation: 1,
            term: 4,
        };
        let start = RoleAction::Op(OpKind::Start, None);
        assert_eq!(
            map(&start, &done(8)),
            RoleResult::Failed("start: exit 8 (why) [running promoted]".into())
        );
        assert_eq!(
            map(&RoleAction::Op(OpKind::Stop, None), &done(7)),
            RoleResult::Ok
        );
        assert!(matches!(
            map(&RoleAction::Promote(&t), &done(7)),
            RoleResult::Failed(_)
        ));
        assert!(matches!(
            map(&RoleAction::Demote(None), &done(9)),
            RoleResult::FailedPromoted(_)
        ));
        let timed_out = Finished {
            exit: Exit::TimedOut,
            ..done(0)
        };
        assert_eq!(
            map(&RoleAction::Promote(&t), &timed_out),
            RoleResult::TimedOut
        );
    }

    #[test]
    fn notifications_become_pacemakers_variables() {
        let n = Notification {
            kind: NotifyType::Pre,
            operation: NotifyOperation::Promote,
            start: vec![],
            stop: vec![],
            promote: vec!["n2".into()],
            demote: vec!["n1".into()],
            active: vec!["n1".into(), "n2".into()],
            promoted: vec!["n1".into()],
            unpromoted: vec!["n2".into()],
        };
        let env = notify_env(&n);
        let get = |k: &str| {
            env.iter()
                .find(|(key, _)| *key == k)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(get("OCF_RESKEY_CRM_meta_notify_type"), Some("pre"));
        assert_eq!(get("OCF_RESKEY_CRM_meta_notify_operation"), Some("promote"));
        assert_eq!(
            get("OCF_RESKEY_CRM_meta_notify_active_uname"),
            Some("n1 n2")
        );
        assert_eq!(get("OCF_RESKEY_CRM_meta_notify_start_uname"), Some(""));
        for (new, old) in [("promoted", "master"), ("unpromoted", "slave")] {
            let new = get(&format!("OCF_RESKEY_CRM_meta_notify_{new}_uname"));
            assert!(new.is_some());
            assert_eq!(new, get(&format!("OCF_RESKEY_CRM_meta_notify_{old}_uname")));
        }
    }
}
