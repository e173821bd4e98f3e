//! Subscriptions: bounded queues with an overflow policy, pull or callback.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::Notify;

use crate::config::{Overflow, SubscribeOptions};
use crate::endpoint::Inner;
use crate::error::{Error, ErrorCode, Result};
use crate::path::Pattern;

/// Where a message came from: shared by every message of one route, so a
/// message costs one reference count, not one per field.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Meta {
    pub path: Box<str>,
    pub sender: Arc<str>,
}

/// A received message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    pub(crate) meta: Arc<Meta>,
    pub(crate) payload: Bytes,
}

impl Message {
    /// The concrete path it was published on.
    pub fn path(&self) -> &str {
        &self.meta.path
    }
    /// The payload (shares the receive buffer; cloning is cheap).
    pub fn payload(&self) -> &Bytes {
        &self.payload
    }
    /// Consumes the message, returning its payload.
    pub fn into_payload(self) -> Bytes {
        self.payload
    }
    /// The name of the endpoint that published it.
    pub fn sender(&self) -> &str {
        &self.meta.sender
    }
}

struct Queue {
    items: VecDeque<Message>,
    bytes: usize,
    closed: bool,
}

/// What pushing into a full queue did.
pub(crate) enum Push {
    Done,
    /// Dropped `n` messages (policy DropOldest / DropNewest).
    Dropped(u64),
    /// Block policy and full: wait on `space` and retry.
    Full,
    Closed,
}

pub(crate) struct SubShared {
    pub id: u64,
    pub pattern: Pattern,
    opts: SubscribeOptions,
    q: Mutex<Queue>,
    readable: Notify,
    pub space: Notify,
    delivered: AtomicU64,
    dropped: AtomicU64,
}

impl SubShared {
    pub(crate) fn new(id: u64, pattern: Pattern, opts: SubscribeOptions) -> SubShared {
        SubShared {
            id,
            pattern,
            opts,
            q: Mutex::new(Queue {
                items: VecDeque::new(),
                bytes: 0,
                closed: false,
            }),
            readable: Notify::new(),
            space: Notify::new(),
            delivered: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.q.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Tries to queue `m`, applying the overflow policy.
    pub(crate) fn push(&self, m: Message) -> (Push, Option<Message>) {
        let mut q = self.lock();
        if q.closed {
            return (Push::Closed, None);
        }
        let size = m.payload.len();
        let full = |q: &Queue| {
            !q.items.is_empty()
                && (q.items.len() >= self.opts.capacity || q.bytes + size > self.opts.max_bytes)
        };
        let mut dropped = 0;
        if full(&q) {
            match self.opts.overflow {
                Overflow::Block => return (Push::Full, Some(m)),
                Overflow::DropNewest => {
                    drop(q);
                    self.dropped.fetch_add(1, Relaxed);
                    return (Push::Dropped(1), None);
                }
                Overflow::DropOldest => {
                    while full(&q) {
                        if let Some(old) = q.items.pop_front() {
                            q.bytes -= old.payload.len();
                            dropped += 1;
                        }
                    }
                    self.dropped.fetch_add(dropped, Relaxed);
                }
            }
        }
        let was_empty = q.items.is_empty();
        q.bytes += size;
        q.items.push_back(m);
        drop(q);
        if was_empty {
            self.readable.notify_one();
        }
        if dropped > 0 {
            (Push::Dropped(dropped), None)
        } else {
            (Push::Done, None)
        }
    }

    /// Queues as many of `batch` as the policy allows, with one lock and at
    /// most one wakeup. Under `Block`, what did not fit stays in `batch`;
    /// returns how many were dropped.
    pub(crate) fn push_many(&self, batch: &mut VecDeque<Message>) -> Result<u64, ()> {
        let mut q = self.lock();
        if q.closed {
            batch.clear();
            return Err(());
        }
        let was_empty = q.items.is_empty();
        let mut dropped = 0u64;
        while let Some(m) = batch.pop_front() {
            let size = m.payload.len();
            let full = !q.items.is_empty()
                && (q.items.len() >= self.opts.capacity || q.bytes + size > self.opts.max_bytes);
            if full {
                match self.opts.overflow {
                    Overflow::Block => {
                        batch.push_front(m);
                        break;
                    }
                    Overflow::DropNewest => {
                        dropped += 1;
                        continue;
                    }
                    Overflow::DropOldest => {
                        while !q.items.is_empty()
                            && (q.items.len() >= self.opts.capacity
                                || q.bytes + size > self.opts.max_bytes)
                        {
                            if let Some(old) = q.items.pop_front() {
                                q.bytes -= old.payload.len();
                                dropped += 1;
                            }
                        }
                    }
                }
            }
            q.bytes += size;
            q.items.push_back(m);
        }
        let readable = was_empty && !q.items.is_empty();
        drop(q);
        if readable {
            self.readable.notify_one();
        }
        if dropped > 0 {
            self.dropped.fetch_add(dropped, Relaxed);
        }
        Ok(dropped)
    }

    /// Waits until the queue may have room (or is closed).
    pub(crate) async fn wait_space(&self) {
        let space = self.space.notified();
        tokio::pin!(space);
        space.as_mut().enable();
        {
            let q = self.lock();
            if q.closed || q.items.len() < self.opts.capacity && q.bytes < self.opts.max_bytes {
                return;
            }
        }
        space.await;
    }

    /// Queues `m`, waiting for room under the Block policy.
    pub(crate) async fn push_wait(&self, mut m: Message) -> Push {
        loop {
            let space = self.space.notified();
            tokio::pin!(space);
            space.as_mut().enable();
            match self.push(m) {
                (Push::Full, Some(back)) => m = back,
                (r, _) => return r,
            }
            space.await;
        }
    }

    fn pop_into(&self, out: &mut Vec<Message>, max: usize) -> bool {
        let mut q = self.lock();
        let n = q.items.len().min(max);
        let mut bytes = 0;
        for m in q.items.drain(..n) {
            bytes += m.payload.len();
            out.push(m);
        }
        q.bytes -= bytes;
        let closed = q.closed;
        drop(q);
        if n > 0 {
            self.delivered.fetch_add(n as u64, Relaxed);
            self.space.notify_waiters();
        }
        closed
    }

    pub(crate) fn close(&self) {
        self.lock().closed = true;
        self.readable.notify_one();
        self.space.notify_waiters();
    }

    pub(crate) fn stats(&self) -> crate::metrics::SubscriptionStats {
        crate::metrics::SubscriptionStats {
            pattern: self.pattern.as_str().to_owned(),
            delivered: self.delivered.load(Relaxed),
            dropped: self.dropped.load(Relaxed),
            queued: self.lock().items.len(),
        }
    }

    pub(crate) fn count_drop(&self, n: u64) {
        self.dropped.fetch_add(n, Relaxed);
    }

    pub(crate) async fn recv_many(&self, out: &mut Vec<Message>, max: usize) -> usize {
        let max = max.max(1);
        let mut spins = 0;
        loop {
            let readable = self.readable.notified();
            tokio::pin!(readable);
            readable.as_mut().enable();
            let before = out.len();
            let closed = self.pop_into(out, max);
            let got = out.len() - before;
            if got > 0 {
                // More may remain: pass the wakeup on to another receiver.
                if !self.lock().items.is_empty() {
                    self.readable.notify_one();
                }
                return got;
            }
            if closed {
                self.readable.notify_one();
                return 0;
            }
            // In a stream, the next batch is usually a moment away: yield
            // and look again before parking (a wakeup costs far more).
            if spins < 2 {
                spins += 1;
                tokio::task::yield_now().await;
                continue;
            }
            readable.await;
        }
    }
}

/// A subscription: messages whose path matches its pattern, from local
/// publishers and from every connected peer.
///
/// Receive with [`recv`](Self::recv) (async), [`recv_blocking`](Self::recv_blocking)
/// (plain threads) or [`try_recv`](Self::try_recv). Dropping it (or
/// [`close`](Self::close)) unsubscribes; the interest is withdrawn from peers.
pub struct Subscription {
    pub(crate) shared: Arc<SubShared>,
    pub(crate) ep: Weak<Inner>,
    pub(crate) rt: tokio::runtime::Handle,
    pub(crate) batch: Mutex<VecDeque<Message>>,
}

impl Subscription {
    /// The pattern.
    pub fn pattern(&self) -> &str {
        self.shared.pattern.as_str()
    }

    /// The next message; `None` once the subscription or endpoint is closed
    /// and the queue is drained.
    pub async fn recv(&self) -> Option<Message> {
        if let Some(m) = self.take_batched() {
            return Some(m);
        }
        let mut v = Vec::new();
        if self.shared.recv_many(&mut v, 256).await == 0 {
            return None;
        }
        let mut it = v.into_iter();
        let first = it.next();
        self.batch
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend(it);
        first
    }

    /// Waits for at least one message and moves up to `max` into `out`;
    /// returns how many (0 means closed).
    pub async fn recv_many(&self, out: &mut Vec<Message>, max: usize) -> usize {
        let mut n = 0;
        {
            let mut b = self.batch.lock().unwrap_or_else(|p| p.into_inner());
            while n < max {
                match b.pop_front() {
                    Some(m) => {
                        out.push(m);
                        n += 1
                    }
                    None => break,
                }
            }
        }
        if n > 0 {
            return n;
        }
        self.shared.recv_many(out, max).await
    }

    fn take_batched(&self) -> Option<Message> {
        self.batch
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pop_front()
    }

    /// The next message if one is queued. `Err(CLOSED)` once closed and drained.
    pub fn try_recv(&self) -> Result<Option<Message>> {
        if let Some(m) = self.take_batched() {
            return Ok(Some(m));
        }
        let mut v = Vec::with_capacity(1);
        let closed = self.shared.pop_into(&mut v, 1);
        match v.pop() {
            Some(m) => Ok(Some(m)),
            None if closed => Err(Error::new(ErrorCode::Closed, "the subscription is closed")),
            None => Ok(None),
        }
    }

    /// Blocks the calling thread for the next message, up to `timeout`
    /// (`None`: no limit). `Ok(None)` on timeout; `Err(CLOSED)` once closed
    /// and drained; `Err(WOULD_DEADLOCK)` when called from an async context
    /// or a netchan callback.
    pub fn recv_blocking(&self, timeout: Option<Duration>) -> Result<Option<Message>> {
        if crate::runtime::in_async_context() {
            return Err(Error::new(
                ErrorCode::WouldDeadlock,
                "recv_blocking called from an async context or callback; use recv().await",
            ));
        }
        if let Some(m) = self.take_batched() {
            return Ok(Some(m));
        }
        let fut = self.recv();
        let r = match timeout {
            None => self.rt.block_on(fut),
            Some(t) => match self
                .rt
                .block_on(async { tokio::time::timeout(t, fut).await })
            {
                Ok(m) => m,
                Err(_) => return Ok(None),
            },
        };
        r.map(Some)
            .ok_or_else(|| Error::new(ErrorCode::Closed, "the subscription is closed"))
    }

    /// Messages dropped so far by this subscription's overflow policy.
    pub fn dropped(&self) -> u64 {
        self.shared.dropped.load(Relaxed)
    }

    /// Unsubscribes now. Messages already queued can still be received.
    pub fn close(&self) {
        if let Some(ep) = self.ep.upgrade() {
            ep.unsubscribe(self.shared.id);
        }
        self.shared.close();
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.close();
    }
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription")
            .field("pattern", &self.pattern())
            .finish()
    }
}
