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
    /// Offers a message to the buffer of this peer while it is away.
    pub(crate) async fn hold(
        &self,
        cfg: &Config,
        meta: &Arc<Meta>,
        payload: &Bytes,
        wait: bool,
        deadline: Instant,
    ) -> Held {
        let limit = cfg.offline_buffer;
        loop {
            let flushed = self.flushed.notified();
            tokio::pin!(flushed);
            flushed.as_mut().enable();
            {
                let mut off = self.lock_offline();
                if !off.active {
                    return match off.successor.upgrade() {
                        Some(p) => Held::Successor(p),
                        None => Held::Dropped,
                    };
                }
                let size = payload.len() + meta.path.len() + 16;
                if size > limit {
                    return Held::Dropped;
                }
                let mut dropped = 0;
                if off.bytes + size > limit {
                    match cfg.offline_overflow {
                        Overflow::DropNewest => return Held::Dropped,
                        Overflow::Block => {}
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
                if off.bytes + size <= limit {
                    off.bytes += size;
                    off.queue.push_back((meta.clone(), payload.clone()));
                    return if dropped > 0 {
                        Held::DroppedOld(dropped)
                    } else {
                        Held::Queued
                    };
                }
            }
            // Block: wait for the flush (or give up at the deadline).
            if !wait || tokio::time::timeout_at(deadline, flushed).await.is_err() {
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
        shared.report_drop(&self.label(), n);
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
