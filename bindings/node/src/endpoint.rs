//! `NativeEndpoint`: the core endpoint, its options, peers and stats.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use napi::bindgen_prelude::*;
use napi_derive::napi;
use netchan::{Config, ErrorCode, Overflow, RequestOptions, SlowPeer, SubscribeOptions};
use tokio::runtime::Handle;
use tokio::sync::watch;

use crate::events::{spawn_events, EventObj, NativeEventStream};
use crate::recv::{NativeService, NativeSubscription};
use crate::stream::{
    open, stream_options, stream_serve_options, NativeStream, NativeStreamService, StreamOpts,
    StreamServeOpts,
};
use crate::{code_err, poll_now, promise, promise_spin, Hold, OrThrow};

/// Endpoint options (all optional); times in milliseconds.
#[napi(object)]
#[derive(Default)]
pub struct EndpointOptions {
    /// Unique among the endpoints it talks to; default a random `ep-...` name.
    pub name: Option<String>,
    /// Largest frame accepted from a peer, in bytes (default 16 MiB).
    pub max_frame_size: Option<f64>,
    /// Idle time before a heartbeat ping (default 2000).
    pub heartbeat_interval_ms: Option<f64>,
    /// Missed heartbeats before a peer is declared lost (default 3).
    pub heartbeat_misses: Option<u32>,
    /// Redial connected addresses after a loss (default true).
    pub reconnect: Option<bool>,
    /// Time allowed to dial (default 5000).
    pub connect_timeout_ms: Option<f64>,
    /// Time allowed for a handshake (default 5000).
    pub handshake_timeout_ms: Option<f64>,
    /// Bytes queued per peer before publishers wait (default 8 MiB).
    pub send_buffer: Option<f64>,
    /// How long publish waits for room in a peer's buffer (default 10000).
    pub send_timeout_ms: Option<f64>,
    /// `"block"` (default), `"drop_newest"` or `"disconnect"`.
    pub slow_peer: Option<String>,
    /// Bytes buffered per dialled peer while it is being redialled.
    pub offline_buffer: Option<f64>,
    /// Time ping waits for a pong (default 5000).
    pub ping_timeout_ms: Option<f64>,
    /// Default subscription queue bound in messages (the core's
    /// `subscribe.capacity`, default 16384).
    pub subscribe_capacity: Option<f64>,
    /// Default subscription queue bound in bytes (`subscribe.max_bytes`,
    /// default 64 MiB).
    pub subscribe_max_bytes: Option<f64>,
    /// Default overflow policy (`subscribe.overflow`): `"block"`,
    /// `"drop_oldest"`, `"drop_newest"`, `"disconnect"`.
    pub subscribe_overflow: Option<String>,
    /// Requests queued per service before new ones are refused (default 1024).
    pub service_queue: Option<f64>,
    /// The core's `busy_poll`, in microseconds (0 to 1000000; default the
    /// core's, 0: off): how long a request of this endpoint polls for its
    /// reply, and one of its services for the next request after it
    /// answered, on the JS thread before the event loop goes on.
    pub busy_poll_us: Option<f64>,
    /// Bytes a stream's other side may send before this side reads, by
    /// default (the core's `stream_window`, 1 MiB).
    pub stream_window: Option<f64>,
    /// TLS for `tls://` addresses (docs/SECURITY.md).
    pub tls: Option<TlsOptions>,
    /// Allow plaintext `tcp://` beyond this host (refused by default with
    /// `PLAINTEXT_REFUSED`).
    pub insecure: Option<bool>,
    /// Any core setting by the name `netchan settings` lists
    /// (`{ 'send_buffer': '1MiB' }`); the options above win over it.
    pub settings: Option<std::collections::HashMap<String, Either3<String, f64, bool>>>,
}

/// TLS settings: each PEM a file's path (a string) or the PEM itself (a
/// `Buffer`, or a string starting with `-----BEGIN`).
#[napi(object)]
#[derive(Default)]
pub struct TlsOptions {
    /// This endpoint's certificate chain.
    pub cert: Option<Either<String, Buffer>>,
    /// The private key of `cert`.
    pub key: Option<Either<String, Buffer>>,
    /// CA certificates that sign the peers' certificates.
    pub ca: Option<Either<String, Buffer>>,
    /// Peers' certificates trusted as they are.
    pub pinned: Option<Either<String, Buffer>>,
    /// `"none"` (default), `"optional"` or `"required"` (mutual TLS).
    pub client_auth: Option<String>,
    /// The name the dialled peer's certificate must carry, instead of the host.
    pub server_name: Option<String>,
}

/// A PEM option: a `Buffer` is the PEM text, a string a path (or PEM text
/// if it starts with `-----BEGIN`).
fn pem(name: &str, v: Either<String, Buffer>) -> netchan::Result<netchan::Pem> {
    match v {
        Either::A(s) => Ok(netchan::Pem::parse(&s)),
        Either::B(b) => String::from_utf8(b.to_vec())
            .map(netchan::Pem::Text)
            .map_err(|_| {
                netchan::Error::new(
                    ErrorCode::InvalidArgument,
                    format!("tls.{name}: a PEM Buffer must be text (-----BEGIN ...)"),
                )
            }),
    }
}

fn apply_tls(c: &mut Config, t: TlsOptions) -> netchan::Result<()> {
    if let Some(v) = t.client_auth {
        c.set("tls.client_auth", &v)?;
    }
    if let Some(v) = t.server_name {
        c.set("tls.server_name", &v)?;
    }
    let tls = c.tls.get_or_insert_with(netchan::TlsConfig::default);
    for (name, v, slot) in [
        ("cert", t.cert, &mut tls.cert),
        ("key", t.key, &mut tls.key),
        ("ca", t.ca, &mut tls.ca),
        ("pinned", t.pinned, &mut tls.pinned),
    ] {
        if let Some(v) = v {
            *slot = Some(pem(name, v)?);
        }
    }
    Ok(())
}

/// Per-subscription queue options.
#[napi(object)]
#[derive(Default)]
pub struct SubscribeOpts {
    /// Queue bound in messages.
    pub capacity: Option<f64>,
    /// Queue bound in payload bytes.
    pub max_bytes: Option<f64>,
    /// `"block"`, `"drop_oldest"`, `"drop_newest"` or `"disconnect"`.
    pub overflow: Option<String>,
}

/// Per-service queue options (`maxConcurrent` is applied by the JS
/// `Service`, which runs the handler).
#[napi(object)]
#[derive(Default)]
pub struct ServeOpts {
    /// Requests waiting at most; past that one is refused with `BUFFER_FULL`.
    pub queue: Option<f64>,
    /// Bytes of requests waiting at most.
    pub queue_bytes: Option<f64>,
}

/// A connected peer.
#[napi(object)]
pub struct PeerInfo {
    /// Its endpoint name.
    pub name: String,
    /// Its address as seen from here.
    pub addr: String,
    /// True if it dialled us.
    pub inbound: bool,
    /// What it proved when it connected: `cert:NAME`, `key:ID`, `uid:N`
    /// or `anonymous`.
    pub identity: String,
}

impl From<netchan::PeerInfo> for PeerInfo {
    fn from(p: netchan::PeerInfo) -> PeerInfo {
        PeerInfo {
            name: p.name,
            addr: p.addr,
            inbound: p.inbound,
            identity: p.identity,
        }
    }
}

/// Failed connection attempts from one remote address (without its port).
#[napi(object)]
pub struct FailedAttempts {
    pub addr: String,
    pub count: f64,
}

/// Counters (numbers; exact up to 2^53).
#[napi(object)]
pub struct CounterStats {
    pub msgs_in: f64,
    pub msgs_out: f64,
    pub bytes_in: f64,
    pub bytes_out: f64,
    pub requests_in: f64,
    pub requests_out: f64,
    pub requests_refused: f64,
    pub dropped_queue_full: f64,
    pub dropped_send_full: f64,
    pub lost_with_link: f64,
    pub errors: f64,
    pub denied: f64,
    pub rate_limited: f64,
}

impl From<netchan::CounterStats> for CounterStats {
    fn from(c: netchan::CounterStats) -> CounterStats {
        CounterStats {
            msgs_in: c.msgs_in as f64,
            msgs_out: c.msgs_out as f64,
            bytes_in: c.bytes_in as f64,
            bytes_out: c.bytes_out as f64,
            requests_in: c.requests_in as f64,
            requests_out: c.requests_out as f64,
            requests_refused: c.requests_refused as f64,
            dropped_queue_full: c.dropped_queue_full as f64,
            dropped_send_full: c.dropped_send_full as f64,
            lost_with_link: c.lost_with_link as f64,
            errors: c.errors as f64,
            denied: c.denied as f64,
            rate_limited: c.rate_limited as f64,
        }
    }
}

/// Stats of one connected peer.
#[napi(object)]
pub struct PeerStats {
    pub name: String,
    pub addr: String,
    pub inbound: bool,
    pub identity: String,
    /// Last measured round-trip time in milliseconds, if any.
    pub rtt_ms: Option<f64>,
    pub counters: CounterStats,
}

/// Stats of one subscription.
#[napi(object)]
pub struct SubscriptionStats {
    pub pattern: String,
    pub delivered: f64,
    pub dropped: f64,
    pub queued: f64,
}

/// What `stats()` returns.
#[napi(object)]
pub struct Stats {
    pub name: String,
    pub total: CounterStats,
    pub peers: Vec<PeerStats>,
    pub subscriptions: Vec<SubscriptionStats>,
}

/// Milliseconds as a `Duration`; `INVALID_ARGUMENT` for negative or NaN.
pub fn millis(what: &str, ms: f64) -> netchan::Result<Duration> {
    if ms.is_nan() || ms < 0.0 || !ms.is_finite() {
        return Err(code_err(
            ErrorCode::InvalidArgument,
            format!("{what} must be a finite number of milliseconds >= 0, not {ms}"),
        ));
    }
    Ok(Duration::from_secs_f64(ms / 1000.0))
}

pub fn count(what: &str, n: f64) -> netchan::Result<usize> {
    if n.is_nan() || n < 0.0 || n.fract() != 0.0 || n > 9.0e15 {
        return Err(code_err(
            ErrorCode::InvalidArgument,
            format!("{what} must be a whole number >= 0, not {n}"),
        ));
    }
    Ok(n as usize)
}

fn overflow(s: &str) -> netchan::Result<Overflow> {
    match s {
        "block" => Ok(Overflow::Block),
        "drop_oldest" => Ok(Overflow::DropOldest),
        "drop_newest" => Ok(Overflow::DropNewest),
        "disconnect" => Ok(Overflow::Disconnect),
        _ => Err(code_err(
            ErrorCode::InvalidArgument,
            format!("overflow must be \"block\", \"drop_oldest\", \"drop_newest\" or \"disconnect\", not {s:?}"),
        )),
    }
}

fn config(o: EndpointOptions) -> netchan::Result<Config> {
    let mut c = Config::default();
    for (k, v) in o.settings.into_iter().flatten() {
        let v = match v {
            Either3::A(s) => s,
            Either3::B(n) => n.to_string(),
            Either3::C(b) => b.to_string(),
        };
        c.set(&k, &v)?;
    }
    if let Some(v) = o.name {
        c.name = Some(v);
    }
    if let Some(v) = o.insecure {
        c.insecure = v;
    }
    if let Some(t) = o.tls {
        apply_tls(&mut c, t)?;
    }
    if let Some(v) = o.max_frame_size {
        c.max_frame_size = count("maxFrameSize", v)?;
    }
    if let Some(v) = o.heartbeat_interval_ms {
        c.heartbeat_interval = millis("heartbeatIntervalMs", v)?;
    }
    if let Some(v) = o.heartbeat_misses {
        c.heartbeat_misses = v;
    }
    if let Some(v) = o.reconnect {
        c.reconnect.enabled = v;
    }
    if let Some(v) = o.connect_timeout_ms {
        c.connect_timeout = millis("connectTimeoutMs", v)?;
    }
    if let Some(v) = o.handshake_timeout_ms {
        c.handshake_timeout = millis("handshakeTimeoutMs", v)?;
    }
    if let Some(v) = o.send_buffer {
        c.send_buffer = count("sendBuffer", v)?;
    }
    if let Some(v) = o.send_timeout_ms {
        c.send_timeout = millis("sendTimeoutMs", v)?;
    }
    if let Some(s) = o.slow_peer {
        c.slow_peer = match s.as_str() {
            "block" => SlowPeer::Block,
            "drop_newest" => SlowPeer::DropNewest,
            "disconnect" => SlowPeer::Disconnect,
            _ => {
                return Err(code_err(
                    ErrorCode::InvalidArgument,
                    format!(
                        "slowPeer must be \"block\", \"drop_newest\" or \"disconnect\", not {s:?}"
                    ),
                ))
            }
        };
    }
    if let Some(v) = o.offline_buffer {
        c.offline_buffer = count("offlineBuffer", v)?;
    }
    if let Some(v) = o.ping_timeout_ms {
        c.ping_timeout = millis("pingTimeoutMs", v)?;
    }
    if let Some(v) = o.subscribe_capacity {
        c.subscribe.capacity = count("subscribeCapacity", v)?;
    }
    if let Some(v) = o.subscribe_max_bytes {
        c.subscribe.max_bytes = count("subscribeMaxBytes", v)?;
    }
    if let Some(s) = o.subscribe_overflow {
        c.subscribe.overflow = overflow(&s)?;
    }
    if let Some(v) = o.service_queue {
        c.service_queue = count("serviceQueue", v)?;
    }
    if let Some(v) = o.busy_poll_us {
        let max = netchan::config::MAX_BUSY_POLL.as_micros() as f64;
        if !(v.fract() == 0.0 && (0.0..=max).contains(&v)) {
            return Err(code_err(
                ErrorCode::InvalidArgument,
                format!(
                    "busyPollUs must be a whole number of microseconds from 0 to {max}, not {v}"
                ),
            ));
        }
        c.busy_poll = Duration::from_micros(v as u64);
    }
    if let Some(v) = o.stream_window {
        c.stream_window = count("streamWindow", v)?;
    }
    Ok(c)
}

/// A payload from JS: a string (UTF-8) or any `Uint8Array` (`Buffer`
/// included). Copied once: the core sends it from other threads after the
/// call returns, while JS may reuse the memory.
pub fn payload(data: Option<Either<String, Uint8ArraySlice>>) -> Bytes {
    match data {
        None => Bytes::new(),
        Some(Either::A(s)) => Bytes::from(s),
        Some(Either::B(b)) => Bytes::copy_from_slice(&b),
    }
}

/// Hands a core payload to JS as a `Buffer` (no copy when the core holds the
/// only reference).
pub fn to_buffer(b: Bytes) -> Buffer {
    Buffer::from(Vec::<u8>::from(b))
}

/// Cancels an in-flight request (what an `AbortSignal` triggers).
#[napi]
pub struct CancelToken {
    tx: Arc<watch::Sender<bool>>,
}

#[napi]
impl CancelToken {
    #[napi(constructor)]
    pub fn new() -> CancelToken {
        CancelToken {
            tx: Arc::new(watch::channel(false).0),
        }
    }

    /// Cancels: the request fails with `CANCELLED` and the server's handler
    /// sees the cancellation.
    #[napi]
    pub fn cancel(&self) {
        self.tx.send_replace(true);
    }
}

impl Default for CancelToken {
    fn default() -> Self {
        Self::new()
    }
}

/// Polls a publish once on the JS thread: `null` when it is done at once
/// (the common case), a thrown error when it failed at once, else a
/// promise that settles when every target took the message.
fn settle_now_or_later<'e>(
    env: &'e Env,
    rt: &Handle,
    fut: impl std::future::Future<Output = netchan::Result<()>> + 'static,
) -> Result<Option<Object<'e>>> {
    let mut fut = Box::pin(fut);
    match poll_now(rt, fut.as_mut()) {
        Some(r) => r.map(|_| None).or_throw(env),
        None => promise(env, rt, fut, |_, ()| Ok(())).map(Some),
    }
}

/// A publisher declaration (discovery); `close()` withdraws it.
#[napi]
pub struct NativePublisher {
    inner: Option<Arc<netchan::Publisher>>,
    rt: Handle,
}

impl NativePublisher {
    fn decl(&self) -> netchan::Result<Arc<netchan::Publisher>> {
        self.inner
            .clone()
            .ok_or_else(|| netchan::Error::new(ErrorCode::Closed, "this publisher was closed"))
    }
}

#[napi]
impl NativePublisher {
    /// Publishes on `path`, which the declared pattern must match
    /// (`INVALID_PATH` otherwise). Returns `null` when done at once, else a
    /// promise that settles when every target took the message.
    #[napi(ts_return_type = "Promise<void> | null")]
    pub fn publish<'e>(
        &self,
        env: &'e Env,
        path: String,
        data: Option<Either<String, Uint8ArraySlice>>,
    ) -> Result<Option<Object<'e>>> {
        let p = self.decl().or_throw(env)?;
        let data = payload(data);
        settle_now_or_later(env, &self.rt, async move { p.publish(&path, data).await })
    }

    /// Publishes without waiting; a full target is skipped and the call
    /// throws `BUFFER_FULL`.
    #[napi]
    pub fn try_publish(
        &self,
        env: &Env,
        path: String,
        data: Option<Either<String, Uint8ArraySlice>>,
    ) -> Result<()> {
        let p = self.decl().or_throw(env)?;
        let _rt = self.rt.enter();
        p.try_publish(&path, payload(data)).or_throw(env)
    }

    /// Withdraws the declaration. Idempotent.
    #[napi]
    pub fn close(&mut self) {
        self.inner.take();
    }
}

/// The core endpoint. Use `Endpoint` from the `netchan` package instead.
#[napi]
pub struct NativeEndpoint {
    ep: netchan::Endpoint,
    rt: Handle,
    /// Whether the waits of this endpoint's subscriptions and services keep
    /// Node alive (`setRef`).
    hold: Hold,
}

#[napi]
impl NativeEndpoint {
    /// Creates an endpoint. Errors: `INVALID_ARGUMENT` naming the bad option.
    #[napi(constructor)]
    pub fn new(env: &Env, options: Option<EndpointOptions>) -> Result<NativeEndpoint> {
        let cfg = config(options.unwrap_or_default()).or_throw(env)?;
        let ep = netchan::Endpoint::new(cfg).or_throw(env)?;
        // The JS thread is outside any runtime, so the endpoint runs on the
        // core's own runtime; spawn there (napi's runtime is never used).
        let rt = ep.block_on(async { Handle::current() }).or_throw(env)?;
        Ok(NativeEndpoint {
            ep,
            rt,
            hold: Hold::default(),
        })
    }

    #[napi(getter)]
    pub fn name(&self) -> String {
        self.ep.name().to_string()
    }

    #[napi(getter)]
    pub fn is_closed(&self) -> bool {
        self.ep.is_closed()
    }

    /// Resolves with the bound address.
    #[napi(ts_return_type = "Promise<string>")]
    pub fn listen<'e>(&self, env: &'e Env, addr: String) -> Result<Object<'e>> {
        let ep = self.ep.clone();
        promise(
            env,
            &self.rt,
            async move { ep.listen(&addr).await },
            |_, a| Ok(a),
        )
    }

    /// Resolves with the peer once the handshake is done.
    #[napi(ts_return_type = "Promise<PeerInfo>")]
    pub fn connect<'e>(&self, env: &'e Env, addr: String) -> Result<Object<'e>> {
        let ep = self.ep.clone();
        promise(
            env,
            &self.rt,
            async move { ep.connect(&addr).await },
            |_, p| Ok(PeerInfo::from(p)),
        )
    }

    /// The busy-poll window in microseconds (the core's `busy_poll`).
    #[napi(getter)]
    pub fn busy_poll_us(&self) -> f64 {
        self.ep.config().busy_poll.as_micros() as f64
    }

    #[napi]
    pub fn reconnect_now(&self) {
        self.ep.reconnect_now()
    }

    /// The core's `suspend`: every link and listener down, the rest kept.
    #[napi(ts_return_type = "Promise<void>")]
    pub fn suspend<'e>(&self, env: &'e Env) -> Result<Object<'e>> {
        let ep = self.ep.clone();
        promise(env, &self.rt, async move { ep.suspend().await }, |_, ()| {
            Ok(())
        })
    }

    /// The core's `resume`: listens and dials again at once.
    #[napi(ts_return_type = "Promise<void>")]
    pub fn resume<'e>(&self, env: &'e Env) -> Result<Object<'e>> {
        let ep = self.ep.clone();
        promise(env, &self.rt, async move { ep.resume().await }, |_, ()| {
            Ok(())
        })
    }

    /// The core's `network_changed`: drops every link and redials now.
    #[napi(ts_return_type = "Promise<void>")]
    pub fn network_changed<'e>(&self, env: &'e Env) -> Result<Object<'e>> {
        let ep = self.ep.clone();
        promise(
            env,
            &self.rt,
            async move { ep.network_changed().await },
            |_, ()| Ok(()),
        )
    }

    /// Publishes. Returns `null` when done at once (the common case),
    /// else a promise that settles when every target took the message.
    #[napi(ts_return_type = "Promise<void> | null")]
    pub fn publish<'e>(
        &self,
        env: &'e Env,
        path: String,
        data: Option<Either<String, Uint8ArraySlice>>,
    ) -> Result<Option<Object<'e>>> {
        let ep = self.ep.clone();
        let data = payload(data);
        settle_now_or_later(env, &self.rt, async move { ep.publish(&path, data).await })
    }

    /// Publishes without waiting; a full target is skipped and the call
    /// throws `BUFFER_FULL`.
    #[napi]
    pub fn try_publish(
        &self,
        env: &Env,
        path: String,
        data: Option<Either<String, Uint8ArraySlice>>,
    ) -> Result<()> {
        self.ep.try_publish(&path, payload(data)).or_throw(env)
    }

    /// Publishes every payload on `path`, in order, in one call; returns
    /// (or resolves with) how many. Stops at the first error.
    #[napi(ts_return_type = "number | Promise<number>")]
    pub fn publish_many<'e>(
        &self,
        env: &'e Env,
        path: String,
        payloads: Vec<Either<String, Uint8Array>>,
    ) -> Result<Either<u32, Object<'e>>> {
        let v: Vec<Bytes> = payloads
            .into_iter()
            .map(|p| match p {
                Either::A(s) => Bytes::from(s),
                Either::B(b) => Bytes::copy_from_slice(&b),
            })
            .collect();
        let n = v.len() as u32;
        let ep = self.ep.clone();
        let mut fut = Box::pin(async move {
            for p in v {
                ep.publish(&path, p).await?;
            }
            Ok::<_, netchan::Error>(())
        });
        match poll_now(&self.rt, fut.as_mut()) {
            Some(r) => r.map(|_| Either::A(n)).or_throw(env),
            None => promise(env, &self.rt, fut, move |_, ()| Ok(n)).map(Either::B),
        }
    }

    #[napi]
    pub fn subscribe(
        &self,
        env: &Env,
        pattern: String,
        options: Option<SubscribeOpts>,
    ) -> Result<NativeSubscription> {
        let sub = match options {
            None => self.ep.subscribe(&pattern).or_throw(env)?,
            Some(o) => {
                let mut so: SubscribeOptions = self.ep.config().subscribe.clone();
                if let Some(v) = o.capacity {
                    so.capacity = count("capacity", v).or_throw(env)?;
                }
                if let Some(v) = o.max_bytes {
                    so.max_bytes = count("maxBytes", v).or_throw(env)?;
                }
                if let Some(s) = o.overflow {
                    so.overflow = overflow(&s).or_throw(env)?;
                }
                self.ep.subscribe_with(&pattern, so).or_throw(env)?
            }
        };
        Ok(NativeSubscription::new(
            sub,
            self.rt.clone(),
            self.hold.clone(),
        ))
    }

    #[napi]
    pub fn declare_publisher(&self, env: &Env, pattern: String) -> Result<NativePublisher> {
        let p = self.ep.declare_publisher(&pattern).or_throw(env)?;
        Ok(NativePublisher {
            inner: Some(Arc::new(p)),
            rt: self.rt.clone(),
        })
    }

    #[napi]
    pub fn serve(
        &self,
        env: &Env,
        pattern: String,
        options: Option<ServeOpts>,
    ) -> Result<NativeService> {
        let o = options.unwrap_or_default();
        let mut opts = netchan::ServeOptions::default();
        if let Some(n) = o.queue {
            opts.queue = Some(count("queue", n).or_throw(env)?);
        }
        if let Some(n) = o.queue_bytes {
            opts.queue_bytes = Some(count("queueBytes", n).or_throw(env)?);
        }
        let svc = self.ep.serve_with(&pattern, opts).or_throw(env)?;
        Ok(NativeService::new(
            svc,
            self.rt.clone(),
            self.ep.config().busy_poll,
            self.hold.clone(),
        ))
    }

    /// Whether the pending waits of this endpoint's subscriptions and
    /// services (and stream services) keep Node alive: `true` (the default)
    /// or `false` (`ep.unref()`); any other pending call (a request, a
    /// connect, a publish waiting for room, ...) always does.
    #[napi]
    pub fn set_ref(&self, env: &Env, keep: bool) -> Result<()> {
        self.hold.set_ref(env, keep)
    }

    /// Resolves with the reply payload.
    #[napi(ts_return_type = "Promise<Buffer>")]
    pub fn request<'e>(
        &self,
        env: &'e Env,
        path: String,
        data: Option<Either<String, Uint8ArraySlice>>,
        timeout_ms: f64,
        wait_for_responder: Option<bool>,
        cancel: Option<&CancelToken>,
    ) -> Result<Object<'e>> {
        let mut opts = RequestOptions::timeout(millis("timeoutMs", timeout_ms).or_throw(env)?);
        if wait_for_responder.unwrap_or(false) {
            opts = opts.wait_for_responder();
        }
        let ep = self.ep.clone();
        let data = payload(data);
        let mut cancel = cancel.map(|c| c.tx.subscribe());
        let fut = async move {
            let req = ep.request_with(&path, data, opts);
            match cancel.as_mut() {
                None => req.await,
                Some(rx) => tokio::select! {
                    r = req => r,
                    // Dropping the request future cancels it at the server.
                    _ = rx.wait_for(|c| *c) => Err(netchan::Error::new(
                        ErrorCode::Cancelled,
                        "the request was aborted",
                    )),
                },
            }
        };
        // Busy-polls for the reply (the endpoint's `busy_poll`).
        let spin = (self.ep.blocker(), self.ep.config().busy_poll);
        promise_spin(env, &self.rt, spin, fut, |_, b| Ok(to_buffer(b)))
    }

    /// Opens a stream; resolves with this side of it once a server
    /// accepted it. `cancel` aborts the opening (`CANCELLED`).
    #[napi(ts_return_type = "Promise<NativeStream>")]
    pub fn open_stream<'e>(
        &self,
        env: &'e Env,
        path: String,
        first: Option<Either<String, Uint8ArraySlice>>,
        options: Option<StreamOpts>,
        cancel: Option<&CancelToken>,
    ) -> Result<Object<'e>> {
        let opts = stream_options(options.unwrap_or_default()).or_throw(env)?;
        let cancel = cancel.map(|c| c.tx.subscribe());
        let fut = open(self.ep.clone(), path, payload(first), opts, cancel);
        let rt = self.rt.clone();
        promise(env, &self.rt, fut, move |_, s| Ok(NativeStream::new(s, rt)))
    }

    /// Serves streams on `pattern`; `next()` hands each to a handler.
    #[napi]
    pub fn serve_stream(
        &self,
        env: &Env,
        pattern: String,
        options: Option<StreamServeOpts>,
    ) -> Result<NativeStreamService> {
        let opts = stream_serve_options(options.unwrap_or_default()).or_throw(env)?;
        NativeStreamService::new(&self.ep, self.rt.clone(), self.hold.clone(), &pattern, opts)
            .or_throw(env)
    }

    /// Serves streams on `pattern` for pulling: `next()` hands each opened
    /// stream to the caller, who owns it.
    #[napi]
    pub fn serve_stream_pull(
        &self,
        env: &Env,
        pattern: String,
        options: Option<StreamServeOpts>,
    ) -> Result<NativeStreamService> {
        let opts = stream_serve_options(options.unwrap_or_default()).or_throw(env)?;
        NativeStreamService::pulled(&self.ep, self.rt.clone(), self.hold.clone(), &pattern, opts)
            .or_throw(env)
    }

    /// Names of the endpoints serving streams on something overlapping
    /// `pattern`.
    #[napi]
    pub fn stream_servers(&self, env: &Env, pattern: String) -> Result<Vec<String>> {
        self.ep.stream_servers(&pattern).or_throw(env)
    }

    /// Resolves with the round-trip time in milliseconds.
    #[napi(ts_return_type = "Promise<number>")]
    pub fn ping<'e>(&self, env: &'e Env, peer: String) -> Result<Object<'e>> {
        let ep = self.ep.clone();
        promise(
            env,
            &self.rt,
            async move { ep.ping(&peer).await },
            |_, d| Ok(d.as_secs_f64() * 1000.0),
        )
    }

    #[napi]
    pub fn peers(&self) -> Vec<PeerInfo> {
        self.ep.peers().into_iter().map(PeerInfo::from).collect()
    }

    /// Replaces the access rules: a rules file's path or the rules' text;
    /// null (or empty) removes them.
    #[napi]
    pub fn set_acl(&self, env: &Env, rules: Option<String>) -> Result<()> {
        let src = netchan::AclSource::from_setting(rules.as_deref().unwrap_or(""));
        self.ep.set_acl(src).or_throw(env)
    }

    #[napi]
    pub fn reload_keys(&self, env: &Env) -> Result<()> {
        self.ep.reload_keys().or_throw(env)
    }

    /// Replaces the TLS settings; `null` removes them. Checked first: on
    /// an error the settings in use stay.
    #[napi]
    pub fn set_tls(&self, env: &Env, tls: Option<TlsOptions>) -> Result<()> {
        let mut c = Config::default();
        if let Some(t) = tls {
            apply_tls(&mut c, t).or_throw(env)?;
        }
        self.ep.set_tls(c.tls).or_throw(env)
    }

    /// Replaces the shared keys: a key file's path or the keys' text;
    /// `null` (or empty) removes them.
    #[napi]
    pub fn set_shared_keys(&self, env: &Env, keys: Option<String>) -> Result<()> {
        let keys = keys
            .filter(|k| !k.trim().is_empty())
            .map(|k| netchan::KeySource::parse(&k));
        self.ep.set_shared_keys(keys).or_throw(env)
    }

    #[napi]
    pub fn failed_attempts(&self) -> Vec<FailedAttempts> {
        self.ep
            .failed_attempts()
            .into_iter()
            .map(|(addr, count)| FailedAttempts {
                addr,
                count: count as f64,
            })
            .collect()
    }

    #[napi]
    pub fn has_subscribers(&self, env: &Env, path: String) -> Result<bool> {
        self.ep.has_subscribers(&path).or_throw(env)
    }

    #[napi]
    pub fn has_servers(&self, env: &Env, path: String) -> Result<bool> {
        self.ep.has_servers(&path).or_throw(env)
    }

    #[napi(ts_return_type = "Promise<boolean>")]
    pub fn wait_for_subscribers<'e>(
        &self,
        env: &'e Env,
        path: String,
        timeout_ms: f64,
    ) -> Result<Object<'e>> {
        let t = millis("timeoutMs", timeout_ms).or_throw(env)?;
        let ep = self.ep.clone();
        promise(
            env,
            &self.rt,
            async move { ep.wait_for_subscribers(&path, t).await },
            |_, b| Ok(b),
        )
    }

    #[napi(ts_return_type = "Promise<boolean>")]
    pub fn wait_for_servers<'e>(
        &self,
        env: &'e Env,
        path: String,
        timeout_ms: f64,
    ) -> Result<Object<'e>> {
        let t = millis("timeoutMs", timeout_ms).or_throw(env)?;
        let ep = self.ep.clone();
        promise(
            env,
            &self.rt,
            async move { ep.wait_for_servers(&path, t).await },
            |_, b| Ok(b),
        )
    }

    #[napi]
    pub fn subscribers(&self, env: &Env, pattern: String) -> Result<Vec<String>> {
        self.ep.subscribers(&pattern).or_throw(env)
    }

    #[napi]
    pub fn publishers(&self, env: &Env, pattern: String) -> Result<Vec<String>> {
        self.ep.publishers(&pattern).or_throw(env)
    }

    #[napi]
    pub fn servers(&self, env: &Env, pattern: String) -> Result<Vec<String>> {
        self.ep.servers(&pattern).or_throw(env)
    }

    #[napi]
    pub fn stats(&self) -> Stats {
        let s = self.ep.stats();
        Stats {
            name: s.name,
            total: s.total.into(),
            peers: s
                .peers
                .into_iter()
                .map(|p| PeerStats {
                    name: p.name,
                    addr: p.addr,
                    inbound: p.inbound,
                    identity: p.identity,
                    rtt_ms: p.rtt.map(|d| d.as_secs_f64() * 1000.0),
                    counters: p.counters.into(),
                })
                .collect(),
            subscriptions: s
                .subscriptions
                .into_iter()
                .map(|s| SubscriptionStats {
                    pattern: s.pattern,
                    delivered: s.delivered as f64,
                    dropped: s.dropped as f64,
                    queued: s.queued as f64,
                })
                .collect(),
        }
    }

    /// Calls `callback` with each event on the JS thread. The stream does
    /// not keep the process alive; `close()` it to stop.
    #[napi]
    pub fn events(&self, callback: Function<'_, EventObj, ()>) -> Result<NativeEventStream> {
        spawn_events(&self.ep, &self.rt, callback)
    }

    /// Closes the endpoint; resolves when peers were told.
    #[napi(ts_return_type = "Promise<void>")]
    pub fn close<'e>(&self, env: &'e Env) -> Result<Object<'e>> {
        let ep = self.ep.clone();
        promise(
            env,
            &self.rt,
            async move {
                ep.close().await;
                Ok(())
            },
            |_, ()| Ok(()),
        )
    }
}
