//! A request as its server sees it: the [`Request`] and the [`Reply`] handle
//! that answers it, to a remote caller (through its link) or a local one.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::oneshot;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::error::{Error, ErrorCode, Result};
use crate::peer::send::Enq;
use crate::peer::Peer;

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
                if !peer.in_flight().finish_served(id) {
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
