//! Services pulled from: [`RequestQueue`] hands out [`IncomingRequest`]s,
//! each answered once with `reply` or `fail`; [`StreamQueue`] hands out
//! opened streams ([`OpenedStream`]) that the taker then owns.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::error::NetchanError;

/// A served pattern whose requests are taken, not handed to a handler
/// (`Endpoint.servePull`): `recv()` waits for the next one, `tryRecv()`
/// takes one if queued. The service ends when closed (Kotlin: `cancel()`),
/// when its endpoint closes, or when the handle is freed (nothing could
/// take its requests then); requests still queued fail with `CLOSED`.
#[derive(uniffi::Object)]
pub struct RequestQueue {
    svc: netchan::Service,
    /// One `recv` waits at a time (the core's readiness hook has one
    /// waiter); the others wait their turn here.
    receivers: tokio::sync::Mutex<()>,
}

impl RequestQueue {
    pub(crate) fn new(svc: netchan::Service) -> RequestQueue {
        RequestQueue {
            svc,
            receivers: tokio::sync::Mutex::new(()),
        }
    }
}

#[uniffi::export]
impl RequestQueue {
    /// The served pattern.
    pub fn pattern(&self) -> String {
        self.svc.pattern().to_string()
    }

    /// The next request, waiting for one; `null`/`nil` once the service
    /// (or its endpoint) is closed. Calls wait their turn: each request
    /// goes to one of them.
    pub async fn recv(&self) -> Option<Arc<IncomingRequest>> {
        let _turn = self.receivers.lock().await;
        std::future::poll_fn(|cx| self.svc.poll_recv(cx))
            .await
            .map(IncomingRequest::new)
    }

    /// The next queued request without waiting; `null`/`nil` when none is
    /// queued.
    ///
    /// Errors: `CLOSED` once the service is closed.
    pub fn try_recv(&self) -> Result<Option<Arc<IncomingRequest>>, NetchanError> {
        Ok(self.svc.try_recv()?.map(IncomingRequest::new))
    }

    /// Stops serving; requests still queued fail with `CLOSED`. Idempotent.
    pub fn close(&self) {
        self.svc.close()
    }
}

/// A request taken from a [`RequestQueue`]: answer it once with `reply` or
/// `fail`. Freed unanswered, it fails with `HANDLER_ERROR`.
#[derive(uniffi::Object)]
pub struct IncomingRequest {
    req: netchan::Request,
    reply: Mutex<Option<netchan::Reply>>,
}

impl IncomingRequest {
    fn new((req, reply): (netchan::Request, netchan::Reply)) -> Arc<IncomingRequest> {
        Arc::new(IncomingRequest {
            req,
            reply: Mutex::new(Some(reply)),
        })
    }

    fn take(&self) -> Result<netchan::Reply, NetchanError> {
        let r = self.reply.lock().unwrap_or_else(|p| p.into_inner()).take();
        r.ok_or_else(|| {
            netchan::Error::new(
                netchan::ErrorCode::Closed,
                "this request was already answered",
            )
            .into()
        })
    }
}

#[uniffi::export]
impl IncomingRequest {
    /// The concrete path the caller requested.
    pub fn path(&self) -> String {
        self.req.path().to_string()
    }

    /// The request payload.
    pub fn payload(&self) -> Vec<u8> {
        self.req.payload().to_vec()
    }

    /// The caller's endpoint name.
    pub fn sender(&self) -> String {
        self.req.sender().to_string()
    }

    /// Time left before the caller stops waiting.
    pub fn remaining(&self) -> Duration {
        self.req.remaining()
    }

    /// True once the caller gave up (its timeout, a cancelled call, a lost
    /// link): a reply now is discarded.
    pub fn is_cancelled(&self) -> bool {
        self.req.is_cancelled()
    }

    /// Answers with `payload`.
    ///
    /// Errors: `CLOSED` if answered already.
    pub fn reply(&self, payload: Vec<u8>) -> Result<(), NetchanError> {
        self.take()?.send(payload);
        Ok(())
    }

    /// Fails the request: the caller gets `code` (a netchan code name,
    /// default `HANDLER_ERROR`) and `message`.
    ///
    /// Errors: `INVALID_ARGUMENT` for a code that is not one; `CLOSED` if
    /// answered already.
    #[uniffi::method(default(code = "HANDLER_ERROR"))]
    pub fn fail(&self, message: String, code: String) -> Result<(), NetchanError> {
        let c = netchan::ErrorCode::from_name(&code).ok_or_else(|| {
            NetchanError::from(netchan::Error::new(
                netchan::ErrorCode::InvalidArgument,
                format!("{code:?} is not a netchan error code"),
            ))
        })?;
        self.take()?.fail(netchan::Error::new(c, message));
        Ok(())
    }
}

/// A served stream pattern whose streams are taken, not handed to a handler
/// (`Endpoint.serveStreamPull`): `recv()` waits for the next one,
/// `tryRecv()` takes one if waiting. The taker owns each stream: finish or
/// cancel it. The service ends when closed (Kotlin: `cancel()`), when its
/// endpoint closes, or when the handle is freed; streams still waiting are
/// refused.
#[derive(uniffi::Object)]
pub struct StreamQueue {
    svc: netchan::StreamService,
    rt: tokio::runtime::Handle,
    receivers: tokio::sync::Mutex<()>,
}

/// A stream taken from a [`StreamQueue`]: the opening and this side of the
/// stream.
#[derive(uniffi::Record)]
pub struct OpenedStream {
    /// The opening: path, first payload, sender, deadline.
    pub request: crate::stream::StreamRequest,
    /// This side of the stream.
    pub stream: Arc<crate::stream::Stream>,
}

impl StreamQueue {
    pub(crate) fn new(svc: netchan::StreamService, rt: tokio::runtime::Handle) -> StreamQueue {
        StreamQueue {
            svc,
            rt,
            receivers: tokio::sync::Mutex::new(()),
        }
    }

    fn opened(&self, (req, stream): (netchan::StreamRequest, netchan::Stream)) -> OpenedStream {
        OpenedStream {
            request: crate::stream::StreamRequest::from_core(&req),
            stream: crate::stream::Stream::new(stream, self.rt.clone()),
        }
    }
}

#[uniffi::export]
impl StreamQueue {
    /// The served pattern.
    pub fn pattern(&self) -> String {
        self.svc.pattern().to_string()
    }

    /// The next opened stream, waiting for one; `null`/`nil` once the
    /// service (or its endpoint) is closed. Calls wait their turn.
    pub async fn recv(&self) -> Option<OpenedStream> {
        let _turn = self.receivers.lock().await;
        let taken = std::future::poll_fn(|cx| self.svc.poll_recv(cx)).await;
        taken.map(|t| self.opened(t))
    }

    /// The next waiting stream without waiting; `null`/`nil` when none is.
    ///
    /// Errors: `CLOSED` once the service is closed.
    pub fn try_recv(&self) -> Result<Option<OpenedStream>, NetchanError> {
        Ok(self.svc.try_recv()?.map(|t| self.opened(t)))
    }

    /// Stops serving; streams still waiting are refused. Streams taken go
    /// on. Idempotent.
    pub fn close(&self) {
        self.svc.close()
    }
}
