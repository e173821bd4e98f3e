//! Objects handed to the foreign side besides the endpoint, and the
//! foreign-implemented handler traits.

use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::Arc;

use tokio::sync::Notify;

use crate::endpoint::Held;
use crate::error::NetchanError;
use crate::types::{Event, Message, Request};

/// Receives a subscription's messages. Implemented in Kotlin or Swift.
///
/// Calls come from netchan's blocking-pool threads (never the caller's
/// thread, never a netchan I/O worker): a handler may block, which holds up
/// only its own subscription (its queue then fills and the subscription's
/// overflow policy applies). One subscription's calls are made one at a
/// time, in message order. A thrown error is ignored (the next message
/// still comes). Messages are taken from the subscription's queue only as
/// the handler gets to them (at most a batch ahead), so a slow handler
/// fills that queue and its overflow policy applies: by default (`Block`)
/// the links it comes from slow down and nothing is lost.
#[uniffi::export(callback_interface)]
pub trait MessageHandler: Send + Sync {
    /// One message.
    fn on_message(&self, message: Message) -> Result<(), NetchanError>;
    /// The subscription ended (closed, or its endpoint closed). Called once,
    /// after the last `on_message`; `suspend()` does not end subscriptions.
    fn on_close(&self) -> Result<(), NetchanError>;
}

/// Answers requests on a served pattern. Implemented in Kotlin or Swift.
///
/// Called on a netchan blocking-pool thread, one call per request, several
/// at once when requests arrive together; it may block. Return the reply
/// payload, or throw a `NetchanError` (Kotlin `NetchanException`) whose code
/// and detail reach the caller; any other exception reaches it as
/// `HANDLER_ERROR` with the exception's text. When the caller stops waiting
/// first, `request.cancel` is cancelled and whatever the call returns is
/// discarded: a long handler should watch it and give up.
#[uniffi::export(callback_interface)]
pub trait RequestHandler: Send + Sync {
    /// Handles one request.
    fn handle(&self, request: Request) -> Result<Vec<u8>, NetchanError>;
}

/// Serves `pattern` on `core` with a foreign handler, each request on the
/// blocking pool (the handler may block), up to the core's
/// `handler_concurrency` at once.
pub(crate) fn serve_with(
    core: &netchan::Endpoint,
    pattern: &str,
    options: netchan::ServeOptions,
    handler: Arc<dyn RequestHandler>,
) -> Result<netchan::Service, NetchanError> {
    Ok(
        core.serve_fn_with(pattern, options, move |req: netchan::Request| {
            let handler = handler.clone();
            async move {
                let cancel = CancelToken::new();
                let r = Request {
                    path: req.path().to_string(),
                    payload: req.payload().to_vec(),
                    sender: req.sender().to_string(),
                    remaining: req.remaining(),
                    cancel: cancel.clone(),
                };
                // The core drops this future when the caller stops waiting
                // (timeout, cancelled call, lost link, closed endpoint). The
                // blocking call cannot be interrupted, so the guard tells it
                // through `Request.cancel`; its reply is discarded.
                let mut guard = CancelOnDrop(Some(cancel));
                let ran = tokio::task::spawn_blocking(move || handler.handle(r)).await;
                guard.0 = None;
                match ran {
                    Ok(Ok(payload)) => Ok(payload.into()),
                    Ok(Err(e)) => Err(e.into_core()),
                    Err(_) => Err(netchan::Error::new(
                        netchan::ErrorCode::HandlerError,
                        "the handler panicked",
                    )),
                }
            }
        })?,
    )
}

/// Cancels its token when dropped, unless disarmed (set to `None`) first.
struct CancelOnDrop(Option<Arc<CancelToken>>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if let Some(c) = self.0.take() {
            c.cancel();
        }
    }
}

/// A served pattern. It survives `suspend()`/`resume()` and lasts until
/// closed (Kotlin: `cancel()`; Swift: `close()`) or its endpoint closes;
/// letting go of the handle does not end it.
#[derive(uniffi::Object)]
pub struct Service {
    id: u64,
    pattern: String,
    held: Arc<Held>,
}

impl Service {
    pub(crate) fn new(id: u64, pattern: String, held: Arc<Held>) -> Service {
        Service { id, pattern, held }
    }
}

#[uniffi::export]
impl Service {
    /// The served pattern.
    pub fn pattern(&self) -> String {
        self.pattern.clone()
    }

    /// Stops serving; requests in flight still get their reply, requests
    /// still queued fail with `NO_RESPONDERS`. Idempotent.
    pub fn close(&self) {
        self.held.drop_one(self.id)
    }
}

/// A declaration that this endpoint publishes on a pattern (discovery:
/// peers' `publishers()` list it). It survives `suspend()`/`resume()`.
/// Close it (Kotlin: `cancel()`) to withdraw; letting go of the handle does
/// not.
///
/// It also publishes, on paths its pattern matches, through a cache of the
/// route it used last.
#[derive(uniffi::Object)]
pub struct Publisher {
    id: u64,
    pattern: String,
    held: Arc<Held>,
    /// The declaration `held` keeps; gone once closed.
    decl: std::sync::Weak<netchan::Publisher>,
    rt: tokio::runtime::Handle,
}

impl Publisher {
    pub(crate) fn new(
        id: u64,
        pattern: String,
        held: Arc<Held>,
        decl: std::sync::Weak<netchan::Publisher>,
        rt: tokio::runtime::Handle,
    ) -> Publisher {
        Publisher {
            id,
            pattern,
            held,
            decl,
            rt,
        }
    }

    fn decl(&self) -> Result<Arc<netchan::Publisher>, NetchanError> {
        self.decl.upgrade().ok_or_else(|| {
            netchan::Error::new(netchan::ErrorCode::Closed, "this publisher was closed").into()
        })
    }
}

#[uniffi::export]
impl Publisher {
    /// The declared pattern.
    pub fn pattern(&self) -> String {
        self.pattern.clone()
    }

    /// Publishes on `path`, which the pattern must match (`INVALID_PATH`
    /// otherwise), as `Endpoint.publish` does.
    ///
    /// Errors: as `Endpoint.publish`; `CLOSED` once closed.
    pub async fn publish(
        self: Arc<Self>,
        path: String,
        payload: Vec<u8>,
    ) -> Result<(), NetchanError> {
        let d = self.decl()?;
        crate::endpoint::spawn_on(
            &self.rt,
            async move { Ok(d.publish(&path, payload).await?) },
        )
        .await
    }

    /// `publish` for a thread that may block (see
    /// `Endpoint.publish_blocking`).
    pub fn publish_blocking(&self, path: String, payload: Vec<u8>) -> Result<(), NetchanError> {
        Ok(self.decl()?.publish_blocking(&path, payload)?)
    }

    /// Like `publish` but never waits (see `Endpoint.try_publish`).
    pub fn try_publish(&self, path: String, payload: Vec<u8>) -> Result<(), NetchanError> {
        let d = self.decl()?;
        let _rt = self.rt.enter();
        Ok(d.try_publish(&path, payload)?)
    }

    /// Withdraws the declaration. Idempotent.
    pub fn close(&self) {
        self.held.drop_one(self.id)
    }
}

/// A cancellation signal, in both directions of a request: passed to a
/// request (`RequestOptions.cancel`) it cancels it; carried by an incoming
/// request (`Request.cancel`) it tells the handler its caller stopped
/// waiting (cancelling that one from the handler changes nothing for the
/// caller).
#[derive(uniffi::Object, Debug, Default)]
pub struct CancelToken {
    cancelled: AtomicBool,
    notify: Notify,
}

#[uniffi::export]
impl CancelToken {
    /// A token not yet cancelled.
    #[uniffi::constructor]
    pub fn new() -> Arc<CancelToken> {
        Arc::new(CancelToken::default())
    }

    /// Cancels every request using this token, now and later: each fails
    /// with `CANCELLED` and its server sees the cancellation.
    pub fn cancel(&self) {
        self.cancelled.store(true, SeqCst);
        self.notify.notify_waiters();
    }

    /// True once cancelled.
    pub fn is_cancelled(&self) -> bool {
        self.cancelled.load(SeqCst)
    }

    /// Returns once the token is cancelled (at once if it already is).
    /// Kotlin: cancelling the coroutine ends the wait. Swift: the wait
    /// ignores task cancellation, as every uniffi async call does.
    pub async fn cancelled(&self) {
        loop {
            let n = self.notify.notified();
            tokio::pin!(n);
            n.as_mut().enable();
            if self.is_cancelled() {
                return;
            }
            n.await;
        }
    }
}

/// The endpoint's events from the moment `Endpoint.events()` made it; it
/// spans `suspend()`/`resume()` (which it reports) and ends when the
/// endpoint closes.
#[derive(uniffi::Object)]
pub struct EventStream {
    rx: tokio::sync::Mutex<netchan::Events>,
}

impl EventStream {
    pub(crate) fn new(rx: netchan::Events) -> Self {
        EventStream {
            rx: tokio::sync::Mutex::new(rx),
        }
    }
}

#[uniffi::export]
impl EventStream {
    /// The next event; `null`/`nil` once the endpoint is closed and the
    /// events before that were read. A stream more than 1024 events behind
    /// gets `Event.Missed` instead of the ones it missed.
    pub async fn next(&self) -> Option<Event> {
        let mut rx = self.rx.lock().await;
        loop {
            match rx.recv().await {
                netchan::EventRecv::Event(e) => {
                    // A kind a newer core added before this crate learnt it
                    // is skipped (the tests fail on any kind not mapped).
                    if let Some(e) = Event::from_core(e) {
                        return Some(e);
                    }
                }
                netchan::EventRecv::Missed(n) => return Some(Event::Missed { count: n }),
                netchan::EventRecv::Closed => return None,
            }
        }
    }
}
