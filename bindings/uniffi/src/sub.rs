//! Subscriptions: thin pumps over the core's queue, which is the only
//! queue a message waits in.
//!
//! - Pulled (no handler): `recv`/`recv_many` await the core's readiness
//!   hook ([`netchan::Subscription::poll_recv_many`]) from whatever executor
//!   polls them (a Kotlin coroutine, a Swift task), woken by the thread that
//!   queues the next message; `try_recv_many` takes what is queued now.
//! - With a handler: one task per subscription waits on the same hook, then
//!   a blocking-pool thread hands the handler what it took and keeps taking
//!   while messages are queued, at most [`BATCH`] at a time, so a slow
//!   handler leaves the rest in the core's queue, where the overflow policy
//!   (and its drop counting) applies.

use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::Arc;
use std::time::Duration;

use netchan::ErrorCode;

use crate::error::NetchanError;
use crate::handles::MessageHandler;
use crate::types::Message;

/// The most messages taken out of the core's queue at once: a handler's
/// pump takes this many at most before handing them over, and `recv_many`
/// takes no more whatever it is asked.
pub(crate) const BATCH: usize = 256;

/// What a subscription handle and its pump share.
struct Shared {
    core: netchan::Subscription,
    /// For `is_closed`: its endpoint closing ends it too.
    ep: netchan::Endpoint,
    /// Set by `close()`: the handler gets no message after it.
    cancelled: AtomicBool,
    /// Set once the handler's pump saw the queue closed and drained.
    ended: AtomicBool,
}

/// A subscription: messages whose path matches its pattern, from local
/// publishers and every connected peer, waiting in one queue
/// (`subscribe_capacity` messages; a full queue holds back the
/// publishers, through credit, and the links they use carry everything else
/// on). It survives `suspend()`/`resume()`.
///
/// Made with a handler, it delivers to it and lasts until closed (Kotlin:
/// `cancel()`; Swift: `close()`) or its endpoint closes; letting go of the
/// handle does not end it (a garbage collector must not decide when a
/// subscription stops): Kotlin's `close()` only frees the handle. Made
/// without one, take its messages with `recv`, `recv_many` or
/// `try_recv_many`; freeing the handle then ends it too.
#[derive(uniffi::Object)]
pub struct Subscription {
    sh: Arc<Shared>,
    /// Pulled subscriptions only. The core keeps one waiter per queue (a
    /// second replaces the first), so receivers wait their turn here.
    pull: Option<tokio::sync::Mutex<()>>,
}

impl Subscription {
    pub(crate) fn start(
        core: netchan::Subscription,
        ep: netchan::Endpoint,
        handler: Option<Box<dyn MessageHandler>>,
        rt: &tokio::runtime::Handle,
    ) -> Arc<Subscription> {
        let sh = Arc::new(Shared {
            core,
            ep,
            cancelled: AtomicBool::new(false),
            ended: AtomicBool::new(false),
        });
        let pull = match handler {
            Some(h) => {
                rt.spawn(pump(sh.clone(), Arc::from(h)));
                None
            }
            None => Some(tokio::sync::Mutex::new(())),
        };
        Arc::new(Subscription { sh, pull })
    }

    fn receivers(&self) -> Result<&tokio::sync::Mutex<()>, NetchanError> {
        self.pull.as_ref().ok_or_else(|| {
            NetchanError::new(
                ErrorCode::InvalidArgument,
                "this subscription delivers to its handler; subscribe without one to receive",
            )
        })
    }
}

fn batch_size(max: u32) -> usize {
    (max as usize).clamp(1, BATCH)
}

#[uniffi::export]
impl Subscription {
    /// The pattern.
    pub fn pattern(&self) -> String {
        self.sh.core.pattern().to_string()
    }

    /// The next message, waiting for one; `null`/`nil` once the
    /// subscription is closed (or its endpoint) and the queue is drained.
    ///
    /// Errors: `INVALID_ARGUMENT` for a subscription with a handler.
    pub async fn recv(&self) -> Result<Option<Message>, NetchanError> {
        Ok(self.recv_many(1).await?.pop())
    }

    /// Waits for at least one message and returns up to `max` (at most
    /// 256) of the queued ones, in order; an empty list once closed and
    /// drained. Calls wait their turn: each message goes to one of them.
    ///
    /// Errors: `INVALID_ARGUMENT` for a subscription with a handler.
    pub async fn recv_many(&self, max: u32) -> Result<Vec<Message>, NetchanError> {
        let _turn = self.receivers()?.lock().await;
        let max = batch_size(max);
        let mut out = Vec::with_capacity(max);
        std::future::poll_fn(|cx| self.sh.core.poll_recv_many(cx, &mut out, max)).await;
        Ok(out.into_iter().map(Message::from).collect())
    }

    /// Up to `max` (at most 256) of the messages queued now, in order,
    /// without waiting; empty when none is queued, or while another call
    /// waits in `recv`/`recv_many` (the next messages are that call's).
    ///
    /// Errors: `CLOSED` once closed and drained; `INVALID_ARGUMENT` for a
    /// subscription with a handler.
    pub fn try_recv_many(&self, max: u32) -> Result<Vec<Message>, NetchanError> {
        let Ok(_turn) = self.receivers()?.try_lock() else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        self.sh.core.try_recv_many(&mut out, batch_size(max))?;
        Ok(out.into_iter().map(Message::from).collect())
    }

    /// The next message, waiting up to `timeout` (`null`/`nil`: no limit)
    /// on the calling thread, for threads that may block; `null`/`nil` if
    /// none came in time. It waits through the core's way in from plain
    /// threads ([`netchan::blocking::Blocker`]: it busy-polls for `busy_poll_us`,
    /// then parks) and takes its turn with the other receivers.
    ///
    /// Errors: `CLOSED` once closed and drained; `WOULD_DEADLOCK` on a
    /// netchan thread (inside a handler); `INVALID_ARGUMENT` for a
    /// subscription with a handler.
    #[uniffi::method(default(timeout = None))]
    pub fn recv_blocking(
        &self,
        timeout: Option<Duration>,
    ) -> Result<Option<Message>, NetchanError> {
        let turns = self.receivers()?;
        let next = async {
            let _turn = turns.lock().await;
            let mut out = Vec::with_capacity(1);
            std::future::poll_fn(|cx| self.sh.core.poll_recv_many(cx, &mut out, 1)).await;
            out.pop()
        };
        match self.sh.core.blocker().block_on_timeout(next, timeout)? {
            None => Ok(None),
            Some(Some(m)) => Ok(Some(m.into())),
            Some(None) => Err(NetchanError::new(
                ErrorCode::Closed,
                "the subscription is closed",
            )),
        }
    }

    /// Messages dropped so far by the overflow policy (since the
    /// subscription began: `suspend()` keeps the count).
    pub fn dropped(&self) -> u64 {
        self.sh.core.dropped()
    }

    /// True once closed (by `close()` or by the endpoint closing).
    pub fn is_closed(&self) -> bool {
        self.sh.cancelled.load(SeqCst) || self.sh.ended.load(SeqCst) || self.sh.ep.is_closed()
    }

    /// Unsubscribes. A handler gets no message after it, then `on_close`;
    /// without a handler, the messages already queued can still be taken.
    /// Idempotent.
    pub fn close(&self) {
        self.sh.cancelled.store(true, SeqCst);
        self.sh.core.close();
    }
}

/// Feeds a handler from the core's queue until the subscription ends, then
/// calls `on_close` once. The handler runs on the blocking pool so that it
/// may block without stalling netchan's I/O threads.
async fn pump(sh: Arc<Shared>, handler: Arc<dyn MessageHandler>) {
    let mut batch: Vec<netchan::Message> = Vec::with_capacity(BATCH);
    loop {
        // Waits without a thread: the task is woken by the thread that
        // queues the next message (or closes the queue).
        if std::future::poll_fn(|cx| sh.core.poll_recv_many(cx, &mut batch, BATCH)).await == 0 {
            break;
        }
        let (sh2, h2) = (sh.clone(), handler.clone());
        let taken = std::mem::take(&mut batch);
        match tokio::task::spawn_blocking(move || deliver(&sh2, &*h2, taken)).await {
            // The queue is empty: wait again, with the same buffer.
            Ok(Some(empty)) => batch = empty,
            // Closed, or the runtime is shutting down.
            Ok(None) | Err(_) => break,
        }
    }
    sh.ended.store(true, SeqCst);
    let _ = tokio::task::spawn_blocking(move || {
        // A handler's error is its own business.
        let _ = handler.on_close();
    })
    .await;
}

/// On a blocking-pool thread: hands `batch` to the handler, in order, then
/// whatever is queued behind it, as long as there is some. Returns the
/// emptied buffer once the queue is empty, `None` once the subscription is
/// closed.
fn deliver(
    sh: &Shared,
    handler: &dyn MessageHandler,
    mut batch: Vec<netchan::Message>,
) -> Option<Vec<netchan::Message>> {
    loop {
        for m in batch.drain(..) {
            if sh.cancelled.load(SeqCst) {
                return None;
            }
            // A handler's error is its own business; keep delivering.
            let _ = handler.on_message(m.into());
        }
        match sh.core.try_recv_many(&mut batch, BATCH) {
            Ok(0) => return Some(batch),
            Ok(_) => {}
            Err(_) => return None,
        }
    }
}
