//! Endpoint configuration: every limit and default in one place.

mod psk;
mod settings;
mod tls;
pub(crate) use psk::SharedKeys;
pub use psk::{generate_key_line, KeySource, MAX_KEY_ID, SHARED_KEY_LEN};
pub use settings::{Setting, SettingKind, SETTINGS};
pub use tls::{ClientAuth, Pem, TlsConfig};

use std::time::Duration;

use crate::error::{Error, Result};
use crate::proto::{MAX_NAME_LEN, MIN_MAX_FRAME};

/// What a full subscription queue does with the next message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Overflow {
    /// Wait for room: publishers are held back through credit per
    /// subscription (a local publisher waits for room; a remote one for
    /// credit, up to its `send_timeout`, then counts the drop and gets
    /// `BUFFER_FULL`). Nothing is lost uncounted, and the link it comes over
    /// keeps carrying everything else (docs/RELIABILITY.md).
    #[default]
    Block,
    /// Discard the oldest queued message to make room (counted, reported).
    DropOldest,
    /// Discard the new message (counted, reported).
    DropNewest,
    /// As `Block`, but a remote publisher that waited its `send_timeout`
    /// for this subscription's credit in vain closes its link to this
    /// endpoint (`BUFFER_FULL`, "slow consumer") instead of dropping the
    /// message for it: a slow consumer is cut off rather than skipped, and
    /// its endpoint redials with its subscriptions if it dialled. Everything
    /// else on that link goes with it. A publisher on the same endpoint
    /// waits as for `Block`. Not an `offline_overflow` policy
    /// (`a_disconnect_subscription_that_stops_reading_has_its_link_cut`).
    Disconnect,
}

/// What `publish` does when a peer's send buffer is full (the peer reads
/// more slowly than we publish).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum SlowPeer {
    /// Wait up to `send_timeout` for room; then skip that peer for this
    /// message (counted, reported, `BUFFER_FULL`). While a peer stays
    /// stalled past a timeout, later publishes skip it at once instead of
    /// waiting again, so one stuck peer cannot slow the others for long.
    #[default]
    Block,
    /// Never wait: skip the peer for this message (counted, reported).
    DropNewest,
    /// Wait up to `send_timeout`, then disconnect the peer as a slow consumer.
    Disconnect,
}

/// Reconnection of dialled peers after a loss.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct Reconnect {
    /// Redial at all.
    pub enabled: bool,
    /// First delay.
    pub min_delay: Duration,
    /// Largest delay.
    pub max_delay: Duration,
    /// Each failed attempt multiplies the delay by this (>= 1).
    pub factor: f64,
    /// Each delay is randomised by up to this fraction, up or down (0..1).
    pub jitter: f64,
}

impl Default for Reconnect {
    fn default() -> Self {
        Reconnect {
            enabled: true,
            min_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(5),
            factor: 2.0,
            jitter: 0.2,
        }
    }
}

/// Options of one request.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RequestOptions {
    /// How long to wait for the reply; also the deadline the handler sees.
    pub timeout: Duration,
    /// If nobody serves the path yet, wait (up to the timeout) for a server
    /// to appear instead of failing with `NO_RESPONDERS` at once.
    pub wait_for_responder: bool,
}

impl RequestOptions {
    /// A request with this timeout that fails fast without a responder.
    pub fn timeout(timeout: Duration) -> RequestOptions {
        RequestOptions {
            timeout,
            wait_for_responder: false,
        }
    }

    /// Waits for a responder to appear, up to the timeout.
    pub fn wait_for_responder(mut self) -> RequestOptions {
        self.wait_for_responder = true;
        self
    }
}

/// Options of one subscription.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct SubscribeOptions {
    /// Queue bound in messages.
    pub capacity: usize,
    /// Queue bound in payload bytes.
    pub max_bytes: usize,
    /// What happens when the queue is full.
    pub overflow: Overflow,
}

impl Default for SubscribeOptions {
    fn default() -> Self {
        SubscribeOptions {
            capacity: 16 * 1024,
            max_bytes: 64 * 1024 * 1024,
            overflow: Overflow::Block,
        }
    }
}

impl SubscribeOptions {
    pub(crate) fn validate(&self) -> Result<()> {
        if self.capacity == 0 {
            return Err(Error::invalid_argument(
                "subscription capacity must be at least 1",
            ));
        }
        if self.max_bytes == 0 {
            return Err(Error::invalid_argument(
                "subscription max_bytes must be at least 1",
            ));
        }
        Ok(())
    }
}

/// Options of one service. A field left `None` takes the endpoint's
/// setting (`Config::handler_concurrency`, `service_queue`,
/// `service_queue_bytes`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServeOptions {
    /// Requests a `serve_fn` handler works on at once (default 256); more
    /// wait in the queue. A pulled service (`serve`) hands out requests as
    /// they are asked for, and this does not apply.
    pub max_concurrent: Option<usize>,
    /// Requests waiting in the queue (default 1024), shared fairly among
    /// callers; past it a request is refused with `BUFFER_FULL`, counted
    /// in `CounterStats::requests_refused` and reported as a `Dropped`
    /// event whose site is the service's pattern.
    pub queue: Option<usize>,
    /// Bytes of requests waiting in the queue (default 64 MiB).
    pub queue_bytes: Option<usize>,
    /// For a stream service: payload bytes each stream's opener may send
    /// before the handler reads (default `Config::stream_window`).
    pub window: Option<usize>,
}

impl ServeOptions {
    /// At most `n` requests handled at once.
    pub fn max_concurrent(mut self, n: usize) -> ServeOptions {
        self.max_concurrent = Some(n);
        self
    }

    /// At most `n` requests waiting.
    pub fn queue(mut self, n: usize) -> ServeOptions {
        self.queue = Some(n);
        self
    }

    /// The bounds for an endpoint configured with `cfg`: (handled at once,
    /// queued, queued bytes). Errors: `INVALID_ARGUMENT` for a zero bound.
    pub(crate) fn resolve(&self, cfg: &Config) -> Result<(usize, usize, usize)> {
        for (name, v) in [
            ("max_concurrent", self.max_concurrent),
            ("queue", self.queue),
            ("queue_bytes", self.queue_bytes),
        ] {
            if v == Some(0) {
                return Err(Error::invalid_argument(format!(
                    "a service's {name} must be at least 1"
                )));
            }
        }
        Ok((
            self.max_concurrent.unwrap_or(cfg.handler_concurrency),
            self.queue.unwrap_or(cfg.service_queue),
            self.queue_bytes.unwrap_or(cfg.service_queue_bytes),
        ))
    }
}

/// Options of one stream (`Endpoint::open_stream_with`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct StreamOptions {
    /// The stream's deadline, from now; it travels with the opening, and
    /// at the deadline both sides end the stream with `TIMEOUT`. `None`:
    /// no deadline.
    pub timeout: Option<Duration>,
    /// How long opening waits for a server to accept (default 10 s, or the
    /// deadline if sooner).
    pub open_timeout: Option<Duration>,
    /// Payload bytes the server may send before this side reads (default
    /// `Config::stream_window`).
    pub window: Option<usize>,
    /// If nobody serves the path yet, wait (up to the open timeout) for a
    /// server to appear instead of failing with `NO_RESPONDERS` at once.
    pub wait_for_responder: bool,
}

impl StreamOptions {
    /// A stream that ends with `TIMEOUT` after `t`.
    pub fn timeout(mut self, t: Duration) -> StreamOptions {
        self.timeout = Some(t);
        self
    }

    /// Receives within `bytes` (the other side waits beyond it).
    pub fn window(mut self, bytes: usize) -> StreamOptions {
        self.window = Some(bytes);
        self
    }

    /// Waits for a server to appear, up to the open timeout.
    pub fn wait_for_responder(mut self) -> StreamOptions {
        self.wait_for_responder = true;
        self
    }
}

/// Endpoint configuration. Start from `Config::default()` and change fields.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Config {
    /// The endpoint's name, unique among the endpoints it talks to.
    /// `None`: the common name of `tls.cert` if there is one (the name the
    /// certificate lets this endpoint take, docs/SECURITY.md
    /// "Identities"), else a random name like `ep-3f9a1c0d2b4e5f60`.
    pub name: Option<String>,
    /// Largest frame accepted from a peer (and advertised to it), in bytes.
    /// A publish larger than the peer's limit fails with `MESSAGE_TOO_LARGE`.
    pub max_frame_size: usize,
    /// Each side pings a peer it has heard nothing from for this long...
    pub heartbeat_interval: Duration,
    /// ...and declares it dead (`PEER_LOST`) after this many intervals of
    /// silence. Detection takes `heartbeat_interval * heartbeat_misses`.
    pub heartbeat_misses: u32,
    /// Redialling of peers this endpoint connected to, after a loss.
    pub reconnect: Reconnect,
    /// What `publish` does when a peer's send buffer is full.
    pub slow_peer: SlowPeer,
    /// Bytes of messages held per dialled peer while it is disconnected and
    /// being redialled, for the interests it had; sent after it reconnects.
    /// 0 disables the buffer (such messages are dropped and counted).
    pub offline_buffer: usize,
    /// What happens when that buffer is full: `DropOldest` (default),
    /// `DropNewest`, or `Block` (publish waits up to `send_timeout`, then
    /// fails with `BUFFER_FULL`).
    pub offline_overflow: Overflow,
    /// Time allowed to dial an address.
    pub connect_timeout: Duration,
    /// Time allowed for a handshake (both HELLOs and both snapshots).
    pub handshake_timeout: Duration,
    /// Time an inbound connection has to send a valid HELLO (at most
    /// `handshake_timeout`). Short, so that connections that never speak
    /// hold their place among pending handshakes only briefly.
    pub hello_timeout: Duration,
    /// Bytes queued per peer before publishers wait.
    pub send_buffer: usize,
    /// How long `publish` or `request` waits for room in a peer's send buffer
    /// before failing with `BUFFER_FULL` (the message is counted as dropped).
    pub send_timeout: Duration,
    /// Time `ping` waits for a pong.
    pub ping_timeout: Duration,
    /// How long `subscribe` and `serve` called from a plain thread wait for
    /// every connected peer to have the new declaration, so that a message
    /// a peer publishes (or a request it sends) after the call returns
    /// reaches it. From an async context they cannot wait; await
    /// `Subscription::ready` / `Service::ready` there. Zero: never wait.
    pub declare_wait: Duration,
    /// Defaults for subscriptions.
    pub subscribe: SubscribeOptions,
    /// Requests queued per service. When it is full, a caller holding less
    /// than its fair share (this divided by the callers with requests
    /// queued) pushes out the newest request of the caller furthest over its
    /// share; others are refused. Either way the refused or pushed-out
    /// request fails with `BUFFER_FULL`.
    pub service_queue: usize,
    /// Bytes of requests queued per service (payload and path, plus 512 per
    /// request for its bookkeeping), shared fairly like `service_queue`.
    pub service_queue_bytes: usize,
    /// Requests a `serve_fn` handler works on at once, per service; more
    /// wait in its queue, where callers take turns.
    pub handler_concurrency: usize,
    /// Payload bytes the other side of a stream may send before this side
    /// reads, by default (per stream and direction; a stream's memory at
    /// the receiver is at most this plus one message).
    pub stream_window: usize,
    /// Connections (inbound and outbound) at once.
    pub max_connections: usize,
    /// Inbound connections waiting to send their HELLO, at once. At the
    /// bound the oldest of them is closed (`OVERLOADED`) to make room.
    pub max_pending_handshakes: usize,
    /// The same, per remote address (IP address; user id for Unix sockets).
    pub max_pending_handshakes_per_address: usize,
    /// Declarations one peer may hold.
    pub max_declarations_per_peer: usize,
    /// Bytes of pattern text one peer's declarations may hold in all.
    pub max_declaration_bytes_per_peer: usize,
    /// Busy polling of blocking waits (the `*_blocking` calls and
    /// `block_on`, through [`Blocker`](crate::blocking::Blocker)): a thread
    /// waiting for a reply, a message or room keeps polling for up to this
    /// long, yielding the CPU between polls, before it parks, so what
    /// arrives meanwhile does not have to wake it. Costs up to this much CPU
    /// time per wait that ends up parking. Awaiting in a runtime task is not
    /// affected. Zero (the default) parks at once; at most one second
    /// (`busy_poll_spins_blocking_waits_for_its_window_then_parks`).
    pub busy_poll: Duration,
    /// TLS for `tls://` addresses: this endpoint's certificate and key, the
    /// CA or pinned certificates it trusts. `None`: `tls://` is refused.
    /// Replace it at run time with `Endpoint::set_tls`.
    pub tls: Option<TlsConfig>,
    /// Shared keys (docs/SECURITY.md, "Shared keys"): with them, every
    /// `tcp://` link proves a key before any netchan frame, and is
    /// encrypted. A dialler uses the first key, a listener accepts any.
    /// `None`: plaintext `tcp://`. Replace it with
    /// `Endpoint::set_shared_keys`.
    pub shared_keys: Option<KeySource>,
    /// Allows plaintext `tcp://` to and from addresses beyond this host.
    /// Off by default: listening on or dialling a non-loopback `tcp://`
    /// address fails with `PLAINTEXT_REFUSED` (docs/SECURITY.md).
    pub insecure: bool,
    /// Permissions of the Unix socket files this endpoint listens on
    /// (default `0o600`: only the owner's processes may connect).
    pub unix_mode: u32,
    /// User ids whose processes may connect over Unix sockets (checked
    /// with the kernel's peer credentials); empty: anyone the socket
    /// file's permissions let in. Others are refused with
    /// `PERMISSION_DENIED`.
    pub unix_allowed_uids: Vec<u32>,
    /// Access rules (docs/SECURITY.md, "Access rules"): what each peer
    /// identity may publish, subscribe, serve, request and stream on.
    /// `None`: every peer may do everything; once set, anything not
    /// allowed is denied. Replace them with `Endpoint::set_acl`.
    pub acl: Option<crate::acl::AclSource>,
    /// Rate limits on what each peer sends this endpoint (messages and
    /// requests, and their bytes); off by default.
    pub rate_limit: RateLimit,
}

/// Rate limits per peer (docs/SECURITY.md, "Rate limits"): each peer's
/// messages and requests, and their payload bytes, pass a token bucket
/// holding one second's worth (for bytes, at least one frame). Zero: no
/// limit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RateLimit {
    /// Messages and requests per second from one peer.
    pub msgs_per_sec: u32,
    /// Payload bytes per second from one peer.
    pub bytes_per_sec: u64,
    /// What happens to what goes past the limit.
    pub policy: RatePolicy,
}

/// What a rate limit does with what goes past it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum RatePolicy {
    /// Drop the message (counted in `rate_limited`, reported in a
    /// `Dropped` event with `RATE_LIMITED`); a request gets
    /// `RATE_LIMITED`. The link stays up.
    #[default]
    Drop,
    /// Close the link with `RATE_LIMITED` (the peer may redial, with its
    /// backoff).
    Disconnect,
}

/// The largest [`Config::busy_poll`].
pub const MAX_BUSY_POLL: Duration = Duration::from_secs(1);

impl Default for Config {
    fn default() -> Self {
        Config {
            name: None,
            max_frame_size: 16 * 1024 * 1024,
            heartbeat_interval: Duration::from_secs(2),
            heartbeat_misses: 3,
            reconnect: Reconnect::default(),
            slow_peer: SlowPeer::Block,
            offline_buffer: 4 * 1024 * 1024,
            offline_overflow: Overflow::DropOldest,
            connect_timeout: Duration::from_secs(5),
            handshake_timeout: Duration::from_secs(5),
            hello_timeout: Duration::from_secs(2),
            send_buffer: 8 * 1024 * 1024,
            send_timeout: Duration::from_secs(10),
            ping_timeout: Duration::from_secs(5),
            declare_wait: Duration::from_secs(2),
            subscribe: SubscribeOptions::default(),
            service_queue: 1024,
            service_queue_bytes: 64 * 1024 * 1024,
            handler_concurrency: 256,
            stream_window: 1024 * 1024,
            max_connections: 1024,
            max_pending_handshakes: 64,
            max_pending_handshakes_per_address: 16,
            max_declarations_per_peer: 100_000,
            max_declaration_bytes_per_peer: 4 * 1024 * 1024,
            busy_poll: Duration::ZERO,
            tls: None,
            shared_keys: None,
            insecure: false,
            unix_mode: 0o600,
            unix_allowed_uids: Vec::new(),
            acl: None,
            rate_limit: RateLimit::default(),
        }
    }
}

impl Config {
    /// A default configuration with a name.
    pub fn named(name: impl Into<String>) -> Config {
        Config {
            name: Some(name.into()),
            ..Config::default()
        }
    }

    /// Checks every field; the error names the field.
    pub fn validate(&self) -> Result<()> {
        if let Some(n) = &self.name {
            if n.is_empty() || n.len() > MAX_NAME_LEN || n.chars().any(char::is_control) {
                return Err(Error::invalid_argument(format!(
                    "name {n:?} must be 1 to {MAX_NAME_LEN} bytes without control characters"
                )));
            }
        }
        if self.max_frame_size < MIN_MAX_FRAME || self.max_frame_size > u32::MAX as usize {
            return Err(Error::invalid_argument(format!(
                "max_frame_size {} must be between {MIN_MAX_FRAME} and {}",
                self.max_frame_size,
                u32::MAX
            )));
        }
        for (field, d) in [
            ("connect_timeout", self.connect_timeout),
            ("handshake_timeout", self.handshake_timeout),
            ("hello_timeout", self.hello_timeout),
            ("send_timeout", self.send_timeout),
            ("ping_timeout", self.ping_timeout),
            ("heartbeat_interval", self.heartbeat_interval),
        ] {
            if d.is_zero() {
                return Err(Error::invalid_argument(format!(
                    "{field} must be greater than zero"
                )));
            }
        }
        for (field, n) in [
            ("send_buffer", self.send_buffer),
            ("service_queue", self.service_queue),
            ("service_queue_bytes", self.service_queue_bytes),
            ("handler_concurrency", self.handler_concurrency),
            ("stream_window", self.stream_window),
            ("max_connections", self.max_connections),
            ("max_pending_handshakes", self.max_pending_handshakes),
            (
                "max_pending_handshakes_per_address",
                self.max_pending_handshakes_per_address,
            ),
            ("max_declarations_per_peer", self.max_declarations_per_peer),
            (
                "max_declaration_bytes_per_peer",
                self.max_declaration_bytes_per_peer,
            ),
        ] {
            if n == 0 {
                return Err(Error::invalid_argument(format!(
                    "{field} must be at least 1"
                )));
            }
        }
        if self.busy_poll > MAX_BUSY_POLL {
            return Err(Error::invalid_argument(format!(
                "busy_poll {:?} must be at most {MAX_BUSY_POLL:?}",
                self.busy_poll
            )));
        }
        if self.unix_mode & !0o777 != 0 {
            return Err(Error::invalid_argument(format!(
                "unix_mode {:o} must be permission bits (at most 777 in octal)",
                self.unix_mode
            )));
        }
        if self.heartbeat_misses == 0 {
            return Err(Error::invalid_argument(
                "heartbeat_misses must be at least 1",
            ));
        }
        if self.offline_overflow == Overflow::Disconnect {
            return Err(Error::invalid_argument(
                "offline_overflow must be block, drop_oldest or drop_newest (disconnect is a subscription policy)",
            ));
        }
        let r = &self.reconnect;
        if r.min_delay.is_zero() || r.max_delay < r.min_delay {
            return Err(Error::invalid_argument(
                "reconnect delays must satisfy 0 < min_delay <= max_delay",
            ));
        }
        if !(r.factor >= 1.0 && r.factor.is_finite()) {
            return Err(Error::invalid_argument(
                "reconnect factor must be a finite number >= 1",
            ));
        }
        if !(0.0..1.0).contains(&r.jitter) {
            return Err(Error::invalid_argument("reconnect jitter must be in 0..1"));
        }
        self.subscribe.validate()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorCode;

    #[test]
    fn defaults_are_valid_and_zeroes_are_named() {
        Config::default().validate().unwrap();
        let c = Config {
            send_timeout: Duration::ZERO,
            ..Config::default()
        };
        let e = c.validate().unwrap_err();
        assert_eq!(e.code(), ErrorCode::InvalidArgument);
        assert!(e.detail().contains("send_timeout"));
        let c = Config {
            max_frame_size: 10,
            ..Config::default()
        };
        assert!(c
            .validate()
            .unwrap_err()
            .detail()
            .contains("max_frame_size"));
        let mut c = Config::named("");
        assert!(c.validate().is_err());
        c.name = Some("ok".into());
        c.subscribe.capacity = 0;
        assert!(c.validate().unwrap_err().detail().contains("capacity"));
        // Disconnect is a subscription policy, not an offline buffer's.
        let c = Config {
            offline_overflow: Overflow::Disconnect,
            ..Config::default()
        };
        assert!(c
            .validate()
            .unwrap_err()
            .detail()
            .contains("offline_overflow"));
        let c = Config {
            subscribe: SubscribeOptions {
                overflow: Overflow::Disconnect,
                ..SubscribeOptions::default()
            },
            ..Config::default()
        };
        c.validate().unwrap();
    }
}
