//! The heartbeat this node sends: its view of every group, its grants, echoes and flags.

use super::*;

impl Node {
    pub(super) fn earliest_triggered_send(&self) -> Instant {
        let gap = (self.spec.timing.interval / MIN_SEND_GAP_DIVISOR).min(MAX_TRIGGERED_SEND_GAP);
        self.last_send.map(|l| l + gap).unwrap_or(Instant::ZERO)
    }

    pub(super) fn maybe_send(&mut self, now: Instant, out: &mut Vec<Action>) {
        let due =
            now >= self.next_send || (self.send_asap && now >= self.earliest_triggered_send());
        if !due {
            return;
        }
        self.send_asap = false;
        self.seq += 1;
        self.last_send = Some(now);
        let interval = self.spec.timing.interval.as_nanos() as f64;
        let jitter = self.rng.random_range(-0.1..=0.1) * interval;
        self.next_send = now + Duration::from_nanos((interval + jitter).max(1.0) as u64);
        let hb = self.build_heartbeat(now);
        out.push(Action::Send(hb));
    }

    pub(super) fn build_heartbeat(&mut self, now: Instant) -> Heartbeat {
        let me = self.me;
        let promise = self.spec.timing.promise();
        let quiet = self.in_quiet(now);
        let my_inc = self.incarnation;
        let fenced_view = self.fenced.clone();
        let mut groups = Vec::with_capacity(self.groups.len());
        let mut grants = Vec::new();
        for g in &mut self.groups {
            let role_kind = match g.role {
                Role::Candidate { .. } => RoleKind::Candidate,
                _ => RoleKind::Owner,
            };
            let (after_stop_now, failed_now) = match g.role {
                Role::Owner {
                    after_stop, failed, ..
                } => (after_stop.is_some(), failed),
                _ => (false, false),
            };
            let all_running = g.res.iter().all(|r| *r == Res::Running);
            let report = match &mut g.role {
                Role::Candidate {
                    term, grants: got, ..
                }
                | Role::Owner {
                    term, grants: got, ..
                } => {
                    let phase = match (&role_kind, after_stop_now, failed_now) {
                        (RoleKind::Candidate, _, _) => Phase::Candidate,
                        (_, _, true) => Phase::Failed,
                        (_, true, _) => Phase::Stopping,
                        _ if all_running => Phase::Running,
                        _ => Phase::Starting,
                    };
                    // Our own vote is a promise like any other: it must be free or ours.
                    let free = g.promise.is_none_or(|p| {
                        p.to == me
                            || now >= p.until
                            || fenced_view
                                .get(&p.to)
                                .is_some_and(|i| *i >= p.to_incarnation)
                    });
                    if free && !quiet {
                        g.promise = Some(Promise {
                            to: me,
                            to_incarnation: my_inc,
                            term: *term,
                            until: now + promise,
                            echo: now,
                        });
                        got.insert(me, now);
                    }
                    GroupReport {
                        group: g.id,
                        term: *term,
                        owner: Some(me),
                        owner_incarnation: my_inc,
                        phase,
                        handoff_to: None,
                    }
                }
                Role::Idle => {
                    // Idle with nothing running: say so about ourselves, which releases
                    // any holder record (of any older term) that still names us.
                    if !g.may_run() && g.op.is_none() && g.known.owner != Some(me) {
                        groups.push(GroupReport {
                            group: g.id,
                            term: g.known.term,
                            owner: Some(me),
                            owner_incarnation: my_inc,
                            phase: Phase::Released,
                            handoff_to: None,
                        });
                    }
                    // Besides the newest term, gossip the holder (and whether it let go),
                    // so every node learns who must release or be fenced before anyone
                    // takes over.
                    for h in g
                        .holders
                        .unreleased()
                        .filter(|h| (h.term, Some(h.owner)) != (g.known.term, g.known.owner))
                    {
                        groups.push(GroupReport {
                            group: g.id,
                            term: h.term,
                            owner: Some(h.owner),
                            owner_incarnation: h.incarnation,
                            phase: if h.failed {
                                Phase::Failed
                            } else {
                                Phase::Running
                            },
                            handoff_to: None,
                        });
                    }
                    GroupReport {
                        group: g.id,
                        term: g.known.term,
                        owner: g.known.owner,
                        owner_incarnation: g.known.owner_inc,
                        phase: g.known.phase,
                        handoff_to: g.known.handoff_to,
                    }
                }
            };
            let report = match &g.role {
                Role::Owner { failed: true, .. } => GroupReport {
                    phase: Phase::Failed,
                    ..report
                },
                _ => report,
            };
            groups.push(report);
            if let Some(p) = g.promise {
                if now < p.until {
                    grants.push(Grant {
                        group: g.id,
                        term: p.term,
                        to: p.to,
                        echo_sent_at: p.echo,
                    });
                }
            }
        }
        // Owner leases: our own grant just moved; recompute.
        self.refresh_leases();
        let mut flags = NodeFlags::default();
        flags.set(
            NodeFlags::WITNESS,
            self.spec.node(me).is_some_and(|n| n.witness),
        );
        flags.set(NodeFlags::SEEN_ALL, self.seen_all);
        flags.set(NodeFlags::QUIET, quiet);
        flags.set(NodeFlags::QUORATE, self.quorate());
        flags.set(NodeFlags::STATE_LOST, self.state_lost);
        let echoes = self
            .peers
            .iter()
            .filter_map(|(id, p)| {
                p.last_heard.map(|(seq, sent_at, received)| Echo {
                    peer: *id,
                    seq,
                    sent_at,
                    held_ns: now.saturating_since(received).as_nanos() as u64,
                })
            })
            .collect();
        let view = self
            .peers
            .iter()
            .map(|(id, p)| PeerView {
                node: *id,
                up: p.up,
            })
            .collect();
        let refuses = self
            .groups
            .iter()
            .enumerate()
            .filter(|(gi, _)| !self.node_eligible(me, *gi))
            .map(|(_, g)| g.id)
            .collect();
        Heartbeat {
            from: me,
            incarnation: self.incarnation,
            seq: self.seq,
            sent_at: now,
            config_digest: self.spec.digest,
            flags,
            echoes,
            view,
            groups,
            grants,
            fenced: self
                .fenced
                .iter()
                .map(|(n, i)| FenceRecord {
                    node: *n,
                    incarnation: *i,
                })
                .collect(),
            refuses,
            admin: self.admin.clone(),
        }
    }
}
