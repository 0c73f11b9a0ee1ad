//! The simulated network: heartbeats sent on every link with loss, delay spikes and
//! duplicates, and the blocked (partitioned) directed pairs per link.

use super::*;

impl Sim {
    pub(super) fn send(&mut self, from: usize, hb: Heartbeat) {
        let links = self.blocked.len();
        let deadtime = dur(self.sc.spec.timing.deadtime);
        for link in 0..links {
            for to in 0..self.nodes.len() {
                if to == from || self.blocked[link].contains(&(from, to)) {
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
