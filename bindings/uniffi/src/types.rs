//! Records and enums crossing the boundary by value.

use std::sync::Arc;
use std::time::Duration;

use crate::error::NetchanError;
use crate::handles::CancelToken;

/// A published message, as a subscription delivers it.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct Message {
    /// The concrete path it was published on.
    pub path: String,
    /// The payload bytes.
    pub payload: Vec<u8>,
    /// The publishing endpoint's name.
    pub sender: String,
}

impl From<netchan::Message> for Message {
    fn from(m: netchan::Message) -> Self {
        Message {
            path: m.path().to_string(),
            sender: m.sender().to_string(),
            payload: m.into_payload().to_vec(),
        }
    }
}

/// An incoming request, as a [`crate::RequestHandler`] sees it.
#[derive(Debug, Clone, uniffi::Record)]
pub struct Request {
    /// The concrete path the caller requested.
    pub path: String,
    /// The request payload.
    pub payload: Vec<u8>,
    /// The caller's endpoint name.
    pub sender: String,
    /// Time left before the caller stops waiting.
    pub remaining: Duration,
    /// Cancelled when the caller stops waiting before the handler returned
    /// (its timeout, a cancelled call or `CancelToken`, a lost link, either
    /// endpoint closed); a reply after that is discarded.
    pub cancel: Arc<CancelToken>,
}

/// Options of one request.
#[derive(uniffi::Record)]
pub struct RequestOptions {
    /// How long to wait for the reply; also the deadline the handler sees.
    pub timeout: Duration,
    /// Wait (up to the timeout) for a server to appear instead of failing
    /// with `NO_RESPONDERS` at once.
    #[uniffi(default = false)]
    pub wait_for_responder: bool,
    /// Cancels the request when triggered (it fails with `CANCELLED` and
    /// the server's handler sees the cancellation).
    #[uniffi(default = None)]
    pub cancel: Option<Arc<CancelToken>>,
}

/// Bounds of one service; unset takes the endpoint's settings.
#[derive(Debug, Clone, Default, PartialEq, Eq, uniffi::Record)]
pub struct ServeOptions {
    /// Requests the handler works on at once (default 256); more wait in
    /// the queue.
    #[uniffi(default = None)]
    pub max_concurrent: Option<u32>,
    /// Requests waiting at most (default 1024); past that a request is
    /// refused with `BUFFER_FULL`, counted (`requests_refused`) and
    /// reported (a `Dropped` event whose site is the pattern).
    #[uniffi(default = None)]
    pub queue: Option<u32>,
    /// For a stream service: payload bytes each opener may send before the
    /// handler receives (default: the endpoint's `stream_window`, 1 MiB).
    #[uniffi(default = None)]
    pub window: Option<u64>,
}

impl From<ServeOptions> for netchan::ServeOptions {
    fn from(o: ServeOptions) -> Self {
        let mut c = netchan::ServeOptions::default();
        c.max_concurrent = o.max_concurrent.map(|n| n as usize);
        c.queue = o.queue.map(|n| n as usize);
        c.window = o.window.map(|w| usize::try_from(w).unwrap_or(usize::MAX));
        c
    }
}

/// What a full subscription queue does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum Overflow {
    /// Wait for room: publishers are held back through the subscription's
    /// credit (a remote one up to its `send_timeout`, then it counts the
    /// drop); nothing is lost uncounted and the link keeps carrying
    /// everything else.
    Block,
    /// Discard the oldest queued message to make room (counted).
    DropOldest,
    /// Discard the new message (counted).
    DropNewest,
    /// As `Block`, but a remote publisher that waited in vain closes its
    /// link to this endpoint (`BUFFER_FULL`, "slow consumer").
    Disconnect,
}

impl From<Overflow> for netchan::Overflow {
    fn from(o: Overflow) -> Self {
        match o {
            Overflow::Block => netchan::Overflow::Block,
            Overflow::DropOldest => netchan::Overflow::DropOldest,
            Overflow::DropNewest => netchan::Overflow::DropNewest,
            Overflow::Disconnect => netchan::Overflow::Disconnect,
        }
    }
}

/// Options of one subscription; unset takes the endpoint's settings
/// (`subscribeCapacity`, `subscribeMaxBytes`, `subscribeOverflow`).
#[derive(Debug, Clone, Default, PartialEq, Eq, uniffi::Record)]
pub struct SubscribeOptions {
    /// Queue bound in messages.
    #[uniffi(default = None)]
    pub capacity: Option<u64>,
    /// Queue bound in payload bytes.
    #[uniffi(default = None)]
    pub max_bytes: Option<u64>,
    /// What happens when the queue is full.
    #[uniffi(default = None)]
    pub overflow: Option<Overflow>,
}

impl SubscribeOptions {
    /// The core's options: `base` (the endpoint's) with the fields set here.
    pub(crate) fn to_core(
        &self,
        base: &netchan::SubscribeOptions,
    ) -> Result<netchan::SubscribeOptions, NetchanError> {
        let size = |what: &str, n: u64| {
            usize::try_from(n).map_err(|_| {
                NetchanError::new(
                    netchan::ErrorCode::InvalidArgument,
                    format!("{what} {n} is too large"),
                )
            })
        };
        let mut o = base.clone();
        if let Some(c) = self.capacity {
            o.capacity = size("capacity", c)?;
        }
        if let Some(b) = self.max_bytes {
            o.max_bytes = size("max_bytes", b)?;
        }
        if let Some(p) = self.overflow {
            o.overflow = p.into();
        }
        Ok(o)
    }
}

/// Failed connection attempts from one remote address (without its port).
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct FailedAttempts {
    /// The address.
    pub addr: String,
    /// How many failed.
    pub count: u64,
}

/// A connected peer.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct PeerInfo {
    /// The peer's endpoint name.
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
    fn from(p: netchan::PeerInfo) -> Self {
        PeerInfo {
            name: p.name,
            addr: p.addr,
            inbound: p.inbound,
            identity: p.identity,
        }
    }
}

/// Counters (messages and bytes count published messages, payload bytes).
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
#[allow(missing_docs)] // the same fields as netchan::CounterStats
pub struct CounterStats {
    pub msgs_in: u64,
    pub msgs_out: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub requests_in: u64,
    pub requests_out: u64,
    pub requests_refused: u64,
    pub dropped_queue_full: u64,
    pub dropped_send_full: u64,
    pub lost_with_link: u64,
    pub errors: u64,
    pub denied: u64,
    pub rate_limited: u64,
}

impl From<netchan::CounterStats> for CounterStats {
    fn from(c: netchan::CounterStats) -> Self {
        CounterStats {
            msgs_in: c.msgs_in,
            msgs_out: c.msgs_out,
            bytes_in: c.bytes_in,
            bytes_out: c.bytes_out,
            requests_in: c.requests_in,
            requests_out: c.requests_out,
            requests_refused: c.requests_refused,
            dropped_queue_full: c.dropped_queue_full,
            dropped_send_full: c.dropped_send_full,
            lost_with_link: c.lost_with_link,
            errors: c.errors,
            denied: c.denied,
            rate_limited: c.rate_limited,
        }
    }
}

/// Stats of one connected peer.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct PeerStats {
    /// The peer's endpoint name.
    pub name: String,
    /// Its address as seen from here.
    pub addr: String,
    /// True if it dialled us.
    pub inbound: bool,
    /// What it proved when it connected (see `PeerInfo.identity`).
    pub identity: String,
    /// Last measured round-trip time, if a ping completed.
    pub rtt: Option<Duration>,
    /// Counters for this peer.
    pub counters: CounterStats,
}

/// Stats of one subscription.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct SubscriptionStats {
    /// The pattern.
    pub pattern: String,
    /// Messages handed to the subscriber.
    pub delivered: u64,
    /// Messages dropped by the overflow policy.
    pub dropped: u64,
    /// Messages waiting in the queue.
    pub queued: u64,
}

/// Everything `Endpoint.stats()` reports.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct Stats {
    /// The endpoint's name.
    pub name: String,
    /// Totals over every peer, past and present.
    pub total: CounterStats,
    /// Connected peers.
    pub peers: Vec<PeerStats>,
    /// Open subscriptions.
    pub subscriptions: Vec<SubscriptionStats>,
}

impl From<netchan::Stats> for Stats {
    fn from(s: netchan::Stats) -> Self {
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
                    rtt: p.rtt,
                    counters: p.counters.into(),
                })
                .collect(),
            subscriptions: s
                .subscriptions
                .into_iter()
                .map(|s| SubscriptionStats {
                    pattern: s.pattern,
                    delivered: s.delivered,
                    dropped: s.dropped,
                    queued: s.queued as u64,
                })
                .collect(),
        }
    }
}

/// Something that happened to the endpoint. Codes are symbolic names
/// (`PEER_LOST`, `CLOSED`, ...).
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Enum)]
#[allow(missing_docs)] // the fields are those of netchan::Event
pub enum Event {
    /// A peer completed the handshake.
    PeerUp {
        peer: String,
        addr: String,
        identity: String,
    },
    /// A peer's connection ended.
    PeerDown {
        peer: String,
        addr: String,
        reason: String,
        code: String,
    },
    /// Messages were dropped (queue or send buffer full).
    Dropped {
        site: String,
        code: String,
        count: u64,
    },
    /// A dialled peer was lost; the next attempt is scheduled.
    Reconnecting {
        addr: String,
        attempt: u32,
        delay: Duration,
    },
    /// Redialling stopped for good (permanent failure).
    ReconnectAbandoned {
        addr: String,
        code: String,
        detail: String,
    },
    /// A connection was refused or closed for breaking the protocol
    /// (`attempts`: failed attempts from that address so far).
    ConnectionError {
        addr: String,
        code: String,
        detail: String,
        attempts: u64,
    },
    /// The access rules denied a peer something (`action`: `publish`,
    /// `subscribe`, `serve`, `request` or `stream`).
    Denied {
        peer: String,
        identity: String,
        action: String,
        path: String,
    },
    /// The stream fell behind and missed this many events.
    Missed { count: u64 },
    /// `suspend()` closed every link and listener.
    Suspended,
    /// `resume()` listens and dials again.
    Resumed,
}

impl Event {
    pub(crate) fn from_core(e: netchan::Event) -> Option<Event> {
        use netchan::Event as C;
        Some(match e {
            C::PeerUp {
                peer,
                addr,
                identity,
            } => Event::PeerUp {
                peer,
                addr,
                identity,
            },
            C::Denied {
                peer,
                identity,
                action,
                path,
            } => Event::Denied {
                peer,
                identity,
                action,
                path,
            },
            C::PeerDown {
                peer,
                addr,
                reason,
                code,
            } => Event::PeerDown {
                peer,
                addr,
                reason,
                code: code.name().to_string(),
            },
            C::Dropped { site, code, count } => Event::Dropped {
                site,
                code: code.name().to_string(),
                count,
            },
            C::Reconnecting {
                addr,
                attempt,
                delay,
            } => Event::Reconnecting {
                addr,
                attempt,
                delay,
            },
            C::ReconnectAbandoned { addr, code, detail } => Event::ReconnectAbandoned {
                addr,
                code: code.name().to_string(),
                detail,
            },
            C::ConnectionError {
                addr,
                code,
                detail,
                attempts,
            } => Event::ConnectionError {
                addr,
                code: code.name().to_string(),
                detail,
                attempts,
            },
            C::Suspended => Event::Suspended,
            C::Resumed => Event::Resumed,
            // A kind of event added to the core later: not shown until this
            // binding learns it (`every_core_event_reaches_the_binding_with_all_its_fields`
            // fails until then).
            _ => return None,
        })
    }

    /// The core's name of this kind (`netchan::Event::kind`); `missed` for
    /// the stream's own `Missed`.
    #[cfg(test)]
    fn kind(&self) -> &'static str {
        match self {
            Event::PeerUp { .. } => "peer_up",
            Event::PeerDown { .. } => "peer_down",
            Event::Dropped { .. } => "dropped",
            Event::Reconnecting { .. } => "reconnecting",
            Event::ReconnectAbandoned { .. } => "reconnect_abandoned",
            Event::ConnectionError { .. } => "connection_error",
            Event::Denied { .. } => "denied",
            Event::Missed { .. } => "missed",
            Event::Suspended => "suspended",
            Event::Resumed => "resumed",
        }
    }

    /// The core event this one was made from, rebuilt from its fields
    /// alone: what a foreign caller can know.
    #[cfg(test)]
    fn to_core(&self) -> Option<netchan::Event> {
        use netchan::Event as C;
        let code = |name: &str| netchan::ErrorCode::from_name(name).expect("a core code");
        Some(match self.clone() {
            Event::PeerUp {
                peer,
                addr,
                identity,
            } => C::PeerUp {
                peer,
                addr,
                identity,
            },
            Event::Denied {
                peer,
                identity,
                action,
                path,
            } => C::Denied {
                peer,
                identity,
                action,
                path,
            },
            Event::PeerDown {
                peer,
                addr,
                reason,
                code: c,
            } => C::PeerDown {
                peer,
                addr,
                reason,
                code: code(&c),
            },
            Event::Dropped {
                site,
                code: c,
                count,
            } => C::Dropped {
                site,
                code: code(&c),
                count,
            },
            Event::Reconnecting {
                addr,
                attempt,
                delay,
            } => C::Reconnecting {
                addr,
                attempt,
                delay,
            },
            Event::ReconnectAbandoned {
                addr,
                code: c,
                detail,
            } => C::ReconnectAbandoned {
                addr,
                code: code(&c),
                detail,
            },
            Event::ConnectionError {
                addr,
                code: c,
                detail,
                attempts,
            } => C::ConnectionError {
                addr,
                code: code(&c),
                detail,
                attempts,
            },
            Event::Suspended => C::Suspended,
            Event::Resumed => C::Resumed,
            Event::Missed { .. } => return None,
        })
    }
}

/// Endpoint configuration. A field left `null` (the default) keeps the
/// core's default, or what `settings` set by name; a field that is set wins
/// over `settings` (as Python's keywords and Node's options do). Each
/// field's name is the core setting's (`netchan settings`) in lowerCamelCase
/// with its unit appended (`Ms`, `Us`).
#[derive(Debug, Clone, PartialEq, Eq, Default, uniffi::Record)]
pub struct EndpointConfig {
    /// The endpoint's name, unique among the endpoints it talks to
    /// (default: random).
    #[uniffi(default = None)]
    pub name: Option<String>,
    /// Ping a silent peer after this long (default 2000)...
    #[uniffi(default = None)]
    pub heartbeat_interval_ms: Option<u64>,
    /// ...and declare it lost after this many silent intervals (default 3).
    #[uniffi(default = None)]
    pub heartbeat_misses: Option<u32>,
    /// Redial peers this endpoint connected to after a loss (default true;
    /// the core's `reconnect.enabled`).
    #[uniffi(default = None)]
    pub reconnect: Option<bool>,
    /// First redial delay (default 100).
    #[uniffi(default = None)]
    pub reconnect_min_delay_ms: Option<u64>,
    /// Largest redial delay (default 5000).
    #[uniffi(default = None)]
    pub reconnect_max_delay_ms: Option<u64>,
    /// Time allowed to dial an address (default 5000).
    #[uniffi(default = None)]
    pub connect_timeout_ms: Option<u64>,
    /// Time allowed for a handshake (default 5000).
    #[uniffi(default = None)]
    pub handshake_timeout_ms: Option<u64>,
    /// Bytes queued per peer before publishers wait (default 8 MiB).
    #[uniffi(default = None)]
    pub send_buffer: Option<u64>,
    /// How long `publish` waits for room in a peer's send buffer (default
    /// 10000).
    #[uniffi(default = None)]
    pub send_timeout_ms: Option<u64>,
    /// Time `ping` waits for a pong (default 5000).
    #[uniffi(default = None)]
    pub ping_timeout_ms: Option<u64>,
    /// Largest frame accepted from a peer, in bytes (default 16 MiB).
    #[uniffi(default = None)]
    pub max_frame_size: Option<u64>,
    /// Bytes held per dialled peer while it is being redialled (default
    /// 4 MiB).
    #[uniffi(default = None)]
    pub offline_buffer: Option<u64>,
    /// Default queue bound of each subscription, in messages (the core's
    /// `subscribe.capacity`, default 16384).
    #[uniffi(default = None)]
    pub subscribe_capacity: Option<u64>,
    /// Default queue bound of each subscription, in payload bytes
    /// (`subscribe.max_bytes`, default 64 MiB).
    #[uniffi(default = None)]
    pub subscribe_max_bytes: Option<u64>,
    /// Default overflow policy of each subscription (`subscribe.overflow`,
    /// default `Block`).
    #[uniffi(default = None)]
    pub subscribe_overflow: Option<Overflow>,
    /// Requests waiting per service before new ones are refused (default
    /// 1024).
    #[uniffi(default = None)]
    pub service_queue: Option<u64>,
    /// Bytes a stream's other side may send before this side reads, by
    /// default (default 1 MiB).
    #[uniffi(default = None)]
    pub stream_window: Option<u64>,
    /// How long a blocking call (`publish_blocking`, `request_blocking`,
    /// `recv_blocking`) keeps polling before it parks its thread, in
    /// microseconds: the core's `busy_poll`, at most one second. It costs
    /// up to this much CPU per wait; zero (the default) parks at once.
    #[uniffi(default = None)]
    pub busy_poll_us: Option<u64>,
    /// TLS for `tls://` addresses (docs/SECURITY.md); `null`: `tls://` is
    /// refused.
    #[uniffi(default = None)]
    pub tls: Option<TlsSettings>,
    /// Allow plaintext `tcp://` beyond this host (refused by default with
    /// `PLAINTEXT_REFUSED`).
    #[uniffi(default = None)]
    pub insecure: Option<bool>,
    /// Any core setting by the name `netchan settings` lists
    /// (`mapOf("send_buffer" to "1MiB")`), applied before the fields above.
    #[uniffi(default = None)]
    pub settings: Option<std::collections::HashMap<String, String>>,
}

/// TLS settings. Each PEM is a file's path, or the PEM text itself (a
/// string starting with `-----BEGIN`, for keys embedded in an app).
#[derive(Debug, Clone, PartialEq, Eq, Default, uniffi::Record)]
pub struct TlsSettings {
    /// This endpoint's certificate chain (to listen on `tls://`, or for
    /// mutual TLS).
    #[uniffi(default = None)]
    pub cert: Option<String>,
    /// The private key of `cert`.
    #[uniffi(default = None)]
    pub key: Option<String>,
    /// CA certificates that sign the peers' certificates (to dial
    /// `tls://`, or check clients).
    #[uniffi(default = None)]
    pub ca: Option<String>,
    /// Peers' certificates trusted as they are, instead of a CA.
    #[uniffi(default = None)]
    pub pinned: Option<String>,
    /// `"none"` (default), `"optional"` or `"required"` (mutual TLS).
    #[uniffi(default = None)]
    pub client_auth: Option<String>,
    /// The name the dialled peer's certificate must carry, instead of the
    /// address's host.
    #[uniffi(default = None)]
    pub server_name: Option<String>,
}

impl TlsSettings {
    /// Sets these settings on `c` by their names (`tls.cert`, ...).
    pub(crate) fn apply(&self, c: &mut netchan::Config) -> Result<(), NetchanError> {
        for (name, v) in [
            ("tls.cert", &self.cert),
            ("tls.key", &self.key),
            ("tls.ca", &self.ca),
            ("tls.pinned", &self.pinned),
            ("tls.client_auth", &self.client_auth),
            ("tls.server_name", &self.server_name),
        ] {
            if let Some(v) = v {
                c.set(name, v)?;
            }
        }
        Ok(())
    }
}

impl EndpointConfig {
    pub(crate) fn to_core(&self) -> Result<netchan::Config, NetchanError> {
        let ms = Duration::from_millis;
        let size = |what: &str, n: u64| {
            usize::try_from(n).map_err(|_| {
                NetchanError::new(
                    netchan::ErrorCode::InvalidArgument,
                    format!("{what} {n} is too large"),
                )
            })
        };
        let mut c = netchan::Config::default();
        for (k, v) in self.settings.iter().flatten() {
            c.set(k, v)?;
        }
        if self.name.is_some() {
            c.name = self.name.clone();
        }
        if let Some(v) = self.insecure {
            c.insecure = v;
        }
        if let Some(t) = &self.tls {
            t.apply(&mut c)?;
        }
        // Only the fields that are set: the others keep what `settings`
        // (or the core's default) gave.
        macro_rules! set {
            ($($field:ident => $target:expr, $conv:expr;)*) => {
                $( if let Some(v) = self.$field { $target = $conv(stringify!($field), v)?; } )*
            };
        }
        let millis = |_: &str, v: u64| Ok::<_, NetchanError>(ms(v));
        set! {
            heartbeat_interval_ms => c.heartbeat_interval, millis;
            reconnect_min_delay_ms => c.reconnect.min_delay, millis;
            reconnect_max_delay_ms => c.reconnect.max_delay, millis;
            connect_timeout_ms => c.connect_timeout, millis;
            handshake_timeout_ms => c.handshake_timeout, millis;
            send_buffer => c.send_buffer, size;
            send_timeout_ms => c.send_timeout, millis;
            ping_timeout_ms => c.ping_timeout, millis;
            max_frame_size => c.max_frame_size, size;
            offline_buffer => c.offline_buffer, size;
            subscribe_capacity => c.subscribe.capacity, size;
            subscribe_max_bytes => c.subscribe.max_bytes, size;
            service_queue => c.service_queue, size;
            stream_window => c.stream_window, size;
        }
        if let Some(n) = self.heartbeat_misses {
            c.heartbeat_misses = n;
        }
        if let Some(on) = self.reconnect {
            c.reconnect.enabled = on;
        }
        if let Some(o) = self.subscribe_overflow {
            c.subscribe.overflow = o.into();
        }
        if let Some(us) = self.busy_poll_us {
            c.busy_poll = Duration::from_micros(us);
        }
        c.validate()?;
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_config_matches_the_core() {
        let ours = EndpointConfig::default().to_core().unwrap();
        let core = netchan::Config::default();
        assert_eq!(ours.heartbeat_interval, core.heartbeat_interval);
        assert_eq!(ours.heartbeat_misses, core.heartbeat_misses);
        assert_eq!(ours.reconnect, core.reconnect);
        assert_eq!(ours.connect_timeout, core.connect_timeout);
        assert_eq!(ours.send_timeout, core.send_timeout);
        assert_eq!(ours.ping_timeout, core.ping_timeout);
        assert_eq!(ours.max_frame_size, core.max_frame_size);
        assert_eq!(ours.offline_buffer, core.offline_buffer);
        assert_eq!(ours.subscribe, core.subscribe);
        assert_eq!(ours.busy_poll, core.busy_poll);
        assert_eq!(ours.handshake_timeout, core.handshake_timeout);
        assert_eq!(ours.send_buffer, core.send_buffer);
        assert_eq!(ours.service_queue, core.service_queue);
        assert_eq!(ours.stream_window, core.stream_window);
        assert_eq!(ours.insecure, core.insecure);
    }

    /// A setting given by name stays unless the field of the same knob is
    /// set; a set field wins (Kotlin used to write every field's default
    /// over `settings`).
    #[test]
    fn settings_by_name_stay_unless_their_field_is_set() {
        let mut cfg = EndpointConfig {
            settings: Some(
                [
                    ("heartbeat_interval", "7s"),
                    ("subscribe.capacity", "9"),
                    ("subscribe.overflow", "drop_oldest"),
                    ("busy_poll", "30us"),
                ]
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .into(),
            ),
            ..EndpointConfig::default()
        };
        let c = cfg.to_core().unwrap();
        assert_eq!(c.heartbeat_interval, Duration::from_secs(7));
        assert_eq!(c.subscribe.capacity, 9);
        assert_eq!(c.subscribe.overflow, netchan::Overflow::DropOldest);
        assert_eq!(c.busy_poll, Duration::from_micros(30));
        cfg.subscribe_capacity = Some(5);
        cfg.subscribe_overflow = Some(Overflow::DropNewest);
        cfg.stream_window = Some(4096);
        let c = cfg.to_core().unwrap();
        assert_eq!(c.subscribe.capacity, 5);
        assert_eq!(c.subscribe.overflow, netchan::Overflow::DropNewest);
        assert_eq!(c.stream_window, 4096);
        assert_eq!(c.heartbeat_interval, Duration::from_secs(7));
    }

    /// Every kind of core event, with every field set, becomes an `Event`
    /// of the same kind from which the core event can be rebuilt: no kind
    /// is missing and no field is lost on the way to Kotlin and Swift.
    #[test]
    fn every_core_event_reaches_the_binding_with_all_its_fields() {
        let examples = netchan::Event::examples();
        assert!(!examples.is_empty());
        for e in examples {
            let ours = Event::from_core(e.clone())
                .unwrap_or_else(|| panic!("{} does not reach Kotlin and Swift", e.kind()));
            assert_eq!(ours.kind(), e.kind(), "{ours:?}");
            assert_eq!(
                ours.to_core().as_ref(),
                Some(&e),
                "{} lost a field",
                e.kind()
            );
        }
    }
}
