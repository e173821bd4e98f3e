//! Settings by name: `Config::set("send_buffer", "1MiB")`.
//!
//! One table names every field of [`Config`] that a deployment tunes, with
//! its type; the CLI (`netchan -o KEY=VALUE`) and the bindings set fields
//! through it, so a setting has one name and one syntax on every surface.
//! Sizes take a unit (`65536`, `64KiB`, `8MiB`, `1GiB`), durations too
//! (`500us`, `200ms`, `2s`, `1m`), policies their snake_case name.

use std::time::Duration;

use super::{ClientAuth, Config, KeySource, Overflow, Pem, RatePolicy, SlowPeer, TlsConfig};
use crate::error::{Error, Result};

/// How a setting's value is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SettingKind {
    /// Bytes, with an optional unit: `65536`, `64KiB`, `8MiB`.
    Size,
    /// A whole number.
    Count,
    /// A duration with a unit: `500us`, `200ms`, `2s`, `1m`.
    Duration,
    /// A decimal number.
    Number,
    /// `true` or `false`.
    Bool,
    /// Text.
    Text,
    /// One of a few names (listed in the error for a wrong one).
    Choice(&'static [&'static str]),
}

/// One settable field: its name, how its value is written, what it does.
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub struct Setting {
    /// The name, as `Config::set` takes it (`reconnect.min_delay`).
    pub name: &'static str,
    /// How the value is written.
    pub kind: SettingKind,
    /// One line on what it does.
    pub doc: &'static str,
}

const OVERFLOW: &[&str] = &["block", "drop_oldest", "drop_newest", "disconnect"];
const SLOW_PEER: &[&str] = &["block", "drop_newest", "disconnect"];
const CLIENT_AUTH: &[&str] = &["none", "optional", "required"];
const RATE_POLICY: &[&str] = &["drop", "disconnect"];

/// A PEM setting's value: the path, or `<N bytes of PEM>`; empty if unset.
fn pem(p: Option<&Pem>) -> String {
    p.map(|p| p.to_string()).unwrap_or_default()
}

/// The TLS settings, made on first use.
fn tls(c: &mut Config) -> &mut TlsConfig {
    c.tls.get_or_insert_with(TlsConfig::default)
}

macro_rules! settings {
    ($( $name:literal, $kind:expr, $doc:literal, |$g:ident| $get:expr, |$c:ident, $v:ident| $set:expr; )*) => {
        /// Every setting [`Config::set`] knows, in the order of the docs.
        pub const SETTINGS: &[Setting] = &[ $( Setting { name: $name, kind: $kind, doc: $doc }, )* ];

        fn apply(c: &mut Config, name: &str, value: &str) -> Result<()> {
            let kind = SETTINGS
                .iter()
                .find(|s| s.name == name)
                .map(|s| s.kind)
                .ok_or_else(|| {
                    let known: Vec<&str> = SETTINGS.iter().map(|s| s.name).collect();
                    Error::invalid_argument(format!(
                        "unknown setting `{name}`; known: {}",
                        known.join(", ")
                    ))
                })?;
            let v = Value { name, kind, text: value };
            match name {
                $( $name => { let ($c, $v) = (&mut *c, &v); $set; } )*
                _ => {}
            }
            Ok(())
        }

        fn read(c: &Config, name: &str) -> Option<String> {
            match name {
                $( $name => { let $g = c; Some($get) } )*
                _ => None,
            }
        }
    };
}

/// A size in the largest unit that divides it: `64KiB`, `8MiB`, `100`.
fn size(n: usize) -> String {
    for (unit, m) in [("GiB", 1usize << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)] {
        if n >= m && n % m == 0 {
            return format!("{}{unit}", n / m);
        }
    }
    n.to_string()
}

/// A duration in the largest unit that divides it: `2s`, `200ms`, `0s`.
fn dur(d: Duration) -> String {
    let us = d.as_micros();
    if us == 0 {
        "0s".into()
    } else if us % 1_000_000 == 0 {
        format!("{}s", us / 1_000_000)
    } else if us % 1000 == 0 {
        format!("{}ms", us / 1000)
    } else {
        format!("{us}us")
    }
}

fn overflow(o: Overflow) -> String {
    match o {
        Overflow::Block => "block",
        Overflow::DropOldest => "drop_oldest",
        Overflow::DropNewest => "drop_newest",
        Overflow::Disconnect => "disconnect",
    }
    .to_owned()
}

settings! {
    "name", SettingKind::Text, "the endpoint's name, unique among the endpoints it talks to",
        |c| c.name.clone().unwrap_or_default(),
        |c, v| c.name = Some(v.text.to_owned());
    "max_frame_size", SettingKind::Size, "largest frame accepted from a peer (and advertised to it)",
        |c| size(c.max_frame_size),
        |c, v| c.max_frame_size = v.size()?;
    "heartbeat_interval", SettingKind::Duration, "ping a peer heard nothing from for this long",
        |c| dur(c.heartbeat_interval),
        |c, v| c.heartbeat_interval = v.duration()?;
    "heartbeat_misses", SettingKind::Count, "silent intervals before a peer is declared lost",
        |c| c.heartbeat_misses.to_string(),
        |c, v| c.heartbeat_misses = v.count()?;
    "reconnect.enabled", SettingKind::Bool, "redial peers this endpoint connected to",
        |c| c.reconnect.enabled.to_string(),
        |c, v| c.reconnect.enabled = v.boolean()?;
    "reconnect.min_delay", SettingKind::Duration, "first redial delay",
        |c| dur(c.reconnect.min_delay),
        |c, v| c.reconnect.min_delay = v.duration()?;
    "reconnect.max_delay", SettingKind::Duration, "largest redial delay",
        |c| dur(c.reconnect.max_delay),
        |c, v| c.reconnect.max_delay = v.duration()?;
    "reconnect.factor", SettingKind::Number, "each failed attempt multiplies the delay by this",
        |c| c.reconnect.factor.to_string(),
        |c, v| c.reconnect.factor = v.number()?;
    "reconnect.jitter", SettingKind::Number, "fraction each delay is randomised by (0..1)",
        |c| c.reconnect.jitter.to_string(),
        |c, v| c.reconnect.jitter = v.number()?;
    "slow_peer", SettingKind::Choice(SLOW_PEER), "what publish does when a peer's send buffer is full",
        |c| match c.slow_peer { SlowPeer::Block => "block", SlowPeer::DropNewest => "drop_newest", SlowPeer::Disconnect => "disconnect" }.to_owned(),
        |c, v| c.slow_peer = match v.choice()? { "block" => SlowPeer::Block, "drop_newest" => SlowPeer::DropNewest, _ => SlowPeer::Disconnect };
    "offline_buffer", SettingKind::Size, "bytes held per dialled peer while it is away",
        |c| size(c.offline_buffer),
        |c, v| c.offline_buffer = v.size()?;
    "offline_overflow", SettingKind::Choice(OVERFLOW), "what a full offline buffer does",
        |c| overflow(c.offline_overflow),
        |c, v| c.offline_overflow = v.overflow()?;
    "connect_timeout", SettingKind::Duration, "time allowed to connect (retries of OVERLOADED included)",
        |c| dur(c.connect_timeout),
        |c, v| c.connect_timeout = v.duration()?;
    "handshake_timeout", SettingKind::Duration, "time allowed for both HELLOs and both snapshots",
        |c| dur(c.handshake_timeout),
        |c, v| c.handshake_timeout = v.duration()?;
    "hello_timeout", SettingKind::Duration, "time an inbound connection has to send its HELLO",
        |c| dur(c.hello_timeout),
        |c, v| c.hello_timeout = v.duration()?;
    "send_buffer", SettingKind::Size, "bytes queued per peer before publishers wait",
        |c| size(c.send_buffer),
        |c, v| c.send_buffer = v.size()?;
    "send_timeout", SettingKind::Duration, "how long publish and request wait for room",
        |c| dur(c.send_timeout),
        |c, v| c.send_timeout = v.duration()?;
    "ping_timeout", SettingKind::Duration, "time ping waits for a pong",
        |c| dur(c.ping_timeout),
        |c, v| c.ping_timeout = v.duration()?;
    "declare_wait", SettingKind::Duration, "how long subscribe/serve wait for connected peers to have the declaration",
        |c| dur(c.declare_wait),
        |c, v| c.declare_wait = v.duration()?;
    "subscribe.capacity", SettingKind::Count, "default subscription queue bound, in messages",
        |c| c.subscribe.capacity.to_string(),
        |c, v| c.subscribe.capacity = v.count()?;
    "subscribe.max_bytes", SettingKind::Size, "default subscription queue bound, in payload bytes",
        |c| size(c.subscribe.max_bytes),
        |c, v| c.subscribe.max_bytes = v.size()?;
    "subscribe.overflow", SettingKind::Choice(OVERFLOW), "what a full subscription queue does by default",
        |c| overflow(c.subscribe.overflow),
        |c, v| c.subscribe.overflow = v.overflow()?;
    "service_queue", SettingKind::Count, "requests queued per service, shared fairly among callers",
        |c| c.service_queue.to_string(),
        |c, v| c.service_queue = v.count()?;
    "service_queue_bytes", SettingKind::Size, "request bytes queued per service, shared fairly",
        |c| size(c.service_queue_bytes),
        |c, v| c.service_queue_bytes = v.size()?;
    "handler_concurrency", SettingKind::Count, "requests a serve_fn handler works on at once",
        |c| c.handler_concurrency.to_string(),
        |c, v| c.handler_concurrency = v.count()?;
    "stream_window", SettingKind::Size, "payload bytes a stream's other side may send before this side reads",
        |c| size(c.stream_window),
        |c, v| c.stream_window = v.size()?;
    "max_connections", SettingKind::Count, "connections at once",
        |c| c.max_connections.to_string(),
        |c, v| c.max_connections = v.count()?;
    "max_pending_handshakes", SettingKind::Count, "inbound connections waiting to send their HELLO",
        |c| c.max_pending_handshakes.to_string(),
        |c, v| c.max_pending_handshakes = v.count()?;
    "max_pending_handshakes_per_address", SettingKind::Count, "the same, per remote address",
        |c| c.max_pending_handshakes_per_address.to_string(),
        |c, v| c.max_pending_handshakes_per_address = v.count()?;
    "max_declarations_per_peer", SettingKind::Count, "declarations one peer may hold",
        |c| c.max_declarations_per_peer.to_string(),
        |c, v| c.max_declarations_per_peer = v.count()?;
    "max_declaration_bytes_per_peer", SettingKind::Size, "bytes of pattern text one peer may declare",
        |c| size(c.max_declaration_bytes_per_peer),
        |c, v| c.max_declaration_bytes_per_peer = v.size()?;
    "busy_poll", SettingKind::Duration, "busy polling of waits outside runtime tasks (0 off)",
        |c| dur(c.busy_poll),
        |c, v| c.busy_poll = v.duration()?;
    "tls.cert", SettingKind::Text, "this endpoint's TLS certificate chain: a PEM file, or the PEM text",
        |c| pem(c.tls.as_ref().and_then(|t| t.cert.as_ref())),
        |c, v| tls(c).cert = v.pem();
    "tls.key", SettingKind::Text, "the private key of tls.cert: a PEM file, or the PEM text",
        |c| pem(c.tls.as_ref().and_then(|t| t.key.as_ref())),
        |c, v| tls(c).key = v.pem();
    "tls.ca", SettingKind::Text, "CA certificates that sign peers' certificates: a PEM file, or the PEM text",
        |c| pem(c.tls.as_ref().and_then(|t| t.ca.as_ref())),
        |c, v| tls(c).ca = v.pem();
    "tls.pinned", SettingKind::Text, "peers' certificates trusted as they are: a PEM file, or the PEM text",
        |c| pem(c.tls.as_ref().and_then(|t| t.pinned.as_ref())),
        |c, v| tls(c).pinned = v.pem();
    "tls.client_auth", SettingKind::Choice(CLIENT_AUTH), "whether a TLS listener asks peers for a certificate (required: mutual TLS)",
        |c| match c.tls.as_ref().map(|t| t.client_auth).unwrap_or_default() { ClientAuth::Optional => "optional", ClientAuth::Required => "required", _ => "none" }.to_owned(),
        |c, v| tls(c).client_auth = match v.choice()? { "optional" => ClientAuth::Optional, "required" => ClientAuth::Required, _ => ClientAuth::None };
    "tls.server_name", SettingKind::Text, "the name a dialled peer's certificate must carry, instead of the address's host",
        |c| c.tls.as_ref().and_then(|t| t.server_name.clone()).unwrap_or_default(),
        |c, v| tls(c).server_name = Some(v.text.trim().to_owned()).filter(|n| !n.is_empty());
    "psk", SettingKind::Text, "shared keys: a key file (netchan keygen), or its text; tcp:// links then prove a key and are encrypted",
        |c| c.shared_keys.as_ref().map(|k| k.to_string()).unwrap_or_default(),
        |c, v| c.shared_keys = Some(v.text.trim()).filter(|t| !t.is_empty()).map(KeySource::parse);
    "insecure", SettingKind::Bool, "allow plaintext tcp:// beyond this host (refused by default)",
        |c| c.insecure.to_string(),
        |c, v| c.insecure = v.boolean()?;
    "unix_mode", SettingKind::Text, "permissions of Unix socket files listened on, in octal (600: owner only)",
        |c| format!("{:o}", c.unix_mode),
        |c, v| c.unix_mode = v.octal()?;
    "unix_allowed_uids", SettingKind::Text, "user ids allowed to connect over Unix sockets, comma-separated (empty: any)",
        |c| c.unix_allowed_uids.iter().map(u32::to_string).collect::<Vec<_>>().join(","),
        |c, v| c.unix_allowed_uids = v.uids()?;
    "rate_limit.msgs", SettingKind::Count, "messages and requests per second from one peer (0: no limit)",
        |c| c.rate_limit.msgs_per_sec.to_string(),
        |c, v| c.rate_limit.msgs_per_sec = v.count()?;
    "rate_limit.bytes", SettingKind::Size, "payload bytes per second from one peer (0: no limit)",
        |c| size(c.rate_limit.bytes_per_sec as usize),
        |c, v| c.rate_limit.bytes_per_sec = v.size()? as u64;
    "rate_limit.policy", SettingKind::Choice(RATE_POLICY), "past a rate limit: drop (and count) or disconnect",
        |c| match c.rate_limit.policy { RatePolicy::Disconnect => "disconnect", _ => "drop" }.to_owned(),
        |c, v| c.rate_limit.policy = if v.choice()? == "disconnect" { RatePolicy::Disconnect } else { RatePolicy::Drop };
    "acl", SettingKind::Text, "access rules per peer identity: a rules file, or the rules' text (empty: everything allowed)",
        |c| match &c.acl { Some(crate::acl::AclSource::File(p)) => p.display().to_string(), Some(crate::acl::AclSource::Text(t)) => t.clone(), None => String::new() },
        |c, v| c.acl = crate::acl::AclSource::from_setting(v.text);
}

struct Value<'a> {
    name: &'a str,
    kind: SettingKind,
    text: &'a str,
}

impl Value<'_> {
    fn bad(&self, want: &str) -> Error {
        Error::invalid_argument(format!(
            "setting `{}`: `{}` is not {want}",
            self.name, self.text
        ))
    }

    /// A number followed by an optional unit, split.
    fn split(&self) -> (&str, &str) {
        let t = self.text.trim();
        let at = t
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(t.len());
        (&t[..at], t[at..].trim())
    }

    fn size(&self) -> Result<usize> {
        let (n, unit) = self.split();
        let mult: u64 = match unit {
            "" | "B" => 1,
            "KiB" | "K" | "k" | "KB" | "kB" => 1024,
            "MiB" | "M" | "MB" => 1024 * 1024,
            "GiB" | "G" | "GB" => 1024 * 1024 * 1024,
            _ => return Err(self.bad("a size (65536, 64KiB, 8MiB, 1GiB)")),
        };
        n.parse::<u64>()
            .ok()
            .and_then(|n| n.checked_mul(mult))
            .and_then(|n| usize::try_from(n).ok())
            .ok_or_else(|| self.bad("a size (65536, 64KiB, 8MiB, 1GiB)"))
    }

    fn count<T: TryFrom<u64>>(&self) -> Result<T> {
        self.text
            .trim()
            .parse::<u64>()
            .ok()
            .and_then(|n| T::try_from(n).ok())
            .ok_or_else(|| self.bad("a whole number in range"))
    }

    fn duration(&self) -> Result<Duration> {
        let (n, unit) = self.split();
        let want = "a duration with a unit (500us, 200ms, 2s, 1m)";
        let n: f64 = n.parse().map_err(|_| self.bad(want))?;
        let secs = match unit {
            "us" | "µs" => n / 1e6,
            "ms" => n / 1e3,
            "s" => n,
            "m" | "min" => n * 60.0,
            _ => return Err(self.bad(want)),
        };
        Duration::try_from_secs_f64(secs).map_err(|_| self.bad(want))
    }

    fn number(&self) -> Result<f64> {
        self.text
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|n| n.is_finite())
            .ok_or_else(|| self.bad("a number"))
    }

    /// PEM text or a path; empty unsets.
    fn pem(&self) -> Option<Pem> {
        Some(self.text.trim())
            .filter(|t| !t.is_empty())
            .map(Pem::parse)
    }

    fn octal(&self) -> Result<u32> {
        let t = self.text.trim();
        let t = t.strip_prefix("0o").unwrap_or(t);
        u32::from_str_radix(t, 8)
            .ok()
            .filter(|m| *m <= 0o777)
            .ok_or_else(|| self.bad("permission bits in octal, like 600 or 660"))
    }

    fn uids(&self) -> Result<Vec<u32>> {
        self.text
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(|t| {
                t.parse::<u32>()
                    .map_err(|_| self.bad("user ids separated by commas"))
            })
            .collect()
    }

    fn boolean(&self) -> Result<bool> {
        match self.text.trim() {
            "true" | "on" | "yes" | "1" => Ok(true),
            "false" | "off" | "no" | "0" => Ok(false),
            _ => Err(self.bad("true or false")),
        }
    }

    fn choice(&self) -> Result<&str> {
        let SettingKind::Choice(names) = self.kind else {
            return Err(self.bad("one of a few names"));
        };
        let t = self.text.trim();
        names
            .iter()
            .find(|n| **n == t)
            .copied()
            .ok_or_else(|| self.bad(&format!("one of {}", names.join(", "))))
    }

    fn overflow(&self) -> Result<Overflow> {
        Ok(match self.choice()? {
            "block" => Overflow::Block,
            "drop_oldest" => Overflow::DropOldest,
            "disconnect" => Overflow::Disconnect,
            _ => Overflow::DropNewest,
        })
    }
}

impl Config {
    /// Sets the field named `name` from its text form (see [`SETTINGS`] for
    /// the names; sizes and durations take units: `64KiB`, `200ms`). The
    /// whole configuration is still checked by [`Config::validate`] when an
    /// endpoint is made from it.
    ///
    /// Errors: `INVALID_ARGUMENT` naming the setting and what it takes.
    pub fn set(&mut self, name: &str, value: &str) -> Result<()> {
        apply(self, name, value)
    }

    /// The value of the setting named `name` in the text form
    /// [`set`](Self::set) takes; `None` for an unknown name.
    pub fn get(&self, name: &str) -> Option<String> {
        read(self, name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorCode;

    #[test]
    fn every_kind_parses_and_bad_values_name_the_setting() {
        let mut c = Config::default();
        c.set("send_buffer", "64KiB").unwrap();
        c.set("heartbeat_interval", "250ms").unwrap();
        c.set("reconnect.enabled", "false").unwrap();
        c.set("reconnect.factor", "1.5").unwrap();
        c.set("slow_peer", "drop_newest").unwrap();
        c.set("subscribe.overflow", "drop_oldest").unwrap();
        c.set("max_connections", "7").unwrap();
        c.set("busy_poll", "100us").unwrap();
        c.set("name", "n1").unwrap();
        assert_eq!(c.send_buffer, 64 * 1024);
        assert_eq!(c.heartbeat_interval, Duration::from_millis(250));
        assert!(!c.reconnect.enabled);
        assert_eq!(c.reconnect.factor, 1.5);
        assert_eq!(c.slow_peer, SlowPeer::DropNewest);
        assert_eq!(c.subscribe.overflow, Overflow::DropOldest);
        assert_eq!(c.max_connections, 7);
        assert_eq!(c.busy_poll, Duration::from_micros(100));
        assert_eq!(c.name.as_deref(), Some("n1"));
        c.validate().unwrap();
        for (k, v, says) in [
            ("send_buffer", "lots", "a size"),
            ("heartbeat_interval", "5", "a duration"),
            (
                "slow_peer",
                "maybe",
                "one of block, drop_newest, disconnect",
            ),
            ("heartbeat_misses", "-1", "a whole number"),
            ("no_such_thing", "1", "unknown setting `no_such_thing`"),
        ] {
            let e = c.set(k, v).unwrap_err();
            assert_eq!(e.code(), ErrorCode::InvalidArgument);
            assert!(e.detail().contains(says), "{k}={v}: {e}");
        }
    }

    /// Every setting in the table can be set from some text, and the names
    /// are unique.
    #[test]
    fn the_table_is_complete_and_unique() {
        let mut names: Vec<&str> = SETTINGS.iter().map(|s| s.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), SETTINGS.len());
        for s in SETTINGS {
            let v = match s.kind {
                SettingKind::Size => "1MiB",
                SettingKind::Count => "3",
                SettingKind::Duration => "1s",
                SettingKind::Number => "1.5",
                SettingKind::Bool => "true",
                SettingKind::Text => match s.name {
                    "unix_mode" => "660",
                    "unix_allowed_uids" => "1000,1001",
                    "psk" => "/etc/netchan/keys",
                    "acl" => "/etc/netchan/acl",
                    _ => "x",
                },
                SettingKind::Choice(names) => names[0],
            };
            let mut c = Config::default();
            c.set(s.name, v)
                .unwrap_or_else(|e| panic!("{}: {e}", s.name));
            // What `get` shows, `set` takes back unchanged.
            let shown = c.get(s.name).unwrap();
            let mut again = Config::default();
            again.set(s.name, &shown).unwrap();
            assert_eq!(again.get(s.name).unwrap(), shown, "{}", s.name);
            let default = Config::default().get(s.name).unwrap();
            let mut d = Config::default();
            d.set(s.name, &default)
                .unwrap_or_else(|e| panic!("{} = {default}: {e}", s.name));
        }
    }
}
