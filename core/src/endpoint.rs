//! The endpoint: listeners, connections, routing, and the public API.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed, Ordering::SeqCst};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::AsyncReadExt;
use tokio::runtime::Handle;
use tokio::sync::{broadcast, oneshot, Notify};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::admission::{Admission, Ticket};
use crate::config::{Config, RequestOptions, SlowPeer, SubscribeOptions};
use crate::error::{Error, ErrorCode, Result};
use crate::event::{Event, Events};
use crate::link::{heartbeat, now_ms, supervise, Dialer, Held};
use crate::metrics::{Counters, PeerStats, Stats};
use crate::path::{validate_path, validate_pattern, Pattern};
use crate::peer::{writer_loop, Enq, Peer, SendQueue};
use crate::proto::{self, Decl, DeclKind, Decoded, Frame, Hello, Peeked};
use crate::reqrep::{run_handler, Reply, ReplyTo, Request, Service, ServiceShared};
use crate::routing::{Route, RxRoute, State};
use crate::service_queue::{ServiceQueue, LOCAL};
use crate::sub::{Message, Meta, Push, SubShared, Subscription};
use crate::transport::{dial, Addr, Conn, Listener, Reader};

/// A connection's cache of the local routes of received paths. The paths
/// come from the peer, so the map hashes with a per-process random seed
/// (colliding paths cannot be chosen) and is bounded in entries and bytes.
#[derive(Default)]
struct RxCache {
    map: hashbrown::HashMap<Bytes, Arc<RxRoute>>,
    /// Path bytes held by the keys.
    bytes: usize,
}

/// Path bytes a connection's [`RxCache`] may hold before it starts over.
const RX_CACHE_BYTES: usize = 256 * 1024;

/// A connection reader's delivery state.
#[derive(Default)]
struct RxState {
    cache: RxCache,
    /// The route of the last message gathered (kept across batches): the
    /// next message on the same path skips the cache.
    last: Option<Arc<RxRoute>>,
    /// The batch: runs of consecutive messages on one route, each with the
    /// index in `payloads` where it starts.
    runs: Vec<(Arc<RxRoute>, usize)>,
    payloads: Vec<Bytes>,
    /// Heads of the frames in the chunk being dispatched, found by the read
    /// loop (each frame's prefix is checked once).
    heads: Vec<proto::Head>,
}

/// The future of [`Endpoint::publish`]. Nothing is sent before it is first
/// polled. A message whose targets all have room is delivered on that first
/// poll, without allocating; only a publish that has to wait (a full queue, a
/// dialled peer that is away) boxes its waiting part.
#[must_use = "futures do nothing unless polled"]
pub struct Publish<'a> {
    state: PublishState<'a>,
}

enum PublishState<'a> {
    Start {
        inner: &'a Inner,
        path: &'a str,
        payload: Bytes,
    },
    Waiting(std::pin::Pin<Box<dyn Future<Output = Result<()>> + Send + 'a>>),
    Done,
}

impl Future for Publish<'_> {
    type Output = Result<()>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<()>> {
        use std::task::Poll;
        match std::mem::replace(&mut self.state, PublishState::Done) {
            PublishState::Start {
                inner,
                path,
                payload,
            } => {
                let route = match inner.route(path) {
                    Ok(r) => r,
                    Err(e) => return Poll::Ready(Err(e)),
                };
                let rest = match inner.sweep(&route, &payload, true) {
                    Swept::Done(r) => return Poll::Ready(r),
                    Swept::Rest(rest) => rest,
                };
                let mut fut = Box::pin(inner.deliver_rest(route, payload, true, rest));
                let p = fut.as_mut().poll(cx);
                if p.is_pending() {
                    self.state = PublishState::Waiting(fut);
                }
                p
            }
            PublishState::Waiting(mut fut) => {
                let p = fut.as_mut().poll(cx);
                if p.is_pending() {
                    self.state = PublishState::Waiting(fut);
                }
                p
            }
            PublishState::Done => Poll::Ready(Err(Error::new(
                ErrorCode::Internal,
                "a publish future was polled after it completed",
            ))),
        }
    }
}

/// What [`Inner::sweep`] did with a message.
enum Swept {
    /// Delivered to every target (or refused): the publish's outcome.
    Done(Result<()>),
    /// Some targets must be waited for.
    Rest(Rest),
}

/// The targets a sweep could not serve at once.
struct Rest {
    frame_len: usize,
    full_peers: Vec<Arc<Peer>>,
    full_subs: Vec<(Arc<SubShared>, Message)>,
    skipped: usize,
}

/// Frames of at least this many bytes are read into a buffer of their own
/// (see [`BigFrames`]) rather than through the link's read buffer.
const LARGE_FRAME: usize = 128 * 1024;

/// The receive buffer for large frames. Each frame is read into it exactly,
/// without the copy a partly read frame costs in the shared read buffer, and
/// leaves as its own `Bytes`. Once every piece of the previous frame has been
/// dropped (a subscriber that keeps up), the next frame reuses the same memory,
/// so a stream of large messages does not allocate or fault in fresh pages.
#[derive(Default)]
struct BigFrames {
    buf: BytesMut,
    /// The largest frame this link has delivered in full: up to this size a
    /// frame's buffer is allocated at once; beyond it, the buffer grows only
    /// as bytes arrive, so an announced length alone never allocates.
    proven: usize,
}

impl BigFrames {
    /// Moves the start of a frame of `total` bytes from `pending` (which
    /// holds nothing else) into the large-frame buffer and reads the rest
    /// of the frame from `rd`, never past its end.
    async fn read(
        &mut self,
        rd: &mut Reader,
        pending: &mut BytesMut,
        total: usize,
        peer: &Peer,
    ) -> std::result::Result<Bytes, (ErrorCode, String)> {
        let b = &mut self.buf;
        // Reclaims the old allocation when nothing refers to it any more.
        b.reserve(if total <= self.proven {
            total
        } else {
            pending.len().max(64 * 1024).min(total)
        });
        b.extend_from_slice(pending);
        pending.clear();
        while b.len() < total {
            if b.capacity() == b.len() {
                b.reserve(b.len().min(total - b.len()));
            }
            let want = (total - b.len()) as u64;
            let r = rd.as_mut().take(want).read_buf(b).await;
            peer.last_rx_ms.store(now_ms(), Relaxed);
            read_ended(r)?;
        }
        self.proven = self.proven.max(total);
        Ok(b.split().freeze())
    }
}

/// Why a link's reading ends after this read result, if it does: end of
/// stream (the peer left without CLOSE) or a read error.
fn read_ended(r: std::io::Result<usize>) -> std::result::Result<usize, (ErrorCode, String)> {
    match r {
        Ok(0) => Err((
            ErrorCode::PeerLost,
            "connection closed by peer without CLOSE".into(),
        )),
        Ok(n) => Ok(n),
        Err(e) => Err((ErrorCode::PeerLost, format!("read error: {e}"))),
    }
}

/// Route generations, unique across every endpoint of the process.
static GENERATION: AtomicU64 = AtomicU64::new(1);

fn next_gen() -> u64 {
    GENERATION.fetch_add(1, Relaxed)
}

thread_local! {
    /// The route this thread published on last, with its generation.
    static LAST_ROUTE: std::cell::RefCell<Option<(u64, Weak<Route>)>> =
        const { std::cell::RefCell::new(None) };
}

/// Cached routes beyond this many are forgotten (a peer could otherwise grow
/// the cache without bound by publishing on ever new paths).
const ROUTE_CACHE_MAX: usize = 4096;
/// Declarations per DECLARE frame in a snapshot.
const SNAPSHOT_BATCH: usize = 512;

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
}

pub(crate) struct Inner {
    pub name: Arc<str>,
    pub cfg: Config,
    pub rt: Handle,
    closed: AtomicBool,
    shutdown: CancellationToken,
    state: Mutex<State>,
    gen: AtomicU64,
    sub_gen: AtomicU64,
    changed: Notify,
    routes: RwLock<HashMap<Box<str>, Arc<Route>, rustc_hash::FxBuildHasher>>,
    events: broadcast::Sender<Event>,
    pub(crate) totals: Counters,
    events_ended: CancellationToken,
    next_id: AtomicU64,
    connections: AtomicUsize,
    admission: Arc<Admission>,
    /// Refusals for load since the last log line and event about them.
    load_reports: Mutex<LoadReports>,
    /// Places for connections refused for load to linger (see `reject_for_load`).
    drains: tokio::sync::Semaphore,
    round_robin: AtomicUsize,
    /// Listeners opened (a peer can dial us only if there is one).
    listeners: AtomicUsize,
    writers: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    /// Drops not yet reported, per site; a reporter task turns them into
    /// `Dropped` events, coalesced over a short window.
    drops: Mutex<HashMap<String, u64>>,
    drops_ready: Notify,
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
    inner: Arc<Inner>,
    _guard: Arc<CloseOnDrop>,
}

struct CloseOnDrop(Arc<Inner>);

impl Drop for CloseOnDrop {
    fn drop(&mut self) {
        if !self.0.closed.load(SeqCst) {
            let inner = self.0.clone();
            // The runtime may already be gone (process exit); then there is
            // nothing left to tell peers.
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                inner.rt.clone().spawn(async move { inner.close().await })
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
        let rt = crate::runtime::handle().map_err(|e| Error::io("starting the runtime", &e))?;
        let name: Arc<str> = config.name.clone().unwrap_or_else(random_name).into();
        let (events, _) = broadcast::channel(1024);
        let inner = Arc::new(Inner {
            name,
            rt,
            closed: AtomicBool::new(false),
            shutdown: CancellationToken::new(),
            state: Mutex::new(State::default()),
            gen: AtomicU64::new(next_gen()),
            sub_gen: AtomicU64::new(1),
            changed: Notify::new(),
            routes: RwLock::new(HashMap::default()),
            events,
            totals: Counters::default(),
            events_ended: CancellationToken::new(),
            next_id: AtomicU64::new(1),
            connections: AtomicUsize::new(0),
            admission: Admission::new(
                config.max_pending_handshakes,
                config.max_pending_handshakes_per_address,
            ),
            load_reports: Mutex::new(LoadReports::default()),
            drains: tokio::sync::Semaphore::new(LOAD_DRAINS),
            round_robin: AtomicUsize::new(0),
            listeners: AtomicUsize::new(0),
            writers: Mutex::new(Vec::new()),
            drops: Mutex::new(HashMap::new()),
            drops_ready: Notify::new(),
            cfg: config,
        });
        inner.rt.spawn(report_drops(Arc::downgrade(&inner)));
        Ok(Endpoint {
            _guard: Arc::new(CloseOnDrop(inner.clone())),
            inner,
        })
    }

    /// Creates an endpoint with the default configuration and this name.
    pub fn named(name: &str) -> Result<Endpoint> {
        Endpoint::new(Config::named(name))
    }

    /// The endpoint's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The tokio runtime this endpoint's tasks run on (for bindings that
    /// spawn their own work beside it).
    pub fn runtime(&self) -> &Handle {
        &self.inner.rt
    }

    /// The configuration it was created with.
    pub fn config(&self) -> &Config {
        &self.inner.cfg
    }

    /// Runs a future of this endpoint to completion on the calling thread,
    /// for programs without an async runtime.
    ///
    /// Errors: `WOULD_DEADLOCK` when called from an async context or from a
    /// netchan callback (there, `.await` the future instead).
    pub fn block_on<F: Future>(&self, fut: F) -> Result<F::Output> {
        if crate::runtime::in_async_context() {
            return Err(Error::new(
                ErrorCode::WouldDeadlock,
                "block_on called from an async context or netchan callback; await the future instead",
            ));
        }
        Ok(self.inner.rt.block_on(fut))
    }

    /// Listens on `addr` (`tcp://HOST:PORT`, port 0 picks a free port, or
    /// `unix:///path`) and returns the bound address.
    ///
    /// Errors: `INVALID_ADDRESS`, `ADDRESS_IN_USE`, `CLOSED`.
    pub async fn listen(&self, addr: &str) -> Result<String> {
        self.inner.check_open()?;
        let addr = Addr::parse(addr)?;
        let (listener, bound) = Listener::bind(&addr).await?;
        let inner = self.inner.clone();
        tracing::info!(endpoint = %inner.name, addr = %bound, "listening");
        inner.listeners.fetch_add(1, Relaxed);
        self.inner.rt.spawn(accept_loop(inner, listener));
        Ok(bound.to_string())
    }

    /// Connects to the endpoint listening at `addr`; returns once the
    /// handshake is done and the peer's declarations are known, so a
    /// `request` right after sees its services.
    ///
    /// A peer at one of its connection limits refuses with `OVERLOADED`;
    /// `connect` then tries again for up to `connect_timeout`.
    ///
    /// Errors: `INVALID_ADDRESS`, `CONNECT_REFUSED`, `TIMEOUT`,
    /// `UNSUPPORTED_VERSION`, `HANDSHAKE_REJECTED`, `NAME_IN_USE`,
    /// `OVERLOADED`, `PROTOCOL_ERROR`, `CLOSED`.
    pub async fn connect(&self, addr: &str) -> Result<PeerInfo> {
        self.inner.check_open()?;
        let parsed = Addr::parse(addr)?;
        let d = Arc::new(Dialer::new(parsed));
        // A peer at a connection limit says so (`OVERLOADED`); that passes,
        // so try again with a short, growing, jittered pause, within
        // `connect_timeout` in all.
        let deadline = Instant::now() + self.inner.cfg.connect_timeout;
        let mut pause = Duration::from_millis(5);
        let peer = loop {
            match self.inner.clone().connect_once(&d).await {
                Err(e) if e.code() == ErrorCode::Overloaded => {
                    let wait = pause.mul_f64(0.5 + fastrand::f64());
                    if Instant::now() + wait >= deadline {
                        return Err(e);
                    }
                    tracing::debug!(endpoint = %self.inner.name, %addr, "peer overloaded, trying again: {}", e.detail());
                    tokio::time::sleep(wait).await;
                    pause = (pause * 2).min(Duration::from_millis(200));
                }
                r => break r?,
            }
        };
        if self.inner.cfg.reconnect.enabled {
            // Keep it connected from now on (see docs/RELIABILITY.md): one
            // supervisor per dialled address redials after every loss.
            self.inner.lock_state().dialers.push(d.clone());
            self.inner
                .rt
                .spawn(supervise(self.inner.clone(), d, peer.clone()));
        } else {
            d.stop.cancel();
        }
        Ok(PeerInfo {
            name: peer.name.to_string(),
            addr: peer.addr.clone(),
            inbound: peer.inbound,
        })
    }

    /// Redials every lost peer now, skipping the backoff delay (for example
    /// after the network changed).
    pub fn reconnect_now(&self) {
        for d in &self.inner.lock_state().dialers {
            d.kick.notify_one();
        }
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
        Publish {
            state: PublishState::Start {
                inner: &self.inner,
                path,
                payload: payload.into(),
            },
        }
    }

    /// Like [`publish`](Self::publish) but never waits: a target without room
    /// is skipped, counted as a drop and reported, and the call returns
    /// `BUFFER_FULL`.
    pub fn try_publish(&self, path: &str, payload: impl Into<Bytes>) -> Result<()> {
        let route = self.inner.route(path)?;
        let payload = payload.into();
        let rest = match self.inner.sweep(&route, &payload, false) {
            Swept::Done(r) => return r,
            Swept::Rest(rest) => rest,
        };
        let fut = self.inner.deliver_rest(route, payload, false, rest);
        // Without waiting the rest completes on its first poll.
        let waker = std::task::Waker::noop();
        let mut cx = std::task::Context::from_waker(waker);
        let mut fut = std::pin::pin!(fut);
        match fut.as_mut().poll(&mut cx) {
            std::task::Poll::Ready(r) => r,
            std::task::Poll::Pending => {
                Err(Error::new(ErrorCode::Internal, "try_publish would wait"))
            }
        }
    }

    /// Subscribes to `pattern` with the configured default options.
    ///
    /// Errors: `INVALID_PATH`, `CLOSED`.
    pub fn subscribe(&self, pattern: &str) -> Result<Subscription> {
        self.subscribe_with(pattern, self.inner.cfg.subscribe.clone())
    }

    /// Subscribes with explicit queue options.
    ///
    /// Errors: `INVALID_PATH`, `INVALID_ARGUMENT`, `CLOSED`.
    pub fn subscribe_with(&self, pattern: &str, opts: SubscribeOptions) -> Result<Subscription> {
        opts.validate()?;
        let pattern = Pattern::new(pattern)?;
        let id = self.inner.next_id.fetch_add(1, Relaxed);
        let shared = Arc::new(SubShared::new(id, pattern.clone(), opts));
        self.inner.with_state_change(
            |st| {
                st.subs.insert(id, shared.clone());
                st.declare(DeclKind::Interest, &pattern)
            },
            true,
        )?;
        Ok(Subscription {
            shared,
            ep: Arc::downgrade(&self.inner),
            rt: self.inner.rt.clone(),
            batch: Mutex::new(Default::default()),
            busy: self.inner.cfg.busy_poll,
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
        let shared = sub.shared.clone();
        self.inner.rt.spawn(async move {
            let mut batch = Vec::with_capacity(256);
            loop {
                batch.clear();
                if shared_recv_many(&shared, &mut batch).await == 0 {
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
        let id = self.inner.next_id.fetch_add(1, Relaxed);
        self.inner.with_state_change(
            |st| {
                st.publishers.insert(id, pattern.clone());
                st.declare(DeclKind::Publisher, &pattern)
            },
            false,
        )?;
        Ok(Publisher {
            id,
            pattern,
            ep: Arc::downgrade(&self.inner),
        })
    }

    /// Serves `pattern`: requests on matching paths arrive at the returned
    /// [`Service`]'s `recv`. A pattern may contain wildcards (`users/*`).
    ///
    /// Errors: `INVALID_PATH`, `CLOSED`.
    pub fn serve(&self, pattern: &str) -> Result<Service> {
        self.serve_inner(pattern, true)
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
        let mut svc = self.serve_inner(pattern, false)?;
        let task = self.inner.rt.spawn(run_handler(
            svc.queue.clone(),
            self.inner.cfg.handler_concurrency,
            handler,
        ));
        svc.task = Some(task.abort_handle());
        Ok(svc)
    }

    fn serve_inner(&self, pattern: &str, pull: bool) -> Result<Service> {
        let pattern = Pattern::new(pattern)?;
        let id = self.inner.next_id.fetch_add(1, Relaxed);
        let queue = Arc::new(ServiceQueue::new(
            self.inner.cfg.service_queue,
            self.inner.cfg.service_queue_bytes,
        ));
        let shared = Arc::new(ServiceShared {
            pattern: pattern.clone(),
            queue: queue.clone(),
        });
        self.inner.with_state_change(
            |st| {
                st.services.insert(id, shared);
                st.declare(DeclKind::Service, &pattern)
            },
            false,
        )?;
        Ok(Service {
            id,
            pattern,
            queue,
            pull,
            ep: Arc::downgrade(&self.inner),
            rt: self.inner.rt.clone(),
            task: None,
            busy: self.inner.cfg.busy_poll,
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
        let fut =
            self.inner
                .clone()
                .request(path, payload.into(), RequestOptions::timeout(timeout));
        crate::runtime::busy_poll(self.inner.cfg.busy_poll, fut).await
    }

    /// [`request`](Self::request) with options, e.g. waiting for a responder
    /// to appear instead of failing with `NO_RESPONDERS` at once.
    pub async fn request_with(
        &self,
        path: &str,
        payload: impl Into<Bytes>,
        opts: RequestOptions,
    ) -> Result<Bytes> {
        let fut = self.inner.clone().request(path, payload.into(), opts);
        crate::runtime::busy_poll(self.inner.cfg.busy_poll, fut).await
    }

    /// Measures the round-trip time to the connected peer named `peer`.
    ///
    /// Errors: `UNKNOWN_PEER`, `TIMEOUT` (after `ping_timeout`), `PEER_LOST`, `CLOSED`.
    pub async fn ping(&self, peer: &str) -> Result<Duration> {
        self.inner.check_open()?;
        let p = self.inner.peer_by_name(peer)?;
        let nonce = self.inner.next_id.fetch_add(1, Relaxed);
        let (tx, rx) = oneshot::channel();
        p.pings
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(nonce, (std::time::Instant::now(), tx));
        if let Enq::Closed = p.tx.push_control(&Frame::Ping(nonce)) {
            return Err(p.lost_error("connection closed"));
        }
        let r = tokio::select! {
            r = tokio::time::timeout(self.inner.cfg.ping_timeout, rx) => r,
            _ = p.dead.cancelled() => return Err(p.lost_error("connection closed")),
        };
        match r {
            Ok(Ok(rtt)) => Ok(rtt),
            Ok(Err(_)) => Err(p.lost_error("connection closed")),
            Err(_) => {
                p.pings
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(&nonce);
                Err(Error::new(
                    ErrorCode::Timeout,
                    format!(
                        "no pong from {peer} within {:?}",
                        self.inner.cfg.ping_timeout
                    ),
                ))
            }
        }
    }

    /// The connected peers.
    pub fn peers(&self) -> Vec<PeerInfo> {
        self.inner
            .lock_state()
            .peers
            .iter()
            .map(|p| PeerInfo {
                name: p.name.to_string(),
                addr: p.addr.clone(),
                inbound: p.inbound,
            })
            .collect()
    }

    /// True if a message published on `path` now would reach a subscriber
    /// (local, or a peer with a matching interest).
    ///
    /// Errors: `INVALID_PATH`, `CLOSED`.
    pub fn has_subscribers(&self, path: &str) -> Result<bool> {
        let r = self.inner.route(path)?;
        Ok(!r.peers.is_empty() || !r.subs.is_empty())
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
        self.inner.check_open()?;
        validate_path(path)?;
        let st = self.inner.lock_state();
        Ok(st.local_service(path).is_some() || !st.remote_servers(path).is_empty())
    }

    /// Waits until a request on `path` would find a server, up to `timeout`.
    /// Returns whether one appeared.
    pub async fn wait_for_servers(&self, path: &str, timeout: Duration) -> Result<bool> {
        self.wait_until(timeout, || self.has_servers(path)).await
    }

    async fn wait_until(
        &self,
        timeout: Duration,
        mut ready: impl FnMut() -> Result<bool>,
    ) -> Result<bool> {
        let deadline = Instant::now() + timeout;
        loop {
            let n = self.inner.changed.notified();
            tokio::pin!(n);
            n.as_mut().enable();
            if ready()? {
                return Ok(true);
            }
            if tokio::time::timeout_at(deadline, n).await.is_err() {
                return Ok(false);
            }
        }
    }

    /// Names of the endpoints (this one included) subscribed to something
    /// that overlaps `pattern`.
    pub fn subscribers(&self, pattern: &str) -> Result<Vec<String>> {
        self.inner.discover(DeclKind::Interest, pattern)
    }

    /// Names of the endpoints that declared a publisher overlapping `pattern`.
    pub fn publishers(&self, pattern: &str) -> Result<Vec<String>> {
        self.inner.discover(DeclKind::Publisher, pattern)
    }

    /// Names of the endpoints serving something that overlaps `pattern`.
    pub fn servers(&self, pattern: &str) -> Result<Vec<String>> {
        self.inner.discover(DeclKind::Service, pattern)
    }

    /// Counters in total and per peer, and per-subscription queue figures.
    pub fn stats(&self) -> Stats {
        let st = self.inner.lock_state();
        let mut total = self.inner.totals.snapshot();
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
                    rtt: (rtt > 0).then(|| Duration::from_micros(rtt)),
                    counters: c,
                }
            })
            .collect();
        let subscriptions = st.subs.values().map(|s| s.stats()).collect();
        Stats {
            name: self.inner.name.to_string(),
            total,
            peers,
            subscriptions,
        }
    }

    /// A stream of connection and drop events from now on.
    pub fn events(&self) -> Events {
        Events {
            rx: self.inner.events.subscribe(),
            ended: self.inner.events_ended.clone(),
        }
    }

    /// Closes the endpoint: stops listening, tells every peer (a CLOSE
    /// frame, after what was already queued for it), fails pending requests
    /// with `CLOSED`, and ends every subscription and service. Idempotent.
    pub async fn close(&self) {
        self.inner.close().await
    }

    /// True once closed.
    pub fn is_closed(&self) -> bool {
        self.inner.closed.load(SeqCst)
    }
}

async fn shared_recv_many(s: &Arc<SubShared>, out: &mut Vec<Message>) -> usize {
    // The callback task owns no Subscription; read the shared queue directly.
    s.recv_many(out, 256).await
}

/// A publisher declaration; dropping it withdraws the declaration.
pub struct Publisher {
    id: u64,
    pattern: Pattern,
    ep: Weak<Inner>,
}

impl Publisher {
    /// The declared pattern.
    pub fn pattern(&self) -> &str {
        self.pattern.as_str()
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        if let Some(ep) = self.ep.upgrade() {
            let id = self.id;
            let _ = ep.with_state_change(
                |st| {
                    let p = st.publishers.remove(&id)?;
                    st.undeclare(DeclKind::Publisher, &p)
                },
                false,
            );
        }
    }
}

impl Inner {
    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(SeqCst)
    }

    fn check_open(&self) -> Result<()> {
        if self.closed.load(Relaxed) {
            Err(Error::closed())
        } else {
            Ok(())
        }
    }

    fn lock_state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Counts `n` dropped messages at `site` for the next `Dropped` event.
    pub(crate) fn report_drop(&self, site: &str, n: u64) {
        if n == 0 {
            return;
        }
        let mut d = self.drops.lock().unwrap_or_else(|p| p.into_inner());
        let first = d.is_empty();
        *d.entry(site.to_owned()).or_insert(0) += n;
        drop(d);
        if first {
            self.drops_ready.notify_one();
        }
    }

    /// Emits one `Dropped` event per site with what was counted.
    fn emit_drops(&self) {
        let d = std::mem::take(&mut *self.drops.lock().unwrap_or_else(|p| p.into_inner()));
        for (site, count) in d {
            self.emit(Event::Dropped {
                site,
                code: ErrorCode::BufferFull,
                count,
            });
        }
    }

    pub(crate) fn emit(&self, e: Event) {
        let _ = self.events.send(e);
    }

    /// Applies a change to the routing state and sends the resulting
    /// declaration to every peer, all under the state lock so a peer's
    /// snapshot and later changes arrive in order.
    fn with_state_change(
        &self,
        f: impl FnOnce(&mut State) -> Option<Decl>,
        subs_changed: bool,
    ) -> Result<()> {
        let mut st = self.lock_state();
        // Checked under the lock: close() empties the state under it too.
        self.check_open()?;
        if let Some(d) = f(&mut st) {
            let frame = Frame::Declare(proto::Declarations::new(&[d]));
            for p in &st.peers {
                let _ = p.tx.push_control(&frame);
            }
        }
        self.bump(subs_changed);
        drop(st);
        self.changed.notify_waiters();
        Ok(())
    }

    /// Invalidates every cached route (something they depend on changed
    /// outside a state change, e.g. a dialler gave up).
    pub(crate) fn routes_changed(&self) {
        let _st = self.lock_state();
        self.bump(false);
    }

    fn bump(&self, subs_changed: bool) {
        self.gen.store(next_gen(), SeqCst);
        if subs_changed {
            self.sub_gen.fetch_add(1, SeqCst);
        }
    }

    pub(crate) fn unsubscribe(&self, id: u64) {
        let _ = self.with_state_change(
            |st| {
                let s = st.subs.remove(&id)?;
                st.undeclare(DeclKind::Interest, &s.pattern)
            },
            true,
        );
    }

    pub(crate) fn unserve(&self, id: u64) {
        let _ = self.with_state_change(
            |st| {
                let s = st.services.remove(&id)?;
                st.undeclare(DeclKind::Service, &s.pattern)
            },
            false,
        );
    }

    fn discover(&self, kind: DeclKind, pattern: &str) -> Result<Vec<String>> {
        let pattern = Pattern::new(pattern)?;
        Ok(self.lock_state().discover(&self.name, kind, &pattern))
    }

    fn peer_by_name(&self, name: &str) -> Result<Arc<Peer>> {
        self.lock_state()
            .peers
            .iter()
            .find(|p| &*p.name == name)
            .cloned()
            .ok_or_else(|| {
                Error::new(
                    ErrorCode::UnknownPeer,
                    format!("no connected peer is named {name:?}"),
                )
            })
    }

    /// The route for a publish on `path`, from the cache when still valid.
    fn route(&self, path: &str) -> Result<Arc<Route>> {
        self.check_open()?;
        let gen = self.gen.load(SeqCst);
        // A thread publishing on one path (the common case) finds its route
        // here without the shared cache's lock and hash. Generations are
        // unique across endpoints, so a route of another endpoint never
        // matches; the memo holds it weakly, so it keeps no peer alive.
        let memo = LAST_ROUTE
            .try_with(|m| match &*m.borrow() {
                Some((g, w)) if *g == gen => w.upgrade().filter(|r| &*r.meta.path == path),
                _ => None,
            })
            .ok()
            .flatten();
        if let Some(r) = memo {
            return Ok(r);
        }
        let route = self.route_slow(path, gen)?;
        // During thread teardown the memo may be gone: then just skip it.
        let _ =
            LAST_ROUTE.try_with(|m| *m.borrow_mut() = Some((route.gen, Arc::downgrade(&route))));
        Ok(route)
    }

    fn route_slow(&self, path: &str, gen: u64) -> Result<Arc<Route>> {
        if let Some(r) = self
            .routes
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(path)
        {
            if r.gen == gen {
                return Ok(r.clone());
            }
        }
        validate_path(path)?;
        let route = {
            let st = self.lock_state();
            Arc::new(st.route(
                self.gen.load(SeqCst),
                path,
                self.cfg.max_frame_size,
                &self.name,
            ))
        };
        let mut cache = self.routes.write().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= ROUTE_CACHE_MAX {
            cache.clear();
        }
        cache.insert(path.into(), route.clone());
        Ok(route)
    }

    /// The first part of a publish: every target with room gets the message
    /// now, without waiting. What is left (a full target, a dialled peer that
    /// is away) is returned for [`deliver_rest`](Self::deliver_rest).
    fn sweep(&self, route: &Route, payload: &Bytes, wait: bool) -> Swept {
        let path = &*route.meta.path;
        let frame_len = proto::message_frame_len(path, payload.len());
        if !route.peers.is_empty() && frame_len > route.max_frame {
            return Swept::Done(Err(Error::new(
                ErrorCode::MessageTooLarge,
                format!(
                    "a message of {} bytes on {path} makes a {frame_len}-byte frame; a subscribed peer accepts at most {} bytes",
                    payload.len(),
                    route.max_frame
                ),
            )));
        }
        let mut full_peers = Vec::new();
        for peer in &route.peers {
            if let Enq::Full = peer.tx.push_message(path, payload) {
                full_peers.push(peer.clone());
            }
        }
        let mut skipped = 0usize;
        let mut full_subs = Vec::new();
        if !route.subs.is_empty() {
            let msg = Message {
                meta: route.meta.clone(),
                payload: payload.clone(),
            };
            for sub in &route.subs {
                let r = match sub.push(msg.clone()) {
                    (Push::Full, Some(m)) if wait => {
                        full_subs.push((sub.clone(), m));
                        continue;
                    }
                    (Push::Full, _) => {
                        sub.count_drop(1);
                        Push::Dropped(1)
                    }
                    (r, _) => r,
                };
                skipped += self.sub_pushed(sub, r, wait);
            }
        }
        if full_peers.is_empty() && route.offline.is_empty() && full_subs.is_empty() {
            return Swept::Done(self.skipped(path, skipped, wait));
        }
        Swept::Rest(Rest {
            frame_len,
            full_peers,
            full_subs,
            skipped,
        })
    }

    /// The second part of a publish, for what [`sweep`](Self::sweep) left.
    async fn deliver_rest(
        &self,
        route: Arc<Route>,
        payload: Bytes,
        wait: bool,
        rest: Rest,
    ) -> Result<()> {
        let skipped = rest.skipped
            + self
                .deliver_waiting(
                    &route,
                    &payload,
                    wait,
                    rest.frame_len,
                    rest.full_peers,
                    rest.full_subs,
                )
                .await;
        self.skipped(&route.meta.path, skipped, wait)
    }

    /// A publish's outcome once `skipped` targets had no room.
    fn skipped(&self, path: &str, skipped: usize, wait: bool) -> Result<()> {
        if skipped > 0 {
            return Err(Error::new(
                ErrorCode::BufferFull,
                format!(
                    "{skipped} target(s) of {path} had no room{}; the message was dropped for them",
                    if wait {
                        format!(" within {:?}", self.cfg.send_timeout)
                    } else {
                        String::new()
                    }
                ),
            ));
        }
        Ok(())
    }

    /// The waiting part of a publish: waits (when `wait`) for room
    /// at full peers and subscriptions and holds messages for dialled peers
    /// that are away. Returns how many targets were skipped.
    async fn deliver_waiting(
        &self,
        route: &Route,
        payload: &Bytes,
        wait: bool,
        frame_len: usize,
        full_peers: Vec<Arc<Peer>>,
        full_subs: Vec<(Arc<SubShared>, Message)>,
    ) -> usize {
        let path = &*route.meta.path;
        let mut skipped = 0usize;
        // Read the clock only when something has to wait.
        let mut deadline = None;
        let mut deadline =
            || *deadline.get_or_insert_with(|| Instant::now() + self.cfg.send_timeout);
        for peer in full_peers {
            let policy = self.cfg.slow_peer;
            let may_wait = wait
                && policy != SlowPeer::DropNewest
                && !(policy == SlowPeer::Block && peer.tx.is_stalled());
            let mut sent = false;
            if may_wait {
                while peer.tx.wait_space(deadline(), frame_len).await {
                    match peer.tx.push_message(path, payload) {
                        Enq::Full => continue,
                        _ => {
                            sent = true;
                            break;
                        }
                    }
                }
            }
            if sent {
                continue;
            }
            peer.counters.dropped_send_full.fetch_add(1, Relaxed);
            self.report_drop(&peer.name, 1);
            skipped += 1;
            if may_wait {
                match policy {
                    SlowPeer::Disconnect => self.peer_down(
                        &peer,
                        ErrorCode::BufferFull,
                        &format!(
                            "slow consumer: its send buffer stayed full for {:?}",
                            self.cfg.send_timeout
                        ),
                    ),
                    _ => peer.tx.set_stalled(),
                }
            }
        }
        for d in &route.offline {
            match self.hold(d, &route.meta, payload, wait, deadline()).await {
                Held::Queued => {}
                Held::DroppedOld(n) => self.offline_dropped(d, n),
                Held::Dropped => {
                    self.offline_dropped(d, 1);
                    skipped += 1;
                }
                Held::Successor(p) => {
                    if let Enq::Full = p.tx.push_message(path, payload) {
                        self.offline_dropped(d, 1);
                        skipped += 1;
                    }
                }
            }
        }
        for (sub, m) in full_subs {
            let r = match tokio::time::timeout_at(deadline(), sub.push_wait(m)).await {
                Ok(r) => r,
                Err(_) => {
                    sub.count_drop(1);
                    Push::Dropped(1)
                }
            };
            skipped += self.sub_pushed(&sub, r, wait);
        }
        skipped
    }

    /// Counts and reports what a subscription dropped; 1 if the message
    /// counts as skipped for the publisher (only when it does not wait).
    fn sub_pushed(&self, sub: &SubShared, r: Push, wait: bool) -> usize {
        if let Push::Dropped(n) = r {
            self.totals.dropped_queue_full.fetch_add(n, Relaxed);
            self.report_drop(sub.pattern.as_str(), n);
            if !wait {
                return 1;
            }
        }
        0
    }

    async fn request(
        self: Arc<Self>,
        path: &str,
        payload: Bytes,
        opts: RequestOptions,
    ) -> Result<Bytes> {
        let timeout = opts.timeout;
        self.check_open()?;
        validate_path(path)?;
        if timeout.is_zero() {
            return Err(Error::invalid_argument(
                "request timeout must be greater than zero",
            ));
        }
        let deadline = Instant::now() + timeout;
        let timed_out = || {
            Error::new(
                ErrorCode::Timeout,
                format!("no reply to {path} within {timeout:?}"),
            )
        };
        if opts.wait_for_responder {
            loop {
                let n = self.changed.notified();
                tokio::pin!(n);
                n.as_mut().enable();
                {
                    let st = self.lock_state();
                    if st.local_service(path).is_some() || !st.remote_servers(path).is_empty() {
                        break;
                    }
                }
                self.check_open()?;
                if tokio::time::timeout_at(deadline, n).await.is_err() {
                    return Err(Error::new(
                        ErrorCode::NoResponders,
                        format!("no endpoint serving {path} appeared within {timeout:?}"),
                    ));
                }
            }
        }
        // A local service first: no serialisation at all.
        let local = self.lock_state().local_service(path);
        if let Some(svc) = local {
            let (tx, rx) = oneshot::channel();
            let cancel = CancellationToken::new();
            let _guard = cancel.clone().drop_guard();
            let reply = Reply::new(ReplyTo::Local(tx), cancel.clone());
            let req = Request {
                path: path.into(),
                payload,
                sender: self.name.clone(),
                deadline,
                cancel,
            };
            svc.offer(LOCAL, (req, reply))?;
            return match tokio::time::timeout_at(deadline, rx).await {
                Ok(Ok(r)) => r,
                Ok(Err(_)) => Err(Error::new(ErrorCode::NoResponders, "the service closed")),
                Err(_) => Err(timed_out()),
            };
        }
        // Peers still sending their snapshot may serve it: wait for them.
        let waiting: Vec<Arc<Peer>> = self
            .lock_state()
            .peers
            .iter()
            .filter(|p| !p.snapshot_done.load(SeqCst))
            .cloned()
            .collect();
        for p in waiting {
            let done = async {
                loop {
                    let n = p.snapshot.notified();
                    if p.snapshot_done.load(SeqCst) {
                        break;
                    }
                    tokio::select! { _ = n => {}, _ = p.dead.cancelled() => break }
                }
            };
            if tokio::time::timeout_at(deadline, done).await.is_err() {
                return Err(timed_out());
            }
        }
        let candidates = self.lock_state().remote_servers(path);
        if candidates.is_empty() {
            return Err(Error::new(
                ErrorCode::NoResponders,
                format!("no connected endpoint serves {path}"),
            ));
        }
        let peer = candidates[self.round_robin.fetch_add(1, Relaxed) % candidates.len()].clone();
        let frame_len = proto::FRAME_PREFIX + 24 + path.len() + payload.len();
        if frame_len > peer.max_frame {
            return Err(Error::new(
                ErrorCode::MessageTooLarge,
                format!(
                    "a {}-byte request exceeds peer {}'s limit of {} bytes",
                    payload.len(),
                    peer.name,
                    peer.max_frame
                ),
            ));
        }
        let id = self.next_id.fetch_add(1, Relaxed);
        let (tx, rx) = oneshot::channel();
        peer.lock_pending().insert(id, tx);
        let mut guard = CancelOnDrop {
            peer: peer.clone(),
            id,
            armed: true,
        };
        let timeout_ms = timeout.as_millis().min(u64::MAX as u128) as u64;
        loop {
            match peer.tx.push_request(id, path, timeout_ms, &payload) {
                Enq::Queued => break,
                Enq::Closed => {
                    guard.armed = false;
                    peer.lock_pending().remove(&id);
                    return Err(peer.lost_error("connection closed"));
                }
                Enq::Full => {
                    if !peer.tx.wait_space(deadline, frame_len).await {
                        guard.armed = false;
                        peer.lock_pending().remove(&id);
                        peer.counters.dropped_send_full.fetch_add(1, Relaxed);
                        return Err(Error::new(
                            ErrorCode::BufferFull,
                            format!(
                                "the send buffer to {} stayed full until the deadline",
                                peer.name
                            ),
                        ));
                    }
                }
            }
        }
        peer.counters.requests_out.fetch_add(1, Relaxed);
        match tokio::time::timeout_at(deadline, rx).await {
            Ok(Ok(r)) => {
                guard.armed = false;
                r
            }
            Ok(Err(_)) => {
                guard.armed = false;
                Err(peer.lost_error("connection closed"))
            }
            Err(_) => Err(timed_out()),
        }
    }

    pub(crate) fn changed_notified(&self) -> tokio::sync::futures::Notified<'_> {
        self.changed.notified()
    }

    pub(crate) fn has_peer(&self, name: &str) -> bool {
        self.lock_state().peers.iter().any(|p| &*p.name == name)
    }

    /// Dials once, handshakes, and waits for the peer's snapshot. If a
    /// connection to the same peer already exists (it dialled us), that one
    /// is returned.
    pub(crate) async fn connect_once(self: Arc<Self>, d: &Arc<Dialer>) -> Result<Arc<Peer>> {
        self.check_open()?;
        let connect_timeout = self.cfg.connect_timeout;
        let conn = match tokio::time::timeout(connect_timeout, dial(&d.addr)).await {
            Ok(c) => c?,
            Err(_) => {
                return Err(Error::new(
                    ErrorCode::ConnectRefused,
                    format!(
                        "cannot connect to {}: no answer within {connect_timeout:?}",
                        d.addr
                    ),
                ))
            }
        };
        let deadline = Instant::now() + self.cfg.handshake_timeout;
        // A duplicate of a connection the peer made to us (both dialled):
        // the kept one may still be completing its handshake here; wait
        // for it rather than fail.
        let me = self.clone();
        let existing = |e: Error| async move {
            let me = me;
            let Some(name) = d.name() else { return Err(e) };
            // (Only possible if we listen: otherwise nobody dials us.)
            if e.code() == ErrorCode::NameInUse && me.listeners.load(Relaxed) > 0 {
                let deadline = Instant::now() + me.cfg.handshake_timeout;
                while !me.has_peer(&name) && Instant::now() < deadline {
                    let n = me.changed.notified();
                    tokio::pin!(n);
                    n.as_mut().enable();
                    if me.has_peer(&name) {
                        break;
                    }
                    let _ = tokio::time::timeout_at(deadline, n).await;
                }
            }
            // Only a connection the peer dialled counts (the kept one of a
            // pair); our own refused attempt may still be registered here.
            match me.peer_by_name(&name) {
                Ok(p) if p.inbound => Ok(p),
                _ => Err(e),
            }
        };
        let peer = match self
            .clone()
            .establish(conn, false, Some(d.clone()), None)
            .await
        {
            Ok(p) => p,
            Err(e) => return existing(e).await,
        };
        let wait = async {
            loop {
                let n = peer.snapshot.notified();
                if peer.snapshot_done.load(SeqCst) {
                    return Ok(());
                }
                tokio::select! {
                    _ = n => {}
                    _ = peer.dead.cancelled() => return Err(peer.ended_error("closed during the handshake")),
                }
            }
        };
        match tokio::time::timeout_at(deadline, wait).await {
            Ok(Ok(())) => Ok(peer),
            Ok(Err(e)) => existing(e).await,
            Err(_) => {
                existing(Error::new(
                    ErrorCode::Timeout,
                    format!("peer {} sent no declaration snapshot in time", peer.name),
                ))
                .await
            }
        }
    }

    /// Handshake, registration, and the reader and writer tasks.
    ///
    /// `ticket` is an inbound connection's place among pending handshakes
    /// (see [`crate::admission`]): it is given up once the peer's HELLO is
    /// checked, and if a newer connection evicts it first, this one is closed
    /// with `OVERLOADED`.
    async fn establish(
        self: Arc<Self>,
        conn: Conn,
        inbound: bool,
        dialer: Option<Arc<Dialer>>,
        ticket: Option<Ticket>,
    ) -> Result<Arc<Peer>> {
        let Conn {
            mut reader,
            writer,
            remote,
            origin: _,
        } = conn;
        let fail = |e: Error| {
            self.totals.errors.fetch_add(1, Relaxed);
            tracing::warn!(endpoint = %self.name, addr = %remote, code = %e.code(), "connection refused: {}", e.detail());
            self.emit(Event::ConnectionError {
                addr: remote.clone(),
                code: e.code(),
                detail: e.detail().to_owned(),
            });
            e
        };
        if self.connections.fetch_add(1, SeqCst) >= self.cfg.max_connections {
            self.connections.fetch_sub(1, SeqCst);
            let e = Error::new(
                ErrorCode::Overloaded,
                format!("connection limit of {} reached", self.cfg.max_connections),
            );
            drop(ticket);
            self.refused_for_load(&remote, &e);
            self.reject_for_load(reader, writer, &e).await;
            return Err(e);
        }
        let hello = Hello {
            magic: proto::MAGIC.into(),
            min_version: proto::VERSION_MIN,
            max_version: proto::VERSION_MAX,
            name: self.name.to_string(),
            max_frame: self.cfg.max_frame_size as u32,
            heartbeat_ms: self
                .cfg
                .heartbeat_interval
                .as_millis()
                .min(u32::MAX as u128) as u32,
        };
        // A HELLO is small (at most HANDSHAKE_MAX_FRAME): a pending
        // connection holds no more than what it has sent so far.
        let mut rbuf = BytesMut::with_capacity(256);
        let hs = async {
            let mut out = BytesMut::new();
            proto::encode(&mut out, &Frame::Hello(hello.clone()))?;
            writer
                .write_all(&out[..])
                .await
                .map_err(|e| Error::new(ErrorCode::PeerLost, format!("sending HELLO: {e}")))?;
            let frame = loop {
                match proto::decode(&mut rbuf, proto::HANDSHAKE_MAX_FRAME)? {
                    Decoded::Frame(f) => break f,
                    Decoded::NeedMore(n) => {
                        rbuf.reserve(n.saturating_sub(rbuf.len()).max(64));
                        let n = reader.read_buf(&mut rbuf).await.map_err(|e| {
                            Error::new(ErrorCode::PeerLost, format!("reading HELLO: {e}"))
                        })?;
                        if n == 0 {
                            return Err(Error::new(
                                ErrorCode::PeerLost,
                                "connection closed during the handshake",
                            ));
                        }
                    }
                }
            };
            proto::negotiate(&hello, frame)
        };
        // An inbound connection has `hello_timeout` to send its HELLO.
        let limit = match ticket {
            Some(_) => self.cfg.hello_timeout.min(self.cfg.handshake_timeout),
            None => self.cfg.handshake_timeout,
        };
        let evicted = ticket
            .as_ref()
            .map(|t| t.evicted.clone())
            .unwrap_or_default();
        let outcome = tokio::select! {
            r = tokio::time::timeout(limit, hs) => Some(r),
            _ = evicted.cancelled() => None,
        };
        let agreed = match outcome {
            Some(Ok(Ok(a))) => a,
            Some(Ok(Err(e))) => {
                self.connections.fetch_sub(1, SeqCst);
                // Counted and reported now, not after the CLOSE drained.
                let e = fail(e);
                reject(&mut reader, writer, &e).await;
                return Err(e);
            }
            Some(Err(_)) => {
                self.connections.fetch_sub(1, SeqCst);
                let e = Error::new(
                    ErrorCode::Timeout,
                    format!("handshake not completed within {limit:?}"),
                );
                // Counted and reported now, not after the CLOSE drained.
                let e = fail(e);
                reject(&mut reader, writer, &e).await;
                return Err(e);
            }
            None => {
                self.connections.fetch_sub(1, SeqCst);
                let e = ticket
                    .as_ref()
                    .map(Ticket::evicted_reason)
                    .unwrap_or_else(|| Error::new(ErrorCode::Overloaded, "evicted"));
                drop(ticket);
                self.refused_for_load(&remote, &e);
                self.reject_for_load(reader, writer, &e).await;
                return Err(e);
            }
        };
        // No longer pending: the place goes to the next connection.
        drop(ticket);
        let peer = Arc::new(Peer {
            id: self.next_id.fetch_add(1, Relaxed),
            name: agreed.peer.name.as_str().into(),
            addr: remote.clone(),
            inbound,
            max_frame: agreed.peer.max_frame as usize,
            decls: Mutex::new(Default::default()),
            snapshot_done: AtomicBool::new(false),
            snapshot: Notify::new(),
            tx: SendQueue::new(self.cfg.send_buffer, writer),
            pending: Mutex::new(HashMap::new()),
            serving: Mutex::new(HashMap::new()),
            pings: Mutex::new(HashMap::new()),
            counters: Counters::default(),
            rtt_us: AtomicU64::new(0),
            dead: CancellationToken::new(),
            dialer: dialer.clone(),
            last_rx_ms: AtomicU64::new(now_ms()),
            reading_paused: AtomicBool::new(false),
            replaced: AtomicBool::new(false),
            close_error: Mutex::new(None),
        });
        if let Some(d) = &dialer {
            d.set_name(peer.name.clone());
        }
        let (refused, replaced) = {
            let mut st = self.lock_state();
            if self.closed.load(SeqCst) {
                (Some(Error::closed()), None)
            } else if let Some(pos) = st.peers.iter().position(|p| p.name == peer.name) {
                let old = st.peers[pos].clone();
                // Two connections to one peer. Of a pair dialled in opposite
                // directions (a mesh), both sides keep the one dialled by the
                // endpoint with the smaller name. Of two in the same
                // direction the older stays; if it belongs to a dead process,
                // heartbeats remove it and the newcomer's redial gets in.
                let keep_new = old.inbound != peer.inbound
                    && if peer.inbound {
                        *peer.name < *self.name
                    } else {
                        *self.name < *peer.name
                    };
                if keep_new {
                    st.peers.remove(pos);
                    old.replaced.store(true, SeqCst);
                    self.register(&mut st, &peer);
                    (None, Some(old))
                } else {
                    let e = if old.inbound == peer.inbound {
                        Error::new(
                            ErrorCode::NameInUse,
                            format!("a peer named {:?} is already connected", peer.name),
                        )
                    } else {
                        let dialled_by = if old.inbound {
                            &*peer.name
                        } else {
                            &*self.name
                        };
                        Error::new(
                            ErrorCode::NameInUse,
                            format!("duplicate connection to {}: keeping the one dialled by {dialled_by}", peer.name),
                        )
                    };
                    (Some(e), None)
                }
            } else {
                self.register(&mut st, &peer);
                (None, None)
            }
        };
        if let Some(old) = replaced {
            self.connections.fetch_sub(1, SeqCst);
            self.totals.add(&old.snapshot());
            let _ = old.tx.push_control(&Frame::Close {
                code: ErrorCode::NameInUse.as_u16(),
                reason: format!("replaced by another connection from {}", self.name),
            });
            old.tx.close();
            old.dead.cancel();
        }
        if let Some(e) = refused {
            self.connections.fetch_sub(1, SeqCst);
            let _ = peer.tx.push_control(&Frame::Close {
                code: e.code().as_u16(),
                reason: e.detail().to_owned(),
            });
            peer.tx.close();
            let _ =
                tokio::time::timeout(Duration::from_millis(200), writer_loop(peer.clone())).await;
            drop(peer); // FIN
            drain(&mut reader).await;
            return Err(fail(e));
        }
        self.changed.notify_waiters();
        tracing::info!(endpoint = %self.name, peer = %peer.name, addr = %remote, inbound, version = agreed.version, "peer up");
        self.emit(Event::PeerUp {
            peer: peer.name.to_string(),
            addr: remote.clone(),
        });
        let w = self.rt.spawn(writer_loop(peer.clone()));
        {
            let mut ws = self.writers.lock().unwrap_or_else(|p| p.into_inner());
            ws.retain(|h| !h.is_finished());
            ws.push(w);
        }
        self.rt.spawn(heartbeat(self.clone(), peer.clone()));
        let me = self.clone();
        let p = peer.clone();
        self.rt.spawn(async move {
            let (code, reason) = tokio::select! {
                r = me.clone().read_loop(p.clone(), reader, rbuf) => r,
                _ = p.dead.cancelled() => (ErrorCode::PeerLost, "connection closed".to_owned()),
            };
            me.peer_down(&p, code, &reason);
        });
        Ok(peer)
    }

    /// Adds a peer under the state lock, queueing our snapshot first so that
    /// every later declaration change reaches it after the snapshot.
    fn register(&self, st: &mut State, peer: &Arc<Peer>) {
        let snap = st.snapshot();
        for chunk in snap.chunks(SNAPSHOT_BATCH) {
            let _ = peer
                .tx
                .push_control(&Frame::Declare(proto::Declarations::new(chunk)));
        }
        let _ = peer.tx.push_control(&Frame::SnapshotEnd);
        st.peers.push(peer.clone());
        self.bump(false);
    }

    /// Reads and dispatches frames until the connection ends; returns why.
    ///
    /// Each read's complete frames are frozen into one shared chunk; message
    /// payloads are slices of it. Messages are gathered and handed to each
    /// subscription in one batch (one lock, at most one wakeup), in order.
    async fn read_loop(
        self: Arc<Self>,
        peer: Arc<Peer>,
        mut rd: Reader,
        mut buf: BytesMut,
    ) -> (ErrorCode, String) {
        let mut read_hint = 8 * 1024;
        let mut rx = RxState::default();
        let max_frame = self.cfg.max_frame_size;
        let mut big = BigFrames::default();
        loop {
            let mut end = 0;
            rx.heads.clear();
            let need = loop {
                match proto::peek(&buf[end..], max_frame) {
                    Ok(Peeked::Complete(h)) => {
                        end += h.total;
                        rx.heads.push(h);
                    }
                    Ok(Peeked::NeedMore(n)) => break Ok(n),
                    Err(e) => break Err(e),
                }
            };
            if end > 0 {
                let chunk = buf.split_to(end).freeze();
                if let Err(e) = self.dispatch(&peer, &chunk, &mut rx).await {
                    return self.dispatch_failed(&peer, e);
                }
            }
            let need = match need {
                Ok(n) => n,
                Err(e) => return self.protocol_violation(&peer, e),
            };
            // A large frame whose prefix is checked (`peek` saw its kind and
            // header length) is read into a buffer of its own.
            if need >= LARGE_FRAME && buf.len() >= proto::FRAME_PREFIX {
                let chunk = match big.read(&mut rd, &mut buf, need, &peer).await {
                    Ok(c) => c,
                    Err(r) => return r,
                };
                read_hint = 8 * 1024;
                rx.heads.clear();
                match proto::peek(&chunk, usize::MAX) {
                    Ok(Peeked::Complete(h)) => rx.heads.push(h),
                    _ => {
                        let e = Error::new(ErrorCode::Internal, "incomplete large frame");
                        return self.protocol_violation(&peer, e);
                    }
                }
                if let Err(e) = self.dispatch(&peer, &chunk, &mut rx).await {
                    return self.dispatch_failed(&peer, e);
                }
                continue;
            }
            // Grow toward the frame's size as its bytes arrive, never ahead;
            // an idle link keeps a small buffer, a busy one doubles it.
            // A large frame is finished in its own buffer (above), so its
            // announced length alone grows this one by LARGE_FRAME at most.
            let want = need
                .saturating_sub(buf.len())
                .min(LARGE_FRAME)
                .max(read_hint);
            buf.reserve(want);
            let spare = buf.capacity() - buf.len();
            let r = rd.read_buf(&mut buf).await;
            peer.last_rx_ms.store(now_ms(), Relaxed);
            match read_ended(r) {
                Ok(n) if n == spare && read_hint < 1024 * 1024 => read_hint *= 2,
                Ok(_) => {}
                Err(end) => return end,
            }
        }
    }

    /// Called after each frame that makes something owed to the peer (a
    /// PONG, a RESULT): past `send_buffer` of owed bytes, the rest of what
    /// the peer sent waits, unread, until the writer has taken what is owed.
    /// Each batch
    /// the writer takes is progress; a peer that reads nothing for the
    /// heartbeat window (interval x misses) is cut with `BUFFER_FULL`.
    async fn wait_owed(&self, peer: &Peer) -> Result<()> {
        let window = self.cfg.heartbeat_interval * self.cfg.heartbeat_misses;
        peer.reading_paused.store(true, SeqCst);
        let r = loop {
            let progress = peer.tx.space.notified();
            tokio::pin!(progress);
            progress.as_mut().enable();
            let owed = peer.tx.owed();
            if owed <= self.cfg.send_buffer {
                break Ok(());
            }
            if tokio::time::timeout(window, progress).await.is_err() {
                break Err(Error::new(
                    ErrorCode::BufferFull,
                    format!(
                        "peer {} read nothing for {window:?} while {owed} bytes of replies were owed to it",
                        peer.name
                    ),
                ));
            }
        };
        peer.reading_paused.store(false, SeqCst);
        // The wait was not silence from the peer: its bytes were left unread.
        peer.last_rx_ms.store(now_ms(), Relaxed);
        r
    }

    /// Ends a link whose peer exceeded a per-peer bound: counted, logged,
    /// reported; no CLOSE is queued behind what the peer already left unread.
    fn limit_exceeded(&self, peer: &Peer, e: Error) -> (ErrorCode, String) {
        peer.counters.errors.fetch_add(1, Relaxed);
        tracing::warn!(endpoint = %self.name, peer = %peer.name, code = %e.code(), "closing connection: {}", e.detail());
        self.emit(Event::ConnectionError {
            addr: peer.addr.clone(),
            code: e.code(),
            detail: e.detail().to_owned(),
        });
        (e.code(), e.detail().to_owned())
    }

    /// Why reading ends when handling received frames failed: the endpoint
    /// closing, or the peer breaking the protocol.
    fn dispatch_failed(&self, peer: &Arc<Peer>, e: Error) -> (ErrorCode, String) {
        match e.code() {
            ErrorCode::Closed => (ErrorCode::Closed, e.detail().to_owned()),
            // A per-peer bound (see `wait_owed`): no CLOSE is queued behind
            // what the peer already leaves unread.
            ErrorCode::BufferFull => self.limit_exceeded(peer, e),
            _ => self.protocol_violation(peer, e),
        }
    }

    /// Handles every frame of `chunk`, whose heads are in `rx.heads`.
    async fn dispatch(&self, peer: &Arc<Peer>, chunk: &Bytes, rx: &mut RxState) -> Result<()> {
        let (mut n_in, mut b_in) = (0u64, 0u64);
        let mut at = 0;
        let heads = std::mem::take(&mut rx.heads);
        let r = async {
            for &head in &heads {
                if head.kind == proto::Kind::Message {
                    let frame = &chunk[at..at + head.total];
                    let payload =
                        chunk.slice(at + proto::FRAME_PREFIX + head.hlen..at + head.total);
                    n_in += 1;
                    b_in += payload.len() as u64;
                    match proto::message_path_range(frame, head) {
                        Some(r) => self.gather(peer, &frame[r], payload, rx)?,
                        None => {
                            if let Frame::Message { path, payload } =
                                proto::parse_frame(chunk, at, head)?
                            {
                                self.gather(peer, &path, payload, rx)?;
                            }
                        }
                    }
                    if rx.payloads.len() >= 1024 {
                        self.flush(peer, rx, chunk.len()).await?;
                    }
                } else {
                    self.flush(peer, rx, chunk.len()).await?;
                    let f = match proto::parse_frame(chunk, at, head)? {
                        Frame::Request {
                            id,
                            path,
                            timeout_ms,
                            payload,
                        } => Frame::Request {
                            id,
                            path,
                            timeout_ms,
                            payload: detach(payload, chunk.len()),
                        },
                        Frame::Result {
                            id,
                            code,
                            message,
                            payload,
                        } => Frame::Result {
                            id,
                            code,
                            message,
                            payload: detach(payload, chunk.len()),
                        },
                        other => other,
                    };
                    self.on_frame(peer, f).await?;
                    // A peer that does not read what it is owed (replies,
                    // pongs) is not read from either until it does.
                    if peer.tx.owed() > self.cfg.send_buffer {
                        self.wait_owed(peer).await?;
                    }
                    // A megabyte of requests is thousands of frames: take
                    // turns with the other connections' tasks every 128.
                    tokio::task::consume_budget().await;
                }
                at += head.total;
            }
            self.flush(peer, rx, chunk.len()).await
        }
        .await;
        rx.heads = heads;
        peer.counters.msgs_in.fetch_add(n_in, Relaxed);
        peer.counters.bytes_in.fetch_add(b_in, Relaxed);
        r
    }

    /// Adds a received message to the batch, if a local subscription wants it.
    fn gather(
        &self,
        peer: &Arc<Peer>,
        path: &[u8],
        payload: Bytes,
        rx: &mut RxState,
    ) -> Result<()> {
        let gen = self.sub_gen.load(Relaxed);
        // Consecutive messages on one path (the common case) skip the hash.
        let same = rx
            .last
            .as_ref()
            .is_some_and(|r| r.gen == gen && *r.path == *path);
        if !same {
            let Some(route) = self.rx_route(peer, path, gen, &mut rx.cache)? else {
                return Ok(());
            };
            rx.last = Some(route);
        }
        let starts_run = match (rx.runs.last(), &rx.last) {
            (Some((r, _)), Some(last)) => !Arc::ptr_eq(r, last),
            _ => true,
        };
        if starts_run {
            if let Some(last) = &rx.last {
                rx.runs.push((last.clone(), rx.payloads.len()));
            }
        }
        rx.payloads.push(payload);
        Ok(())
    }

    /// The local route of a received message's path; `None` if no local
    /// subscription wants it (the peer raced our unsubscribe).
    fn rx_route(
        &self,
        peer: &Arc<Peer>,
        path: &[u8],
        gen: u64,
        cache: &mut RxCache,
    ) -> Result<Option<Arc<RxRoute>>> {
        if let Some(r) = cache.map.get(path) {
            if r.gen == gen {
                return Ok((!r.subs.is_empty()).then(|| r.clone()));
            }
        }
        let text = std::str::from_utf8(path)
            .map_err(|_| Error::new(ErrorCode::ProtocolError, "message path is not UTF-8"))?;
        validate_path(text).map_err(|e| {
            Error::new(
                ErrorCode::ProtocolError,
                format!("message with invalid path: {}", e.detail()),
            )
        })?;
        let key = Bytes::copy_from_slice(path);
        let r = {
            let st = self.lock_state();
            let subs = st.local_subs(text);
            Arc::new(RxRoute {
                gen: self.sub_gen.load(SeqCst),
                path: key.clone(),
                // Nobody receives a message on a route without subscriptions.
                meta: Arc::new(Meta {
                    path: if subs.is_empty() {
                        "".into()
                    } else {
                        text.into()
                    },
                    sender: peer.name.clone(),
                }),
                subs,
            })
        };
        if cache.map.len() >= ROUTE_CACHE_MAX || cache.bytes + key.len() > RX_CACHE_BYTES {
            cache.map.clear();
            cache.bytes = 0;
        }
        cache.bytes += key.len();
        if let Some(old) = cache.map.insert(key, r.clone()) {
            cache.bytes -= old.path.len();
        }
        Ok((!r.subs.is_empty()).then_some(r))
    }

    /// Hands gathered messages to their subscriptions, in order; under the
    /// Block policy waits for room (the connection stops reading meanwhile).
    ///
    /// A run whose payloads are small beside the chunk they were read in is
    /// first copied into a buffer of its own (see [`detach`]).
    async fn flush(&self, peer: &Peer, rx: &mut RxState, chunk_len: usize) -> Result<()> {
        let RxState { runs, payloads, .. } = rx;
        for (r, (route, start)) in runs.iter().enumerate() {
            let end = runs.get(r + 1).map_or(payloads.len(), |next| next.1);
            detach_run(&mut payloads[*start..end], chunk_len);
            let last = route.subs.len().saturating_sub(1);
            for (k, sub) in route.subs.iter().enumerate() {
                // The last subscription takes the payloads; the others share.
                let mut at = *start;
                while let Ok((n, dropped)) =
                    sub.push_run(&route.meta, &mut payloads[at..end], k == last)
                {
                    if dropped > 0 {
                        peer.counters.dropped_queue_full.fetch_add(dropped, Relaxed);
                        self.report_drop(sub.pattern.as_str(), dropped);
                    }
                    at += n;
                    if at == end {
                        break;
                    }
                    tokio::select! {
                        _ = sub.wait_space() => {}
                        _ = self.shutdown.cancelled() => return Err(Error::closed()),
                    }
                }
            }
        }
        runs.clear();
        payloads.clear();
        Ok(())
    }

    fn protocol_violation(&self, peer: &Peer, e: Error) -> (ErrorCode, String) {
        peer.counters.errors.fetch_add(1, Relaxed);
        tracing::warn!(endpoint = %self.name, peer = %peer.name, code = %e.code(), "closing connection: {}", e.detail());
        self.emit(Event::ConnectionError {
            addr: peer.addr.clone(),
            code: e.code(),
            detail: e.detail().to_owned(),
        });
        let _ = peer.tx.push_control(&Frame::Close {
            code: e.code().as_u16(),
            reason: e.detail().to_owned(),
        });
        peer.tx.close();
        (e.code(), e.detail().to_owned())
    }

    async fn on_frame(&self, peer: &Arc<Peer>, f: Frame) -> Result<()> {
        match f {
            // Gathered and delivered in batches by `read_loop`.
            Frame::Message { .. } => {}
            Frame::Request {
                id,
                path,
                timeout_ms,
                payload,
            } => {
                peer.counters.requests_in.fetch_add(1, Relaxed);
                validate_path(&path).map_err(|e| {
                    Error::new(
                        ErrorCode::ProtocolError,
                        format!("request with invalid path: {}", e.detail()),
                    )
                })?;
                let svc = self.lock_state().local_service(&path);
                let Some(svc) = svc else {
                    let _ = peer.tx.push_result(
                        id,
                        ErrorCode::NoResponders.as_u16(),
                        &format!("{} does not serve {path}", self.name),
                        &Bytes::new(),
                    );
                    return Ok(());
                };
                let cancel = CancellationToken::new();
                if peer.lock_serving().insert(id, cancel.clone()).is_some() {
                    return Err(Error::new(
                        ErrorCode::ProtocolError,
                        format!("REQUEST id {id} is already in flight on this connection"),
                    ));
                }
                let deadline = Instant::now() + Duration::from_millis(timeout_ms);
                let req = Request {
                    path: path.into(),
                    payload,
                    sender: peer.name.clone(),
                    deadline,
                    cancel,
                };
                let reply = Reply::new(
                    ReplyTo::Remote {
                        peer: peer.clone(),
                        id,
                    },
                    req.cancel.clone(),
                );
                // Refused or pushed-out requests are failed by `offer`.
                let _ = svc.offer(peer.id, (req, reply));
            }
            Frame::Result {
                id,
                code,
                message,
                payload,
            } => {
                let tx = peer.lock_pending().remove(&id);
                if let Some(tx) = tx {
                    let r = if code == 0 {
                        Ok(payload)
                    } else {
                        let c = ErrorCode::from_u16(code).unwrap_or(ErrorCode::HandlerError);
                        Err(Error::new(c, message))
                    };
                    let _ = tx.send(r);
                }
            }
            Frame::Cancel(id) => {
                if let Some(t) = peer.lock_serving().remove(&id) {
                    t.cancel();
                }
            }
            Frame::Ping(n) => {
                let _ = peer.tx.push_control(&Frame::Pong(n));
            }
            Frame::Pong(n) => {
                let entry = peer
                    .pings
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&n);
                if let Some((sent, tx)) = entry {
                    let rtt = sent.elapsed();
                    peer.rtt_us.store(rtt.as_micros().max(1) as u64, Relaxed);
                    let _ = tx.send(rtt);
                }
            }
            Frame::Declare(items) => self.apply_declarations(peer, items)?,
            Frame::SnapshotEnd => {
                // Only this connection's reader sets it.
                if peer.snapshot_done.load(SeqCst) {
                    return Err(Error::new(
                        ErrorCode::ProtocolError,
                        "a second SNAPSHOT_END on this connection",
                    ));
                }
                {
                    // Under the state lock: what was held for this peer while
                    // it was away goes out before anything routed to it now.
                    let _st = self.lock_state();
                    if let Some(d) = &peer.dialer {
                        self.flush_offline(d, peer);
                    }
                    peer.snapshot_done.store(true, SeqCst);
                    self.bump(false);
                }
                peer.snapshot.notify_waiters();
                self.changed.notify_waiters();
            }
            Frame::Close { code, reason } => {
                let c = ErrorCode::from_u16(code).unwrap_or(ErrorCode::Closed);
                let why = if code == 0 {
                    format!("peer closed: {reason}")
                } else {
                    format!("peer closed with {c}: {reason}")
                };
                if code != 0 {
                    *peer.close_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(Error::new(
                        c,
                        format!("peer {} refused: {reason}", peer.name),
                    ));
                }
                return Err(Error::new(ErrorCode::Closed, why));
            }
            Frame::Hello(_) => {
                return Err(Error::new(
                    ErrorCode::ProtocolError,
                    "HELLO after the handshake",
                ));
            }
        }
        Ok(())
    }

    /// Applies a peer's declarations one at a time, checking each against
    /// the per-peer limits before it is stored: a frame of a million items
    /// is refused at the first one over the limit, having allocated for none
    /// beyond it.
    fn apply_declarations(&self, peer: &Arc<Peer>, list: proto::Declarations) -> Result<()> {
        let max_count = self.cfg.max_declarations_per_peer;
        let max_bytes = self.cfg.max_declaration_bytes_per_peer;
        let r = {
            // Only the peer's own table is locked while items are applied;
            // the generation bump below (under the state lock) invalidates
            // any route computed meanwhile.
            let mut decls = peer.lock_decls();
            list.iter().try_for_each(|d| {
                validate_pattern(d.pattern).map_err(|e| {
                    Error::new(
                        ErrorCode::ProtocolError,
                        format!("declaration with invalid pattern: {}", e.detail()),
                    )
                })?;
                if !d.declare {
                    decls.remove(d.kind, d.pattern);
                    return Ok(());
                }
                if decls.contains(d.kind, d.pattern) {
                    return Ok(());
                }
                if decls.len() >= max_count {
                    return Err(Error::new(
                        ErrorCode::ProtocolError,
                        format!("peer exceeded the limit of {max_count} declarations"),
                    ));
                }
                if decls.text_bytes() + d.pattern.len() > max_bytes {
                    return Err(Error::new(
                        ErrorCode::ProtocolError,
                        format!(
                            "peer exceeded the limit of {max_bytes} bytes of declared patterns"
                        ),
                    ));
                }
                decls.insert(d.kind, d.pattern);
                Ok(())
            })
        };
        {
            let _st = self.lock_state();
            self.bump(false);
        }
        self.changed.notify_waiters();
        r
    }

    pub(crate) fn peer_down(&self, peer: &Arc<Peer>, code: ErrorCode, reason: &str) {
        let closing = self.closed.load(SeqCst);
        let (removed, redial_by) = {
            let mut st = self.lock_state();
            // Only addresses whose connect() succeeded are kept connected.
            let redial_by = peer
                .dialer
                .as_ref()
                .filter(|d| {
                    !closing
                        && !peer.replaced.load(SeqCst)
                        && self.cfg.reconnect.enabled
                        && !d.stop.is_cancelled()
                        && st.dialers.iter().any(|x| Arc::ptr_eq(x, d))
                })
                .cloned();
            let before = st.peers.len();
            st.peers.retain(|p| p.id != peer.id);
            let removed = st.peers.len() != before;
            if removed {
                if let Some(d) = &redial_by {
                    self.go_offline(d, peer);
                }
                self.bump(false);
                // Cached routes hold the peer (and its socket): forget them.
                self.routes
                    .write()
                    .unwrap_or_else(|p| p.into_inner())
                    .clear();
            }
            (removed, redial_by)
        };
        peer.tx.close();
        peer.dead.cancel();
        let err = if closing {
            Error::new(ErrorCode::Closed, "the endpoint was closed")
        } else {
            peer.lost_error(reason)
        };
        peer.fail_in_flight(&err);
        if removed {
            self.connections.fetch_sub(1, SeqCst);
            self.totals.add(&peer.snapshot());
            self.changed.notify_waiters();
            tracing::info!(endpoint = %self.name, peer = %peer.name, code = %code, "peer down: {reason}");
            self.emit(Event::PeerDown {
                peer: peer.name.to_string(),
                addr: peer.addr.clone(),
                reason: reason.to_owned(),
                code,
            });
            // The dialler's supervisor (see `link::supervise`) sees `dead`
            // and redials; nothing is spawned here, so a link refused during
            // a redial cannot start a second redial loop.
            let _ = redial_by;
        }
    }

    async fn close(&self) {
        if self.closed.swap(true, SeqCst) {
            return;
        }
        self.shutdown.cancel();
        let (peers, subs, services) = {
            let mut st = self.lock_state();
            let peers = std::mem::take(&mut st.peers);
            let subs: Vec<_> = std::mem::take(&mut st.subs).into_values().collect();
            let services: Vec<_> = std::mem::take(&mut st.services).into_values().collect();
            st.counts.clear();
            st.publishers.clear();
            for d in std::mem::take(&mut st.dialers) {
                d.stop.cancel();
                self.abandon_offline(&d);
            }
            self.bump(true);
            (peers, subs, services)
        };
        self.changed.notify_waiters();
        for p in &peers {
            let _ = p.tx.push_control(&Frame::Close {
                code: 0,
                reason: format!("endpoint {} closed", self.name),
            });
            p.tx.close();
            p.fail_in_flight(&Error::new(ErrorCode::Closed, "the endpoint was closed"));
            self.totals.add(&p.snapshot());
            self.emit(Event::PeerDown {
                peer: p.name.to_string(),
                addr: p.addr.clone(),
                reason: "closed by this endpoint".into(),
                code: ErrorCode::Closed,
            });
        }
        for s in subs {
            s.close();
        }
        // Pull services see the end (`recv` returns `None`); what was still
        // queued fails with CLOSED.
        for s in services {
            for (_, reply) in s.queue.close() {
                reply.fail(Error::new(ErrorCode::Closed, "the endpoint was closed"));
            }
        }
        // Let writers flush what was queued, then the CLOSE frame.
        let writers: Vec<_> =
            std::mem::take(&mut *self.writers.lock().unwrap_or_else(|p| p.into_inner()));
        let flush = async {
            for w in writers {
                let _ = w.await;
            }
        };
        let _ = tokio::time::timeout(Duration::from_secs(2), flush).await;
        for p in &peers {
            p.dead.cancel();
        }
        self.emit_drops();
        self.events_ended.cancel();
        tracing::info!(endpoint = %self.name, "closed");
    }
}

struct CancelOnDrop {
    peer: Arc<Peer>,
    id: u64,
    armed: bool,
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if self.armed && self.peer.lock_pending().remove(&self.id).is_some() {
            let _ = self.peer.tx.push_control(&Frame::Cancel(self.id));
        }
    }
}

/// A received payload may keep the whole chunk it was read in alive (up to
/// a megabyte) for as long as a queue holds it. One that is less than a
/// quarter of its chunk is copied out, so what a queue holds is at most
/// four times the payload bytes it counts (docs/RELIABILITY.md,
/// "Amplification budget").
const DETACH_RATIO: usize = 4;

fn detach(payload: Bytes, chunk_len: usize) -> Bytes {
    if payload.len().saturating_mul(DETACH_RATIO) < chunk_len {
        Bytes::copy_from_slice(&payload)
    } else {
        payload
    }
}

/// [`detach`] for a run of messages: copied together into one buffer.
fn detach_run(payloads: &mut [Bytes], chunk_len: usize) {
    let total: usize = payloads.iter().map(Bytes::len).sum();
    if total.saturating_mul(DETACH_RATIO) >= chunk_len {
        return;
    }
    let mut buf = BytesMut::with_capacity(total);
    for p in payloads.iter() {
        buf.extend_from_slice(p);
    }
    let buf = buf.freeze();
    let mut at = 0;
    for p in payloads.iter_mut() {
        let n = p.len();
        *p = buf.slice(at..at + n);
        at += n;
    }
}

/// Refusals for load (connection limit, pending handshakes), reported at
/// most once per [`LOAD_REPORT_EVERY`]: under a flood of connections, one
/// log line and one event a second say how many, instead of one each.
#[derive(Default)]
struct LoadReports {
    last: Option<Instant>,
    unreported: u64,
}

const LOAD_REPORT_EVERY: Duration = Duration::from_secs(1);

impl Inner {
    /// Counts a connection refused or evicted for load, and reports it
    /// (rate-limited, see [`LoadReports`]).
    fn refused_for_load(&self, addr: &str, e: &Error) {
        self.totals.errors.fetch_add(1, Relaxed);
        let n = {
            let mut r = self.load_reports.lock().unwrap_or_else(|p| p.into_inner());
            r.unreported += 1;
            let now = Instant::now();
            if r.last
                .is_some_and(|t| now.duration_since(t) < LOAD_REPORT_EVERY)
            {
                return;
            }
            r.last = Some(now);
            std::mem::take(&mut r.unreported)
        };
        let detail = if n > 1 {
            format!(
                "{} ({n} connections refused since the last report)",
                e.detail()
            )
        } else {
            e.detail().to_owned()
        };
        tracing::warn!(endpoint = %self.name, addr = %addr, code = %e.code(), "connection refused: {detail}");
        self.emit(Event::ConnectionError {
            addr: addr.to_owned(),
            code: e.code(),
            detail,
        });
    }
}

/// Connections refused for load that may linger, draining, at once.
const LOAD_DRAINS: usize = 64;

impl Inner {
    /// Tells a peer refused for load why (a CLOSE frame, then FIN) without
    /// waiting to write: the CLOSE fits an empty socket buffer. Closing with
    /// unread bytes would reset the connection and could destroy the CLOSE
    /// before the peer reads it (a real client sends its HELLO at once), so
    /// the connection lingers, discarding what arrives, until the peer
    /// closes or for at most 100 ms; at most [`LOAD_DRAINS`] linger at once,
    /// beyond that they close at once.
    async fn reject_for_load(&self, mut r: Reader, w: crate::transport::Wire, e: &Error) {
        let mut out = BytesMut::new();
        if proto::encode(
            &mut out,
            &Frame::Close {
                code: e.code().as_u16(),
                reason: e.detail().to_owned(),
            },
        )
        .is_ok()
        {
            let _ = w.try_write_vectored(&[std::io::IoSlice::new(&out)]);
        }
        w.shutdown();
        let Ok(_permit) = self.drains.try_acquire() else {
            return;
        };
        let _ = tokio::time::timeout(Duration::from_millis(100), async {
            let mut sink = vec![0u8; 4096];
            let mut left = 64 * 1024;
            while left > 0 {
                match r.read(&mut sink).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => left -= n.min(left),
                }
            }
        })
        .await;
    }
}

/// Tells a refused peer why (a CLOSE frame, then FIN) and drains what it
/// already sent for a moment, so the kernel does not answer with a reset that
/// would destroy the CLOSE before the peer reads it.
async fn reject(r: &mut Reader, w: crate::transport::Wire, e: &Error) {
    let mut out = BytesMut::new();
    if proto::encode(
        &mut out,
        &Frame::Close {
            code: e.code().as_u16(),
            reason: e.detail().to_owned(),
        },
    )
    .is_ok()
    {
        let _ = tokio::time::timeout(Duration::from_millis(200), async {
            let _ = w.write_all(&out).await;
        })
        .await;
    }
    drop(w); // FIN
    drain(r).await;
}

/// Reads and discards what a refused peer already sent, briefly and boundedly.
async fn drain(r: &mut Reader) {
    let _ = tokio::time::timeout(Duration::from_millis(200), async {
        let mut sink = vec![0u8; 4096];
        let mut left = 256 * 1024;
        while left > 0 {
            match r.read(&mut sink).await {
                Ok(0) | Err(_) => break,
                Ok(n) => left -= n.min(left),
            }
        }
    })
    .await;
}

/// How long drops are gathered before they are reported.
const DROP_REPORT_WINDOW: Duration = Duration::from_millis(20);

/// Turns counted drops into `Dropped` events: the first drop of a burst
/// starts a short window, then one event per site carries the whole count.
async fn report_drops(inner: Weak<Inner>) {
    loop {
        let (ready, shutdown) = match inner.upgrade() {
            Some(i) => (i.clone(), i.shutdown.clone()),
            None => return,
        };
        tokio::select! {
            _ = ready.drops_ready.notified() => {}
            _ = shutdown.cancelled() => {
                ready.emit_drops();
                return;
            }
        }
        drop(ready);
        tokio::time::sleep(DROP_REPORT_WINDOW).await;
        match inner.upgrade() {
            Some(i) => i.emit_drops(),
            None => return,
        }
    }
}

async fn accept_loop(inner: Arc<Inner>, listener: Listener) {
    let mut failures = 0u64;
    loop {
        let conn = tokio::select! {
            _ = inner.shutdown.cancelled() => break,
            r = listener.accept() => r,
        };
        match conn {
            Ok(conn) => {
                failures = 0;
                let ticket = inner.admission.admit(conn.origin.clone());
                let inner2 = inner.clone();
                inner
                    .rt
                    .spawn(async move { inner2.establish(conn, true, None, Some(ticket)).await });
                // Let the new handshake run before the next accept: a client
                // that sent its HELLO at once is through before a burst of
                // newer connections could evict it.
                tokio::task::yield_now().await;
            }
            Err(e) => {
                // Out of descriptors and the like: back off instead of
                // spinning, and say so once per burst, not every 50 ms.
                failures += 1;
                inner.totals.errors.fetch_add(1, Relaxed);
                if failures == 1 || failures % 100 == 0 {
                    tracing::warn!(endpoint = %inner.name, error = %e, failures, "accept failed");
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        }
    }
}
