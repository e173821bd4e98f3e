//! A service's queue of requests, fair among its callers.
//!
//! Each caller (a connected peer, or this endpoint's own code) has a FIFO of
//! its own, and requests are taken from the callers in turn: a caller that
//! floods a service waits behind its own requests, not in front of everyone
//! else's. The queue is bounded in requests and in payload bytes. When it
//! is full, a caller holding less than its fair share (the bound divided by
//! the callers with requests queued) still gets in: the newest request of
//! the caller furthest over its share is pushed out and fails with
//! `BUFFER_FULL`; a caller at or over its share is refused with
//! `BUFFER_FULL`. Nothing is dropped without its caller being told.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

use crate::error::{Error, ErrorCode, Result};
use crate::inbox::ReadyHook;
use crate::path::Pattern;
use crate::request::Incoming;
use crate::shared::Shared;
use std::sync::atomic::Ordering::Relaxed;

/// Who sent a request: a peer's connection id, or [`LOCAL`].
pub(crate) type Caller = u64;

/// This endpoint's own requests (connection ids start at 1).
pub(crate) const LOCAL: Caller = 0;

/// Bytes a queued request costs beyond its payload and path (its handle,
/// cancellation token, queue slot and in-flight entry, as
/// `core/tests/amplification.rs` measures it), counted against the byte
/// bound.
pub(crate) const REQUEST_OVERHEAD: usize = 512;

/// What a service queue holds: a request, or a stream waiting for its
/// handler.
pub(crate) trait Queued: Send + 'static {
    /// Bytes it counts against the queue's byte bound.
    fn cost(&self) -> usize;
    /// The path it was sent on.
    fn path(&self) -> &str;
    /// Fails it: its caller gets `e`.
    fn refuse(self, e: Error);
}

impl Queued for Incoming {
    fn cost(&self) -> usize {
        self.0.payload.len() + self.0.path.len() + REQUEST_OVERHEAD
    }
    fn path(&self) -> &str {
        &self.0.path
    }
    fn refuse(self, e: Error) {
        let (req, reply) = self;
        drop(req);
        reply.fail(e);
    }
}

fn cost<T: Queued>(item: &T) -> usize {
    item.cost()
}

struct Callers<T> {
    queues: HashMap<Caller, (VecDeque<T>, usize)>,
    /// Callers with requests queued, in the order they are served.
    turn: VecDeque<Caller>,
    len: usize,
    bytes: usize,
    closed: bool,
}

impl<T> Default for Callers<T> {
    fn default() -> Self {
        Callers {
            queues: HashMap::new(),
            turn: VecDeque::new(),
            len: 0,
            bytes: 0,
            closed: false,
        }
    }
}

pub(crate) struct ServiceQueue<T = Incoming> {
    st: Mutex<Callers<T>>,
    readable: Notify,
    /// A foreign event loop's waiter (see [`ServiceQueue::poll_recv`]).
    hook: ReadyHook,
    max_len: usize,
    max_bytes: usize,
}

pub(crate) struct ServiceShared<T = Incoming> {
    pub pattern: Pattern,
    pub queue: Arc<ServiceQueue<T>>,
}

impl<T: Queued> ServiceShared<T> {
    /// Queues a request from `caller`; a refused request fails at once with
    /// the reason, and requests pushed out to make room fail with
    /// `BUFFER_FULL`; each is counted in `requests_refused` and reported
    /// (site: the service's pattern). Returns the refusal, if any, for a
    /// local caller.
    pub(crate) fn offer(&self, shared: &Shared, caller: Caller, item: T) -> Result<()> {
        let (refused, r) = match self.queue.push(caller, item) {
            Pushed::Queued(out) => (
                out.into_iter().map(|i| (i, pushed_out_error())).collect(),
                Ok(()),
            ),
            Pushed::Refused(item, e) => (vec![(*item, e.clone())], Err(e)),
        };
        // Counted before the callers are told: one that sees its refusal
        // sees it counted too.
        if !refused.is_empty() {
            let n = refused.len() as u64;
            shared.totals.requests_refused.fetch_add(n, Relaxed);
            shared.report_drop(self.pattern.as_str(), n);
        }
        for (item, e) in refused {
            item.refuse(e);
        }
        r
    }
}

/// What [`ServiceQueue::push`] did with a request.
pub(crate) enum Pushed<T> {
    /// Queued; these requests of other callers were pushed out to make room
    /// (the caller of `push` fails them with the error given).
    Queued(Vec<T>),
    /// Refused; the request comes back with the reason.
    Refused(Box<T>, Error),
}

/// The error a pushed-out request fails with.
pub(crate) fn pushed_out_error() -> Error {
    Error::new(
        ErrorCode::BufferFull,
        "the service's queue is full and this caller held more than its fair share: \
         its newest request made room for another caller's",
    )
}

impl<T: Queued> ServiceQueue<T> {
    pub(crate) fn new(max_len: usize, max_bytes: usize) -> ServiceQueue<T> {
        ServiceQueue {
            st: Mutex::new(Callers::default()),
            readable: Notify::new(),
            hook: ReadyHook::default(),
            max_len: max_len.max(1),
            max_bytes: max_bytes.max(1),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Callers<T>> {
        self.st.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues `item` from `caller`, within the bounds and the caller's share.
    pub(crate) fn push(&self, caller: Caller, item: T) -> Pushed<T> {
        let size = cost(&item);
        let mut st = self.lock();
        if st.closed {
            let path = item.path().to_owned();
            return Pushed::Refused(
                Box::new(item),
                Error::new(
                    ErrorCode::NoResponders,
                    format!("the service for {path} closed"),
                ),
            );
        }
        let mut pushed_out = Vec::new();
        while st.len > 0 && (st.len >= self.max_len || st.bytes + size > self.max_bytes) {
            let (mine_len, mine_bytes) = st
                .queues
                .get(&caller)
                .map_or((0, 0), |(q, b)| (q.len(), *b));
            let callers = st.turn.len() + usize::from(mine_len == 0);
            let share_len = (self.max_len / callers).max(1);
            let share_bytes = self.max_bytes / callers;
            if mine_len >= share_len || mine_bytes + size > share_bytes {
                return Pushed::Refused(
                    Box::new(item),
                    Error::new(
                        ErrorCode::BufferFull,
                        format!(
                            "the service's queue is full ({} requests, {} bytes) and this \
                             caller holds its fair share of it",
                            st.len, st.bytes
                        ),
                    ),
                );
            }
            // The caller furthest over its share gives up its newest request.
            let victim = st
                .queues
                .iter()
                .filter(|(c, (q, b))| **c != caller && (q.len() > share_len || *b > share_bytes))
                .max_by_key(|(_, (q, b))| (q.len() * share_bytes.max(1)).max(*b * share_len))
                .map(|(c, _)| *c);
            let Some(victim) = victim else {
                return Pushed::Refused(
                    Box::new(item),
                    Error::new(
                        ErrorCode::BufferFull,
                        format!(
                            "the service's queue is full ({} requests, {} bytes)",
                            st.len, st.bytes
                        ),
                    ),
                );
            };
            let Some((q, b)) = st.queues.get_mut(&victim) else {
                break;
            };
            let Some(out) = q.pop_back() else { break };
            let c = cost(&out);
            *b -= c;
            let emptied = q.is_empty();
            st.len -= 1;
            st.bytes -= c;
            if emptied {
                st.queues.remove(&victim);
                st.turn.retain(|x| *x != victim);
            }
            pushed_out.push(out);
        }
        let entry = st.queues.entry(caller).or_default();
        let first = entry.0.is_empty();
        entry.0.push_back(item);
        entry.1 += size;
        if first {
            st.turn.push_back(caller);
        }
        st.len += 1;
        st.bytes += size;
        drop(st);
        self.readable.notify_one();
        self.hook.fire();
        Pushed::Queued(pushed_out)
    }

    /// The next request, taking callers in turn; `None` once closed.
    fn pop(&self) -> Result<Option<T>, ()> {
        let mut st = self.lock();
        let Some(caller) = st.turn.pop_front() else {
            return if st.closed { Err(()) } else { Ok(None) };
        };
        let Some((q, b)) = st.queues.get_mut(&caller) else {
            return Ok(None);
        };
        let Some(item) = q.pop_front() else {
            return Ok(None);
        };
        let c = cost(&item);
        *b -= c;
        if q.is_empty() {
            st.queues.remove(&caller);
        } else {
            st.turn.push_back(caller);
        }
        st.len -= 1;
        st.bytes -= c;
        let more = st.len > 0;
        drop(st);
        if more {
            // Pass the wakeup on to another receiver.
            self.readable.notify_one();
        }
        Ok(Some(item))
    }

    /// The next request if one is queued (`Err` once closed), leaving the
    /// readiness hook as it is.
    pub(crate) fn try_pop(&self) -> Result<Option<T>, ()> {
        self.pop()
    }

    /// Waits for the next request; `None` once the queue is closed.
    pub(crate) async fn recv(&self) -> Option<T> {
        loop {
            let readable = self.readable.notified();
            tokio::pin!(readable);
            readable.as_mut().enable();
            match self.pop() {
                Ok(Some(item)) => return Some(item),
                Ok(None) => {}
                Err(()) => {
                    self.readable.notify_one();
                    return None;
                }
            }
            readable.await;
        }
    }

    /// Closes the queue; returns what was still queued (to be failed).
    pub(crate) fn close(&self) -> Vec<T> {
        let mut st = self.lock();
        st.closed = true;
        let mut out = Vec::with_capacity(st.len);
        while let Some(c) = st.turn.pop_front() {
            if let Some((q, _)) = st.queues.remove(&c) {
                out.extend(q);
            }
        }
        st.len = 0;
        st.bytes = 0;
        drop(st);
        self.readable.notify_waiters();
        self.readable.notify_one();
        self.hook.fire();
        out
    }

    /// The next request without waiting: `Ready(Some)`, `Ready(None)` once
    /// closed, or `Pending` when empty, and then `cx`'s waker is woken once
    /// when that changes (see [`ReadyHook`]).
    pub(crate) fn poll_recv(&self, cx: &mut std::task::Context<'_>) -> std::task::Poll<Option<T>> {
        for armed in [false, true] {
            match self.pop() {
                Ok(Some(item)) => return std::task::Poll::Ready(Some(item)),
                Err(()) => return std::task::Poll::Ready(None),
                Ok(None) if !armed => self.hook.arm(cx.waker()),
                Ok(None) => {}
            }
        }
        std::task::Poll::Pending
    }

    /// Items queued now.
    pub(crate) fn len(&self) -> usize {
        self.lock().len
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::{Reply, ReplyTo, Request};
    use bytes::Bytes;
    use std::sync::Arc;
    use tokio::sync::oneshot;
    use tokio_util::sync::CancellationToken;

    type Answer = oneshot::Receiver<crate::error::Result<Bytes>>;

    fn req(tag: &str) -> (Incoming, Answer) {
        let (tx, rx) = oneshot::channel();
        let cancel = CancellationToken::new();
        let r = Request {
            path: Arc::from(tag),
            payload: Bytes::new(),
            sender: Arc::from("x"),
            deadline: tokio::time::Instant::now(),
            cancel: cancel.clone(),
        };
        ((r, Reply::new(ReplyTo::Local(tx), cancel)), rx)
    }

    fn queued(p: Pushed<Incoming>) -> Vec<Incoming> {
        match p {
            Pushed::Queued(v) => v,
            Pushed::Refused(_, e) => panic!("refused: {e}"),
        }
    }

    #[tokio::test]
    async fn callers_are_served_in_turn() {
        let q = ServiceQueue::new(100, 1 << 20);
        let mut answers = Vec::new();
        for i in 0..5 {
            let (r, a) = req(&format!("flood/{i}"));
            queued(q.push(7, r));
            answers.push(a);
        }
        let (r, _a) = req("polite");
        queued(q.push(9, r));
        let order: Vec<String> = std::iter::from_fn(|| q.pop().ok().flatten())
            .map(|(r, _)| r.path().to_owned())
            .collect();
        assert_eq!(
            order,
            ["flood/0", "polite", "flood/1", "flood/2", "flood/3", "flood/4"]
        );
    }

    /// A full queue still admits a caller under its share by pushing out the
    /// newest request of the caller furthest over its own; that request is
    /// failed with BUFFER_FULL by whoever pushed (never silently dropped).
    #[tokio::test]
    async fn a_full_queue_pushes_out_the_flooder_not_the_newcomer() {
        let q = ServiceQueue::new(4, 1 << 20);
        for i in 0..4 {
            queued(q.push(7, req(&format!("flood/{i}")).0));
        }
        // The flooder itself is at its share (all of it): refused.
        match q.push(7, req("flood/4").0) {
            Pushed::Refused(_, e) => assert_eq!(e.code(), ErrorCode::BufferFull),
            Pushed::Queued(_) => panic!("flooder got past a full queue"),
        }
        let out = queued(q.push(9, req("polite").0));
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].0.path(), "flood/3");
        assert_eq!(q.len(), 4);
        // Two callers now: share 2 each; the flooder (3) is still over.
        let out = queued(q.push(9, req("polite2").0));
        assert_eq!(out[0].0.path(), "flood/2");
        match q.push(9, req("polite3").0) {
            Pushed::Refused(_, e) => assert_eq!(e.code(), ErrorCode::BufferFull),
            Pushed::Queued(_) => panic!("a caller at its share got in"),
        }
    }

    #[tokio::test]
    async fn close_returns_what_was_queued_and_wakes_receivers() {
        let q = Arc::new(ServiceQueue::<Incoming>::new(10, 1 << 20));
        let q2 = q.clone();
        let waiter = tokio::spawn(async move { q2.recv().await.is_none() });
        tokio::task::yield_now().await;
        assert!(q.close().is_empty());
        assert!(waiter.await.unwrap(), "the waiting receiver saw the close");

        let q = ServiceQueue::new(10, 1 << 20);
        queued(q.push(1, req("a").0));
        queued(q.push(2, req("b").0));
        let left: Vec<String> = q.close().iter().map(|(r, _)| r.path().to_owned()).collect();
        assert_eq!(left, ["a", "b"]);
        assert!(q.recv().await.is_none());
        match q.push(1, req("c").0) {
            Pushed::Refused(_, e) => assert_eq!(e.code(), ErrorCode::NoResponders),
            Pushed::Queued(_) => panic!("a closed queue took a request"),
        }
    }
}
