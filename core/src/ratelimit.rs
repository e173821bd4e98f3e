//! Rate limits per peer (docs/SECURITY.md, "Rate limits"): token buckets
//! from the `governor` crate (GCRA, lock-free) on what one peer sends this
//! endpoint, messages and requests and their payload bytes. Each bucket
//! holds one second's worth (for bytes, at least one frame), so a burst
//! after a quiet second passes and a flood is cut to the rate.

use std::num::NonZeroU32;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

use crate::config::{RateLimit, RatePolicy};

/// One peer's buckets; `None` from [`PeerLimit::new`] when no limit is set.
pub(crate) struct PeerLimit {
    msgs: Option<DefaultDirectRateLimiter>,
    bytes: Option<DefaultDirectRateLimiter>,
    pub policy: RatePolicy,
}

fn bucket(per_sec: u64, burst: u64) -> Option<DefaultDirectRateLimiter> {
    let rate = NonZeroU32::new(u32::try_from(per_sec).unwrap_or(u32::MAX))?;
    let burst = NonZeroU32::new(u32::try_from(burst.max(per_sec)).unwrap_or(u32::MAX))?;
    Some(RateLimiter::direct(
        Quota::per_second(rate).allow_burst(burst),
    ))
}

impl PeerLimit {
    /// The buckets for `limit`; a peer's frames are at most `max_frame`
    /// bytes, so the byte bucket holds at least one.
    pub(crate) fn new(limit: &RateLimit, max_frame: usize) -> Option<PeerLimit> {
        let msgs = bucket(u64::from(limit.msgs_per_sec), 0);
        let bytes = bucket(limit.bytes_per_sec, max_frame as u64);
        (msgs.is_some() || bytes.is_some()).then_some(PeerLimit {
            msgs,
            bytes,
            policy: limit.policy,
        })
    }

    /// Takes one message of `len` payload bytes from the buckets; false if
    /// it is over the limit.
    pub(crate) fn admit(&self, len: usize) -> bool {
        if let Some(m) = &self.msgs {
            if m.check().is_err() {
                return false;
            }
        }
        match (
            &self.bytes,
            NonZeroU32::new(u32::try_from(len).unwrap_or(u32::MAX)),
        ) {
            (Some(b), Some(n)) => matches!(b.check_n(n), Ok(Ok(()))),
            _ => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limit(msgs: u32, bytes: u64) -> RateLimit {
        RateLimit {
            msgs_per_sec: msgs,
            bytes_per_sec: bytes,
            policy: RatePolicy::Drop,
        }
    }

    #[test]
    fn no_limit_is_no_bucket() {
        assert!(PeerLimit::new(&limit(0, 0), 1 << 20).is_none());
    }

    #[test]
    fn a_burst_of_one_seconds_worth_passes_then_the_flood_is_cut() {
        let l = PeerLimit::new(&limit(100, 0), 1 << 20).unwrap();
        let passed = (0..10_000).filter(|_| l.admit(8)).count();
        // One second's worth at once, plus what refills meanwhile.
        assert!((100..200).contains(&passed), "{passed}");
    }

    #[test]
    fn bytes_are_limited_and_one_frame_always_fits_the_bucket() {
        let l = PeerLimit::new(&limit(0, 1000), 64 * 1024).unwrap();
        assert!(l.admit(64 * 1024), "a full frame fits an empty bucket");
        let passed = (0..1000).filter(|_| l.admit(100)).count();
        assert!(passed < 50, "{passed}");
        assert!(l.admit(0), "an empty message costs no bytes");
    }
}
