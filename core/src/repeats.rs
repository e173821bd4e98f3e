//! Repeated identical warnings, collapsed with a count.
//!
//! Under a storm (a peer that keeps violating the protocol, connections
//! refused one after another) the same warning would be logged thousands of
//! times a second. The first of a kind is logged at once; identical ones in
//! the next [`COLLAPSE_WINDOW`] are counted instead, and when the window
//! ends one line says how many there were. Counters and events are not
//! collapsed: only the log.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// How long identical warnings after a logged one are counted, not logged.
pub(crate) const COLLAPSE_WINDOW: Duration = Duration::from_secs(5);

/// Kinds of warning tracked at once; past this a new kind is logged every
/// time (a peer cannot make the table grow without bound).
const MAX_KINDS: usize = 256;

/// What to do with a warning (see [`Repeats::check`]).
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Log it now, saying how many identical ones before it were counted
    /// and not yet reported.
    Log { unreported: u64 },
    /// Counted; the first one suppressed in this window: call
    /// [`Repeats::due`] when the window ends (at the instant given).
    FirstRepeat(Instant),
    /// Counted.
    Repeat,
}

#[derive(Default)]
pub(crate) struct Repeats {
    kinds: Mutex<HashMap<String, Kind>>,
}

struct Kind {
    /// When the window opened (the last time this line was logged).
    logged_at: Instant,
    repeats: u64,
}

impl Repeats {
    /// Records a warning with the text `line` at `now`.
    pub(crate) fn check(&self, line: &str, now: Instant) -> Verdict {
        let mut kinds = self.kinds.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(k) = kinds.get_mut(line) {
            if now.duration_since(k.logged_at) < COLLAPSE_WINDOW {
                k.repeats += 1;
                return if k.repeats == 1 {
                    Verdict::FirstRepeat(k.logged_at + COLLAPSE_WINDOW)
                } else {
                    Verdict::Repeat
                };
            }
            // The window is over; repeats `due` has not reported yet go
            // with this line.
            k.logged_at = now;
            return Verdict::Log {
                unreported: std::mem::take(&mut k.repeats),
            };
        }
        if kinds.len() >= MAX_KINDS {
            kinds.retain(|_, k| now.duration_since(k.logged_at) < COLLAPSE_WINDOW);
        }
        if kinds.len() < MAX_KINDS {
            kinds.insert(
                line.to_owned(),
                Kind {
                    logged_at: now,
                    repeats: 0,
                },
            );
        }
        Verdict::Log { unreported: 0 }
    }

    /// At the end of a window: how many times `line` was repeated in it
    /// (taken, so it is reported once).
    pub(crate) fn due(&self, line: &str) -> u64 {
        let mut kinds = self.kinds.lock().unwrap_or_else(|p| p.into_inner());
        kinds
            .get_mut(line)
            .map(|k| std::mem::take(&mut k.repeats))
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_is_logged_repeats_in_the_window_are_counted_then_reported_once() {
        let r = Repeats::default();
        let t0 = Instant::now();
        assert_eq!(r.check("a", t0), Verdict::Log { unreported: 0 });
        assert_eq!(
            r.check("b", t0),
            Verdict::Log { unreported: 0 },
            "another kind is logged"
        );
        let end = t0 + COLLAPSE_WINDOW;
        assert_eq!(r.check("a", t0), Verdict::FirstRepeat(end));
        for _ in 0..998 {
            assert_eq!(r.check("a", t0 + Duration::from_secs(1)), Verdict::Repeat);
        }
        assert_eq!(r.due("a"), 999);
        assert_eq!(r.due("a"), 0, "reported once");
        assert_eq!(r.due("b"), 0);
        // After the window the next one is logged and a new window opens.
        assert_eq!(r.check("a", end), Verdict::Log { unreported: 0 });
        // Repeats not yet reported when the window ends go with the next
        // line logged.
        let end2 = end + COLLAPSE_WINDOW;
        assert_eq!(r.check("a", end), Verdict::FirstRepeat(end2));
        assert_eq!(r.check("a", end), Verdict::Repeat);
        assert_eq!(r.check("a", end2), Verdict::Log { unreported: 2 });
        assert_eq!(r.due("a"), 0);
        assert_eq!(
            r.check("a", end2 + Duration::from_secs(1)),
            Verdict::FirstRepeat(end2 + COLLAPSE_WINDOW)
        );
    }

    #[test]
    fn the_table_of_kinds_is_bounded() {
        let r = Repeats::default();
        let t0 = Instant::now();
        for i in 0..MAX_KINDS + 10 {
            assert_eq!(r.check(&i.to_string(), t0), Verdict::Log { unreported: 0 });
        }
        assert_eq!(r.kinds.lock().unwrap().len(), MAX_KINDS);
        // Untracked kinds are logged every time, never lost.
        assert_eq!(
            r.check(&(MAX_KINDS + 5).to_string(), t0),
            Verdict::Log { unreported: 0 }
        );
        // Once windows end, old kinds make room.
        let later = t0 + COLLAPSE_WINDOW;
        assert_eq!(r.check("new", later), Verdict::Log { unreported: 0 });
        assert_eq!(
            r.check("new", later),
            Verdict::FirstRepeat(later + COLLAPSE_WINDOW)
        );
    }
}
