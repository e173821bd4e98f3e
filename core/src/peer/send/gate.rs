//! The endpoint's write-through gate (see [`WriteThrough`]).

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use crate::waiting::DIRECT_GAP;

/// When a sender may write its frame to the socket itself: once per
/// [`DIRECT_GAP`] for the whole endpoint, and always for an answer (a frame
/// sent after the peer sent something). The gate is the endpoint's, not a
/// link's: a publisher fanning out to many links writes through to one of
/// them at most, and hands the rest to their writer tasks, which batch.
/// Gated per link, a fan-out slow enough to space each link's messages
/// past the gap wrote every message through on every link (a syscall for
/// the publisher and a wakeup for a subscriber per message), which slowed
/// the publisher further: 32 subscribers got 0.01 M msg/s each
/// (docs/BENCHMARKS.md, "Fan-out").
pub(crate) struct WriteThrough {
    /// [`DIRECT_GAP`], in nanoseconds (tests choose their own).
    gap: u64,
    base: Instant,
    /// Nanoseconds after `base` of the last write-through, plus one (0:
    /// never).
    last: AtomicU64,
}

impl WriteThrough {
    pub(crate) fn new() -> WriteThrough {
        WriteThrough::with_gap(DIRECT_GAP)
    }

    pub(super) fn with_gap(gap: Duration) -> WriteThrough {
        WriteThrough {
            gap: gap.as_nanos() as u64,
            base: Instant::now(),
            last: AtomicU64::new(0),
        }
    }

    /// Whether a sender may write through now; if so, the gate closes for
    /// the gap.
    pub(super) fn open(&self, answer: bool) -> bool {
        let now = self.base.elapsed().as_nanos() as u64 + 1;
        let last = self.last.load(Relaxed);
        if !answer && last != 0 && now.saturating_sub(last) < self.gap {
            return false;
        }
        self.last.store(now, Relaxed);
        true
    }
}
