//! Keeping links alive: heartbeats, redialling with backoff, and holding
//! messages for a dialled peer while it is away.

use std::collections::VecDeque;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use bytes::Bytes;
use once_cell::sync::Lazy;
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::config::Overflow;
use crate::endpoint::Inner;
use crate::error::{Error, ErrorCode};
use crate::event::Event;
use crate::path::Pattern;
use crate::peer::{Enq, Peer};
use crate::proto::{DeclKind, Frame};
use crate::sub::Meta;
use crate::transport::Addr;

static EPOCH: Lazy<Instant> = Lazy::new(Instant::now);

/// Milliseconds on a process-wide monotonic clock (for "last heard from").
/// It is tokio's clock, so that on a paused runtime (the virtual-time tests)
/// silence is measured in the same time the heartbeat sleeps in.
pub(crate) fn now_ms() -> u64 {
    Instant::now().saturating_duration_since(*EPOCH).as_millis() as u64
}

/// Messages held for a dialled peer while it is disconnected.
#[derive(Default)]
pub(crate) struct Offline {
    /// True between the loss and the new connection's snapshot.
    pub active: bool,
    /// The interests the peer had when it was lost.
    pub interests: Vec<Pattern>,
    pub queue: VecDeque<(Arc<Meta>, Bytes)>,
    pub bytes: usize,
    /// The connection that took over after the flush.
    pub successor: Weak<Peer>,
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
    /// The peer is back: deliver to it instead.
    Successor(Arc<Peer>),
}

impl Inner {
    /// Offers a message to a disconnected peer's buffer.
    pub(crate) async fn hold(
        &self,
        d: &Dialer,
        meta: &Arc<Meta>,
        payload: &Bytes,
        wait: bool,
        deadline: Instant,
    ) -> Held {
        let limit = self.cfg.offline_buffer;
        loop {
            let flushed = d.flushed.notified();
            tokio::pin!(flushed);
            flushed.as_mut().enable();
            {
                let mut off = d.lock_offline();
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
                    match self.cfg.offline_overflow {
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
    pub(crate) fn offline_dropped(&self, d: &Dialer, n: u64) {
        if n == 0 {
            return;
        }
        self.totals.dropped_send_full.fetch_add(n, Relaxed);
        self.report_drop(&d.label(), n);
    }

    /// Starts holding messages for a lost dialled peer (under the state lock).
    pub(crate) fn go_offline(&self, d: &Dialer, peer: &Peer) {
        let interests: Vec<Pattern> = peer
            .lock_decls()
            .iter(DeclKind::Interest)
            .filter_map(|p| Pattern::new(p).ok())
            .collect();
        let mut off = d.lock_offline();
        off.active = self.cfg.offline_buffer > 0 && !interests.is_empty();
        off.interests = interests;
        off.successor = Weak::new();
    }

    /// Sends what was held to the peer that took over, in order, before
    /// anything published after its snapshot (called under the state lock,
    /// when the new connection's snapshot has arrived).
    pub(crate) fn flush_offline(&self, d: &Dialer, peer: &Arc<Peer>) {
        let (queue, dropped) = {
            let mut off = d.lock_offline();
            if !off.active {
                return;
            }
            off.active = false;
            off.successor = Arc::downgrade(peer);
            off.bytes = 0;
            off.interests.clear();
            (std::mem::take(&mut off.queue), 0u64)
        };
        let mut dropped = dropped;
        let decls = peer.lock_decls();
        for (meta, payload) in queue {
            if !decls.any_matches(DeclKind::Interest, &meta.path) {
                // The peer no longer wants it: nothing is owed.
                continue;
            }
            match peer.tx.push_message(&meta.path, &payload) {
                Enq::Queued => {}
                _ => dropped += 1,
            }
        }
        drop(decls);
        d.flushed.notify_waiters();
        self.offline_dropped(d, dropped);
    }

    /// Drops what a dialler held (redialling stopped or the endpoint closed).
    pub(crate) fn abandon_offline(&self, d: &Dialer) {
        let n = {
            let mut off = d.lock_offline();
            off.active = false;
            off.bytes = 0;
            off.interests.clear();
            let n = off.queue.len() as u64;
            off.queue.clear();
            n
        };
        d.flushed.notify_waiters();
        self.offline_dropped(d, n);
    }
}

/// Pings a quiet peer and declares it dead after `misses` silent intervals.
pub(crate) async fn heartbeat(inner: Arc<Inner>, peer: Arc<Peer>) {
    let interval = inner.cfg.heartbeat_interval;
    let limit = interval * inner.cfg.heartbeat_misses;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = peer.dead.cancelled() => return,
        }
        if peer
            .reading_paused
            .load(std::sync::atomic::Ordering::SeqCst)
        {
            // The reader is not reading this peer (it owes us reads) and
            // keeps its own deadline; silence here would be ours.
            continue;
        }
        let quiet = Duration::from_millis(now_ms().saturating_sub(peer.last_rx_ms.load(Relaxed)));
        if quiet >= limit {
            let reason = format!(
                "heard nothing for {quiet:?} (heartbeat every {interval:?}, {} misses allowed)",
                inner.cfg.heartbeat_misses
            );
            inner.peer_down(&peer, ErrorCode::PeerLost, &reason);
            return;
        }
        if quiet >= interval {
            let _ = peer.tx.push_control(&Frame::Ping(0));
        }
    }
}

/// True for failures that redialling cannot fix.
fn permanent(e: &Error) -> bool {
    matches!(
        e.code(),
        ErrorCode::UnsupportedVersion
            | ErrorCode::ProtocolError
            | ErrorCode::HandshakeRejected
            | ErrorCode::InvalidAddress
    )
}

fn jittered(d: Duration, jitter: f64) -> Duration {
    let f = 1.0 + jitter * (fastrand::f64() * 2.0 - 1.0);
    d.mul_f64(f.max(0.0))
}

/// Keeps a dialled address connected: waits until the connection it made
/// (or the one the peer made to us, when both dialled) ends, then redials
/// with exponential backoff and jitter until it is back, the failure is
/// permanent, or redialling stops; then waits again. One supervisor per
/// dialled address, for as long as the endpoint keeps it: a link refused
/// during a redial (NAME_IN_USE) only moves this loop to its next attempt.
/// (Spawning a redial per lost link, as an earlier version did, started a
/// second loop for every refused attempt: a redial storm with no backoff;
/// `name_in_use_passes_once_the_stale_connection_is_gone` shows it gone.)
pub(crate) async fn supervise(inner: Arc<Inner>, d: Arc<Dialer>, first: Arc<Peer>) {
    let mut current = first;
    loop {
        tokio::select! {
            _ = current.dead.cancelled() => {}
            _ = d.stop.cancelled() => return,
        }
        if inner.is_closed() || d.stop.is_cancelled() {
            return;
        }
        match redial(&inner, &d).await {
            Some(p) => current = p,
            None => return,
        }
    }
}

/// Redials until connected (`Some`), or redialling stops (`None`).
async fn redial(inner: &Arc<Inner>, d: &Arc<Dialer>) -> Option<Arc<Peer>> {
    let r = inner.cfg.reconnect.clone();
    let mut delay = r.min_delay;
    let mut attempt = 0u32;
    loop {
        // Another connection to the same peer (it dialled us): nothing to do
        // until that one is lost.
        if let Some(name) = d.name() {
            loop {
                let changed = inner.changed_notified();
                tokio::pin!(changed);
                changed.as_mut().enable();
                if !inner.has_peer(&name) {
                    break;
                }
                tokio::select! {
                    _ = changed => {}
                    _ = d.stop.cancelled() => return None,
                }
            }
        }
        attempt += 1;
        let wait = jittered(delay, r.jitter);
        inner.emit(Event::Reconnecting {
            addr: d.addr.to_string(),
            attempt,
            delay: wait,
        });
        tracing::info!(endpoint = %inner.name, addr = %d.addr, attempt, ?wait, "reconnecting");
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = d.kick.notified() => {}
            _ = d.stop.cancelled() => return None,
        }
        match inner.clone().connect_once(d).await {
            Ok(p) => return Some(p),
            Err(e) if e.code() == ErrorCode::Closed => return None,
            Err(e) if permanent(&e) && !d.name().is_some_and(|n| inner.has_peer(&n)) => {
                tracing::warn!(endpoint = %inner.name, addr = %d.addr, code = %e.code(), "giving up reconnecting: {}", e.detail());
                d.stop.cancel();
                inner.abandon_offline(d);
                // Routes that held messages for it must forget it.
                inner.routes_changed();
                inner.emit(Event::ReconnectAbandoned {
                    addr: d.addr.to_string(),
                    code: e.code(),
                    detail: e.detail().to_owned(),
                });
                return None;
            }
            Err(e) => {
                tracing::debug!(endpoint = %inner.name, addr = %d.addr, code = %e.code(), "reconnect attempt failed: {}", e.detail());
                delay = delay.mul_f64(r.factor).min(r.max_delay);
            }
        }
    }
}
