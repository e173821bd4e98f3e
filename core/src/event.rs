//! Connection and delivery events.

use tokio::sync::broadcast;

use crate::error::ErrorCode;

/// Something that happened to the endpoint, for monitoring.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// A peer completed the handshake.
    PeerUp {
        /// Its name.
        peer: String,
        /// Its address.
        addr: String,
        /// What it proved (see `PeerInfo::identity`).
        identity: String,
    },
    /// A peer's connection ended.
    PeerDown {
        /// Its name.
        peer: String,
        /// Its address.
        addr: String,
        /// Why, in words.
        reason: String,
        /// The code of the reason (`CLOSED` for an orderly close).
        code: ErrorCode,
    },
    /// Messages were dropped by a subscription's overflow policy or because a
    /// peer's send buffer stayed full, or were lost with a link that ended;
    /// or a service refused requests (its queue was full).
    Dropped {
        /// The subscription or service pattern, or the peer name.
        site: String,
        /// `BUFFER_FULL` (queue or send buffer full, or no credit left),
        /// `PEER_LOST` (lost with the link to the peer `site`: see
        /// `CounterStats::lost_with_link`), or `RATE_LIMITED` (the peer
        /// `site` sent past its rate limit: see
        /// [`RateLimit`](crate::config::RateLimit) and
        /// `CounterStats::rate_limited`).
        code: ErrorCode,
        /// How many, in this event.
        count: u64,
    },
    /// A dialled peer was lost; the next attempt to reach it is scheduled.
    Reconnecting {
        /// The address being redialled.
        addr: String,
        /// 1 for the first attempt after the loss.
        attempt: u32,
        /// The delay before this attempt.
        delay: std::time::Duration,
    },
    /// Redialling stopped for good: the failure is permanent (protocol
    /// version mismatch, handshake rejected, not a netchan peer).
    ReconnectAbandoned {
        /// The address.
        addr: String,
        /// Why.
        code: ErrorCode,
        /// In words.
        detail: String,
    },
    /// `Endpoint::suspend` closed every link and listener.
    Suspended,
    /// `Endpoint::resume` listens and dials again.
    Resumed,
    /// A connection was refused or closed for breaking the protocol or a limit.
    ConnectionError {
        /// The remote address.
        addr: String,
        /// The code.
        code: ErrorCode,
        /// What was wrong.
        detail: String,
        /// Failed attempts from this address (without its port) so far,
        /// this one included.
        attempts: u64,
    },
    /// The access rules denied a peer something (docs/SECURITY.md,
    /// "Access rules"); counted in `CounterStats::denied`. A denied
    /// publish raises one event per path until the rules or the local
    /// subscriptions change, and counts every message.
    Denied {
        /// The peer's name.
        peer: String,
        /// Its identity (see `PeerInfo::identity`).
        identity: String,
        /// `publish`, `subscribe`, `serve`, `request` or `stream`.
        action: String,
        /// The path or pattern.
        path: String,
    },
}

impl Event {
    /// The event's kind in `snake_case` (`peer_up`, `reconnecting`, ...):
    /// the name every binding gives it.
    pub fn kind(&self) -> &'static str {
        match self {
            Event::PeerUp { .. } => "peer_up",
            Event::PeerDown { .. } => "peer_down",
            Event::Dropped { .. } => "dropped",
            Event::Reconnecting { .. } => "reconnecting",
            Event::ReconnectAbandoned { .. } => "reconnect_abandoned",
            Event::Suspended => "suspended",
            Event::Resumed => "resumed",
            Event::ConnectionError { .. } => "connection_error",
            Event::Denied { .. } => "denied",
        }
    }

    /// One event of every kind, with every field set: bindings' tests check
    /// that each reaches their surface with all its fields. Not API.
    #[doc(hidden)]
    pub fn examples() -> Vec<Event> {
        vec![
            Event::PeerUp {
                peer: "p".into(),
                addr: "tcp://127.0.0.1:1".into(),
                identity: "cert:p".into(),
            },
            Event::PeerDown {
                peer: "p".into(),
                addr: "tcp://127.0.0.1:1".into(),
                reason: "gone".into(),
                code: ErrorCode::PeerLost,
            },
            Event::Dropped {
                site: "a/*".into(),
                code: ErrorCode::BufferFull,
                count: 3,
            },
            Event::Reconnecting {
                addr: "tcp://127.0.0.1:1".into(),
                attempt: 2,
                delay: std::time::Duration::from_millis(250),
            },
            Event::ReconnectAbandoned {
                addr: "tcp://127.0.0.1:1".into(),
                code: ErrorCode::UnsupportedVersion,
                detail: "no".into(),
            },
            Event::Suspended,
            Event::Resumed,
            Event::ConnectionError {
                addr: "tcp://127.0.0.1:1".into(),
                code: ErrorCode::ProtocolError,
                detail: "bad".into(),
                attempts: 4,
            },
            Event::Denied {
                peer: "p".into(),
                identity: "key:k1".into(),
                action: "publish".into(),
                path: "a/b".into(),
            },
        ]
    }
}

/// A stream of [`Event`]s. If the receiver falls more than 1024 events
/// behind, `recv` reports how many it missed instead of hiding it.
pub struct Events {
    pub(crate) rx: broadcast::Receiver<Event>,
    /// Cancelled at the end of `Endpoint::close`: the stream then ends
    /// after the events already sent.
    pub(crate) ended: tokio_util::sync::CancellationToken,
}

/// What [`Events::recv`] returns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EventRecv {
    /// The next event.
    Event(Event),
    /// This many events were missed because the receiver was too slow.
    Missed(u64),
    /// The endpoint is closed.
    Closed,
}

impl Events {
    /// Waits for the next event; `Closed` once the endpoint is closed and
    /// every event sent before is delivered.
    pub async fn recv(&mut self) -> EventRecv {
        tokio::select! {
            biased;
            r = self.rx.recv() => match r {
                Ok(e) => EventRecv::Event(e),
                Err(broadcast::error::RecvError::Lagged(n)) => EventRecv::Missed(n),
                Err(broadcast::error::RecvError::Closed) => EventRecv::Closed,
            },
            _ = self.ended.cancelled() => self.try_recv().unwrap_or(EventRecv::Closed),
        }
    }

    /// The next event if one is ready.
    pub fn try_recv(&mut self) -> Option<EventRecv> {
        match self.rx.try_recv() {
            Ok(e) => Some(EventRecv::Event(e)),
            Err(broadcast::error::TryRecvError::Lagged(n)) => Some(EventRecv::Missed(n)),
            Err(broadcast::error::TryRecvError::Closed) => Some(EventRecv::Closed),
            Err(broadcast::error::TryRecvError::Empty) if self.ended.is_cancelled() => {
                Some(EventRecv::Closed)
            }
            Err(broadcast::error::TryRecvError::Empty) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_examples_hold_one_event_of_every_kind() {
        let kinds: Vec<&str> = Event::examples().iter().map(Event::kind).collect();
        let mut unique = kinds.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), kinds.len(), "{kinds:?}");
        // `kind` matches every variant without a wildcard: a new variant
        // fails to compile there until it is named, and then here until it
        // has an example.
        assert_eq!(kinds.len(), 9);
    }
}
