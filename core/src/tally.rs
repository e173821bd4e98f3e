//! What a link that ended lost in transit, counted exactly once the two
//! endpoints meet again.
//!
//! The sender of a message knows how many it queued on a link; only the
//! receiver knows how many it read. Neither alone knows what died with the
//! link: what was still in the sender's queue, in either kernel's buffers
//! or on the wire. So when a link between two endpoint instances ends, each
//! side remembers how many MESSAGE frames it read on it, and owes the other
//! a TALLY: how many it queued there. The TALLY goes out on the next link
//! between the two (or on the newer link already up, when the old one was
//! stale), and the receiver counts `queued - read` as lost with the link
//! (`lost_with_link`, a `Dropped` event with `PEER_LOST`). Either side may
//! learn of the end first, so a TALLY that arrives before this side saw its
//! link end waits for it.
//!
//! Links are named by the XOR of the two HELLOs' random `link` numbers;
//! every table is bounded, the oldest entry going first (a peer that never
//! comes back leaves nothing behind for long).

use std::collections::VecDeque;
use std::sync::Arc;

/// How many entries each table keeps.
const KEEP: usize = 256;

/// One link's tally: its id and the MESSAGE frames a side queued on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Tally {
    pub link: u64,
    pub messages: u64,
}

/// The outcome of matching both sides' counts of one link.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Settled {
    /// Messages the peer queued that this side never read.
    Lost(u64),
    /// The peer claims fewer than this side read: its count is wrong.
    Inconsistent { queued: u64, read: u64 },
}

fn settle(queued: u64, read: u64) -> Settled {
    match queued.checked_sub(read) {
        Some(lost) => Settled::Lost(lost),
        None => Settled::Inconsistent { queued, read },
    }
}

/// The tables (one per endpoint, under one lock).
#[derive(Default)]
pub(crate) struct Tallies {
    /// Links that ended on this side, with what this side read on each.
    read: VecDeque<Tally>,
    /// The peers' tallies of links this side has not yet seen end.
    early: VecDeque<Tally>,
    /// Tallies this side owes to a peer instance (name, instance) with no
    /// link to it now.
    owed: VecDeque<(Arc<str>, u64, Tally)>,
}

fn push_bounded<T>(q: &mut VecDeque<T>, v: T) {
    if q.len() == KEEP {
        q.pop_front();
    }
    q.push_back(v);
}

fn take(q: &mut VecDeque<Tally>, link: u64) -> Option<Tally> {
    let i = q.iter().position(|t| t.link == link)?;
    q.remove(i)
}

impl Tallies {
    /// This side's end of `link`, on which it read `read` messages: settled
    /// at once if the peer's tally came first.
    pub(crate) fn ended(&mut self, link: u64, read: u64) -> Option<Settled> {
        match take(&mut self.early, link) {
            Some(theirs) => Some(settle(theirs.messages, read)),
            None => {
                push_bounded(
                    &mut self.read,
                    Tally {
                        link,
                        messages: read,
                    },
                );
                None
            }
        }
    }

    /// The peer's tally: settled if this side saw the link end, else kept
    /// until it does. A second tally of one link is ignored.
    pub(crate) fn theirs(&mut self, t: Tally) -> Option<Settled> {
        if let Some(mine) = take(&mut self.read, t.link) {
            return Some(settle(t.messages, mine.messages));
        }
        if !self.early.iter().any(|e| e.link == t.link) {
            push_bounded(&mut self.early, t);
        }
        None
    }

    /// Keeps a tally for the next link to the peer instance.
    pub(crate) fn owe(&mut self, name: Arc<str>, instance: u64, t: Tally) {
        push_bounded(&mut self.owed, (name, instance, t));
    }

    /// The tallies owed to the peer instance, oldest first.
    pub(crate) fn take_owed(&mut self, name: &str, instance: u64) -> Vec<Tally> {
        let mut out = Vec::new();
        self.owed.retain(|(n, i, t)| {
            let due = **n == *name && *i == instance;
            if due {
                out.push(*t);
            }
            !due
        });
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(link: u64, messages: u64) -> Tally {
        Tally { link, messages }
    }

    #[test]
    fn a_link_settles_whichever_side_comes_first() {
        let mut a = Tallies::default();
        assert_eq!(a.ended(7, 90), None);
        assert_eq!(a.theirs(t(7, 100)), Some(Settled::Lost(10)));
        // Settled once: a repeat waits (for a link that never ends again).
        assert_eq!(a.theirs(t(7, 100)), None);

        let mut b = Tallies::default();
        assert_eq!(b.theirs(t(9, 5)), None);
        assert_eq!(b.theirs(t(9, 6)), None, "a second tally is ignored");
        assert_eq!(b.ended(9, 5), Some(Settled::Lost(0)));
        assert_eq!(b.ended(9, 5), None);
    }

    #[test]
    fn a_peer_claiming_fewer_than_were_read_is_inconsistent() {
        let mut a = Tallies::default();
        a.ended(1, 10);
        assert_eq!(
            a.theirs(t(1, 4)),
            Some(Settled::Inconsistent {
                queued: 4,
                read: 10
            })
        );
    }

    #[test]
    fn tables_are_bounded_and_owed_tallies_go_to_their_instance() {
        let mut a = Tallies::default();
        for link in 0..(KEEP as u64 + 10) {
            a.ended(link, 1);
            a.theirs(t(link + 1_000_000, 1));
            a.owe("p".into(), link % 2, t(link, 1));
        }
        assert_eq!(a.read.len(), KEEP);
        assert_eq!(a.early.len(), KEEP);
        // The oldest went first.
        assert_eq!(a.theirs(t(0, 1)), None);
        assert_eq!(a.theirs(t(KEEP as u64 + 9, 3)), Some(Settled::Lost(2)));
        let odd = a.take_owed("p", 1);
        assert_eq!(odd.len(), KEEP / 2);
        assert!(odd.windows(2).all(|w| w[0].link < w[1].link));
        assert!(a.take_owed("p", 1).is_empty());
        assert!(a.take_owed("q", 0).is_empty());
        assert_eq!(a.take_owed("p", 0).len(), KEEP / 2);
    }
}
