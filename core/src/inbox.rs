//! A subscription's inbox: a bounded queue of messages with an overflow
//! policy, filled by publishers and connection readers, drained by the
//! subscription's owner (a pull, a callback task, a binding's pump).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::task::Waker;

use bytes::Bytes;
use tokio::sync::Notify;

use crate::config::{Overflow, SubscribeOptions};
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

/// Queued messages. Payloads and their metadata are kept apart: a run of
/// consecutive messages from one route holds one `Arc<Meta>`, cloned for each
/// message only when the receiver takes it. The connection's reader then
/// touches the `Meta` once per batch instead of once per message; a reference
/// count written by both threads for every message kept its cache line
/// moving between their cores, the costliest step in receiving small
/// messages.
struct Queue {
    payloads: VecDeque<Bytes>,
    /// Runs covering `payloads` in order: each meta with its message count.
    metas: VecDeque<(Arc<Meta>, usize)>,
    bytes: usize,
    closed: bool,
}

impl Queue {
    fn len(&self) -> usize {
        self.payloads.len()
    }

    fn is_empty(&self) -> bool {
        self.payloads.is_empty()
    }

    fn push_back(&mut self, meta: &Arc<Meta>, payload: Bytes) {
        match self.metas.back_mut() {
            Some((m, n)) if Arc::ptr_eq(m, meta) => *n += 1,
            _ => self.metas.push_back((meta.clone(), 1)),
        }
        self.bytes += payload.len();
        self.payloads.push_back(payload);
    }

    /// Drops the oldest message (the DropOldest policy).
    fn drop_front(&mut self) {
        let Some(p) = self.payloads.pop_front() else {
            return;
        };
        self.bytes -= p.len();
        if let Some((_, n)) = self.metas.front_mut() {
            *n -= 1;
            if *n == 0 {
                self.metas.pop_front();
            }
        }
    }

    /// Moves up to `max` messages to `out`; returns how many.
    fn take_into(&mut self, out: &mut Vec<Message>, max: usize) -> usize {
        let n = self.len().min(max);
        out.reserve(n);
        let mut left = n;
        while left > 0 {
            let Some((meta, count)) = self.metas.front_mut() else {
                break;
            };
            let k = (*count).min(left);
            for payload in self.payloads.drain(..k) {
                self.bytes -= payload.len();
                out.push(Message {
                    meta: meta.clone(),
                    payload,
                });
            }
            *count -= k;
            left -= k;
            if *count == 0 {
                self.metas.pop_front();
            }
        }
        n - left
    }
}

/// A subscription's credit window on each link: its queue capacity, at
/// most this many messages.
const MAX_WINDOW_MSGS: usize = 1 << 16;
/// A subscription's credit window in bytes on each link: its byte bound,
/// at most this.
const MAX_WINDOW_BYTES: usize = 8 << 20;

/// What pushing into a full queue did.
pub(crate) enum Push {
    Done,
    /// Dropped `n` messages (policy DropOldest / DropNewest).
    Dropped(u64),
    /// Block policy and full: wait on `space` and retry.
    Full,
    Closed,
}

/// The readiness hook of a queue, for one waiter outside any async runtime
/// (a binding's event loop): its waker is woken once, when the queue becomes
/// readable or closes after the waiter found it empty. The waiter arms it,
/// then looks at the queue again, so a message pushed meanwhile is never
/// missed; a wake may be spurious.
#[derive(Default)]
pub(crate) struct ReadyHook {
    armed: AtomicBool,
    waker: Mutex<Option<Waker>>,
}

impl ReadyHook {
    /// Wakes `w` at the next [`fire`](Self::fire).
    pub(crate) fn arm(&self, w: &Waker) {
        {
            let mut g = self.waker.lock().unwrap_or_else(|p| p.into_inner());
            match &*g {
                Some(old) if old.will_wake(w) => {}
                _ => *g = Some(w.clone()),
            }
        }
        self.armed.store(true, SeqCst);
    }

    /// Wakes the armed waiter, if any (one atomic load when none is).
    pub(crate) fn fire(&self) {
        if self.armed.load(SeqCst) && self.armed.swap(false, SeqCst) {
            let w = self.waker.lock().unwrap_or_else(|p| p.into_inner()).take();
            if let Some(w) = w {
                w.wake();
            }
        }
    }
}

pub(crate) struct Inbox {
    pub id: u64,
    pub pattern: Pattern,
    opts: SubscribeOptions,
    q: Mutex<Queue>,
    readable: Notify,
    pub space: Notify,
    delivered: AtomicU64,
    pub dropped: AtomicU64,
    /// Messages for this subscription waiting in credit parks on links
    /// (see [`crate::credit`]): counted as queued.
    pub parked: AtomicU64,
    /// Links whose park for this subscription holds messages, in the order
    /// they started parking: only the first moves its park into the queue,
    /// and no link queues directly while any park waits. So what a
    /// publisher's link that died left parked goes before what it sends over
    /// its next link (see [`crate::credit`]).
    turns: Mutex<VecDeque<u64>>,
    /// A foreign event loop's waiter (see [`Inbox::poll_recv_many`]).
    hook: ReadyHook,
}

impl Inbox {
    pub(crate) fn new(id: u64, pattern: Pattern, opts: SubscribeOptions) -> Inbox {
        Inbox {
            id,
            pattern,
            opts,
            q: Mutex::new(Queue {
                payloads: VecDeque::new(),
                metas: VecDeque::new(),
                bytes: 0,
                closed: false,
            }),
            readable: Notify::new(),
            space: Notify::new(),
            delivered: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            parked: AtomicU64::new(0),
            turns: Mutex::new(VecDeque::new()),
            hook: ReadyHook::default(),
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
            !q.is_empty() && (q.len() >= self.opts.capacity || q.bytes + size > self.opts.max_bytes)
        };
        let mut dropped = 0;
        if full(&q) {
            match self.opts.overflow {
                Overflow::Block | Overflow::Disconnect => return (Push::Full, Some(m)),
                Overflow::DropNewest => {
                    drop(q);
                    self.dropped.fetch_add(1, Relaxed);
                    return (Push::Dropped(1), None);
                }
                Overflow::DropOldest => {
                    while full(&q) {
                        q.drop_front();
                        dropped += 1;
                    }
                    self.dropped.fetch_add(dropped, Relaxed);
                }
            }
        }
        let was_empty = q.is_empty();
        q.push_back(&m.meta, m.payload);
        drop(q);
        if was_empty {
            self.readable.notify_one();
            self.hook.fire();
        }
        if dropped > 0 {
            (Push::Dropped(dropped), None)
        } else {
            (Push::Done, None)
        }
    }

    /// Queues messages on one path (`meta`), from the front of `payloads`,
    /// as far as the policy allows, with one lock and at most one wakeup.
    /// `take` moves the payloads out; otherwise they are shared. Returns how
    /// many payloads were used (queued or dropped) and how many of them were
    /// dropped; under `Block`, a full queue stops it early.
    pub(crate) fn push_run(
        &self,
        meta: &Arc<Meta>,
        payloads: &mut [Bytes],
        take: bool,
    ) -> Result<(usize, u64), ()> {
        let mut q = self.lock();
        if q.closed {
            return Err(());
        }
        let was_empty = q.is_empty();
        let mut dropped = 0u64;
        let mut used = 0;
        for p in payloads.iter_mut() {
            let size = p.len();
            let full = !q.is_empty()
                && (q.len() >= self.opts.capacity || q.bytes + size > self.opts.max_bytes);
            if full {
                match self.opts.overflow {
                    Overflow::Block | Overflow::Disconnect => break,
                    Overflow::DropNewest => {
                        dropped += 1;
                        used += 1;
                        continue;
                    }
                    Overflow::DropOldest => {
                        while !q.is_empty()
                            && (q.len() >= self.opts.capacity
                                || q.bytes + size > self.opts.max_bytes)
                        {
                            q.drop_front();
                            dropped += 1;
                        }
                    }
                }
            }
            let payload = if take { std::mem::take(p) } else { p.clone() };
            q.push_back(meta, payload);
            used += 1;
        }
        let readable = was_empty && !q.is_empty();
        drop(q);
        if readable {
            self.readable.notify_one();
            self.hook.fire();
        }
        if dropped > 0 {
            self.dropped.fetch_add(dropped, Relaxed);
        }
        Ok((used, dropped))
    }

    /// Link `link`'s park starts waiting (its turn comes after the parks
    /// already waiting).
    pub(crate) fn take_turn(&self, link: u64) {
        let mut t = self.turns.lock().unwrap_or_else(|p| p.into_inner());
        if !t.contains(&link) {
            t.push_back(link);
        }
    }

    /// Link `link`'s park is empty or gone: the next park's turn.
    pub(crate) fn end_turn(&self, link: u64) {
        {
            let mut t = self.turns.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(i) = t.iter().position(|&l| l == link) {
                t.remove(i);
            }
        }
        self.space.notify_waiters();
    }

    #[cfg(test)]
    pub(crate) fn inbox_turns_are_empty(&self) -> bool {
        self.turns.lock().unwrap().is_empty()
    }

    /// Whether `link`'s park may move into the queue now.
    pub(crate) fn is_turn(&self, link: u64) -> bool {
        self.turns
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .front()
            .is_none_or(|&l| l == link)
    }

    /// Waits until it is `link`'s park's turn and the queue may have room
    /// (or the queue is closed).
    pub(crate) async fn wait_turn_and_space(&self, link: u64) {
        loop {
            let space = self.space.notified();
            tokio::pin!(space);
            space.as_mut().enable();
            let (closed, room) = {
                let q = self.lock();
                (
                    q.closed,
                    q.len() < self.opts.capacity && q.bytes < self.opts.max_bytes,
                )
            };
            // The turns' lock is never taken under the queue's.
            if closed || room && self.is_turn(link) {
                return;
            }
            space.await;
        }
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

    /// Moves up to `max` messages to `out`; returns whether the queue is
    /// closed and whether messages remain.
    pub(crate) fn pop_into(&self, out: &mut Vec<Message>, max: usize) -> (bool, bool) {
        let mut q = self.lock();
        let n = q.take_into(out, max);
        let closed = q.closed;
        let more = !q.is_empty();
        drop(q);
        if n > 0 {
            self.delivered.fetch_add(n as u64, Relaxed);
            self.space.notify_waiters();
        }
        (closed, more)
    }

    pub(crate) fn close(&self) {
        self.lock().closed = true;
        self.readable.notify_one();
        self.hook.fire();
        self.space.notify_waiters();
    }

    /// Moves up to `max` messages to `out` without waiting: `Ready(n)` with
    /// `n > 0` taken, `Ready(0)` once closed and drained, `Pending` when
    /// empty, and then `cx`'s waker is woken once when that changes (see
    /// [`ReadyHook`]).
    pub(crate) fn poll_recv_many(
        &self,
        cx: &mut std::task::Context<'_>,
        out: &mut Vec<Message>,
        max: usize,
    ) -> std::task::Poll<usize> {
        let max = max.max(1);
        for armed in [false, true] {
            let before = out.len();
            let (closed, _) = self.pop_into(out, max);
            let got = out.len() - before;
            if got > 0 {
                return std::task::Poll::Ready(got);
            }
            if closed {
                return std::task::Poll::Ready(0);
            }
            if !armed {
                self.hook.arm(cx.waker());
            }
        }
        std::task::Poll::Pending
    }

    /// A remote publisher out of credit for this subscription cuts its link
    /// (the `Disconnect` policy) instead of dropping the message.
    pub(crate) fn disconnects(&self) -> bool {
        self.opts.overflow == Overflow::Disconnect
    }

    /// The credit window this subscription grants each link, if it has
    /// one: only `Block` and `Disconnect` subscriptions hold back a
    /// publisher (see [`crate::credit`]); the others apply their policy as
    /// messages arrive.
    pub(crate) fn credit_window(&self) -> Option<(u64, u64)> {
        matches!(self.opts.overflow, Overflow::Block | Overflow::Disconnect).then(|| {
            (
                self.opts.capacity.clamp(1, MAX_WINDOW_MSGS) as u64,
                self.opts.max_bytes.clamp(1, MAX_WINDOW_BYTES) as u64,
            )
        })
    }

    pub(crate) fn stats(&self) -> crate::metrics::SubscriptionStats {
        crate::metrics::SubscriptionStats {
            pattern: self.pattern.as_str().to_owned(),
            delivered: self.delivered.load(Relaxed),
            dropped: self.dropped.load(Relaxed),
            queued: self.lock().len() + self.parked.load(Relaxed) as usize,
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
            let (closed, more) = self.pop_into(out, max);
            let got = out.len() - before;
            if got > 0 {
                // More remain: pass the wakeup on to another receiver.
                if more {
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
            if spins < crate::waiting::RECEIVER_LOOKS_BEFORE_PARKING {
                spins += 1;
                tokio::task::yield_now().await;
                continue;
            }
            readable.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(path: &str) -> Arc<Meta> {
        Arc::new(Meta {
            path: path.into(),
            sender: "peer".into(),
        })
    }

    fn queue() -> Queue {
        Queue {
            payloads: VecDeque::new(),
            metas: VecDeque::new(),
            bytes: 0,
            closed: false,
        }
    }

    fn taken(q: &mut Queue, max: usize) -> Vec<(String, Vec<u8>)> {
        let mut out = Vec::new();
        q.take_into(&mut out, max);
        out.iter()
            .map(|m| (m.path().to_owned(), m.payload().to_vec()))
            .collect()
    }

    /// Runs of metas stay aligned with the payloads through pushes, drops
    /// from the front and partial takes that cut runs in the middle.
    #[test]
    fn meta_runs_follow_their_payloads() {
        let (a, b) = (meta("a"), meta("b"));
        let mut q = queue();
        for (m, p) in [(&a, 1u8), (&a, 2), (&b, 3), (&a, 4), (&a, 5), (&b, 6)] {
            q.push_back(m, Bytes::from(vec![p; p as usize]));
        }
        assert_eq!(q.metas.len(), 4);
        assert_eq!(q.bytes, 21);
        q.drop_front();
        assert_eq!(q.bytes, 20);
        assert_eq!(
            taken(&mut q, 2),
            [("a".to_owned(), vec![2; 2]), ("b".to_owned(), vec![3; 3])]
        );
        assert_eq!(taken(&mut q, 1), [("a".to_owned(), vec![4; 4])]);
        q.drop_front(); // the second half of a's run
        assert_eq!(taken(&mut q, 10), [("b".to_owned(), vec![6; 6])]);
        assert!(q.is_empty() && q.metas.is_empty());
        assert_eq!(q.bytes, 0);
        // One reference per queued run, one per message taken out.
        q.push_back(&a, Bytes::from_static(b"x"));
        q.push_back(&a, Bytes::from_static(b"y"));
        assert_eq!(Arc::strong_count(&a), 2);
        let mut out = Vec::new();
        q.take_into(&mut out, 2);
        assert_eq!(Arc::strong_count(&a), 3);
        drop(out);
        assert_eq!(Arc::strong_count(&a), 1);
    }
}
