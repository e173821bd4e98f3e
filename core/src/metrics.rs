//! Counters and the stats snapshot users read.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// Live counters, updated with relaxed atomics on the hot paths.
#[derive(Default, Debug)]
pub(crate) struct Counters {
    pub msgs_in: AtomicU64,
    pub msgs_out: AtomicU64,
    pub bytes_in: AtomicU64,
    pub bytes_out: AtomicU64,
    pub requests_in: AtomicU64,
    pub requests_out: AtomicU64,
    pub requests_refused: AtomicU64,
    pub dropped_queue_full: AtomicU64,
    pub dropped_send_full: AtomicU64,
    pub lost_with_link: AtomicU64,
    pub errors: AtomicU64,
    pub denied: AtomicU64,
    pub rate_limited: AtomicU64,
}

impl Counters {
    pub(crate) fn snapshot(&self) -> CounterStats {
        CounterStats {
            msgs_in: self.msgs_in.load(Relaxed),
            msgs_out: self.msgs_out.load(Relaxed),
            bytes_in: self.bytes_in.load(Relaxed),
            bytes_out: self.bytes_out.load(Relaxed),
            requests_in: self.requests_in.load(Relaxed),
            requests_out: self.requests_out.load(Relaxed),
            requests_refused: self.requests_refused.load(Relaxed),
            dropped_queue_full: self.dropped_queue_full.load(Relaxed),
            dropped_send_full: self.dropped_send_full.load(Relaxed),
            lost_with_link: self.lost_with_link.load(Relaxed),
            errors: self.errors.load(Relaxed),
            denied: self.denied.load(Relaxed),
            rate_limited: self.rate_limited.load(Relaxed),
        }
    }

    pub(crate) fn add(&self, other: &CounterStats) {
        self.msgs_in.fetch_add(other.msgs_in, Relaxed);
        self.msgs_out.fetch_add(other.msgs_out, Relaxed);
        self.bytes_in.fetch_add(other.bytes_in, Relaxed);
        self.bytes_out.fetch_add(other.bytes_out, Relaxed);
        self.requests_in.fetch_add(other.requests_in, Relaxed);
        self.requests_out.fetch_add(other.requests_out, Relaxed);
        self.requests_refused
            .fetch_add(other.requests_refused, Relaxed);
        self.dropped_queue_full
            .fetch_add(other.dropped_queue_full, Relaxed);
        self.dropped_send_full
            .fetch_add(other.dropped_send_full, Relaxed);
        self.lost_with_link.fetch_add(other.lost_with_link, Relaxed);
        self.errors.fetch_add(other.errors, Relaxed);
        self.denied.fetch_add(other.denied, Relaxed);
        self.rate_limited.fetch_add(other.rate_limited, Relaxed);
    }
}

/// A snapshot of counters. Messages and bytes count published messages
/// (payload bytes); requests count requests sent or received.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CounterStats {
    /// Messages received from the network.
    pub msgs_in: u64,
    /// Messages sent to the network (one per peer it went to).
    pub msgs_out: u64,
    /// Payload bytes received.
    pub bytes_in: u64,
    /// Payload bytes sent.
    pub bytes_out: u64,
    /// Requests received from peers.
    pub requests_in: u64,
    /// Requests sent to peers.
    pub requests_out: u64,
    /// Requests this endpoint's services refused (or pushed out of a full
    /// queue) with `BUFFER_FULL`, local callers' included.
    pub requests_refused: u64,
    /// Messages dropped because a subscription queue was full.
    pub dropped_queue_full: u64,
    /// Messages not sent because a peer's send buffer stayed full.
    pub dropped_send_full: u64,
    /// Messages lost with a link that ended: published while the link was
    /// closing (counted by the sender), or queued for this endpoint by a
    /// peer and never read here (counted by this endpoint when it meets
    /// that peer again and the two compare counts; see docs/RELIABILITY.md).
    pub lost_with_link: u64,
    /// Protocol errors, refused connections and failed handshakes.
    pub errors: u64,
    /// What the access rules denied a peer: messages it published,
    /// subscriptions, service declarations, requests and streams it
    /// opened (docs/SECURITY.md, "Access rules").
    pub denied: u64,
    /// Messages and requests from peers over this endpoint's rate limit
    /// (`Config::rate_limit`), dropped or refused.
    pub rate_limited: u64,
}

impl CounterStats {
    pub(crate) fn merge(&mut self, o: &CounterStats) {
        self.msgs_in += o.msgs_in;
        self.msgs_out += o.msgs_out;
        self.bytes_in += o.bytes_in;
        self.bytes_out += o.bytes_out;
        self.requests_in += o.requests_in;
        self.requests_out += o.requests_out;
        self.requests_refused += o.requests_refused;
        self.dropped_queue_full += o.dropped_queue_full;
        self.dropped_send_full += o.dropped_send_full;
        self.lost_with_link += o.lost_with_link;
        self.errors += o.errors;
        self.denied += o.denied;
        self.rate_limited += o.rate_limited;
    }
}

/// Stats of one connected peer.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct PeerStats {
    /// The peer's endpoint name.
    pub name: String,
    /// The peer's address as seen from here.
    pub addr: String,
    /// True if the peer dialled us.
    pub inbound: bool,
    /// What it proved when it connected (see `PeerInfo::identity`).
    pub identity: String,
    /// Last measured round-trip time, if any ping completed.
    pub rtt: Option<Duration>,
    /// Counters for this peer.
    pub counters: CounterStats,
}

/// Stats of one subscription.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct SubscriptionStats {
    /// The pattern.
    pub pattern: String,
    /// Messages handed to the subscriber.
    pub delivered: u64,
    /// Messages dropped by the overflow policy.
    pub dropped: u64,
    /// Messages waiting in the queue.
    pub queued: usize,
}

/// Everything `Endpoint::stats` reports.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// The endpoint's name.
    pub name: String,
    /// Totals over every peer, past and present, plus local delivery drops.
    pub total: CounterStats,
    /// Connected peers.
    pub peers: Vec<PeerStats>,
    /// Open subscriptions.
    pub subscriptions: Vec<SubscriptionStats>,
}
