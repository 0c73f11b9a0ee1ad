//! The etcd arbiter client: carries out the core's `Action::Arbiter` requests on its
//! own thread and runtime (never the heartbeat thread) and answers with
//! `Input::Arbiter`. etcd down or slow costs the vote, nothing else: every request is
//! bounded by `deadtime` and answered `Unreachable` when it fails.
//!
//! One etcd lease per daemon incarnation carries every vote this node holds: a vote
//! for group G is the key `<prefix>/<cluster>/groups/<G>` attached to it. The lease is
//! granted at the first claim and kept alive by every request after it (a probe first
//! drops any key still on it, as the core then claims nothing); a lease etcd no longer
//! has is replaced by a new grant, never kept alive in vain (issue 24). Requests that
//! arrive together are served as one batch with one lease refresh, sent after every
//! request of the batch was asked, so each vote lasts `ttl` from after its ask
//! (docs/design.md, "The arbiter").

mod board;
pub use board::ArbiterBoard;

use crate::config::EtcdConfig;
use crate::core::ids::{GroupId, NodeId, Term};
use crate::core::io::{ArbiterAnswer, ArbiterAsk, ArbiterRequest, Input};
use crate::core::ClusterSpec;
use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, GetOptions, LeaseKeepAliveStream, LeaseKeeper,
    PutOptions, Txn, TxnOp, TxnOpResponse,
};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// What the heartbeat thread holds: a queue into the arbiter thread that never blocks.
pub struct ArbiterLink {
    requests: mpsc::UnboundedSender<ArbiterRequest>,
}

impl ArbiterLink {
    pub fn ask(&self, request: ArbiterRequest) {
        // A closed queue means the arbiter thread is gone: the vote is missing, which
        // the core already copes with (no answer = unreachable).
        let _ = self.requests.send(request);
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ArbiterError {
    #[error("etcd: {0}")]
    Etcd(#[from] etcd_client::Error),
    #[error("reading {what} {path}: {source}")]
    File {
        what: &'static str,
        path: String,
        source: std::io::Error,
    },
    #[error("etcd closed the lease keepalive stream")]
    KeepAliveClosed,
    #[error("not connected to etcd")]
    NotConnected,
    #[error("no answer within {0:?}")]
    Timeout(Duration),
}

/// The value of a vote key: who holds the vote, for which term, in which incarnation.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
struct VoteValue {
    node: u16,
    name: String,
    term: u64,
    incarnation: u64,
}

/// Who this daemon is, for the keys it writes.
pub struct Identity {
    pub cluster: String,
    pub me: NodeId,
    pub name: String,
    pub incarnation: u64,
}

/// Starts the arbiter thread. Its answers go to `answers` like the executor's; its
/// lease is shown on `board`.
pub fn spawn(
    cfg: &EtcdConfig,
    spec: &ClusterSpec,
    who: Identity,
    answers: mpsc::UnboundedSender<Input>,
    board: Arc<ArbiterBoard>,
) -> std::io::Result<ArbiterLink> {
    let (tx, rx) = mpsc::unbounded_channel();
    let groups = spec.groups.iter().map(|g| (g.id, g.name.clone())).collect();
    let session = Session {
        cfg: cfg.clone(),
        prefix: format!("{}/{}/groups/", cfg.prefix, who.cluster),
        who,
        groups,
        deadline: spec.timing.deadtime,
        client: None,
        lease: None,
        held: BTreeMap::new(),
        reachable: None,
        board,
    };
    std::thread::Builder::new()
        .name("tandem-arbiter".into())
        .spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(r) => r,
                Err(e) => {
                    tracing::error!(
                        "arbiter: cannot start its runtime ({e}); its vote stays missing"
                    );
                    return;
                }
            };
            runtime.block_on(session.run(rx, answers));
        })?;
    Ok(ArbiterLink { requests: tx })
}

struct Lease {
    id: i64,
    keepalive: Option<(LeaseKeeper, LeaseKeepAliveStream)>,
}

struct Session {
    cfg: EtcdConfig,
    who: Identity,
    /// `<prefix>/<cluster>/groups/`
    prefix: String,
    groups: BTreeMap<GroupId, String>,
    deadline: Duration,
    client: Option<Client>,
    lease: Option<Lease>,
    /// The votes attached to the current lease, by group.
    held: BTreeMap<GroupId, Term>,
    /// Whether the last batch got through (for logging changes only).
    reachable: Option<bool>,
    board: Arc<ArbiterBoard>,
}

impl Session {
    async fn run(
        mut self,
        mut rx: mpsc::UnboundedReceiver<ArbiterRequest>,
        answers: mpsc::UnboundedSender<Input>,
    ) {
        while let Some(first) = rx.recv().await {
            let mut batch = vec![first];
            while let Ok(more) = rx.try_recv() {
                batch.push(more);
            }
            for (asked_at, answer) in self.serve(&batch).await {
                if answers.send(Input::Arbiter { asked_at, answer }).is_err() {
                    return;
                }
            }
        }
    }

    /// One batch, bounded by `deadtime`: its answers, or `Unreachable` for each.
    async fn serve(
        &mut self,
        batch: &[ArbiterRequest],
    ) -> Vec<(crate::core::time::Instant, ArbiterAnswer)> {
        let limit = self.deadline;
        let result = match tokio::time::timeout(limit, self.try_batch(batch)).await {
            Ok(r) => r,
            Err(_) => Err(ArbiterError::Timeout(limit)),
        };
        match result {
            Ok(answers) => {
                if self.reachable != Some(true) {
                    tracing::info!("arbiter: etcd reachable");
                }
                self.reachable = Some(true);
                answers
            }
            Err(e) => {
                if self.reachable != Some(false) {
                    tracing::warn!("arbiter: {e}; its vote is missing until etcd answers");
                }
                self.reachable = Some(false);
                // Start afresh next time: a half-open stream would only time out again.
                self.client = None;
                if let Some(l) = self.lease.as_mut() {
                    l.keepalive = None;
                }
                batch
                    .iter()
                    .map(|r| (r.asked_at, ArbiterAnswer::Unreachable))
                    .collect()
            }
        }
    }

    async fn try_batch(
        &mut self,
        batch: &[ArbiterRequest],
    ) -> Result<Vec<(crate::core::time::Instant, ArbiterAnswer)>, ArbiterError> {
        self.connect().await?;
        let needs_lease = batch
            .iter()
            .any(|r| matches!(r.ask, ArbiterAsk::Claim { .. } | ArbiterAsk::Keep { .. }));
        let mut lease = None;
        if needs_lease {
            lease = Some(self.refresh_lease().await?);
        }
        let mut current = None;
        if batch
            .iter()
            .any(|r| matches!(r.ask, ArbiterAsk::Keep { .. }))
        {
            current = Some(self.read_votes().await?);
        }
        let mut out = Vec::with_capacity(batch.len());
        let mut probed = false;
        for r in batch {
            let answer = match (r.ask, lease) {
                (ArbiterAsk::Claim { group, term }, Some(id)) => {
                    self.claim(group, term, id).await?
                }
                (ArbiterAsk::Keep { group, .. }, Some(id)) => {
                    self.kept(group, id, current.as_ref())
                }
                (ArbiterAsk::Release { group, term }, _) => {
                    self.release(group, term).await?;
                    ArbiterAnswer::Reachable
                }
                _ => {
                    if !probed {
                        self.probe().await?;
                        probed = true;
                    }
                    ArbiterAnswer::Reachable
                }
            };
            out.push((r.asked_at, answer));
        }
        Ok(out)
    }

    async fn connect(&mut self) -> Result<&mut Client, ArbiterError> {
        if self.client.is_none() {
            let options = self.connect_options()?;
            let client = Client::connect(&self.cfg.endpoints, Some(options)).await?;
            self.client = Some(client);
        }
        self.client.as_mut().ok_or(ArbiterError::NotConnected)
    }

    fn connect_options(&self) -> Result<ConnectOptions, ArbiterError> {
        let read = |what: &'static str, path: &std::path::Path| {
            std::fs::read(path).map_err(|source| ArbiterError::File {
                what,
                path: path.display().to_string(),
                source,
            })
        };
        let mut options = ConnectOptions::new()
            .with_timeout(self.deadline)
            .with_connect_timeout(self.deadline);
        if let (Some(user), Some(file)) = (&self.cfg.user, &self.cfg.password_file) {
            let text = read("the etcd password file", file)?;
            let password = String::from_utf8_lossy(&text)
                .lines()
                .next()
                .unwrap_or_default()
                .to_string();
            options = options.with_user(user.clone(), password);
        }
        if let Some(tls) = &self.cfg.tls {
            let mut t = etcd_client::TlsOptions::new();
            if let Some(ca) = &tls.ca {
                t = t.ca_certificate(etcd_client::Certificate::from_pem(read("the etcd CA", ca)?));
            }
            if let (Some(cert), Some(key)) = (&tls.cert, &tls.key) {
                let cert = read("the etcd client certificate", cert)?;
                let key = read("the etcd client key", key)?;
                t = t.identity(etcd_client::Identity::from_pem(cert, key));
            }
            options = options.with_tls(t);
        }
        Ok(options)
    }

    /// Refreshes this daemon's lease, or grants a new one when there is none or etcd
    /// no longer has it — then every vote attached to the old one is gone with it.
    async fn refresh_lease(&mut self) -> Result<i64, ArbiterError> {
        if let Some(id) = self.lease.as_ref().map(|l| l.id) {
            if let Some(ttl) = self.keep_alive(id).await? {
                self.board.renewed(id, ttl);
                return Ok(id);
            }
            tracing::warn!("arbiter: etcd lease {id:x} expired; the votes it carried are gone");
            self.held.clear();
            self.lease = None;
        }
        let ttl = i64::try_from(self.cfg.ttl.as_secs()).unwrap_or(i64::MAX);
        let client = self.connect().await?;
        let granted = client.lease_grant(ttl, None).await?;
        let id = granted.id();
        tracing::info!(
            "arbiter: etcd granted lease {id:x} (ttl {}s)",
            granted.ttl()
        );
        self.lease = Some(Lease {
            id,
            keepalive: None,
        });
        self.board.granted(id, granted.ttl());
        Ok(id)
    }

    /// One keepalive on lease `id`: the TTL etcd gives it now, or `None` when etcd no
    /// longer has it (it expired while this node asked for nothing that needs it, or
    /// etcd lost it).
    async fn keep_alive(&mut self, id: i64) -> Result<Option<i64>, ArbiterError> {
        let has_stream = self.lease.as_ref().is_some_and(|l| l.keepalive.is_some());
        if !has_stream {
            let client = self.connect().await?;
            match client.lease_keep_alive(id).await {
                Ok(stream) => {
                    if let Some(l) = self.lease.as_mut() {
                        l.keepalive = Some(stream);
                    }
                }
                // The client library refuses to open a stream on a lease that etcd no
                // longer has, with an error and no code: ask etcd itself. Treating
                // that refusal as "etcd unreachable" kept a node on a dead lease for
                // the rest of its life (issue 24).
                Err(opening) => {
                    let left = client.lease_time_to_live(id, None).await?.ttl();
                    if left <= 0 {
                        return Ok(None);
                    }
                    return Err(opening.into());
                }
            }
        }
        let Some((keeper, stream)) = self.lease.as_mut().and_then(|l| l.keepalive.as_mut()) else {
            return Err(ArbiterError::KeepAliveClosed);
        };
        keeper.keep_alive().await?;
        let reply = stream
            .message()
            .await?
            .ok_or(ArbiterError::KeepAliveClosed)?;
        Ok((reply.ttl() > 0).then(|| reply.ttl()))
    }

    fn key(&self, group: GroupId) -> String {
        let name = self
            .groups
            .get(&group)
            .cloned()
            .unwrap_or_else(|| group.0.to_string());
        format!("{}{name}", self.prefix)
    }

    fn value(&self, term: Term) -> Vec<u8> {
        let v = VoteValue {
            node: self.who.me.0,
            name: self.who.name.clone(),
            term: term.0,
            incarnation: self.who.incarnation,
        };
        serde_json::to_vec(&v).unwrap_or_default()
    }

    /// The vote for `group` at `term`: create the key if absent, overwrite it if it is
    /// already this node's, otherwise say who holds it.
    async fn claim(
        &mut self,
        group: GroupId,
        term: Term,
        lease: i64,
    ) -> Result<ArbiterAnswer, ArbiterError> {
        let key = self.key(group);
        let value = self.value(term);
        let me = self.who.me.0;
        let put = || {
            TxnOp::put(
                key.clone(),
                value.clone(),
                Some(PutOptions::new().with_lease(lease)),
            )
        };
        let client = self.connect().await?;
        let txn = Txn::new()
            .when([Compare::version(key.clone(), CompareOp::Equal, 0)])
            .and_then([put()])
            .or_else([TxnOp::get(key.clone(), None)]);
        let resp = client.txn(txn).await?;
        if resp.succeeded() {
            self.held.insert(group, term);
            return Ok(ArbiterAnswer::Granted { group, term });
        }
        let Some((holder, revision)) = first_vote(&resp.op_responses()) else {
            return Ok(ArbiterAnswer::Unreachable);
        };
        if holder.node != me {
            return Ok(ArbiterAnswer::HeldBy {
                group,
                holder: NodeId(holder.node),
                term: Term(holder.term),
            });
        }
        // Ours (an older term, or an earlier incarnation): take it over, unless it
        // changed meanwhile.
        let txn = Txn::new()
            .when([Compare::mod_revision(
                key.clone(),
                CompareOp::Equal,
                revision,
            )])
            .and_then([put()]);
        if client.txn(txn).await?.succeeded() {
            self.held.insert(group, term);
            return Ok(ArbiterAnswer::Granted { group, term });
        }
        Ok(ArbiterAnswer::Unreachable)
    }

    /// Every vote key of this cluster with its value and lease.
    async fn read_votes(&mut self) -> Result<BTreeMap<String, (VoteValue, i64)>, ArbiterError> {
        let prefix = self.prefix.clone();
        let client = self.connect().await?;
        let resp = client
            .get(prefix, Some(GetOptions::new().with_prefix()))
            .await?;
        Ok(resp
            .kvs()
            .iter()
            .filter_map(|kv| {
                let key = String::from_utf8_lossy(kv.key()).into_owned();
                let v: VoteValue = serde_json::from_slice(kv.value()).ok()?;
                Some((key, (v, kv.lease())))
            })
            .collect())
    }

    /// A kept vote: still attached to our (just refreshed) lease and ours.
    fn kept(
        &mut self,
        group: GroupId,
        lease: i64,
        current: Option<&BTreeMap<String, (VoteValue, i64)>>,
    ) -> ArbiterAnswer {
        let key = self.key(group);
        let ours = current
            .and_then(|c| c.get(&key))
            .is_some_and(|(v, l)| v.node == self.who.me.0 && *l == lease);
        match (ours, self.held.get(&group)) {
            (true, Some(term)) => ArbiterAnswer::Granted { group, term: *term },
            _ => {
                self.held.remove(&group);
                ArbiterAnswer::Lost { group }
            }
        }
    }

    /// Deletes the vote key if it is still this node's (at `term` or before).
    async fn release(&mut self, group: GroupId, term: Term) -> Result<(), ArbiterError> {
        self.held.remove(&group);
        let key = self.key(group);
        let me = self.who.me.0;
        let client = self.connect().await?;
        let resp = client.get(key.clone(), None).await?;
        let Some(kv) = resp.kvs().first() else {
            return Ok(());
        };
        let ours = serde_json::from_slice::<VoteValue>(kv.value())
            .is_ok_and(|v| v.node == me && v.term <= term.0);
        if ours {
            let txn = Txn::new()
                .when([Compare::mod_revision(
                    key.clone(),
                    CompareOp::Equal,
                    kv.mod_revision(),
                )])
                .and_then([TxnOp::delete(key, None)]);
            client.txn(txn).await?;
        }
        Ok(())
    }

    /// A probe says the core claims no vote now. With a lease, drop every key still
    /// attached to it (a claim whose answer was lost) and keep the lease alive: a node
    /// that claims again later does so on the lease it has — one per incarnation while
    /// etcd stays reachable — and no vote outlives the claim that made it. Without a
    /// lease, a cheap read that proves etcd answers (linearizable: a quorum behind it).
    async fn probe(&mut self) -> Result<(), ArbiterError> {
        let prefix = self.prefix.clone();
        let Some(id) = self.lease.as_ref().map(|l| l.id) else {
            let client = self.connect().await?;
            let count = GetOptions::new().with_prefix().with_count_only();
            client.get(prefix, Some(count)).await?;
            return Ok(());
        };
        let client = self.connect().await?;
        let resp = client
            .get(prefix, Some(GetOptions::new().with_prefix()))
            .await?;
        let stale: Vec<(Vec<u8>, i64)> = resp
            .kvs()
            .iter()
            .filter(|kv| kv.lease() == id)
            .map(|kv| (kv.key().to_vec(), kv.mod_revision()))
            .collect();
        for (key, revision) in stale {
            let txn = Txn::new()
                .when([Compare::mod_revision(
                    key.clone(),
                    CompareOp::Equal,
                    revision,
                )])
                .and_then([TxnOp::delete(key, None)]);
            client.txn(txn).await?;
        }
        self.held.clear();
        match self.keep_alive(id).await? {
            Some(ttl) => self.board.renewed(id, ttl),
            None => {
                tracing::warn!(
                    "arbiter: etcd lease {id:x} expired while this node claimed nothing"
                );
                self.lease = None;
            }
        }
        Ok(())
    }
}

/// The vote and its revision from a failed claim's `get`.
fn first_vote(responses: &[TxnOpResponse]) -> Option<(VoteValue, i64)> {
    responses.iter().find_map(|r| match r {
        TxnOpResponse::Get(get) => {
            let kv = get.kvs().first()?;
            let v = serde_json::from_slice(kv.value()).ok()?;
            Some((v, kv.mod_revision()))
        }
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_vote_value_round_trips_as_json() {
        let v = VoteValue {
            node: 2,
            name: "n2".into(),
            term: 7,
            incarnation: 99,
        };
        let text = serde_json::to_string(&v).expect("serialize");
        assert_eq!(text, r#"{"node":2,"name":"n2","term":7,"incarnation":99}"#);
        assert_eq!(serde_json::from_str::<VoteValue>(&text).ok(), Some(v));
    }
}
