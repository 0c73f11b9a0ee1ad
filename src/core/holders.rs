//! Who may be running a group: one record per node that was granted it and has not been
//! seen to let go since.
//!
//! Where owners may run without a lease (two_node, `fence: always`, the `freeze`
//! policy), nobody may take a group over until every such node released it or was
//! fenced in the incarnation that held it. One record per node (not one per group): a
//! newer grant to somebody else must never make us forget an older holder that never
//! let go — that is exactly how two owners would come about.

use super::ids::{GroupId, NodeId, Term};
use super::node::HolderRecord;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Holders(Vec<HolderRecord>);

impl Holders {
    pub fn from_records(records: impl IntoIterator<Item = HolderRecord>) -> Holders {
        let mut h = Holders::default();
        for r in records {
            h.0.retain(|x| x.owner != r.owner);
            h.0.push(r);
        }
        h
    }

    pub fn all(&self) -> &[HolderRecord] {
        &self.0
    }

    pub fn of(&self, node: NodeId) -> Option<&HolderRecord> {
        self.0.iter().find(|h| h.owner == node)
    }

    /// Records still holding (not released).
    pub fn unreleased(&self) -> impl Iterator<Item = &HolderRecord> {
        self.0.iter().filter(|h| !h.released)
    }

    /// `owner` was granted (or seen starting) `group` at `term` in `incarnation`.
    /// True if anything changed.
    pub fn record(&mut self, group: GroupId, term: Term, owner: NodeId, incarnation: u64) -> bool {
        let fresh = HolderRecord {
            group,
            term,
            owner,
            incarnation,
            released: false,
            failed: false,
        };
        match self.0.iter_mut().find(|h| h.owner == owner) {
            Some(h) if term > h.term => {
                *h = fresh;
                true
            }
            Some(h) if term == h.term && incarnation > h.incarnation => {
                h.incarnation = incarnation;
                true
            }
            Some(_) => false,
            None => {
                self.0.push(fresh);
                true
            }
        }
    }

    /// `owner` let go of every term up to `term`. True if anything changed.
    pub fn release(&mut self, owner: NodeId, term: Term) -> bool {
        match self
            .0
            .iter_mut()
            .find(|h| h.owner == owner && !h.released && h.term <= term)
        {
            Some(h) => {
                h.released = true;
                true
            }
            None => false,
        }
    }

    /// `owner`'s stop failed at `term`: it holds the group blocked.
    pub fn fail(&mut self, owner: NodeId, term: Term) -> bool {
        match self
            .0
            .iter_mut()
            .find(|h| h.owner == owner && h.term == term && !h.failed)
        {
            Some(h) => {
                h.failed = true;
                true
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const G: GroupId = GroupId(1);

    #[test]
    fn a_newer_grant_to_another_node_does_not_forget_an_older_holder() {
        let mut h = Holders::default();
        assert!(h.record(G, Term(1), NodeId(6), 1));
        assert!(h.record(G, Term(2), NodeId(1), 1));
        let holding: Vec<NodeId> = h.unreleased().map(|r| r.owner).collect();
        assert_eq!(holding, vec![NodeId(6), NodeId(1)]);
        assert!(h.release(NodeId(1), Term(2)));
        let holding: Vec<NodeId> = h.unreleased().map(|r| r.owner).collect();
        assert_eq!(holding, vec![NodeId(6)], "n6 still holds term 1");
    }

    #[test]
    fn a_release_covers_only_terms_up_to_it_and_a_new_grant_revives() {
        let mut h = Holders::default();
        h.record(G, Term(3), NodeId(2), 1);
        assert!(
            !h.release(NodeId(2), Term(2)),
            "releasing term 2 says nothing about term 3"
        );
        assert!(h.release(NodeId(2), Term(3)));
        assert!(h.record(G, Term(5), NodeId(2), 2));
        assert_eq!(h.unreleased().count(), 1);
    }
}
