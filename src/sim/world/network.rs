//! The simulated network: heartbeats sent on every link with loss, delay spikes and
//! duplicates, and the blocked (partitioned) directed pairs per link.

use super::*;

impl Sim {
    pub(super) fn send(&mut self, from: usize, hb: Heartbeat) {
        let links = self.blocked.len();
        let deadtime = dur(self.sc.spec.timing.deadtime);
        let nodes = &self.sc.spec.nodes;
        let on = |i: usize, link: usize| nodes.get(i).is_none_or(|n| n.on_link(link));
        // A node absent from a link has no socket there: nothing leaves or arrives.
        let pairs: Vec<(usize, usize)> = (0..links)
            .flat_map(|link| (0..self.nodes.len()).map(move |to| (link, to)))
            .filter(|&(link, to)| to != from && on(from, link) && on(to, link))
            .collect();
        for (link, to) in pairs {
            if self.blocked[link].contains(&(from, to)) {
                continue;
            }
            if self.loss > 0.0 && self.rng.random_bool(self.loss) {
                continue;
            }
            let copies = if self.chaos_on && self.rng.random_bool(self.sc.faults.duplicate) {
                2
            } else {
                1
            };
            for _ in 0..copies {
                let mut delay = self.rng.random_range(100_000..1_500_000u64);
                if self.chaos_on && self.rng.random_bool(self.sc.faults.delay_spike) {
                    delay += self.rng.random_range(0..deadtime / 2);
                }
                self.push(
                    self.now + delay,
                    Ev::Deliver {
                        to,
                        link,
                        hb: Box::new(hb.clone()),
                    },
                );
            }
        }
    }
    pub(super) fn block(&mut self, link: Option<usize>, pairs: &[(usize, usize)]) {
        for l in 0..self.blocked.len() {
            if link.is_none_or(|k| k == l) {
                self.blocked[l].extend(pairs.iter().copied());
            }
        }
    }

    /// A partition or link cut ends.
    pub(super) fn unblock(&mut self, link: Option<usize>, pairs: &[(usize, usize)]) {
        for l in 0..self.blocked.len() {
            if link.is_none_or(|k| k == l) {
                for p in pairs {
                    self.blocked[l].remove(p);
                }
            }
        }
    }
}
