//! Objects handed to the foreign side besides the endpoint, and the
//! foreign-implemented handler traits.

use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::{Arc, Mutex, Weak};

use tokio::sync::{broadcast, watch, Notify};

use crate::endpoint::{lock, Shared};
use crate::error::NetchanError;
use crate::types::{Event, Message, Request};

/// Receives a subscription's messages. Implemented in Kotlin or Swift.
///
/// Calls come from netchan's blocking-pool threads (never the caller's
/// thread, never a netchan I/O worker): a handler may block, which holds up
/// only its own subscription (its queue then fills and the subscription's
/// overflow policy applies). One subscription's calls are made one at a
/// time, in message order. A thrown error is ignored (the next message
/// still comes).
#[uniffi::export(callback_interface)]
pub trait MessageHandler: Send + Sync {
    /// One message.
    fn on_message(&self, message: Message) -> Result<(), NetchanError>;
    /// The subscription ended (closed, or its endpoint closed). Called once,
    /// after the last `on_message`; never called for the temporary stop of
    /// `suspend()`.
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

/// What a subscription is: kept by the endpoint so that it can be moved to
/// a new set of links after `suspend()`/`resume()`.
pub(crate) struct SubState {
    pub id: u64,
    pub pattern: String,
    handler: Arc<dyn MessageHandler>,
    core: Mutex<Option<Arc<netchan::Subscription>>>,
    closed: AtomicBool,
    close_notified: AtomicBool,
    ep: Weak<Shared>,
}

impl SubState {
    pub fn new(
        id: u64,
        pattern: String,
        handler: Box<dyn MessageHandler>,
        ep: Weak<Shared>,
    ) -> Arc<SubState> {
        Arc::new(SubState {
            id,
            pattern,
            handler: Arc::from(handler),
            core: Mutex::new(None),
            closed: AtomicBool::new(false),
            close_notified: AtomicBool::new(false),
            ep,
        })
    }

    /// Subscribes on `core` and starts delivering from there; the previous
    /// core subscription (of a closed core endpoint) is forgotten.
    pub fn attach(
        self: &Arc<Self>,
        core: &netchan::Endpoint,
        rt: &tokio::runtime::Handle,
    ) -> Result<(), NetchanError> {
        let sub = Arc::new(core.subscribe(&self.pattern)?);
        *lock(&self.core) = Some(sub.clone());
        rt.spawn(deliver(self.clone(), sub));
        Ok(())
    }

    pub fn close(&self) {
        self.closed.store(true, SeqCst);
        if let Some(sub) = lock(&self.core).take() {
            // Ends the delivery loop, which then calls on_close.
            sub.close();
        }
        if let Some(ep) = self.ep.upgrade() {
            ep.forget_sub(self.id);
        }
    }

    fn notify_close(&self) {
        if !self.close_notified.swap(true, SeqCst) {
            let _ = self.handler.on_close();
        }
    }

    fn dropped(&self) -> u64 {
        lock(&self.core).as_ref().map_or(0, |s| s.dropped())
    }
}

/// One task per subscription keeps messages in order; the foreign handler
/// runs on the blocking pool so that it may block without stalling I/O.
async fn deliver(st: Arc<SubState>, sub: Arc<netchan::Subscription>) {
    let mut batch = Vec::with_capacity(256);
    loop {
        batch.clear();
        if sub.recv_many(&mut batch, 256).await == 0 {
            break;
        }
        let msgs: Vec<Message> = batch.drain(..).map(Message::from).collect();
        let st2 = st.clone();
        let ran = tokio::task::spawn_blocking(move || {
            for m in msgs {
                if st2.closed.load(SeqCst) {
                    break;
                }
                // A handler's error is its own business; keep delivering.
                let _ = st2.handler.on_message(m);
            }
        })
        .await;
        if ran.is_err() {
            // The runtime is shutting down.
            break;
        }
    }
    let ep_closed = st.ep.upgrade().is_none_or(|ep| ep.is_closed());
    if st.closed.load(SeqCst) || ep_closed {
        let st2 = st.clone();
        let _ = tokio::task::spawn_blocking(move || st2.notify_close()).await;
    }
    // Otherwise the endpoint replaced its links (suspend/network change)
    // and attached this subscription to the new ones.
}

/// A subscription: messages whose path matches its pattern go to its
/// handler. It survives `suspend()`/`resume()` and lasts until closed
/// (Kotlin: `cancel()`; Swift: `close()`) or its endpoint closes. Letting
/// go of the handle does not end it (a garbage collector must not decide
/// when a subscription stops): Kotlin's `close()` only frees the handle.
#[derive(uniffi::Object)]
pub struct Subscription {
    pub(crate) st: Arc<SubState>,
}

#[uniffi::export]
impl Subscription {
    /// The pattern.
    pub fn pattern(&self) -> String {
        self.st.pattern.clone()
    }

    /// Messages dropped so far by the overflow policy (since the last
    /// `suspend()`, which starts a fresh queue).
    pub fn dropped(&self) -> u64 {
        self.st.dropped()
    }

    /// True once closed (by `close()` or by the endpoint closing).
    pub fn is_closed(&self) -> bool {
        self.st.closed.load(SeqCst) || self.st.ep.upgrade().is_none_or(|e| e.is_closed())
    }

    /// Unsubscribes; the handler's `on_close` follows the last message.
    /// Idempotent.
    pub fn close(&self) {
        self.st.close()
    }
}

/// What a service is, kept for `resume()` like [`SubState`].
pub(crate) struct SvcState {
    pub id: u64,
    pub pattern: String,
    handler: Arc<dyn RequestHandler>,
    core: Mutex<Option<netchan::Service>>,
    closed: AtomicBool,
    ep: Weak<Shared>,
}

impl SvcState {
    pub fn new(
        id: u64,
        pattern: String,
        handler: Box<dyn RequestHandler>,
        ep: Weak<Shared>,
    ) -> Arc<SvcState> {
        Arc::new(SvcState {
            id,
            pattern,
            handler: Arc::from(handler),
            core: Mutex::new(None),
            closed: AtomicBool::new(false),
            ep,
        })
    }

    pub fn attach(self: &Arc<Self>, core: &netchan::Endpoint) -> Result<(), NetchanError> {
        let handler = self.handler.clone();
        let svc = core.serve_fn(&self.pattern, move |req: netchan::Request| {
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
                // (timeout, cancelled call, lost link, closed endpoint).
                // The blocking call cannot be interrupted, so the guard
                // tells it through `Request.cancel`; its reply is discarded.
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
        })?;
        *lock(&self.core) = Some(svc);
        Ok(())
    }

    pub fn close(&self) {
        self.closed.store(true, SeqCst);
        if let Some(svc) = lock(&self.core).take() {
            svc.close();
        }
        if let Some(ep) = self.ep.upgrade() {
            ep.forget_service(self.id);
        }
    }
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
    pub(crate) st: Arc<SvcState>,
}

#[uniffi::export]
impl Service {
    /// The served pattern.
    pub fn pattern(&self) -> String {
        self.st.pattern.clone()
    }

    /// Stops serving; requests in flight still get their reply. Idempotent.
    pub fn close(&self) {
        self.st.close()
    }
}

/// A publisher declaration, kept for `resume()`.
pub(crate) struct PubState {
    pub id: u64,
    pub pattern: String,
    core: Mutex<Option<netchan::Publisher>>,
    ep: Weak<Shared>,
}

impl PubState {
    pub fn new(id: u64, pattern: String, ep: Weak<Shared>) -> Arc<PubState> {
        Arc::new(PubState {
            id,
            pattern,
            core: Mutex::new(None),
            ep,
        })
    }

    pub fn attach(&self, core: &netchan::Endpoint) -> Result<(), NetchanError> {
        *lock(&self.core) = Some(core.declare_publisher(&self.pattern)?);
        Ok(())
    }

    pub fn close(&self) {
        lock(&self.core).take();
        if let Some(ep) = self.ep.upgrade() {
            ep.forget_publisher(self.id);
        }
    }
}

/// A declaration that this endpoint publishes on a pattern (discovery:
/// peers' `publishers()` list it). Close it (Kotlin: `cancel()`) to
/// withdraw; letting go of the handle does not.
#[derive(uniffi::Object)]
pub struct Publisher {
    pub(crate) st: Arc<PubState>,
}

#[uniffi::export]
impl Publisher {
    /// The declared pattern.
    pub fn pattern(&self) -> String {
        self.st.pattern.clone()
    }

    /// Withdraws the declaration. Idempotent.
    pub fn close(&self) {
        self.st.close()
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

/// The endpoint's events from the moment it was created by
/// `Endpoint.events()`; it spans `suspend()`/`resume()`.
#[derive(uniffi::Object)]
pub struct EventStream {
    rx: tokio::sync::Mutex<broadcast::Receiver<Event>>,
    closed: watch::Receiver<bool>,
}

impl EventStream {
    pub(crate) fn new(rx: broadcast::Receiver<Event>, closed: watch::Receiver<bool>) -> Self {
        EventStream {
            rx: tokio::sync::Mutex::new(rx),
            closed,
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
        let mut closed = self.closed.clone();
        loop {
            match rx.try_recv() {
                Ok(e) => return Some(e),
                Err(broadcast::error::TryRecvError::Lagged(n)) => {
                    return Some(Event::Missed { count: n })
                }
                Err(broadcast::error::TryRecvError::Closed) => return None,
                Err(broadcast::error::TryRecvError::Empty) => {}
            }
            if *closed.borrow() {
                return None;
            }
            tokio::select! {
                r = rx.recv() => match r {
                    Ok(e) => return Some(e),
                    Err(broadcast::error::RecvError::Lagged(n)) => return Some(Event::Missed { count: n }),
                    Err(broadcast::error::RecvError::Closed) => return None,
                },
                _ = closed.changed() => {}
            }
        }
    }
}
