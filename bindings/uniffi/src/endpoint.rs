//! The endpoint object: a thin layer over the core's [`netchan::Endpoint`].
//!
//! The app lifecycle (`suspend`, `resume`, `network_changed`) is the core's
//! own: this layer forwards it, so what the core keeps across a suspension
//! (subscriptions, services, declarations, the messages held for dialled
//! peers, every counter) is kept here too. The only state of this layer is
//! what a foreign handle needs and the core does not hold for it: the
//! services and publisher declarations whose handles were freed but not
//! cancelled ([`Held`]), and whether the endpoint is suspended.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use netchan::ErrorCode;
use tokio::runtime::Handle;
use tokio::task::AbortHandle;

use crate::error::NetchanError;
use crate::handles::{
    serve_with, CancelToken, EventStream, MessageHandler, Publisher, RequestHandler, Service,
};
use crate::stream::{Stream, StreamHandler, StreamOptions};
use crate::sub::Subscription;
use crate::types::{
    EndpointConfig, FailedAttempts, PeerInfo, RequestOptions, ServeOptions, Stats,
    SubscribeOptions, TlsSettings,
};

type Result<T, E = NetchanError> = std::result::Result<T, E>;

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The core services and publisher declarations an endpoint keeps for its
/// foreign handles, by id. The core ends one when its handle drops, while a
/// foreign handle may be freed (by a garbage collector) long before the
/// user cancels it; so the core handle is kept here, and only held, for its
/// `Drop`: cancelling drops its entry (which ends it), and closing the
/// endpoint drops them all (which lets go of their handlers).
#[derive(Default)]
pub(crate) struct Held {
    next_id: AtomicU64,
    kept: Mutex<HashMap<u64, Box<dyn Send>>>,
}

impl Held {
    pub(crate) fn keep(&self, core_handle: impl Send + 'static) -> u64 {
        let id = self.next_id.fetch_add(1, SeqCst);
        lock(&self.kept).insert(id, Box::new(core_handle));
        id
    }

    pub(crate) fn drop_one(&self, id: u64) {
        // Dropped outside the lock: a core drop withdraws the declaration.
        let k = lock(&self.kept).remove(&id);
        drop(k);
    }

    fn drop_all(&self) {
        let all = std::mem::take(&mut *lock(&self.kept));
        drop(all);
    }
}

/// Runs `fut` on the core's runtime and waits for it from any executor
/// (uniffi polls from the foreign side, outside any tokio context:
/// TOOLCHAINS U1). Dropping the returned future aborts the task, so a
/// cancelled Kotlin coroutine cancels its request at the server too.
pub(crate) async fn spawn_on<T, F>(rt: &Handle, fut: F) -> Result<T>
where
    F: Future<Output = Result<T>> + Send + 'static,
    T: Send + 'static,
{
    struct AbortOnDrop(AbortHandle);
    impl Drop for AbortOnDrop {
        fn drop(&mut self) {
            self.0.abort();
        }
    }
    let mut task = rt.spawn(fut);
    let _guard = AbortOnDrop(task.abort_handle());
    match (&mut task).await {
        Ok(r) => r,
        Err(e) if e.is_panic() => Err(NetchanError::new(
            ErrorCode::Internal,
            "netchan task panicked (a bug; please report it)",
        )),
        Err(_) => Err(NetchanError::new(
            ErrorCode::Closed,
            "netchan's runtime was shut down",
        )),
    }
}

/// What the endpoint object and its pending async calls share.
pub(crate) struct Inner {
    core: netchan::Endpoint,
    rt: Handle,
    held: Arc<Held>,
    /// Serialises `suspend` and `resume` so that `suspended` follows the
    /// order in which the core ran them (the core does not say whether it
    /// is suspended).
    lifecycle: tokio::sync::Mutex<()>,
    suspended: AtomicBool,
}

impl Inner {
    /// Runs `fut` on the core's runtime (see [`spawn_on`]).
    async fn spawn<T, F>(&self, fut: F) -> Result<T>
    where
        F: Future<Output = Result<T>> + Send + 'static,
        T: Send + 'static,
    {
        spawn_on(&self.rt, fut).await
    }

    async fn close(self: Arc<Self>) {
        self.core.close().await;
        // The core ended every service and declaration; letting go of them
        // lets go of their foreign handlers.
        self.held.drop_all();
    }
}

/// A netchan endpoint: connects to peers over TCP (`tcp://HOST:PORT`) and
/// Unix sockets (`unix:///path`), publishes and subscribes, serves and sends
/// requests.
///
/// Thread-safe: call it from any thread or coroutine. Async methods (Kotlin
/// `suspend`, Swift `async`) run on netchan's runtime. Kotlin: the object is
/// `AutoCloseable`, and `close()` (or `use {}`) closes the endpoint and
/// frees it; `shutdown()` closes it without freeing. Swift: `close()`.
#[derive(uniffi::Object)]
pub struct Endpoint {
    inner: Arc<Inner>,
}

impl Endpoint {
    fn create(config: netchan::Config) -> Result<Arc<Endpoint>> {
        let core = netchan::Endpoint::new(config)?;
        let rt = core.runtime().clone();
        Ok(Arc::new(Endpoint {
            inner: Arc::new(Inner {
                core,
                rt,
                held: Arc::default(),
                lifecycle: tokio::sync::Mutex::new(()),
                suspended: AtomicBool::new(false),
            }),
        }))
    }

    /// What an async method works with, in place of the endpoint object.
    /// uniffi hands each call its own reference to the object; a call that
    /// kept it until done would keep the endpoint open after Kotlin's
    /// `close()` freed the foreign handle (`Drop` closes the endpoint),
    /// and a pending request would end in `TIMEOUT` instead of `CLOSED`.
    fn inner(self: Arc<Self>) -> Arc<Inner> {
        self.inner.clone()
    }

    fn core(&self) -> &netchan::Endpoint {
        &self.inner.core
    }
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        let inner = self.inner.clone();
        if inner.core.is_closed() {
            return;
        }
        // Kotlin's close()/use {} and Swift's deinit land here: close now,
        // through the core's way in from plain threads, or, on a netchan
        // thread (which must not wait on its own runtime), in a task. The
        // runtime may already be shut down (the core then says CLOSED).
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
            let blocker = inner.core.blocker().clone();
            let closing = inner.clone().close();
            if let Err(e) = blocker.block_on_timeout(closing, Some(Duration::from_secs(5))) {
                if e.code() == ErrorCode::WouldDeadlock {
                    inner.rt.spawn(inner.clone().close());
                }
            }
        }));
    }
}

#[uniffi::export]
impl Endpoint {
    /// Creates an endpoint with the default configuration, named `name` (or
    /// a random name).
    ///
    /// Errors: `INVALID_ARGUMENT` (bad name).
    #[uniffi::constructor(default(name = None))]
    pub fn new(name: Option<String>) -> Result<Arc<Endpoint>> {
        let mut c = netchan::Config::default();
        c.name = name;
        c.validate()?;
        Endpoint::create(c)
    }

    /// Creates an endpoint from a configuration.
    ///
    /// Errors: `INVALID_ARGUMENT` naming the bad field.
    #[uniffi::constructor]
    pub fn with_config(config: EndpointConfig) -> Result<Arc<Endpoint>> {
        Endpoint::create(config.to_core()?)
    }

    /// The endpoint's name.
    pub fn name(&self) -> String {
        self.core().name().to_string()
    }

    /// Listens on `addr` (`tcp://HOST:PORT`, port 0 picks a free port, or
    /// `unix:///path`) and returns the bound address. `resume()` listens
    /// there again.
    ///
    /// Errors: `INVALID_ADDRESS`, `ADDRESS_IN_USE`, `CLOSED`.
    pub async fn listen(self: Arc<Self>, addr: String) -> Result<String> {
        let ep = self.inner();
        let core = ep.core.clone();
        ep.spawn(async move { Ok(core.listen(&addr).await?) }).await
    }

    /// Connects to the endpoint at `addr`; returns once the handshake is
    /// done and the peer's services are known. The address stays connected
    /// (redialled with backoff after a loss) and `resume()` dials it again.
    ///
    /// Errors: `INVALID_ADDRESS`, `CONNECT_REFUSED`, `TIMEOUT`,
    /// `UNSUPPORTED_VERSION`, `HANDSHAKE_REJECTED`, `NAME_IN_USE`,
    /// `OVERLOADED`, `PROTOCOL_ERROR`, `CLOSED`.
    pub async fn connect(self: Arc<Self>, addr: String) -> Result<PeerInfo> {
        let ep = self.inner();
        let core = ep.core.clone();
        let peer = ep
            .spawn(async move { Ok(core.connect(&addr).await?) })
            .await?;
        Ok(peer.into())
    }

    /// Redials every lost peer now, skipping the backoff delay
    /// (`network_changed()` also drops the links that look alive).
    pub fn reconnect_now(&self) {
        self.core().reconnect_now()
    }

    /// Publishes `payload` on `path` to every matching subscriber, local
    /// and remote. Waits while a peer's send buffer or a local subscription
    /// queue is full, up to the send timeout. While a dialled peer is away
    /// (lost, or this endpoint suspended), messages for it are held (up to
    /// `offline_buffer` bytes) and sent first when it is back.
    ///
    /// Errors: `INVALID_PATH`, `MESSAGE_TOO_LARGE`, `BUFFER_FULL`, `CLOSED`.
    pub async fn publish(self: Arc<Self>, path: String, payload: Vec<u8>) -> Result<()> {
        let ep = self.inner();
        let core = ep.core.clone();
        ep.spawn(async move { Ok(core.publish(&path, payload).await?) })
            .await
    }

    /// Publishes every payload of `payloads` on `path`, in order, in one
    /// call; returns how many. Stops at the first error (those before it
    /// were published).
    ///
    /// Errors: as `publish`.
    pub async fn publish_many(
        self: Arc<Self>,
        path: String,
        payloads: Vec<Vec<u8>>,
    ) -> Result<u32> {
        let ep = self.inner();
        let core = ep.core.clone();
        ep.spawn(async move {
            let n = payloads.len() as u32;
            for p in payloads {
                core.publish(&path, p).await?;
            }
            Ok(n)
        })
        .await
    }

    /// `publish` for a thread that may block (a plain Java or Kotlin
    /// thread, Swift code outside any task): returns at once when every
    /// target has room (the usual case), else waits as `publish` does. It
    /// waits through the core's one way in from plain threads
    /// ([`netchan::blocking::Blocker`]: it busy-polls for `busy_poll_us`, then parks).
    ///
    /// Errors: as `publish`; `WOULD_DEADLOCK` on a netchan thread (inside
    /// a handler: use `try_publish` there).
    pub fn publish_blocking(&self, path: String, payload: Vec<u8>) -> Result<()> {
        Ok(self.core().publish_blocking(&path, payload)?)
    }

    /// `request` for a thread that may block, through the core's way in
    /// from plain threads (see `publish_blocking`).
    ///
    /// The call holds the endpoint object until it returns: Kotlin's
    /// `close()` then frees it (and closes the endpoint) only after that;
    /// `shutdown()` from another thread fails it with `CLOSED` at once.
    ///
    /// Errors: as `request`; `WOULD_DEADLOCK` on a netchan thread.
    pub fn request_blocking(
        &self,
        path: String,
        payload: Vec<u8>,
        timeout: Duration,
    ) -> Result<Vec<u8>> {
        Ok(self
            .core()
            .request_blocking(&path, payload, timeout)?
            .to_vec())
    }

    /// Like `publish` but never waits: a target without room is skipped
    /// (counted as a drop) and the call fails with `BUFFER_FULL`.
    pub fn try_publish(&self, path: String, payload: Vec<u8>) -> Result<()> {
        Ok(self.core().try_publish(&path, payload)?)
    }

    /// Subscribes to `pattern` (`*` matches one segment, `**` any number).
    ///
    /// With a `handler`, it gets every matching message (see
    /// `MessageHandler` for the threads) and the subscription lasts until
    /// cancelled or the endpoint closes. Without one, take the messages
    /// with `recv`, `recv_many` or `try_recv_many`; the subscription then
    /// also ends when its handle is freed (nothing could take them). Either
    /// way it survives `suspend()`/`resume()`.
    ///
    /// Errors: `INVALID_PATH`, `CLOSED`.
    #[uniffi::method(default(handler = None))]
    pub fn subscribe(
        &self,
        pattern: String,
        handler: Option<Box<dyn MessageHandler>>,
    ) -> Result<Arc<Subscription>> {
        let core = self.core().subscribe(&pattern)?;
        Ok(Subscription::start(
            core,
            self.core().clone(),
            handler,
            &self.inner.rt,
        ))
    }

    /// `subscribe` with the subscription's own queue bound and overflow
    /// policy (per subscription: a `Block` one holds back only the
    /// publishers of its own messages; a `Disconnect` one cuts a publisher
    /// that waited for it in vain).
    ///
    /// Errors: `INVALID_PATH`, `INVALID_ARGUMENT` (a zero bound), `CLOSED`.
    #[uniffi::method(default(handler = None))]
    pub fn subscribe_with(
        &self,
        pattern: String,
        options: SubscribeOptions,
        handler: Option<Box<dyn MessageHandler>>,
    ) -> Result<Arc<Subscription>> {
        let opts = options.to_core(&self.core().config().subscribe)?;
        let core = self.core().subscribe_with(&pattern, opts)?;
        Ok(Subscription::start(
            core,
            self.core().clone(),
            handler,
            &self.inner.rt,
        ))
    }

    /// Serves `pattern`: `handler` answers matching requests (see
    /// `RequestHandler`). Lasts until cancelled or the endpoint closes, and
    /// survives `suspend()`/`resume()`.
    ///
    /// Errors: `INVALID_PATH`, `CLOSED`.
    pub fn serve(&self, pattern: String, handler: Box<dyn RequestHandler>) -> Result<Arc<Service>> {
        self.serve_bounded(pattern, ServeOptions::default(), handler)
    }

    /// `serve` with bounds: at most `max_concurrent` requests in the
    /// handler at once, `queue` waiting; past that a request is refused
    /// with `BUFFER_FULL` and counted.
    ///
    /// Errors: `INVALID_PATH`, `INVALID_ARGUMENT` (a zero bound), `CLOSED`.
    pub fn serve_bounded(
        &self,
        pattern: String,
        options: ServeOptions,
        handler: Box<dyn RequestHandler>,
    ) -> Result<Arc<Service>> {
        let svc = serve_with(self.core(), &pattern, options.into(), Arc::from(handler))?;
        let id = self.inner.held.keep(svc);
        Ok(Arc::new(Service::new(id, pattern, self.inner.held.clone())))
    }

    /// Serves `pattern` for pulling: its requests wait (at most
    /// `options.queue`, the rest refused with `BUFFER_FULL`) until the
    /// returned queue's `recv` or `try_recv` takes them. Unlike `serve`,
    /// the service also ends when the queue's handle is freed (nothing
    /// could take its requests then).
    ///
    /// Errors: `INVALID_PATH`, `INVALID_ARGUMENT` (a zero bound), `CLOSED`.
    #[uniffi::method(default(options = None))]
    pub fn serve_pull(
        &self,
        pattern: String,
        options: Option<ServeOptions>,
    ) -> Result<Arc<crate::pull::RequestQueue>> {
        let opts = options.map(Into::into).unwrap_or_default();
        let svc = self.core().serve_with(&pattern, opts)?;
        Ok(Arc::new(crate::pull::RequestQueue::new(svc)))
    }

    /// Opens a bidirectional stream on `path` to one endpoint serving
    /// streams there (a local stream service first, else a connected peer,
    /// in turn), with `first` as its first payload; returns once a server
    /// takes it.
    ///
    /// Errors: `INVALID_PATH`, `INVALID_ARGUMENT`, `NO_RESPONDERS`,
    /// `BUFFER_FULL`, `TIMEOUT`, `PEER_LOST`, `MESSAGE_TOO_LARGE`, `CLOSED`.
    #[uniffi::method(default(options = None))]
    pub async fn open_stream(
        self: Arc<Self>,
        path: String,
        first: Vec<u8>,
        options: Option<StreamOptions>,
    ) -> Result<Arc<Stream>> {
        let ep = self.inner();
        let (core, rt) = (ep.core.clone(), ep.rt.clone());
        let opts = options.unwrap_or_default().into();
        ep.spawn(async move {
            let s = core.open_stream_with(&path, first, opts).await?;
            Ok(Stream::new(s, rt))
        })
        .await
    }

    /// Serves streams on `pattern`: `handler` handles each (see
    /// `StreamHandler`), at most `options.maxConcurrent` at once,
    /// `options.queue` waiting (the rest refused with `BUFFER_FULL`).
    /// Lasts until cancelled or the endpoint closes.
    ///
    /// Errors: `INVALID_PATH`, `INVALID_ARGUMENT`, `CLOSED`.
    pub fn serve_stream(
        &self,
        pattern: String,
        options: ServeOptions,
        handler: Box<dyn StreamHandler>,
    ) -> Result<Arc<Service>> {
        let svc = crate::stream::serve(self.core(), &pattern, options.into(), Arc::from(handler))?;
        let id = self.inner.held.keep(svc);
        Ok(Arc::new(Service::new(id, pattern, self.inner.held.clone())))
    }

    /// Serves streams on `pattern` for pulling: opened streams wait (at
    /// most `options.queue`) until the returned queue's `recv` or
    /// `try_recv` takes them; the taker owns each stream. The service also
    /// ends when the queue's handle is freed.
    ///
    /// Errors: `INVALID_PATH`, `INVALID_ARGUMENT`, `CLOSED`.
    #[uniffi::method(default(options = None))]
    pub fn serve_stream_pull(
        &self,
        pattern: String,
        options: Option<ServeOptions>,
    ) -> Result<Arc<crate::pull::StreamQueue>> {
        let opts = options.map(Into::into).unwrap_or_default();
        let svc = self.core().serve_stream_with(&pattern, opts)?;
        Ok(Arc::new(crate::pull::StreamQueue::new(
            svc,
            self.inner.rt.clone(),
        )))
    }

    /// Names of the endpoints serving streams on something that overlaps
    /// `pattern`.
    pub fn stream_servers(&self, pattern: String) -> Result<Vec<String>> {
        Ok(self.core().stream_servers(&pattern)?)
    }

    /// Declares that this endpoint publishes on `pattern` (discovery). Lasts
    /// until cancelled or the endpoint closes.
    ///
    /// Errors: `INVALID_PATH`, `CLOSED`.
    pub fn declare_publisher(&self, pattern: String) -> Result<Arc<Publisher>> {
        let decl = Arc::new(self.core().declare_publisher(&pattern)?);
        let weak = Arc::downgrade(&decl);
        let id = self.inner.held.keep(decl);
        Ok(Arc::new(Publisher::new(
            id,
            pattern,
            self.inner.held.clone(),
            weak,
            self.inner.rt.clone(),
        )))
    }

    /// Sends a request to one endpoint serving `path` and waits up to
    /// `timeout` for the reply. Cancelling the call (a Kotlin coroutine)
    /// cancels the request at the server. Swift task cancellation does not
    /// reach uniffi calls: cancel with `request_with` and a `CancelToken`.
    ///
    /// Errors: `INVALID_PATH`, `INVALID_ARGUMENT` (zero timeout),
    /// `NO_RESPONDERS`, `TIMEOUT`, `PEER_LOST`, `BUFFER_FULL`,
    /// `MESSAGE_TOO_LARGE`, `CLOSED`, or the code the handler failed with.
    pub async fn request(
        self: Arc<Self>,
        path: String,
        payload: Vec<u8>,
        timeout: Duration,
    ) -> Result<Vec<u8>> {
        let ep = self.inner();
        let core = ep.core.clone();
        ep.spawn(async move { Ok(core.request(&path, payload, timeout).await?.to_vec()) })
            .await
    }

    /// `request` with options: wait for a responder to appear, and a
    /// `CancelToken` to cancel it explicitly (then `CANCELLED`).
    pub async fn request_with(
        self: Arc<Self>,
        path: String,
        payload: Vec<u8>,
        options: RequestOptions,
    ) -> Result<Vec<u8>> {
        let ep = self.inner();
        let core = ep.core.clone();
        let mut opts = netchan::RequestOptions::timeout(options.timeout);
        if options.wait_for_responder {
            opts = opts.wait_for_responder();
        }
        let cancel: Option<Arc<CancelToken>> = options.cancel;
        ep.spawn(async move {
            let fut = core.request_with(&path, payload, opts);
            match cancel {
                None => Ok(fut.await?.to_vec()),
                Some(c) => tokio::select! {
                    r = fut => Ok(r?.to_vec()),
                    _ = c.cancelled() => Err(NetchanError::new(
                        ErrorCode::Cancelled,
                        "the request was cancelled by its CancelToken",
                    )),
                },
            }
        })
        .await
    }

    /// Measures the round-trip time to the connected peer named `peer`.
    ///
    /// Errors: `UNKNOWN_PEER`, `TIMEOUT`, `PEER_LOST`, `CLOSED`.
    pub async fn ping(self: Arc<Self>, peer: String) -> Result<Duration> {
        let ep = self.inner();
        let core = ep.core.clone();
        ep.spawn(async move { Ok(core.ping(&peer).await?) }).await
    }

    /// The connected peers.
    pub fn peers(&self) -> Vec<PeerInfo> {
        self.core().peers().into_iter().map(Into::into).collect()
    }

    /// Replaces the access rules (docs/SECURITY.md, "Access rules"): a
    /// rules file's path or the rules' text; `null` (or empty) removes
    /// them. They take effect at once, on existing links too; on an error
    /// the rules in use stay. Never blocks.
    pub fn set_acl(&self, rules: Option<String>) -> Result<()> {
        let src = netchan::AclSource::from_setting(rules.as_deref().unwrap_or(""));
        Ok(self.core().set_acl(src)?)
    }

    /// Reads the TLS files, the shared key file and the rules file again;
    /// on an error everything in use stays. Never blocks.
    pub fn reload_keys(&self) -> Result<()> {
        Ok(self.core().reload_keys()?)
    }

    /// Replaces the TLS settings (`null`/`nil` removes them): connections
    /// made from now on use the new ones; existing ones keep theirs.
    /// Checked first: on an error the settings in use stay. Never blocks.
    ///
    /// Errors: `INVALID_ARGUMENT` naming the setting or file at fault.
    pub fn set_tls(&self, tls: Option<TlsSettings>) -> Result<()> {
        let mut c = netchan::Config::default();
        if let Some(t) = tls {
            t.apply(&mut c)?;
        }
        Ok(self.core().set_tls(c.tls)?)
    }

    /// Replaces the shared keys: a key file's path (`netchan keygen`) or
    /// the keys' text, as the `psk` setting takes it; `null`/`nil` (or
    /// empty) removes them. `tcp://` links made from now on prove the new
    /// keys; on an error the keys in use stay. Never blocks.
    ///
    /// Errors: `INVALID_ARGUMENT` naming the file or line at fault.
    pub fn set_shared_keys(&self, keys: Option<String>) -> Result<()> {
        let keys = keys
            .filter(|k| !k.trim().is_empty())
            .map(|k| netchan::KeySource::parse(&k));
        Ok(self.core().set_shared_keys(keys)?)
    }

    /// Failed connection attempts per remote address (without its port),
    /// most first.
    pub fn failed_attempts(&self) -> Vec<FailedAttempts> {
        self.core()
            .failed_attempts()
            .into_iter()
            .map(|(addr, count)| FailedAttempts { addr, count })
            .collect()
    }

    /// True if a message published on `path` now would reach a subscriber.
    pub fn has_subscribers(&self, path: String) -> Result<bool> {
        Ok(self.core().has_subscribers(&path)?)
    }

    /// Waits up to `timeout` until `path` has a subscriber; returns whether
    /// one appeared.
    pub async fn wait_for_subscribers(
        self: Arc<Self>,
        path: String,
        timeout: Duration,
    ) -> Result<bool> {
        let ep = self.inner();
        let core = ep.core.clone();
        ep.spawn(async move { Ok(core.wait_for_subscribers(&path, timeout).await?) })
            .await
    }

    /// True if a request on `path` now would find a server.
    pub fn has_servers(&self, path: String) -> Result<bool> {
        Ok(self.core().has_servers(&path)?)
    }

    /// Waits up to `timeout` until a request on `path` would find a server.
    pub async fn wait_for_servers(
        self: Arc<Self>,
        path: String,
        timeout: Duration,
    ) -> Result<bool> {
        let ep = self.inner();
        let core = ep.core.clone();
        ep.spawn(async move { Ok(core.wait_for_servers(&path, timeout).await?) })
            .await
    }

    /// Names of the endpoints subscribed to something overlapping `pattern`.
    pub fn subscribers(&self, pattern: String) -> Result<Vec<String>> {
        Ok(self.core().subscribers(&pattern)?)
    }

    /// Names of the endpoints that declared a publisher overlapping `pattern`.
    pub fn publishers(&self, pattern: String) -> Result<Vec<String>> {
        Ok(self.core().publishers(&pattern)?)
    }

    /// Names of the endpoints serving something overlapping `pattern`.
    pub fn servers(&self, pattern: String) -> Result<Vec<String>> {
        Ok(self.core().servers(&pattern)?)
    }

    /// Counters in total and per peer, and per-subscription queue figures.
    /// They go on across `suspend()`/`resume()`.
    pub fn stats(&self) -> Stats {
        self.core().stats().into()
    }

    /// A stream of connection, drop and lifecycle events from now on.
    pub fn events(&self) -> Arc<EventStream> {
        Arc::new(EventStream::new(self.core().events()))
    }

    /// The app goes to the background: closes every link and listener
    /// (peers see an orderly close, code `CLOSED`) and keeps everything
    /// else: subscriptions, services and declarations stay, local
    /// publish/subscribe works, messages for dialled peers are held (the
    /// offline buffer) and counters go on; requests to peers fail with
    /// `NO_RESPONDERS` (or wait, with `wait_for_responder`). Emits
    /// `Suspended`. Idempotent.
    ///
    /// Errors: `CLOSED`.
    pub async fn suspend(self: Arc<Self>) -> Result<()> {
        let ep = self.inner();
        let e = ep.clone();
        ep.spawn(async move {
            let _one = e.lifecycle.lock().await;
            e.core.suspend().await?;
            e.suspended.store(true, SeqCst);
            Ok(())
        })
        .await
    }

    /// The app is back: listens again on every address it listened on and
    /// dials every address it connected to, at once (no backoff); peers get
    /// every subscription, service and declaration again, and the held
    /// messages first. Returns after the first dial attempt of each address;
    /// failed ones keep being redialled with backoff. Emits `Resumed`. Does
    /// nothing unless suspended.
    ///
    /// Errors: `CLOSED`; `ADDRESS_IN_USE` if a listen address was taken
    /// meanwhile (the rest is restored anyway).
    pub async fn resume(self: Arc<Self>) -> Result<()> {
        let ep = self.inner();
        let e = ep.clone();
        ep.spawn(async move {
            let _one = e.lifecycle.lock().await;
            let r = e.core.resume().await;
            // Resumed even when a listen address was taken; only a closed
            // endpoint fails before resuming, and then nothing matters.
            e.suspended.store(false, SeqCst);
            Ok(r?)
        })
        .await
    }

    /// The network changed (new Wi-Fi, cellular handover): links over the
    /// old interface may be dead without knowing it, so every link is
    /// dropped (`PeerDown` with `PEER_LOST`) and every address this
    /// endpoint connected to is dialled again now, skipping the backoff
    /// (`PeerUp` when back). While suspended it does nothing (`resume()`
    /// will dial).
    ///
    /// Errors: `CLOSED`.
    pub async fn network_changed(self: Arc<Self>) -> Result<()> {
        let ep = self.inner();
        let core = ep.core.clone();
        ep.spawn(async move { Ok(core.network_changed().await?) })
            .await
    }

    /// True between `suspend()` and `resume()`.
    pub fn is_suspended(&self) -> bool {
        self.inner.suspended.load(SeqCst)
    }

    /// Closes the endpoint: tells every peer, fails pending requests with
    /// `CLOSED`, ends every subscription (handlers get `on_close`) and
    /// service, and lets go of every handler. Idempotent. Kotlin names it
    /// `shutdown()` (its `close()` is `AutoCloseable`'s, which also closes
    /// and then frees the object).
    pub async fn close(self: Arc<Self>) {
        let ep = self.inner();
        let e = ep.clone();
        let _ = ep
            .spawn(async move {
                e.close().await;
                Ok(())
            })
            .await;
    }

    /// True once closed.
    pub fn is_closed(&self) -> bool {
        self.core().is_closed()
    }
}
