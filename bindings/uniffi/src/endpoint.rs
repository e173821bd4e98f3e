//! The endpoint object and the app lifecycle.
//!
//! The core keeps a dialled address connected and restores declarations
//! after a reconnection, but it has no way to drop every link on purpose
//! and keep the rest. This layer does it by remembering what the user asked
//! for (listen and dial addresses, subscriptions, services, publisher
//! declarations) and, on `suspend()`, replacing the core endpoint with a
//! fresh one of the same name and configuration that carries the same
//! subscriptions and services but no link; `resume()` listens and dials
//! again. Local publish/subscribe keeps working while suspended.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use netchan::ErrorCode;
use tokio::runtime::Handle;
use tokio::sync::{broadcast, oneshot, watch};
use tokio::task::AbortHandle;

use crate::error::NetchanError;
use crate::handles::{
    CancelToken, EventStream, MessageHandler, PubState, Publisher, RequestHandler, Service,
    SubState, Subscription, SvcState,
};
use crate::types::{EndpointConfig, Event, PeerInfo, RequestOptions, Stats};

type Result<T, E = NetchanError> = std::result::Result<T, E>;

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Everything that must survive a change of core endpoint.
#[derive(Default)]
struct Registry {
    /// Bound addresses (port 0 resolved), listened on again by `resume()`.
    listens: Vec<String>,
    /// Addresses `connect` succeeded on, dialled again by `resume()`.
    dials: Vec<String>,
    subs: HashMap<u64, Arc<SubState>>,
    services: HashMap<u64, Arc<SvcState>>,
    publishers: HashMap<u64, Arc<PubState>>,
    /// Tasks dialling after a `resume()`, aborted by the next change.
    redials: Vec<AbortHandle>,
}

pub(crate) struct Shared {
    me: Weak<Shared>,
    rt: Handle,
    config: netchan::Config,
    /// The current core endpoint; replaced by `suspend()` and
    /// `network_changed()`. Lock order: `reg` before `core`.
    core: Mutex<netchan::Endpoint>,
    reg: Mutex<Registry>,
    /// Serialises suspend, resume, network_changed and close.
    lifecycle: tokio::sync::Mutex<()>,
    closed: AtomicBool,
    closed_tx: watch::Sender<bool>,
    suspended: AtomicBool,
    events: broadcast::Sender<Event>,
    next_id: AtomicU64,
}

impl Shared {
    fn core(&self) -> netchan::Endpoint {
        lock(&self.core).clone()
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(SeqCst)
    }

    fn check_open(&self) -> Result<()> {
        if self.is_closed() {
            Err(NetchanError::closed())
        } else {
            Ok(())
        }
    }

    pub(crate) fn forget_sub(&self, id: u64) {
        lock(&self.reg).subs.remove(&id);
    }

    pub(crate) fn forget_service(&self, id: u64) {
        lock(&self.reg).services.remove(&id);
    }

    pub(crate) fn forget_publisher(&self, id: u64) {
        lock(&self.reg).publishers.remove(&id);
    }

    fn emit(&self, e: Event) {
        let _ = self.events.send(e);
    }

    /// Forwards a core endpoint's events to the endpoint's own stream,
    /// which outlives core endpoints.
    fn forward_events(&self, core: &netchan::Endpoint) {
        let mut rx = core.events();
        let tx = self.events.clone();
        let mut closed = self.closed_tx.subscribe();
        self.rt.spawn(async move {
            loop {
                tokio::select! {
                    r = rx.recv() => match r {
                        netchan::EventRecv::Event(e) => {
                            if let Some(e) = Event::from_core(e) {
                                let _ = tx.send(e);
                            }
                        }
                        netchan::EventRecv::Missed(n) => {
                            let _ = tx.send(Event::Missed { count: n });
                        }
                        netchan::EventRecv::Closed => break,
                        #[allow(unreachable_patterns)]
                        _ => {}
                    },
                    _ = closed.wait_for(|c| *c) => break,
                }
            }
        });
    }

    /// Runs `fut` on the core's runtime and waits for it from any executor.
    /// Dropping the returned future aborts the task (so a cancelled Kotlin
    /// coroutine cancels its request at the server too).
    async fn spawn<T, F>(&self, fut: F) -> Result<T>
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
        let mut task = self.rt.spawn(fut);
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

    /// Replaces the core endpoint by a fresh one carrying the same
    /// subscriptions, services and declarations but no link, and closes the
    /// old one (peers see an orderly close). With `reconnect`, listens and
    /// dials again at once. Caller holds `lifecycle`.
    async fn replace_core(self: &Arc<Self>, reconnect: bool) -> Result<()> {
        let old = {
            let mut reg = lock(&self.reg);
            for t in reg.redials.drain(..) {
                t.abort();
            }
            let fresh = netchan::Endpoint::new(self.config.clone())?;
            self.forward_events(&fresh);
            for s in reg.subs.values() {
                s.attach(&fresh, &self.rt)?;
            }
            for s in reg.services.values() {
                s.attach(&fresh)?;
            }
            for p in reg.publishers.values() {
                p.attach(&fresh)?;
            }
            std::mem::replace(&mut *lock(&self.core), fresh)
        };
        let me = self.clone();
        self.spawn(async move {
            old.close().await;
            if reconnect {
                me.reconnect().await
            } else {
                Ok(())
            }
        })
        .await
    }

    /// Listens on the remembered addresses and dials the remembered peers;
    /// returns after the first dial attempt of each (dialling goes on in the
    /// background with backoff). The first listen error is returned.
    async fn reconnect(self: &Arc<Self>) -> Result<()> {
        let core = self.core();
        let (listens, dials) = {
            let reg = lock(&self.reg);
            (reg.listens.clone(), reg.dials.clone())
        };
        let mut first_err = None;
        for addr in listens {
            if let Err(e) = listen_again(&core, &addr).await {
                first_err.get_or_insert(e);
            }
        }
        let mut firsts = Vec::new();
        for addr in dials {
            let (tx, rx) = oneshot::channel();
            let t = self.rt.spawn(dial_until_connected(
                core.clone(),
                addr,
                self.config.reconnect.clone(),
                tx,
            ));
            lock(&self.reg).redials.push(t.abort_handle());
            firsts.push(rx);
        }
        for rx in firsts {
            let _ = rx.await;
        }
        first_err.map_or(Ok(()), Err)
    }

    async fn close(self: Arc<Self>) {
        let _life = self.lifecycle.lock().await;
        if self.closed.swap(true, SeqCst) {
            return;
        }
        let (subs, services, publishers) = {
            let mut reg = lock(&self.reg);
            for t in reg.redials.drain(..) {
                t.abort();
            }
            (
                std::mem::take(&mut reg.subs),
                std::mem::take(&mut reg.services),
                std::mem::take(&mut reg.publishers),
            )
        };
        let core = self.core();
        core.close().await;
        // The core closed every subscription; closing ours too marks them
        // for `on_close` and lets go of the foreign handlers.
        for s in subs.values() {
            s.close();
        }
        for s in services.values() {
            s.close();
        }
        for p in publishers.values() {
            p.close();
        }
        let _ = self.closed_tx.send(true);
    }
}

/// Listens on an address a previous core endpoint had; the old listener
/// may take a moment to let go of it.
async fn listen_again(core: &netchan::Endpoint, addr: &str) -> Result<()> {
    let mut delay = Duration::from_millis(10);
    for _ in 0..12 {
        match core.listen(addr).await {
            Ok(_) => return Ok(()),
            Err(e) if e.code() == ErrorCode::AddressInUse => {
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_millis(500));
            }
            Err(e) => return Err(e.into()),
        }
    }
    core.listen(addr).await.map(|_| ()).map_err(Into::into)
}

/// Dials `addr` until connected (the core then keeps it connected), with
/// the configured backoff; stops on a permanent failure or a closed
/// endpoint. `first` is told after the first attempt.
async fn dial_until_connected(
    core: netchan::Endpoint,
    addr: String,
    policy: netchan::Reconnect,
    first: oneshot::Sender<()>,
) {
    let mut first = Some(first);
    let mut delay = policy.min_delay;
    loop {
        let r = core.connect(&addr).await;
        if let Some(f) = first.take() {
            let _ = f.send(());
        }
        match r {
            Ok(_) => return,
            Err(e) => match e.code() {
                ErrorCode::Closed
                | ErrorCode::InvalidAddress
                | ErrorCode::UnsupportedVersion
                | ErrorCode::ProtocolError
                | ErrorCode::HandshakeRejected => return,
                _ if !policy.enabled => return,
                _ => {}
            },
        }
        tokio::time::sleep(delay).await;
        delay = delay.mul_f64(policy.factor).min(policy.max_delay);
    }
}

fn runtime_of(ep: &netchan::Endpoint) -> Result<Handle> {
    if let Ok(h) = Handle::try_current() {
        return Ok(h);
    }
    Ok(ep.block_on(async { Handle::current() })?)
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
    sh: Arc<Shared>,
}

impl Endpoint {
    fn create(config: netchan::Config) -> Result<Arc<Endpoint>> {
        let core = netchan::Endpoint::new(config.clone())?;
        let rt = runtime_of(&core)?;
        let (events, _) = broadcast::channel(1024);
        let (closed_tx, _) = watch::channel(false);
        let sh = Arc::new_cyclic(|me| Shared {
            me: me.clone(),
            rt,
            config,
            core: Mutex::new(core.clone()),
            reg: Mutex::new(Registry::default()),
            lifecycle: tokio::sync::Mutex::new(()),
            closed: AtomicBool::new(false),
            closed_tx,
            suspended: AtomicBool::new(false),
            events,
            next_id: AtomicU64::new(1),
        });
        sh.forward_events(&core);
        Ok(Arc::new(Endpoint { sh }))
    }

    fn next_id(&self) -> u64 {
        self.sh.next_id.fetch_add(1, SeqCst)
    }

    /// What an async method works with, in place of the endpoint object.
    /// uniffi hands each call its own reference to the object; a call that
    /// kept it until done would keep the endpoint open after Kotlin's
    /// `close()` freed the foreign handle (`Drop` closes the endpoint),
    /// and a pending request would end in `TIMEOUT` instead of `CLOSED`.
    fn shared(self: Arc<Self>) -> Arc<Shared> {
        self.sh.clone()
    }
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        if self.sh.is_closed() {
            return;
        }
        let sh = self.sh.clone();
        let rt = self.sh.rt.clone();
        // Kotlin's close()/use {} and Swift's deinit land here: close now,
        // waiting for it unless this is a netchan thread (which must not
        // block on its own runtime). The runtime may already be shut down.
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
            if netchan::runtime::in_async_context() {
                rt.spawn(sh.close());
            } else {
                rt.block_on(async move {
                    let _ = tokio::time::timeout(Duration::from_secs(5), sh.close()).await;
                });
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
        self.sh.core().name().to_string()
    }

    /// Listens on `addr` (`tcp://HOST:PORT`, port 0 picks a free port, or
    /// `unix:///path`) and returns the bound address. `resume()` listens
    /// there again.
    ///
    /// Errors: `INVALID_ADDRESS`, `ADDRESS_IN_USE`, `CLOSED`.
    pub async fn listen(self: Arc<Self>, addr: String) -> Result<String> {
        let sh = self.shared();
        sh.check_open()?;
        let core = sh.core();
        let bound = sh
            .spawn(async move { Ok(core.listen(&addr).await?) })
            .await?;
        lock(&sh.reg).listens.push(bound.clone());
        Ok(bound)
    }

    /// Connects to the endpoint at `addr`; returns once the handshake is
    /// done and the peer's services are known. The address stays connected
    /// (redialled with backoff after a loss) and `resume()` dials it again.
    ///
    /// Errors: `INVALID_ADDRESS`, `CONNECT_REFUSED`, `TIMEOUT`,
    /// `UNSUPPORTED_VERSION`, `HANDSHAKE_REJECTED`, `NAME_IN_USE`, `CLOSED`.
    pub async fn connect(self: Arc<Self>, addr: String) -> Result<PeerInfo> {
        let sh = self.shared();
        sh.check_open()?;
        let core = sh.core();
        let a = addr.clone();
        let peer = sh.spawn(async move { Ok(core.connect(&a).await?) }).await?;
        let mut reg = lock(&sh.reg);
        if !reg.dials.contains(&addr) {
            reg.dials.push(addr);
        }
        Ok(peer.into())
    }

    /// Redials every lost peer now, skipping the backoff delay.
    pub fn reconnect_now(&self) {
        self.sh.core().reconnect_now()
    }

    /// Publishes `payload` on `path` to every matching subscriber, local
    /// and remote. Waits while a peer's send buffer is full, up to the
    /// send timeout.
    ///
    /// Errors: `INVALID_PATH`, `MESSAGE_TOO_LARGE`, `BUFFER_FULL`, `CLOSED`.
    pub async fn publish(self: Arc<Self>, path: String, payload: Vec<u8>) -> Result<()> {
        let sh = self.shared();
        let core = sh.core();
        sh.spawn(async move { Ok(core.publish(&path, payload).await?) })
            .await
    }

    /// Like `publish` but never waits: a target without room is skipped
    /// and the call fails with `BUFFER_FULL`.
    pub fn try_publish(&self, path: String, payload: Vec<u8>) -> Result<()> {
        Ok(self.sh.core().try_publish(&path, payload)?)
    }

    /// Subscribes to `pattern` (`*` matches one segment, `**` any number);
    /// `handler` gets every matching message (see `MessageHandler` for the
    /// threads). The subscription lasts until closed and survives
    /// `suspend()`/`resume()`.
    ///
    /// Errors: `INVALID_PATH`, `CLOSED`.
    pub fn subscribe(
        &self,
        pattern: String,
        handler: Box<dyn MessageHandler>,
    ) -> Result<Arc<Subscription>> {
        self.sh.check_open()?;
        let st = SubState::new(self.next_id(), pattern, handler, self.sh.me.clone());
        let mut reg = lock(&self.sh.reg);
        st.attach(&self.sh.core(), &self.sh.rt)?;
        reg.subs.insert(st.id, st.clone());
        Ok(Arc::new(Subscription { st }))
    }

    /// Serves `pattern`: `handler` answers matching requests (see
    /// `RequestHandler`). Survives `suspend()`/`resume()`.
    ///
    /// Errors: `INVALID_PATH`, `CLOSED`.
    pub fn serve(&self, pattern: String, handler: Box<dyn RequestHandler>) -> Result<Arc<Service>> {
        self.sh.check_open()?;
        let st = SvcState::new(self.next_id(), pattern, handler, self.sh.me.clone());
        let mut reg = lock(&self.sh.reg);
        st.attach(&self.sh.core())?;
        reg.services.insert(st.id, st.clone());
        Ok(Arc::new(Service { st }))
    }

    /// Declares that this endpoint publishes on `pattern` (discovery).
    ///
    /// Errors: `INVALID_PATH`, `CLOSED`.
    pub fn declare_publisher(&self, pattern: String) -> Result<Arc<Publisher>> {
        self.sh.check_open()?;
        let st = PubState::new(self.next_id(), pattern, self.sh.me.clone());
        let mut reg = lock(&self.sh.reg);
        st.attach(&self.sh.core())?;
        reg.publishers.insert(st.id, st.clone());
        Ok(Arc::new(Publisher { st }))
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
        let sh = self.shared();
        let core = sh.core();
        sh.spawn(async move { Ok(core.request(&path, payload, timeout).await?.to_vec()) })
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
        let sh = self.shared();
        let core = sh.core();
        let mut opts = netchan::RequestOptions::timeout(options.timeout);
        if options.wait_for_responder {
            opts = opts.wait_for_responder();
        }
        let cancel: Option<Arc<CancelToken>> = options.cancel;
        sh.spawn(async move {
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
        let sh = self.shared();
        let core = sh.core();
        sh.spawn(async move { Ok(core.ping(&peer).await?) }).await
    }

    /// The connected peers.
    pub fn peers(&self) -> Vec<PeerInfo> {
        self.sh.core().peers().into_iter().map(Into::into).collect()
    }

    /// True if a message published on `path` now would reach a subscriber.
    pub fn has_subscribers(&self, path: String) -> Result<bool> {
        Ok(self.sh.core().has_subscribers(&path)?)
    }

    /// Waits up to `timeout` until `path` has a subscriber; returns whether
    /// one appeared.
    pub async fn wait_for_subscribers(
        self: Arc<Self>,
        path: String,
        timeout: Duration,
    ) -> Result<bool> {
        let sh = self.shared();
        let core = sh.core();
        sh.spawn(async move { Ok(core.wait_for_subscribers(&path, timeout).await?) })
            .await
    }

    /// True if a request on `path` now would find a server.
    pub fn has_servers(&self, path: String) -> Result<bool> {
        Ok(self.sh.core().has_servers(&path)?)
    }

    /// Waits up to `timeout` until a request on `path` would find a server.
    pub async fn wait_for_servers(
        self: Arc<Self>,
        path: String,
        timeout: Duration,
    ) -> Result<bool> {
        let sh = self.shared();
        let core = sh.core();
        sh.spawn(async move { Ok(core.wait_for_servers(&path, timeout).await?) })
            .await
    }

    /// Names of the endpoints subscribed to something overlapping `pattern`.
    pub fn subscribers(&self, pattern: String) -> Result<Vec<String>> {
        Ok(self.sh.core().subscribers(&pattern)?)
    }

    /// Names of the endpoints that declared a publisher overlapping `pattern`.
    pub fn publishers(&self, pattern: String) -> Result<Vec<String>> {
        Ok(self.sh.core().publishers(&pattern)?)
    }

    /// Names of the endpoints serving something overlapping `pattern`.
    pub fn servers(&self, pattern: String) -> Result<Vec<String>> {
        Ok(self.sh.core().servers(&pattern)?)
    }

    /// Counters in total and per peer, and per-subscription queue figures.
    pub fn stats(&self) -> Stats {
        self.sh.core().stats().into()
    }

    /// A stream of connection, drop and lifecycle events from now on.
    pub fn events(&self) -> Arc<EventStream> {
        Arc::new(EventStream::new(
            self.sh.events.subscribe(),
            self.sh.closed_tx.subscribe(),
        ))
    }

    /// The app goes to the background: closes every link and listener
    /// (peers see an orderly close) and keeps everything else:
    /// subscriptions, services and declarations stay, local
    /// publish/subscribe works, requests to peers fail with
    /// `NO_RESPONDERS`. Idempotent.
    ///
    /// Errors: `CLOSED`.
    pub async fn suspend(self: Arc<Self>) -> Result<()> {
        let sh = self.shared();
        let _life = sh.lifecycle.lock().await;
        sh.check_open()?;
        if sh.suspended.swap(true, SeqCst) {
            return Ok(());
        }
        sh.replace_core(false).await?;
        sh.emit(Event::Suspended);
        Ok(())
    }

    /// The app is back: listens again on every address it listened on and
    /// dials every address it connected to, at once (no backoff); peers get
    /// every subscription, service and declaration again. Returns after the
    /// first dial attempt of each address; failed ones keep being redialled
    /// with backoff. Does nothing unless suspended.
    ///
    /// Errors: `CLOSED`; `ADDRESS_IN_USE` if a listen address was taken
    /// meanwhile (the rest is restored anyway).
    pub async fn resume(self: Arc<Self>) -> Result<()> {
        let sh = self.shared();
        let _life = sh.lifecycle.lock().await;
        sh.check_open()?;
        if !sh.suspended.load(SeqCst) {
            return Ok(());
        }
        let sh2 = sh.clone();
        let r = sh.spawn(async move { sh2.reconnect().await }).await;
        sh.suspended.store(false, SeqCst);
        sh.emit(Event::Resumed);
        r
    }

    /// The network changed (new Wi-Fi, cellular handover): links over the
    /// old interface may be dead without knowing it, so every link is
    /// dropped and every address listened on and dialled again now, skipping
    /// the backoff; subscriptions, services and declarations are restored.
    /// While suspended it does nothing (`resume()` will dial).
    ///
    /// Errors: `CLOSED`, `ADDRESS_IN_USE` as for `resume()`.
    pub async fn network_changed(self: Arc<Self>) -> Result<()> {
        let sh = self.shared();
        let _life = sh.lifecycle.lock().await;
        sh.check_open()?;
        if sh.suspended.load(SeqCst) {
            return Ok(());
        }
        sh.replace_core(true).await?;
        sh.emit(Event::Resumed);
        Ok(())
    }

    /// True between `suspend()` and `resume()`.
    pub fn is_suspended(&self) -> bool {
        self.sh.suspended.load(SeqCst)
    }

    /// Closes the endpoint: tells every peer, fails pending requests with
    /// `CLOSED`, ends every subscription (handlers get `on_close`) and
    /// service, and lets go of every handler. Idempotent. Kotlin names it
    /// `shutdown()` (its `close()` is `AutoCloseable`'s, which also closes
    /// and then frees the object).
    pub async fn close(self: Arc<Self>) {
        let sh = self.shared();
        let sh2 = sh.clone();
        let _ = sh
            .spawn(async move {
                sh2.close().await;
                Ok(())
            })
            .await;
    }

    /// True once closed.
    pub fn is_closed(&self) -> bool {
        self.sh.is_closed()
    }
}
