//! Subscriptions: the public handle over an [`Inbox`], pull or callback.

use std::collections::VecDeque;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::blocking::Blocker;
use crate::error::{Error, ErrorCode, Result};
use crate::inbox::{Inbox, Message};
use crate::router::Router;

/// A subscription: messages whose path matches its pattern, from local
/// publishers and from every connected peer.
///
/// Receive with [`recv`](Self::recv) (async), [`recv_blocking`](Self::recv_blocking)
/// (plain threads) or [`try_recv`](Self::try_recv). Dropping it (or
/// [`close`](Self::close)) unsubscribes; the interest is withdrawn from peers.
pub struct Subscription {
    pub(crate) shared: Arc<Inbox>,
    /// To withdraw the interest when it ends.
    pub(crate) router: Arc<Router>,
    pub(crate) batch: Mutex<VecDeque<Message>>,
    /// Its endpoint's way in from plain threads.
    pub(crate) blocker: Blocker,
    /// Made in an async context: the wait for the peers to have it.
    pub(crate) declaring: Mutex<Option<crate::router::Declaring>>,
}

impl Subscription {
    /// Completes once every peer connected when the subscription was made
    /// has it (or `Config::declare_wait` passed): a message a peer publishes
    /// after that reaches it. `subscribe` from a plain thread has already
    /// waited; in async code, `sub.ready().await` before telling peers to
    /// publish (`a_subscription_is_known_to_peers_when_subscribe_returns`).
    pub async fn ready(&self) {
        crate::router::Declaring::ready(&self.declaring).await;
    }

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
        let n = self.take_batched_into(out, max);
        if n > 0 {
            return n;
        }
        self.shared.recv_many(out, max).await
    }

    /// Moves up to `max` queued messages into `out` without waiting;
    /// returns how many (0: none queued). `Err(CLOSED)` once closed and
    /// drained. With [`poll_recv_many`](Self::poll_recv_many), what a
    /// binding's pump needs: this queue is the only one. It never touches
    /// the readiness hook: a waiter armed by `poll_recv_many` keeps its
    /// wakeup.
    pub fn try_recv_many(&self, out: &mut Vec<Message>, max: usize) -> Result<usize> {
        // Never arms the readiness hook: a foreign event loop's waiter
        // registered through `poll_recv_many` keeps its wakeup.
        let max = max.max(1);
        let n = self.take_batched_into(out, max);
        if n > 0 {
            return Ok(n);
        }
        let before = out.len();
        let (closed, _) = self.shared.pop_into(out, max);
        match out.len() - before {
            0 if closed => Err(Error::new(ErrorCode::Closed, "the subscription is closed")),
            n => Ok(n),
        }
    }

    /// The readiness hook for a foreign event loop (asyncio, a Kotlin
    /// coroutine dispatcher, libuv): moves up to `max` queued messages into
    /// `out` and returns `Ready(n)`; `Ready(0)` once closed and drained;
    /// `Pending` when none is queued, and then `cx`'s waker is woken once,
    /// from whichever thread queues the next message (or closes the
    /// subscription). Waking must be cheap and must not block. One waiter
    /// at a time: a second one replaces the first.
    pub fn poll_recv_many(
        &self,
        cx: &mut std::task::Context<'_>,
        out: &mut Vec<Message>,
        max: usize,
    ) -> std::task::Poll<usize> {
        let max = max.max(1);
        let n = self.take_batched_into(out, max);
        if n > 0 {
            return std::task::Poll::Ready(n);
        }
        self.shared.poll_recv_many(cx, out, max)
    }

    /// Moves up to `max` messages a `recv` took from the queue but did not
    /// return yet into `out`.
    fn take_batched_into(&self, out: &mut Vec<Message>, max: usize) -> usize {
        let mut b = self.batch.lock().unwrap_or_else(|p| p.into_inner());
        let n = b.len().min(max);
        out.extend(b.drain(..n));
        n
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
        let (closed, _) = self.shared.pop_into(&mut v, 1);
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
        // What is queued is handed out even once the runtime is gone.
        if let Some(m) = self.try_recv()? {
            return Ok(Some(m));
        }
        match self.blocker.block_on_timeout(self.recv(), timeout)? {
            None => Ok(None),
            Some(Some(m)) => Ok(Some(m)),
            Some(None) => Err(Error::new(ErrorCode::Closed, "the subscription is closed")),
        }
    }

    /// Runs futures of this subscription (or any netchan future) from a
    /// plain thread: see [`Blocker`].
    pub fn blocker(&self) -> &Blocker {
        &self.blocker
    }

    /// Messages dropped so far by this subscription's overflow policy.
    pub fn dropped(&self) -> u64 {
        self.shared.dropped.load(Relaxed)
    }

    /// This subscription's figures: delivered, dropped, queued now (the
    /// same as its row in [`Endpoint::stats`](crate::Endpoint::stats)).
    pub fn stats(&self) -> crate::metrics::SubscriptionStats {
        self.shared.stats()
    }

    /// Unsubscribes now. Messages already queued can still be received.
    pub fn close(&self) {
        self.router.unsubscribe(self.shared.id);
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
