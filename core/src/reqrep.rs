//! Request/reply: the server side ([`Service`], [`Request`], [`Reply`]).

use std::future::Future;
use std::sync::{Arc, Weak};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::oneshot;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::endpoint::Inner;
use crate::error::{Error, ErrorCode, Result};
use crate::path::Pattern;
use crate::peer::{Enq, Peer};
use crate::service_queue::{Caller, Pushed, ServiceQueue};

/// An incoming request, as a handler sees it.
#[derive(Debug)]
pub struct Request {
    pub(crate) path: Arc<str>,
    pub(crate) payload: Bytes,
    pub(crate) sender: Arc<str>,
    pub(crate) deadline: Instant,
    pub(crate) cancel: CancellationToken,
}

impl Request {
    /// The concrete path the caller requested.
    pub fn path(&self) -> &str {
        &self.path
    }
    /// The request payload.
    pub fn payload(&self) -> &Bytes {
        &self.payload
    }
    /// The caller's endpoint name.
    pub fn sender(&self) -> &str {
        &self.sender
    }
    /// When the caller stops waiting (its timeout, carried on the wire).
    pub fn deadline(&self) -> Instant {
        self.deadline
    }
    /// Time left before the deadline.
    pub fn remaining(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }
    /// True once the caller cancelled (timeout, dropped future) or its link
    /// was lost; a reply sent after that is discarded.
    pub fn is_cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }
    /// Completes when the request is cancelled.
    pub async fn cancelled(&self) {
        self.cancel.cancelled().await
    }
}

pub(crate) enum ReplyTo {
    Remote { peer: Arc<Peer>, id: u64 },
    Local(oneshot::Sender<Result<Bytes>>),
}

/// The handle that answers one request. Reply once with [`send`](Self::send)
/// or [`fail`](Self::fail), from any thread, now or later. Dropping it
/// unanswered fails the request with `HANDLER_ERROR`.
pub struct Reply {
    to: Option<ReplyTo>,
    cancel: CancellationToken,
}

impl std::fmt::Debug for Reply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reply")
            .field("answered", &self.to.is_none())
            .finish()
    }
}

impl Reply {
    pub(crate) fn new(to: ReplyTo, cancel: CancellationToken) -> Reply {
        Reply {
            to: Some(to),
            cancel,
        }
    }

    /// True once the caller cancelled (timeout, dropped future, link lost);
    /// a reply sent now is discarded, so a server answering later can skip
    /// the work.
    pub fn is_cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }

    fn answer(&mut self, r: Result<Bytes>) {
        match self.to.take() {
            Some(ReplyTo::Local(tx)) => {
                let _ = tx.send(r);
            }
            Some(ReplyTo::Remote { peer, id }) => {
                // A cancelled request has no waiter; do not send its result.
                if peer.lock_serving().remove(&id).is_none() {
                    return;
                }
                let enq = match &r {
                    Ok(p) => peer.tx.push_result(id, 0, "", p),
                    Err(e) => peer
                        .tx
                        .push_result(id, e.code().as_u16(), e.detail(), &Bytes::new()),
                };
                if let Enq::Closed = enq {
                    tracing::debug!(peer = %peer.name, id, "reply dropped: link closed");
                }
            }
            None => {}
        }
    }

    /// Sends the reply payload.
    pub fn send(mut self, payload: impl Into<Bytes>) {
        self.answer(Ok(payload.into()))
    }

    /// Fails the request; the caller gets an error with this code and text.
    pub fn fail(mut self, error: Error) {
        self.answer(Err(error))
    }
}

impl Drop for Reply {
    fn drop(&mut self) {
        if self.to.is_some() {
            self.answer(Err(Error::new(
                ErrorCode::HandlerError,
                "the handler dropped the request without replying",
            )));
        }
    }
}

pub(crate) type Incoming = (Request, Reply);

pub(crate) struct ServiceShared {
    pub pattern: Pattern,
    pub queue: Arc<ServiceQueue>,
}

impl ServiceShared {
    /// Queues a request from `caller`; a refused request fails at once with
    /// the reason, and requests pushed out to make room fail with
    /// `BUFFER_FULL`. Returns the refusal, if any, for a local caller.
    pub(crate) fn offer(&self, caller: Caller, item: Incoming) -> Result<()> {
        match self.queue.push(caller, item) {
            Pushed::Queued(out) => {
                for (_, reply) in out {
                    reply.fail(ServiceQueue::pushed_out_error());
                }
                Ok(())
            }
            Pushed::Refused(item, e) => {
                let (req, reply) = *item;
                drop(req);
                reply.fail(e.clone());
                Err(e)
            }
        }
    }
}

/// A served pattern. Pull requests with [`recv`](Self::recv), or let
/// [`Endpoint::serve_fn`](crate::Endpoint::serve_fn) run a handler for each.
/// Dropping it (or [`close`](Self::close)) stops serving; requests still
/// queued are failed.
pub struct Service {
    pub(crate) id: u64,
    pub(crate) pattern: Pattern,
    pub(crate) queue: Arc<ServiceQueue>,
    /// False for a `serve_fn` service, whose handler takes the requests.
    pub(crate) pull: bool,
    pub(crate) ep: Weak<Inner>,
    pub(crate) rt: tokio::runtime::Handle,
    pub(crate) task: Option<tokio::task::AbortHandle>,
    /// [`Config::busy_poll`](crate::Config::busy_poll) of its endpoint.
    pub(crate) busy: Duration,
}

impl Service {
    /// The served pattern.
    pub fn pattern(&self) -> &str {
        self.pattern.as_str()
    }

    /// The next request and its reply handle; `None` once closed (or for a
    /// service created by `serve_fn`, whose handler receives them instead).
    pub async fn recv(&self) -> Option<(Request, Reply)> {
        if !self.pull {
            return None;
        }
        crate::runtime::busy_poll(self.busy, self.queue.recv()).await
    }

    /// Blocks for the next request, up to `timeout`. `Ok(None)` on timeout;
    /// `Err(CLOSED)` once closed; `Err(WOULD_DEADLOCK)` in an async context.
    pub fn recv_blocking(&self, timeout: Option<Duration>) -> Result<Option<(Request, Reply)>> {
        if crate::runtime::in_async_context() {
            return Err(Error::new(
                ErrorCode::WouldDeadlock,
                "recv_blocking called from an async context or callback; use recv().await",
            ));
        }
        let r = match timeout {
            None => self.rt.block_on(self.recv()),
            Some(t) => match self
                .rt
                .block_on(async { tokio::time::timeout(t, self.recv()).await })
            {
                Ok(r) => r,
                Err(_) => return Ok(None),
            },
        };
        r.map(Some)
            .ok_or_else(|| Error::new(ErrorCode::Closed, "the service is closed"))
    }

    /// Stops serving. Requests still queued fail with `NO_RESPONDERS`.
    pub fn close(&self) {
        if let Some(ep) = self.ep.upgrade() {
            ep.unserve(self.id);
        }
        if let Some(t) = &self.task {
            t.abort();
        }
        for (req, reply) in self.queue.close() {
            reply.fail(Error::new(
                ErrorCode::NoResponders,
                format!(
                    "the service for {} closed before taking the request",
                    req.path()
                ),
            ));
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.close();
    }
}

impl std::fmt::Debug for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Service")
            .field("pattern", &self.pattern())
            .finish()
    }
}

/// Runs `handler` for requests of `queue`, each in its own task so slow
/// requests do not hold up others, at most `concurrency` at once (more wait
/// in the queue, where callers take turns).
pub(crate) async fn run_handler<F, Fut>(queue: Arc<ServiceQueue>, concurrency: usize, handler: F)
where
    F: Fn(Request) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Bytes>> + Send + 'static,
{
    let handler = Arc::new(handler);
    let slots = Arc::new(tokio::sync::Semaphore::new(concurrency.max(1)));
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let Some((req, reply)) = queue.recv().await else {
            return;
        };
        let cancel = req.cancel.clone();
        let fut = handler(req);
        tokio::spawn(async move {
            tokio::select! {
                r = fut => match r {
                    Ok(p) => reply.send(p),
                    Err(e) => reply.fail(e),
                },
                // The caller is gone: stop the handler's work.
                _ = cancel.cancelled() => drop(reply),
            }
            drop(slot);
        });
    }
}
