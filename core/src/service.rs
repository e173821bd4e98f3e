//! Services: the public handle of a served pattern, pulled with `recv` or
//! driven by a handler ([`run_handler`]).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use crate::blocking::Blocker;
use crate::error::{Error, ErrorCode, Result};
use crate::path::Pattern;
use crate::request::{Reply, Request};
use crate::router::Router;
use crate::service_queue::ServiceQueue;

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
    /// To withdraw the declaration when it ends.
    pub(crate) router: Arc<Router>,
    pub(crate) task: Option<tokio::task::AbortHandle>,
    /// Its endpoint's way in from plain threads.
    pub(crate) blocker: Blocker,
    /// Made in an async context: the wait for the peers to have it.
    pub(crate) declaring: std::sync::Mutex<Option<crate::router::Declaring>>,
}

impl Service {
    /// Completes once every peer connected when the service was declared
    /// has it (or `Config::declare_wait` passed): a request a peer sends
    /// after that finds it. `serve` from a plain thread has already waited
    /// (`a_service_is_known_to_peers_when_serve_returns`).
    pub async fn ready(&self) {
        crate::router::Declaring::ready(&self.declaring).await;
    }

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
        self.queue.recv().await
    }

    /// The next request if one is queued, without waiting. `Err(CLOSED)`
    /// once closed (and always for a `serve_fn` service, whose handler
    /// takes the requests). It never touches the readiness hook: a waiter
    /// armed by [`poll_recv`](Self::poll_recv) keeps its wakeup.
    pub fn try_recv(&self) -> Result<Option<(Request, Reply)>> {
        // Never arms the readiness hook (see `Subscription::try_recv_many`).
        let closed = || Error::new(ErrorCode::Closed, "the service is closed");
        if !self.pull {
            return Err(closed());
        }
        self.queue.try_pop().map_err(|()| closed())
    }

    /// The readiness hook for a foreign event loop: `Ready(Some)` with the
    /// next request, `Ready(None)` once closed, or `Pending` when none is
    /// queued, and then `cx`'s waker is woken once, from whichever thread
    /// queues the next request (or closes the service). One waiter at a
    /// time.
    pub fn poll_recv(
        &self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<(Request, Reply)>> {
        if !self.pull {
            return std::task::Poll::Ready(None);
        }
        self.queue.poll_recv(cx)
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
        match self.blocker.block_on_timeout(self.recv(), timeout)? {
            None => Ok(None),
            Some(Some(r)) => Ok(Some(r)),
            Some(None) => Err(Error::new(ErrorCode::Closed, "the service is closed")),
        }
    }

    /// Runs futures of this service (or any netchan future) from a plain
    /// thread: see [`Blocker`].
    pub fn blocker(&self) -> &Blocker {
        &self.blocker
    }

    /// Stops serving. Requests still queued fail with `NO_RESPONDERS`.
    pub fn close(&self) {
        self.router.unserve(self.id);
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
