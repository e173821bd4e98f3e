//! The server's side of streams: a served pattern ([`StreamService`]), the
//! link's handling of a STREAM_OPEN, and the handler runner.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::{Hold, IncomingStream, Side, Stream, StreamCore, StreamRequest, MAX_CREDIT};
use crate::blocking::Blocker;
use crate::error::{Error, ErrorCode, Result};
use crate::path::{validate_path, Pattern};
use crate::peer::Peer;
use crate::proto::Frame;
use crate::router::Router;
use crate::service_queue::{ServiceQueue, ServiceShared};

/// A served stream pattern as the router holds it.
pub(crate) struct StreamServe {
    pub svc: ServiceShared<IncomingStream>,
    /// The window each of its streams receives within.
    pub window: u64,
}

/// A pattern served with streams. Pull opened streams with
/// [`recv`](Self::recv), or let
/// [`Endpoint::serve_stream_fn`](crate::Endpoint::serve_stream_fn) run a
/// handler for each. Dropping it (or [`close`](Self::close)) stops
/// serving; streams still queued are refused (`NO_RESPONDERS`).
pub struct StreamService {
    pub(crate) id: u64,
    pub(crate) pattern: Pattern,
    pub(crate) queue: Arc<ServiceQueue<IncomingStream>>,
    pub(crate) pull: bool,
    pub(crate) router: Arc<Router>,
    pub(crate) task: Option<tokio::task::AbortHandle>,
    pub(crate) blocker: Blocker,
    pub(crate) declaring: std::sync::Mutex<Option<crate::router::Declaring>>,
}

impl StreamService {
    /// Completes once every peer connected when the service was declared
    /// has it (or `Config::declare_wait` passed).
    pub async fn ready(&self) {
        crate::router::Declaring::ready(&self.declaring).await;
    }

    /// The served pattern.
    pub fn pattern(&self) -> &str {
        self.pattern.as_str()
    }

    /// Streams waiting for a handler (or `recv`) to take them.
    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    /// The next opened stream; `None` once closed (or for a service run by
    /// a handler).
    pub async fn recv(&self) -> Option<(StreamRequest, Stream)> {
        if !self.pull {
            return None;
        }
        let item = self.queue.recv().await;
        taken(item)
    }

    /// The next opened stream if one is waiting. `Err(CLOSED)` once closed.
    pub fn try_recv(&self) -> Result<Option<(StreamRequest, Stream)>> {
        let closed = || Error::new(ErrorCode::Closed, "the stream service is closed");
        if !self.pull {
            return Err(closed());
        }
        self.queue.try_pop().map_err(|()| closed()).map(taken)
    }

    /// The readiness hook for a foreign event loop: `Ready(Some)` with the
    /// next opened stream (taken, as `recv` takes it), `Ready(None)` once
    /// closed, or `Pending`, and then `cx`'s waker is woken once when that
    /// changes. One waiter at a time.
    pub fn poll_recv(
        &self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<(StreamRequest, Stream)>> {
        if !self.pull {
            return std::task::Poll::Ready(None);
        }
        self.queue.poll_recv(cx).map(taken)
    }

    /// Blocks for the next opened stream, up to `timeout`. `Ok(None)` on
    /// timeout; `Err(CLOSED)` once closed; `Err(WOULD_DEADLOCK)` in an
    /// async context.
    pub fn recv_blocking(
        &self,
        timeout: Option<Duration>,
    ) -> Result<Option<(StreamRequest, Stream)>> {
        if crate::runtime::in_async_context() {
            return Err(Error::new(
                ErrorCode::WouldDeadlock,
                "recv_blocking called from an async context or callback; use recv().await",
            ));
        }
        match self.blocker.block_on_timeout(self.recv(), timeout)? {
            None => Ok(None),
            Some(Some(r)) => Ok(Some(r)),
            Some(None) => Err(Error::new(
                ErrorCode::Closed,
                "the stream service is closed",
            )),
        }
    }

    /// Stops serving. Streams still queued are refused with
    /// `NO_RESPONDERS`.
    pub fn close(&self) {
        self.router.unserve_stream(self.id);
        if let Some(t) = &self.task {
            t.abort();
        }
        for (req, stream) in self.queue.close() {
            stream.cancel_with(Error::new(
                ErrorCode::NoResponders,
                format!(
                    "the stream service for {} closed before taking the stream",
                    req.path()
                ),
            ));
        }
    }
}

impl Drop for StreamService {
    fn drop(&mut self) {
        self.close();
    }
}

impl std::fmt::Debug for StreamService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamService")
            .field("pattern", &self.pattern())
            .finish()
    }
}

/// A stream taken from its service's queue is accepted.
fn taken(item: Option<IncomingStream>) -> Option<IncomingStream> {
    if let Some((_, s)) = &item {
        s.core().accept();
    }
    item
}

/// Runs `handler` for the streams of `queue`, each in its own task, at
/// most `concurrency` at once. A handler's error ends its stream with the
/// error's code; a handler that returns `Ok` leaves the stream to its
/// handles (dropped unfinished: cancelled).
pub(crate) async fn run_stream_handler<F, Fut>(
    queue: Arc<ServiceQueue<IncomingStream>>,
    concurrency: usize,
    handler: F,
) where
    F: Fn(StreamRequest, Stream) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<()>> + Send + 'static,
{
    let handler = Arc::new(handler);
    let slots = Arc::new(tokio::sync::Semaphore::new(concurrency.max(1)));
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let Some((req, stream)) = taken(queue.recv().await) else {
            return;
        };
        let hold = Hold::new(&stream);
        let fut = handler(req, stream);
        tokio::spawn(async move {
            if let Err(e) = fut.await {
                hold.core().cancel(e);
            } else {
                hold.core().finish();
            }
            drop(hold);
            drop(slot);
        });
    }
}

/// A STREAM_OPEN from `peer`: refused with a STREAM_END when nothing here
/// serves the path or the service's queue is full, else queued for its
/// service and accepted (STREAM_ACCEPT with the service's window).
/// Errors break the protocol.
pub(crate) fn on_open(router: &Router, peer: &Arc<Peer>, f: Frame) -> Result<()> {
    let Frame::StreamOpen {
        id,
        path,
        timeout_ms,
        window,
        payload,
    } = f
    else {
        return Ok(());
    };
    let bad = |what: String| Error::new(ErrorCode::ProtocolError, what);
    if id & 1 != 0 {
        return Err(bad(format!(
            "STREAM_OPEN id {id} is odd (its sender opens it: the id must be even)"
        )));
    }
    if window == 0 || window > MAX_CREDIT {
        return Err(bad(format!(
            "STREAM_OPEN window {window} is outside 1..=2^40"
        )));
    }
    validate_path(&path)
        .map_err(|e| bad(format!("STREAM_OPEN with invalid path: {}", e.detail())))?;
    let shared = &router.shared;
    let refuse = |code: ErrorCode, message: String| {
        let _ = peer.tx.push_frame(
            &Frame::StreamEnd {
                id: id | 1,
                code: code.as_u16(),
                message,
            },
            None,
            false,
        );
    };
    if !router
        .lock()
        .allowed(peer, crate::acl::Action::Stream, &path)
    {
        router.denied(peer, crate::acl::Action::Stream, &path, 1);
        refuse(
            ErrorCode::PermissionDenied,
            format!(
                "{} ({}) may not open streams on {path} here (access rules)",
                peer.name, peer.identity
            ),
        );
        return Ok(());
    }
    let Some(svc) = router.local_stream_service(&path) else {
        refuse(
            ErrorCode::NoResponders,
            format!("{} does not serve streams on {path}", shared.name),
        );
        return Ok(());
    };
    let path: Arc<str> = path.into();
    let deadline = (timeout_ms > 0).then(|| Instant::now() + Duration::from_millis(timeout_ms));
    let core = StreamCore::accepting(
        Side {
            path: path.clone(),
            peer_name: peer.name.clone(),
            deadline,
            shutdown: shared.shutdown.clone(),
            blocker: Some(shared.blocker.clone()),
        },
        peer.clone(),
        id,
        svc.window,
        window,
    );
    match peer.in_flight().start_stream(id, core.clone()) {
        Ok(()) => {}
        Err(e) if e.code() == ErrorCode::ProtocolError => return Err(e),
        Err(_) => return Ok(()), // the link is ending: the stream goes with it
    }
    core.arm_deadline(&shared.rt);
    let req = StreamRequest {
        path,
        payload,
        sender: peer.name.clone(),
        deadline,
    };
    // Accepted (granted its window) when a handler or `recv` takes it.
    let _ = svc.svc.offer(shared, peer.id, (req, Stream::new(core)));
    Ok(())
}

/// Hands a stream frame other than STREAM_OPEN to its stream; a frame for
/// a stream that ended here is ignored (it crossed the end). Errors break
/// the protocol.
pub(crate) fn on_stream_frame(peer: &Arc<Peer>, f: Frame) -> Result<()> {
    let (id, what) = match &f {
        Frame::StreamAccept { id, .. } => (*id, "STREAM_ACCEPT"),
        Frame::StreamData { id, .. } => (*id, "STREAM_DATA"),
        Frame::StreamCredit { id, .. } => (*id, "STREAM_CREDIT"),
        Frame::StreamEnd { id, .. } => (*id, "STREAM_END"),
        _ => return Ok(()),
    };
    let core = peer.in_flight().stream(id);
    let Some(core) = core else {
        return Ok(());
    };
    match f {
        Frame::StreamAccept { window, .. } => {
            if id & 1 == 0 {
                return Err(Error::new(
                    ErrorCode::ProtocolError,
                    format!("{what} for stream id {id}, which its sender opened"),
                ));
            }
            if window == 0 || window > MAX_CREDIT {
                return Err(Error::new(
                    ErrorCode::ProtocolError,
                    format!("STREAM_ACCEPT window {window} is outside 1..=2^40"),
                ));
            }
            core.on_accept(window)
        }
        Frame::StreamData { payload, .. } => core.on_data(payload),
        Frame::StreamCredit { bytes, .. } => core.on_credit(bytes),
        Frame::StreamEnd { code, message, .. } => core.on_end(code, message),
        _ => Ok(()),
    }
}

/// The window a stream receives within, checked: 1 byte to 2^32.
pub(crate) fn check_window(window: usize) -> Result<u64> {
    if window == 0 || window as u64 > 1 << 32 {
        return Err(Error::invalid_argument(format!(
            "a stream window must be 1 byte to 4 GiB, got {window}"
        )));
    }
    Ok(window as u64)
}
