//! Endpoint configuration: every limit and default in one place.

use std::time::Duration;

use crate::error::{Error, Result};
use crate::proto::{MAX_NAME_LEN, MIN_MAX_FRAME};

/// What a full subscription queue does with the next message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Overflow {
    /// Wait for room: the connection's reader stops, TCP pushes back, and the
    /// publisher's send buffer fills (then its `send_timeout` applies).
    /// Nothing is lost; a slow subscriber slows the link it is on.
    #[default]
    Block,
    /// Discard the oldest queued message to make room (counted, reported).
    DropOldest,
    /// Discard the new message (counted, reported).
    DropNewest,
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

/// Endpoint configuration. Start from `Config::default()` and change fields.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Config {
    /// The endpoint's name, unique among the endpoints it talks to.
    /// `None`: a random name like `ep-3f9a1c0d2b4e5f60`.
    pub name: Option<String>,
    /// Largest frame accepted from a peer (and advertised to it), in bytes.
    /// A publish larger than the peer's limit fails with `MESSAGE_TOO_LARGE`.
    pub max_frame_size: usize,
    /// Heartbeat interval advertised in the handshake.
    pub heartbeat_interval: Duration,
    /// Time allowed to dial an address.
    pub connect_timeout: Duration,
    /// Time allowed for a handshake (both HELLOs and both snapshots).
    pub handshake_timeout: Duration,
    /// Bytes queued per peer before publishers wait.
    pub send_buffer: usize,
    /// How long `publish` or `request` waits for room in a peer's send buffer
    /// before failing with `BUFFER_FULL` (the message is counted as dropped).
    pub send_timeout: Duration,
    /// Time `ping` waits for a pong.
    pub ping_timeout: Duration,
    /// Defaults for subscriptions.
    pub subscribe: SubscribeOptions,
    /// Requests queued per service before new ones are refused (`BUFFER_FULL`).
    pub service_queue: usize,
    /// Connections (inbound and outbound) at once.
    pub max_connections: usize,
    /// Inbound connections in handshake at once.
    pub max_pending_handshakes: usize,
    /// Declarations one peer may hold.
    pub max_declarations_per_peer: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            name: None,
            max_frame_size: 16 * 1024 * 1024,
            heartbeat_interval: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(5),
            handshake_timeout: Duration::from_secs(5),
            send_buffer: 8 * 1024 * 1024,
            send_timeout: Duration::from_secs(10),
            ping_timeout: Duration::from_secs(5),
            subscribe: SubscribeOptions::default(),
            service_queue: 1024,
            max_connections: 1024,
            max_pending_handshakes: 64,
            max_declarations_per_peer: 100_000,
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
            ("max_connections", self.max_connections),
            ("max_pending_handshakes", self.max_pending_handshakes),
            ("max_declarations_per_peer", self.max_declarations_per_peer),
        ] {
            if n == 0 {
                return Err(Error::invalid_argument(format!(
                    "{field} must be at least 1"
                )));
            }
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
    }
}
