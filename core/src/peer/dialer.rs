//! A dialled address: an endpoint this one connected to and keeps connected,
//! with the messages held for it while it is away.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, Weak};

use bytes::Bytes;
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::send::SendQueue;
use crate::config::{Config, Overflow};
use crate::inbox::Meta;
use crate::path::Pattern;
use crate::shared::Shared;
use crate::transport::Addr;

/// Messages held for a dialled peer while it is disconnected.
#[derive(Default)]
pub(crate) struct Offline {
    /// True between the loss and the new connection's snapshot.
    pub active: bool,
    /// The interests the peer had when it was lost.
    pub interests: Vec<Pattern>,
    pub queue: VecDeque<(Arc<Meta>, Bytes)>,
    pub bytes: usize,
    /// The send queue of the connection that took over after the flush.
    pub successor: Weak<SendQueue>,
}

/// An address this endpoint connected to and keeps connected.
pub(crate) struct Dialer {
    pub addr: Addr,
    /// The peer's name, once a handshake told us.
    pub remote_name: Mutex<Option<Arc<str>>>,
    /// Cancelled when redialling stops for good.
    pub stop: CancellationToken,
    /// Notified to skip the current backoff delay.
    pub kick: Notify,
    /// The next attempt is made at once, with the backoff started over
    /// (after `resume` or `network_changed`).
    pub now: AtomicBool,
    /// Attempts made so far; `attempted` is notified after each.
    pub attempts: AtomicU64,
    pub attempted: Notify,
    pub offline: Mutex<Offline>,
    /// Notified when the offline buffer is flushed or dropped.
    pub flushed: Notify,
}

impl Dialer {
    pub(crate) fn new(addr: Addr) -> Dialer {
        Dialer {
            addr,
            remote_name: Mutex::new(None),
            stop: CancellationToken::new(),
            kick: Notify::new(),
            now: AtomicBool::new(false),
            attempts: AtomicU64::new(0),
            attempted: Notify::new(),
            offline: Mutex::new(Offline::default()),
            flushed: Notify::new(),
        }
    }

    pub(crate) fn lock_offline(&self) -> std::sync::MutexGuard<'_, Offline> {
        self.offline.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn name(&self) -> Option<Arc<str>> {
        self.remote_name
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub(crate) fn set_name(&self, name: Arc<str>) {
        *self.remote_name.lock().unwrap_or_else(|p| p.into_inner()) = Some(name);
    }

    /// The label used in stats and events for this peer.
    pub(crate) fn label(&self) -> String {
        self.name()
            .map(|n| n.to_string())
            .unwrap_or_else(|| self.addr.to_string())
    }

    pub(crate) fn wants(&self, path: &str) -> bool {
        let off = self.lock_offline();
        off.active && off.interests.iter().any(|p| p.matches(path))
    }
}

/// What happened to a message offered to an offline buffer.
pub(crate) enum Held {
    Queued,
    /// Queued after dropping this many older messages.
    DroppedOld(u64),
    /// Not queued (DropNewest, buffer disabled, or Block timed out).
    Dropped,
    /// The peer is back: deliver to its send queue instead.
    Successor(Arc<SendQueue>),
}

impl Dialer {
    /// Offers a message to the buffer of this peer while it is away,
    /// without waiting: `None` only when a `Block` buffer is full and the
    /// caller may wait (then [`hold`](Self::hold)). Every other outcome is
    /// decided here, on the publisher's thread, with one lock: a publisher
    /// whose subscriber is away (or frozen, and so declared lost) pays no
    /// more per message than for a connected one.
    pub(crate) fn try_hold(
        &self,
        cfg: &Config,
        meta: &Arc<Meta>,
        payload: &Bytes,
        wait: bool,
    ) -> Option<Held> {
        let limit = cfg.offline_buffer;
        let mut off = self.lock_offline();
        if !off.active {
            return Some(match off.successor.upgrade() {
                Some(p) => Held::Successor(p),
                None => Held::Dropped,
            });
        }
        let size = payload.len() + meta.path.len() + 16;
        if size > limit {
            return Some(Held::Dropped);
        }
        let mut dropped = 0;
        if off.bytes + size > limit {
            match cfg.offline_overflow {
                Overflow::DropNewest => return Some(Held::Dropped),
                Overflow::Block if wait => return None,
                Overflow::Block => return Some(Held::Dropped),
                _ => {
                    while off.bytes + size > limit {
                        let Some((m, p)) = off.queue.pop_front() else {
                            break;
                        };
                        off.bytes -= p.len() + m.path.len() + 16;
                        dropped += 1;
                    }
                }
            }
        }
        off.bytes += size;
        off.queue.push_back((meta.clone(), payload.clone()));
        Some(if dropped > 0 {
            Held::DroppedOld(dropped)
        } else {
            Held::Queued
        })
    }

    /// As [`try_hold`](Self::try_hold), waiting up to `deadline` for room
    /// in a full `Block` buffer (its flush or drop).
    pub(crate) async fn hold(
        &self,
        cfg: &Config,
        meta: &Arc<Meta>,
        payload: &Bytes,
        deadline: Instant,
    ) -> Held {
        loop {
            let flushed = self.flushed.notified();
            tokio::pin!(flushed);
            flushed.as_mut().enable();
            if let Some(h) = self.try_hold(cfg, meta, payload, true) {
                return h;
            }
            if tokio::time::timeout_at(deadline, flushed).await.is_err() {
                return Held::Dropped;
            }
        }
    }

    /// Counts and reports messages lost for a disconnected peer.
    pub(crate) fn dropped(&self, shared: &Shared, n: u64) {
        if n == 0 {
            return;
        }
        shared.totals.dropped_send_full.fetch_add(n, Relaxed);
        // The name without a copy: under a flood this runs per message.
        match self.name() {
            Some(name) => shared.report_drop(&name, n),
            None => shared.report_drop(&self.addr.to_string(), n),
        }
    }

    /// Drops what a dialler held (redialling stopped or the endpoint closed).
    pub(crate) fn abandon(&self, shared: &Shared) {
        let n = {
            let mut off = self.lock_offline();
            off.active = false;
            off.bytes = 0;
            off.interests.clear();
            let n = off.queue.len() as u64;
            off.queue.clear();
            n
        };
        self.flushed.notify_waiters();
        self.dropped(shared, n);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn away(cfg_buffer: usize, overflow: Overflow) -> (Dialer, Config) {
        let d = Dialer::new(Addr::parse("tcp://127.0.0.1:1").unwrap());
        d.lock_offline().active = true;
        let cfg = Config {
            offline_buffer: cfg_buffer,
            offline_overflow: overflow,
            ..Config::default()
        };
        (d, cfg)
    }

    fn meta() -> Arc<Meta> {
        Arc::new(Meta {
            path: "a/b".into(),
            sender: "me".into(),
        })
    }

    /// Each message takes 10 + 3 + 16 = 29 bytes of the buffer.
    const TEN: Bytes = Bytes::from_static(b"0123456789");

    #[test]
    fn try_hold_settles_every_case_but_a_full_block_buffer_at_once() {
        let m = meta();
        // Drop oldest: the third message pushes the first out.
        let (d, cfg) = away(60, Overflow::DropOldest);
        assert!(matches!(
            d.try_hold(&cfg, &m, &TEN, true),
            Some(Held::Queued)
        ));
        assert!(matches!(
            d.try_hold(&cfg, &m, &TEN, true),
            Some(Held::Queued)
        ));
        assert!(matches!(
            d.try_hold(&cfg, &m, &TEN, true),
            Some(Held::DroppedOld(1))
        ));
        assert_eq!(d.lock_offline().queue.len(), 2);
        assert_eq!(d.lock_offline().bytes, 58);
        // Drop newest: the third is refused, the first two stay.
        let (d, cfg) = away(60, Overflow::DropNewest);
        d.try_hold(&cfg, &m, &TEN, true);
        d.try_hold(&cfg, &m, &TEN, true);
        assert!(matches!(
            d.try_hold(&cfg, &m, &TEN, true),
            Some(Held::Dropped)
        ));
        assert_eq!(d.lock_offline().queue.len(), 2);
        // Block: full means wait (None) for a publish that may, a drop for
        // one that may not; nothing is pushed out.
        let (d, cfg) = away(60, Overflow::Block);
        d.try_hold(&cfg, &m, &TEN, true);
        d.try_hold(&cfg, &m, &TEN, true);
        assert!(d.try_hold(&cfg, &m, &TEN, true).is_none());
        assert!(matches!(
            d.try_hold(&cfg, &m, &TEN, false),
            Some(Held::Dropped)
        ));
        assert_eq!(d.lock_offline().queue.len(), 2);
        // A message larger than the whole buffer is dropped, never waited for.
        let (d, cfg) = away(20, Overflow::Block);
        assert!(matches!(
            d.try_hold(&cfg, &m, &TEN, true),
            Some(Held::Dropped)
        ));
        // Back online without a successor: dropped (the link closed again).
        let (d, cfg) = away(60, Overflow::DropOldest);
        d.lock_offline().active = false;
        assert!(matches!(
            d.try_hold(&cfg, &m, &TEN, true),
            Some(Held::Dropped)
        ));
    }

    #[tokio::test(start_paused = true)]
    async fn hold_waits_for_a_flush_and_gives_up_at_the_deadline() {
        let m = meta();
        let (d, cfg) = away(30, Overflow::Block);
        let d = Arc::new(d);
        assert!(matches!(
            d.try_hold(&cfg, &m, &TEN, true),
            Some(Held::Queued)
        ));
        let deadline = Instant::now() + std::time::Duration::from_millis(100);
        // Nothing flushes: dropped at the deadline.
        assert!(matches!(
            d.hold(&cfg, &m, &TEN, deadline).await,
            Held::Dropped
        ));
        // A flush within the wait makes room.
        let flusher = {
            let d = d.clone();
            tokio::spawn(async move {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                {
                    let mut off = d.lock_offline();
                    off.queue.clear();
                    off.bytes = 0;
                }
                d.flushed.notify_waiters();
            })
        };
        let deadline = Instant::now() + std::time::Duration::from_millis(100);
        assert!(matches!(
            d.hold(&cfg, &m, &TEN, deadline).await,
            Held::Queued
        ));
        flusher.await.unwrap();
    }
}
