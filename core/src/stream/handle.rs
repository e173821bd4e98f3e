//! The public handles of a stream side: [`Stream`], its halves, and a
//! handler runner's own hold.

use std::sync::atomic::Ordering::SeqCst;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::time::Instant;

use super::{StreamCore, TrySend};
use crate::error::{Error, ErrorCode, Result};

/// A holder of one handle on a stream side.
struct Handle(Arc<StreamCore>);

impl Handle {
    fn new(core: Arc<StreamCore>) -> Handle {
        core.handles.fetch_add(1, SeqCst);
        Handle(core)
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.0.release();
    }
}

/// One side of a bidirectional stream: send messages with
/// [`send`](Self::send), receive the other side's with
/// [`recv`](Self::recv), end this side's direction with
/// [`finish`](Self::finish), or end the whole stream with
/// [`cancel`](Self::cancel). Each direction has its own credit (the
/// receiver's window): a sender that outruns its receiver waits, and
/// nothing else waits with it.
///
/// Dropping a stream before both directions ended cancels it (the other
/// side sees `CANCELLED`). [`split`](Self::split) gives a sender and a
/// receiver that can live in different tasks.
pub struct Stream {
    h: Handle,
}

impl std::fmt::Debug for Stream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stream")
            .field("path", &self.path())
            .field("peer", &self.peer())
            .finish()
    }
}

impl Stream {
    pub(crate) fn new(core: Arc<StreamCore>) -> Stream {
        Stream {
            h: Handle::new(core),
        }
    }

    pub(crate) fn core(&self) -> &Arc<StreamCore> {
        &self.h.0
    }

    /// The path the stream was opened on.
    pub fn path(&self) -> &str {
        &self.h.0.path
    }

    /// The endpoint at the other side.
    pub fn peer(&self) -> &str {
        &self.h.0.peer_name
    }

    /// Sends one message, waiting while the receiver's window is full.
    ///
    /// Errors: the code the stream ended with (`CANCELLED`, `TIMEOUT`,
    /// `PEER_LOST`, a handler's code), `INVALID_ARGUMENT` after
    /// [`finish`](Self::finish), `MESSAGE_TOO_LARGE`, `CLOSED`.
    pub async fn send(&self, data: impl Into<Bytes>) -> Result<()> {
        self.h.0.send(data.into()).await
    }

    /// The next message; `None` once the other side finished its direction
    /// and everything it sent was received.
    ///
    /// Errors: the code the stream ended with (after the messages that
    /// arrived before it), `CLOSED`.
    pub async fn recv(&self) -> Result<Option<Bytes>> {
        self.h.0.recv().await
    }

    /// [`send`](Self::send) from a plain thread, waiting at most `timeout`
    /// for credit (`TIMEOUT` then, and nothing was sent).
    ///
    /// Errors: as `send`; `TIMEOUT`; `WOULD_DEADLOCK` from an async context.
    pub fn send_blocking(&self, data: impl Into<Bytes>, timeout: Option<Duration>) -> Result<()> {
        let data = data.into();
        self.blocking("send_blocking", timeout, self.send(data))?
    }

    /// [`recv`](Self::recv) from a plain thread, waiting at most `timeout`
    /// (`TIMEOUT` then; the stream goes on).
    ///
    /// Errors: as `recv`; `TIMEOUT`; `WOULD_DEADLOCK` from an async context.
    pub fn recv_blocking(&self, timeout: Option<Duration>) -> Result<Option<Bytes>> {
        // Refused from an async context even when a message is here, as
        // every blocking call is (not only when it would have to wait).
        if crate::runtime::in_async_context() {
            return Err(Error::new(
                ErrorCode::WouldDeadlock,
                "recv_blocking called from an async context or callback; use recv().await",
            ));
        }
        if let Some(r) = self.h.0.try_recv()? {
            return Ok(r);
        }
        self.blocking("recv_blocking", timeout, self.recv())?
    }

    fn blocking<T>(
        &self,
        what: &str,
        timeout: Option<Duration>,
        fut: impl std::future::Future<Output = T>,
    ) -> Result<T> {
        let Some(b) = &self.h.0.blocker else {
            return Err(Error::new(
                ErrorCode::Internal,
                "a stream without an endpoint",
            ));
        };
        b.block_on_timeout(fut, timeout)?.ok_or_else(|| {
            Error::new(
                ErrorCode::Timeout,
                format!("{what}: nothing happened on the stream within {timeout:?}"),
            )
        })
    }

    /// Sends `data` if the receiver's window (and the link's send buffer)
    /// has room now: `Ok(true)` sent, `Ok(false)` not now (nothing sent).
    /// Errors as [`send`](Self::send).
    pub fn try_send(&self, data: &Bytes) -> Result<bool> {
        self.h.0.check_size(data.len())?;
        Ok(matches!(self.h.0.try_send(data)?, TrySend::Sent))
    }

    /// The readiness hook for a foreign event loop: `Ready` with what
    /// [`recv`](Self::recv) would give now, or `Pending`, and then `cx`'s
    /// waker is woken once, from whichever thread changes that (a message
    /// arrives, the other side ends its direction, the stream ends). One
    /// waiter at a time; a wake may be spurious. (The endpoint's close
    /// wakes it through the end of the stream's link; a stream within one
    /// endpoint is not woken by the close.)
    pub fn poll_recv(
        &self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<Option<Bytes>>> {
        self.h.0.poll_recv(cx)
    }

    /// The next message if one is here: `Ok(Some(Some(m)))`,
    /// `Ok(Some(None))` at the end, `Ok(None)` when none is here yet.
    pub fn try_recv(&self) -> Result<Option<Option<Bytes>>> {
        self.h.0.try_recv()
    }

    /// Ends this side's direction: the other side receives what was sent,
    /// then the end. Receiving goes on.
    pub fn finish(&self) {
        self.h.0.finish()
    }

    /// Ends the whole stream with `CANCELLED`; the other side sees it
    /// within one round trip.
    pub fn cancel(&self) {
        self.cancel_with(Error::new(ErrorCode::Cancelled, "the stream was cancelled"));
    }

    /// Ends the whole stream with `error` (its code and detail reach the
    /// other side).
    pub fn cancel_with(&self, error: Error) {
        self.h.0.cancel(error)
    }

    /// The deadline, if the opener gave one.
    pub fn deadline(&self) -> Option<Instant> {
        self.h.0.deadline
    }

    /// Splits the stream into a sender and a receiver. Dropping the sender
    /// finishes this side's direction; the stream is cancelled if both are
    /// dropped before both directions ended.
    pub fn split(self) -> (StreamSender, StreamReceiver) {
        let core = self.h.0.clone();
        let tx = StreamSender {
            h: Handle::new(core.clone()),
        };
        let rx = StreamReceiver {
            h: Handle::new(core),
        };
        drop(self);
        (tx, rx)
    }
}

/// The sending half of a [`Stream`]. Dropping it finishes the direction.
pub struct StreamSender {
    h: Handle,
}

impl StreamSender {
    /// See [`Stream::send`].
    pub async fn send(&self, data: impl Into<Bytes>) -> Result<()> {
        self.h.0.send(data.into()).await
    }
    /// See [`Stream::finish`].
    pub fn finish(&self) {
        self.h.0.finish()
    }
    /// See [`Stream::cancel`].
    pub fn cancel(&self) {
        self.h
            .0
            .cancel(Error::new(ErrorCode::Cancelled, "the stream was cancelled"));
    }
}

impl Drop for StreamSender {
    fn drop(&mut self) {
        self.h.0.finish();
    }
}

/// The receiving half of a [`Stream`].
pub struct StreamReceiver {
    h: Handle,
}

impl StreamReceiver {
    /// See [`Stream::recv`].
    pub async fn recv(&self) -> Result<Option<Bytes>> {
        self.h.0.recv().await
    }
    /// See [`Stream::cancel`].
    pub fn cancel(&self) {
        self.h
            .0
            .cancel(Error::new(ErrorCode::Cancelled, "the stream was cancelled"));
    }
}

/// A handler runner's own hold on a stream: the stream does not end when
/// the handler drops its handle, so that the handler's error (if any)
/// ends it with its own code.
pub(crate) struct Hold(Handle);

impl Hold {
    pub(crate) fn new(stream: &Stream) -> Hold {
        Hold(Handle::new(stream.core().clone()))
    }

    pub(crate) fn core(&self) -> &Arc<StreamCore> {
        &self.0 .0
    }
}
