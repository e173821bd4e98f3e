//! The public [`Endpoint`]: a facade over the owners an endpoint is made
//! of (shared context, router, links), and the [`Publisher`] declaration
//! guard.

mod security;
mod streams;

use std::future::Future;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use tokio::runtime::Handle;
use tokio::time::Instant;

use crate::blocking::Blocker;
use crate::config::{Config, RequestOptions, ServeOptions, SubscribeOptions};
use crate::error::{Error, ErrorCode, Result};
use crate::event::Events;
use crate::inbox::{Inbox, Message};
use crate::link::{supervise, Links};
use crate::metrics::{PeerStats, Stats};
use crate::path::Pattern;
use crate::peer::dialer::Dialer;
use crate::proto::DeclKind;
use crate::publish::Publish;
use crate::request::Request;
use crate::router::{Declaring, RouteCache, Router, Synced};
use crate::service::{run_handler, Service};
use crate::service_queue::{ServiceQueue, ServiceShared};
use crate::shared::Shared;
use crate::sub::Subscription;
use crate::transport::Addr;

/// A connected peer, as [`Endpoint::connect`] and [`Endpoint::peers`] report it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct PeerInfo {
    /// The peer's endpoint name.
    pub name: String,
    /// Its address as seen from here.
    pub addr: String,
    /// True if it dialled us.
    pub inbound: bool,
    /// What it proved when it connected, and how: `cert:NAME` (a TLS
    /// certificate), `key:ID` (a shared key), `uid:N` (a Unix socket
    /// peer's user id) or `anonymous` (docs/SECURITY.md, "Identities").
    pub identity: String,
}

/// A netchan endpoint: connects to peers over TCP and Unix sockets, publishes
/// and subscribes, serves and sends requests.
///
/// Cloning is cheap and every clone is the same endpoint. The endpoint closes
/// when [`close`](Self::close) is called or the last clone is dropped.
///
/// Async methods run on the tokio runtime the endpoint was created in, or on
/// netchan's own runtime when it was created outside one; from plain threads,
/// run them with [`block_on`](Self::block_on).
#[derive(Clone)]
pub struct Endpoint {
    parts: Arc<Parts>,
    _guard: Arc<CloseOnDrop>,
}

/// The owners an endpoint is made of (see the crate's "Layout").
struct Parts {
    shared: Arc<Shared>,
    router: Arc<Router>,
    links: Arc<Links>,
}

struct CloseOnDrop(Arc<Parts>);

impl Drop for CloseOnDrop {
    fn drop(&mut self) {
        // In a forked child the parent's runtime is not ours to touch; a
        // runtime that was shut down has nothing left to close.
        if !self.0.shared.is_closed() && !self.0.shared.runtime_gone() {
            let parts = self.0.clone();
            // The runtime may already be gone (process exit); then there is
            // nothing left to tell peers.
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                parts
                    .shared
                    .rt
                    .clone()
                    .spawn(async move { parts.close().await })
            }));
        }
    }
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("name", &self.name())
            .finish()
    }
}

fn random_name() -> String {
    format!("ep-{:016x}", fastrand::u64(..))
}

impl Endpoint {
    /// Creates an endpoint from a configuration.
    ///
    /// Errors: `INVALID_ARGUMENT` naming the bad field; `IO` if netchan's own
    /// runtime cannot start.
    pub fn new(config: Config) -> Result<Endpoint> {
        config.validate()?;
        let (rt, lineage) =
            crate::runtime::handle().map_err(|e| Error::io("starting the runtime", &e))?;
        // Keys and certificates are read and checked now: a mistake is an
        // error here, not at the first connection.
        let keys = Arc::new(crate::transport::keys::Keys::default());
        keys.replace_tls(config.tls.clone())?;
        keys.replace_psk(config.shared_keys.clone())?;
        // Without a name of its own, an endpoint with a certificate takes
        // the name the certificate is for (the only one peers accept).
        let name: Arc<str> = config
            .name
            .clone()
            .or_else(|| keys.tls_own_name())
            .unwrap_or_else(random_name)
            .into();
        let shared = Shared::new(name, config, rt, lineage, keys);
        let router = Router::new(shared.clone());
        router.set_acl(shared.cfg.acl.clone())?;
        let links = Links::new(shared.clone(), router.clone());
        let parts = Arc::new(Parts {
            shared,
            router,
            links,
        });
        Ok(Endpoint {
            _guard: Arc::new(CloseOnDrop(parts.clone())),
            parts,
        })
    }

    /// Creates an endpoint with the default configuration and this name.
    pub fn named(name: &str) -> Result<Endpoint> {
        Endpoint::new(Config::named(name))
    }

    /// The endpoint's name.
    pub fn name(&self) -> &str {
        &self.parts.shared.name
    }

    /// The tokio runtime this endpoint's tasks run on (for bindings that
    /// spawn their own work beside it).
    pub fn runtime(&self) -> &Handle {
        &self.parts.shared.rt
    }

    /// The configuration it was created with.
    pub fn config(&self) -> &Config {
        &self.parts.shared.cfg
    }

    /// Runs a future of this endpoint to completion on the calling thread,
    /// for programs without an async runtime (see [`Blocker`]).
    ///
    /// Errors: `WOULD_DEADLOCK` when called from an async context or from a
    /// netchan callback (there, `.await` the future instead); `CLOSED` when
    /// its runtime is gone.
    pub fn block_on<F: Future>(&self, fut: F) -> Result<F::Output> {
        self.parts.shared.blocker.block_on(fut)
    }

    /// Runs netchan futures from plain threads: the one way in that C,
    /// Python, Kotlin and Swift calls take (see [`Blocker`]).
    pub fn blocker(&self) -> &Blocker {
        &self.parts.shared.blocker
    }

    /// [`publish`](Self::publish) from a plain thread: returns at once when
    /// every target has room (the usual case), else waits as `publish` does.
    ///
    /// Errors: as `publish`; `WOULD_DEADLOCK` from an async context.
    pub fn publish_blocking(&self, path: &str, payload: impl Into<Bytes>) -> Result<()> {
        let router = &self.parts.router;
        crate::publish::publish_blocking(router, || router.route(path), payload.into())
    }

    /// [`request`](Self::request) from a plain thread.
    ///
    /// Errors: as `request`; `WOULD_DEADLOCK` from an async context.
    pub fn request_blocking(
        &self,
        path: &str,
        payload: impl Into<Bytes>,
        timeout: Duration,
    ) -> Result<Bytes> {
        self.parts
            .shared
            .blocker
            .block_on(self.request(path, payload, timeout))?
    }

    /// Listens on `addr` (`tcp://HOST:PORT`, port 0 picks a free port,
    /// `tls://HOST:PORT`, or `unix:///path`) and returns the bound address.
    ///
    /// Plaintext `tcp://` on an address other than loopback is refused
    /// unless [`Config::insecure`] allows it; `tls://` needs
    /// [`Config::tls`] with a certificate and key (docs/SECURITY.md).
    ///
    /// Errors: `INVALID_ADDRESS`, `ADDRESS_IN_USE`, `PLAINTEXT_REFUSED`,
    /// `INVALID_ARGUMENT` (no TLS settings for `tls://`), `CLOSED`.
    pub async fn listen(&self, addr: &str) -> Result<String> {
        self.parts.shared.check_open()?;
        let addr = Addr::parse(addr)?;
        security::check_plaintext(&self.parts.shared, &addr, "listening on")?;
        self.parts.links.listen(&addr).await
    }

    /// Connects to the endpoint listening at `addr`; returns once the
    /// handshake is done and the peer's declarations are known, so a
    /// `request` right after sees its services.
    ///
    /// A peer at one of its connection limits refuses with `OVERLOADED`;
    /// `connect` then tries again for up to `connect_timeout`.
    ///
    /// Plaintext `tcp://` to a host other than loopback is refused unless
    /// [`Config::insecure`] allows it; `tls://` needs [`Config::tls`] with
    /// the CA (or pinned certificate) to check the peer's certificate by.
    ///
    /// Errors: `INVALID_ADDRESS`, `CONNECT_REFUSED`, `TIMEOUT`,
    /// `UNSUPPORTED_VERSION`, `HANDSHAKE_REJECTED`, `NAME_IN_USE`,
    /// `OVERLOADED`, `PROTOCOL_ERROR`, `CLOSED`, `PLAINTEXT_REFUSED`,
    /// `PERMISSION_DENIED`; over TLS `TLS_FAILED`, `CERT_UNTRUSTED`,
    /// `CERT_NAME_MISMATCH`, `CERT_EXPIRED`, `CLIENT_CERT_REQUIRED`.
    pub async fn connect(&self, addr: &str) -> Result<PeerInfo> {
        self.parts.shared.check_open()?;
        let parsed = Addr::parse(addr)?;
        security::check_plaintext(&self.parts.shared, &parsed, "dialling")?;
        let d = Arc::new(Dialer::new(parsed));
        // A peer at a connection limit says so (`OVERLOADED`); that passes,
        // so try again with a short, growing, jittered pause, within
        // `connect_timeout` in all.
        let deadline = Instant::now() + self.parts.shared.cfg.connect_timeout;
        let mut pause = Duration::from_millis(5);
        let peer = loop {
            match self.parts.links.connect_once(&d).await {
                Err(e) if e.code() == ErrorCode::Overloaded => {
                    let wait = pause.mul_f64(0.5 + fastrand::f64());
                    if Instant::now() + wait >= deadline {
                        return Err(e);
                    }
                    tracing::debug!(endpoint = %self.parts.shared.name, %addr, "peer overloaded, trying again: {}", e.detail());
                    tokio::time::sleep(wait).await;
                    pause = (pause * 2).min(Duration::from_millis(200));
                }
                r => break r?,
            }
        };
        if self.parts.shared.cfg.reconnect.enabled {
            // Keep it connected from now on (see docs/RELIABILITY.md): one
            // supervisor per dialled address redials after every loss.
            self.parts.router.lock().dialers.push(d.clone());
            self.parts
                .shared
                .rt
                .spawn(supervise(self.parts.links.clone(), d, peer.clone()));
        } else {
            d.stop.cancel();
        }
        Ok(PeerInfo {
            name: peer.name.to_string(),
            addr: peer.addr.clone(),
            inbound: peer.inbound,
            identity: peer.identity.to_string(),
        })
    }

    /// Redials every lost peer now, skipping the backoff delay (for example
    /// after the network changed).
    pub fn reconnect_now(&self) {
        for d in &self.parts.router.lock().dialers {
            d.kick.notify_one();
        }
    }

    /// The application goes to the background: closes every link (peers see
    /// an orderly close, code `CLOSED`) and every listener, and keeps the
    /// rest: subscriptions, services and declarations stay, local
    /// publish/subscribe works, messages for dialled peers are held (the
    /// offline buffer), requests to peers fail with `NO_RESPONDERS` (or wait,
    /// with `wait_for_responder`), counters go on. Emits `Suspended`.
    /// Idempotent.
    ///
    /// Errors: `CLOSED`.
    pub async fn suspend(&self) -> Result<()> {
        self.parts.links.suspend().await
    }

    /// Back to the foreground: listens again on every address it listened
    /// on and dials every address it connected to at once (no backoff);
    /// returns after the first attempt of each (failed ones are redialled
    /// with backoff). Peers get every declaration again; held messages go
    /// first. Emits `Resumed`. Does nothing if not suspended.
    ///
    /// Errors: `CLOSED`; `ADDRESS_IN_USE` if a listen address was taken
    /// meanwhile (the rest is restored anyway).
    pub async fn resume(&self) -> Result<()> {
        self.parts.links.resume().await
    }

    /// The network changed (another Wi-Fi, mobile data): links over the old
    /// one may be dead without knowing it, so every link is dropped and
    /// every dialled address redialled now. (`reconnect_now` is the lighter
    /// form: it only skips the backoff of links already being redialled.)
    ///
    /// Errors: `CLOSED`.
    pub async fn network_changed(&self) -> Result<()> {
        self.parts.links.network_changed().await
    }

    /// Publishes `payload` on `path` to every matching subscriber, local and
    /// remote (a peer gets it only if it declared a matching interest).
    /// Waits while a peer's send buffer or a local `Block` subscription is
    /// full, up to `send_timeout`.
    ///
    /// Errors: `INVALID_PATH`, `MESSAGE_TOO_LARGE` (nothing sent),
    /// `BUFFER_FULL` (some targets skipped after `send_timeout`; counted
    /// and reported as `Dropped` events), `CLOSED`.
    pub fn publish<'a>(&'a self, path: &'a str, payload: impl Into<Bytes>) -> Publish<'a> {
        Publish::new(&self.parts.router, path, payload.into())
    }

    /// Like [`publish`](Self::publish) but never waits: a target without room
    /// is skipped, counted as a drop and reported, and the call returns
    /// `BUFFER_FULL`.
    pub fn try_publish(&self, path: &str, payload: impl Into<Bytes>) -> Result<()> {
        crate::publish::try_publish(&self.parts.router, path, payload.into())
    }

    /// Waits, from a plain thread, up to `declare_wait` for every connected
    /// peer to have a new declaration; from an async context (which must
    /// not block) hands the wait back, for `ready()`.
    fn settle(&self, synced: Synced) -> Option<Declaring> {
        let wait = self.parts.shared.cfg.declare_wait;
        if wait.is_zero() || synced.is_empty() {
            return None;
        }
        if tokio::runtime::Handle::try_current().is_ok() {
            return Some(Declaring { synced, wait });
        }
        let _ = self
            .parts
            .shared
            .blocker
            .block_on_timeout(synced.all(), Some(wait));
        None
    }

    /// Subscribes to `pattern` with the configured default options.
    ///
    /// Called from a plain thread, returns once every connected peer has
    /// the subscription (up to `Config::declare_wait`), so that what a peer
    /// publishes after it reaches it; from async code, await
    /// [`Subscription::ready`] for that
    /// (`a_subscription_is_known_to_peers_when_subscribe_returns`).
    ///
    /// Errors: `INVALID_PATH`, `CLOSED`.
    pub fn subscribe(&self, pattern: &str) -> Result<Subscription> {
        self.subscribe_with(pattern, self.parts.shared.cfg.subscribe.clone())
    }

    /// Subscribes with explicit queue options.
    ///
    /// Errors: `INVALID_PATH`, `INVALID_ARGUMENT`, `CLOSED`.
    pub fn subscribe_with(&self, pattern: &str, opts: SubscribeOptions) -> Result<Subscription> {
        opts.validate()?;
        let pattern = Pattern::new(pattern)?;
        let inbox = Arc::new(Inbox::new(self.parts.shared.next_id(), pattern, opts));
        let synced = self.parts.router.subscribe(&inbox)?;
        Ok(Subscription {
            shared: inbox,
            router: self.parts.router.clone(),
            batch: Mutex::new(Default::default()),
            blocker: self.parts.shared.blocker.clone(),
            declaring: Mutex::new(self.settle(synced)),
        })
    }

    /// Subscribes and calls `callback` for every message, in order, on a
    /// netchan runtime thread. The callback must not block for long (it holds
    /// up this subscription's delivery, not others'). Drop the returned
    /// subscription to stop.
    pub fn subscribe_fn<F>(&self, pattern: &str, mut callback: F) -> Result<Subscription>
    where
        F: FnMut(Message) + Send + 'static,
    {
        let sub = self.subscribe(pattern)?;
        let inbox = sub.shared.clone();
        self.parts.shared.rt.spawn(async move {
            let mut batch = Vec::with_capacity(256);
            loop {
                batch.clear();
                if inbox.recv_many(&mut batch, 256).await == 0 {
                    break;
                }
                for m in batch.drain(..) {
                    callback(m);
                }
            }
        });
        Ok(sub)
    }

    /// Declares that this endpoint publishes on `pattern` (discovery). The
    /// declaration lasts until the returned guard is dropped.
    ///
    /// Errors: `INVALID_PATH`, `CLOSED`.
    pub fn declare_publisher(&self, pattern: &str) -> Result<Publisher> {
        let pattern = Pattern::new(pattern)?;
        let id = self.parts.shared.next_id();
        self.parts.router.declare_publisher(id, &pattern)?;
        Ok(Publisher {
            id,
            pattern,
            router: self.parts.router.clone(),
            cache: RouteCache::default(),
        })
    }

    /// Serves `pattern`: requests on matching paths arrive at the returned
    /// [`Service`]'s `recv`. A pattern may contain wildcards (`users/*`).
    /// Like `subscribe`, returns once connected peers know of it when called
    /// from a plain thread (else await [`Service::ready`]).
    ///
    /// Errors: `INVALID_PATH`, `CLOSED`.
    pub fn serve(&self, pattern: &str) -> Result<Service> {
        self.serve_with(pattern, ServeOptions::default())
    }

    /// [`serve`](Self::serve) with its own queue bounds.
    ///
    /// Errors: `INVALID_PATH`, `INVALID_ARGUMENT` (a zero bound), `CLOSED`.
    pub fn serve_with(&self, pattern: &str, opts: ServeOptions) -> Result<Service> {
        let (_, queue, bytes) = opts.resolve(&self.parts.shared.cfg)?;
        self.serve_inner(pattern, true, queue, bytes)
    }

    /// Serves `pattern` with an async handler, run in its own task per
    /// request on netchan's runtime. `Ok(payload)` is the reply; `Err(e)`
    /// reaches the caller with `e`'s code and detail. If the caller cancels
    /// (timeout, dropped future, link lost) the handler's future is dropped.
    pub fn serve_fn<F, Fut>(&self, pattern: &str, handler: F) -> Result<Service>
    where
        F: Fn(Request) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Bytes>> + Send + 'static,
    {
        self.serve_fn_with(pattern, ServeOptions::default(), handler)
    }

    /// [`serve_fn`](Self::serve_fn) with its own bounds: at most
    /// `max_concurrent` requests in the handler at once, `queue` waiting;
    /// past that a request is refused with `BUFFER_FULL` and counted
    /// (`a_service_handles_at_most_max_concurrent_and_refuses_past_its_queue`).
    ///
    /// Errors: `INVALID_PATH`, `INVALID_ARGUMENT` (a zero bound), `CLOSED`.
    pub fn serve_fn_with<F, Fut>(
        &self,
        pattern: &str,
        opts: ServeOptions,
        handler: F,
    ) -> Result<Service>
    where
        F: Fn(Request) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Bytes>> + Send + 'static,
    {
        let (concurrent, queue, bytes) = opts.resolve(&self.parts.shared.cfg)?;
        let mut svc = self.serve_inner(pattern, false, queue, bytes)?;
        let task = self
            .parts
            .shared
            .rt
            .spawn(run_handler(svc.queue.clone(), concurrent, handler));
        svc.task = Some(task.abort_handle());
        Ok(svc)
    }

    fn serve_inner(
        &self,
        pattern: &str,
        pull: bool,
        queue: usize,
        queue_bytes: usize,
    ) -> Result<Service> {
        let pattern = Pattern::new(pattern)?;
        let id = self.parts.shared.next_id();
        let queue = Arc::new(ServiceQueue::new(queue, queue_bytes));
        let synced = self.parts.router.serve(
            id,
            Arc::new(ServiceShared {
                pattern: pattern.clone(),
                queue: queue.clone(),
            }),
        )?;
        Ok(Service {
            id,
            pattern,
            queue,
            pull,
            router: self.parts.router.clone(),
            task: None,
            blocker: self.parts.shared.blocker.clone(),
            declaring: Mutex::new(self.settle(synced)),
        })
    }

    /// Sends a request to one endpoint serving `path` (a local service if
    /// there is one, else a connected peer that declared a matching service,
    /// chosen in turn) and waits up to `timeout` for the reply. The timeout
    /// travels with the request as its deadline. Dropping the returned future
    /// cancels the request at the server.
    ///
    /// Errors: `INVALID_PATH`, `INVALID_ARGUMENT` (zero timeout),
    /// `NO_RESPONDERS` (at once, when nobody serves `path`), `TIMEOUT`,
    /// `PEER_LOST`, `BUFFER_FULL`, `MESSAGE_TOO_LARGE`, `CLOSED`, and any
    /// code the handler failed with (`HANDLER_ERROR` by default).
    pub async fn request(
        &self,
        path: &str,
        payload: impl Into<Bytes>,
        timeout: Duration,
    ) -> Result<Bytes> {
        self.request_with(path, payload, RequestOptions::timeout(timeout))
            .await
    }

    /// [`request`](Self::request) with options, e.g. waiting for a responder
    /// to appear instead of failing with `NO_RESPONDERS` at once.
    pub async fn request_with(
        &self,
        path: &str,
        payload: impl Into<Bytes>,
        opts: RequestOptions,
    ) -> Result<Bytes> {
        crate::client::request(&self.parts.router, path, payload.into(), opts).await
    }

    /// Measures the round-trip time to the connected peer named `peer`.
    ///
    /// Errors: `UNKNOWN_PEER`, `TIMEOUT` (after `ping_timeout`), `PEER_LOST`, `CLOSED`.
    pub async fn ping(&self, peer: &str) -> Result<Duration> {
        crate::client::ping(&self.parts.router, peer).await
    }

    /// The connected peers.
    pub fn peers(&self) -> Vec<PeerInfo> {
        self.parts
            .router
            .peers()
            .iter()
            .map(|p| PeerInfo {
                name: p.name.to_string(),
                addr: p.addr.clone(),
                inbound: p.inbound,
                identity: p.identity.to_string(),
            })
            .collect()
    }

    /// True if a message published on `path` now would reach a subscriber
    /// (local, or a peer with a matching interest).
    ///
    /// Errors: `INVALID_PATH`, `CLOSED`.
    pub fn has_subscribers(&self, path: &str) -> Result<bool> {
        self.parts.router.has_subscribers(path)
    }

    /// Waits until `path` has a subscriber (see [`has_subscribers`](Self::has_subscribers)),
    /// up to `timeout`. Returns whether one appeared.
    pub async fn wait_for_subscribers(&self, path: &str, timeout: Duration) -> Result<bool> {
        self.wait_until(timeout, || self.has_subscribers(path))
            .await
    }

    /// True if a request on `path` now would find a server (a local service
    /// or a connected peer that declared a matching one).
    ///
    /// Errors: `INVALID_PATH`, `CLOSED`.
    pub fn has_servers(&self, path: &str) -> Result<bool> {
        self.parts.router.has_servers(path)
    }

    /// Waits until a request on `path` would find a server, up to `timeout`.
    /// Returns whether one appeared.
    pub async fn wait_for_servers(&self, path: &str, timeout: Duration) -> Result<bool> {
        self.wait_until(timeout, || self.has_servers(path)).await
    }

    async fn wait_until(
        &self,
        timeout: Duration,
        ready: impl FnMut() -> Result<bool>,
    ) -> Result<bool> {
        self.parts.router.wait_until(timeout, ready).await
    }

    /// Names of the endpoints (this one included) subscribed to something
    /// that overlaps `pattern`.
    pub fn subscribers(&self, pattern: &str) -> Result<Vec<String>> {
        self.parts.router.discover(DeclKind::Interest, pattern)
    }

    /// Names of the endpoints that declared a publisher overlapping `pattern`.
    pub fn publishers(&self, pattern: &str) -> Result<Vec<String>> {
        self.parts.router.discover(DeclKind::Publisher, pattern)
    }

    /// Names of the endpoints serving something that overlaps `pattern`.
    pub fn servers(&self, pattern: &str) -> Result<Vec<String>> {
        self.parts.router.discover(DeclKind::Service, pattern)
    }

    /// Counters in total and per peer, and per-subscription queue figures.
    pub fn stats(&self) -> Stats {
        let (shared, router) = (&self.parts.shared, &self.parts.router);
        let st = router.lock();
        let mut total = shared.totals.snapshot();
        let peers: Vec<PeerStats> = st
            .peers
            .iter()
            .map(|p| {
                let c = p.snapshot();
                total.merge(&c);
                let rtt = p.rtt_us.load(Relaxed);
                PeerStats {
                    name: p.name.to_string(),
                    addr: p.addr.clone(),
                    inbound: p.inbound,
                    identity: p.identity.to_string(),
                    rtt: (rtt > 0).then(|| Duration::from_micros(rtt)),
                    counters: c,
                }
            })
            .collect();
        let subscriptions = st.subs.values().map(|s| s.stats()).collect();
        Stats {
            name: shared.name.to_string(),
            total,
            peers,
            subscriptions,
        }
    }

    /// A stream of connection and drop events from now on.
    pub fn events(&self) -> Events {
        self.parts.shared.events()
    }

    /// Closes the endpoint: stops listening, tells every peer (a CLOSE
    /// frame, after what was already queued for it), fails pending requests
    /// with `CLOSED`, and ends every subscription and service. Idempotent.
    pub async fn close(&self) {
        self.parts.close().await
    }

    /// True once closed.
    pub fn is_closed(&self) -> bool {
        self.parts.shared.is_closed()
    }
}

/// A publisher declaration (an intent peers can discover with
/// `publishers`); dropping it withdraws the declaration. It also publishes:
/// on paths its pattern matches, through a cache of the route it used last,
/// so a stream on one path skips the route lookup.
pub struct Publisher {
    id: u64,
    pattern: Pattern,
    router: Arc<Router>,
    cache: RouteCache,
}

impl Publisher {
    /// The declared pattern.
    pub fn pattern(&self) -> &str {
        self.pattern.as_str()
    }

    /// As [`Endpoint::publish`], on a path the pattern matches.
    ///
    /// Errors: as `Endpoint::publish`; `INVALID_PATH` also for a path the
    /// pattern does not match.
    pub fn publish<'a>(&'a self, path: &'a str, payload: impl Into<Bytes>) -> Publish<'a> {
        Publish::via(
            &self.router,
            &self.cache,
            &self.pattern,
            path,
            payload.into(),
        )
    }

    /// As [`Endpoint::try_publish`], on a path the pattern matches.
    pub fn try_publish(&self, path: &str, payload: impl Into<Bytes>) -> Result<()> {
        let route = self.router.route_cached(path, &self.cache, |p| {
            crate::publish::check_pattern(&self.pattern, p)
        })?;
        crate::publish::try_publish_on(&self.router, route, payload.into())
    }

    /// As [`Endpoint::publish_blocking`], on a path the pattern matches.
    pub fn publish_blocking(&self, path: &str, payload: impl Into<Bytes>) -> Result<()> {
        let (router, cache, pattern) = (&self.router, &self.cache, &self.pattern);
        crate::publish::publish_blocking(
            router,
            || router.route_cached(path, cache, |p| crate::publish::check_pattern(pattern, p)),
            payload.into(),
        )
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        self.router.withdraw_publisher(self.id);
    }
}

impl Parts {
    /// Closes the endpoint: stops listening, tells every peer (a CLOSE frame,
    /// after what was already queued for it), fails pending requests with
    /// `CLOSED`, and ends every subscription and service. Idempotent.
    async fn close(&self) {
        if !self.shared.mark_closed() {
            return;
        }
        self.shared.shutdown.cancel();
        let c = self.router.take_all();
        for s in c.subs {
            s.close();
        }
        // Pull services see the end (`recv` returns `None`); what was still
        // queued fails with CLOSED (reaching a remote caller as the loss of
        // its link: its CLOSE is queued first, below).
        self.links.close_all(c.peers, c.dialers).await;
        for s in c.services {
            for (_, reply) in s.queue.close() {
                reply.fail(Error::new(ErrorCode::Closed, "the endpoint was closed"));
            }
        }
        for s in c.stream_services {
            for (_, stream) in s.svc.queue.close() {
                stream.cancel_with(Error::new(ErrorCode::Closed, "the endpoint was closed"));
            }
        }
        self.shared.end_events();
        tracing::info!(endpoint = %self.shared.name, "closed");
    }
}
